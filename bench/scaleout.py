"""Scale-out benchmark: one node against two behind a real reverse proxy, in the same run.

    .venv/bin/python -m pip install -e ".[bench]"        # locust
    .venv/bin/python bench/scaleout.py                   # 64 and 128 clients, 20 s each
    .venv/bin/python bench/scaleout.py --clients 64,256 --seconds 30

It starts a throw-away PostgreSQL and Redis (scripts/pg-up.sh, scripts/redis-up.sh), prepares the demo
catalog and one buyer per client (a verified account, credits, an instance of a built-in agent and its
API key), two gunicorn instances of the app on different ports (the same database, Redis and secret),
and nginx on loopback with two front ports: one sends everything to node A, the other balances over A
and B. nginx passes each simulated client's address on (X-Forwarded-For), as a load balancer would.

Before the load it checks that the two nodes behave as one:
- a browser signed in on node A is signed in on node B, and signing out on B ends it on A;
- a request-rate limit counts across both nodes (the sign-in pages, alternating nodes, one address);
- a catalog change made through node A is found by node B's next search (its in-process index follows
  the revision token in the database).
Then Locust runs the same mix (browse, search, sign-in, account pages, agent runs) against one node and
against two, and prints throughput and p50/p95/p99 for each. Afterwards the ledger must verify
(`flask verify-ledger`). Exit status 1 if a check or the ledger fails. Nothing here is a test: figures
depend on the machine, and both sides of a comparison are measured in the same run.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
from bench.billing import free_port, start_postgres, stop_postgres  # noqa: E402

PASSWORD = "scale-out-bench-Passphrase-2026"
AUTH_LIMIT = 30  # sign-in pages per address per minute during the run: the cross-node check counts it
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def start_redis() -> dict[str, str]:
    out = subprocess.run(["bash", str(ROOT / "scripts" / "redis-up.sh")], check=True, capture_output=True,
                         text=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def stop_redis(redis: dict[str, str]) -> None:
    subprocess.run(["bash", str(ROOT / "scripts" / "redis-down.sh")], env={**os.environ, **redis}, check=False)


def app_env(database_url: str, redis_url: str, secret: str) -> dict[str, str]:
    return {**os.environ, "APP_ENV": "development", "SECRET_KEY": secret, "DATABASE_URL": database_url,
            "REDIS_URL": redis_url, "TRUST_PROXY": "true", "RATE_LIMIT_AUTH": f"{AUTH_LIMIT} per minute",
            "RATE_LIMIT_API": "6000 per minute", "DEMO_PASSWORD": PASSWORD, "LOG_FORMAT": "json",
            "DATABASE_POOL_SIZE": "6", "DATABASE_MAX_OVERFLOW": "4"}


def flask(env: dict[str, str], *args: str) -> str:
    return subprocess.run([str(BIN / "flask"), "--app", "app", *args], cwd=ROOT, env=env, check=True,
                          capture_output=True, text=True).stdout


PREPARE = r'''
import json, sys
from app import create_app
from app.extensions import db
from app.models import Offering, Plan, User, utcnow
from app.services import billing, identity, instances, keys, tokens
from sqlalchemy import select

count, password, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
app = create_app()
with app.app_context():
    s = db.session
    plan = s.scalars(select(Plan).join(Offering).where(Offering.slug == "customer-support-agent",
                                                      Plan.tier == "pro")).one()
    buyers = []
    for n in range(count):
        user = identity.create_user(s, email=f"load{n}@example.com", name=f"Load Buyer {n}", password=password)
        user.email_verified_at = utcnow()
        org = identity.ensure_personal_organization(s, user=user)
        wallet = billing.wallet_for_organization(s, org.id)
        billing.grant_credits(s, wallet=wallet, amount=1_000_000, origin="purchase", reference="bench",
                              idempotency_key=f"bench:{n}")
        instance = instances.create_instance(s, organization=org, plan=plan, created_by=user)
        _, key = keys.create_api_key(s, instance=instance, actor=user, name="bench")
        buyers.append({"email": user.email, "password": password, "instance_id": instance.id, "api_key": key})
    operator = s.scalars(select(User).where(User.email == "operator@example.com")).one()
    _, pat = tokens.create_token(s, user=operator, name="bench")
    s.commit()
    json.dump({"buyers": buyers, "operator_token": pat}, open(out, "w"))
'''


def prepare(env: dict[str, str], clients: int, path: Path) -> dict:
    flask(env, "db", "upgrade")
    flask(env, "seed", "demo")
    subprocess.run([sys.executable, "-c", PREPARE, str(clients), PASSWORD, str(path)], cwd=ROOT, env=env,
                   check=True)
    return json.loads(path.read_text())


def start_gunicorn(env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    node_env = {**env, "GUNICORN_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "4",
                "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="scaleout-metrics-")}
    return subprocess.Popen([str(BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), "--no-control-socket",
                             "app:create_app()"], cwd=ROOT, env=node_env, stdout=log.open("w"),
                            stderr=subprocess.STDOUT)


def start_runner(env: dict[str, str], log: Path) -> subprocess.Popen:
    """A job worker for the runs queue: the nodes only queue runs, a runner executes them."""
    return subprocess.Popen([str(BIN / "flask"), "--app", "app", "worker", "--queue", "runs", "--concurrency", "16"],
                            cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def wait_for(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


NGINX_CONF = """
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  upstream one {{ server 127.0.0.1:{a}; keepalive 64; }}
  upstream two {{ server 127.0.0.1:{a}; server 127.0.0.1:{b}; keepalive 64; }}
  proxy_http_version 1.1;
  proxy_set_header Connection "";
  proxy_set_header Host $host;
  proxy_set_header X-Forwarded-Proto $scheme;
  proxy_set_header X-Forwarded-For $http_x_bench_client;
  server {{ listen 127.0.0.1:{p1}; location / {{ proxy_pass http://one; }} }}
  server {{ listen 127.0.0.1:{p2}; location / {{ proxy_pass http://two; }} }}
}}
"""


def start_nginx(directory: Path, a: int, b: int, p1: int, p2: int) -> subprocess.Popen:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise SystemExit("nginx is needed: apt-get install nginx-light")
    conf = directory / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=directory, a=a, b=b, p1=p1, p2=p2))
    return subprocess.Popen([nginx, "-c", str(conf), "-p", str(directory), "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


# --- the checks that two nodes behave as one -----------------------------------------------------------

def _csrf(page: requests.Response) -> str:
    match = CSRF.search(page.text)
    if match is None:
        raise AssertionError(f"no CSRF token on {page.url}")
    return match.group(1)


def check_session_across_nodes(node_a: str, node_b: str, buyer: dict) -> str:
    browser = requests.Session()
    browser.headers["X-Forwarded-For"] = "203.0.113.10"
    form = browser.get(f"{node_a}/auth/login", timeout=10)
    signed_in = browser.post(f"{node_a}/auth/login", data={"email": buyer["email"], "password": buyer["password"],
                                                           "csrf_token": _csrf(form)}, allow_redirects=False,
                             timeout=10)
    on_b = browser.get(f"{node_b}/account/settings", allow_redirects=False, timeout=10)
    token = _csrf(on_b) if on_b.status_code == 200 else ""
    out = browser.post(f"{node_b}/auth/logout", data={"csrf_token": token}, allow_redirects=False, timeout=10)
    after = browser.get(f"{node_a}/account/settings", allow_redirects=False, timeout=10)
    ok = (signed_in.status_code == 302 and on_b.status_code == 200 and buyer["email"] in on_b.text
          and out.status_code in (302, 303) and after.status_code == 302 and "/auth/login" in after.headers["Location"])
    return (f"{'ok  ' if ok else 'FAIL'} signed in on A: {signed_in.status_code}; settings on B: {on_b.status_code}; "
            f"signed out on B: {out.status_code}; settings on A after: {after.status_code}")


def check_rate_limit_across_nodes(node_a: str, node_b: str) -> str:
    headers = {"X-Forwarded-For": "203.0.113.99"}
    answered = []
    for i in range(AUTH_LIMIT * 2 + 2):
        node = node_a if i % 2 == 0 else node_b
        answered.append(requests.get(f"{node}/auth/login", headers=headers, timeout=10).status_code)
    allowed = answered.index(429) if 429 in answered else len(answered)
    ok = allowed == AUTH_LIMIT and all(code == 429 for code in answered[allowed:])
    return f"{'ok  ' if ok else 'FAIL'} {allowed} sign-in pages answered across both nodes before 429 (limit {AUTH_LIMIT})"


RESULTS = re.compile(r'id="results-count"[^>]*><strong>([\d,]+)</strong>')


def _search_hits(node: str, q: str) -> tuple[int, str]:
    page = requests.get(f"{node}/search", params={"q": q}, timeout=10).text
    total = RESULTS.search(page)
    return (int(total.group(1).replace(",", "")) if total else -1), page


def check_catalog_change_across_nodes(node_a: str, node_b: str, operator_token: str) -> str:
    hits_before, _ = _search_hits(node_b, "zanzibar")
    offering = requests.get(f"{node_a}/api/offerings/", params={"q": "customer support"}, timeout=10,
                            headers={"Authorization": f"Bearer {operator_token}"}).json()
    items = offering.get("items") or offering.get("data") or offering
    target = next(o for o in items if o["slug"] == "customer-support-agent")
    changed = requests.patch(f"{node_a}/api/offerings/{target['id']}", timeout=10,
                             json={"summary": "Answers tickets in Zanzibar time, day and night."},
                             headers={"Authorization": f"Bearer {operator_token}"})
    hits_after, page = _search_hits(node_b, "zanzibar")
    ok = hits_before == 0 and changed.status_code == 200 and hits_after == 1 and "/p/customer-support-agent" in page
    return (f"{'ok  ' if ok else 'FAIL'} results for a new word on B: {hits_before} before, {hits_after} after the "
            f"summary was changed through A ({changed.status_code})")


# --- load --------------------------------------------------------------------------------------------

def run_locust(base_url: str, clients: int, seconds: int, fixtures: Path, out_prefix: Path) -> dict[str, float]:
    env = {**os.environ, "SCALEOUT_FIXTURES": str(fixtures)}
    with open(f"{out_prefix}.log", "w") as log:
        subprocess.run([str(BIN / "locust"), "-f", str(ROOT / "bench" / "scaleout_locust.py"), "--headless",
                        "-u", str(clients), "-r", str(max(1, clients // 4)), "-t", f"{seconds}s", "--host", base_url,
                        "--csv", str(out_prefix), "--only-summary", "--loglevel", "WARNING"],
                       env=env, check=False, stdout=log, stderr=subprocess.STDOUT)
    if not Path(f"{out_prefix}_stats.csv").exists():
        raise RuntimeError(f"Locust wrote no figures; see {out_prefix}.log")
    with open(f"{out_prefix}_stats.csv") as f:
        total = next(row for row in csv.DictReader(f) if row["Name"] == "Aggregated")
    return {"rps": float(total["Requests/s"]), "p50": float(total["50%"]), "p95": float(total["95%"]),
            "p99": float(total["99%"]), "requests": int(total["Request Count"]),
            "failures": int(total["Failure Count"])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="64,128", help="comma-separated numbers of simulated buyers")
    parser.add_argument("--seconds", type=int, default=20, help="length of each load run")
    args = parser.parse_args()
    levels = [int(n) for n in args.clients.split(",")]
    if shutil.which("locust", path=str(BIN)) is None:
        raise SystemExit("locust is needed: .venv/bin/python -m pip install -e '.[bench]'")

    work = Path(tempfile.mkdtemp(prefix="scaleout-"))
    pg, redis, processes = start_postgres(), start_redis(), []
    failed = False
    try:
        env = app_env(pg["DATABASE_URL"], redis["TEST_REDIS_URL"], secrets.token_urlsafe(32))
        fixtures_path = work / "fixtures.json"
        fixtures = prepare(env, max(levels), fixtures_path)
        a, b, p1, p2 = free_port(), free_port(), free_port(), free_port()
        processes += [start_gunicorn(env, a, work / "node-a.log"), start_gunicorn(env, b, work / "node-b.log"),
                      start_runner(env, work / "runner.log")]
        node_a, node_b = f"http://127.0.0.1:{a}", f"http://127.0.0.1:{b}"
        for node in (node_a, node_b):
            wait_for(f"{node}/api/health/ready")
        processes.append(start_nginx(work, a, b, p1, p2))
        wait_for(f"http://127.0.0.1:{p2}/api/health/live")

        print("Two nodes behave as one:")
        for line in (check_session_across_nodes(node_a, node_b, fixtures["buyers"][0]),
                     check_rate_limit_across_nodes(node_a, node_b),
                     check_catalog_change_across_nodes(node_a, node_b, fixtures["operator_token"])):
            print("  " + line)
            failed |= line.startswith("FAIL")
        time.sleep(61)  # the rate-limit check's minute passes before the load signs anyone in

        print(f"\nLoad: browse, search, sign-in, account pages and runs; {args.seconds} s per run; "
              f"{os.cpu_count()} CPUs shared by the load, nginx, both nodes and PostgreSQL")
        print(f"{'clients':>8} {'nodes':>5} {'req/s':>8} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'requests':>9} {'failed':>7}")
        for clients in levels:
            for nodes, port in ((1, p1), (2, p2)):
                figures = run_locust(f"http://127.0.0.1:{port}", clients, args.seconds, fixtures_path,
                                     work / f"locust-{clients}-{nodes}")
                failed |= figures["failures"] > 0
                print(f"{clients:>8} {nodes:>5} {figures['rps']:>8.1f} {figures['p50']:>7.0f} {figures['p95']:>7.0f} "
                      f"{figures['p99']:>7.0f} {figures['requests']:>9} {figures['failures']:>7}")
        ledger = subprocess.run([str(BIN / "flask"), "--app", "app", "verify-ledger"], cwd=ROOT, env=env,
                                capture_output=True, text=True)
        print("\n" + (ledger.stdout or ledger.stderr).strip())
        failed |= ledger.returncode != 0
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()
        stop_redis(redis)
        stop_postgres(pg)
        print(f"(logs in {work})")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

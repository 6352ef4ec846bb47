"""Catalog pages benchmark: home, search, a faceted search and a product page against a bare Jinja page.

It builds a SQLite demo catalog in a temp dir, starts gunicorn (production mode and gunicorn.conf.py,
2 workers x 4 threads by default) serving `bench.pages_wsgi:app`, and loads it with `wrk` (Debian package `wrk`):
for each round, the bare page (/bench/bare: a separate Flask app in the same workers rendering 20
cards with Jinja) and then every catalog page, anonymous and as a signed-in buyer, one after the
other in the same run, each for --seconds at --connections. It prints requests/s, p50 and p99 per
page and its ratio to the bare page of the same round, and the server CPU each request cost (gunicorn
and its workers, from /proc) with its ratio: on a shared machine the CPU ratio is the steadier figure.

Targets: at least 0.5x the bare page for anonymous visitors, 0.25x for a signed-in buyer, and p99
under 100 ms at 32 connections. Exit status 1 if a page misses one or answers anything but 200.

    python bench/pages.py                        # 1 round of 5 s per page
    python bench/pages.py --rounds 2 --seconds 10 --connections 32
"""
from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent

from bench.billing import _children, _cpu_seconds, free_port  # noqa: E402

BARE = "/bench/bare/"
PAGES = [  # (label, path)
    ("home", "/"),
    ("search", "/search?q=support"),
    ("faceted search", "/search?category=agents&role=support&pricing=free-trial"),
    ("product", "/p/customer-support-agent"),
]
TARGETS = {"anonymous": 0.5, "signed-in": 0.25}
P99_LIMIT_MS = 100.0


def server_cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by gunicorn and its workers (from /proc): what a request costs the server,
    whatever else the machine is doing."""
    return sum(_cpu_seconds(p) for p in (pid, *_children(pid)))


# --- the database and a signed-in buyer's cookie -------------------------------------------------------


def prepare(database_url: str, secret_key: str) -> str:
    """Migrate, seed the demo catalog and users; return the Cookie header of a signed-in demo buyer."""
    from flask_migrate import upgrade

    from app import create_app
    from app.auth.session_user import SESSION_TOKEN_KEY, session_lifetimes, session_stamp
    from app.extensions import db
    from app.services import identity, seed

    app = create_app({"SECRET_KEY": secret_key, "SQLALCHEMY_DATABASE_URI": database_url, "APP_ENV": "development"})
    with app.app_context():
        upgrade()
        seed.seed_demo(db.session, password=secrets.token_urlsafe(16))
        buyer = identity.get_user_by_email(db.session, "buyer@example.com")
        idle, lifetime = session_lifetimes()
        token = identity.start_session(db.session, user_id=buyer.id, idle_timeout=idle, max_lifetime=lifetime)
        db.session.commit()
        value = app.session_interface.get_signing_serializer(app).dumps(
            {"_permanent": True, "user_id": buyer.id, "stamp": session_stamp(buyer), SESSION_TOKEN_KEY: token,
             "csrf_token": secrets.token_hex(20)}  # as a browser has it after its first page
        )
        cookie = f"{app.config['SESSION_COOKIE_NAME']}={value}"
        db.engine.dispose()
    return cookie


# --- gunicorn ---------------------------------------------------------------------------------------------


class Gunicorn:
    """gunicorn serving bench.pages_wsgi:app on a free loopback port; stopped by its own PID."""

    def __init__(self, *, database_url: str, secret_key: str, workers: int, threads: int, log: Path) -> None:
        self.port = free_port()
        self.log = log  # the app's access log (JSON lines in production) goes here, not to the terminal
        # the production settings (gunicorn.conf.py: gthread, JSON access log, Prometheus files), with
        # worker recycling off: at these rates GUNICORN_MAX_REQUESTS would restart workers every few seconds
        self.config = f"gunicorn.conf.py, {workers} workers x {threads} threads, no recycling"
        self.command = [str(BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), "--chdir", str(ROOT),
                        "-b", f"127.0.0.1:{self.port}", "bench.pages_wsgi:app"]
        self.env = {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": secret_key, "APP_ENV": "production",
                    "COMMERCE_BACKEND": "local", "WEB_CONCURRENCY": str(workers), "GUNICORN_THREADS": str(threads),
                    "GUNICORN_MAX_REQUESTS": "0", "PROMETHEUS_MULTIPROC_DIR": str(log.parent / "metrics")}
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "Gunicorn":
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 240  # a busy machine imports the app slowly
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("gunicorn exited during start-up")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/health", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.3)
        self.__exit__()
        raise RuntimeError("gunicorn did not answer /api/health within 240 s")

    def __exit__(self, *exc) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# --- checks and load ----------------------------------------------------------------------------------------


def check_page(port: int, path: str, cookie: str | None) -> None:
    """The page answers 200 with what its visitor should see (the buyer's menu, or the sign-in link)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Cookie": cookie} if cookie else {})
    with urllib.request.urlopen(request, timeout=30) as answer:
        html = answer.read().decode()
        if answer.status != 200:
            raise RuntimeError(f"{path} answered {answer.status}")
    if path == BARE:
        expected = "Offering number 19"
    else:
        expected = "Sign out" if cookie else "Sign in"
    if expected not in html:
        raise RuntimeError(f"{path} ({'signed in' if cookie else 'anonymous'}) does not show {expected!r}")


@dataclass
class Slice:
    rate: float
    p50_ms: float
    p99_ms: float
    bad: int
    cpu_ms: float = 0.0  # server CPU per request


@dataclass
class Series:
    slices: list[Slice] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    cpu_ratios: list[float] = field(default_factory=list)  # bare page's CPU per request / this page's


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(number) * _UNITS[unit]


def run_wrk(port: int, path: str, cookie: str | None, *, seconds: int, connections: int, threads: int,
            server_pid: int | None = None) -> Slice:
    cpu_before = server_cpu_seconds(server_pid) if server_pid else 0.0
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    if cookie:
        command += ["-H", f"Cookie: {cookie}"]
    output = subprocess.run([*command, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True,
                            check=True, timeout=seconds + 60).stdout
    if "Requests/sec" not in output or not re.search(r"^\s+99%", output, re.M):
        raise RuntimeError(f"wrk gave no figures for {path}:\n{output}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1))
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1))
    bad = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output))
    bad += sum(int(n) for n in re.findall(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                                          output)[0]) if "Socket errors" in output else 0
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    cpu_ms = 1000 * (server_cpu_seconds(server_pid) - cpu_before) / requests if server_pid and requests else 0.0
    return Slice(rate=rate, p50_ms=p50, p99_ms=p99, bad=bad, cpu_ms=cpu_ms)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--seconds", type=int, default=5, help="per page and round")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of load before each measured slice")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker (gthread)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2

    workdir = Path(tempfile.mkdtemp(prefix="pages-bench-"))
    database_url = f"sqlite:///{workdir / 'bench.db'}"
    secret_key = secrets.token_hex(32)
    try:
        cookie = prepare(database_url, secret_key)
        with Gunicorn(database_url=database_url, secret_key=secret_key, workers=args.workers,
                      threads=args.threads, log=workdir / "gunicorn.log") as server:
            print(f"gunicorn ({server.config}); production mode; SQLite demo catalog; {os.cpu_count()} CPU(s); "
                  f"wrk -t{args.wrk_threads} -c{args.connections}, {args.seconds} s per page, {args.rounds} round(s)")
            visitors = {"anonymous": None, "signed-in": cookie}
            for path in [BARE, *(p for _, p in PAGES)]:
                for visitor_cookie in visitors.values():
                    check_page(server.port, path, visitor_cookie)
            results: dict[tuple[str, str], Series] = {}
            load = {"seconds": args.seconds, "connections": args.connections, "threads": args.wrk_threads,
                    "server_pid": server.process.pid}
            for _ in range(args.rounds):
                for visitor, visitor_cookie in visitors.items():
                    # the bare page right before this visitor's pages: ratios within moments of each other
                    run_wrk(server.port, BARE, None, **{**load, "seconds": args.warmup})
                    bare = run_wrk(server.port, BARE, None, **load)
                    results.setdefault(("bare page", visitor), Series()).slices.append(bare)
                    for label, path in PAGES:
                        run_wrk(server.port, path, visitor_cookie, **{**load, "seconds": args.warmup})
                        measured = run_wrk(server.port, path, visitor_cookie, **load)
                        series = results.setdefault((label, visitor), Series())
                        series.slices.append(measured)
                        series.ratios.append(measured.rate / bare.rate if bare.rate else 0.0)
                        series.cpu_ratios.append(bare.cpu_ms / measured.cpu_ms if measured.cpu_ms else 0.0)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    failures = []
    print(f"\n{'page':<16} {'visitor':<10} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'x bare':>7} "
          f"{'CPU ms/req':>10} {'x bare CPU':>10}  target (req/s ratio, p99)")
    for (label, visitor), series in results.items():
        rate = statistics.mean(s.rate for s in series.slices)
        p50 = statistics.median(s.p50_ms for s in series.slices)
        p99 = max(s.p99_ms for s in series.slices)
        cpu = statistics.mean(s.cpu_ms for s in series.slices)
        bad = sum(s.bad for s in series.slices)
        line = f"{label:<16} {visitor:<10} {rate:>7.0f} {p50:>7.1f} {p99:>7.1f}"
        if series.ratios:
            ratio, cpu_ratio = statistics.mean(series.ratios), statistics.mean(series.cpu_ratios)
            target = TARGETS[visitor]
            verdict = "ok" if ratio >= target and p99 < P99_LIMIT_MS and not bad else "MISSED"
            if verdict != "ok":
                failures.append(f"{label} ({visitor})")
            print(f"{line} {ratio:>7.2f} {cpu:>10.2f} {cpu_ratio:>10.2f}  >= {target}x, < {P99_LIMIT_MS:.0f} ms: "
                  f"{verdict}")
        else:
            print(f"{line} {'1.00':>7} {cpu:>10.2f} {'1.00':>10}")
        if bad:
            print(f"  {bad} answers were not 2xx/3xx or failed")
            failures.append(f"{label} ({visitor}): {bad} bad answers")
    if failures:
        print("\nmissed: " + "; ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

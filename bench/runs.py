"""Run gateway overhead: what a run through the gateway adds over calling the runtime directly.

    .venv/bin/python bench/runs.py                          # 1 and 16 clients, 4 s slices, 2 rounds
    .venv/bin/python bench/runs.py --clients 1,16 --seconds 8 --rounds 3 --workers 2
    .venv/bin/python bench/runs.py --langflow-url http://127.0.0.1:7860 --flow my-echo   # a real Langflow

In one run it starts a throw-away PostgreSQL (scripts/pg-up.sh), a runtime stub in a process of its own
(a tiny HTTP server speaking the Langflow run contract, `POST /api/v1/run/<flow>` with `x-api-key`, plain
JSON or the `?stream=true` event stream, answering at once; or a real Langflow on this machine with
`--langflow-url`, `--langflow-key` and `--flow`), gunicorn serving the app (`bench.billing_wsgi:app`, the
real app; gevent workers as in production) with LANGFLOW_URL pointing at the runtime, and a runner
(`flask --app app worker --queue runs`). Each client has its own organization, funded wallet, instance of a
Langflow offering and API key. For each number of clients it alternates, slice by slice, between:

- runtime, direct:  POST /api/v1/run/<flow> on the runtime, as the Langflow adapter sends it (the floor);
- gateway:          POST /api/instances/<id>/runs with X-API-Key and `Prefer: wait=30` (API key auth,
                    rate limit, entitlements, limits, hold, the job queue, the runner with the real
                    Langflow adapter, settle), answered with the finished run;

and prints p50/p95 of each and the difference, the overhead added per run, against the targets
(p50 <= 8 ms, p95 <= 15 ms), and the CPU each part used per run, with the least time a run can take at
that many clients on this machine's cores for that CPU (every client keeps one run in flight, so a
run takes at least clients x CPU per run / cores, whatever the code does). Then streaming: time to the first
token from the runtime directly and through the gateway (`"stream": true`, Accept: text/event-stream).
Afterwards it checks that the ledger verifies, no hold is left active, every run succeeded and was
charged, and no request failed, and prints where a run's time went by the database's records (waiting
in the queue, in the runner). Exit status 1 if a check fails.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.billing import (  # noqa: E402
    Connection, CpuMeter, Gunicorn, _children, _cpu_seconds, free_port, start_postgres, stop_postgres,
)

STUB_KEY = "bench-runtime-key"
FLOW = "echo"
INPUT = "How do I reset my password?"
TARGET_P50_MS, TARGET_P95_MS = 8.0, 15.0
CREDITS = 1_000_000_000


# --- the runtime stub (its own process) ---------------------------------------------------------------


def _run_result(text: str, session_id: str) -> dict:
    message = {"text": text, "sender": "Machine", "sender_name": "AI", "session_id": session_id,
               "properties": {"usage": None}}
    return {"session_id": session_id, "outputs": [{"inputs": {"input_value": text}, "outputs": [{
        "results": {"message": message}, "outputs": {"message": {"message": text, "type": "text"}},
        "component_id": "ChatOutput-bench", "token_usage": None}]}]}


class StubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Langflow's server does
    disable_nagle_algorithm = True  # headers and body are two writes: no delayed-ACK wait between them

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
        if self.headers.get("x-api-key") != STUB_KEY or not self.path.startswith(f"/api/v1/run/{FLOW}"):
            data = b'{"detail": "not found"}'
            self.send_response(404)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        text, session_id = body.get("input_value") or "", body.get("session_id") or FLOW
        result = _run_result(text, session_id)
        if "stream=true" not in self.path:
            data = json.dumps(result).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        events = [("add_message", {"text": text, "sender": "User"})] + [
            ("token", {"chunk": word + " ", "id": "m1"}) for word in text.split()
        ] + [("end", {"result": result})]
        for kind, data in events:
            piece = (json.dumps({"event": kind, "data": data}) + "\n\n").encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")


class StubServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that went away at the end of a slice
            super().handle_error(request, client_address)


def serve_stub(port: int) -> None:
    server = StubServer(("127.0.0.1", port), StubHandler)
    server.daemon_threads = True
    server.serve_forever(poll_interval=0.05)


class Stub:
    """The stub in a child process on a free loopback port; stopped by its own PID."""

    def __enter__(self) -> "Stub":
        self.port = free_port()
        self.process = subprocess.Popen([sys.executable, __file__, "--serve-stub", str(self.port)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                http.client.HTTPConnection("127.0.0.1", self.port, timeout=1).connect()
                return self
            except OSError:
                time.sleep(0.1)
        self.__exit__()
        raise RuntimeError("the runtime stub did not start")

    def __exit__(self, *exc) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


# --- the database --------------------------------------------------------------------------------------


@dataclass
class Client:
    instance_id: int
    secret: str


def prepare_database(database_url: str, clients: int, flow: str = FLOW) -> list[Client]:
    """Migrate, seed the demo catalog, turn one offering's version into a Langflow flow (the stub's echo)
    and make one funded organization, instance (enterprise plan: no run limit) and API key per client."""
    from flask_migrate import upgrade
    from sqlalchemy import select

    from app import create_app
    from app.extensions import db
    from app.models import Offering
    from app.services import billing, identity, instances, keys, seed

    app = create_app({"SECRET_KEY": secrets.token_hex(32), "SQLALCHEMY_DATABASE_URI": database_url,
                      "APP_ENV": "development"})
    made = []
    with app.app_context():
        upgrade()
        seed.seed_demo(db.session, password=secrets.token_urlsafe(16))
        offering = db.session.scalar(select(Offering).where(Offering.slug == "customer-support-agent"))
        offering.current_version.runtime_kind, offering.current_version.runtime_ref = "langflow", flow
        plan = next(p for p in offering.plans if p.tier == "enterprise")
        owner = identity.get_user_by_email(db.session, "buyer@example.com")
        for n in range(clients):
            org = identity.create_organization(db.session, name=f"Bench runs {n}", owner=owner)
            billing.grant_credits(db.session, wallet=billing.wallet_for_organization(db.session, org.id),
                                  amount=CREDITS, origin="purchase", reference="bench credits")
            instance = instances.create_instance(db.session, organization=org, plan=plan, created_by=owner)
            _, secret = keys.create_api_key(db.session, instance=instance, actor=owner, name=f"bench {n}")
            made.append(Client(instance.id, secret))
        db.session.commit()
        db.engine.dispose()
    return made


def check_invariants(database_url: str) -> tuple[list[str], dict[str, int]]:
    from sqlalchemy import create_engine, func, select
    from sqlalchemy.orm import Session

    from app.models import Hold, Organization, Run, Wallet
    from app.services import billing

    engine = create_engine(database_url)
    with Session(engine) as session:
        problems = billing.verify_ledger(session)
        active = session.scalar(select(func.count()).select_from(Hold).where(Hold.status == "active"))
        if active:
            problems.append(f"{active} hold(s) still active")
        unfinished = session.scalar(select(func.count()).select_from(Run).where(Run.status != "succeeded"))
        if unfinished:
            problems.append(f"{unfinished} run(s) did not succeed")
        uncharged = session.scalar(select(func.count()).select_from(Run).where(Run.credits <= 0))
        if uncharged:
            problems.append(f"{uncharged} run(s) were not charged")
        charged = session.scalar(select(func.coalesce(func.sum(Run.credits), 0)))
        spent = session.scalar(select(func.coalesce(func.sum(CREDITS - Wallet.balance), 0))
                               .join(Organization, Organization.id == Wallet.organization_id)
                               .where(Organization.name.like("Bench runs %")))
        if charged != spent:
            problems.append(f"runs were charged {charged} credits but the wallets lost {spent}")
        figures = {"runs": session.scalar(select(func.count()).select_from(Run)), "credits charged": charged}
        # where a run's time goes, by the database's records: from the request's transaction to a runner
        # taking it (queue), and from there to its settled end (runner)
        for name, start, end in (("queue p50 ms", Run.created_at, Run.started_at),
                                 ("runner p50 ms", Run.started_at, Run.finished_at)):
            spans = sorted((e - s).total_seconds() * 1000 for s, e in session.execute(select(start, end)).all()
                           if s is not None and e is not None)
            if spans:
                figures[name] = f"{spans[len(spans) // 2]:.1f}"
    engine.dispose()
    return problems, figures


# --- load ----------------------------------------------------------------------------------------------


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    started: int = 0  # every request sent, also outside the measured window (for CPU per run)

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else float("nan")


async def load(port: int, requests: list[tuple[bytes, bytes, bytes]], seconds: float, warmup: float,
               ok: tuple[int, ...], result: Result) -> None:
    """One keep-alive connection per (headers, path, body) in `requests`, each sending it in a loop;
    only requests that end inside the window after `warmup` count."""
    start = time.perf_counter()
    window = (start + warmup, start + warmup + seconds)

    async def client(headers: bytes, path: bytes, body: bytes) -> None:
        connection = Connection(port, headers)
        try:
            while time.perf_counter() < window[1]:
                began = time.perf_counter()
                result.started += 1
                status, answer = await connection.request(b"POST", path, body)
                ended = time.perf_counter()
                if window[0] <= ended <= window[1]:
                    result.latencies.append(ended - began)
                    if status not in ok:
                        result.failures.append(f"{status}: {answer[:200]!r}")
        finally:
            await connection.close()

    await asyncio.gather(*(client(*r) for r in requests))


@dataclass
class Target:
    """The runtime the gateway calls: the stub, or a real Langflow (--langflow-url)."""

    port: int
    key: str
    flow: str
    description: str


def direct_requests(target: Target, clients: list[Client], n: int) -> list[tuple[bytes, bytes, bytes]]:
    """What the Langflow adapter sends for one run (a session per client)."""
    return [(b"x-api-key: %s\r\naccept: application/json\r\n" % target.key.encode(),
             f"/api/v1/run/{target.flow}?stream=false".encode(),
             json.dumps({"input_value": INPUT, "input_type": "chat", "output_type": "chat", "tweaks": {},
                         "session_id": f"inst{c.instance_id}-bench"}).encode())
            for c in clients[:n]]


def gateway_requests(clients: list[Client], n: int) -> list[tuple[bytes, bytes, bytes]]:
    return [(b"X-API-Key: %s\r\nPrefer: wait=30\r\n" % c.secret.encode(),
             f"/api/instances/{c.instance_id}/runs".encode(),
             json.dumps({"input": INPUT, "session_id": "bench"}).encode())
            for c in clients[:n]]


def _tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its children."""
    return _cpu_seconds(pid) + sum(_cpu_seconds(child) for child in _children(pid))


# --- streaming: time to the first token -----------------------------------------------------------------


def first_token_ms(port: int, path: str, headers: dict, body: dict, marker: bytes) -> float | None:
    """Milliseconds from sending the request to reading `marker` (the first token) in the answer; None when
    the answer is not an event stream."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        began = time.perf_counter()
        connection.request("POST", path, json.dumps(body), {**headers, "content-type": "application/json"})
        response = connection.getresponse()
        if response.status not in (200, 201, 202) or "text/event-stream" not in (response.getheader("content-type") or ""):
            response.read()
            return None
        seen = b""
        while marker not in seen:
            chunk = response.read1(65536)
            if not chunk:
                return None
            seen += chunk
        elapsed = 1000 * (time.perf_counter() - began)
        response.read()
        return elapsed
    finally:
        connection.close()


def bench_streaming(target: Target, app_port: int, client: Client, samples: int) -> None:
    direct, gateway = [], []
    for _ in range(samples):
        ms = first_token_ms(target.port, f"/api/v1/run/{target.flow}?stream=true", {"x-api-key": target.key},
                            {"input_value": INPUT, "session_id": "bench-stream"}, b'"event": "token"')
        if ms is None:
            print("streaming:   skipped: the runtime's own stream sends no token events (a flow without a model "
                  "that streams)")
            return
        direct.append(ms)
        ms = first_token_ms(app_port, f"/api/instances/{client.instance_id}/runs",
                            {"X-API-Key": client.secret, "Accept": "text/event-stream"},
                            {"input": INPUT, "stream": True}, b"event: token")
        if ms is None:
            print("streaming:   skipped: the gateway does not stream runs yet (POST /api/instances/<id>/runs with "
                  "\"stream\": true did not answer text/event-stream)")
            return
        gateway.append(ms)
    p50 = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    added = p50(gateway) - p50(direct)
    print(f"streaming:   time to first token p50: runtime {p50(direct):6.2f} ms, gateway {p50(gateway):6.2f} ms, "
          f"added {added:6.2f} ms (target <= 5 ms: {'met' if added <= 5 else 'NOT met'})")


# --- main -----------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,16", help="comma-separated numbers of concurrent clients")
    parser.add_argument("--seconds", type=float, default=4.0, help="measured seconds per slice")
    parser.add_argument("--rounds", type=int, default=2, help="slices per variant, alternating")
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8, help="threads per worker with --worker-class gthread")
    parser.add_argument("--worker-class", default="gevent", choices=("gevent", "gthread"),
                        help="gunicorn's workers: gevent as in production (gunicorn.conf.py), or gthread")
    parser.add_argument("--stream-samples", type=int, default=30)
    parser.add_argument("--langflow-url", help="a real Langflow (http://127.0.0.1:PORT) instead of the stub")
    parser.add_argument("--langflow-key", default=os.environ.get("LANGFLOW_API_KEY", ""),
                        help="its API key (default: LANGFLOW_API_KEY)")
    parser.add_argument("--flow", default=FLOW, help="the flow's id or endpoint name on that Langflow")
    parser.add_argument("--serve-stub", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_stub:
        serve_stub(args.serve_stub)
        return 0
    counts = [int(c) for c in args.clients.split(",")]
    cores = len(os.sched_getaffinity(0))
    pg = start_postgres()
    ok = True
    try:
        clients = prepare_database(pg["DATABASE_URL"], max(counts), args.flow if args.langflow_url else FLOW)
        with (contextlib.nullcontext() if args.langflow_url else Stub()) as stub:
            if args.langflow_url:
                url = urlsplit(args.langflow_url)
                if url.hostname not in ("127.0.0.1", "localhost") or not url.port:
                    raise SystemExit("--langflow-url: a Langflow on this machine, http://127.0.0.1:PORT")
                target = Target(url.port, args.langflow_key, args.flow, f"a real Langflow, flow {args.flow}")
            else:
                target = Target(stub.port, STUB_KEY, FLOW, "runtime stub: Langflow run contract, answers at once")
            server = Gunicorn(database_url=pg["DATABASE_URL"], service_token=secrets.token_hex(16),
                              workers=args.workers, threads=args.threads)
            server.env.update({"LANGFLOW_URL": f"http://127.0.0.1:{target.port}", "LANGFLOW_API_KEY": target.key,
                               "LANGFLOW_TIMEOUT": "30", "RATE_LIMIT_API_KEY": "1000000 per minute",
                               "RATE_LIMIT_API": "1000000 per minute", "LOG_LEVEL": "warning",
                               # a connection per run in flight, as deploy/ sizes the runner's pool
                               "DATABASE_POOL_SIZE": str(max(counts) + 4)})
            if args.worker_class == "gevent":  # as production runs it: streams and waits cost a greenlet
                config = f"-w {args.workers} -k gevent --worker-connections 1000 --keep-alive 30 --backlog 2048"
                start = server.command.index(server.config.split()[0])
                server.command[start:start + len(server.config.split())] = config.split()
                server.config = config
            server.command[-1:-1] = ["--access-logfile", "/dev/null"]  # the measured path, not a line per run
            # the runner: runs are queued by the web process and executed by a worker on the `runs` queue
            runner = subprocess.Popen(
                [sys.executable, "-m", "flask", "--app", "app", "worker", "--queue", "runs",
                 "--concurrency", str(max(counts))], cwd=ROOT, env=server.env,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                with server:
                    print(f"gunicorn {server.config}; a runner with {max(counts)} threads; DATABASE_POOL_SIZE "
                          f"{server.env['DATABASE_POOL_SIZE']}; {target.description}")
                    print(f"{'clients':>7}  {'runtime p50':>11} {'p95':>7}  {'gateway p50':>11} {'p95':>7}  "
                          f"{'added p50':>9} {'p95':>7}   targets p50 <= {TARGET_P50_MS:g} ms, p95 <= {TARGET_P95_MS:g} ms")
                    meter = CpuMeter(server.process.pid, pg["PGDATA"])
                    cpu_lines = []
                    for n in counts:
                        direct, gateway = Result(), Result()
                        cpu = {"web": 0.0, "runner": 0.0, "PostgreSQL": 0.0}
                        runs_done = 0
                        for _ in range(args.rounds):
                            asyncio.run(load(target.port, direct_requests(target, clients, n), args.seconds, args.warmup,
                                             (200,), direct))
                            before, runner_before = meter.read(), _tree_cpu(runner.pid)
                            measured = Result()
                            asyncio.run(load(server.port, gateway_requests(clients, n), args.seconds, args.warmup,
                                             (200, 201), measured))
                            web, db = CpuMeter.used(before, meter.read())
                            cpu["web"] += web
                            cpu["PostgreSQL"] += db
                            cpu["runner"] += _tree_cpu(runner.pid) - runner_before
                            gateway.latencies += measured.latencies
                            gateway.failures += measured.failures
                            runs_done += measured.started
                        per_run = {name: 1000 * seconds / max(1, runs_done) for name, seconds in cpu.items()}
                        # n clients that each wait for their run keep n runs in flight; with C ms of CPU
                        # per run on `cores` cores a run cannot take less than n * C / cores (Little's law)
                        floor = n * sum(per_run.values()) / cores
                        cpu_lines.append(f"{n:>7}  " + ", ".join(f"{name} {ms:.1f} ms" for name, ms in per_run.items())
                                         + f"; at {n} client{'s' if n != 1 else ''} on {cores} cores a run takes at least {floor:.1f} ms")
                        added50 = gateway.percentile(.5) - direct.percentile(.5)
                        added95 = gateway.percentile(.95) - direct.percentile(.95)
                        met = added50 <= TARGET_P50_MS and added95 <= TARGET_P95_MS
                        print(f"{n:>7}  {direct.percentile(.5):>8.2f} ms {direct.percentile(.95):>7.2f}  "
                              f"{gateway.percentile(.5):>8.2f} ms {gateway.percentile(.95):>7.2f}  "
                              f"{added50:>6.2f} ms {added95:>7.2f}   {'met' if met else 'NOT met'}   "
                              f"({len(direct.latencies)} direct, {len(gateway.latencies)} gateway runs, "
                              f"{len(gateway.latencies) / (args.seconds * args.rounds):.0f} gateway runs/s)")
                        for failure in (direct.failures + gateway.failures)[:5]:
                            print("  FAILED:", failure)
                        ok = ok and not direct.failures and not gateway.failures
                    print(f"CPU per gateway run (whole slices, warm-up included; {cores} cores give "
                          f"{1000 * cores:,} ms per second):")
                    for line in cpu_lines:
                        print(line)
                    bench_streaming(target, server.port, clients[0], args.stream_samples)
            finally:
                runner.terminate()
                runner.wait(10)
        problems, figures = check_invariants(pg["DATABASE_URL"])
        print("after:", ", ".join(f"{k} {v}" for k, v in figures.items()))
        for problem in problems:
            print("  FAILED:", problem)
        ok = ok and not problems
    finally:
        stop_postgres(pg)
    print("checks:", "all passed" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

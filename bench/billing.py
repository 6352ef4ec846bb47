"""Billing benchmark: credit holds over HTTP on gunicorn and PostgreSQL, against two floors in the same run.

    .venv/bin/python bench/billing.py                      # 16, 32 and 64 clients, 12 s per variant
    .venv/bin/python bench/billing.py --clients 16,64 --seconds 30 --workers 3 --threads 4 --diagnose

It starts a throw-away PostgreSQL (scripts/pg-up.sh) and gunicorn serving `bench.billing_wsgi:app`, seeds
one wallet and instance per client plus one hot wallet, and for each number of concurrent clients measures:

- billing, spread:  authorize + settle pairs over HTTP (POST /api/billing/authorize, then /settle with
                    the hold it got), the gateway service token, keep-alive connections, each client
                    on its own wallet;
- billing, hot:     the same, every client on one wallet (all of them queue on one row);
- floor, bare:      GET /bench/pk/<id> on the same gunicorn and app: one primary-key SELECT
                    (the most any route of this app can do here);
- floor, pgbench:   the SQL the two billing requests send, statement for statement, as pgbench
                    transactions on the same database (the most the database can do), spread and hot;
- with --diagnose:  the same billing services behind bench-only minimal routes (bench/billing_wsgi.py),
                    to tell the cost of the services from the cost of the route around them.

The variants run in interleaved slices (--rounds), so a change in the machine's background load hits
them alike. Rates are HTTP requests per second (a pair is two; pgbench pairs are doubled to compare),
with the server CPU each request cost (gunicorn workers and PostgreSQL backends, from /proc), which
stays meaningful on a busy machine. Afterwards it checks the invariants: every wallet equals the fold
of its ledger (verify_ledger), nothing is negative, no hold is active past its TTL, no request failed.
Exit status 1 if any is broken. Target: billing requests/s at least 0.5 of the bare route.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent

TTL_SECONDS = 300
CREDITS_PER_WALLET = 1_000_000_000


# --- processes: PostgreSQL, gunicorn, pgbench -------------------------------------------------------


def start_postgres() -> dict[str, str]:
    out = subprocess.run(["bash", str(ROOT / "scripts" / "pg-up.sh")], env={**os.environ, "PGDB": "bench"},
                         check=True, capture_output=True, text=True).stdout
    found = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    found["DATABASE_URL"] = found.pop("TEST_DATABASE_URL")
    return found


def stop_postgres(pg: dict[str, str]) -> None:
    subprocess.run(["bash", str(ROOT / "scripts" / "pg-down.sh")],
                   env={**os.environ, "PGDATA": pg["PGDATA"], "PGBIN": pg["PGBIN"]}, check=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds used by the app server (gunicorn and its workers) and by the database (the postmaster's
    children), read from /proc: how much work a request costs, whatever else the machine is doing."""

    def __init__(self, gunicorn_pid: int, pgdata: str) -> None:
        self.gunicorn_pid = gunicorn_pid
        try:
            self.postmaster_pid = int(Path(pgdata, "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            self.postmaster_pid = None

    def read(self) -> dict[str, dict[int, float]]:
        app = [self.gunicorn_pid, *_children(self.gunicorn_pid)]
        db = _children(self.postmaster_pid) if self.postmaster_pid else []
        return {"app": {pid: _cpu_seconds(pid) for pid in app}, "db": {pid: _cpu_seconds(pid) for pid in db}}

    @staticmethod
    def used(before, after) -> tuple[float, float]:
        def delta(kind):
            return sum(cpu - before[kind].get(pid, 0.0) for pid, cpu in after[kind].items())
        return delta("app"), delta("db")


class Gunicorn:
    """gunicorn serving bench.billing_wsgi:app on a free loopback port; stopped by its own PID."""

    def __init__(self, *, database_url: str, service_token: str, workers: int, threads: int) -> None:
        self.port = free_port()
        self.config = f"-w {workers} -k gthread --threads {threads} --keep-alive 30 --backlog 2048"
        self.command = [str(BIN / "gunicorn"), "--chdir", str(ROOT), "-b", f"127.0.0.1:{self.port}",
                        *self.config.split(), "--log-level", "warning", "bench.billing_wsgi:app"]
        self.env = {**os.environ, "DATABASE_URL": database_url, "GATEWAY_SERVICE_TOKEN": service_token,
                    "SECRET_KEY": secrets.token_hex(32), "APP_ENV": "production"}
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "Gunicorn":
        self.process = subprocess.Popen(self.command, env=self.env)
        deadline = time.monotonic() + 240  # a busy machine imports the app slowly
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("gunicorn exited during start-up")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"GET /api/health HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                    if s.recv(64).startswith(b"HTTP/1.1 200"):
                        return self
            except OSError:
                pass
            time.sleep(0.2)
        self.__exit__()  # __exit__ is not called when __enter__ raises: stop it here
        raise RuntimeError("gunicorn did not answer /api/health within 240 s")

    def __exit__(self, *exc) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# --- the database: schema, seed, checks ---------------------------------------------------------------


@dataclass
class Fixture:
    orgs: list[int]
    wallets: list[int]
    instances: list[int]
    hot: tuple[int, int, int]  # org, wallet, instance


def prepare_database(database_url: str, spread: int) -> Fixture:
    """Migrate, seed the demo catalog, and make `spread` + 1 organizations, each with a funded wallet and
    one instance, created in order so their ids are consecutive (pgbench picks them by arithmetic)."""
    from flask_migrate import upgrade
    from sqlalchemy import select

    from app import create_app
    from app.extensions import db
    from app.models import Plan
    from app.services import billing, identity, instances, seed

    app = create_app({"SECRET_KEY": secrets.token_hex(32), "SQLALCHEMY_DATABASE_URI": database_url,
                      "APP_ENV": "development"})
    with app.app_context():
        upgrade()
        seed.seed_demo(db.session, password=secrets.token_urlsafe(16))
        plan = db.session.scalars(select(Plan).order_by(Plan.id)).first()
        owner = identity.get_user_by_email(db.session, "buyer@example.com")
        made = []
        for n in range(spread + 1):
            org = identity.create_organization(db.session, name=f"Bench {n}", owner=owner)
            wallet = billing.wallet_for_organization(db.session, org.id)
            made.append((org, wallet))
        for org, wallet in made:
            billing.grant_credits(db.session, wallet=wallet, amount=CREDITS_PER_WALLET, origin="purchase",
                                  reference="bench credits")
        rows = []
        for org, wallet in made:
            instance = instances.create_instance(db.session, organization=org, plan=plan, created_by=owner)
            rows.append((org.id, wallet.id, instance.id))
        db.session.commit()
        db.engine.dispose()
    orgs, wallets, insts = (list(column) for column in zip(*rows))
    for ids in (orgs, wallets, insts):
        if ids != list(range(ids[0], ids[0] + len(ids))):
            raise RuntimeError("bench rows did not get consecutive ids")
    return Fixture(orgs=orgs[:spread], wallets=wallets[:spread], instances=insts[:spread], hot=rows[spread])


def check_invariants(database_url: str) -> tuple[list[str], dict[str, int]]:
    from sqlalchemy import create_engine, func, select
    from sqlalchemy.orm import Session

    from app.models import Hold, LedgerEntry, Wallet, utcnow
    from app.services import billing

    engine = create_engine(database_url)
    with Session(engine) as session:
        problems = billing.verify_ledger(session)
        now = utcnow()
        stale = session.scalar(select(func.count()).select_from(Hold)
                               .where(Hold.status == "active", Hold.expires_at <= now))
        if stale:
            problems.append(f"{stale} hold(s) still active past their TTL")
        negative = session.scalar(select(func.count()).select_from(Wallet).where(Wallet.balance - Wallet.held < 0))
        if negative:
            problems.append(f"{negative} wallet(s) with negative available credits")
        figures = {
            "holds": session.scalar(select(func.count()).select_from(Hold)),
            "active holds": session.scalar(select(func.count()).select_from(Hold).where(Hold.status == "active")),
            "ledger entries": session.scalar(select(func.count()).select_from(LedgerEntry)),
            "wallets": session.scalar(select(func.count()).select_from(Wallet)),
        }
    engine.dispose()
    return problems, figures


# --- HTTP load ----------------------------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection with just enough parsing for these JSON answers."""

    def __init__(self, port: int, auth: bytes) -> None:
        self.port, self.auth = port, auth
        self.reader = self.writer = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    async def request(self, method: bytes, path: bytes, body: bytes | None = None) -> tuple[int, bytes]:
        for attempt in (1, 2):  # a connection the server closed while idle is reopened once
            if self.writer is None:
                await self.open()
            head = b"%s %s HTTP/1.1\r\nHost: bench\r\n%s" % (method, path, self.auth)
            if body is not None:
                head += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
            self.writer.write(head + b"\r\n" + (body or b""))
            line = await self.reader.readline()
            if line:
                break
            await self.close()
            if attempt == 2:
                raise ConnectionError("the server closed the connection")
        status = int(line.split(b" ", 2)[1])
        length, keep = 0, True
        while True:
            header = await self.reader.readline()
            if header in (b"\r\n", b"\n", b""):
                break
            name, _, value = header.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                keep = False
        data = await self.reader.readexactly(length) if length else b""
        if not keep:
            await self.close()
        return status, data


@dataclass
class LoadResult:
    requests: int = 0
    seconds: float = 0.0
    statuses: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    client_cpu: float = 0.0
    app_cpu: float = 0.0  # server CPU seconds over the whole slice (warm-up included) and its requests
    db_cpu: float = 0.0
    all_requests: int = 0

    def add(self, other: "LoadResult") -> None:
        self.requests += other.requests
        self.seconds += other.seconds
        self.statuses.update(other.statuses)
        self.latencies.extend(other.latencies)
        self.client_cpu += other.client_cpu
        self.app_cpu += other.app_cpu
        self.db_cpu += other.db_cpu
        self.all_requests += other.all_requests

    def cpu_ms(self) -> tuple[float, float]:
        """Server CPU milliseconds per request: (app, database)."""
        if not self.all_requests:
            return 0.0, 0.0
        return 1000 * self.app_cpu / self.all_requests, 1000 * self.db_cpu / self.all_requests

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000


async def run_load(port: int, auth: bytes, clients: int, seconds: float, warmup: float, make_loop) -> LoadResult:
    """`clients` connections each running make_loop(index)(connection, record, running) until the time is up;
    only requests that finish inside the measured window count."""
    result = LoadResult()
    start = time.perf_counter()
    window = (start + warmup, start + warmup + seconds)

    def record(status: int, began: float) -> None:
        ended = time.perf_counter()
        result.all_requests += 1
        if window[0] <= ended <= window[1]:
            result.requests += 1
            result.statuses[status] += 1
            result.latencies.append(ended - began)

    def running() -> bool:
        return time.perf_counter() < window[1]

    async def client(index: int) -> None:
        connection = Connection(port, auth)
        loop = make_loop(index)
        try:
            while running():
                await loop(connection, record, running)
        finally:
            await connection.close()

    cpu = time.process_time()
    await asyncio.gather(*(client(i) for i in range(clients)))
    result.client_cpu = time.process_time() - cpu
    result.seconds = seconds
    return result


def bare_loop(wallet_ids: list[int]):
    def make(index: int):
        path = b"/bench/pk/%d" % wallet_ids[index % len(wallet_ids)]

        async def loop(connection, record, running):
            began = time.perf_counter()
            status, _ = await connection.request(b"GET", path)
            record(status, began)
        return loop
    return make


def billing_loop(instance_for, run_label: str, seed: int, prefix: bytes = b"/api/billing"):
    """authorize, then settle the hold it returned with a random part of it (a pair always completes)."""
    def make(index: int):
        instance_id = instance_for(index)
        rng = random.Random(seed * 1000 + index)
        counter = iter(range(10**9))

        async def loop(connection, record, running):
            key = f"{run_label}-{index}-{next(counter)}"
            amount = rng.randint(1, 20)
            began = time.perf_counter()
            status, body = await connection.request(b"POST", prefix + b"/authorize", json.dumps(
                {"instance_id": instance_id, "amount": amount, "idempotency_key": key,
                 "ttl_seconds": TTL_SECONDS}).encode())
            record(status, began)
            if status != 201:
                return
            hold_id = json.loads(body)["id"]
            began = time.perf_counter()
            status, _ = await connection.request(b"POST", prefix + b"/settle", json.dumps(
                {"hold_id": hold_id, "amount": rng.randint(0, amount), "idempotency_key": key + "-s"}).encode())
            record(status, began)
        return loop
    return make


def _unique(make_loop, round_number: int):
    """The same client loops with idempotency keys of their own for each round."""
    def make(index: int):
        return make_loop(index + 100_000 * round_number)
    return make


# --- pgbench: the same SQL ----------------------------------------------------------------------------

# What the two routes send (traced with SQLAlchemy's cursor events), statement for statement.
# authorize: one statement finds the instance's wallet, reserves on it, inserts the hold, appends its
# ledger entry and its audit event; then COMMIT. settle: one statement closes the hold, moves the
# wallet, appends the entry, draws the credits from the first grant (when the locked grants are the
# current ones) and appends the audit event; then COMMIT. The routes answer from the rows returned.
PGBENCH_PAIR = r"""
\set k :client_id % :spread
\set org :org0 + :k
\set wallet :wallet0 + :k
\set instance :instance0 + :k
\set amount random(1, 20)
\set used random(0, :amount)
BEGIN;
WITH w AS (UPDATE wallet SET held = held + :amount::int WHERE organization_id = (SELECT organization_id FROM instance WHERE id = :instance::int AND (CAST(NULL AS integer) IS NULL OR organization_id = NULL)) AND balance - held - (SELECT coalesce(sum(remaining), 0) FROM credit_grant WHERE credit_grant.wallet_id = wallet.id AND expires_at <= now()) >= :amount::int RETURNING id, organization_id, balance, held), h AS (INSERT INTO hold (wallet_id, instance_id, amount, captured, status, idempotency_key, expires_at, created_at) SELECT w.id, :instance::int, :amount::int, 0, 'active', 'pgb-' || txid_current(), now() + interval '300 seconds', now() FROM w ON CONFLICT (idempotency_key, wallet_id) DO NOTHING RETURNING *), entry AS (INSERT INTO ledger_entry (wallet_id, kind, amount, held_delta, balance_after, hold_id, instance_id, reference, idempotency_key) SELECT w.id, 'hold', 0, :amount::int, w.balance, h.id, :instance::int, 'hold pgbench', 'hold:' || h.id FROM w JOIN h ON true), event AS (INSERT INTO audit_event (actor_user_id, actor_label, action, target_type, target_id, organization_id, data_json) SELECT NULL, 'gateway', 'billing.hold_authorized', 'hold', CAST(h.id AS varchar), w.organization_id, concat('{"amount": ', h.amount, ', "captured": ', h.captured, ', "instance_id": ', coalesce(CAST(h.instance_id AS varchar), 'null'), '}') FROM h JOIN w ON w.id = h.wallet_id) SELECT w.id AS wallet__id, w.balance AS wallet__balance, w.held AS wallet__held, h.id AS hold_id, h.wallet_id, h.instance_id, h.amount AS hold_amount, h.captured AS hold_captured, h.status, h.idempotency_key, h.settle_key, h.expires_at, h.created_at, h.closed_at FROM w LEFT JOIN h ON true \gset
COMMIT;
BEGIN;
WITH h AS (UPDATE hold SET status = 'settled', settle_key = 'pgs-' || :hold_id, closed_at = now(), captured = LEAST(amount, :used::int) WHERE id = :hold_id::int AND status = 'active' AND expires_at > now() AND NOT EXISTS (SELECT 1 FROM hold AS other WHERE other.settle_key = 'pgs-' || :hold_id AND other.wallet_id = hold.wallet_id) RETURNING *), w AS (UPDATE wallet SET balance = wallet.balance - h.captured, held = wallet.held - h.amount FROM h WHERE wallet.id = h.wallet_id RETURNING wallet.*), entry AS (INSERT INTO ledger_entry (wallet_id, kind, amount, held_delta, balance_after, hold_id, instance_id, reference, idempotency_key) SELECT h.wallet_id, 'capture', -h.captured, -h.amount, w.balance, h.id, h.instance_id, concat('settled ', h.captured, ' of ', h.amount, CASE WHEN h.amount < :used::int THEN ' (usage capped at the hold)' ELSE '' END), 'close:' || h.id FROM h JOIN w ON w.id = h.wallet_id), fresh AS (SELECT credit_grant.id, credit_grant.remaining, credit_grant.expires_at FROM credit_grant JOIN w ON credit_grant.wallet_id = w.id WHERE credit_grant.remaining > 0 FOR NO KEY UPDATE OF credit_grant), drawn AS (UPDATE credit_grant SET remaining = credit_grant.remaining - h.captured FROM h JOIN w ON w.id = h.wallet_id WHERE h.captured > 0 AND credit_grant.remaining >= h.captured AND credit_grant.id = (SELECT fresh.id FROM fresh WHERE fresh.expires_at IS NULL OR fresh.expires_at > h.created_at ORDER BY fresh.expires_at ASC NULLS LAST, fresh.id LIMIT 1) AND w.balance + h.captured = (SELECT sum(fresh.remaining) FROM fresh) RETURNING credit_grant.id), event AS (INSERT INTO audit_event (actor_user_id, actor_label, action, target_type, target_id, organization_id, data_json) SELECT NULL, 'gateway', 'billing.hold_settled', 'hold', CAST(h.id AS varchar), w.organization_id, concat('{"amount": ', h.amount, ', "captured": ', h.captured, ', "instance_id": ', coalesce(CAST(h.instance_id AS varchar), 'null'), '}') FROM h JOIN w ON w.id = h.wallet_id) SELECT h.id, h.wallet_id, h.instance_id, h.amount, h.captured, h.status, h.idempotency_key, h.settle_key, h.expires_at, h.created_at, h.closed_at, w.id AS wallet__id, w.organization_id AS wallet__organization_id, w.balance AS wallet__balance, w.held AS wallet__held, w.low_balance_threshold AS wallet__low_balance_threshold, w.created_at AS wallet__created_at, EXISTS (SELECT 1 FROM drawn) AS drawn FROM h JOIN w ON w.id = h.wallet_id;
COMMIT;
"""


def run_pgbench(pg: dict[str, str], script: Path, *, clients: int, seconds: float, org0: int, wallet0: int,
                instance0: int, spread: int) -> tuple[float, str]:
    """Pairs per second (excluding connection time) and any complaint pgbench printed."""
    command = [
        str(Path(pg["PGBIN"]) / "pgbench"), "-h", "127.0.0.1", "-p", pg["PGPORT"], "-U", "postgres", "-n",
        "-M", "prepared", "-c", str(clients), "-j", str(min(clients, 4)), "-T", str(int(seconds)),
        "-f", str(script), "-D", f"org0={org0}", "-D", f"wallet0={wallet0}", "-D", f"instance0={instance0}",
        "-D", f"spread={spread}", "bench",
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    found = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", done.stdout)
    complaint = ""
    if done.returncode != 0 or not found:
        complaint = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["pgbench failed"]
        complaint = complaint[0]
    elif "aborted" in done.stderr:
        complaint = next(line for line in done.stderr.splitlines() if "aborted" in line)
    return (float(found.group(1)) if found else 0.0), complaint


# --- the run ------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="16,32,64", help="comma-separated concurrent clients")
    parser.add_argument("--seconds", type=float, default=12.0, help="measured seconds per variant and client count")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved slices the seconds are split into")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each slice")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker (gthread)")
    parser.add_argument("--diagnose", action="store_true",
                        help="also run the billing services behind bench-only minimal routes (see billing_wsgi.py)")
    args = parser.parse_args()
    levels = [int(n) for n in args.clients.split(",") if n.strip()]
    spread = max(levels)
    token = secrets.token_urlsafe(32)
    auth = b"Authorization: Bearer %s\r\n" % token.encode()

    if shutil.which("initdb") is None and not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        print("PostgreSQL is not installed (initdb not found).", file=sys.stderr)
        return 2
    pg = start_postgres()
    workdir = Path(tempfile.mkdtemp(prefix="bench-billing-"))
    rows, diagnostics = [], []
    try:
        fixture = prepare_database(pg["DATABASE_URL"], spread)
        script = workdir / "pair.sql"
        script.write_text(PGBENCH_PAIR)
        with Gunicorn(database_url=pg["DATABASE_URL"], service_token=token, workers=args.workers,
                      threads=args.threads) as server:
            meter = CpuMeter(server.process.pid, pg["PGDATA"])
            print(f"gunicorn {server.config}; PostgreSQL on 127.0.0.1:{pg['PGPORT']}; {os.cpu_count()} CPU(s); "
                  f"load average {os.getloadavg()[0]:.1f}")
            print(f"{args.seconds:g} s measured per variant, in {args.rounds} interleaved slices with "
                  f"{args.warmup:g} s warm-up each\n")
            for clients in levels:
                spread_instance = lambda i: fixture.instances[i % len(fixture.instances)]  # noqa: E731
                variants = {
                    "bare": bare_loop(fixture.wallets),
                    "spread": billing_loop(spread_instance, f"s{clients}", 1),
                    "hot": billing_loop(lambda i: fixture.hot[2], f"h{clients}", 2),
                }
                if args.diagnose:
                    variants["minimal spread"] = billing_loop(spread_instance, f"ms{clients}", 3, b"/bench/billing")
                    variants["minimal hot"] = billing_loop(lambda i: fixture.hot[2], f"mh{clients}", 4,
                                                           b"/bench/billing")
                runs = {name: LoadResult() for name in variants}
                pgbench = {"spread": [0.0, 0.0], "hot": [0.0, 0.0]}  # pairs, seconds
                notes = []
                # the machine is shared: interleave short slices of every variant, so that a change of
                # background load hits them all alike and the ratios stay fair
                for round_number in range(args.rounds):
                    slice_seconds = args.seconds / args.rounds
                    for name, make_loop in variants.items():
                        before = meter.read()
                        result = asyncio.run(run_load(server.port, auth, clients, slice_seconds, args.warmup,
                                                      _unique(make_loop, round_number)))
                        result.app_cpu, result.db_cpu = meter.used(before, meter.read())
                        runs[name].add(result)
                    for name, (org0, wallet0, instance0, spread) in {
                        "spread": (fixture.orgs[0], fixture.wallets[0], fixture.instances[0], clients),
                        "hot": (fixture.hot[0], fixture.hot[1], fixture.hot[2], 1),
                    }.items():
                        tps, note = run_pgbench(pg, script, clients=clients, seconds=slice_seconds, org0=org0,
                                                wallet0=wallet0, instance0=instance0, spread=spread)
                        pgbench[name][0] += tps * slice_seconds
                        pgbench[name][1] += slice_seconds
                        if note:
                            notes.append(note)
                pg_spread, pg_hot = (pairs / seconds for pairs, seconds in pgbench.values())
                bare, spread_run, hot_run = runs["bare"], runs["spread"], runs["hot"]
                rows.append((clients, bare, spread_run, hot_run, pg_spread, pg_hot, "; ".join(notes)))
                if args.diagnose:
                    diagnostics.append((clients, runs["minimal spread"], runs["minimal hot"], bare))
                print(f"{clients} clients: bare {bare.rate:.0f} req/s, billing spread {spread_run.rate:.0f} req/s, "
                      f"hot {hot_run.rate:.0f} req/s, pgbench spread {2 * pg_spread:.0f} / hot {2 * pg_hot:.0f} "
                      f"req-eq/s", flush=True)
        problems, figures = check_invariants(pg["DATABASE_URL"])
    finally:
        stop_postgres(pg)
        shutil.rmtree(workdir, ignore_errors=True)

    print()
    print("clients  route            req/s   p50 ms   p99 ms  non-2xx   server CPU ms/request (app + db)  "
          "client CPU s")
    for clients, bare, spread_run, hot_run, _, _, _ in rows:
        for label, run in (("bare pk SELECT", bare), ("billing spread", spread_run), ("billing hot", hot_run)):
            failures = {s: n for s, n in run.statuses.items() if not 200 <= s < 300}
            app_ms, db_ms = run.cpu_ms()
            print(f"{clients:>7}  {label:<15} {run.rate:>6.0f} {run.percentile(0.5):>8.1f} {run.percentile(0.99):>8.1f}"
                  f"  {str(failures or '-'):<9} {app_ms:>7.2f} + {db_ms:>5.2f} = {app_ms + db_ms:>6.2f}"
                  f"            {run.client_cpu:>5.1f}")
    print()
    print("clients  pgbench spread   pgbench hot   (SQL of one authorize + settle pair; x2 = requests)")
    for clients, _, _, _, pg_spread, pg_hot, note in rows:
        print(f"{clients:>7}  {pg_spread:>8.0f} pairs/s {pg_hot:>7.0f} pairs/s  {note}")
    print()
    print("clients  billing/bare (spread, hot)   billing/pgbench (spread, hot)   target billing/bare >= 0.5")
    verdicts = []
    for clients, bare, spread_run, hot_run, pg_spread, pg_hot, _ in rows:
        ratios = (spread_run.rate / bare.rate if bare.rate else 0, hot_run.rate / bare.rate if bare.rate else 0)
        floors = (spread_run.rate / (2 * pg_spread) if pg_spread else 0, hot_run.rate / (2 * pg_hot) if pg_hot else 0)
        met = min(ratios) >= 0.5
        verdicts.append(met)
        print(f"{clients:>7}  {ratios[0]:>6.2f} {ratios[1]:>6.2f}                  {floors[0]:>6.2f} {floors[1]:>6.2f}"
              f"                   {'met' if met else 'NOT met'}")
    if diagnostics:
        print()
        print("diagnostic: the same services behind minimal routes (no schema validation, no audit event,")
        print("answer built before the commit)")
        print("clients  minimal spread req/s  minimal hot req/s   /bare (spread, hot)   server CPU ms/request")
        for clients, spread_run, hot_run, bare in diagnostics:
            print(f"{clients:>7}  {spread_run.rate:>20.0f} {hot_run.rate:>18.0f}   {spread_run.rate / bare.rate:>6.2f} "
                  f"{hot_run.rate / bare.rate:>6.2f}          {sum(spread_run.cpu_ms()):>6.2f}")
    failed = sum(n for row in rows for run in row[1:4] for s, n in run.statuses.items() if not 200 <= s < 300)
    failed += sum(n for row in diagnostics for run in row[1:3] for s, n in run.statuses.items() if not 200 <= s < 300)
    if failed:
        problems.append(f"{failed} HTTP request(s) did not succeed")
    print()
    print("after the run: " + ", ".join(f"{n} {what}" for what, n in figures.items()))
    if problems:
        print("INVARIANTS BROKEN:")
        for problem in problems:
            print("  " + problem)
        return 1
    print("invariants: ledger = balance for every wallet, nothing negative, no hold active past its TTL, "
          "no failed request")
    return 0


if __name__ == "__main__":
    sys.exit(main())

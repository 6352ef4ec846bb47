"""Run benchmark: the built-in agents alone, then whole gateway runs on a throw-away PostgreSQL.

    .venv/bin/python bench/runs.py                     # 8 clients, 6 s
    .venv/bin/python bench/runs.py --clients 4,16 --seconds 10

1. Agents: calls per second of each built-in agent on a typical input (no database).
2. Gateway: POST /api/instances/<id>/runs through the WSGI app (no HTTP server, so the figure is the
   app and the database: entitlements, hold, agent, settle, two commits), each client on its own
   instance and wallet, with an instance API key. Prints runs/s and latency percentiles.

Afterwards it checks that every wallet still equals the fold of its ledger (verify_ledger), that
each wallet lost exactly the credits its runs were charged, and that no hold is left active.
Exit status 1 if any check fails.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SAMPLES = {
    "support-faq": "How can I reset my password?",
    "kb-search": "hotel price per night approval",
    "sales-email": "name: Ada Lovelace\ncompany: Analytical Engines\nrole: VP Operations\npain: manual invoices",
    "summarize": "We reviewed the roadmap. We decided to ship in May.\nMaria will send the budget by Friday.\n" * 5,
    "triage": "I was charged twice for my subscription!! Please refund ASAP.",
    "invoice-extract": "ACME Ltd\nInvoice No: INV-1\nInvoice date: 2026-03-01\nNet 30\nSubtotal: $100.00\n"
                       "Tax (10%): $10.00\nTotal: $110.00",
    "lead-score": "role: VP of Sales\nemployees: 250\nbudget: $40k\ntimeline: this quarter\ndemo_requested: yes",
    "seo-brief": ("Invoice automation helps small businesses get paid faster. Manual invoice processing takes "
                  "hours every week and causes errors. ") * 6,
    "onboarding": "name: Jamie\nrole: Engineer\nstart_date: 2026-03-02\nmanager: Priya\nbuddy: Tom",
    "csv-clean": "name,email\n" + "\n".join(f" Person {i} ,P{i}@Example.com" for i in range(50)),
}


def bench_agents(seconds: float) -> None:
    from app.adapters.runtime import Document, FaqEntry, RunContext, get_runtime
    from app.services.demo_data import OFFERINGS

    context = RunContext(
        faq=tuple(FaqEntry(e["q"], e["a"]) for e in OFFERINGS[0]["faq"]),
        documents=tuple(Document(f"Policy {i}", "Hotels up to 150 EUR per night are approved. " * 20)
                        for i in range(50)),
    )
    runtime = get_runtime("builtin")
    print(f"{'agent':<16} {'calls/s':>9} {'ms/call':>9}")
    for ref, text in SAMPLES.items():
        runtime.run(ref, text, "bench", context)  # warm up: imports and caches
        calls, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            runtime.run(ref, text, "bench", context)
            calls += 1
        elapsed = time.perf_counter() - started
        print(f"{ref:<16} {calls / elapsed:>9.0f} {1000 * elapsed / calls:>9.2f}")


def bench_gateway(database_url: str, clients: int, seconds: float) -> bool:
    from sqlalchemy import func, select

    from app import create_app
    from app.extensions import db
    from app.models import Hold, Offering, Run, Wallet
    from app.services import billing, identity, instances, keys, seed

    app = create_app({"TESTING": True, "SECRET_KEY": "bench-secret-key-0123456789", "SQLALCHEMY_DATABASE_URI": database_url,
                      "SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": clients + 2, "max_overflow": 4}})
    setups = []
    with app.app_context():
        from flask_migrate import upgrade

        upgrade()
        seed.seed_demo(db.session, password="bench-password-123")
        offering = db.session.scalar(select(Offering).where(Offering.slug == "customer-support-agent"))
        plan = offering.plans[2]  # enterprise: no run limit
        run_tag = str(int(time.time()))
        for n in range(clients):
            user = identity.create_user(db.session, email=f"bench{n}-{run_tag}@example.test", name=f"Bench {n}",
                                        password="bench-password-123")
            org = identity.current_organization(db.session, user)
            instance = instances.create_instance(db.session, organization=org, plan=plan, created_by=user)
            billing.grant_credits(db.session, wallet=billing.wallet_for_organization(db.session, org.id),
                                  amount=10_000_000, origin="purchase", reference="bench")
            _, secret = keys.create_api_key(db.session, instance=instance, actor=user, name="bench")
            setups.append((instance.id, org.id, secret))
        db.session.commit()

    latencies: list[list[float]] = [[] for _ in range(clients)]
    failures: list[str] = []
    stop = threading.Event()
    barrier = threading.Barrier(clients + 1)

    def client(n: int) -> None:
        instance_id, _, secret = setups[n]
        http = app.test_client()
        barrier.wait()
        while not stop.is_set():
            started = time.perf_counter()
            response = http.post(f"/api/instances/{instance_id}/runs", json={"input": SAMPLES["support-faq"]},
                                 headers={"X-API-Key": secret})
            if response.status_code != 201:
                failures.append(f"{response.status_code}: {response.get_data(as_text=True)[:200]}")
            latencies[n].append(time.perf_counter() - started)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    every = sorted(x for per in latencies for x in per)
    runs = len(every)
    p = lambda q: 1000 * every[min(len(every) - 1, int(q * len(every)))]  # noqa: E731
    print(f"gateway, {clients:>3} clients: {runs / elapsed:>7.1f} runs/s   p50 {p(.5):6.1f} ms   "
          f"p95 {p(.95):6.1f} ms   p99 {p(.99):6.1f} ms   ({runs} runs, {len(failures)} failed)")

    ok = not failures
    with app.app_context():
        problems = billing.verify_ledger(db.session)
        for instance_id, org_id, _ in setups:
            charged = db.session.scalar(select(func.coalesce(func.sum(Run.credits), 0)).where(Run.instance_id == instance_id))
            wallet = db.session.scalar(select(Wallet).where(Wallet.organization_id == org_id))
            if wallet.balance != 10_000_000 - charged or wallet.held != 0:
                problems.append(f"wallet of instance {instance_id}: balance {wallet.balance}, held {wallet.held}, "
                                f"runs charged {charged}")
        active = db.session.scalar(select(func.count()).select_from(Hold).where(Hold.status == "active"))
        if active:
            problems.append(f"{active} hold(s) still active")
        db.session.remove()
        db.engine.dispose()
    for problem in problems + failures[:5]:
        print("  FAILED:", problem)
    return ok and not problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="8", help="comma-separated numbers of concurrent clients")
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    bench_agents(min(args.seconds, 2.0))
    out = subprocess.run(["bash", str(ROOT / "scripts" / "pg-up.sh")], env={**os.environ, "PGDB": "bench_runs"},
                         check=True, capture_output=True, text=True).stdout
    env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    ok = True
    try:
        for clients in (int(c) for c in args.clients.split(",")):
            ok = bench_gateway(env["TEST_DATABASE_URL"], clients, args.seconds) and ok
    finally:
        subprocess.run(["bash", str(ROOT / "scripts" / "pg-down.sh")], env={**os.environ, "PGDATA": env["PGDATA"]},
                       check=False, capture_output=True)
    print("checks:", "all passed" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

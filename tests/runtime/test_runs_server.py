"""A real server on PostgreSQL (gunicorn with the production settings, gevent workers) and a run
worker (`flask worker --queue runs`), with a frozen runtime: 32 runs in flight and 32 open event
streams must not slow the health check or the home page; cancel releases every hold; the ledger
verifies."""
from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import select, text

from app.models import Hold, HoldStatus, Run
from app.services import keys
from app.services.billing.ledger import verify_ledger
from tests.conftest import PG_URL
from tests.runtime import fake_langflow
from tests.runtime.test_gateway import make_instance, set_balance, wallet_of

ROOT = Path(__file__).resolve().parents[2]
IN_FLIGHT = 32


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def timed_get(url: str) -> float:
    started = time.monotonic()
    response = requests.get(url, timeout=30)
    assert response.status_code == 200, (url, response.status_code)
    return time.monotonic() - started


def follow_stream(url: str, key: str, opened: threading.Semaphore, ends: list) -> None:
    """Read a run's event stream to its end; record the final event's kind and code."""
    with requests.get(url, headers={"X-API-Key": key, "Accept": "text/event-stream"}, stream=True,
                      timeout=(5, 120)) as response:
        assert response.status_code == 200
        opened.release()
        kind = None
        for line in response.iter_lines(decode_unicode=True):
            if line.startswith("event: "):
                kind = line[len("event: "):]
            elif line.startswith("data: ") and kind in ("done", "error"):
                ends.append((kind, json.loads(line[len("data: "):]).get("code")))
                return
    ends.append(("cut", None))


@pytest.mark.postgres_only
def test_32_runs_in_flight_and_32_open_streams_leave_the_pages_free(session, buyer, tmp_path):
    server, langflow = fake_langflow.start()
    instance = make_instance(session, buyer)
    instance.version.runtime_kind, instance.version.runtime_ref = "langflow", "frozen"
    instance.plan.max_concurrent_runs = instance.plan.max_concurrent_runs_per_wallet = 64  # 32 at once is allowed
    session.commit()
    set_balance(session, instance, 2000)  # 32 holds of 12
    _, key = keys.create_api_key(session, instance=instance, actor=buyer, name="load")
    session.commit()
    balance = wallet_of(session, instance).balance

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DATABASE_URL": PG_URL, "SECRET_KEY": "test-secret-key-123456-abcdefghijkl",
           "GUNICORN_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "1", "GUNICORN_WORKER_CLASS": "gevent",
           "LANGFLOW_URL": langflow.url, "LANGFLOW_API_KEY": fake_langflow.API_KEY, "LANGFLOW_TIMEOUT": "120",
           "RUN_TIMEOUT": "120", "RUN_LATE_WAIT": "1", "RATE_LIMITS_ENABLED": "false", "LOG_LEVEL": "warning",
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"), "DEMO_PASSWORD": "demo-password-2026"}
    env.pop("TEST_DATABASE_URL", None)
    logs, worker_logs = tmp_path / "server.log", tmp_path / "worker.log"
    with open(logs, "w") as log, open(worker_logs, "w") as worker_log:
        web = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "app:create_app()"],
                               cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        worker = subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "worker", "--queue", "runs",
                                   "--concurrency", "8"], cwd=ROOT, env=env, stdout=worker_log,
                                  stderr=subprocess.STDOUT)
    threads: list[threading.Thread] = []
    try:
        def up() -> bool:
            try:
                return requests.get(f"{base}/api/health", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_until(up, 90, f"the server to answer (log: {logs.read_text()[-2000:] if logs.exists() else ''})")
        timed_get(f"{base}/")  # warm the page's caches
        usual = {path: statistics.median(timed_get(f"{base}{path}") for _ in range(5)) for path in ("/api/health", "/")}

        run_ids = []
        for _ in range(IN_FLIGHT):
            response = requests.post(f"{base}/api/instances/{instance.id}/runs", json={"input": "hello"},
                                     headers={"X-API-Key": key}, timeout=30)
            assert response.status_code == 202, response.text
            run_ids.append(response.json()["id"])
        opened, ends = threading.Semaphore(0), []
        for run_id in run_ids:
            thread = threading.Thread(target=follow_stream, args=(f"{base}/api/runs/{run_id}/events", key, opened, ends),
                                      daemon=True)
            thread.start()
            threads.append(thread)
        for _ in run_ids:
            assert opened.acquire(timeout=60), "an event stream did not open"
        def jobs() -> list:
            rows = session.execute(text("SELECT queue_name, task_name, status, count(*) FROM procrastinate_jobs "
                                        "GROUP BY 1, 2, 3")).all()
            rows += session.execute(text("SELECT status, count(*) FROM run GROUP BY 1")).all()
            rows += session.execute(text("SELECT kind, count(*) FROM run_event GROUP BY 1")).all()
            rows += session.execute(text("SELECT state, wait_event, left(query, 80) FROM pg_stat_activity "
                                         "WHERE state <> 'idle' AND pid <> pg_backend_pid()")).all()
            session.commit()
            return rows

        try:
            wait_until(lambda: len(langflow.requests) >= 8, 60, "the runner to start runs on the frozen runtime")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; jobs: {jobs()}") from None
        session.expire_all()
        statuses = session.scalars(select(Run.status).where(Run.id.in_(run_ids))).all()
        session.commit()
        assert set(statuses) <= {"queued", "running"} and statuses.count("running") >= 8

        loaded = {path: max(timed_get(f"{base}{path}") for _ in range(5)) for path in ("/api/health", "/")}
        print(f"usual (median of 5): {usual}; with {IN_FLIGHT} runs in flight and {IN_FLIGHT} open streams "
              f"(slowest of 5): {loaded}")
        for path, seconds in loaded.items():
            # "usual" on a busy shared machine: a small multiple of the quiet time, and well under a second
            assert seconds < max(0.75, 4 * usual[path]), (path, seconds, usual[path])

        # cancel half (queued ones end at once, running ones are stopped by the runner); thaw the rest
        for run_id in run_ids[:IN_FLIGHT // 2]:
            response = requests.post(f"{base}/api/runs/{run_id}/cancel", headers={"X-API-Key": key}, timeout=30)
            assert response.status_code == 202, response.text
        wait_until(lambda: sum(1 for kind, code in ends if code == "run_cancelled") == IN_FLIGHT // 2, 60,
                   "cancelled runs to end their streams")
        langflow.release.set()
        for thread in threads:
            thread.join(timeout=120)
        assert len(ends) == IN_FLIGHT
        assert all(kind in ("done", "error") for kind, _ in ends), ends
        session.expire_all()
        runs = session.scalars(select(Run).where(Run.id.in_(run_ids))).all()
        by_status = {}
        for run in runs:
            by_status.setdefault(run.status, []).append(run)
        assert set(by_status) <= {"succeeded", "cancelled"}, {s: len(r) for s, r in by_status.items()}
        assert len(by_status.get("cancelled", [])) == IN_FLIGHT // 2
        for run in by_status["cancelled"]:
            assert run.credits == 0
            assert session.get(Hold, run.hold_id).status == HoldStatus.RELEASED.value
        charged = sum(run.credits for run in by_status.get("succeeded", []))
        wallet = wallet_of(session, instance)
        assert (wallet.balance, wallet.held) == (balance - charged, 0)
        assert verify_ledger(session) == []
    finally:
        langflow.release.set()
        print(logs.read_text()[-3000:], worker_logs.read_text()[-5000:])  # shown when the test fails
        for process in (worker, web):
            process.terminate()
        for process in (worker, web):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        server.shutdown()
        server.server_close()

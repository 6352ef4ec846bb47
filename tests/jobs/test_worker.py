"""`flask --app app worker` in real processes: it starts, runs the periodic tasks, and stops cleanly
on SIGINT and SIGTERM; two workers on PostgreSQL run each periodic task once per tick, never twice."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import create_engine, select, text

from app.extensions import db
from app.jobs import load_tasks
from app.models import PeriodicRun
from tests.conftest import ON_POSTGRES, ROOT


def _every_second() -> dict[str, str]:
    """Every periodic task ticking every second or two (settings for a worker's environment), so a
    few seconds hold several ticks of each; an hourly sweep would otherwise tick (or catch up on the
    last tick) only near the hour."""
    fast = {"expire-holds": "1", "expire-grants": "1"}
    return {spec.every_setting: fast.get(spec.name, "2") for spec in load_tasks().values() if spec.periodic}


EVERY_SECOND = _every_second()


class WorkerProcess:
    def __init__(self, db_url: str, *args: str, **env: str) -> None:
        environment = {k: v for k, v in os.environ.items() if not k.startswith(("JOB_EVERY_", "FLASK_"))}
        environment.update({"DATABASE_URL": db_url, "APP_ENV": "development", "COMMERCE_BACKEND": "local",
                            "PYTHONUNBUFFERED": "1", **env})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "app", "worker", *args], cwd=ROOT, env=environment,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, fragment: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(fragment in line for line in self.lines):
            assert self.process.poll() is None, "\n".join(self.lines)
            assert time.monotonic() < deadline, f"no {fragment!r} in:\n" + "\n".join(self.lines)
            time.sleep(0.1)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30) -> int:
        self.process.send_signal(signum)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self._reader.join(timeout=5)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _wait_for_run(app, task_name: str, timeout: float = 60) -> PeriodicRun:
    deadline = time.monotonic() + timeout
    while True:
        with app.app_context():
            run = db.session.get(PeriodicRun, task_name)
            db.session.remove()
        if run is not None:
            return run
        assert time.monotonic() < deadline, f"{task_name} never ran"
        time.sleep(0.2)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_the_worker_command_runs_the_periodic_tasks_and_stops_cleanly(app, db_url, expired_hold, signum):
    worker = WorkerProcess(db_url, **EVERY_SECOND)
    try:
        worker.wait_for("Worker started")
        run = _wait_for_run(app, "expire-holds")
        # on SQLite the same task functions run in this process, on procrastinate's in-memory connector
        assert (run.succeeded, run.summary) == (True, "Released 1 expired hold(s).")
        with app.app_context():
            assert expired_hold.status() == "expired"

        code = worker.stop(signum)
    finally:
        worker.kill()

    assert code == 0, "\n".join(worker.lines)
    assert worker.lines[-1].endswith("Worker stopped.")
    assert not any("Traceback" in line for line in worker.lines), "\n".join(worker.lines)
    if ON_POSTGRES:  # it left the database as a stopped worker: unregistered
        engine = create_engine(db_url)
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM procrastinate_workers")) == 0
        engine.dispose()


def test_the_worker_creates_its_ready_file_once_it_takes_jobs_and_a_stop_while_it_starts_is_clean(db_url, tmp_path):
    ready = tmp_path / "ready"
    worker = WorkerProcess(db_url, "--ready-file", str(ready))
    try:
        worker.wait_for("Worker started")
        code = worker.stop(signal.SIGINT)  # at once: most often before the worker handles signals itself
    finally:
        worker.kill()
    assert code == 0, "\n".join(worker.lines)
    assert worker.lines[-1].endswith("Worker stopped.")
    assert not any("Traceback" in line or "Aborted" in line for line in worker.lines), "\n".join(worker.lines)

    worker = WorkerProcess(db_url, "--ready-file", str(ready))
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert worker.process.poll() is None and time.monotonic() < deadline, "\n".join(worker.lines)
            time.sleep(0.05)
        worker.wait_for("Worker started", timeout=10)  # logged before the file was created
        assert worker.stop(signal.SIGTERM) == 0
    finally:
        worker.kill()


@pytest.mark.postgres_only
def test_a_stop_lets_the_running_run_finish_and_a_second_signal_changes_nothing(session, buyer, db_url):
    from app.models import Run
    from app.services import runs
    from tests.runtime import fake_langflow
    from tests.runtime.test_gateway import make_instance, set_balance

    server, langflow = fake_langflow.start()
    instance = make_instance(session, buyer)
    instance.version.runtime_kind, instance.version.runtime_ref = "langflow", "frozen"  # answers when released
    session.commit()
    set_balance(session, instance, 100)
    prepared = runs.start_run(session, instance=instance, input_text="hello", user=buyer)
    runs.queue_run(session, prepared=prepared)
    session.commit()

    worker = WorkerProcess(db_url, "--queue", "runs", LANGFLOW_URL=langflow.url, LANGFLOW_API_KEY=fake_langflow.API_KEY,
                           LANGFLOW_TIMEOUT="60", RUN_TIMEOUT="60")
    try:
        deadline = time.monotonic() + 60
        while not langflow.requests:  # the run is on the runtime
            assert worker.process.poll() is None and time.monotonic() < deadline, "\n".join(worker.lines)
            time.sleep(0.05)
        worker.process.send_signal(signal.SIGINT)
        worker.wait_for("stopping once the running jobs finish", timeout=10)
        worker.process.send_signal(signal.SIGTERM)  # what a second Ctrl-C or an impatient supervisor sends
        worker.wait_for("Already stopping", timeout=10)
        time.sleep(0.5)
        assert worker.process.poll() is None  # still finishing the run
        langflow.release.set()
        code = worker.process.wait(timeout=30)
    finally:
        langflow.release.set()
        worker.kill()
        server.shutdown()
        server.server_close()

    assert code == 0, "\n".join(worker.lines)
    assert worker.lines[-1].endswith("Worker stopped.")
    session.expire_all()
    run = session.get(Run, prepared.run_id)
    assert (run.status, run.output_text) == ("succeeded", "thawed: hello")


@pytest.mark.postgres_only
def test_two_workers_in_separate_processes_run_each_periodic_task_once_per_tick(app, db_url, expired_hold):
    engine = create_engine(db_url)
    workers = [WorkerProcess(db_url, **EVERY_SECOND), WorkerProcess(db_url, **EVERY_SECOND)]
    try:
        for worker in workers:
            worker.wait_for("Worker started")
        deadline = time.monotonic() + 60
        with engine.connect() as conn:
            while conn.scalar(text("SELECT count(*) FROM procrastinate_workers")) < 2:  # both are up
                assert time.monotonic() < deadline
                time.sleep(0.1)
        time.sleep(6)  # several ticks, every one of which both workers try to defer
        codes = [worker.stop() for worker in workers]
    finally:
        for worker in workers:
            worker.kill()

    assert codes == [0, 0], "\n\n".join("\n".join(w.lines) for w in workers)
    with engine.connect() as conn:
        per_tick = conn.execute(text(
            "SELECT task_name, args->>'timestamp' AS tick, count(*) AS jobs FROM procrastinate_jobs"
            " GROUP BY 1, 2 ORDER BY 1, 2")).all()
        statuses = set(conn.scalars(text("SELECT DISTINCT status::text FROM procrastinate_jobs")))
    engine.dispose()
    ticks: dict[str, int] = {}
    for task_name, tick, count in per_tick:
        assert count == 1, f"{task_name} ran {count} times for tick {tick}"
        ticks[task_name] = ticks.get(task_name, 0) + 1
    enabled = {spec.name for spec in load_tasks().values() if spec.enabled(app.config)}  # not Saleor's two
    assert enabled >= {"expire-holds", "expire-grants", "expire-trials", "fail-stale-runs", "purge-finished-jobs",
                       "retry-stalled-jobs", "send-mail", "trial-reminders", "low-balance-mails",
                       "purge-sessions"}
    assert not enabled & {"reconcile-orders", "sync-saleor"}
    assert set(ticks) == enabled
    assert ticks["expire-holds"] >= 3 and ticks["expire-grants"] >= 3
    assert statuses <= {"succeeded", "todo"}  # a tick deferred just before the stop may still wait
    with app.app_context():
        runs = {r.task_name: r.succeeded for r in db.session.scalars(select(PeriodicRun))}
        assert expired_hold.status() == "expired"
    assert runs == dict.fromkeys(ticks, True)


def test_make_run_starts_the_server_and_a_worker_and_ctrl_c_stops_both(db_url, tmp_path):
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("JOB_EVERY_", "FLASK_"))}
    environment.update({"DATABASE_URL": db_url, "APP_ENV": "development", "PORT": str(port),
                        "FLASK": f"{sys.executable} -m flask --app app", "PYTHONUNBUFFERED": "1"})
    log = tmp_path / "run.log"
    with log.open("w") as out:
        script = subprocess.Popen(["bash", "scripts/run-dev.sh"], cwd=ROOT, env=environment, stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while "Ctrl-C stops both" not in log.read_text():
            assert script.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=60).status == 200
        members = subprocess.run(["ps", "-o", "args=", "-g", str(script.pid)], capture_output=True, text=True).stdout
        assert "flask --app app worker" in members and "flask --app app run" in members

        os.killpg(script.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        code = script.wait(timeout=30)
    finally:
        if script.poll() is None:
            os.killpg(script.pid, signal.SIGKILL)
    time.sleep(0.5)

    assert code == 130
    assert subprocess.run(["ps", "-o", "pid=", "-g", str(script.pid)], capture_output=True, text=True).stdout == ""
    output = log.read_text()
    assert "Worker stopped." in output
    logins = output.index("Demo accounts (password: ")
    assert output.index("Worker started") < logins and output.index("Running on http://127.0.0.1") < logins

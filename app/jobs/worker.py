"""`flask --app app worker`: procrastinate's worker on PostgreSQL, its in-memory twin on SQLite."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import procrastinate
from flask import Flask

from app.jobs import engine

log = logging.getLogger("app.jobs")


def run_worker(flask_app: Flask, *, concurrency: int = 1, queues: list[str] | None = None,
               wait: bool = True, install_signal_handlers: bool = True, ready_file: str | None = None) -> None:
    """Run jobs until SIGINT or SIGTERM (or, with wait=False, until none is ready). A stop lets the
    running jobs finish, then returns. `ready_file` is created once the worker is about to take jobs,
    for a script that starts it and must not announce it before then."""
    _configure_logging(flask_app)
    uri = flask_app.config["SQLALCHEMY_DATABASE_URI"]
    on_postgres = uri.startswith("postgresql")
    if on_postgres:
        connector = procrastinate.PsycopgConnector(conninfo=engine.conninfo(uri))
        options = {}
    else:
        from procrastinate.testing import InMemoryConnector

        # SQLite: only the periodic sweeps run here (deferred jobs run in the process that deferred
        # them), queued in memory for this process alone
        connector = InMemoryConnector()
        options = {"listen_notify": False, "fetch_job_polling_interval": 1.0}
    pool_size = int(flask_app.config.get("DATABASE_POOL_SIZE") or 0)
    if on_postgres and pool_size < concurrency:
        # each job thread holds a connection while it runs: a smaller pool opens and closes overflow
        # connections all the time (a new PostgreSQL backend each), or makes threads wait for one
        log.warning("DATABASE_POOL_SIZE is %s but this worker runs %s jobs at once: set DATABASE_POOL_SIZE to at "
                    "least %s for it.", pool_size, concurrency, concurrency)
    worker_app = engine.build(flask_app, connector, periodic=True)
    periodic = sorted(task.task.name for task in worker_app.periodic_registry.periodic_tasks.values())
    log.info("Worker started on %s (%s); stop with Ctrl-C or SIGTERM.",
             "PostgreSQL" if on_postgres else "SQLite, periodic tasks only", ", ".join(periodic) or "no periodic tasks")
    try:
        _run(worker_app, concurrency, concurrency=concurrency, queues=queues, wait=wait, name="marketplace",
             install_signal_handlers=install_signal_handlers, ready_file=ready_file, **options)
    except KeyboardInterrupt:
        # Ctrl-C before the worker took over the signals: no job had started, so there is nothing
        # to finish
        pass
    log.info("Worker stopped.")


def _run(worker_app: procrastinate.App, threads: int, *, ready_file: str | None = None,
         install_signal_handlers: bool = True, **options) -> None:
    """procrastinate's run_worker, with two changes.

    A thread for each of `threads` jobs at once: our tasks are synchronous and run on the event
    loop's default executor, which otherwise has only min(32, CPUs + 4) threads (6 on two cores), so
    `--concurrency 16` would run 6 runs at once.

    SIGINT and SIGTERM are ours from the start: procrastinate handles them only once its loop runs, and
    a signal before that (while it connects and registers) would either be lost or interrupt it
    half-way. The first one stops the worker the way procrastinate does when cancelled (the running
    jobs finish, no new one starts); later ones are logged and change nothing."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(max_workers=threads + 4, thread_name_prefix="job"))
        stop = asyncio.Event()
        if install_signal_handlers:
            def on_signal(signum: int) -> None:
                if stop.is_set():
                    log.info("Already stopping: waiting for the running jobs to finish.")
                else:
                    log.info("%s: stopping once the running jobs finish.", signal.Signals(signum).name)
                stop.set()

            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, on_signal, signum)
        async with worker_app.open_async():
            if stop.is_set():
                return
            worker = asyncio.create_task(worker_app.run_worker_async(install_signal_handlers=False, **options))
            if ready_file:
                Path(ready_file).touch()
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait({worker, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if not worker.done():
                worker.cancel()  # procrastinate: a cancelled worker lets its running jobs finish
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
            else:
                worker.result()

    asyncio.run(main())


def _configure_logging(flask_app: Flask) -> None:
    """Our job log at INFO and procrastinate's at WARNING on stderr, unless logging is set up already;
    one JSON object per line where the web process writes JSON too (LOG_FORMAT)."""
    from app.observability import configure_json_logging, log_format

    root = logging.getLogger()
    if log_format(flask_app.config) == "json" and not flask_app.testing:
        configure_json_logging("warning")
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s worker %(levelname)s %(message)s", "%H:%M:%S"))
        root.addHandler(handler)
        root.setLevel(logging.WARNING)
    logging.getLogger("app.jobs").setLevel(logging.INFO)


def work_off(flask_app: Flask) -> None:
    """Run every job that is ready now on PostgreSQL, then return; no periodic task is deferred.
    For tests and one-off maintenance (a worker's job without its schedule)."""
    uri = flask_app.config["SQLALCHEMY_DATABASE_URI"]
    connector = procrastinate.PsycopgConnector(conninfo=engine.conninfo(uri))
    engine.build(flask_app, connector, periodic=False).run_worker(
        wait=False, listen_notify=False, install_signal_handlers=False, name="work-off")

"""The job registry: every task the job engine can run, and which of them are periodic sweeps.

A task is a plain function `func(session, **kwargs) -> str | None` (the string says what it did).
It runs in an app context with `db.session`, which the engine commits when the function returns and
rolls back when it raises. Tasks are deferred with `app.services.jobs.defer(session, "name", ...)`.

Registering a periodic sweep is one line in app/jobs/tasks.py (it also becomes `flask --app app <name>`):

    register_sweep("purge-sessions", identity.purge_expired_sessions, every=3600, says="Purged {} session(s).")

where the function takes the session and returns a count (or, without `says`, a sentence). Its
interval is read from the setting `JOB_EVERY_PURGE_SESSIONS` (seconds), with `every` as the default.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from procrastinate import RetryStrategy

# modules whose import registers tasks; add yours here
TASK_MODULES = ("app.jobs.tasks", "app.jobs.webhook_tasks")


@dataclass(frozen=True)
class TaskSpec:
    name: str
    func: Callable[..., Any]
    retry: RetryStrategy | None = None
    every: int | None = None  # seconds between ticks when periodic
    when: Callable[[Mapping[str, Any]], bool] | None = None  # periodic only when this says so
    command: bool = False  # registered as a CLI command of the same name
    queue: str = "default"  # procrastinate queue: a worker started with `--queues` serves only those
    background: bool = False  # SQLite: runs on the in-process pool after commit, not inline in the committer

    @property
    def periodic(self) -> bool:
        return self.every is not None

    @property
    def every_setting(self) -> str:
        return "JOB_EVERY_" + self.name.upper().replace("-", "_")

    def interval(self, config: Mapping[str, Any]) -> int:
        """Seconds between ticks: the `JOB_EVERY_<NAME>` setting, or the registered default."""
        raw = config.get(self.every_setting)
        seconds = int(raw) if raw not in (None, "") else self.every
        assert seconds is not None
        cron_for_interval(seconds, setting=self.every_setting)  # refuses an interval cron cannot keep
        return seconds

    def enabled(self, config: Mapping[str, Any]) -> bool:
        return self.periodic and (self.when is None or bool(self.when(config)))


TASKS: dict[str, TaskSpec] = {}


def task(name: str, *, retry: RetryStrategy | None = None, queue: str = "default",
         background: bool = False) -> Callable[[Callable], Callable]:
    """Register a one-off task (deferred by the code that needs it), on `queue`. With `background`,
    the SQLite engine runs it on its small thread pool instead of in the committing request."""

    def register(func: Callable) -> Callable:
        _add(TaskSpec(name=name, func=func, retry=retry, queue=queue, background=background))
        return func

    return register


def register_sweep(name: str, func: Callable[..., Any], *, every: int, says: str | None = None,
                   when: Callable[[Mapping[str, Any]], bool] | None = None, command: bool = True) -> TaskSpec:
    """Register an idempotent sweep that runs every `every` seconds (once per tick across all workers)
    and, unless `command=False`, as `flask --app app <name>`. With `says` (e.g. "Purged {} session(s)."),
    `func` returns a count and the sentence is made from it; `when(config)` limits where it runs."""
    if says is not None:
        func = _counted(func, says)
    spec = TaskSpec(name=name, func=func, every=every, when=when, command=command)
    _add(spec)
    return spec


def _counted(func: Callable[..., int], says: str) -> Callable[..., "Swept"]:
    def sweep(session: Any) -> Swept:
        count = func(session)
        return Swept(count, says.format(count))

    sweep.__doc__ = func.__doc__
    sweep.__wrapped__ = func  # type: ignore[attr-defined]
    return sweep


def _add(spec: TaskSpec) -> None:
    existing = TASKS.get(spec.name)
    if existing is not None and getattr(existing.func, "__wrapped__", existing.func) is not getattr(
            spec.func, "__wrapped__", spec.func):
        raise ValueError(f"A job task named {spec.name!r} is registered twice.")
    TASKS[spec.name] = spec


def load_tasks() -> dict[str, TaskSpec]:
    for module in TASK_MODULES:
        importlib.import_module(module)
    return TASKS


@dataclass(frozen=True)
class Swept:
    """What a sweep did: a count for commands to report, and the sentence that says it."""

    count: int
    sentence: str

    def __str__(self) -> str:
        return self.sentence


class IntervalError(ValueError):
    """An interval that a schedule of ticks on the clock cannot keep."""


def cron_for_interval(seconds: int, *, setting: str = "interval") -> str:
    """A cron line (seconds in the sixth column when needed) that ticks every `seconds`.

    Ticks are on the clock, so every worker agrees on them: the interval must divide a minute,
    an hour or a day evenly (e.g. 5, 30, 60, 300, 900, 3600, 21600, 86400).
    """
    if seconds <= 0:
        raise IntervalError(f"{setting} must be a positive number of seconds, not {seconds}.")
    if seconds < 60 and 60 % seconds == 0:
        return f"* * * * * */{seconds}"
    if seconds % 60 == 0 and seconds < 3600 and 3600 % seconds == 0:
        return f"*/{seconds // 60} * * * *"
    if seconds % 3600 == 0 and seconds <= 86400 and 86400 % seconds == 0:
        return f"0 */{seconds // 3600} * * *" if seconds < 86400 else "0 0 * * *"
    raise IntervalError(
        f"{setting}={seconds} does not divide a minute, an hour or a day evenly "
        "(e.g. 30, 60, 300, 900, 3600, 86400)."
    )

"""A run's event log and how followers learn that it grew.

Events are rows of `run_event` (run_id, seq, kind, data): `status` ({"status": ...}), `token`
({"text": ...}, batched by the runner), then exactly one `done` ({"run", "credits"}) or `error`
({"message", "code", "run"}), written in the same transaction as the run's final status. A
follower reads every event after the last `seq` it has, then waits for a nudge:

- PostgreSQL: the writer sends `NOTIFY run_events, '<run id>'` in its transaction (delivered on
  commit); one listening connection per process wakes the followers of that run.
- SQLite: there is no notification; followers look again every `SQLITE_POLL` seconds.

A follower never holds a database connection while it waits, so an open event stream costs a
sleeping greenlet (or thread), not a slot of the connection pool.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from app.models import RunEvent, utcnow

log = logging.getLogger(__name__)

CHANNEL = "run_events"
KINDS = ("status", "token", "done", "error")
FINAL_KINDS = frozenset({"done", "error"})
SQLITE_POLL = 0.1
# followers on PostgreSQL look again this often even without a nudge (a notification is lost only
# when the listening connection is; this bounds how late a follower can be then)
PG_SAFETY_POLL = 2.0


@dataclass(frozen=True)
class Event:
    seq: int
    kind: str
    data: dict[str, Any]

    @property
    def final(self) -> bool:
        return self.kind in FINAL_KINDS


def append_event(session: Session, *, run_id: int, kind: str, data: dict[str, Any]) -> Event:
    """Add the run's next event and nudge its followers (on commit). Flushes; the caller commits.

    Only the run's one writer at a time appends (the request that queued it, then its runner, or
    a cancel of a queued run that won the status change), so `max(seq) + 1` cannot collide; the
    primary key refuses it if it ever did."""
    if kind not in KINDS:
        raise ValueError(f"unknown run event kind {kind!r}")
    seq = (session.scalar(select(func.max(RunEvent.seq)).where(RunEvent.run_id == run_id)) or 0) + 1
    session.add(RunEvent(run_id=run_id, seq=seq, kind=kind, data=data, created_at=utcnow()))
    session.flush()
    notify(session, run_id)
    return Event(seq, kind, data)


def notify(session: Session, run_id: int) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": str(run_id)})


def events_after(session: Session, *, run_id: int, after: int = 0, limit: int = 500) -> list[Event]:
    rows = session.execute(
        select(RunEvent.seq, RunEvent.kind, RunEvent.data)
        .where(RunEvent.run_id == run_id, RunEvent.seq > after).order_by(RunEvent.seq).limit(limit)
    ).all()
    return [Event(seq, kind, data) for seq, kind, data in rows]


# --- following ---------------------------------------------------------------------------------


class _Listener:
    """One LISTEN connection per process and database; wakes the followers of a run it hears about."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self.condition = threading.Condition()
        self.versions: dict[int, int] = {}
        self.followers: dict[int, int] = {}
        self.thread = threading.Thread(target=self._listen, name="run-events-listener", daemon=True)
        self.thread.start()

    def _listen(self) -> None:
        import psycopg

        while True:
            try:
                with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    while True:
                        for note in connection.notifies(timeout=5.0):
                            self._wake(note.payload)
            except Exception as exc:  # a lost connection: followers fall back to their safety poll
                log.warning("run event listener lost its connection (%s); reconnecting", exc)
                time.sleep(1.0)

    def _wake(self, payload: str) -> None:
        try:
            run_id = int(payload)
        except ValueError:
            return
        with self.condition:
            if run_id in self.followers:
                self.versions[run_id] = self.versions.get(run_id, 0) + 1
                self.condition.notify_all()

    def wait(self, run_id: int, seen: int, timeout: float) -> int:
        with self.condition:
            self.condition.wait_for(lambda: self.versions.get(run_id, 0) != seen, timeout=timeout)
            return self.versions.get(run_id, 0)

    def version(self, run_id: int) -> int:
        with self.condition:
            return self.versions.get(run_id, 0)

    def follow(self, run_id: int) -> None:
        with self.condition:
            self.followers[run_id] = self.followers.get(run_id, 0) + 1

    def unfollow(self, run_id: int) -> None:
        with self.condition:
            left = self.followers.get(run_id, 1) - 1
            if left <= 0:
                self.followers.pop(run_id, None)
                self.versions.pop(run_id, None)
            else:
                self.followers[run_id] = left


_listeners: dict[str, _Listener] = {}
_listeners_lock = threading.Lock()


def _listener_for(database_uri: str) -> _Listener:
    from app.jobs.engine import conninfo

    with _listeners_lock:
        listener = _listeners.get(database_uri)
        if listener is None:
            listener = _listeners[database_uri] = _Listener(conninfo(database_uri))
        return listener


def follow(
    session: Session, *, run_id: int, after: int = 0, heartbeat: float = 15.0, until: float | None = None,
) -> Iterator[Event | None]:
    """Yield the run's events after `after`, as they are written, until its final event; yield None
    when `heartbeat` seconds passed without one (the caller sends a keep-alive), and return when
    `until` (a time.monotonic() deadline) passes. The session's connection is given back to the pool
    before every wait."""
    bind = session.get_bind()
    listener = _listener_for(bind.url.render_as_string(hide_password=False)) \
        if bind.dialect.name == "postgresql" else None
    if listener is not None:
        listener.follow(run_id)
    try:
        last, quiet_since = after, time.monotonic()
        while True:
            seen = listener.version(run_id) if listener is not None else 0
            events = events_after(session, run_id=run_id, after=last)
            session.commit()  # end the read: the connection goes back to the pool while we wait
            for event in events:
                last = event.seq
                yield event
                if event.final:
                    return
            now = time.monotonic()
            if events:
                quiet_since = now
                if len(events) >= 500:
                    continue
            elif now - quiet_since >= heartbeat:
                quiet_since = now
                yield None
            if until is not None and now >= until:
                return
            wait = min(heartbeat - (now - quiet_since), (until - now) if until is not None else heartbeat)
            if listener is not None:
                listener.wait(run_id, seen, max(0.0, min(wait, PG_SAFETY_POLL)))
            else:
                time.sleep(max(0.0, min(wait, SQLITE_POLL)))
    finally:
        if listener is not None:
            listener.unfollow(run_id)

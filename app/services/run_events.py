"""A run's event log and how followers learn that it grew.

Events are rows of `run_event` (run_id, seq, kind, data): `status` ({"status": ...}), `token`
({"text": ...}, batched by the runner), then exactly one `done` ({"run", "credits"}) or `error`
({"message", "code", "run"}), written in the same transaction as the run's final status. A
follower reads every event after the last `seq` it has, then waits for a nudge:

- PostgreSQL: the writer sends `NOTIFY run_events, '<run id>'` in its transaction (delivered on
  commit; `'<run id>:end'` with the final event); one listening connection per process wakes the
  followers of that run, and a caller that only waits for the end (`wait_for_end`) once.
- SQLite: there is no notification; followers look again every `SQLITE_POLL` seconds.

A follower never holds a database connection while it waits, so an open event stream costs a
sleeping greenlet (or thread), not a slot of the connection pool.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, insert, select, text
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
RECENT_ENDS = 10_000  # ends remembered by a process's listener (a few kilobytes)


# built once: a Core statement on the table costs a quarter of what an ORM insert built per call does,
# and a run appends three or four events on its way
_EVENTS = RunEvent.__table__
_APPEND = insert(_EVENTS).values(
    run_id=bindparam("run_id"),
    seq=select(func.coalesce(func.max(_EVENTS.c.seq), 0) + 1)
    .where(_EVENTS.c.run_id == bindparam("run_id")).scalar_subquery(),
    kind=bindparam("kind"), data=bindparam("data"), created_at=bindparam("created_at"),
).returning(_EVENTS.c.seq)
_APPEND_NOTIFY = _APPEND.returning(func.pg_notify(CHANNEL, bindparam("payload")))


@dataclass(frozen=True)
class Event:
    seq: int
    kind: str
    data: dict[str, Any]

    @property
    def final(self) -> bool:
        return self.kind in FINAL_KINDS


def append_event(session: Session, *, run_id: int, kind: str, data: dict[str, Any]) -> Event:
    """Add the run's next event and nudge its followers (on commit). One statement; the caller commits.

    Only the run's one writer at a time appends (the request that queued it, then its runner, or
    a cancel of a queued run that won the status change), so `max(seq) + 1` cannot collide; the
    primary key refuses it if it ever did. On PostgreSQL the nudge is sent by the same statement;
    a final event's nudge says so (`<run id>:end`), so followers that only wait for the end are
    woken once."""
    if kind not in KINDS:
        raise ValueError(f"unknown run event kind {kind!r}")
    params = {"run_id": run_id, "kind": kind, "data": data, "created_at": utcnow()}
    if session.get_bind().dialect.name == "postgresql":
        params["payload"] = f"{run_id}:end" if kind in FINAL_KINDS else str(run_id)
        seq = session.execute(_APPEND_NOTIFY, params).first()[0]
    else:
        seq = session.execute(_APPEND, params).first()[0]
    return Event(seq, kind, data)


def notify(session: Session, run_id: int) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": str(run_id)})


def has_ended(session: Session, run_id: int) -> bool:
    """Whether the run's final event (done or error) is written."""
    return session.scalar(select(RunEvent.seq).where(RunEvent.run_id == run_id, RunEvent.kind.in_(FINAL_KINDS))
                          .limit(1)) is not None


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
        self.ended: set[int] = set()  # followed runs whose final event was announced
        self.followers: dict[int, int] = {}
        # runs whose end was announced lately, followed or not, and when it was heard: a caller that
        # starts waiting just after the end was announced finds it here instead of reading the database
        self.recent_ends: OrderedDict[int, float] = OrderedDict()
        self.listening_since: float | None = None  # time.monotonic() when LISTEN took effect; None while reconnecting
        self.thread = threading.Thread(target=self._listen, name="run-events-listener", daemon=True)
        self.thread.start()

    def _listen(self) -> None:
        import psycopg

        while True:
            try:
                with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    with self.condition:
                        self.listening_since = time.monotonic()
                    while True:
                        for note in connection.notifies(timeout=5.0):
                            self._wake(note.payload)
            except Exception as exc:  # a lost connection: followers fall back to their safety poll
                with self.condition:
                    self.listening_since = None
                log.warning("run event listener lost its connection (%s); reconnecting", exc)
                time.sleep(1.0)

    def _wake(self, payload: str) -> None:
        number, _, tag = payload.partition(":")
        try:
            run_id = int(number)
        except ValueError:
            return
        with self.condition:
            if tag == "end":
                self.recent_ends[run_id] = time.monotonic()
                if len(self.recent_ends) > RECENT_ENDS:
                    self.recent_ends.popitem(last=False)
            if run_id in self.followers:
                self.versions[run_id] = self.versions.get(run_id, 0) + 1
                if tag == "end":
                    self.ended.add(run_id)
                self.condition.notify_all()

    def wait(self, run_id: int, seen: int, timeout: float) -> int:
        with self.condition:
            self.condition.wait_for(lambda: self.versions.get(run_id, 0) != seen, timeout=timeout)
            return self.versions.get(run_id, 0)

    def wait_end(self, run_id: int, timeout: float, *, since: float | None = None) -> bool:
        """Wait for the run's end to be announced; with `since`, an announcement heard since then
        counts even if it came before this call (an id heard earlier was another run's, in a
        database that was reset)."""
        with self.condition:
            return self.condition.wait_for(
                lambda: run_id in self.ended or (since is not None and self.recent_ends.get(run_id, since - 1) >= since),
                timeout=timeout)

    def heard_everything_since(self, moment: float) -> bool:
        """Whether this listener has been listening, without a break, since `moment` (time.monotonic())."""
        with self.condition:
            return self.listening_since is not None and self.listening_since <= moment

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
                self.ended.discard(run_id)
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


def _follow(session: Session, run_id: int) -> _Listener | None:
    """This process's listener (PostgreSQL), now following the run; None on SQLite, where followers poll."""
    bind = session.get_bind()
    if bind.dialect.name != "postgresql":
        return None
    listener = _listener_for(bind.url.render_as_string(hide_password=False))
    listener.follow(run_id)
    return listener


def follow(
    session: Session, *, run_id: int, after: int = 0, heartbeat: float = 15.0, until: float | None = None,
) -> Iterator[Event | None]:
    """Yield the run's events after `after`, as they are written, until its final event; yield None
    when `heartbeat` seconds passed without one (the caller sends a keep-alive), and return when
    `until` (a time.monotonic() deadline) passes. The session's connection is given back to the pool
    before every wait."""
    listener = _follow(session, run_id)
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


def wait_for_end(session: Session, *, run_id: int, until: float, queued_at: float | None = None) -> bool:
    """Wait until the run's final event is written or `until` (a time.monotonic() deadline) passes;
    True when it ended. Reads the database only when the end is announced (PostgreSQL) or at each
    poll (SQLite), and holds no connection while it waits.

    `queued_at` is a time.monotonic() taken before the transaction that queued the run committed:
    when this process's listener has been listening since then, the end cannot be announced
    unheard, so the first look at the database is skipped."""
    listener = _follow(session, run_id)
    try:
        heard = listener is not None and queued_at is not None and listener.heard_everything_since(queued_at)
        while True:
            if heard:
                ended, heard = False, False  # the listener's word stands for the first look only
            else:
                ended = has_ended(session, run_id)
                session.commit()  # end the read: the connection goes back to the pool while we wait
            now = time.monotonic()
            if ended or now >= until:
                return ended
            if listener is not None:
                if listener.wait_end(run_id, min(until - now, PG_SAFETY_POLL), since=queued_at):
                    return True  # announced after its commit: the final event and the run are written
            else:
                time.sleep(min(until - now, SQLITE_POLL))
    finally:
        if listener is not None:
            listener.unfollow(run_id)

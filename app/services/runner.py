"""The runner: executes one queued run (the `execute-run` job), outside any web request.

    claim       queued -> running (a run cancelled meanwhile is left alone), event `status`
    runtime     called on a helper thread with `on_token`; this thread batches the tokens into
                `token` events (every FLUSH_SECONDS or FLUSH_CHARS), watches the run's cancel flag
                and its deadline (RUN_TIMEOUT)
    settle      finish_run: settle what it used (succeeded, event `done`) or release the hold
                (failed / timed_out, event `error`)

A cancel or a timeout asks the runtime to stop where it can (`RunControl`: Langflow's stream is
closed, and Langflow cancels a run whose client went away). The hold is released at once, or a
cancelled run is charged what the runtime reports as used so far. The runner then keeps listening
for up to RUN_LATE_WAIT seconds: a reply that still arrives is recorded as `late_output` (never
shown as the answer, never charged), and the run is marked `session_stale` so the conversation's
next turn gets a fresh runtime session instead of building on a reply the caller never saw.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, scoped_session

from app.adapters.runtime import RunControl, RunOutput, RuntimeFailure, get_runtime, partial_usage
from app.models import Run, RunStatus, utcnow
from app.services import billing, run_events, runs

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.05
FLUSH_CHARS = 256
CANCEL_CHECK_SECONDS = 0.25
END = object()  # put on the token queue when the runtime call returns


def execute_run(session: Session, *, run_id: int, version_id: int | None = None, timeout: float = 60.0,
                late_wait: float = 30.0) -> str:
    """Run one queued run to its end and commit each step. Returns what happened, for the job log.

    Two transactions besides the runtime call for a run that answers at once: the claim with what
    the call needs and the `running` event, then its tokens, settlement and final event together
    (a run that takes longer commits its tokens as they come)."""
    own = session() if isinstance(session, scoped_session) else session
    expire, own.expire_on_commit = own.expire_on_commit, False  # the run stays loaded across its commits
    try:
        return _execute(own, run_id=run_id, version_id=version_id, timeout=timeout, late_wait=late_wait)
    finally:
        own.expire_on_commit = expire


def _execute(session: Session, *, run_id: int, version_id: int | None, timeout: float, late_wait: float) -> str:
    now = utcnow()
    run = session.scalars(
        update(Run).where(Run.id == run_id, Run.status == RunStatus.QUEUED.value, Run.cancel_requested_at.is_(None))
        .values(status=RunStatus.RUNNING.value, started_at=now).returning(Run),
        execution_options={"synchronize_session": False, "populate_existing": True},
    ).first()
    if run is None:
        session.rollback()
        return f"Run {run_id} is not waiting to run (cancelled, finished or gone)."
    try:
        prepared = runs.prepared_for(session, run, version_id=version_id)
        runtime = get_runtime(prepared.runtime_kind)
    except (runs.RunError, RuntimeFailure) as exc:
        prepared = runs.PreparedRun(run_id=run.id, replayed=False, hold_id=run.hold_id)
        failure = exc if isinstance(exc, RuntimeFailure) else RuntimeFailure(str(exc))
        return _finish(session, prepared, failure, duration_ms=0, pending=[])
    # the hold was made for a run that starts soon; one that waited in a long queue keeps its credits
    # held for as long as it may now run, or does not run at all when its hold already ran out
    keep_until = now + timedelta(seconds=timeout) + runs.RUN_HOLD_MARGIN
    if prepared.hold_id is not None and not billing.extend_hold(session, hold_id=prepared.hold_id,
                                                                until=keep_until, now=now):
        failure = RuntimeFailure("The run waited too long to start. You were not charged; try again.",
                                 detail="its credit hold ended while it was queued")
        return _finish(session, prepared, failure, duration_ms=0, pending=[])
    run_events.append_event(session, run_id=run_id, kind="status", data={"status": RunStatus.RUNNING.value})
    session.commit()

    tokens: queue.Queue[object] = queue.Queue()
    control = RunControl()
    result: list[RunOutput | RuntimeFailure] = []
    finished = threading.Event()

    def call() -> None:
        try:
            result.append(runs.call_runtime(prepared, runtime=runtime, on_token=tokens.put, control=control))
        finally:
            finished.set()
            tokens.put(END)  # wakes the loop below at once instead of after its next wait

    started = time.monotonic()
    threading.Thread(target=call, name=f"run-{run_id}", daemon=True).start()
    delivered: list[str] = []
    pending: list[str] = []
    last_check = started
    last_flush = 0.0  # the first token goes out at once; later ones in batches
    stopped: str | None = None  # "cancel" or "timeout"
    while True:
        try:
            token = tokens.get(timeout=FLUSH_SECONDS)
        except queue.Empty:
            token = None
        if token is END:
            break  # the runtime returned: what is still pending goes out with the final event
        if token is not None:
            pending.append(token)
            # tokens that are already waiting join this batch (a runtime that answers at once)
            while True:
                try:
                    more = tokens.get_nowait()
                except queue.Empty:
                    break
                if more is END:
                    tokens.put(END)
                    break
                pending.append(more)
        now_m = time.monotonic()
        if pending and not finished.is_set() and (
                now_m - last_flush >= FLUSH_SECONDS or sum(map(len, pending)) >= FLUSH_CHARS):
            _flush(session, run_id, pending, delivered)
            last_flush = now_m
        if now_m - started >= timeout:
            stopped = "timeout"
            break
        if now_m - last_check >= CANCEL_CHECK_SECONDS:
            last_check = now_m
            cancel = session.scalar(select(Run.cancel_requested_at).where(Run.id == run_id))
            session.commit()
            if cancel is not None:
                stopped = "cancel"
                break
    duration_ms = int((time.monotonic() - started) * 1000)
    if stopped is None:
        return _finish(session, prepared, result[0], duration_ms=duration_ms, pending=pending)

    control.stop()
    if pending:
        _flush(session, run_id, pending, delivered)
    summary = _give_up(session, prepared, stopped, "".join(delivered), duration_ms=duration_ms, timeout=timeout)
    # keep listening a while: a reply that still comes is recorded, not delivered, not charged
    if finished.wait(late_wait) and result and isinstance(result[0], RunOutput):
        session.execute(update(Run).where(Run.id == run_id).values(late_output=result[0].text)
                        .execution_options(synchronize_session=False))
        session.commit()
        summary += " A late reply was recorded."
    return summary


def _flush(session: Session, run_id: int, pending: list[str], delivered: list[str], *, commit: bool = True) -> None:
    text = "".join(pending)
    pending.clear()
    delivered.append(text)
    run_events.append_event(session, run_id=run_id, kind="token", data={"text": text})
    if commit:
        session.commit()


def _finish(session: Session, prepared: runs.PreparedRun, outcome: RunOutput | RuntimeFailure, *,
            duration_ms: int, pending: list[str]) -> str:
    """Settle (or release) and write the last tokens and the final event in one transaction."""
    if pending:
        _flush(session, prepared.run_id, pending, [], commit=False)
    finished = runs.finish_run(session, prepared=prepared, outcome=outcome, duration_ms=duration_ms)
    run = finished.run
    _final_event(session, run, failure=finished.failure)
    summary = f"Run {run.id} {run.status}."
    session.commit()
    return summary


def _final_event(session: Session, run: Run, *, failure: str | None, code: str | None = None) -> None:
    view = runs.run_view(run)
    if run.status == RunStatus.SUCCEEDED.value:
        run_events.append_event(session, run_id=run.id, kind="done", data={"run": view, "credits": run.credits})
    else:
        run_events.append_event(session, run_id=run.id, kind="error", data={
            "message": run.error or "The run failed.", "code": code or f"run_{failure or 'failed'}", "run": view})


def _give_up(session: Session, prepared: runs.PreparedRun, why: str, delivered: str, *, duration_ms: int,
             timeout: float) -> str:
    """End a run we stopped (cancel or timeout): release the hold, or for a cancel charge what the
    runtime counts as used so far; mark the conversation; write the final event."""
    now: datetime = utcnow()
    run = session.get(Run, prepared.run_id, populate_existing=True)
    charged = 0
    used = partial_usage(prepared.runtime_kind, prepared.input_text, delivered) if why == "cancel" and delivered \
        else None
    if prepared.hold_id is not None:
        if used is not None and prepared.quote is not None:
            cost = prepared.quote.cost(used)
            try:
                charged = billing.settle(session, hold_id=prepared.hold_id, amount=cost,
                                         idempotency_key=billing.run_key(run.id, "settle"), now=now).captured
            except billing.BillingError as exc:
                log.warning("stopped run %s could not be settled: %s", run.id, exc)
        else:
            try:
                billing.release(session, hold_id=prepared.hold_id,
                                idempotency_key=billing.run_key(run.id, "release"), now=now)
            except billing.BillingError as exc:  # the hold expired meanwhile: nothing is held any more
                log.warning("stopped run %s: hold not released: %s", run.id, exc)
    run.finished_at, run.duration_ms, run.credits = now, duration_ms, charged
    run.session_stale = True
    if why == "cancel":
        run.status = RunStatus.CANCELLED.value
        if charged:
            run.output_text, run.usage_units = delivered, used or 0
            run.error = f"Cancelled while running. Charged {charged} credits for what was delivered."
        else:
            run.error = "Cancelled while running. You were not charged."
        code = "run_cancelled"
    else:
        run.status = RunStatus.TIMED_OUT.value
        run.error = f"The agent did not answer within {timeout:g} seconds. You were not charged."
        code = "run_timeout"
    session.flush()
    _final_event(session, run, failure=None, code=code)
    session.commit()
    return f"Run {run.id} {run.status}."

"""The run gateway: POST /api/instances/<id>/runs and the run API (/api/runs/<id>, its events, cancel).

Callers: the instance's own API key (``X-API-Key``), or a member of its organization (browser
session with the CSRF header, personal access token, or an OIDC access token). A run is checked,
recorded `queued` and its credits held in the request (`runs.start_run`); a runner (the job
`execute-run` on the `runs` queue) calls the agent and settles. The request answers at once (202),
streams the run's events (Server-Sent Events), or with `Prefer: wait=N` waits for the result.

Event stream wire format (`text/event-stream`), one event per run event, in order:

    id: <seq>
    event: status | token | done | error
    data: <JSON>

status `{"status": "queued" | "running"}`, token `{"text": "..."}`, done `{"run": RunOut,
"credits": <settled>}`, error `{"message", "code", "run": RunOut}` (code run_timeout, run_input,
run_runtime, run_failed or run_cancelled). `done` or `error` is the last event. A comment line
(`: keep-alive`) is sent after 15 s without an event; `Last-Event-ID` (or `?after=`) resumes after
that sequence number.
"""
from __future__ import annotations

import json as jsonlib
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from functools import wraps
from typing import Annotated, Literal

from flask import Response as FlaskResponse
from flask import g, request, stream_with_context, url_for
from pydantic import BaseModel, Field, ValidationError
from spectree import Response

from app.cp import schemas
from app.cp.auth import api_auth
from app.cp.openapi import responses, spec
from app.cp.views import bp
from app.extensions import db
from app.models import RUN_FINISHED, Instance, Run
from app.services import instances as instance_service
from app.services import run_endings, run_events, run_history, runs
from app.web import problem

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_WAIT = 60
HEARTBEAT_SECONDS = 15.0
SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
RUN_KINDS = ("session", "bearer", "pat", "api_key")


class RunCreate(schemas.In):
    input: schemas.text(runs.MAX_INPUT_CHARS, min_length=1, description="What the agent works on.")
    idempotency_key: schemas.IdempotencyKey | None = Field(
        default=None, description="Also accepted as the Idempotency-Key header. A retry with the same key returns "
                                  "the recorded run and is never charged twice.")
    spending_cap: Annotated[int, Field(ge=1, le=schemas.MAX_CREDITS, strict=True)] | None = Field(
        default=None, description="The most this run may cost, in credits; the hold never exceeds it. A cap that "
                                  "cannot cover what the input alone costs is refused (422, field spending_cap) "
                                  "before anything is held; see cap_outcome for an output that reaches it.")
    session_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")] | None = Field(
        default=None, description="Continue a conversation: runs with the same session id share the agent's memory "
                                  "(scoped to this instance). After a turn whose reply you never saw (it timed "
                                  "out or was cancelled) the conversation continues with fresh agent memory, so "
                                  "it cannot build on that reply.")
    stream: bool = Field(default=False, description="Answer with the run's Server-Sent Events until it ends "
                                                    "(also: Accept: text/event-stream).")


class RunOut(schemas.Out):
    id: int
    instance_id: int
    status: Literal["queued", "running", "succeeded", "failed", "cancelled", "timed_out"] = Field(
        description="queued (held, waiting for a runner), running, then succeeded, failed, cancelled or timed_out.")
    output: str | None
    error: str | None
    credits: int = Field(description="Credits this run was charged (0 when it failed).")
    usage_units: int = Field(description="What the run used: characters of input and output for the built-in "
                                         "runtime, tokens for a Langflow flow.")
    cap_outcome: Literal["cut", "overrun"] | None = Field(
        description="What happened when the run's usage reached the most it may cost (the spending cap, or the "
                    "plan's maximum per run): null when it stayed within it; \"cut\" when the output was cut "
                    "where the limit was reached (credits is what was delivered); \"overrun\" when the runtime "
                    "could not stop mid-output, so the whole output was delivered and the run charged the limit, "
                    "with the usage above it recorded in overrun_credits and shown to the seller.")
    overrun_credits: int = Field(
        description="Credits the usage would have cost above the limit and was not charged (0 unless "
                    "cap_outcome is \"overrun\").")
    duration_ms: int | None
    session_id: str | None = Field(description="The agent memory this run used (ours, per instance and "
                                               "conversation).")
    conversation_id: str | None = Field(description="The session_id you sent, if any.")
    late_output: bool = Field(description="True when the agent replied after the run timed out or was cancelled: "
                                          "the reply is kept for the record, not returned, not charged.")
    session_stale: bool = Field(description="True when the agent may remember a turn you never saw; the "
                                            "conversation's next run starts with fresh agent memory.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    replayed: bool = Field(description="True when this answers a retry with an idempotency key already used.")


class RunLinks(BaseModel):
    self: str
    events: str = Field(description="GET: the run's Server-Sent Events, replayed from the start, then followed.")
    cancel: str = Field(description="POST: cancel the run.")


class RunAccepted(RunOut):
    links: RunLinks


class RunPage(schemas.Out):
    items: list[RunOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for older runs; null on the last page.")


class RunListQuery(BaseModel):
    cursor: schemas.Cursor | None = None
    limit: int = Field(20, ge=1, le=100)


class EventsQuery(BaseModel):
    after: int = Field(0, ge=0, le=2_000_000_000, description="Resume after this event id (as Last-Event-ID).")


def run_to_dict(run: Run, *, replayed: bool = False) -> dict:
    return RunOut(**runs.run_view(run, replayed=replayed)).model_dump(mode="json")


def links(run_id: int) -> dict[str, str]:
    return {"self": url_for("cp.run_get", run_id=run_id), "events": url_for("cp.run_events_stream", run_id=run_id),
            "cancel": url_for("cp.run_cancel", run_id=run_id)}


def _streaming(view: Callable) -> Callable:
    """Serve the request itself when the caller asked for an event stream (spectree would read the
    whole stream to validate it); otherwise the validated view answers. The OpenAPI description is
    the validated view's."""

    @wraps(view)
    def wrapped(**kwargs):
        body = request.get_json(silent=True)
        wants = "text/event-stream" in request.headers.get("Accept", "") or (
            isinstance(body, dict) and body.get("stream") is True)
        if not wants:
            return view(**kwargs)
        try:
            parsed = RunCreate.model_validate(body if isinstance(body, dict) else {})
        except ValidationError as exc:
            errors = [{"field": ".".join(str(p) for p in e.get("loc", ())) or "body", "message": e.get("msg", "")}
                      for e in exc.errors(include_url=False, include_context=False, include_input=False)]
            return problem(422, "Unprocessable Content", "The request does not match the schema.", errors=errors)
        return _create(kwargs["instance_id"], parsed, stream=True)

    return wrapped


@bp.post("/instances/<int:instance_id>/runs")
@api_auth(*RUN_KINDS)
@_streaming
@spec.validate(
    json=RunCreate,
    resp=Response(HTTP_202=RunAccepted, HTTP_201=RunOut, HTTP_200=RunOut, HTTP_402=schemas.Problem,
                  HTTP_403=schemas.Problem, HTTP_404=schemas.Problem, HTTP_409=schemas.Problem,
                  HTTP_422=schemas.Problem, HTTP_429=schemas.Problem, HTTP_502=schemas.Problem,
                  HTTP_504=schemas.Problem),
    tags=["runs"],
)
def run_create(instance_id: int, json: RunCreate):
    """Run the instance's agent on an input.

    Checks entitlements (active, trial not ended, run limit), holds the most the run may cost and
    queues it for a runner, which runs the agent and settles `credits_per_run + ceil(usage_units /
    1000) * credits_per_1k_units` (never more than the hold), where `usage_units` counts characters
    (built-in runtime) or tokens (Langflow). A spending cap (or plan maximum) that
    cannot cover what the input alone costs is refused with 422 before anything is held.

    Answers, by what you ask for:
    - by default **202** with the queued run and its `links` (`self`, `events`, `cancel`);
    - with `"stream": true` or `Accept: text/event-stream`: **200** `text/event-stream` with the
      run's events (`status`, `token`, then `done` or `error`) until it ends;
    - with `Prefer: wait=N` (N ≤ 60 seconds): the finished run, **201** (or the failure as a
      problem: 502, 504 on timeout, 422 when the agent refused the input, 409 cancelled, each
      with the `run`), and `Preference-Applied: wait=N`; 202 when it has not ended by then.

    A retry with the same idempotency key replays a succeeded run (200) and starts a new attempt
    after a failed, timed-out or cancelled one.
    """
    return _create(instance_id, json, stream=False)


def _prefer_wait() -> int | None:
    """Seconds from `Prefer: wait=N` (capped at MAX_WAIT), or None."""
    for part in request.headers.get("Prefer", "").split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "wait" and value.strip().isdigit():
            return min(int(value.strip()), MAX_WAIT)
    return None


def _create(instance_id: int, json: RunCreate, *, stream: bool):
    instance = _instance_for_caller(instance_id)
    if instance is None:
        return problem(404, "Not Found", "Instance not found.")
    key = json.idempotency_key or request.headers.get(IDEMPOTENCY_HEADER) or None
    if key is not None and not schemas.valid_idempotency_key(key):
        return problem(422, "Unprocessable Content", "The idempotency key is not valid.",
                       errors=[{"field": "idempotency_key", "message": "1 to 128 letters, digits, '.', '_', ':' or '-'."}])
    try:
        prepared = runs.start_run(
            db.session, instance=instance, input_text=json.input, user=g.api_user, api_key=g.api_key,
            idempotency_key=key, spending_cap=json.spending_cap, session_id=json.session_id,
        )
        runs.queue_run(db.session, prepared=prepared)
    except runs.RunError as exc:
        db.session.rollback()
        return _refusal(exc)
    queued_at = time.monotonic()
    db.session.commit()  # the hold and the job exist together, or neither does
    run_id = prepared.run_id
    if prepared.replayed:
        run = db.session.get(Run, run_id)
        if stream:
            return _event_stream(run_id, after=0)
        return run_to_dict(run, replayed=True), 200
    if stream:
        return _event_stream(run_id, after=0)
    wait = _prefer_wait()
    headers = {"Location": url_for("cp.run_get", run_id=run_id)}
    if wait is not None:
        headers["Preference-Applied"] = f"wait={wait}"
        run_events.wait_for_end(db.session, run_id=run_id, until=time.monotonic() + wait, queued_at=queued_at)
        run = db.session.get(Run, run_id, populate_existing=True)
        if run.status in RUN_FINISHED:
            answer = _finished_answer(run)
            db.session.commit()  # ends the read (a rollback would also drop the connection's prepared statements)
            if isinstance(answer, FlaskResponse):
                answer.headers.update(headers)
                return answer
            return answer[0], answer[1], headers
    run = db.session.get(Run, run_id)
    body = {**run_to_dict(run), "links": links(run_id)}
    db.session.commit()
    return body, 202, headers


FAILURE_STATUS = {"timeout": 504, "input": 422, "runtime": 502}
_TITLES = {400: "Bad Request", 402: "Payment Required", 403: "Forbidden", 404: "Not Found", 409: "Conflict",
           422: "Unprocessable Content", 429: "Too Many Requests", 502: "Bad Gateway", 504: "Gateway Timeout"}
_ERROR_STATUS = {"run_timeout": 504, "run_input": 422, "run_runtime": 502, "run_failed": 502, "run_cancelled": 409}


def _refusal(exc: runs.RunError):
    extra = {"code": exc.code, **exc.extra}
    if exc.field:
        extra["errors"] = [{"field": exc.field, "message": str(exc)}]
    response = problem(exc.status, _TITLES.get(exc.status, "Bad Request"), str(exc), **extra)
    if "retry_after" in exc.extra:  # too many runs at once: when to try again
        response.headers["Retry-After"] = str(exc.extra["retry_after"])
    return response


def _finished_answer(run: Run):
    """201 with a succeeded run, or the failure as a problem carrying the run."""
    body = run_to_dict(run)
    if run.status == "succeeded":
        return body, 201
    final = run_events.events_after(db.session, run_id=run.id, after=0)
    code = next((e.data.get("code") for e in reversed(final) if e.kind == "error"), None) or "run_failed"
    status = _ERROR_STATUS.get(code, 502)
    return problem(status, _TITLES[status], run.error or "The run failed.", code=code, run=body)


def _event_stream(run_id: int, *, after: int) -> FlaskResponse:
    """The run's events as Server-Sent Events, from `after` on, until its final event."""

    def generate() -> Iterator[str]:
        yield ": run events\n\n"  # headers and a first byte at once: proxies and clients know it is open
        for event in run_events.follow(db.session, run_id=run_id, after=after, heartbeat=HEARTBEAT_SECONDS):
            if event is None:
                yield ": keep-alive\n\n"
                continue
            data = jsonlib.dumps(event.data, separators=(",", ":"))
            yield f"id: {event.seq}\nevent: {event.kind}\ndata: {data}\n\n"

    return FlaskResponse(stream_with_context(generate()), mimetype="text/event-stream", headers=SSE_HEADERS)


# --- the run API ----------------------------------------------------------------------------------


@bp.get("/instances/<int:instance_id>/runs")
@api_auth(*RUN_KINDS)
@spec.validate(query=RunListQuery, resp=responses(200, RunPage, 404, 422), tags=["runs"])
def run_list(instance_id: int, query: RunListQuery):
    """The instance's runs, newest first; pass `next_cursor` as `cursor` for older ones."""
    instance = _instance_for_caller(instance_id)
    if instance is None:
        return problem(404, "Not Found", "Instance not found.")
    before = int(query.cursor) if query.cursor is not None else None
    page = run_history.list_runs(db.session, instance=instance, limit=query.limit + 1, before_id=before)
    more = len(page) > query.limit
    page = page[:query.limit]
    items = [run_to_dict(run) for run in page]
    db.session.commit()
    return {"items": items, "next_cursor": str(page[-1].id) if more else None}


@bp.get("/runs/<int:run_id>")
@api_auth(*RUN_KINDS)
@spec.validate(resp=responses(200, RunOut, 404), tags=["runs"])
def run_get(run_id: int):
    """One run: its status, output when it succeeded, error when it did not, and what it was charged."""
    run = _run_for_caller(run_id)
    if run is None:
        return problem(404, "Not Found", "Run not found.")
    body = run_to_dict(run)
    db.session.commit()
    return body


@spec.validate(query=EventsQuery, resp=Response(HTTP_200=None, HTTP_404=schemas.Problem), tags=["runs"])
def _events_description(run_id: int, query: EventsQuery):
    """The run's events as Server-Sent Events (`text/event-stream`): what it produced so far, then
    the rest as it comes, until its `done` or `error` event.

    Each event: `id: <seq>`, `event: status|token|done|error`, `data: <JSON>`. status
    `{"status"}`, token `{"text"}`, done `{"run", "credits"}`, error `{"message", "code", "run"}`.
    A `: keep-alive` comment comes after 15 s without an event. Resume with `Last-Event-ID` (or
    `?after=`): only later events are sent.
    """


def _described_by(described: Callable) -> Callable[[Callable], Callable]:
    """Give a streaming view the OpenAPI description of `described` (spectree would read the whole
    stream to validate it, so it does not wrap the view itself)."""

    def decorator(view: Callable) -> Callable:
        for name, value in vars(described).items():
            setattr(view, name, value)
        view.__wrapped__ = described  # spectree finds its description along the __wrapped__ chain
        view.__doc__ = described.__doc__
        return view

    return decorator


@bp.get("/runs/<int:run_id>/events")
@api_auth(*RUN_KINDS)
@_described_by(_events_description)
def run_events_stream(run_id: int):
    run = _run_for_caller(run_id)
    if run is None:
        return problem(404, "Not Found", "Run not found.")
    raw = request.headers.get("Last-Event-ID") or request.args.get("after") or "0"
    if not raw.isdigit() or len(raw) > 10:
        return problem(422, "Unprocessable Content", "Last-Event-ID is the id of an event of this run.",
                       errors=[{"field": "Last-Event-ID", "message": "A whole number."}])
    db.session.commit()
    return _event_stream(run_id, after=int(raw))


@bp.post("/runs/<int:run_id>/cancel")
@api_auth(*RUN_KINDS)
@spec.validate(resp=responses(202, RunOut, 404, 409), tags=["runs"])
def run_cancel(run_id: int):
    """Cancel a run. A queued run ends at once (`cancelled`, its hold released). A running run is
    stopped by its runner: the agent is asked to stop where it can, the hold is released (or, where
    the runtime counts what it used so far, that is charged) and the run's stream ends with an
    `error` event (code run_cancelled). 202 with the run as it is now; 409 when it has already ended."""
    run = _run_for_caller(run_id)
    if run is None:
        return problem(404, "Not Found", "Run not found.")
    try:
        run_endings.cancel_run(db.session, run=run)
    except runs.RunError as exc:
        db.session.rollback()
        return _refusal(exc)
    db.session.commit()
    return run_to_dict(db.session.get(Run, run_id)), 202




def _instance_for_caller(instance_id: int) -> Instance | None:
    """The instance if the caller may run it: a key only its own instance, a person their organizations'."""
    if g.api_key is not None:
        return g.api_key.instance if g.api_key.instance_id == instance_id else None
    try:
        return instance_service.get_instance_for_user(db.session, user=g.api_user, instance_id=instance_id)
    except instance_service.InstanceNotFound:
        return None


def _run_for_caller(run_id: int) -> Run | None:
    """The run if the caller may see it: a key only its own instance's runs, a person their organizations'."""
    run = db.session.get(Run, run_id)
    if run is None:
        return None
    return run if _instance_for_caller(run.instance_id) is not None else None

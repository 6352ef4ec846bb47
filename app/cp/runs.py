"""The run gateway: POST /api/instances/<id>/runs.

Callers: the instance's own API key (``X-API-Key``), or a member of its organization (browser
session with the CSRF header, personal access token, or an OIDC access token). The hold is
committed before the agent runs and the settlement after, so a slow agent holds no lock.
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from flask import g, request
from pydantic import Field
from spectree import Response

from app.cp import schemas
from app.cp.auth import api_auth
from app.cp.openapi import spec
from app.cp.views import bp
from app.extensions import db
from app.models import Instance, Run
from app.services import instances as instance_service
from app.services import runs
from app.web import problem

IDEMPOTENCY_HEADER = "Idempotency-Key"


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
                                  "(scoped to this instance).")


class RunOut(schemas.Out):
    id: int
    instance_id: int
    status: str = Field(description="succeeded or failed (running only while in progress)")
    output: str | None
    error: str | None
    credits: int = Field(description="Credits this run was charged (0 when it failed).")
    usage_units: int
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
    session_id: str | None
    created_at: datetime
    finished_at: datetime | None
    replayed: bool = Field(description="True when this answers a retry with an idempotency key already used.")


def run_to_dict(run: Run, *, replayed: bool = False) -> dict:
    return RunOut(
        id=run.id, instance_id=run.instance_id, status=run.status, output=run.output_text, error=run.error,
        credits=run.credits, usage_units=run.usage_units, cap_outcome=run.cap_outcome,
        overrun_credits=run.overrun_credits or 0, duration_ms=run.duration_ms, session_id=run.session_id,
        created_at=run.created_at, finished_at=run.finished_at, replayed=replayed,
    ).model_dump(mode="json")


@bp.post("/instances/<int:instance_id>/runs")
@api_auth("session", "bearer", "pat", "api_key")
@spec.validate(
    json=RunCreate,
    resp=Response(HTTP_201=RunOut, HTTP_200=RunOut, HTTP_402=schemas.Problem, HTTP_403=schemas.Problem,
                  HTTP_404=schemas.Problem, HTTP_409=schemas.Problem, HTTP_422=schemas.Problem,
                  HTTP_429=schemas.Problem, HTTP_502=schemas.Problem, HTTP_504=schemas.Problem),
    tags=["instances"],
)
def run_create(instance_id: int, json: RunCreate):
    """Run the instance's agent on an input.

    Checks entitlements (active, trial not ended, run limit), holds the most the run may cost,
    runs the agent, and settles `credits_per_run + ceil(usage_units / 1000) * credits_per_1k_units`
    (never more than the hold). A spending cap (or plan maximum) that cannot cover what the input
    alone costs is refused with 422 before anything is held. An output that would go past the limit
    is cut there, or, where the runtime cannot stop, delivered and charged the limit with the
    overrun recorded: `cap_outcome` says which. 201 with the run; 200 when replaying an idempotency key. A runtime
    failure releases the hold, records the failed run, and answers 502 (504 on timeout, 422 when
    the agent refused the input) with the run's id.
    """
    instance = _instance_for_caller(instance_id)
    if instance is None:
        return problem(404, "Not Found", "Instance not found.")
    key = json.idempotency_key or request.headers.get(IDEMPOTENCY_HEADER) or None
    if key is not None and not _valid_key(key):
        return problem(422, "Unprocessable Content", "The idempotency key is not valid.",
                       errors=[{"field": "idempotency_key", "message": "1 to 128 letters, digits, '.', '_', ':' or '-'."}])
    try:
        prepared = runs.start_run(
            db.session, instance=instance, input_text=json.input, user=g.api_user, api_key=g.api_key,
            idempotency_key=key, spending_cap=json.spending_cap, session_id=json.session_id,
        )
    except runs.RunError as exc:
        db.session.rollback()
        extra = {"code": exc.code, **exc.extra}
        if exc.field:
            extra["errors"] = [{"field": exc.field, "message": str(exc)}]
        response = problem(exc.status, _TITLES.get(exc.status, "Bad Request"), str(exc), **extra)
        if "retry_after" in exc.extra:
            response.headers["Retry-After"] = str(exc.extra["retry_after"])
        return response
    db.session.commit()  # the hold is in place before the agent starts
    finished = runs.finish_run(db.session, prepared=prepared)
    body = run_to_dict(finished.run, replayed=finished.replayed)  # before the commit expires the run
    db.session.commit()
    if finished.failure is not None:
        status = FAILURE_STATUS[finished.failure]
        return problem(status, _TITLES[status], finished.run.error or "The run failed.", code=f"run_{finished.failure}",
                       run=body)
    return body, 200 if finished.replayed else 201


FAILURE_STATUS = {"timeout": 504, "input": 422, "runtime": 502}
_TITLES = {400: "Bad Request", 402: "Payment Required", 403: "Forbidden", 404: "Not Found", 409: "Conflict",
           422: "Unprocessable Content", 429: "Too Many Requests", 502: "Bad Gateway", 504: "Gateway Timeout"}


def _valid_key(key: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9._:\-]{1,128}", key))


def _instance_for_caller(instance_id: int) -> Instance | None:
    """The instance if the caller may run it: a key only its own instance, a person their organizations'."""
    if g.api_key is not None:
        return g.api_key.instance if g.api_key.instance_id == instance_id else None
    try:
        return instance_service.get_instance_for_user(db.session, user=g.api_user, instance_id=instance_id)
    except instance_service.InstanceNotFound:
        return None

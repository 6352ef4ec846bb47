"""The run gateway: check entitlements, hold credits, run the agent, settle what it used.

A run is short transactions around the runtime call, so no database lock is held while an
agent works (a slow run must not queue every other run of the wallet behind its row lock), and
the runtime is called by a runner, never in a web request:

    start_run   entitlements -> Run(queued) -> authorize a hold     -> caller commits
    queue_run   event `status queued` + the job `execute-run`       (same commit)
    runner      app.services.runner: claim (running), call the runtime, stream `token` events
    finish_run  settle min(actual cost, hold) | release on failure  -> event `done` | `error`

Cost of a run = plan.credits_per_run + ceil(usage_units / 1000) * plan.credits_per_1k_units,
never more than the hold. The hold is the most a run may cost (its limit): the plan's
`max_credits_per_run`, lowered to the caller's spending cap when one is given.

The usage fee never vanishes silently. What the input alone will cost is known before the run
(the runtime says how many units an input counts for), so a limit that cannot cover it is refused
before anything is held: a cap below it is a `spending_cap` error, a plan maximum below it an
`input` error. A runtime that can stop mid-output (the built-in one) is given the most units the
limit pays for and cuts the output there (`cap_outcome` "cut"); one that cannot (Langflow) is
delivered in full and charged the limit, and the cost above it is recorded on the run
(`cap_outcome` "overrun", `overrun_credits`), where the seller's analytics show it.

Idempotency: the client's key is stored on the Run (unique, scoped to the instance), and the hold
and settlement keys derive from the run id (`billing.run_key`: a namespace that callers of the
billing API cannot write, so none can take or close a run's hold). A retry with the same key returns
the recorded run and charges nothing when it succeeded, and starts a new attempt when it failed,
timed out or was cancelled (the old attempt keeps the key with its id appended); a retry while the
first is still queued or running gets 409; the same key with a different input is refused (409).
"""
from __future__ import annotations

import json
import logging
import re
import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import null, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.adapters.runtime import (
    Document, FaqEntry, RunContext, RunControl, RunOutput, Runtime, RuntimeFailure, RuntimeInputError, RuntimeTimeout,
    TokenCallback, UsageTerms, get_runtime, usage_terms,
)
from app.models import (
    ApiKey, Instance, KnowledgeDocument, Offering, Plan, Run, RunStatus, User, utcnow,
)
from app.models.instances import CapOutcome
from app.services import billing, offerings
from app.services import instances as instance_service
from app.services import run_limits
from app.services.errors import ServiceError

log = logging.getLogger(__name__)

MAX_INPUT_CHARS = 100_000
MAX_DOCUMENTS = 500
HOLD_TTL_SECONDS = 300
STALE_AFTER = timedelta(seconds=HOLD_TTL_SECONDS)  # a queued run that no runner took by then is failed
# a running run's hold is kept for its time limit plus this (the runner settles after the call); a
# run still `running` that long after it started lost its runner
RUN_HOLD_MARGIN = timedelta(seconds=60)
SESSION_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

# entitlement reason -> (status, message); the message is shown as is
REFUSALS = {
    "instance_suspended": (403, "This instance is suspended, so it cannot run. Resume it, or contact the "
                                "organization's owner."),
    "instance_cancelled": (403, "This instance was cancelled, so it cannot run. Subscribe again from the "
                                "product page."),
    "instance_expired": (403, "This instance has expired, so it cannot run. Choose a plan to continue."),
    "trial_ended": (403, "The free trial has ended. Choose a plan to keep using this agent."),
    "run_limit_reached": (429, "This plan's runs for the current period are used up. Upgrade the plan, or "
                               "wait for the next period."),
}


class RunError(ServiceError):
    """A run was refused; the message is safe to show. `code` is stable for callers to branch on."""

    def __init__(self, message: str, *, status: int = 400, code: str = "invalid", field: str | None = None,
                 **extra) -> None:
        super().__init__(message)
        self.status, self.code, self.field, self.extra = status, code, field, extra


@dataclass(frozen=True)
class Quote:
    """What a run costs on a plan: the per-run price and the most a run may cost (the hold)."""

    credits_per_run: int
    credits_per_1k_units: int
    max_credits: int
    spending_cap: int | None = None
    limited_by_cap: bool = False  # the spending cap, not the plan's maximum, sets `max_credits`

    def uncapped_cost(self, usage_units: int) -> int:
        """What `usage_units` cost at the plan's prices, whatever the limit."""
        return run_cost(self.credits_per_run, self.credits_per_1k_units, usage_units)

    def cost(self, usage_units: int) -> int:
        """The settled cost of a run that reported `usage_units`, capped by the hold."""
        return min(self.max_credits, self.uncapped_cost(usage_units))

    @property
    def max_units(self) -> int | None:
        """The most usage units a run may report and still cost no more than `max_credits`;
        None when usage is free (a flat price per run)."""
        if self.credits_per_1k_units <= 0:
            return None
        return max(0, (self.max_credits - self.credits_per_run) // self.credits_per_1k_units) * 1000

    def check_input(self, terms: UsageTerms) -> None:
        """RunError (422) when the input alone costs more than the limit: it could only be run by
        dropping its usage fee. Names the spending cap when the cap is the limit, else the input."""
        input_cost = self.uncapped_cost(terms.input_units)
        if input_cost <= self.max_credits:
            return
        unit = terms.unit_name
        prices = (f"{_credits(self.credits_per_run)} per run + {_credits(self.credits_per_1k_units)} "
                  f"per 1,000 {unit}")
        if self.limited_by_cap:
            raise RunError(
                f"A spending cap of {_credits(self.spending_cap)} cannot cover this input: its "
                f"{terms.input_units:,} {unit} alone cost {_credits(input_cost)} ({prices}). Raise the cap to at "
                f"least {input_cost}, or leave it empty.",
                status=422, code="cap_below_input", field="spending_cap", input_credits=input_cost,
            )
        raise RunError(
            f"This input is too long for the plan: its {terms.input_units:,} {unit} alone would cost "
            f"{_credits(input_cost)} ({prices}), and a run on this plan costs at most "
            f"{_credits(self.max_credits)}. Shorten the input.",
            status=422, code="input_over_limit", field="input", input_credits=input_cost,
        )


def _credits(amount: int) -> str:
    return f"{amount:,} credit{'' if amount == 1 else 's'}"


def run_cost(credits_per_run: int, credits_per_1k_units: int, usage_units: int) -> int:
    """Per-run credits plus every started thousand usage units at the per-1k price (integers only)."""
    thousands = -(-max(0, usage_units) // 1000)
    return credits_per_run + thousands * credits_per_1k_units


def quote_for(plan: Plan, *, spending_cap: int | None = None) -> Quote:
    """The quote for one run on `plan`; RunError when the cap is below the per-run price."""
    ceiling = max(plan.max_credits_per_run, plan.credits_per_run)
    limited_by_cap = False
    if spending_cap is not None:
        if spending_cap < 1:
            raise RunError("Set the spending cap to at least 1 credit, or leave it empty.", status=422,
                           code="invalid_cap", field="spending_cap")
        if spending_cap < plan.credits_per_run:
            raise RunError(f"The spending cap is below this plan's price of {plan.credits_per_run} credits per run.",
                           status=422, code="invalid_cap", field="spending_cap")
        limited_by_cap = spending_cap < ceiling
        ceiling = min(ceiling, spending_cap)
    return Quote(plan.credits_per_run, plan.credits_per_1k_units, ceiling, spending_cap, limited_by_cap)


def _usage_terms(runtime_kind: str, input_text: str) -> UsageTerms:
    try:
        return usage_terms(runtime_kind, input_text)
    except RuntimeFailure:  # an unknown runtime: the run itself fails (and is not charged) when it calls it
        return UsageTerms(unit_name="units", can_cut_output=False, input_units=0)


@dataclass(frozen=True)
class PreparedRun:
    """Everything `finish_run` needs, as plain values: it may be used after the caller's commit."""

    run_id: int
    replayed: bool
    hold_id: int | None = None
    quote: Quote | None = None
    runtime_kind: str = "builtin"
    runtime_ref: str = ""
    input_text: str = ""
    session_id: str = ""
    context: RunContext | None = None
    max_units: int | None = None  # the runtime cuts its output here, if it can
    version_id: int | None = None  # the offering version it runs (resolved when it was started)


def start_run(
    session: Session,
    *,
    instance: Instance,
    input_text: str,
    user: User | None = None,
    api_key: ApiKey | None = None,
    idempotency_key: str | None = None,
    spending_cap: int | None = None,
    session_id: str | None = None,
    now: datetime | None = None,
) -> PreparedRun:
    """Check entitlements, record a queued Run and hold the most it may cost. Flushes; caller commits
    (after `queue_run`, which hands it to a runner).

    The caller has already checked that `user` (or `api_key`) may act on `instance`.
    Raises RunError: 402 insufficient credits or key quota, 403 not entitled, 409 key in use, 422 bad input,
    429 run limit or too many runs in progress (with `retry_after`).
    """
    now = now or utcnow()
    if not input_text or not input_text.strip():
        raise RunError("Type an input for the agent.", status=422, code="invalid_input", field="input")
    if "\x00" in input_text:  # PostgreSQL text cannot hold it
        raise RunError("The input contains a NUL character; remove it and try again.", status=422,
                       code="invalid_input", field="input")
    if len(input_text) > MAX_INPUT_CHARS:
        raise RunError(f"The input is too long: at most {MAX_INPUT_CHARS:,} characters.", status=422,
                       code="invalid_input", field="input")
    if session_id is not None and not SESSION_ID_RE.match(session_id):
        raise RunError("A session id is 1 to 64 letters, digits, '.', '_', ':' or '-'.", status=422,
                       code="invalid_input", field="session_id")
    client_key = idempotency_key or uuid.uuid4().hex
    run_key = f"i{instance.id}:{client_key}"

    existing = session.scalar(select(Run).where(Run.idempotency_key == run_key)) if idempotency_key else None
    if existing is not None:  # a key made here is new: nothing to replay
        replay = _replay(existing, input_text)
        if replay is not None:
            return replay
        _retire_attempt(session, existing, run_key)

    refusal = instance_service.run_refusal(session, instance=instance, now=now)  # credits: the hold decides
    if refusal in REFUSALS:
        status, message = REFUSALS[refusal]
        raise RunError(message, status=status, code=refusal)
    quote = quote_for(instance.plan, spending_cap=spending_cap)
    version = offerings.version_for_instance(session, instance)
    if version is None:
        raise RunError("This agent has no released version to run yet.", status=409, code="no_version")
    quote.check_input(_usage_terms(version.runtime_kind, input_text))
    # runs in progress and the key's monthly quota; keeps the wallet locked until the caller commits
    wallet = run_limits.check_run_allowed(session, instance=instance, api_key=api_key, amount=quote.max_credits,
                                          now=now)

    run = Run(
        instance_id=instance.id, status=RunStatus.QUEUED.value, input_text=input_text,
        session_id=_runtime_session(session, instance.id, session_id),
        conversation_id=session_id, idempotency_key=run_key, created_by_id=user.id if user else None,
        api_key_id=api_key.id if api_key else None, created_at=now,
    )
    session.add(run)
    try:
        session.flush()
    except IntegrityError:  # a concurrent request with the same key got there first
        raise RunError("A run with this idempotency key is already in progress. Retry in a moment to get its "
                       "result.", status=409, code="in_progress", field="idempotency_key") from None

    hold_id = None
    if quote.max_credits > 0:
        try:
            hold = billing.authorize(session, wallet=wallet, amount=quote.max_credits,
                                     idempotency_key=billing.run_key(run.id), ttl_seconds=HOLD_TTL_SECONDS,
                                     instance_id=instance.id, now=now)
        except billing.InsufficientCredits as exc:
            raise RunError(
                f"Not enough credits: this run may cost up to {quote.max_credits} and {exc.available} are available. "
                "Buy credits, or set a lower spending cap.",
                status=402, code="insufficient_credits", available=exc.available, requested=quote.max_credits,
            ) from None
        hold_id = run.hold_id = hold.id
        session.flush()
    return PreparedRun(
        run_id=run.id, replayed=False, hold_id=hold_id, quote=quote, runtime_kind=version.runtime_kind,
        runtime_ref=version.runtime_ref, input_text=input_text, session_id=run.session_id,
        context=replace(_context(session, instance, now, runtime_kind=version.runtime_kind),
                        **offerings.run_options(version)), max_units=quote.max_units, version_id=version.id,
    )


def _replay(existing: Run, input_text: str) -> PreparedRun | None:
    """The recorded run for a retry with its key; None when it failed, was cancelled or timed out:
    that is not a result, so the retry is a new attempt."""
    if existing.input_text != input_text:
        raise RunError("This idempotency key was already used with a different input.", status=409,
                       code="idempotency_conflict", field="idempotency_key")
    if existing.status in (RunStatus.QUEUED.value, RunStatus.RUNNING.value):
        raise RunError("A run with this idempotency key is still in progress. Retry in a moment to get its result.",
                       status=409, code="in_progress", field="idempotency_key")
    if existing.status != RunStatus.SUCCEEDED.value:
        return None
    return PreparedRun(run_id=existing.id, replayed=True)


def _retire_attempt(session: Session, existing: Run, run_key: str) -> None:
    """Free the key of a failed attempt for the new one; the old run keeps it with its id appended.
    Of two retries at once, one renames it and the other is told the key is in use."""
    renamed = session.execute(
        update(Run).where(Run.id == existing.id, Run.idempotency_key == run_key)
        .values(idempotency_key=f"{run_key}#{existing.id}")
        .execution_options(synchronize_session=False)
    ).rowcount
    if renamed != 1:
        raise RunError("A run with this idempotency key is already in progress. Retry in a moment to get its "
                       "result.", status=409, code="in_progress", field="idempotency_key")
    session.expire(existing)


def _runtime_session(session: Session, instance_id: int, conversation_id: str | None) -> str:
    """The session id the runtime is sent: one per conversation of the instance, and a new one after
    a turn whose reply the caller never saw (the runtime may have stored it in its memory)."""
    if conversation_id is None:
        return f"inst{instance_id}-{uuid.uuid4().hex}"
    last = session.execute(
        select(Run.id, Run.session_id, Run.session_stale)
        .where(Run.instance_id == instance_id, Run.conversation_id == conversation_id)
        .order_by(Run.id.desc()).limit(1)
    ).first()
    if last is None:
        return f"inst{instance_id}-{conversation_id}"
    if last.session_stale:
        return f"inst{instance_id}-{conversation_id}-r{last.id}"
    return last.session_id


def _context(session: Session, instance: Instance, now: datetime, *, runtime_kind: str = "builtin") -> RunContext:
    if runtime_kind != "builtin":  # the FAQ and documents are the built-in agents' knowledge; a flow has its own
        return RunContext(today=now.date())
    offering: Offering = instance.offering
    try:
        raw_faq = json.loads(offering.faq_json or "[]")
    except ValueError:
        log.warning("offering %s has an unreadable FAQ", offering.slug)
        raw_faq = []
    faq = tuple(FaqEntry(str(e.get("q", "")), str(e.get("a", ""))) for e in raw_faq if isinstance(e, dict))
    documents = tuple(
        Document(title, body) for title, body in session.execute(
            select(KnowledgeDocument.title, KnowledgeDocument.body)
            .where(KnowledgeDocument.instance_id == instance.id)
            .order_by(KnowledgeDocument.id).limit(MAX_DOCUMENTS)
        )
    )
    return RunContext(offering_name=offering.name, faq=faq, documents=documents, today=now.date())


def call_runtime(prepared: PreparedRun, *, runtime: Runtime | None = None, on_token: TokenCallback | None = None,
                 control: RunControl | None = None) -> RunOutput | RuntimeFailure:
    """Run the agent through the port; a failure is returned, not raised, so the caller can settle it."""
    try:
        runtime = runtime or get_runtime(prepared.runtime_kind)
        extra = {"control": control} if control is not None else {}
        return runtime.run(prepared.runtime_ref, prepared.input_text, prepared.session_id, prepared.context,
                           max_units=prepared.max_units, on_token=on_token, **extra)
    except RuntimeFailure as exc:
        return exc
    except Exception as exc:  # an adapter bug must still release the hold
        log.exception("runtime %s failed unexpectedly on %s", prepared.runtime_kind, prepared.runtime_ref)
        return RuntimeFailure("The agent hit an internal error. You were not charged.",
                              detail=f"{type(exc).__name__}: {exc}")


def failure_kind(failure: RuntimeFailure) -> str:
    """"timeout", "input" (the agent refused the input as given) or "runtime"."""
    if isinstance(failure, RuntimeTimeout):
        return "timeout"
    if isinstance(failure, RuntimeInputError):
        return "input"
    return "runtime"


@dataclass(frozen=True)
class FinishedRun:
    run: Run
    replayed: bool
    failure: str | None = None  # failure_kind() of this call's failure; None on success and on replays


def finish_run(
    session: Session, *, prepared: PreparedRun, outcome: RunOutput | RuntimeFailure | None = None,
    duration_ms: int | None = None, now: datetime | None = None,
) -> FinishedRun:
    """Call the runtime (unless `outcome` is given), then settle or release and record the result.

    Flushes; the caller commits. A replayed run is returned as recorded, untouched.
    """
    if prepared.replayed:
        return FinishedRun(session.get(Run, prepared.run_id), replayed=True)
    if outcome is None:
        started = time.monotonic()
        outcome = call_runtime(prepared)
        duration_ms = int((time.monotonic() - started) * 1000)
    now = now or utcnow()
    run = session.get(Run, prepared.run_id)  # its runner's: no one else writes what is set here
    run.duration_ms = duration_ms
    run.finished_at = now
    if isinstance(outcome, RuntimeFailure):
        if prepared.hold_id is not None:
            billing.release(session, hold_id=prepared.hold_id, idempotency_key=billing.run_key(run.id, "release"),
                            now=now)
        run.status = RunStatus.FAILED.value
        if isinstance(outcome, RuntimeTimeout):
            # the runtime may still finish and keep the turn in its memory: the next turn starts afresh
            run.status, run.session_stale = RunStatus.TIMED_OUT.value, True
        run.error = str(outcome)
        run.credits = 0
        level = logging.INFO if isinstance(outcome, RuntimeInputError) else logging.WARNING
        log.log(level, "run %s failed (%s): %s", run.id, type(outcome).__name__, outcome.detail)
        session.flush()
        return FinishedRun(run, replayed=False, failure=failure_kind(outcome))

    cost, cap_outcome, overrun = 0, None, 0
    if prepared.quote is not None:
        uncapped = prepared.quote.uncapped_cost(outcome.usage_units)
        cost = min(uncapped, prepared.quote.max_credits)
        overrun = uncapped - cost
        if outcome.truncated:
            cap_outcome = CapOutcome.CUT.value
        elif overrun:
            cap_outcome = CapOutcome.OVERRUN.value
            log.info("run %s overran its limit of %s credits by %s", run.id, cost, overrun)
    captured = 0
    if prepared.hold_id is not None:
        try:
            hold = billing.settle(session, hold_id=prepared.hold_id, amount=cost,
                                  idempotency_key=billing.run_key(run.id, "settle"), now=now)
            captured = hold.captured
        except billing.BillingError as exc:
            # the hold expired or was released while the agent ran: its credits are back in the
            # wallet and may be spent elsewhere, so this run goes uncharged rather than overdraw
            log.warning("run %s could not be settled: %s", run.id, exc)
            run.error = "Not charged: the credit hold ended before the run finished."
    run.status = RunStatus.SUCCEEDED.value
    run.output_text = outcome.text
    run.usage_units = outcome.usage_units
    run.credits = captured
    run.cap_outcome = cap_outcome
    run.overrun_credits = overrun
    session.flush()
    return FinishedRun(run, replayed=False)


# --- queueing and reading ---------------------------------------------------------------

RUN_QUEUE = "runs"  # the job engine queue runs go to: `flask --app app worker --queues runs`


def queue_run(session: Session, *, prepared: PreparedRun) -> None:
    """Hand a started run to a runner (the `execute-run` job on the `runs` queue), with its first
    event. Flushes; the job exists once the caller commits (SQLite: it starts then, on a thread)."""
    from app.services import jobs, run_events

    if prepared.replayed:
        return
    run_events.append_event(session, run_id=prepared.run_id, kind="status", data={"status": RunStatus.QUEUED.value})
    jobs.defer(session, "execute-run", run_id=prepared.run_id, version_id=prepared.version_id)


def run_view(run: Run, *, replayed: bool = False) -> dict[str, Any]:
    """The run as the API shows it (RunOut), as JSON values: also the `run` of done and error events."""
    return {
        "id": run.id, "instance_id": run.instance_id, "status": run.status, "output": run.output_text,
        "error": run.error, "credits": run.credits or 0, "usage_units": run.usage_units or 0,
        "cap_outcome": run.cap_outcome, "overrun_credits": run.overrun_credits or 0,
        "duration_ms": run.duration_ms, "session_id": run.session_id, "conversation_id": run.conversation_id,
        "late_output": run.late_output is not None, "session_stale": bool(run.session_stale),
        "created_at": _iso(run.created_at), "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at), "replayed": replayed,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def prepared_for(session: Session, run: Run, *, version_id: int | None = None) -> PreparedRun:
    """What the runner needs to call the runtime for a queued run, read back from its records in one
    query: the hold is the most it may cost; prices and context are the instance's now; the version
    is the one resolved when the run was started (`version_id`), or else the instance's now."""
    from app.models import Hold, OfferingVersion

    hold_amount = (select(Hold.amount).where(Hold.id == run.hold_id).scalar_subquery()
                   if run.hold_id is not None else null())
    query = (select(Instance, Plan, hold_amount).join(Plan, Plan.id == Instance.plan_id)
             .where(Instance.id == run.instance_id))
    if version_id is not None:
        query = query.add_columns(OfferingVersion).join(
            OfferingVersion, (OfferingVersion.id == version_id) & (OfferingVersion.offering_id == Instance.offering_id))
    row = session.execute(query).first()
    if row is None:
        if version_id is not None:  # the version is gone since: the instance's version now
            return prepared_for(session, run)
        raise RunError("This instance no longer exists.", status=404, code="not_found")
    instance, plan, held = row[0], row[1], row[2]
    version = row[3] if version_id is not None else offerings.version_for_instance(session, instance)
    if version is None:
        raise RunError("This agent has no released version to run yet.", status=409, code="no_version")
    base = quote_for(plan)
    max_credits = held if held is not None else base.max_credits
    quote = Quote(plan.credits_per_run, plan.credits_per_1k_units, max_credits, None, max_credits < base.max_credits)
    return PreparedRun(
        run_id=run.id, replayed=False, hold_id=run.hold_id, quote=quote, runtime_kind=version.runtime_kind,
        runtime_ref=version.runtime_ref, input_text=run.input_text, session_id=run.session_id or "",
        context=replace(_context(session, instance, utcnow(), runtime_kind=version.runtime_kind),
                        **offerings.run_options(version)),
        max_units=quote.max_units, version_id=version.id,
    )

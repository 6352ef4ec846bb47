"""The run console on an instance's page: a turn is posted, streamed in as it runs, stopped, and read
back; conversations; the stat cards refreshed after each run.

A run from the console takes the API's path: `runs.start_run` checks, records it queued and holds
its credits, `runs.queue_run` hands it to a runner, and the page follows its events. With
JavaScript the new turn streams in through htmx's SSE extension from `instance_run_stream` (the
run's events as small HTML fragments); its `end` event fetches the finished turn, whose answer
carries `HX-Trigger: credits-changed` (header badge and stat cards). Without JavaScript the form
posts, is redirected to the page, and the page refreshes itself until the turn has ended.
"""
from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, request, url_for
from jinja2_fragments.flask import render_block

from app.account import agents as instance_pages
from app.account.forms import ActionForm, RunForm
from app.account.views import bp, wants_fragment
from app.auth.session_user import login_required
from app.extensions import db
from app.services import account, conversations, run_endings, runs

LIVE_STATUSES = ("queued", "running")
STATUS_WORDS = {"queued": "Waiting to start…", "running": "Running…"}


def conversation_arg(value: str | None) -> str:
    return value if conversations.valid_conversation_id(value) else conversations.new_conversation_id()


def console_context(instance, conversation_id: str) -> dict:
    turns = conversations.conversation_turns(db.session, instance=instance, conversation_id=conversation_id)
    return {
        "conversation_id": conversation_id,
        "turns": turns,
        "past_conversations": [c for c in conversations.list_conversations(db.session, instance=instance)
                               if c.id != conversation_id],
        "live_turn": turns[-1] if turns and turns[-1].status in LIVE_STATUSES else None,
        "fresh_memory_next": bool(turns) and bool(turns[-1].session_stale),
        "hold_of": hold_amount,
    }


def hold_amount(run) -> int:
    return conversations.held_for(db.session, run=run)


def failure_code(run) -> str:
    """The code of the run's final error event (run_input, run_timeout, ...), or ""."""
    from app.services import run_events

    final = run_events.events_after(db.session, run_id=run.id)
    return next((e.data.get("code") or "" for e in reversed(final) if e.kind == "error"), "")


def _run_or_404(instance, run_id: int):
    try:
        return conversations.run_for_instance(db.session, instance=instance, run_id=run_id)
    except conversations.RunNotFound:
        abort(404)


@bp.post("/instances/<int:instance_id>/runs")
@login_required
def instance_run(instance_id: int):
    """Start a run from the console: queued for a runner through the same gateway as the API.

    With htmx the answer is the `console` block with the new turn (it streams from there) and
    `HX-Trigger: credits-changed` (its hold is taken); without JavaScript, a redirect to the page
    showing the conversation, which refreshes itself until the run has ended."""
    instance = instance_pages._instance_or_404(instance_id)
    form = RunForm()
    refusal, status, replayed = None, 200, None
    conversation_id = conversation_arg(form.conversation_id.data)
    if form.validate_on_submit():
        try:
            prepared = runs.start_run(
                db.session, instance=instance, input_text=form.input.data, user=g.user,
                idempotency_key=form.idempotency_key.data or None, spending_cap=form.spending_cap.data,
                session_id=conversation_id,
            )
            runs.queue_run(db.session, prepared=prepared)
        except runs.RunError as exc:
            db.session.rollback()
            refusal, status = exc, exc.status
            if exc.field == "spending_cap":
                form.spending_cap.errors = [str(exc)]
            elif exc.field == "input":
                form.input.errors = [str(exc)]
        else:
            db.session.commit()  # the hold and the job exist together
            replayed = prepared.run_id if prepared.replayed else None
            if replayed is not None:  # a resubmitted form: show the recorded turn in its own conversation
                conversation_id = _run_or_404(instance, replayed).conversation_id or conversation_id
            if not wants_fragment():
                return redirect(url_for("account.instance_detail", instance_id=instance.id,
                                        conversation=conversation_id, replayed=prepared.run_id if replayed else None,
                                        _anchor=f"turn-{prepared.run_id}"), 303)
            form = RunForm(formdata=None)
    else:
        status = 400
    context = instance_pages._detail_context(instance, run_form=form, refusal=refusal,
                              **console_context(instance, conversation_id), replayed_run=replayed)
    headers = {"Vary": "HX-Request", "Cache-Control": "no-store"}
    if refusal is None and status == 200:
        headers["HX-Trigger"] = "credits-changed"
    if wants_fragment():  # htmx swaps 2xx only: the outcome is in the block, not the status
        html = render_block("account/instance_detail.html", "console", **context)
        html += render_block("account/instance_detail.html", "recent_runs", **{**context, "oob": True})
        return html, 200, headers
    return render_template("account/instance_detail.html", **context), status, headers


def _sse(event: str, html: str, seq: int | None = None) -> str:
    """One Server-Sent Event whose data is an HTML fragment (each line of it a `data:` line)."""
    lines = html.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    head = f"id: {seq}\n" if seq is not None else ""
    return head + f"event: {event}\n" + "".join(f"data: {line}\n" for line in lines) + "\n"


@bp.get("/instances/<int:instance_id>/runs/<int:run_id>/stream")
@login_required
def instance_run_stream(instance_id: int, run_id: int):
    """The run's events for the console, as HTML fragments for htmx's SSE extension: `status`
    (what it is doing), `token` (escaped output text, appended), `cost` (credits so far, where the
    runtime counts its usage as it goes; else the hold), then `end` once it has ended (the page then
    fetches the finished turn). Served like the API's event stream: a follower waits without a
    database connection, on a greenlet of the web's gevent workers, not a page thread."""
    from flask import Response, stream_with_context
    from markupsafe import escape

    from app.adapters.runtime import partial_usage
    from app.services import run_events

    instance = instance_pages._instance_or_404(instance_id)
    run = _run_or_404(instance, run_id)
    raw = request.headers.get("Last-Event-ID") or "0"
    after = int(raw) if raw.isdigit() and len(raw) <= 10 else 0
    version = instance.version or instance.offering.current_version
    kind = version.runtime_kind if version else "builtin"
    held = hold_amount(run)
    per_run, per_1k = instance.plan.credits_per_run, instance.plan.credits_per_1k_units  # plain values:
    input_text = run.input_text  # the stream outlives this request's objects
    delivered = "".join(e.data.get("text", "") for e in run_events.events_after(db.session, run_id=run.id, after=0)
                        if e.kind == "token" and e.seq <= after)
    db.session.commit()

    def cost_words(text: str) -> str:
        used = partial_usage(kind, input_text, text)
        if used is None or not held:
            return f"Up to {held} credit{'' if held == 1 else 's'} held" if held else "No credits held"
        so_far = min(held, runs.run_cost(per_run, per_1k, used))
        return f"{so_far} credit{'' if so_far == 1 else 's'} so far (up to {held} held)"

    def generate():
        text = delivered
        yield ": run events\n\n"
        for event in run_events.follow(db.session, run_id=run_id, after=after, heartbeat=15.0):
            if event is None:
                yield ": keep-alive\n\n"
                continue
            if event.kind == "token":
                chunk = str(event.data.get("text", ""))
                text += chunk
                yield _sse("token", str(escape(chunk)), event.seq)
                yield _sse("cost", cost_words(text))
            elif event.kind == "status":
                yield _sse("status", STATUS_WORDS.get(event.data.get("status"), "Running…"), event.seq)
            else:
                yield _sse("end", "Finished." if event.kind == "done" else "Ended.", event.seq)

    return Response(stream_with_context(generate()), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@bp.get("/instances/<int:instance_id>/runs/<int:run_id>")
@login_required
def instance_run_turn(instance_id: int, run_id: int):
    """One turn of the console. htmx: the turn (fetched when its stream ends), the last runs out of
    band, and `HX-Trigger: credits-changed` once it has ended; otherwise the page at that turn."""
    instance = instance_pages._instance_or_404(instance_id)
    run = _run_or_404(instance, run_id)
    if not wants_fragment():
        return redirect(url_for("account.instance_detail", instance_id=instance.id,
                                conversation=run.conversation_id, _anchor=f"turn-{run.id}"), 303)
    context = instance_pages._detail_context(instance, **console_context(instance, run.conversation_id or ""))
    html = render_template("account/_turn.html", run=run, instance=instance, live=run.status in LIVE_STATUSES,
                           replayed=False, hold_of=hold_amount, failure_of=failure_code)
    if run.session_stale:  # it ended without a reply the user saw: the next turn starts afresh, say so
        html += render_template("account/_fresh_memory_note.html")
    if run.status not in LIVE_STATUSES:  # what it settled: the quote's balance and the last runs
        html += render_block("account/instance_detail.html", "quote", **{**context, "oob": True})
        html += render_block("account/instance_detail.html", "recent_runs", **{**context, "oob": True})
    headers = {"Cache-Control": "no-store", "Vary": "HX-Request"}
    if run.status not in LIVE_STATUSES:
        headers["HX-Trigger"] = "credits-changed"
    db.session.commit()
    return html, 200, headers


@bp.post("/instances/<int:instance_id>/runs/<int:run_id>/cancel")
@login_required
def instance_run_cancel(instance_id: int, run_id: int):
    """Stop a run from the console (the run API's cancel). htmx: the turn's status words (its stream
    then ends and shows what was charged); otherwise back to the page at that turn."""
    instance = instance_pages._instance_or_404(instance_id)
    run = _run_or_404(instance, run_id)
    message = "Stopping…"
    if ActionForm().validate_on_submit():
        try:
            run_endings.cancel_run(db.session, run=run)
        except runs.RunError:
            db.session.rollback()
            message = "This run had already ended."
        else:
            db.session.commit()
    else:
        message = "Your session expired. Reload the page and try again."
    if wants_fragment():
        return message, 200, {"Cache-Control": "no-store", "Vary": "HX-Request"}
    flash(message if message != "Stopping…" else "Stopping the run: it shows below what it was charged once it has ended.",
          "success" if message == "Stopping…" else "error")
    return redirect(url_for("account.instance_detail", instance_id=instance.id,
                            conversation=run.conversation_id, _anchor=f"turn-{run.id}"), 303)


@bp.get("/instances/<int:instance_id>/stats")
@login_required
def instance_stats(instance_id: int):
    """The stat cards (credits available, runs this period, credits used): refreshed on `credits-changed`."""
    instance = instance_pages._instance_or_404(instance_id)
    sub = account.subscription(db.session, user=g.user, instance=instance)
    html = render_block("account/instance_detail.html", "stats", instance=instance, sub=sub, ent=sub.entitlements)
    db.session.commit()
    return html, 200, {"Cache-Control": "no-store"}

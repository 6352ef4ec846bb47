"""The run API: 202 and links, event streams (replayed, followed, resumed), Prefer: wait, cancel,
late replies after a timeout, retries after a failure, reading and listing runs, tenant scoping."""
from __future__ import annotations

import json
import threading
import time

import pytest

from app.adapters.runtime import RunOutput, RuntimeFailure
from app.adapters.runtime.builtin import BuiltinRuntime
from app.models import Hold, HoldStatus, Run
from app.services import keys
from app.services.billing.ledger import verify_ledger
from tests.conftest import ON_POSTGRES, login
from tests.factories import make_user
from tests.runtime.test_gateway import QUESTION, make_instance, wallet_of

pytestmark = pytest.mark.usefixtures("run_worker")


def parse_sse(chunks) -> list[dict]:
    """Server-Sent Events from an iterable of byte chunks: [{"id", "event", "data"}] plus comments."""
    events, buffer = [], ""
    for chunk in chunks:
        buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            event: dict = {}
            for line in block.split("\n"):
                if line.startswith(":"):
                    event.setdefault("comment", line[1:].strip())
                    continue
                name, _, value = line.partition(": ")
                event[name] = json.loads(value) if name == "data" else value
            events.append(event)
            if event.get("event") in ("done", "error"):
                return events
    return events


def sse_events(response) -> list[dict]:
    return [e for e in parse_sse(response.response) if "event" in e]


class FrozenRuntime:
    """A built-in runtime that sends a first token, then blocks until released."""

    def __init__(self, monkeypatch, reply: str = "the frozen answer") -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.reply = reply
        frozen = self

        def run(self, runtime_ref, input_text, session_id, context, *, on_token=None, max_units=None, control=None):
            frozen.started.set()
            if on_token is not None:
                on_token("thinking… ")
            frozen.release.wait(30)
            return RunOutput(text=frozen.reply, usage_units=len(input_text) + len(frozen.reply))

        monkeypatch.setattr(BuiltinRuntime, "run", run)


def wait_for_status(session, run_id, status, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        session.expire_all()
        run = session.get(Run, run_id)
        if run.status == status:
            return run
        session.commit()
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} is {session.get(Run, run_id).status}, not {status}")


def test_a_run_is_accepted_at_once_with_links_and_its_events_replay_then_resume(buyer_client, session, buyer):
    instance = make_instance(session, buyer)
    balance = wallet_of(session, instance).balance

    accepted = buyer_client.post(f"/api/instances/{instance.id}/runs", json={"input": QUESTION})

    assert accepted.status_code == 202
    body = accepted.get_json()
    run_id = body["id"]
    assert body["status"] == "queued" and body["output"] is None
    assert body["links"] == {"self": f"/api/runs/{run_id}", "events": f"/api/runs/{run_id}/events",
                             "cancel": f"/api/runs/{run_id}/cancel"}
    assert accepted.headers["Location"] == f"/api/runs/{run_id}"

    stream = buyer_client.get(body["links"]["events"], buffered=False)
    assert stream.status_code == 200 and stream.mimetype == "text/event-stream"
    events = sse_events(stream)
    kinds = [e["event"] for e in events]
    assert kinds[:2] == ["status", "status"] and kinds[-1] == "done" and set(kinds[2:-1]) == {"token"}
    assert [e["data"] for e in events[:2]] == [{"status": "queued"}, {"status": "running"}]
    assert [int(e["id"]) for e in events] == list(range(1, len(events) + 1))
    streamed = "".join(e["data"]["text"] for e in events if e["event"] == "token")
    done = events[-1]["data"]
    assert done["run"]["status"] == "succeeded" and done["run"]["output"] == streamed
    assert done["credits"] == done["run"]["credits"] == 3
    assert wallet_of(session, instance).balance == balance - 3

    resumed = sse_events(buyer_client.get(body["links"]["events"], headers={"Last-Event-ID": "2"}, buffered=False))
    assert resumed == events[2:]
    read = buyer_client.get(f"/api/runs/{run_id}")
    assert read.status_code == 200 and read.get_json()["output"] == streamed


def test_a_streamed_run_sends_tokens_before_it_ends(buyer_client, session, buyer, monkeypatch):
    frozen = FrozenRuntime(monkeypatch)
    instance = make_instance(session, buyer)

    response = buyer_client.post(f"/api/instances/{instance.id}/runs", json={"input": QUESTION, "stream": True},
                                 buffered=False)

    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    seen = []
    chunks = iter(response.response)
    while not any(e.get("event") == "token" for e in seen):  # the first token arrives while the run still runs
        seen += parse_sse([next(chunks)])
    run_id = int(buyer_client.get(f"/api/instances/{instance.id}/runs").get_json()["items"][0]["id"])
    assert session.get(Run, run_id).status == "running"
    frozen.release.set()
    rest = parse_sse(chunks)
    events = [e for e in seen + rest if "event" in e]
    assert events[-1]["event"] == "done" and events[-1]["data"]["run"]["output"] == "the frozen answer"
    assert any(e["event"] == "token" and e["data"] == {"text": "thinking… "} for e in events)


def test_accept_event_stream_streams_too(buyer_client, session, buyer):
    instance = make_instance(session, buyer)
    response = buyer_client.post(f"/api/instances/{instance.id}/runs", json={"input": QUESTION},
                                 headers={"Accept": "text/event-stream"}, buffered=False)
    events = sse_events(response)
    assert events[-1]["event"] == "done"


def test_prefer_wait_answers_the_finished_run_or_202_when_it_takes_longer(buyer_client, session, buyer, monkeypatch):
    instance = make_instance(session, buyer)
    finished = buyer_client.post(f"/api/instances/{instance.id}/runs", json={"input": QUESTION},
                                 headers={"Prefer": "wait=20"})
    assert finished.status_code == 201 and finished.headers["Preference-Applied"] == "wait=20"
    assert finished.get_json()["status"] == "succeeded"

    frozen = FrozenRuntime(monkeypatch)
    started = time.monotonic()
    slow = buyer_client.post(f"/api/instances/{instance.id}/runs", json={"input": QUESTION}, headers={"Prefer": "wait=1"})
    assert slow.status_code == 202 and slow.get_json()["status"] in ("queued", "running")
    assert 0.9 <= time.monotonic() - started < 10
    frozen.release.set()
    capped = buyer_client.post(f"/api/instances/{instance.id}/runs", json={"input": QUESTION},
                               headers={"Prefer": "wait=600"})
    assert capped.headers["Preference-Applied"] == "wait=60"


def test_cancelling_a_running_run_stops_it_releases_its_hold_and_the_ledger_verifies(buyer_client, session, buyer,
                                                                                     monkeypatch):
    frozen = FrozenRuntime(monkeypatch)
    instance = make_instance(session, buyer)
    balance = wallet_of(session, instance).balance
    run_id = buyer_client.post(f"/api/instances/{instance.id}/runs", json={"input": QUESTION}).get_json()["id"]
    wait_for_status(session, run_id, "running")

    cancelled = buyer_client.post(f"/api/runs/{run_id}/cancel")

    assert cancelled.status_code == 202
    events = sse_events(buyer_client.get(f"/api/runs/{run_id}/events", buffered=False))
    assert events[-1]["event"] == "error" and events[-1]["data"]["code"] == "run_cancelled"
    run = wait_for_status(session, run_id, "cancelled")
    assert run.session_stale
    # the built-in runtime counts what it delivered ("thinking… " and the input): that is charged, no more
    hold = session.get(Hold, run.hold_id)
    wallet = wallet_of(session, instance)
    assert (hold.status, hold.captured, run.credits) == (HoldStatus.SETTLED.value, 3, 3)
    assert run.output_text == "thinking… " and "Charged 3 credits" in run.error
    assert wallet.balance == balance - 3
    assert wallet.held == 0
    again = buyer_client.post(f"/api/runs/{run_id}/cancel")
    assert again.status_code == 409 and again.get_json()["code"] == "run_finished"
    frozen.release.set()
    assert verify_ledger(session) == []


@pytest.mark.postgres_only
def test_cancelling_a_queued_run_releases_its_hold_at_once(client, session, buyer, make_app):
    app = make_app()  # the newest app: the worker thread runs its jobs; this one never gets a worker
    app.config["WTF_CSRF_ENABLED"] = False
    instance = make_instance(session, buyer)
    balance = wallet_of(session, instance).balance
    raw = app.test_client()
    login(raw, buyer)
    import app.services.jobs as jobs_service

    deferred = []
    original = jobs_service.defer
    jobs_service.defer = lambda *a, **k: deferred.append(k)  # the job is never queued: the run stays queued
    try:
        run_id = raw.post(f"/api/instances/{instance.id}/runs", json={"input": QUESTION}).get_json()["id"]
    finally:
        jobs_service.defer = original
    assert wallet_of(session, instance).held > 0

    cancelled = raw.post(f"/api/runs/{run_id}/cancel")

    assert cancelled.status_code == 202 and cancelled.get_json()["status"] == "cancelled"
    wallet = wallet_of(session, instance)
    assert (wallet.balance, wallet.held) == (balance, 0)
    assert verify_ledger(session) == []


def test_a_reply_after_the_timeout_is_recorded_not_charged_and_the_conversation_starts_afresh(
        make_app, session, buyer, monkeypatch):
    app = make_app(RUN_TIMEOUT=0.5, RUN_LATE_WAIT=10)
    client = app.test_client()
    login(client, buyer)
    frozen = FrozenRuntime(monkeypatch, reply="an answer nobody saw")
    instance = make_instance(session, buyer)
    balance = wallet_of(session, instance).balance

    response = client.post(f"/api/instances/{instance.id}/runs", json={"input": QUESTION, "session_id": "chat-1"},
                           headers={"Prefer": "wait=20"})

    assert response.status_code == 504
    body = response.get_json()
    assert body["code"] == "run_timeout" and body["run"]["status"] == "timed_out"
    assert "not charged" in body["detail"]
    frozen.release.set()  # the runtime answers after we gave up
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        session.expire_all()
        run = session.get(Run, body["run"]["id"])
        if run.late_output is not None:
            break
        session.commit()
        time.sleep(0.05)
    assert run.late_output == "an answer nobody saw"
    assert (run.output_text, run.credits, run.session_stale) == (None, 0, True)
    assert wallet_of(session, instance).balance == balance and wallet_of(session, instance).held == 0
    assert client.get(f"/api/runs/{run.id}").get_json()["late_output"] is True

    monkeypatch.undo()
    following = client.post(f"/api/instances/{instance.id}/runs", json={"input": QUESTION, "session_id": "chat-1"},
                            headers={"Prefer": "wait=20"}).get_json()
    assert following["status"] == "succeeded"
    assert following["session_id"] == f"inst{instance.id}-chat-1-r{run.id}" != run.session_id
    assert following["conversation_id"] == "chat-1"
    third = client.post(f"/api/instances/{instance.id}/runs", json={"input": QUESTION, "session_id": "chat-1"},
                        headers={"Prefer": "wait=20"}).get_json()
    assert third["session_id"] == following["session_id"]  # the conversation goes on in its new session
    assert verify_ledger(session) == []


def test_a_retry_after_a_failure_is_a_new_attempt_and_a_success_still_replays(buyer_client, session, buyer,
                                                                                 monkeypatch):
    real = BuiltinRuntime.run
    calls = []

    def fails_once(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeFailure("The agent runtime cannot be reached right now. Try again in a moment.")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(BuiltinRuntime, "run", fails_once)
    instance = make_instance(session, buyer)
    url = f"/api/instances/{instance.id}/runs"
    headers = {"Idempotency-Key": "order-7", "Prefer": "wait=20"}

    failed = buyer_client.post(url, json={"input": QUESTION}, headers=headers)
    retried = buyer_client.post(url, json={"input": QUESTION}, headers=headers)
    replayed = buyer_client.post(url, json={"input": QUESTION}, headers=headers)

    assert failed.status_code == 502
    assert retried.status_code == 201 and retried.get_json()["id"] != failed.get_json()["run"]["id"]
    assert replayed.status_code == 200 and replayed.get_json()["id"] == retried.get_json()["id"]
    assert replayed.get_json()["replayed"] is True
    assert len(calls) == 2
    first = session.get(Run, failed.get_json()["run"]["id"])
    assert first.status == "failed" and first.credits == 0
    assert verify_ledger(session) == []


def test_runs_are_listed_newest_first_with_a_cursor(buyer_client, session, buyer):
    instance = make_instance(session, buyer)
    ids = [buyer_client.post(f"/api/instances/{instance.id}/runs", json={"input": QUESTION},
                             headers={"Prefer": "wait=20"}).get_json()["id"] for _ in range(3)]

    first = buyer_client.get(f"/api/instances/{instance.id}/runs?limit=2").get_json()
    second = buyer_client.get(f"/api/instances/{instance.id}/runs?limit=2&cursor={first['next_cursor']}").get_json()
    bad = buyer_client.get(f"/api/instances/{instance.id}/runs?cursor=abc")

    assert [r["id"] for r in first["items"]] == ids[::-1][:2]
    assert [r["id"] for r in second["items"]] == ids[:1] and second["next_cursor"] is None
    assert bad.status_code == 422


def test_every_run_route_stays_in_its_tenant(client, session, buyer):
    instance = make_instance(session, buyer)
    other = make_instance(session, buyer, slug="meeting-notes-summarizer")
    _, other_key = keys.create_api_key(session, instance=other, actor=buyer, name="other")
    outsider = make_user(session, email="outsider-runs@example.test")
    session.commit()
    login(client, buyer)
    run_id = client.post(f"/api/instances/{instance.id}/runs", json={"input": QUESTION},
                         headers={"Prefer": "wait=20"}).get_json()["id"]

    routes = [("get", f"/api/runs/{run_id}"), ("get", f"/api/runs/{run_id}/events"),
              ("post", f"/api/runs/{run_id}/cancel"), ("get", f"/api/instances/{instance.id}/runs")]
    as_key = {"X-API-Key": other_key}
    key_client = client.application.test_client()
    for method, url in routes:
        assert getattr(key_client, method)(url, headers=as_key).status_code == 404, url
    outsider_client = client.application.test_client()
    login(outsider_client, outsider)
    for method, url in routes:
        assert getattr(outsider_client, method)(url).status_code == 404, url
    anonymous = client.application.test_client()
    for method, url in routes:
        assert getattr(anonymous, method)(url).status_code == 401, url
    owner = client.application.test_client()
    login(owner, buyer)
    assert owner.get(f"/api/runs/{run_id}").status_code == 200
    assert owner.get(f"/api/runs/{run_id + 1000}").status_code == 404


def test_the_openapi_document_describes_the_run_api(client):
    document = client.get("/api/openapi.json").get_json()
    paths = document["paths"]
    created = paths["/api/instances/{instance_id}/runs"]["post"]["responses"]
    assert {"200", "201", "202", "402", "404", "409", "422", "429", "502", "504"} <= set(created)
    assert "text/event-stream" in created["200"]["content"]
    assert "get" in paths["/api/instances/{instance_id}/runs"]
    assert "get" in paths["/api/runs/{run_id}"]
    events = paths["/api/runs/{run_id}/events"]["get"]
    assert "text/event-stream" in events["responses"]["200"]["content"]
    assert "post" in paths["/api/runs/{run_id}/cancel"]
    for path in ("/api/runs/{run_id}", "/api/runs/{run_id}/events", "/api/runs/{run_id}/cancel"):
        operation = next(iter(paths[path].values()))
        assert {"instanceApiKey": []} in operation["security"]
        assert operation["tags"] == ["runs"]


def test_a_queued_run_whose_job_died_is_failed_and_released_by_the_sweep(session, buyer, app):
    from datetime import timedelta

    from app.models import utcnow
    from app.services import run_endings, run_events, runs

    instance = make_instance(session, buyer)
    balance = wallet_of(session, instance).balance
    prepared = runs.start_run(session, instance=instance, input_text=QUESTION, user=buyer,
                              now=utcnow() - timedelta(minutes=10))
    session.commit()  # queued, but its job never ran

    assert run_endings.fail_stale_runs(session) == 1
    session.commit()

    run = session.get(Run, prepared.run_id)
    assert run.status == "failed"
    [event] = run_events.events_after(session, run_id=run.id)
    assert event.kind == "error" and event.data["code"] == "run_failed"
    wallet = wallet_of(session, instance)
    assert (wallet.balance, wallet.held) == (balance, 0)


def test_a_timeout_closes_the_langflow_stream_so_the_runner_is_free_at_once(make_app, session, buyer):
    from app.jobs.engine import wait_for_background
    from tests.runtime import fake_langflow

    server, langflow = fake_langflow.start()
    try:
        app = make_app(LANGFLOW_URL=langflow.url, LANGFLOW_API_KEY=fake_langflow.API_KEY, LANGFLOW_TIMEOUT=60,
                       RUN_TIMEOUT=1, RUN_LATE_WAIT=30)
        client = app.test_client()
        login(client, buyer)
        instance = make_instance(session, buyer)
        instance.version.runtime_kind, instance.version.runtime_ref = "langflow", "frozen"
        session.commit()
        balance = wallet_of(session, instance).balance
        started = time.monotonic()

        response = client.post(f"/api/instances/{instance.id}/runs", json={"input": "hi", "session_id": "c"},
                               headers={"Prefer": "wait=20"})

        assert response.status_code == 504 and response.get_json()["code"] == "run_timeout"
        run_id = response.get_json()["run"]["id"]
        # the stream was closed when we gave up: the runtime call ended, so the runner did not sit out
        # its 30 s of listening for a late reply (Langflow itself cancels a run whose client left)
        if ON_POSTGRES:
            wait_for_status(session, run_id, "timed_out")
        else:
            assert wait_for_background(timeout=15)
        assert time.monotonic() - started < 15
        [request] = langflow.requests
        assert request.query["stream"] == ["true"]
    finally:
        langflow.release.set()
        server.shutdown()
        server.server_close()
    run = session.get(Run, run_id)
    assert (run.status, run.credits, run.late_output, run.session_stale) == ("timed_out", 0, None, True)
    assert wallet_of(session, instance).balance == balance


def test_a_quiet_stream_gets_keep_alive_comments_and_a_closed_one_holds_nothing(buyer_client, session, buyer,
                                                                                monkeypatch):
    from app.services import run_events

    frozen = FrozenRuntime(monkeypatch)
    instance = make_instance(session, buyer)
    run_id = buyer_client.post(f"/api/instances/{instance.id}/runs", json={"input": QUESTION}).get_json()["id"]
    wait_for_status(session, run_id, "running")

    followed = run_events.follow(session, run_id=run_id, heartbeat=0.3, until=time.monotonic() + 5)
    seen = [next(followed) for _ in range(4)]  # queued, running, the first token, then nothing for a while
    followed.close()

    assert [e.kind for e in seen[:3]] == ["status", "status", "token"] and seen[3] is None
    frozen.release.set()
    wait_for_status(session, run_id, "succeeded")


@pytest.mark.postgres_only
def test_a_caller_waiting_for_a_run_is_woken_by_its_end_not_by_a_poll(buyer_client, session, buyer, monkeypatch):
    """`Prefer: wait` sleeps until the run's final event is announced (`<run id>:end`); its token
    events do not wake it, and it does not depend on the safety poll."""
    from app.services import run_events

    monkeypatch.setattr(run_events, "PG_SAFETY_POLL", 60.0)
    frozen = FrozenRuntime(monkeypatch)
    instance = make_instance(session, buyer)
    run_id = buyer_client.post(f"/api/instances/{instance.id}/runs", json={"input": QUESTION}).get_json()["id"]
    wait_for_status(session, run_id, "running")
    session.commit()

    threading.Timer(0.3, frozen.release.set).start()
    started = time.monotonic()
    assert run_events.wait_for_end(session, run_id=run_id, until=started + 30)
    assert time.monotonic() - started < 10
    assert session.get(Run, run_id).status == "succeeded"
    kinds = [e.kind for e in run_events.events_after(session, run_id=run_id)]
    assert kinds[:2] == ["status", "status"] and "token" in kinds and kinds[-1] == "done"


@pytest.mark.postgres_only
def test_a_caller_that_starts_waiting_after_the_end_was_announced_is_answered_without_a_read(
        session, buyer, monkeypatch):
    """`Prefer: wait` skips its first database read when the process's listener has been listening
    since before the run was queued: an end announced before the caller began to wait is remembered.
    When the listener may have missed it (it was not listening yet), the database is read."""
    from app.services import run_events, runs

    listener = run_events._listener_for(session.get_bind().url.render_as_string(hide_password=False))
    deadline = time.monotonic() + 10
    while listener.listening_since is None and time.monotonic() < deadline:
        time.sleep(0.01)
    instance = make_instance(session, buyer)

    def queued_and_ended() -> tuple[int, float]:
        queued_at = time.monotonic()
        prepared = runs.start_run(session, instance=instance, input_text=QUESTION, user=buyer)
        runs.queue_run(session, prepared=prepared)
        session.commit()
        wait_for_status(session, prepared.run_id, "succeeded")
        session.commit()
        end = time.monotonic() + 10  # the listener hears the end a moment after the commit
        while prepared.run_id not in listener.recent_ends and time.monotonic() < end:
            time.sleep(0.01)
        return prepared.run_id, queued_at

    reads = []
    real_has_ended = run_events.has_ended
    monkeypatch.setattr(run_events, "has_ended", lambda s, run_id: reads.append(run_id) or real_has_ended(s, run_id))

    run_id, queued_at = queued_and_ended()
    assert run_events.wait_for_end(session, run_id=run_id, until=time.monotonic() + 5, queued_at=queued_at)
    assert reads == []

    run_id, queued_at = queued_and_ended()  # as if the listener had reconnected after the run was queued
    monkeypatch.setattr(listener, "listening_since", queued_at + 0.001)
    assert run_events.wait_for_end(session, run_id=run_id, until=time.monotonic() + 5, queued_at=queued_at)
    assert reads == [run_id]


def _queued_at(session, instance, buyer, *, seconds_ago: int) -> int:
    """A run started (and its credits held for HOLD_TTL_SECONDS) `seconds_ago`, handed to the runner now."""
    from datetime import timedelta

    from app.models import utcnow
    from app.services import runs

    prepared = runs.start_run(session, instance=instance, input_text=QUESTION, user=buyer,
                              now=utcnow() - timedelta(seconds=seconds_ago))
    runs.queue_run(session, prepared=prepared)
    session.commit()
    return prepared.run_id


def test_a_run_that_waited_in_the_queue_keeps_its_credits_held_while_it_runs(session, buyer, app):
    from datetime import timedelta

    instance = make_instance(session, buyer)
    balance = wallet_of(session, instance).balance
    run_id = _queued_at(session, instance, buyer, seconds_ago=290)  # its hold has 10 s left

    run = wait_for_status(session, run_id, "succeeded")

    hold = session.get(Hold, run.hold_id)
    assert hold.status == HoldStatus.SETTLED.value
    # taken by the runner, the hold was kept for the run's time limit, not the 10 s it had left
    assert hold.expires_at - run.started_at >= timedelta(seconds=app.config.get("RUN_TIMEOUT") or 60)
    assert run.credits == 3 and wallet_of(session, instance).balance == balance - 3
    assert verify_ledger(session) == []


def test_a_run_whose_hold_ran_out_in_the_queue_does_not_run_and_costs_nothing(session, buyer):
    from app.services import run_events

    instance = make_instance(session, buyer)
    balance = wallet_of(session, instance).balance
    run_id = _queued_at(session, instance, buyer, seconds_ago=330)  # its hold ended 30 s ago

    run = wait_for_status(session, run_id, "failed")

    assert run.error == "The run waited too long to start. You were not charged; try again."
    assert run.credits == 0 and run.output_text is None
    assert session.get(Hold, run.hold_id).status in (HoldStatus.RELEASED.value, HoldStatus.EXPIRED.value)
    final = run_events.events_after(session, run_id=run_id)[-1]
    assert final.kind == "error"
    wallet = wallet_of(session, instance)
    assert (wallet.balance, wallet.held) == (balance, 0)
    assert verify_ledger(session) == []


def test_the_sweep_judges_a_running_run_by_when_it_started_not_when_it_was_queued(session, buyer):
    """A run that waited long in the queue and was taken a moment ago is not failed under its runner;
    one still `running` longer than its time limit (and the margin) after it started lost its runner."""
    from datetime import timedelta

    from app.models import utcnow
    from app.services import run_endings, runs

    instance = make_instance(session, buyer)
    prepared = runs.start_run(session, instance=instance, input_text=QUESTION, user=buyer,
                              now=utcnow() - timedelta(minutes=10))
    run = session.get(Run, prepared.run_id)
    run.status, run.started_at = "running", utcnow() - timedelta(seconds=30)
    session.commit()

    assert run_endings.fail_stale_runs(session, run_timeout=60) == 0
    session.commit()
    assert session.get(Run, prepared.run_id).status == "running"

    run = session.get(Run, prepared.run_id)
    run.started_at = utcnow() - timedelta(seconds=60) - runs.RUN_HOLD_MARGIN - timedelta(seconds=5)
    session.commit()
    assert run_endings.fail_stale_runs(session, run_timeout=60) == 1
    session.commit()
    assert session.get(Run, prepared.run_id).status == "failed"

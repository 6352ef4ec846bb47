"""The run console's stream, Stop button, conversations and stat cards (instance page)."""
import re
import time

import pytest
from sqlalchemy import select

from app.models import Run, RunEvent
from app.services.billing.ledger import verify_ledger
from tests.account.test_console_and_billing import HTMX, QUESTION, finish, run_console, run_id_in
from tests.conftest import login
from tests.factories import make_user
from tests.runtime.test_gateway import make_instance, wallet_of

pytestmark = pytest.mark.usefixtures("run_worker")

LONG_ANSWER = "Summarize: " + " ".join(f"Point {n}: we decided to ship feature {n} by Friday." for n in range(40))


def events_of(text: str) -> list[tuple[str, str]]:
    """(event, data) pairs of an event stream whose data are HTML fragments."""
    pairs = []
    for block in text.split("\n\n"):
        lines = [line for line in block.split("\n") if line and not line.startswith(":")]
        if not lines:
            continue
        event = next(line[7:] for line in lines if line.startswith("event: "))
        data = "\n".join(line[6:] for line in lines if line.startswith("data: "))
        pairs.append((event, data))
    return pairs


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def test_the_stream_relays_the_runs_events_as_escaped_html_then_ends(buyer_client, session, buyer):
    instance = make_instance(session, buyer)
    html = run_console(buyer_client, instance, input="<b>How do I reset my password?</b>").get_data(as_text=True)
    run_id = run_id_in(html)

    stream = buyer_client.get(f"/account/instances/{instance.id}/runs/{run_id}/stream")

    assert stream.mimetype == "text/event-stream"
    assert stream.headers["Cache-Control"] == "no-store"
    events = events_of(stream.get_data(as_text=True))
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "status" and kinds[-1] == "end" and "token" in kinds
    output = "".join(data for kind, data in events if kind == "token")
    assert "Go to Settings &gt; Security" in output and "<" not in output  # text, never markup
    costs = [data for kind, data in events if kind == "cost"]
    assert costs and re.fullmatch(r"\d+ credits? so far \(up to 12 held\)", costs[-1])
    assert costs[-1].startswith("3 credits")  # what it settles: 2 per run + 1 per started 1,000 characters
    session.expire_all()
    assert session.get(Run, run_id).credits == 3


def test_a_resumed_stream_sends_only_what_came_after_the_last_event(buyer_client, session, buyer):
    instance = make_instance(session, buyer)
    run_id = run_id_in(run_console(buyer_client, instance).get_data(as_text=True))
    buyer_client.get(f"/account/instances/{instance.id}/runs/{run_id}/stream").get_data()
    last_token = session.scalar(select(RunEvent.seq).where(RunEvent.run_id == run_id, RunEvent.kind == "token")
                                .order_by(RunEvent.seq.desc()).limit(1))

    resumed = buyer_client.get(f"/account/instances/{instance.id}/runs/{run_id}/stream",
                               headers={"Last-Event-ID": str(last_token)})

    assert [kind for kind, _ in events_of(resumed.get_data(as_text=True))] == ["end"]


def test_another_organizations_runs_and_other_instances_runs_are_not_found(client, session, buyer):
    instance = make_instance(session, buyer)
    other = make_instance(session, buyer, slug="meeting-notes-summarizer")
    login(client, buyer)
    run_id = run_id_in(run_console(client, instance).get_data(as_text=True))
    client.get(f"/account/instances/{instance.id}/runs/{run_id}/stream").get_data()

    wrong_instance = client.get(f"/account/instances/{other.id}/runs/{run_id}/stream")
    wrong_turn = client.get(f"/account/instances/{other.id}/runs/{run_id}", headers=HTMX)
    outsider = make_user(session, email="console-outsider@example.test")
    session.commit()
    login(client, outsider)
    foreign = [client.get(f"/account/instances/{instance.id}/runs/{run_id}/stream"),
               client.get(f"/account/instances/{instance.id}/runs/{run_id}", headers=HTMX),
               client.post(f"/account/instances/{instance.id}/runs/{run_id}/cancel", headers=HTMX),
               client.get(f"/account/instances/{instance.id}/stats")]

    assert wrong_instance.status_code == 404 and wrong_turn.status_code == 404
    assert [r.status_code for r in foreign] == [404, 404, 404, 404]


def test_turns_of_a_conversation_share_the_agents_memory_and_past_ones_can_be_reopened(buyer_client, session, buyer):
    instance = make_instance(session, buyer)
    first = run_console(buyer_client, instance, key="t1").get_data(as_text=True)
    conversation = re.search(r'name="conversation_id" type="hidden" value="([^"]+)"', first).group(1)
    finish(buyer_client, instance, first)
    second = run_console(buyer_client, instance, key="t2", input="And how do I change my email?",
                         conversation_id=conversation).get_data(as_text=True)
    finish(buyer_client, instance, second)

    session.expire_all()
    turns = session.scalars(select(Run).order_by(Run.id)).all()
    assert [t.conversation_id for t in turns] == [conversation, conversation]
    assert turns[0].session_id == turns[1].session_id == f"inst{instance.id}-{conversation}"
    assert "This conversation · 2 turns" in second
    assert f'value="{conversation}"' in second  # the next turn stays in it

    fresh = buyer_client.get(f"/account/instances/{instance.id}").get_data(as_text=True)
    assert "New conversation</h3>" in fresh and f'value="{conversation}"' not in fresh
    assert "Past conversations (1)" in fresh
    assert f'href="/account/instances/{instance.id}?conversation={conversation}#console"' in fresh
    reopened = buyer_client.get(f"/account/instances/{instance.id}?conversation={conversation}").get_data(as_text=True)
    assert "How do I reset my password?</pre>" in reopened and "And how do I change my email?</pre>" in reopened
    assert re.search(r'href="/account/instances/%d\?conversation=c-[0-9a-f]{20}#console">New conversation</a>' % instance.id,
                     reopened)


def test_a_conversation_id_that_is_not_ours_starts_a_new_conversation(buyer_client, session, buyer):
    instance = make_instance(session, buyer)

    page = buyer_client.get(f"/account/instances/{instance.id}?conversation=<script>").get_data(as_text=True)

    assert "New conversation</h3>" in page and "&lt;script&gt;" not in page
    assert re.search(r'name="conversation_id" type="hidden" value="c-[0-9a-f]{20}"', page)


def test_stop_ends_a_running_run_charges_what_was_delivered_and_the_next_turn_starts_afresh(
        app, buyer_client, session, buyer):
    app.config["BUILTIN_STREAM_DELAY_MS"] = 60
    instance = make_instance(session, buyer, slug="meeting-notes-summarizer")
    html = run_console(buyer_client, instance, key="s1", input=LONG_ANSWER).get_data(as_text=True)
    run_id = run_id_in(html)
    conversation = re.search(r'name="conversation_id" type="hidden" value="([^"]+)"', html).group(1)
    wait_for(lambda: session.scalar(select(RunEvent.seq).where(RunEvent.run_id == run_id, RunEvent.kind == "token")
                                    .limit(1)) is not None and not session.commit())
    live_page = buyer_client.get(f"/account/instances/{instance.id}?conversation={conversation}")
    assert '<noscript><meta http-equiv="refresh" content="3"></noscript>' in live_page.get_data(as_text=True)

    stopping = buyer_client.post(f"/account/instances/{instance.id}/runs/{run_id}/cancel", headers=HTMX)
    turn = finish(buyer_client, instance, html)

    assert stopping.get_data(as_text=True) == "Stopping…"
    session.expire_all()
    run = session.get(Run, run_id)
    assert run.status == "cancelled" and run.session_stale
    done = turn.get_data(as_text=True)
    assert "<strong>Stopped.</strong>" in done
    assert turn.headers["HX-Trigger"] == "credits-changed"
    if run.credits:
        assert f"<strong>{run.credits} credit{'' if run.credits == 1 else 's'}</strong> charged for what was delivered" in done
    else:
        assert "nothing was charged" in done
    assert wallet_of(session, instance).balance == 500 - run.credits
    assert verify_ledger(session) == []

    page = buyer_client.get(f"/account/instances/{instance.id}?conversation={conversation}").get_data(as_text=True)
    assert 'id="fresh-memory-note"' in page
    app.config["BUILTIN_STREAM_DELAY_MS"] = 0
    finish(buyer_client, instance, run_console(buyer_client, instance, key="s2", input=LONG_ANSWER,
                                               conversation_id=conversation).get_data(as_text=True))
    session.expire_all()
    after = session.scalars(select(Run).where(Run.id > run_id)).one()
    assert after.conversation_id == conversation and after.session_id != run.session_id
    assert after.session_id == f"inst{instance.id}-{conversation}-r{run_id}"


def test_stopping_a_run_that_has_ended_says_so_and_without_javascript_goes_back_to_the_turn(
        buyer_client, session, buyer):
    instance = make_instance(session, buyer)
    html = run_console(buyer_client, instance).get_data(as_text=True)
    finish(buyer_client, instance, html)
    run_id = run_id_in(html)

    late = buyer_client.post(f"/account/instances/{instance.id}/runs/{run_id}/cancel", headers=HTMX)
    plain = buyer_client.post(f"/account/instances/{instance.id}/runs/{run_id}/cancel")

    assert late.get_data(as_text=True) == "This run had already ended."
    assert plain.status_code == 303 and plain.headers["Location"].endswith(f"#turn-{run_id}")
    assert wallet_of(session, instance).balance == 497


def test_the_stat_cards_refresh_on_credits_changed_with_the_runs_and_credits_used(buyer_client, session, buyer):
    instance = make_instance(session, buyer)
    page = buyer_client.get(f"/account/instances/{instance.id}").get_data(as_text=True)
    assert (f'id="stats" aria-label="At a glance" hx-get="/account/instances/{instance.id}/stats" '
            'hx-trigger="credits-changed from:body"') in page

    finish(buyer_client, instance, run_console(buyer_client, instance).get_data(as_text=True))
    stats = buyer_client.get(f"/account/instances/{instance.id}/stats").get_data(as_text=True)

    assert stats.lstrip().startswith('<section class="grid grid-4 stats" id="stats"')
    assert re.search(r'Credits available</span><span class="stat-value">497<', stats)
    assert re.search(r'Runs this period</span><span class="stat-value">1[<]', stats)
    assert re.search(r'Credits used this period</span><span class="stat-value">3<', stats)

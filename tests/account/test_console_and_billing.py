"""The run console on the instance page, Billing & Credits, the ledger export and the credits badge."""
import csv
import io
import json
import re
from datetime import timedelta

from sqlalchemy import func, select

from app.adapters.runtime import RuntimeFailure
from app.adapters.runtime.builtin import BuiltinRuntime
from app.models import InstanceStatus, LedgerEntry, Notification, Run, utcnow
from app.services import billing
from tests.runtime.test_gateway import make_instance, set_balance, wallet_of
import pytest

# runs started here are executed (on PostgreSQL by a worker thread)
pytestmark = pytest.mark.usefixtures("run_worker")

QUESTION = "How do I reset my password?"
HTMX = {"HX-Request": "true"}


def run_console(client, instance, key="console-key-1", htmx=True, **data):
    return client.post(f"/account/instances/{instance.id}/runs", data={"input": QUESTION, "idempotency_key": key, **data},
                       headers=HTMX if htmx else {})


def run_id_in(html: str) -> int:
    """The newest turn's run in a console answer."""
    return int(re.findall(r'data-run-id="(\d+)"', html)[-1])


def finish(client, instance, html: str):
    """Follow the console's stream of the newest turn to its end, then fetch the finished turn as
    the page does (htmx); returns that answer."""
    run_id = run_id_in(html)
    stream = client.get(f"/account/instances/{instance.id}/runs/{run_id}/stream")
    assert "event: end" in stream.get_data(as_text=True)
    return client.get(f"/account/instances/{instance.id}/runs/{run_id}", headers=HTMX)


def runs_in(session):
    session.expire_all()
    return session.scalar(select(func.count()).select_from(Run))


def test_the_console_shows_the_cost_quote_before_running(buyer_client, session, buyer):
    instance = make_instance(session, buyer)

    page = buyer_client.get(f"/account/instances/{instance.id}").get_data(as_text=True)

    assert "<strong>2 credits per run</strong> + 1 per 1,000 characters of input and output." in page
    assert "A run costs at most <strong>12 credits</strong>, or your spending cap if it is lower. 500 available." in page
    assert 'name="spending_cap"' in page and 'name="idempotency_key"' in page


def test_an_htmx_run_returns_the_console_block_the_last_runs_and_a_badge_trigger(buyer_client, session, buyer):
    instance = make_instance(session, buyer)

    response = run_console(buyer_client, instance)

    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in html
    assert html.startswith('\n<section class="card console" id="console"')
    assert 'id="recent-runs" aria-labelledby="runs-heading" hx-swap-oob="true"' in html
    assert response.headers["HX-Trigger"] == "credits-changed"  # the hold is taken: the badge follows
    assert "HX-Request" in response.headers["Vary"]
    assert 'value="console-key-1"' not in html  # the next run gets a fresh key
    run_id = run_id_in(html)
    assert f'sse-connect="/account/instances/{instance.id}/runs/{run_id}/stream"' in html
    assert 'aria-live="polite"' in html and ">Stop this run</button>" in html

    turn = finish(buyer_client, instance, html)

    done = turn.get_data(as_text=True)
    assert done.startswith(f'\n<article class="turn turn-succeeded" id="turn-{run_id}"') or \
        f'<article class="turn turn-succeeded" id="turn-{run_id}"' in done
    assert "Go to Settings &gt; Security" in done
    assert "<strong>3 credits</strong> used" in done
    assert 'id="recent-runs" aria-labelledby="runs-heading" hx-swap-oob="true"' in done
    assert turn.headers["HX-Trigger"] == "credits-changed"  # badge and stat cards after the run
    assert wallet_of(session, instance).balance == 497


def test_without_javascript_the_run_answers_with_the_whole_page(buyer_client, session, buyer):
    instance = make_instance(session, buyer)

    response = run_console(buyer_client, instance, htmx=False)

    assert response.status_code == 303
    location = response.headers["Location"]
    run_id = int(location.rsplit("#turn-", 1)[1])
    assert location.startswith(f"/account/instances/{instance.id}?conversation=c-")
    buyer_client.get(f"/account/instances/{instance.id}/runs/{run_id}/stream").get_data()  # until it has ended
    html = buyer_client.get(location).get_data(as_text=True)
    assert "<html" in html and "Go to Settings &gt; Security" in html and 'hx-swap-oob' not in html
    assert 'http-equiv="refresh"' not in html  # nothing left to wait for


def test_resubmitting_the_same_console_form_does_not_charge_twice(buyer_client, session, buyer):
    instance = make_instance(session, buyer)
    finish(buyer_client, instance, run_console(buyer_client, instance, key="same-form").get_data(as_text=True))

    again = run_console(buyer_client, instance, key="same-form", htmx=False)

    assert again.status_code == 303
    page = buyer_client.get(again.headers["Location"]).get_data(as_text=True)
    assert "already run: this is the recorded result, with no new charge" in page
    assert runs_in(session) == 1
    assert wallet_of(session, instance).balance == 497


def test_a_spending_cap_below_the_price_is_a_field_error(buyer_client, session, buyer):
    instance = make_instance(session, buyer)

    response = run_console(buyer_client, instance, spending_cap="1")

    html = response.get_data(as_text=True)
    assert 'id="spending_cap-error"' in html
    assert "The spending cap is below this plan&#39;s price of 2 credits per run." in html
    assert runs_in(session) == 0


def test_out_of_credits_offers_credit_packs_into_the_cart(buyer_client, session, buyer):
    instance = make_instance(session, buyer)
    set_balance(session, instance, 5)

    htmx = run_console(buyer_client, instance)
    page = run_console(buyer_client, instance, key="k2", htmx=False)

    assert htmx.status_code == 200 and page.status_code == 402
    html = htmx.get_data(as_text=True)
    assert "Not enough credits: this run may cost up to 12 and 5 are available." in html
    assert html.count('action="/cart/add"') == 3
    assert 'name="sku" value="CREDITS-100"' in html
    assert "Buy 100 credits · $10.00" in html
    assert runs_in(session) == 0
    assert wallet_of(session, instance).balance == 5


def test_a_capped_run_still_fits_a_small_balance(buyer_client, session, buyer):
    instance = make_instance(session, buyer)
    set_balance(session, instance, 5)

    response = run_console(buyer_client, instance, spending_cap="4")

    assert "<strong>3 credits</strong> used" in finish(buyer_client, instance, response.get_data(as_text=True)).get_data(as_text=True)
    assert wallet_of(session, instance).balance == 2


def test_an_ended_trial_points_to_the_plans_and_cannot_run(buyer_client, session, buyer):
    instance = make_instance(session, buyer, is_trial=True, trial_ends_at=utcnow() - timedelta(days=1))

    page = buyer_client.get(f"/account/instances/{instance.id}").get_data(as_text=True)
    refused = run_console(buyer_client, instance)

    assert "Your free trial ended on" in page
    assert 'href="/p/customer-support-agent#plans">See plans</a>' in page
    assert re.search(r'<button type="submit" class="btn btn-primary" disabled aria-disabled="true">Run agent</button>', page)
    assert "The free trial has ended. Choose a plan to keep using this agent." in refused.get_data(as_text=True)
    assert runs_in(session) == 0


def test_a_suspended_instance_says_so_and_how_to_continue(buyer_client, session, buyer):
    instance = make_instance(session, buyer, status=InstanceStatus.SUSPENDED.value)

    page = buyer_client.get(f"/account/instances/{instance.id}").get_data(as_text=True)

    assert "This instance is suspended, so it cannot run." in page
    assert f'action="/account/instances/{instance.id}/resume"' in page  # its owner may resume it right here


def test_a_failed_run_in_the_console_says_nothing_was_charged(buyer_client, session, buyer, monkeypatch):
    def down(self, *args, **kwargs):
        raise RuntimeFailure("The agent runtime cannot be reached right now. Try again in a moment.")

    monkeypatch.setattr(BuiltinRuntime, "run", down)
    instance = make_instance(session, buyer)

    html = finish(buyer_client, instance, run_console(buyer_client, instance).get_data(as_text=True)).get_data(as_text=True)

    assert "The agent runtime cannot be reached right now. Try again in a moment." in html
    assert "its credit hold was released, so nothing was charged." in html
    assert wallet_of(session, instance).balance == 500


# --- Billing & Credits ----------------------------------------------------------------------------


def test_billing_shows_balance_held_available_and_todays_usage_per_instance(buyer_client, session, buyer):
    instance = make_instance(session, buyer)
    finish(buyer_client, instance, run_console(buyer_client, instance).get_data(as_text=True))
    wallet = wallet_of(session, instance)
    billing.authorize(session, wallet=wallet, amount=20, idempotency_key="in-flight", instance_id=instance.id)
    session.commit()

    page = buyer_client.get("/account/billing").get_data(as_text=True)

    stats = re.findall(r'<span class="stat-label">(\w+)</span><span class="stat-value">([\d,]+)</span>', page)
    assert stats == [("Balance", "497"), ("Held", "20"), ("Available", "477")]
    chart = json.loads(re.search(r'<script type="application/json" id="usage-data">(.*?)</script>', page, re.S).group(1))
    assert len(chart["labels"]) == 30
    assert chart["datasets"] == [{"label": f"Customer Support Agent #{instance.id}", "data": [0] * 29 + [3]}]
    assert "vendor/chart.umd.min.js" in page and "js/account.js" in page


def test_the_ledger_pages_with_a_cursor_and_exports_every_entry_as_csv(buyer_client, session, buyer):
    instance = make_instance(session, buyer)
    wallet = wallet_of(session, instance)
    for n in range(30):
        billing.grant_credits(session, wallet=wallet, amount=1, origin="purchase", reference=f"pack {n}")
    billing.grant_credits(session, wallet=wallet, amount=1, origin="purchase", reference="=HYPERLINK(1)")
    session.commit()

    first = buyer_client.get("/account/billing").get_data(as_text=True)
    cursor = re.search(r'href="/account/billing\?before=(\d+)#ledger" rel="next"', first).group(1)
    second = buyer_client.get(f"/account/billing?before={cursor}").get_data(as_text=True)
    export = buyer_client.get("/account/billing/ledger.csv")

    assert first.count('<span class="badge badge-kind-grant">') == 25
    assert second.count('<span class="badge badge-kind-grant">') == 7  # 31 grants + the welcome grant
    assert "Welcome credits" in second and "Welcome credits" not in first
    assert export.headers["Content-Disposition"].startswith("attachment; filename=\"credits-ledger-")
    rows = list(csv.reader(io.StringIO(export.get_data(as_text=True))))
    assert rows[0] == ["id", "created_at", "kind", "amount", "held_change", "balance_after", "instance", "reference",
                       "description"]
    assert len(rows) == 1 + session.scalar(select(func.count()).select_from(LedgerEntry))
    assert rows[1][7] == "'=HYPERLINK(1)"  # no formula injection into spreadsheets
    assert rows[-1][7] == "Welcome credits"
    assert rows[-1][8] == "Welcome credits — 500 credits" and rows[1][8] == "Added 1 credit"


def test_a_low_balance_threshold_notifies_once_when_crossed(buyer_client, session, buyer):
    instance = make_instance(session, buyer)
    set_balance(session, instance, 14)

    saved = buyer_client.post("/account/billing/threshold", data={"threshold": "12"})
    finish(buyer_client, instance, run_console(buyer_client, instance).get_data(as_text=True))  # 14 -> 11

    assert saved.status_code == 303
    page = buyer_client.get("/account/billing").get_data(as_text=True)
    assert "Your credit balance fell below 12: 11 credits left." in page
    badge = buyer_client.get("/account/credits-badge").get_data(as_text=True)
    assert 'class="credits-amount credits-low"' in badge and ">11</strong>" in badge
    buyer_client.post("/account/billing/notifications/read")
    assert "fell below 12" not in buyer_client.get("/account/billing").get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(Notification)) == 1


def test_the_credits_badge_is_a_small_fragment_with_the_available_credits(buyer_client, session, buyer):
    response = buyer_client.get("/account/credits-badge", headers=HTMX)

    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in html
    assert '<strong class="credits-amount" title="500 available">500</strong>' in html
    assert response.headers["Cache-Control"] == "no-store"


def test_account_pages_need_a_signed_in_user(client, demo):
    for url in ("/account/", "/account/settings", "/account/agents", "/account/instances", "/account/billing",
                "/account/billing/ledger.csv", "/account/instances/1"):
        response = client.get(url)
        assert response.status_code == 302 and "/auth/login?next=" in response.headers["Location"], url
    badge = client.get("/account/credits-badge", headers=HTMX)
    assert (badge.status_code, badge.get_data()) == (204, b"")  # htmx keeps the badge; no sign-in page in the header


def test_a_nul_character_in_the_console_input_is_a_field_error(buyer_client, session, buyer):
    instance = make_instance(session, buyer)

    response = run_console(buyer_client, instance, input="reset\x00password")

    assert "The input contains a NUL character; remove it and try again." in response.get_data(as_text=True)
    assert runs_in(session) == 0

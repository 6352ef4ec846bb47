"""Words people read: facet chips by label, audit events as sentences with money, run usage in
characters or tokens."""
import json
import re

import pytest

from app.adapters.commerce import FacetGroup, FacetOption, SearchQuery, SearchResult
from app.models import AuditEvent
from app.services import audit, audit_text
from app.services import catalog as catalog_service
from tests.account.test_console_and_billing import finish, run_console
from tests.conftest import login
from tests.runtime.test_gateway import make_instance

pytestmark = pytest.mark.usefixtures("run_worker")


def _event(action, data, actor="seller@example.com", target_type="offering", target_id="3"):
    return AuditEvent(action=action, actor_label=actor, target_type=target_type, target_id=target_id,
                      data_json=json.dumps(data))


def test_a_plan_price_change_reads_as_a_sentence_in_money():
    event = _event("offering.plan_updated", {"tier": "pro", "sku": "X-PRO", "fields": ["price_minor", "name"],
                                             "price_minor": 24900, "currency": "USD"})

    assert audit_text.describe(event) == (
        "seller@example.com changed the price and name of the Pro plan of offering #3; it costs $249.00 a month.")


def test_orders_holds_and_unknown_actions_show_money_and_credits_not_minor_units():
    placed = _event("order.placed", {"number": "D-1001", "total_minor": 24900, "currency": "EUR", "backend": "local"},
                    actor="buyer@example.com", target_type="order", target_id="1")
    settled = _event("billing.hold_settled", {"amount": 1200, "captured": 3, "instance_id": 4}, actor="system",
                     target_type="hold", target_id="9")
    unknown = _event("refund.made", {"amount_minor": 500, "currency": "GBP", "credits_returned": 1500},
                     actor="operator@example.com", target_type="order", target_id="1")

    assert audit_text.describe(placed) == "buyer@example.com placed order D-1001 for €249.00."
    assert audit_text.describe(settled) == "The system charged 3 credits of a hold of 1,200 credits."
    assert audit_text.describe(unknown) == (
        "operator@example.com: refund made (order #1) — amount minor: £5.00; credits returned: 1,500 credits.")


def test_the_operator_audit_log_and_history_read_as_sentences(client, session, operator, seller):
    audit.record(session, action="offering.plan_updated", target_type="offering", target_id=1, actor=seller,
                 data={"tier": "pro", "sku": "X-PRO", "fields": ["price_minor"], "price_minor": 24900,
                       "currency": "USD"})
    session.commit()
    login(client, operator)

    log = client.get("/operator/audit").text
    history = client.get("/operator/offerings/1").text

    sentence = "seller@example.com changed the price of the Pro plan of offering #1; it costs $249.00 a month."
    assert sentence in log and sentence in history
    assert "price_minor" not in log and "24900" not in log


def test_the_audit_api_carries_the_sentence(client, session, operator):
    from app.services import tokens

    audit.record(session, action="order.paid", target_type="order", target_id=1, actor=operator,
                 data={"number": "D-7", "total_minor": 3900, "currency": "USD"})
    _, secret = tokens.create_token(session, user=operator, name="tests")
    session.commit()

    items = client.get("/api/audit/", headers={"Authorization": f"Bearer {secret}"}).get_json()["items"]

    paid = next(item for item in items if item["action"] == "order.paid")
    assert paid["description"] == "operator@example.com recorded the payment of order D-7: $39.00."


def test_search_chips_show_labels_not_slugs(client, demo):
    page = client.get("/search?outcome=better-decisions&pricing=usage-based").text

    chips = re.findall(r'<a class="chip chip-remove"[^>]*>(.*?)</a>', page, re.S)
    assert [re.sub(r"<[^>]+>|×", "", c).split() for c in chips] == [["Outcome:", "Better", "decisions"],
                                                                    ["Pricing:", "Usage-based"]]


class _PartialCatalog:
    """A backend whose facets list only some values (as a remote store may)."""

    def search(self, query):
        return SearchResult(items=(), total=0, facets=(FacetGroup("pricing", "Pricing", (
            FacetOption("subscription", "Subscription", None),)),), counts_available=False, query=query)

    def facet_labels(self, requested):
        return {"outcome": {"better-decisions": "Better decisions"}} if "outcome" in requested else {}

    def categories(self):
        return []

    def popular(self, limit):
        return []


def test_a_chip_the_result_does_not_label_is_looked_up_or_spelled_out():
    query = SearchQuery(filters=(("outcome", ("better-decisions",)), ("pricing", ("usage-based",))))

    page = catalog_service.search_page(_PartialCatalog(), query)

    assert [(f.group_label, f.label) for f in page.active] == [("Outcome", "Better decisions"),
                                                               ("Pricing", "Usage based")]


def test_a_run_result_counts_characters_not_units(buyer_client, session, buyer):
    instance = make_instance(session, buyer)

    started = run_console(buyer_client, instance).get_data(as_text=True)
    html = finish(buyer_client, instance, started).get_data(as_text=True)
    page = buyer_client.get(f"/account/instances/{instance.id}").get_data(as_text=True)

    assert re.search(r"used · [\d,]+ characters", html)
    assert " units" not in html and " units" not in page


def test_the_api_documents_usage_in_characters_or_tokens(client):
    document = client.get("/api/openapi.json").get_json()

    usage = document["components"]["schemas"]["RunOut"]["properties"]["usage_units"]["description"]
    assert "characters" in usage and "tokens" in usage

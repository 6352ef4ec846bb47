"""The seller's version form: a list of built-in agents and Langflow flows instead of a free-text id, the
check before publishing shown beside the field, tweaks and output component, and an unreachable Langflow."""
from __future__ import annotations

import html
import re
import socket

from sqlalchemy import func, select

from app.models import OfferingVersion
from app.services import offerings as svc
from tests.conftest import login
from tests.runtime.fake_langflow import API_KEY, FLOW_ID, NO_OUTPUT_ID, TWO_OUTPUTS_ID
from tests.seller.test_seller_pages import _counts, _draft, _field_error


def _options(page: str) -> dict[str, list[tuple[str, str]]]:
    """{optgroup label: [(value, text)]} of the runtime select."""
    select_html = re.search(r'<select[^>]*id="runtime"[^>]*>(.*?)</select>', page, re.S).group(1)
    groups = {}
    for label, body in re.findall(r'<optgroup label="([^"]*)">(.*?)</optgroup>', select_html, re.S):
        groups[html.unescape(label)] = [(html.unescape(v), html.unescape(t).strip())
                                        for v, t in re.findall(r'<option[^>]*value="([^"]*)"[^>]*>(.*?)</option>', body)]
    return groups


def _selected(page: str) -> str:
    """The value of the runtime select's selected option."""
    select_html = re.search(r'<select[^>]*id="runtime"[^>]*>(.*?)</select>', page, re.S).group(1)
    [option] = [o for o in re.findall(r"<option[^>]*>", select_html) if "selected" in o]
    return html.unescape(re.search(r'value="([^"]*)"', option).group(1))


def _error(response, field: str) -> str:
    return html.unescape(_field_error(response.get_data(as_text=True), field))


def test_the_form_lists_the_builtin_agents_and_the_langflow_flows(client, session, seller, configured_langflow):
    offering = _draft(session, seller)
    login(client, seller)

    response = client.get(f"/seller/offerings/{offering.id}/versions")

    page = response.get_data(as_text=True)
    assert response.status_code == 200
    groups = _options(page)
    assert list(groups) == ["Built-in agents", "Langflow flows"]
    assert ("builtin:support-faq", "Support FAQ answers") in groups["Built-in agents"]
    assert len(groups["Built-in agents"]) == 10
    assert groups["Langflow flows"] == [
        (f"langflow:{FLOW_ID}", f"Echo ({FLOW_ID})"), (f"langflow:{NO_OUTPUT_ID}", f"Ingest documents ({NO_OUTPUT_ID})"),
        (f"langflow:{TWO_OUTPUTS_ID}", f"Two answers ({TWO_OUTPUTS_ID})")]
    assert _selected(page) == "builtin:support-faq"  # the latest version's, kept by default
    assert 'name="runtime_ref"' not in page and "Langflow's flows are not listed" not in page


def test_a_missing_flow_is_named_beside_the_field_and_nothing_is_published(client, session, seller,
                                                                            configured_langflow):
    offering = _draft(session, seller)
    login(client, seller)
    before = _counts(session)
    missing = "0f0e0d0c-0b0a-4909-8807-060504030201"

    response = client.post(f"/seller/offerings/{offering.id}/versions", data={
        "version": "1.1.0", "runtime": f"langflow:{missing}"})
    no_output = client.post(f"/seller/offerings/{offering.id}/versions", data={
        "version": "1.1.0", "runtime": f"langflow:{NO_OUTPUT_ID}"})

    assert response.status_code == 400
    assert _error(response, "runtime") == (
        f"Langflow has no flow “{missing}”. Choose one of its flows from the list.")
    assert _error(no_output, "runtime").startswith(
        "The flow “Ingest documents” has no Chat Output")
    assert _counts(session) == before


def test_tweaks_and_output_component_are_published_and_shown(client, session, seller, configured_langflow):
    offering = _draft(session, seller)
    login(client, seller)

    refused = client.post(f"/seller/offerings/{offering.id}/versions", data={
        "version": "1.1.0", "runtime": f"langflow:{TWO_OUTPUTS_ID}", "tweaks": '{"ChatInput-a1": {"code": "x"}}'})
    published = client.post(f"/seller/offerings/{offering.id}/versions", data={
        "version": "1.1.0", "changelog": "Reads the main answer.", "runtime": f"langflow:{TWO_OUTPUTS_ID}",
        "output_component": "ChatOutput-main", "tweaks": '{"ChatInput-a1": {"should_store_message": false}}'})

    assert refused.status_code == 400
    assert _error(refused, "tweaks") == (
        "ChatInput-a1: “code” cannot be tweaked; Langflow keeps the flow's own value for it.")
    assert published.status_code == 302
    page = client.get(f"/seller/offerings/{offering.id}/versions").get_data(as_text=True)
    assert "ChatOutput-main" in page and "should_store_message" in page
    assert _selected(page) == f"langflow:{TWO_OUTPUTS_ID}"
    version = session.scalar(select(OfferingVersion).where(OfferingVersion.version == "1.1.0",
                                                           OfferingVersion.offering_id == offering.id))
    assert (version.output_component, version.tweaks) == (
        "ChatOutput-main", {"ChatInput-a1": {"should_store_message": False}})


def test_an_unreachable_langflow_is_said_and_the_current_flow_stays_choosable(client, session, seller, app,
                                                                               configured_langflow):
    offering = _draft(session, seller)
    svc.add_version(session, offering=offering, actor=seller, version="1.1.0", changelog="",
                    runtime_kind="langflow", runtime_ref=FLOW_ID)
    session.commit()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        app.config.update(LANGFLOW_URL=f"http://127.0.0.1:{sock.getsockname()[1]}", LANGFLOW_API_KEY=API_KEY)
    login(client, seller)
    before = _counts(session)

    form = client.get(f"/seller/offerings/{offering.id}/versions")
    posted = client.post(f"/seller/offerings/{offering.id}/versions", data={
        "version": "1.2.0", "runtime": f"langflow:{FLOW_ID}"})

    page = form.get_data(as_text=True)
    assert form.status_code == 200
    assert "Langflow's flows are not listed: Langflow could not be reached." in html.unescape(page)
    assert _options(page)["Current"] == [(f"langflow:{FLOW_ID}", f"Langflow flow: {FLOW_ID} (as now)")]
    assert _selected(page) == f"langflow:{FLOW_ID}"
    assert posted.status_code == 400
    assert _error(posted, "runtime") == (
        "We could not check this flow: Langflow could not be reached. Nothing was published; try again in a moment.")
    assert _counts(session) == before


def test_the_create_form_offers_the_same_list(client, session, seller, configured_langflow):
    login(client, seller)

    page = client.get("/seller/offerings/create").get_data(as_text=True)

    assert list(_options(page)) == ["Built-in agents", "Langflow flows"]
    assert session.scalar(select(func.count()).select_from(OfferingVersion)) > 0


def test_choosing_a_flow_shows_its_outputs_and_the_fields_a_tweak_may_set(client, session, seller,
                                                                            configured_langflow):
    offering = _draft(session, seller)
    login(client, seller)

    chosen = client.get(f"/seller/offerings/{offering.id}/versions/flow", query_string={
        "runtime": f"langflow:{TWO_OUTPUTS_ID}"}, headers={"HX-Request": "true"})
    agent = client.get(f"/seller/offerings/{offering.id}/versions/flow", query_string={"runtime": "builtin:triage"},
                       headers={"HX-Request": "true"})
    broken = client.get(f"/seller/offerings/{offering.id}/versions/flow", query_string={
        "runtime": f"langflow:{NO_OUTPUT_ID}"}, headers={"HX-Request": "true"})

    text = html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", chosen.get_data(as_text=True))))
    assert chosen.status_code == 200 and "<html" not in chosen.get_data(as_text=True)
    assert "Two answers : outputs ChatOutput-main , ChatOutput-other ." in text
    assert "ChatInput-a1 ChatInput: input_value, sender_name, should_store_message" in text
    assert "code" not in text
    assert agent.get_data(as_text=True).strip() == ""
    assert "has no Chat Output" in html.unescape(broken.get_data(as_text=True))


def test_another_publishers_flow_details_are_not_found(client, session, seller, configured_langflow):
    from tests.factories import make_offering, make_org, make_user

    stranger = make_user(session, email="other-seller@example.com", roles=("seller",))
    theirs = make_offering(session, publisher=make_org(session, owner=stranger))
    session.commit()
    login(client, seller)

    response = client.get(f"/seller/offerings/{theirs.id}/versions/flow", query_string={
        "runtime": f"langflow:{TWO_OUTPUTS_ID}"})

    assert response.status_code == 404
    assert [r.path for r in configured_langflow.requests] == []


def test_without_langflow_the_create_form_offers_the_builtin_agents_and_says_why(client, session, seller, app):
    app.config.update(LANGFLOW_API_KEY="")
    login(client, seller)

    page = client.get("/seller/offerings/create").get_data(as_text=True)

    assert list(_options(page)) == ["Built-in agents"]
    assert ("Langflow's flows are not listed: Langflow is not configured. You can choose a built-in agent. A Langflow "
            "flow is checked when you publish") in html.unescape(page)

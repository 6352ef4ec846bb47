"""Operator console: review queue, approve/reject, all offerings, organizations, audit log."""
from __future__ import annotations

import re

from sqlalchemy import func, select

from app.models import AuditEvent
from app.services import audit
from app.services import offerings as svc
from tests.conftest import login


def _submitted(session, seller, name="Memo Writer"):
    publisher = next(o for o in svc.publisher_organizations(session, user=seller) if o.slug == "northwind-ai")
    offering = svc.create_offering(
        session, publisher=publisher, actor=seller, name=name, summary="Writes memos.",
        description_md="Memos.", category="agents", facets={},
    )
    svc.add_version(session, offering=offering, actor=seller, version="1.0.0", changelog="",
                    runtime_kind="builtin", runtime_ref="support-faq")
    svc.set_plan(session, offering=offering, actor=seller, tier="starter", name="Starter", price_minor=900,
                 currency="USD", included_credits=10, credits_per_run=1, max_runs_per_period=None)
    svc.submit_for_review(session, offering=offering, actor=seller)
    session.commit()
    return offering


def test_review_queue_lists_submitted_offerings(client, session, seller, operator):
    offering = _submitted(session, seller)
    login(client, operator)

    html = client.get("/operator/").get_data(as_text=True)

    assert f'href="/operator/offerings/{offering.id}"><strong>Memo Writer</strong>' in html
    assert "Northwind AI" in html


def test_approve_publishes_the_offering_into_the_catalog(client, session, seller, operator):
    offering = _submitted(session, seller)
    login(client, operator)
    assert "Memo Writer" not in client.get("/search?q=memo").get_data(as_text=True)

    response = client.post(f"/operator/offerings/{offering.id}/approve")

    assert response.status_code == 302
    session.expire_all()
    assert offering.status == "published"
    assert offering.sync_status is None  # the local backend has no store catalog to push to
    assert "Memo Writer" in client.get("/search?q=memo").get_data(as_text=True)


def test_reject_sends_it_back_with_the_reason_the_seller_sees(client, session, seller, operator):
    offering = _submitted(session, seller)
    login(client, operator)

    response = client.post(f"/operator/offerings/{offering.id}/reject",
                           data={"reason": "Name the CRMs it works with."})

    assert response.status_code == 302
    session.expire_all()
    assert (offering.status, offering.review_note) == ("draft", "Name the CRMs it works with.")
    login(client, seller)
    seller_page = client.get(f"/seller/offerings/{offering.id}").get_data(as_text=True)
    assert "An operator asked for changes:" in seller_page
    assert "Name the CRMs it works with." in seller_page


def test_reject_without_a_reason_shows_the_error_and_changes_nothing(client, session, seller, operator):
    offering = _submitted(session, seller)
    login(client, operator)
    events = session.scalar(select(func.count()).select_from(AuditEvent))

    response = client.post(f"/operator/offerings/{offering.id}/reject", data={"reason": "  "})

    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert re.search(r'<ul class="field-error" id="reason-error"><li>Tell the seller what to change.</li></ul>', html)
    session.expire_all()
    assert offering.status == "in_review"
    assert session.scalar(select(func.count()).select_from(AuditEvent)) == events


def test_a_seller_cannot_use_the_operator_console(client, session, seller):
    offering = _submitted(session, seller)
    login(client, seller)

    assert client.get("/operator/").status_code == 403
    assert client.post(f"/operator/offerings/{offering.id}/approve").status_code == 403
    session.expire_all()
    assert offering.status == "in_review"


def test_all_offerings_can_be_filtered_by_status(client, session, seller, operator):
    _submitted(session, seller, name="Queue Bot")
    login(client, operator)

    in_review = client.get("/operator/offerings?status=in_review").get_data(as_text=True)
    published = client.get("/operator/offerings?status=published").get_data(as_text=True)

    assert "Queue Bot" in in_review and "Customer Support Agent" not in in_review
    assert "Customer Support Agent" in published and "Queue Bot" not in published
    assert "1 offering</p>" in in_review


def test_organizations_page_counts_members_and_offerings(client, session, operator):
    login(client, operator)

    html = client.get("/operator/organizations?q=northwind").get_data(as_text=True)

    assert "1 organization</p>" in html
    assert re.search(r'<strong>Northwind AI</strong>.*?data-label="Members" class="num">1</td>\s*'
                     r'<td data-label="Offerings" class="num"><a [^>]*>5</a>', html, re.S)


def test_audit_log_is_filtered_and_paginated(client, session, operator):
    for n in range(55):
        audit.record(session, action="test.ping", target_type="thing", target_id=n, actor=operator)
    session.commit()
    login(client, operator)

    first = client.get("/operator/audit?action=test.ping").get_data(as_text=True)
    second = client.get("/operator/audit?action=test.ping&page=2").get_data(as_text=True)
    by_actor = client.get("/operator/audit?actor=nobody%40example.com").get_data(as_text=True)

    assert "55 events, newest first" in first
    assert first.count('class="mono action">test.ping</td>') == 50
    assert second.count('class="mono action">test.ping</td>') == 5
    assert 'href="/operator/audit?page=2&amp;action=test.ping" rel="next"' in first
    assert "thing #54" in first and "thing #0<" in second
    assert "0 events, newest first" in by_actor

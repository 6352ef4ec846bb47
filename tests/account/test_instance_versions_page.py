"""The instance page's version box: what runs use, "Pin this version" / "Follow updates", and a new major
offered as "Upgrade to 2.0.0" with its notes, applied only when its buyer accepts it."""
from __future__ import annotations

import html
import re

from sqlalchemy import select

from app.models import Instance, Membership, Offering
from app.services import identity, instances
from app.services import offerings as svc
from tests.conftest import login
from tests.factories import make_user


def _instance(session, buyer) -> Instance:
    offering = session.scalar(select(Offering).where(Offering.slug == "customer-support-agent"))
    instance = instances.create_instance(session, organization=identity.current_organization(session, buyer),
                                         plan=offering.plans[0], created_by=buyer)
    session.commit()
    return instance


def _publish(session, operator, number, ref, changelog=""):
    offering = session.scalar(select(Offering).where(Offering.slug == "customer-support-agent"))
    svc.add_version(session, offering=offering, actor=operator, version=number, changelog=changelog,
                    runtime_kind="builtin", runtime_ref=ref)
    session.commit()


def _page(client, instance) -> str:
    response = client.get(f"/account/instances/{instance.id}")
    assert response.status_code == 200
    text = re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))  # the words, as a reader sees them
    return html.unescape(re.sub(r"\s+", " ", text).replace(" ,", ",").replace(" .", "."))


def test_pin_follow_and_upgrade_from_the_instance_page(buyer_client, session, buyer, operator):
    instance = _instance(session, buyer)
    _publish(session, operator, "1.1.1", "summarize")

    following = _page(buyer_client, instance)
    pin = buyer_client.post(f"/account/instances/{instance.id}/version/pin")
    _publish(session, operator, "1.1.2", "triage")
    _publish(session, operator, "2.0.0", "lead-score", changelog="Scores leads instead of answering.")
    pinned = _page(buyer_client, instance)
    upgrade = buyer_client.post(f"/account/instances/{instance.id}/version/upgrade", data={"version": "2.0.0"})
    upgraded = _page(buyer_client, instance)

    assert "Runs use version 1.1.1 and follow updates: new 1.x releases reach this agent from its next run." in following
    assert "Pin this version" in following and "Upgrade to" not in following
    assert (pin.status_code, pin.headers["Location"].endswith(f"/account/instances/{instance.id}#version")) == (303, True)
    assert "Runs use version 1.1.1, pinned" in pinned
    assert "Version 1.1.2 is out." in pinned and "Follow updates" in pinned
    assert "Upgrade to 2.0.0" in pinned and "Scores leads instead of answering." in pinned
    assert upgrade.status_code == 303
    assert "is upgraded to version 2.0.0; its next run uses it." in upgraded
    assert "Runs use version 2.0.0, pinned" in upgraded and "Upgrade to" not in upgraded
    session.expire_all()
    reloaded = session.get(Instance, instance.id)
    assert (reloaded.version.version, reloaded.version_pinned) == ("2.0.0", True)


def test_a_member_sees_the_upgrade_but_only_owners_and_admins_accept_it(client, session, buyer, operator):
    instance = _instance(session, buyer)
    member = make_user(session, email="member@example.com")
    session.add(Membership(user_id=member.id, organization_id=instance.organization_id, role="member"))
    session.commit()
    _publish(session, operator, "2.0.0", "lead-score")
    login(client, member)

    page = _page(client, instance)
    refused = client.post(f"/account/instances/{instance.id}/version/upgrade", data={"version": "2.0.0"})

    assert "Version 2.0.0 is available" in page and "An owner or admin of the organization can upgrade it." in page
    assert "Upgrade to 2.0.0" not in page and "Pin this version" not in page
    assert refused.status_code == 303
    assert "Only an owner or admin of the organization can change the version it runs." in _page(client, instance)
    session.expire_all()
    assert session.get(Instance, instance.id).version.version == "1.1.0"

"""Teams in the account pages and the API: creating an organization, invitations by mail (signed,
expiring, revocable, resendable), roles, removing and leaving, with the last owner kept."""
from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import unquote

import pytest
from sqlalchemy import func, select

from app.models import AuditEvent, MailMessage, Membership, Organization, OrganizationInvitation, utcnow
from app.services import teams
from tests.conftest import login
from tests.factories import make_org, make_user


def _members(session, org_id):
    session.expire_all()
    return {(m.user_id, m.role) for m in session.scalars(select(Membership).where(Membership.organization_id == org_id))}


def _count(session, model):
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model))


def _invitation_link(session, email: str) -> str:
    session.expire_all()
    message = session.scalars(select(MailMessage).where(MailMessage.to_address == email,
                                                        MailMessage.template == "team_invitation")
                              .order_by(MailMessage.id.desc())).first()
    assert message is not None
    return re.search(r"https?://[^\s]+/account/invitations/[^\s]+", message.text_body).group(0)


def _path(link: str) -> str:
    return "/" + link.split("/", 3)[3]


@pytest.fixture
def team(session):
    owner = make_user(session, email="olga@example.test", name="Olga Owner")
    org = make_org(session, owner=owner, name="Acme Support")
    session.commit()
    return owner, org


def test_create_an_organization_from_the_teams_page(app, client, session):
    user = make_user(session, name="Nia")
    session.commit()
    login(client, user)

    page = client.get("/account/teams").get_data(as_text=True)
    refused = client.post("/account/teams", data={"name": "  "})
    created = client.post("/account/teams", data={"name": "Nia's Studio"})

    assert "Create an organization" in page and 'for="name"' in page
    assert refused.status_code == 400 and 'id="name-error"' in refused.get_data(as_text=True)
    assert created.status_code == 303
    org = session.scalar(select(Organization).where(Organization.name == "Nia's Studio"))
    assert created.headers["Location"] == f"/account/teams/{org.id}"
    assert _members(session, org.id) == {(user.id, "owner")}
    assert _count(session, Organization) == 2  # the personal workspace and the new one


def test_owner_invites_by_email_and_the_invitee_accepts_signed_in(app, client, session, team):
    owner, org = team
    invitee = make_user(session, email="ivan@example.test", name="Ivan")
    session.commit()
    login(client, owner)

    sent = client.post(f"/account/teams/{org.id}/invitations", data={"email": "Ivan@Example.test", "role": "admin"})

    assert sent.status_code == 303
    invitation = session.scalar(select(OrganizationInvitation))
    assert (invitation.email, invitation.role, invitation.invited_by_id) == ("ivan@example.test", "admin", owner.id)
    page = client.get(f"/account/teams/{org.id}").get_data(as_text=True)
    assert "Invitations waiting" in page and "ivan@example.test" in page
    assert "We mail them a link that works for 7 days." in page and "You are an owner of this organization." in page
    link = _invitation_link(session, "ivan@example.test")

    other = app.test_client()
    login(other, invitee)
    shown = other.get(_path(link))
    accepted = other.post(_path(link))

    assert shown.status_code == 200 and "Join Acme Support" in shown.get_data(as_text=True)
    assert accepted.status_code == 303 and accepted.headers["Location"] == f"/account/teams/{org.id}"
    assert _members(session, org.id) == {(owner.id, "owner"), (invitee.id, "admin")}
    session.expire_all()
    assert session.get(OrganizationInvitation, invitation.id).accepted_by_id == invitee.id
    again = other.post(_path(link))
    assert again.status_code == 409 and "accepted already" in again.get_data(as_text=True)
    actions = set(session.scalars(select(AuditEvent.action).where(AuditEvent.organization_id == org.id)))
    assert {"organization.member_invited", "organization.invitation_accepted"} <= actions


def test_an_anonymous_visitor_is_sent_to_sign_in_or_sign_up_and_back(app, client, session, team):
    owner, org = team
    login(client, owner)
    client.post(f"/account/teams/{org.id}/invitations", data={"email": "new@example.test", "role": "member"})
    path = _path(_invitation_link(session, "new@example.test"))

    visitor = app.test_client()
    page = visitor.get(path).get_data(as_text=True)
    posted = visitor.post(path)

    assert unquote(re.search(r'href="/auth/login\?next=([^"]+)"', page).group(1)) == path
    assert unquote(re.search(r'href="/auth/signup\?next=([^"]+)"', page).group(1)) == path
    assert posted.status_code == 303 and posted.headers["Location"].startswith("/auth/login?next=")
    newcomer = make_user(session, email="new@example.test", name="Newcomer", verified=False)
    session.commit()
    login(visitor, newcomer)
    assert visitor.post(path).status_code == 303
    assert (newcomer.id, "member") in _members(session, org.id)
    assert session.get(type(newcomer), newcomer.id).email_verified_at is not None  # the link reached the mailbox


def test_someone_signed_in_with_another_address_cannot_accept(app, client, session, team):
    owner, org = team
    login(client, owner)
    client.post(f"/account/teams/{org.id}/invitations", data={"email": "ivan@example.test", "role": "member"})
    path = _path(_invitation_link(session, "ivan@example.test"))
    mallory = make_user(session, email="mallory@example.test")
    session.commit()
    other = app.test_client()
    login(other, mallory)

    page = other.get(path).get_data(as_text=True)
    refused = other.post(path)

    assert "this invitation is for ivan@example.test" in page
    assert refused.status_code == 403
    assert _members(session, org.id) == {(owner.id, "owner")}


def test_a_tampered_or_forged_link_is_refused(app, client, session, team):
    owner, org = team
    login(client, owner)
    client.post(f"/account/teams/{org.id}/invitations", data={"email": "ivan@example.test", "role": "member"})
    path = _path(_invitation_link(session, "ivan@example.test"))
    invitation = session.scalar(select(OrganizationInvitation))
    forged = teams._serializer("not-our-secret").dumps({"i": invitation.id, "n": invitation.nonce})
    ivan = make_user(session, email="ivan@example.test")
    session.commit()
    other = app.test_client()
    login(other, ivan)

    for bad in (path[:-3] + ("aaa" if not path.endswith("aaa") else "bbb"), f"/account/invitations/{forged}",
                "/account/invitations/garbage"):
        response = other.post(bad)
        assert response.status_code == 404, bad
        assert "not valid" in response.get_data(as_text=True)
    assert _members(session, org.id) == {(owner.id, "owner")}


def test_an_expired_invitation_is_refused_and_a_resend_gives_a_new_working_link(app, client, session, team):
    owner, org = team
    login(client, owner)
    client.post(f"/account/teams/{org.id}/invitations", data={"email": "ivan@example.test", "role": "member"})
    old_path = _path(_invitation_link(session, "ivan@example.test"))
    invitation = session.scalar(select(OrganizationInvitation))
    invitation.expires_at = utcnow() - timedelta(minutes=1)
    invitation.sent_at = utcnow() - timedelta(days=8)
    ivan = make_user(session, email="ivan@example.test")
    session.commit()
    other = app.test_client()
    login(other, ivan)

    expired = other.post(old_path)
    assert expired.status_code == 410 and "expired" in expired.get_data(as_text=True)

    resent = client.post(f"/account/teams/{org.id}/invitations/{invitation.id}/resend")
    assert resent.status_code == 303
    new_path = _path(_invitation_link(session, "ivan@example.test"))
    assert new_path != old_path
    assert other.post(old_path).status_code == 410  # the older link stopped working
    assert other.post(new_path).status_code == 303
    assert (ivan.id, "member") in _members(session, org.id)
    assert _count(session, MailMessage) == 2


def test_a_resend_right_after_sending_is_refused(app, client, session, team):
    owner, org = team
    login(client, owner)
    client.post(f"/account/teams/{org.id}/invitations", data={"email": "ivan@example.test", "role": "member"})
    invitation = session.scalar(select(OrganizationInvitation))

    response = client.post(f"/account/teams/{org.id}/invitations/{invitation.id}/resend", follow_redirects=True)

    assert "sent a moment ago" in response.get_data(as_text=True)
    assert _count(session, MailMessage) == 1


def test_a_revoked_invitation_no_longer_works(app, client, session, team):
    owner, org = team
    login(client, owner)
    client.post(f"/account/teams/{org.id}/invitations", data={"email": "ivan@example.test", "role": "member"})
    path = _path(_invitation_link(session, "ivan@example.test"))
    invitation = session.scalar(select(OrganizationInvitation))

    revoked = client.post(f"/account/teams/{org.id}/invitations/{invitation.id}/revoke")

    assert revoked.status_code == 303
    assert "No invitations waiting." in client.get(f"/account/teams/{org.id}").get_data(as_text=True)
    ivan = make_user(session, email="ivan@example.test")
    session.commit()
    other = app.test_client()
    login(other, ivan)
    response = other.post(path)
    assert response.status_code == 410 and "withdrawn" in response.get_data(as_text=True)
    assert _members(session, org.id) == {(owner.id, "owner")}


def test_inviting_an_existing_member_or_an_address_already_invited_is_refused(app, client, session, team):
    owner, org = team
    member = make_user(session, email="mia@example.test")
    session.add(Membership(user_id=member.id, organization_id=org.id, role="member"))
    session.commit()
    login(client, owner)

    existing = client.post(f"/account/teams/{org.id}/invitations", data={"email": "MIA@example.test", "role": "admin"})
    first = client.post(f"/account/teams/{org.id}/invitations", data={"email": "ivan@example.test", "role": "member"})
    twice = client.post(f"/account/teams/{org.id}/invitations", data={"email": "ivan@example.test", "role": "admin"})
    bad = client.post(f"/account/teams/{org.id}/invitations", data={"email": "not-an-address", "role": "member"})

    assert existing.status_code == 400 and "already a member" in existing.get_data(as_text=True)
    assert first.status_code == 303
    assert twice.status_code == 400 and "has an invitation waiting" in twice.get_data(as_text=True)
    assert bad.status_code == 400 and 'id="email-error"' in bad.get_data(as_text=True)
    assert _count(session, OrganizationInvitation) == 1
    assert _count(session, MailMessage) == 1


def test_who_may_invite_and_whom(app, client, session, team):
    owner, org = team
    admin = make_user(session, email="ada@example.test")
    plain = make_user(session, email="pat@example.test")
    session.add_all([Membership(user_id=admin.id, organization_id=org.id, role="admin"),
                     Membership(user_id=plain.id, organization_id=org.id, role="member")])
    outsider = make_user(session)
    session.commit()

    login(client, plain)
    by_member = client.post(f"/account/teams/{org.id}/invitations", data={"email": "x@example.test", "role": "member"})
    assert "Send invitation" not in client.get(f"/account/teams/{org.id}").get_data(as_text=True)
    login(client, admin)
    owner_by_admin = client.post(f"/account/teams/{org.id}/invitations", data={"email": "y@example.test", "role": "owner"})
    member_by_admin = client.post(f"/account/teams/{org.id}/invitations", data={"email": "z@example.test", "role": "member"})
    login(client, outsider)
    by_outsider = client.post(f"/account/teams/{org.id}/invitations", data={"email": "w@example.test", "role": "member"})
    personal = client.post(f"/account/teams/{owner.memberships[0].organization_id}/invitations",
                           data={"email": "v@example.test", "role": "member"})

    assert by_member.status_code == 403 and "Only owners and admins" in by_member.get_data(as_text=True)
    assert owner_by_admin.status_code == 403 and "Only owners may invite another owner." in owner_by_admin.get_data(as_text=True)
    assert member_by_admin.status_code == 303
    assert by_outsider.status_code == 404 and personal.status_code == 404
    assert [i.email for i in session.scalars(select(OrganizationInvitation))] == ["z@example.test"]


def test_roles_change_and_the_last_owner_can_neither_be_demoted_nor_leave(app, client, session, team):
    owner, org = team
    mia = make_user(session, email="mia@example.test", name="Mia")
    session.add(Membership(user_id=mia.id, organization_id=org.id, role="member"))
    session.commit()
    login(client, owner)

    demote_self = client.post(f"/account/teams/{org.id}/members/{owner.id}/role", data={"role": "admin"},
                              follow_redirects=True)
    leave = client.post(f"/account/teams/{org.id}/members/{owner.id}/remove", follow_redirects=True)
    assert "at least one owner" in demote_self.get_data(as_text=True)
    assert "The last owner cannot be removed" in leave.get_data(as_text=True)
    assert _members(session, org.id) == {(owner.id, "owner"), (mia.id, "member")}

    promote = client.post(f"/account/teams/{org.id}/members/{mia.id}/role", data={"role": "owner"},
                          follow_redirects=True)
    assert "Mia is now an owner." in promote.get_data(as_text=True)
    left = client.post(f"/account/teams/{org.id}/members/{owner.id}/remove")
    assert left.status_code == 303 and left.headers["Location"] == "/account/teams"
    assert _members(session, org.id) == {(mia.id, "owner")}
    assert client.get(f"/account/teams/{org.id}").status_code == 404


def test_an_admin_removes_a_member_but_not_an_owner_and_a_member_leaves(app, client, session, team):
    owner, org = team
    admin = make_user(session, email="ada@example.test", name="Ada")
    pat = make_user(session, email="pat@example.test", name="Pat")
    sam = make_user(session, email="sam@example.test", name="Sam")
    session.add_all([Membership(user_id=u.id, organization_id=org.id, role=r)
                     for u, r in ((admin, "admin"), (pat, "member"), (sam, "member"))])
    session.commit()

    login(client, admin)
    no_owner = client.post(f"/account/teams/{org.id}/members/{owner.id}/remove", follow_redirects=True)
    removed = client.post(f"/account/teams/{org.id}/members/{pat.id}/remove", follow_redirects=True)
    login(client, sam)
    not_allowed = client.post(f"/account/teams/{org.id}/members/{admin.id}/remove", follow_redirects=True)
    left = client.post(f"/account/teams/{org.id}/members/{sam.id}/remove")

    assert "Only owners may remove an owner." in no_owner.get_data(as_text=True)
    assert "Pat was removed from Acme Support." in removed.get_data(as_text=True)
    assert "Only owners and admins of the organization may do this." in not_allowed.get_data(as_text=True)
    assert left.status_code == 303
    assert _members(session, org.id) == {(owner.id, "owner"), (admin.id, "admin")}


# --- the same over the API ------------------------------------------------------------------------

@pytest.fixture
def bearer(session):
    from app.services import tokens

    def make(user):
        _, secret = tokens.create_token(session, user=user, name="tests")
        session.commit()
        return {"Authorization": f"Bearer {secret}"}

    return make


def test_invitations_over_the_api(app, client, session, team, bearer):
    owner, org = team
    ivan = make_user(session, email="ivan@example.test")
    session.commit()
    headers = bearer(owner)

    created = client.post(f"/api/organizations/{org.id}/invitations/", json={"email": "ivan@example.test",
                                                                            "role": "admin"}, headers=headers)
    listed = client.get(f"/api/organizations/{org.id}/invitations/", headers=headers)
    bad_role = client.post(f"/api/organizations/{org.id}/invitations/", json={"email": "a@example.test",
                                                                             "role": "boss"}, headers=headers)

    assert created.status_code == 201
    body = created.get_json()
    assert (body["email"], body["role"], body["organization_id"]) == ("ivan@example.test", "admin", org.id)
    assert [i["id"] for i in listed.get_json()["items"]] == [body["id"]]
    assert bad_role.status_code == 422 and bad_role.mimetype == "application/problem+json"
    token = _invitation_link(session, "ivan@example.test").rsplit("/", 1)[1]
    tampered = client.post("/api/invitations/accept", json={"token": token + "x"}, headers=bearer(ivan))
    assert tampered.status_code == 404 and tampered.mimetype == "application/problem+json"
    accepted = client.post("/api/invitations/accept", json={"token": token}, headers=bearer(ivan))
    assert accepted.status_code == 201 and accepted.get_json()["role"] == "admin"
    assert _members(session, org.id) == {(owner.id, "owner"), (ivan.id, "admin")}

    second = client.post(f"/api/organizations/{org.id}/invitations/", json={"email": "zoe@example.test"},
                         headers=headers).get_json()
    assert client.delete(f"/api/organizations/{org.id}/invitations/{second['id']}", headers=headers).status_code == 204
    assert client.get(f"/api/organizations/{org.id}/invitations/", headers=headers).get_json()["items"] == []
    assert client.post(f"/api/organizations/{org.id}/invitations/{second['id']}/resend",
                       headers=headers).status_code == 409


def test_invitations_are_in_the_openapi_document(client):
    paths = client.get("/api/openapi.json").get_json()["paths"]

    assert "post" in paths["/api/organizations/{organization_id}/invitations/"]
    assert "delete" in paths["/api/organizations/{organization_id}/invitations/{invitation_id}"]
    assert "post" in paths["/api/invitations/accept"]

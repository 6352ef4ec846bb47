"""Organizations and members over the API: list, create, get, add by email, change role, remove;
the last owner stays."""
from sqlalchemy import func, select

from app.models import AuditEvent, Membership, Organization
from tests.factories import make_org, make_user


def _members(session, org_id):
    return {(m.user_id, m.role) for m in session.scalars(select(Membership).where(Membership.organization_id == org_id))}


def test_list_create_and_get_my_organizations(client, session, auth_for):
    user = make_user(session, email="ann@example.test", name="Ann")
    headers = auth_for(user)

    created = client.post("/api/organizations/", json={"name": "Ann's Team"}, headers=headers)
    listed = client.get("/api/organizations/", headers=headers)

    assert created.status_code == 201
    body = created.get_json()
    assert (body["name"], body["slug"], body["is_personal"], body["role"]) == ("Ann's Team", "ann-s-team", False, "owner")
    assert [(o["name"], o["role"], o["is_personal"]) for o in listed.get_json()["items"]] == [
        ("Ann's workspace", "owner", True), ("Ann's Team", "owner", False)]
    got = client.get(f"/api/organizations/{body['id']}", headers=headers)
    assert got.status_code == 200 and got.get_json()["id"] == body["id"]
    action = session.scalar(select(AuditEvent.action).where(AuditEvent.organization_id == body["id"]))
    assert action == "organization.created"


def test_an_empty_name_is_refused_naming_the_field_and_nothing_is_created(client, session, auth_for):
    user = make_user(session)
    headers = auth_for(user)
    before = session.scalar(select(func.count()).select_from(Organization))

    response = client.post("/api/organizations/", json={"name": "   "}, headers=headers)

    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["errors"] == [{"field": "name", "message": "Give the organization a name."}]
    assert session.scalar(select(func.count()).select_from(Organization)) == before


def test_owner_adds_a_member_by_email_and_changes_their_role(client, session, auth_for):
    owner = make_user(session)
    org = make_org(session, owner=owner)
    colleague = make_user(session, email="colleague@example.test", name="Col")
    session.commit()
    headers = auth_for(owner)

    added = client.post(f"/api/organizations/{org.id}/members/", json={"email": "Colleague@Example.test"},
                        headers=headers)
    promoted = client.patch(f"/api/organizations/{org.id}/members/{colleague.id}", json={"role": "admin"},
                            headers=headers)

    assert added.status_code == 201
    assert added.get_json()["email"] == "colleague@example.test" and added.get_json()["role"] == "member"
    assert promoted.status_code == 200 and promoted.get_json()["role"] == "admin"
    assert _members(session, org.id) == {(owner.id, "owner"), (colleague.id, "admin")}
    listed = client.get(f"/api/organizations/{org.id}/members/", headers=headers).get_json()["items"]
    assert [(m["email"], m["role"]) for m in listed] == [(owner.email, "owner"), ("colleague@example.test", "admin")]
    actions = list(session.scalars(select(AuditEvent.action).where(AuditEvent.organization_id == org.id)
                                   .order_by(AuditEvent.id)))
    assert actions == ["organization.created", "organization.member_added", "organization.member_role_changed"]


def test_adding_an_unknown_email_or_an_existing_member_is_refused(client, session, auth_for):
    owner = make_user(session)
    org = make_org(session, owner=owner)
    session.commit()
    headers = auth_for(owner)

    unknown = client.post(f"/api/organizations/{org.id}/members/", json={"email": "nobody@example.test"},
                          headers=headers)
    again = client.post(f"/api/organizations/{org.id}/members/", json={"email": owner.email}, headers=headers)

    assert unknown.status_code == 400 and unknown.get_json()["errors"][0]["field"] == "email"
    assert again.status_code == 409 and again.get_json()["errors"][0]["field"] == "email"
    assert _members(session, org.id) == {(owner.id, "owner")}


def test_the_last_owner_can_be_neither_removed_nor_demoted(client, session, auth_for):
    owner = make_user(session)
    org = make_org(session, owner=owner)
    session.commit()
    headers = auth_for(owner)

    removed = client.delete(f"/api/organizations/{org.id}/members/{owner.id}", headers=headers)
    demoted = client.patch(f"/api/organizations/{org.id}/members/{owner.id}", json={"role": "admin"}, headers=headers)

    assert removed.status_code == 409 and "last owner" in removed.get_json()["detail"]
    assert demoted.status_code == 409
    assert _members(session, org.id) == {(owner.id, "owner")}


def test_with_two_owners_one_may_leave(client, session, auth_for):
    owner = make_user(session)
    other = make_user(session)
    org = make_org(session, owner=owner)
    session.add(Membership(user_id=other.id, organization_id=org.id, role="owner"))
    session.commit()

    response = client.delete(f"/api/organizations/{org.id}/members/{owner.id}", headers=auth_for(owner))

    assert response.status_code == 204
    assert _members(session, org.id) == {(other.id, "owner")}


def test_an_admin_cannot_remove_an_owner_or_make_one_and_a_member_cannot_manage(client, session, auth_for):
    owner, admin, member = make_user(session), make_user(session), make_user(session)
    org = make_org(session, owner=owner)
    session.add_all([Membership(user_id=admin.id, organization_id=org.id, role="admin"),
                     Membership(user_id=member.id, organization_id=org.id, role="member")])
    session.commit()
    admin_headers, member_headers = auth_for(admin), auth_for(member)

    assert client.delete(f"/api/organizations/{org.id}/members/{owner.id}", headers=admin_headers).status_code == 403
    assert client.patch(f"/api/organizations/{org.id}/members/{member.id}", json={"role": "owner"},
                        headers=admin_headers).status_code == 403
    assert client.patch(f"/api/organizations/{org.id}/members/{admin.id}", json={"role": "member"},
                        headers=member_headers).status_code == 403
    assert _members(session, org.id) == {(owner.id, "owner"), (admin.id, "admin"), (member.id, "member")}
    # but anyone may leave
    assert client.delete(f"/api/organizations/{org.id}/members/{member.id}", headers=member_headers).status_code == 204


def test_a_personal_workspace_takes_no_members(client, session, auth_for):
    user, other = make_user(session), make_user(session)
    session.commit()

    response = client.post(f"/api/organizations/{user.current_organization_id}/members/",
                           json={"email": other.email}, headers=auth_for(user))

    assert response.status_code == 409
    assert _members(session, user.current_organization_id) == {(user.id, "owner")}


def test_a_role_outside_the_list_is_a_422_naming_the_field(client, session, auth_for):
    owner = make_user(session)
    org = make_org(session, owner=owner)
    session.commit()

    response = client.patch(f"/api/organizations/{org.id}/members/{owner.id}", json={"role": "king"},
                            headers=auth_for(owner))

    assert response.status_code == 422
    assert [e["field"] for e in response.get_json()["errors"]] == ["role"]

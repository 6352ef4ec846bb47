"""The audit log: operators read every organization's; owners and admins their own; members not."""
from app.models import Membership
from app.services import audit
from tests.factories import make_org, make_user


def _orgs(session):
    owner_a, owner_b = make_user(session), make_user(session)
    org_a, org_b = make_org(session, owner=owner_a), make_org(session, owner=owner_b)
    for n in range(3):
        audit.record(session, action="test.a", target_type="thing", target_id=n, organization_id=org_a.id,
                     actor=owner_a)
    audit.record(session, action="test.b", target_type="thing", organization_id=org_b.id, actor=owner_b)
    session.commit()
    return owner_a, org_a, owner_b, org_b


def test_an_owner_reads_their_organizations_log_newest_first_with_a_cursor(client, session, auth_for):
    owner_a, org_a, _, org_b = _orgs(session)
    headers = auth_for(owner_a)

    first = client.get(f"/api/audit/?organization_id={org_a.id}&action=test.a&limit=2", headers=headers).get_json()
    rest = client.get(f"/api/audit/?organization_id={org_a.id}&action=test.a&limit=2&cursor={first['next_cursor']}",
                      headers=headers).get_json()

    assert [e["target_id"] for e in first["items"]] == ["2", "1"]
    assert [e["target_id"] for e in rest["items"]] == ["0"] and rest["next_cursor"] is None
    assert {e["organization_id"] for e in first["items"] + rest["items"]} == {org_a.id}


def test_other_organizations_logs_are_not_found_and_members_are_refused(client, session, auth_for):
    owner_a, org_a, _, org_b = _orgs(session)
    member = make_user(session)
    session.add(Membership(user_id=member.id, organization_id=org_a.id, role="member"))
    session.commit()

    other = client.get(f"/api/audit/?organization_id={org_b.id}", headers=auth_for(owner_a))
    as_member = client.get(f"/api/audit/?organization_id={org_a.id}", headers=auth_for(member))

    assert other.status_code == 404
    assert as_member.status_code == 403


def test_operators_read_every_organizations_log(client, session, auth_for):
    _, org_a, _, org_b = _orgs(session)
    operator = make_user(session, roles=("buyer", "operator"))

    everything = client.get("/api/audit/?limit=200", headers=auth_for(operator)).get_json()
    only_b = client.get(f"/api/audit/?organization_id={org_b.id}&action=test.b",
                        headers=auth_for(operator)).get_json()

    assert {org_a.id, org_b.id} <= {e["organization_id"] for e in everything["items"]}
    assert [e["action"] for e in only_b["items"]] == ["test.b"]

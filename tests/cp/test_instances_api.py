"""Instances: listing, lifecycle transitions, trials (one per person per offering), entitlements."""
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.models import (
    AuditEvent, CreditGrant, Instance, LedgerEntry, Membership, Run, TrialClaim, Wallet, utcnow,
)
from app.services import billing, instances, trials
from app.services.instances import create_instance
from tests.factories import make_offering, make_org, make_user


def _setup(session, *, trial_days=0, trial_credits=0, **kwargs):
    owner = make_user(session)
    org = make_org(session, owner=owner)
    publisher = make_org(session, owner=make_user(session, roles=("buyer", "seller")))
    offering = make_offering(session, publisher=publisher, trial_days=trial_days, trial_credits=trial_credits,
                             **kwargs)
    session.commit()
    return owner, org, offering


def test_list_and_get_instances_of_my_organizations(client, session, auth_for):
    owner, org, offering = _setup(session)
    mine = create_instance(session, organization=org, plan=offering.plans[1], created_by=owner)
    other_owner = make_user(session)
    create_instance(session, organization=make_org(session, owner=other_owner), plan=offering.plans[0])
    session.commit()
    headers = auth_for(owner)

    listed = client.get("/api/instances/", headers=headers)
    got = client.get(f"/api/instances/{mine.id}", headers=headers)

    assert [i["id"] for i in listed.get_json()["items"]] == [mine.id]
    body = got.get_json()
    assert (body["status"], body["plan"]["tier"], body["offering"]["id"], body["version"], body["is_trial"]) == (
        "active", "pro", offering.id, "1.0.0", False)


@pytest.mark.parametrize("steps,final", [
    (["suspend"], "suspended"),
    (["suspend", "resume"], "active"),
    (["cancel"], "cancelled"),
    (["suspend", "cancel"], "cancelled"),
])
def test_allowed_transitions(client, session, auth_for, steps, final):
    owner, org, offering = _setup(session)
    instance = create_instance(session, organization=org, plan=offering.plans[0], created_by=owner)
    session.commit()
    headers = auth_for(owner)

    for step in steps:
        response = client.post(f"/api/instances/{instance.id}/{step}", headers=headers)
        assert response.status_code == 200

    assert response.get_json()["status"] == final
    session.refresh(instance)
    assert instance.status == final
    actions = list(session.scalars(select(AuditEvent.action).where(AuditEvent.target_type == "instance",
                                                                   AuditEvent.target_id == str(instance.id))
                                   .order_by(AuditEvent.id)))
    assert actions == ["instance.created"] + [f"instance.{ {'suspend': 'suspended', 'resume': 'resumed', 'cancel': 'cancelled'}[s] }" for s in steps]


@pytest.mark.parametrize("start,step", [
    ("active", "resume"), ("suspended", "suspend"), ("cancelled", "resume"), ("cancelled", "suspend"),
    ("cancelled", "cancel"), ("expired", "resume"),
])
def test_refused_transitions_change_nothing(client, session, auth_for, start, step):
    owner, org, offering = _setup(session)
    instance = create_instance(session, organization=org, plan=offering.plans[0], created_by=owner)
    instance.status = start
    session.commit()

    response = client.post(f"/api/instances/{instance.id}/{step}", headers=auth_for(owner))

    assert response.status_code == 409
    assert response.mimetype == "application/problem+json"
    session.refresh(instance)
    assert instance.status == start


def test_only_owners_and_admins_change_the_lifecycle(client, session, auth_for):
    owner, org, offering = _setup(session)
    instance = create_instance(session, organization=org, plan=offering.plans[0], created_by=owner)
    member = make_user(session)
    session.add(Membership(user_id=member.id, organization_id=org.id, role="member"))
    session.commit()

    response = client.post(f"/api/instances/{instance.id}/cancel", headers=auth_for(member))

    assert response.status_code == 403
    session.refresh(instance)
    assert instance.status == "active"


def test_a_trial_runs_on_the_cheapest_plan_with_trial_credits_expiring_at_its_end(client, session, auth_for):
    owner, org, offering = _setup(session, trial_days=14, trial_credits=50)
    headers = auth_for(owner, **{"X-Organization-Id": str(org.id)})
    before = utcnow()

    response = client.post("/api/instances/trial", json={"offering_id": offering.id}, headers=headers)

    assert response.status_code == 201
    body = response.get_json()
    assert (body["is_trial"], body["plan"]["tier"], body["organization_id"]) == (True, "starter", org.id)
    instance = session.get(Instance, body["id"])
    assert before + timedelta(days=14) <= instance.trial_ends_at <= utcnow() + timedelta(days=14)
    grant = session.scalar(select(CreditGrant))
    assert (grant.origin, grant.amount, grant.instance_id, grant.expires_at) == (
        "trial", 50, instance.id, instance.trial_ends_at)
    wallet = session.scalar(select(Wallet).where(Wallet.organization_id == org.id))
    assert wallet.balance == 50
    claim = session.scalar(select(TrialClaim))
    assert (claim.user_id, claim.offering_id, claim.instance_id) == (owner.id, offering.id, instance.id)


def test_a_second_trial_of_the_same_offering_is_refused_and_changes_nothing(client, session, auth_for):
    owner, org, offering = _setup(session, trial_days=7, trial_credits=20)
    headers = auth_for(owner)
    assert client.post("/api/instances/trial", json={"offering_id": offering.id}, headers=headers).status_code == 201

    again = client.post("/api/instances/trial", json={"offering_id": offering.id},
                        headers={**headers, "X-Organization-Id": str(org.id)})

    assert again.status_code == 409
    assert again.get_json()["errors"][0]["field"] == "offering_id"
    assert session.scalar(select(func.count()).select_from(Instance)) == 1
    assert session.scalar(select(func.count()).select_from(LedgerEntry)) == 1


@pytest.mark.parametrize("case,status", [("no trial", 409), ("draft", 404), ("missing", 404)])
def test_offerings_that_cannot_be_tried(client, session, auth_for, case, status):
    owner, org, offering = _setup(session, trial_days=0 if case == "no trial" else 7,
                                  status="draft" if case == "draft" else "published")
    offering_id = offering.id if case != "missing" else 999_999

    response = client.post("/api/instances/trial", json={"offering_id": offering_id}, headers=auth_for(owner))

    assert response.status_code == status
    assert session.scalar(select(func.count()).select_from(Instance)) == 0
    assert session.scalar(select(func.count()).select_from(TrialClaim)) == 0


def test_start_trial_service_refuses_an_organization_the_user_is_not_in(session):
    owner, org, offering = _setup(session, trial_days=7)
    stranger = make_user(session)

    with pytest.raises(trials.TrialError) as refused:
        trials.start_trial(session, user=stranger, organization=org, offering=offering)

    assert refused.value.status == 404
    assert session.scalar(select(func.count()).select_from(Instance)) == 0


@pytest.mark.postgres_only
def test_racing_trial_requests_make_one_trial(make_app, session):
    import threading

    from app.extensions import db

    owner, org, offering = _setup(session, trial_days=7, trial_credits=10)
    owner_id, org_id, offering_id = owner.id, org.id, offering.id
    app = make_app()
    outcomes, barrier = [], threading.Barrier(6)

    def attempt():
        with app.app_context():
            from app.models import Offering, Organization, User

            barrier.wait()
            try:
                trials.start_trial(db.session, user=db.session.get(User, owner_id),
                                   organization=db.session.get(Organization, org_id),
                                   offering=db.session.get(Offering, offering_id))
                db.session.commit()
                outcomes.append("ok")
            except trials.TrialError:
                db.session.rollback()
                outcomes.append("refused")

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(outcomes) == ["ok"] + ["refused"] * 5
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Instance)) == 1
    assert session.scalar(select(Wallet.balance).where(Wallet.organization_id == org_id)) == 10


def test_entitlements_report_limits_credits_runs_and_may_run(client, session, auth_for, service_headers):
    owner, org, offering = _setup(session)
    plan = offering.plans[0]
    plan.max_runs_per_period, plan.credits_per_run = 2, 5
    instance = create_instance(session, organization=org, plan=plan, created_by=owner)
    billing.grant_credits(session, wallet=billing.wallet_for_organization(session, org.id), amount=12,
                          origin="purchase")
    session.add(Run(instance_id=instance.id, status="succeeded", credits=5))
    session.add(Run(instance_id=instance.id, status="failed", credits=0))
    session.commit()

    response = client.get(f"/api/instances/{instance.id}/entitlements", headers=service_headers)

    body = response.get_json()
    assert response.status_code == 200
    assert (body["plan_tier"], body["credits_per_run"], body["max_runs_per_period"]) == ("starter", 5, 2)
    assert (body["credits_available"], body["runs_this_period"], body["may_run"], body["reason"]) == (12, 1, True, None)


def test_entitlements_say_why_a_run_may_not_start(session):
    owner, org, offering = _setup(session)
    plan = offering.plans[0]
    plan.max_runs_per_period, plan.credits_per_run = 1, 5
    instance = create_instance(session, organization=org, plan=plan, created_by=owner)
    wallet = billing.wallet_for_organization(session, org.id)
    session.commit()

    assert instances.entitlements(session, instance=instance).reason == "insufficient_credits"
    billing.grant_credits(session, wallet=wallet, amount=10, origin="purchase")
    assert instances.entitlements(session, instance=instance).may_run is True
    session.add(Run(instance_id=instance.id, status="running"))
    session.flush()
    assert instances.entitlements(session, instance=instance).reason == "run_limit_reached"
    next_period = instance.period_start + timedelta(days=32)
    assert instances.entitlements(session, instance=instance, now=next_period).may_run is True
    instance.is_trial, instance.trial_ends_at = True, utcnow() - timedelta(minutes=1)
    assert instances.entitlements(session, instance=instance, now=next_period).reason == "trial_ended"
    instance.status = "suspended"
    assert instances.entitlements(session, instance=instance).reason == "instance_suspended"


def test_current_period_counts_whole_months_from_the_start():
    from datetime import datetime, timezone

    start = datetime(2026, 1, 31, 12, 0, tzinfo=timezone.utc)
    instance = Instance(period_start=start)

    assert instances.current_period(instance, datetime(2026, 2, 15, tzinfo=timezone.utc)) == (
        start, datetime(2026, 2, 28, 12, 0, tzinfo=timezone.utc))
    assert instances.current_period(instance, datetime(2026, 3, 31, 13, 0, tzinfo=timezone.utc)) == (
        datetime(2026, 3, 31, 12, 0, tzinfo=timezone.utc), datetime(2026, 4, 30, 12, 0, tzinfo=timezone.utc))



def test_expire_trials_ends_only_trials_past_their_end(make_app):
    # given: an ended trial, a suspended ended trial, a running trial, an ended trial already
    # cancelled, and a paid instance
    from app.extensions import db

    app = make_app()
    with app.app_context():
        owner, org, offering = _setup(db.session)
        plan = offering.plans[0]
        past, future = utcnow() - timedelta(hours=1), utcnow() + timedelta(days=3)

        def trial(ends_at, status="active"):
            made = create_instance(db.session, organization=org, plan=plan, created_by=owner, is_trial=True,
                                   trial_ends_at=ends_at)
            made.status = status
            return made

        ended, suspended, running = trial(past), trial(past, "suspended"), trial(future)
        cancelled = trial(past, "cancelled")
        paid = create_instance(db.session, organization=org, plan=plan, created_by=owner)
        db.session.commit()
        ids = {name: i.id for name, i in (("ended", ended), ("suspended", suspended), ("running", running),
                                          ("cancelled", cancelled), ("paid", paid))}

    # when: the scheduled command runs, twice
    first = app.test_cli_runner().invoke(args=["expire-trials"])
    second = app.test_cli_runner().invoke(args=["expire-trials"])

    # then: the two ended trials are expired and audited once; nothing else changed
    assert (first.output, second.output) == ("Expired 2 ended trial(s).\n", "Expired 0 ended trial(s).\n")
    with app.app_context():
        statuses = {name: db.session.get(Instance, i).status for name, i in ids.items()}
        assert statuses == {"ended": "expired", "suspended": "expired", "running": "active",
                            "cancelled": "cancelled", "paid": "active"}
        audited = db.session.scalars(select(AuditEvent.target_id).where(
            AuditEvent.action == "instance.trial_expired").order_by(AuditEvent.target_id)).all()
        assert audited == sorted([str(ids["ended"]), str(ids["suspended"])])
        assert instances.entitlements(db.session, instance=db.session.get(Instance, ids["ended"])).reason == \
            "instance_expired"

"""Accounts from the identity provider (`upsert_oidc_user`) and the group-to-role mapping rules."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.adapters.identity import (
    IdentityConfigError, parse_group_roles, provider_groups, roles_for_groups,
)
from app.models import AuditEvent, Membership, Organization, User, Wallet
from app.services import identity
from tests.factories import make_user

DEFAULT_MAPPING = parse_group_roles("gsv-team=operator,sellers=seller,buyers=buyer")


def _count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def test_first_sign_in_creates_the_user_with_a_personal_workspace_and_wallet(session):
    user = identity.upsert_oidc_user(session, subject="kc-1", email="Pat@Example.test", name="Pat",
                                     roles=["seller", "buyer"])
    session.commit()
    assert (user.oidc_subject, user.email, user.name, user.roles, user.password_hash) == (
        "kc-1", "pat@example.test", "Pat", "buyer seller", None)
    org = session.scalar(select(Organization).join(Membership).where(Membership.user_id == user.id))
    assert org.is_personal and user.current_organization_id == org.id
    assert session.scalar(select(Wallet.balance).where(Wallet.organization_id == org.id)) == 0
    assert user.last_login_at is not None


def test_a_verified_email_links_an_existing_local_account(session):
    local = make_user(session, email="pat@example.test", name="Pat Local", roles=("buyer",))
    session.commit()
    user = identity.upsert_oidc_user(session, subject="kc-1", email="pat@example.test", name="Pat",
                                     roles=["seller"], email_verified=True)
    session.commit()
    assert user.id == local.id and user.oidc_subject == "kc-1" and user.roles == "seller"
    assert _count(session, User) == 1 and _count(session, Organization) == 1
    actions = set(session.scalars(select(AuditEvent.action)))
    assert {"user.linked_to_provider", "user.roles_changed"} <= actions


@pytest.mark.parametrize("verified,other_subject", [(False, None), (True, "kc-other")])
def test_an_existing_account_is_not_taken_over_without_proof(session, verified, other_subject):
    local = make_user(session, email="pat@example.test", name="Pat Local", roles=("buyer",))
    local.oidc_subject = other_subject
    session.commit()
    with pytest.raises(identity.IdentityError, match="already exists"):
        identity.upsert_oidc_user(session, subject="kc-1", email="pat@example.test", name="Mallory",
                                  roles=["operator"], email_verified=verified)
    session.rollback()
    again = session.get(User, local.id)
    assert (again.oidc_subject, again.name, again.roles) == (other_subject, "Pat Local", "buyer")
    assert _count(session, User) == 1


def test_an_email_taken_by_someone_else_is_not_copied_over(session):
    make_user(session, email="taken@example.test")
    user = identity.upsert_oidc_user(session, subject="kc-1", email="pat@example.test", name="Pat", roles=[])
    session.commit()
    user = identity.upsert_oidc_user(session, subject="kc-1", email="taken@example.test", name="Pat", roles=[])
    assert user.email == "pat@example.test" and user.roles == "buyer"


@pytest.mark.parametrize("email", [None, "", "no-at-sign"])
def test_a_sign_in_without_a_usable_email_is_refused(session, email):
    with pytest.raises(identity.IdentityError, match="no usable email"):
        identity.upsert_oidc_user(session, subject="kc-1", email=email, name="Pat", roles=["buyer"])
    session.rollback()
    assert _count(session, User) == 0


def test_a_disabled_account_cannot_sign_in_through_the_provider(session):
    user = identity.upsert_oidc_user(session, subject="kc-1", email="pat@example.test", name="Pat", roles=[])
    user.is_active = False
    session.commit()
    with pytest.raises(identity.IdentityError, match="disabled"):
        identity.upsert_oidc_user(session, subject="kc-1", email="pat@example.test", name="Pat", roles=["operator"])
    session.rollback()
    assert session.get(User, user.id).roles == "buyer"


@pytest.mark.parametrize("claims,roles", [
    ({"groups": ["/buyers"]}, ("buyer",)),
    ({"groups": ["sellers"]}, ("seller",)),                        # "Full group path" off
    ({"groups": ["/gsv-team", "/sellers"]}, ("operator", "seller")),
    ({"realm_access": {"roles": ["offline_access", "sellers"]}}, ("seller",)),
    ({"groups": ["/partners/sellers"]}, ("buyer",)),              # a nested group is not the top-level one
    ({"groups": "/sellers"}, ("seller",)),                         # a single value, not a list
    ({"groups": [42, None]}, ("buyer",)),
    ({}, ("buyer",)),
])
def test_provider_groups_and_realm_roles_map_to_marketplace_roles(claims, roles):
    assert roles_for_groups(provider_groups(claims), DEFAULT_MAPPING) == roles


def test_the_mapping_names_nested_groups_by_path():
    mapping = parse_group_roles(" /partners/sellers = seller , platform-admins=operator ")
    assert mapping == {"partners/sellers": "seller", "platform-admins": "operator"}
    assert roles_for_groups(provider_groups({"groups": ["/partners/sellers"]}), mapping) == ("seller",)


@pytest.mark.parametrize("spec", ["sellers=admin", "sellers", "=seller", "sellers="])
def test_a_broken_mapping_is_a_configuration_error(spec):
    with pytest.raises(IdentityConfigError):
        parse_group_roles(spec)

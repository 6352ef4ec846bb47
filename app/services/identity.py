"""Accounts: sign-up, sign-in with throttling, personal organizations, memberships."""
from __future__ import annotations

import re
import secrets
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from app.models import LoginThrottle, MemberRole, Membership, Organization, Role, User, Wallet, utcnow
from app.services import audit
from app.services.errors import ServiceError

# scrypt is a memory-hard KDF; werkzeug's default parameters (n=2**15, r=8, p=1).
PASSWORD_METHOD = "scrypt"
MIN_PASSWORD_LENGTH = 10
# Checked against a dummy hash when the email is unknown, so both paths take the same time.
_DUMMY_HASH = generate_password_hash("not-a-real-password", method=PASSWORD_METHOD)


class IdentityError(ServiceError):
    """A sign-up or sign-in rule was broken; the message is safe to show."""


class ThrottledError(IdentityError):
    """Too many failed sign-ins for this account or address."""


def normalize_email(email: str) -> str:
    return email.strip().lower()


def slugify(text: str, max_length: int = 120) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:max_length].strip("-") or "item"


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=PASSWORD_METHOD)


def get_user_by_email(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == normalize_email(email)))


def create_user(
    session: Session, *, email: str, name: str, password: str | None, roles: list[str] | None = None,
    oidc_subject: str | None = None,
) -> User:
    """Create a user with a personal organization and its wallet."""
    email = normalize_email(email)
    if get_user_by_email(session, email) is not None:
        raise IdentityError("An account with this email already exists.", field="email")
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        raise IdentityError(f"Use at least {MIN_PASSWORD_LENGTH} characters.", field="password")
    roles = roles or [Role.BUYER.value]
    unknown = set(roles) - {r.value for r in Role}
    if unknown:
        raise IdentityError(f"Unknown role: {', '.join(sorted(unknown))}", field="roles")
    user = User(
        email=email,
        name=name.strip() or email.split("@")[0],
        password_hash=hash_password(password) if password else None,
        oidc_subject=oidc_subject,
        roles=" ".join(sorted(set(roles))),
    )
    session.add(user)
    session.flush()
    ensure_personal_organization(session, user=user)
    audit.record(session, action="user.created", target_type="user", target_id=user.id, actor=user)
    return user


def ensure_personal_organization(session: Session, *, user: User) -> Organization:
    """The user's personal workspace (owner membership and wallet), created on first sign-in."""
    org = session.scalar(
        select(Organization)
        .join(Membership, Membership.organization_id == Organization.id)
        .where(Membership.user_id == user.id, Organization.is_personal.is_(True))
    )
    if org is None:
        org = create_organization(session, name=f"{user.name}'s workspace", owner=user, is_personal=True)
    if user.current_organization_id is None:
        user.current_organization_id = org.id
    return org


def upsert_oidc_user(
    session: Session, *, subject: str, email: str | None, name: str, roles: list[str], email_verified: bool = False,
) -> User:
    """The user an identity provider signed in: created on first sign-in (with a personal organization
    and wallet), brought up to date from the provider on every sign-in. The provider owns the roles.

    An existing account with the same email is linked only when the provider says the address is
    verified and the account is not linked to another subject; otherwise the sign-in is refused.
    """
    if not email or len(email) > 254 or "@" not in email:
        raise IdentityError("Your sign-in account has no usable email address. Add one at the identity "
                            "provider and sign in again.", field="email")
    email = normalize_email(email)
    unknown = set(roles) - {r.value for r in Role}
    if unknown:
        raise IdentityError(f"Unknown role: {', '.join(sorted(unknown))}", field="roles")
    name = name.strip()[:120] or email.split("@")[0]
    wanted_roles = " ".join(sorted(set(roles) or {Role.BUYER.value}))
    user = session.scalar(select(User).where(User.oidc_subject == subject))
    if user is None:
        existing = get_user_by_email(session, email)
        if existing is None:
            user = create_user(session, email=email, name=name, password=None, roles=wanted_roles.split(),
                               oidc_subject=subject)
        elif existing.oidc_subject is None and email_verified:
            existing.oidc_subject = subject
            user = existing
            audit.record(session, action="user.linked_to_provider", target_type="user", target_id=user.id,
                         actor=user)
        else:
            raise IdentityError("An account with this email address already exists and cannot be linked to "
                                "this sign-in. Contact support.", field="email")
    if not user.is_active:
        raise IdentityError("This account is disabled.")
    if user.email != email and get_user_by_email(session, email) is None:
        user.email = email
    user.name = name
    if user.roles != wanted_roles:
        audit.record(session, action="user.roles_changed", target_type="user", target_id=user.id, actor=user,
                     data={"from": user.roles, "to": wanted_roles})
        user.roles = wanted_roles
    user.last_login_at = utcnow()
    ensure_personal_organization(session, user=user)
    session.flush()
    return user


def create_organization(session: Session, *, name: str, owner: User, is_personal: bool = False) -> Organization:
    name = name.strip()
    if not name:
        raise IdentityError("Give the organization a name.", field="name")
    if len(name) > 120:
        raise IdentityError("Use at most 120 characters.", field="name")
    base = slugify(name, 100)
    slug = base
    while session.scalar(select(Organization.id).where(Organization.slug == slug)) is not None:
        slug = f"{base}-{secrets.token_hex(3)}"
    org = Organization(name=name, slug=slug, is_personal=is_personal)
    session.add(org)
    session.flush()
    session.add(Membership(user_id=owner.id, organization_id=org.id, role=MemberRole.OWNER.value))
    session.add(Wallet(organization_id=org.id, balance=0, held=0))
    session.flush()
    audit.record(session, action="organization.created", target_type="organization", target_id=org.id,
                 organization_id=org.id, actor=owner)
    return org


def memberships_of(session: Session, user: User) -> list[Membership]:
    return list(session.scalars(
        select(Membership).where(Membership.user_id == user.id).join(Membership.organization)
        .order_by(Organization.is_personal.desc(), Organization.name)
    ))


def membership(session: Session, *, user: User, organization_id: int) -> Membership | None:
    return session.scalar(
        select(Membership).where(Membership.user_id == user.id, Membership.organization_id == organization_id)
    )


def current_organization(session: Session, user: User) -> Organization:
    """The organization the user works in now: their choice if still a member, else the personal one."""
    if user.current_organization_id and membership(session, user=user, organization_id=user.current_organization_id):
        return session.get(Organization, user.current_organization_id)
    org = ensure_personal_organization(session, user=user)
    user.current_organization_id = org.id
    return org


def switch_organization(session: Session, *, user: User, organization_id: int) -> Organization:
    if membership(session, user=user, organization_id=organization_id) is None:
        raise IdentityError("You are not a member of that organization.")
    user.current_organization_id = organization_id
    return session.get(Organization, organization_id)


# --- sign-in with throttling ---------------------------------------------------------------

def _throttle_row(session: Session, key: str) -> LoginThrottle | None:
    return session.get(LoginThrottle, key)


def check_throttle(session: Session, *, keys: list[str]) -> None:
    now = utcnow()
    for key in keys:
        row = _throttle_row(session, key)
        if row and row.locked_until and row.locked_until > now:
            minutes = max(1, int((row.locked_until - now).total_seconds() // 60) + 1)
            raise ThrottledError(
                f"Too many failed sign-ins. Try again in {minutes} minute{'s' if minutes != 1 else ''}."
            )


def record_failure(session: Session, *, keys: list[str], max_failures: int, lock_seconds: int) -> None:
    now = utcnow()
    window = timedelta(seconds=lock_seconds)
    for key in keys:
        row = _throttle_row(session, key)
        if row is None:
            row = LoginThrottle(key=key, failures=0, window_start=now)
            session.add(row)
        if row.window_start < now - window:
            row.failures, row.window_start, row.locked_until = 0, now, None
        row.failures += 1
        # an address gets more room than one account: several people may share it
        limit = max_failures * 4 if key.startswith("ip:") else max_failures
        if row.failures >= limit:
            row.locked_until = now + window
    session.flush()


def clear_failures(session: Session, *, key: str) -> None:
    row = _throttle_row(session, key)
    if row is not None:
        session.delete(row)


def authenticate(
    session: Session, *, email: str, password: str, remote_addr: str, max_failures: int = 5, lock_seconds: int = 300,
) -> User:
    """Check credentials; raise IdentityError (wrong) or ThrottledError (locked). Failures are counted."""
    email = normalize_email(email)
    keys = [f"email:{email}"[:300], f"ip:{remote_addr}"[:300]]
    check_throttle(session, keys=keys)
    user = get_user_by_email(session, email)
    password_ok = check_password_hash(user.password_hash if user and user.password_hash else _DUMMY_HASH, password)
    if user is None or not user.password_hash or not password_ok or not user.is_active:
        record_failure(session, keys=keys, max_failures=max_failures, lock_seconds=lock_seconds)
        raise IdentityError("Email or password is not right.")
    clear_failures(session, key=keys[0])
    user.last_login_at = utcnow()
    ensure_personal_organization(session, user=user)
    return user


def change_password(session: Session, *, user: User, current: str, new: str) -> None:
    if not user.password_hash or not check_password_hash(user.password_hash, current):
        raise IdentityError("Your current password is not right.", field="current_password")
    if len(new) < MIN_PASSWORD_LENGTH:
        raise IdentityError(f"Use at least {MIN_PASSWORD_LENGTH} characters.", field="new_password")
    user.password_hash = hash_password(new)
    audit.record(session, action="user.password_changed", target_type="user", target_id=user.id, actor=user)

"""Accounts: sign-up with a password policy, sign-in with throttling, signed-in sessions, personal
organizations, memberships."""
from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, case, delete, func, literal, null, or_, select, update
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash
from zxcvbn import zxcvbn

from app.models import LoginThrottle, MemberRole, Membership, Organization, Role, User, UserSession, Wallet, utcnow
from app.services import audit
from app.services.errors import ServiceError
from app.services.text_rules import refuse_spoofing_characters

# scrypt is a memory-hard KDF; werkzeug's default parameters (n=2**15, r=8, p=1).
PASSWORD_METHOD = "scrypt"
MIN_PASSWORD_LENGTH = 10
# zxcvbn's score 0-4; 3 is "safely unguessable" against an online attack and a slow hash offline
MIN_PASSWORD_SCORE = 3
ZXCVBN_MAX_LENGTH = 72  # the estimator refuses longer input; the first 72 characters bound the strength
# Checked against a dummy hash when the email is unknown, so both paths take the same time.
_DUMMY_HASH = generate_password_hash("not-a-real-password", method=PASSWORD_METHOD)


class IdentityError(ServiceError):
    """A sign-up or sign-in rule was broken; the message is safe to show."""


class ThrottledError(IdentityError):
    """Too many failed sign-ins for this account or address; `retry_after` says how many seconds to wait."""

    retry_after: int = 60


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
    if password is not None:
        check_password_strength(password, email=email, name=name)
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
    if not is_personal:  # a personal workspace is named after its person
        refuse_spoofing_characters(name, field="name", error=IdentityError)
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


def count_memberships(session: Session, *, user_id: int) -> int:
    """How many organizations the user belongs to (the header asks on every page: one prepared statement)."""
    return int(session.connection().execute(_MEMBERSHIP_COUNT, {"user_id": user_id}).scalar_one())


_MEMBERSHIP_COUNT = select(func.count()).select_from(Membership).where(
    Membership.user_id == bindparam("user_id"))


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
#
# Every attempt is counted before its password is checked, with one atomic upsert per key, so parallel
# attempts see each other. Three keys: the account at this address (the tight limit), the address
# (room for several people behind one), and the account from anywhere (for attackers who spread over
# many addresses; it has more room than one address can use, and a browser that has signed in to the
# account before is not held by it). Past a limit a key is slowed down, not locked: one attempt is let
# through per waiting time, which doubles up to the lock time. So one failing address never keeps the
# right password out from another; only many failing addresses at once slow the account down for new
# browsers, and then only for seconds to minutes.

@dataclass(frozen=True)
class ThrottlePolicy:
    max_failures: int = 5
    lock_seconds: int = 300
    slowdown_seconds: int = 15
    # an address gets more room than one account at it (several people may share it), and so does an
    # account from anywhere: one failing address alone never slows the account down for others
    address_factor: int = 4
    account_factor: int = 4

    def limits(self, *, pair: str, address: str, account: str) -> dict[str, int]:
        return {pair: self.max_failures, address: self.max_failures * self.address_factor,
                account: self.max_failures * self.account_factor}


@dataclass
class SignInAttempt:
    email: str
    user: User | None
    pair_key: str
    limits: dict[str, int]  # the keys this attempt was counted on, with their limits


def _throttle_keys(email: str, remote_addr: str) -> tuple[str, str, str]:
    return (f"pair:{remote_addr}|{email}"[:300], f"ip:{remote_addr}"[:300], f"acct:{email}"[:300])


def _insert_for(session: Session):
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def _count_attempt(session: Session, key: str, *, now: datetime, window: timedelta) -> tuple[int, datetime | None]:
    """Add one attempt to `key` atomically (a new window when the old one has passed); return the
    count and the time the key is slowed down until."""
    table = LoginThrottle.__table__
    stale = table.c.window_start < now - window
    stamp = literal(now, type_=table.c.window_start.type)
    statement = _insert_for(session)(table).values(key=key, failures=1, window_start=now, locked_until=None)
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.key],
        set_={
            "failures": case((stale, 1), else_=table.c.failures + 1),
            "window_start": case((stale, stamp), else_=table.c.window_start),
            "locked_until": case((stale, null()), else_=table.c.locked_until),
        },
    ).returning(table.c.failures, table.c.locked_until)
    failures, locked_until = session.execute(statement).one()
    return failures, locked_until


def _slow_down(session: Session, key: str, *, now: datetime, until: datetime, first: bool = False) -> bool:
    """Start slowing `key` down (`first`: only if it is not yet), or take the one attempt a slowed-down
    key lets through now; False when the key is not in that state or another attempt took it first."""
    table = LoginThrottle.__table__
    if first:
        ready = or_(table.c.locked_until.is_(None), table.c.locked_until <= now)
    else:
        ready = table.c.locked_until <= now
    result = session.execute(update(table).where(table.c.key == key, ready).values(locked_until=until))
    return result.rowcount == 1


def _wait(failures: int, limit: int, policy: ThrottlePolicy) -> timedelta:
    doublings = min(max(failures - limit, 0), 16)
    return timedelta(seconds=min(policy.lock_seconds, policy.slowdown_seconds * 2 ** doublings))


def _throttled(until: datetime, now: datetime) -> ThrottledError:
    seconds = max(1, int((until - now).total_seconds() + 0.999))
    if seconds < 90:
        wait = f"{seconds} second{'s' if seconds != 1 else ''}"
    else:
        minutes = (seconds + 59) // 60
        wait = f"{minutes} minute{'s' if minutes != 1 else ''}"
    error = ThrottledError(f"Too many failed sign-ins. Try again in {wait}.")
    error.retry_after = seconds
    return error


def begin_sign_in(
    session: Session, *, email: str, remote_addr: str, known_user_id: int | None = None,
    policy: ThrottlePolicy = ThrottlePolicy(), now: datetime | None = None,
) -> SignInAttempt:
    """Count a sign-in attempt before its password is checked; raise ThrottledError when a limit says
    to wait. `known_user_id` is the account this browser signed in to before (its known-device
    cookie): such a browser is not held by the account-wide limit. The caller commits before checking
    the password (`finish_sign_in`), so parallel attempts count against each other."""
    now = now or utcnow()
    email = normalize_email(email)
    user = get_user_by_email(session, email)
    pair, address, account = _throttle_keys(email, remote_addr)
    limits = policy.limits(pair=pair, address=address, account=account)
    if user is not None and known_user_id == user.id:
        del limits[account]
    table = LoginThrottle.__table__
    held = session.execute(
        select(table.c.locked_until).where(table.c.key.in_(list(limits)), table.c.locked_until > now)
    ).scalars().all()
    if held:
        raise _throttled(max(held), now)
    window = timedelta(seconds=policy.lock_seconds)
    for key, limit in limits.items():
        failures, locked_until = _count_attempt(session, key, now=now, window=window)
        if failures <= limit:
            continue
        if locked_until is None:  # over the limit before any failure was seen: parallel attempts
            until = now + _wait(limit, limit, policy)
            _slow_down(session, key, now=now, until=until, first=True)
            raise _throttled(until, now)
        until = now + _wait(failures, limit, policy)
        if not _slow_down(session, key, now=now, until=until):
            raise _throttled(max(locked_until, now + timedelta(seconds=1)), now)
    return SignInAttempt(email=email, user=user, pair_key=pair, limits=limits)


def finish_sign_in(
    session: Session, *, attempt: SignInAttempt, password: str, policy: ThrottlePolicy = ThrottlePolicy(),
    now: datetime | None = None,
) -> User:
    """Check the password of a counted attempt; raise IdentityError when it is wrong (the attempt
    stays counted and a key that reached its limit starts slowing down), else uncount it."""
    now = now or utcnow()
    user = attempt.user
    password_ok = check_password_hash(user.password_hash if user and user.password_hash else _DUMMY_HASH, password)
    table = LoginThrottle.__table__
    if user is None or not user.password_hash or not password_ok or not user.is_active:
        limits = attempt.limits
        rows = session.execute(select(table.c.key, table.c.failures).where(table.c.key.in_(list(limits)))).all()
        for key, failures in rows:
            if failures >= limits[key]:
                _slow_down(session, key, now=now, until=now + _wait(failures, limits[key], policy), first=True)
        session.flush()
        raise IdentityError("Email or password is not right.")
    session.execute(delete(table).where(table.c.key == attempt.pair_key))
    others = [key for key in attempt.limits if key != attempt.pair_key]
    if others:
        session.execute(update(table).where(table.c.key.in_(others), table.c.failures > 0)
                        .values(failures=table.c.failures - 1))
    user.last_login_at = now
    ensure_personal_organization(session, user=user)
    session.flush()
    return user


def clear_sign_in_throttle(session: Session, *, email: str) -> None:
    """Forget the failed sign-ins counted against an account (its owner proved control of it, e.g. by
    a password reset link); counts against addresses stay."""
    email = normalize_email(email)
    _, _, account = _throttle_keys(email, "")
    table = LoginThrottle.__table__
    session.execute(delete(table).where(or_(
        table.c.key == account,
        and_(table.c.key.startswith("pair:", autoescape=True), table.c.key.endswith(f"|{email}", autoescape=True)),
    )))


def authenticate(
    session: Session, *, email: str, password: str, remote_addr: str, max_failures: int = 5, lock_seconds: int = 300,
    known_user_id: int | None = None,
) -> User:
    """Count the attempt and check the credentials in one transaction; raise IdentityError (wrong) or
    ThrottledError (wait). Views use begin_sign_in/finish_sign_in with a commit in between instead."""
    policy = ThrottlePolicy(max_failures=max_failures, lock_seconds=lock_seconds)
    attempt = begin_sign_in(session, email=email, remote_addr=remote_addr, known_user_id=known_user_id, policy=policy)
    return finish_sign_in(session, attempt=attempt, password=password, policy=policy)


# --- signed-in sessions ------------------------------------------------------------------------

def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def start_session(
    session: Session, *, user_id: int, idle_timeout: timedelta, max_lifetime: timedelta, now: datetime | None = None,
) -> str:
    """Record a new signed-in session for the user; return the secret token for the browser's cookie."""
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    session.add(UserSession(token_hash=_token_digest(token), user_id=user_id, created_at=now, last_seen_at=now,
                            expires_at=min(now + idle_timeout, now + max_lifetime)))
    session.flush()
    return token


def resume_session(
    session: Session, *, token: str, idle_timeout: timedelta, max_lifetime: timedelta, now: datetime | None = None,
    touch_after: timedelta | None = None,
) -> UserSession | None:
    """The live session of this token, its idle deadline moved on (at most once per `touch_after`, so a
    busy browser does not write on every request); None when it ended, idled out or outlived its
    absolute lifetime."""
    resumed = resume_signed_in(session, token=token, idle_timeout=idle_timeout, max_lifetime=max_lifetime, now=now,
                               touch_after=touch_after)
    return resumed.record if resumed is not None else None


@dataclass(frozen=True)
class SignedIn:
    """A live session with its user and how many organizations the user belongs to (the header asks)."""

    record: UserSession
    user: User
    membership_count: int


def touch_interval(idle_timeout: timedelta) -> timedelta:
    """How often a busy session's idle deadline is written: once a minute, or a tenth of a short idle
    timeout, so a session in use never idles out between two writes."""
    return min(timedelta(seconds=60), idle_timeout / 10)


# built once: it runs on every signed-in request
_SIGNED_IN = (
    select(UserSession, User,
           select(func.count()).select_from(Membership).where(Membership.user_id == UserSession.user_id)
           .scalar_subquery())
    .join(User, User.id == UserSession.user_id)
    .where(UserSession.token_hash == bindparam("token_hash"))
)


def resume_signed_in(
    session: Session, *, token: str, idle_timeout: timedelta, max_lifetime: timedelta, now: datetime | None = None,
    touch_after: timedelta | None = None,
) -> SignedIn | None:
    """resume_session, with the session's user and their organization count loaded in the same query (it
    runs on every signed-in request)."""
    now = now or utcnow()
    touch_after = touch_interval(idle_timeout) if touch_after is None else touch_after
    row = session.execute(_SIGNED_IN, {"token_hash": _token_digest(token)}).one_or_none()
    if row is None:
        return None
    record, user, membership_count = row
    if record.expires_at <= now or record.created_at + max_lifetime <= now:
        session.delete(record)
        return None
    if now - record.last_seen_at >= touch_after:
        record.last_seen_at = now
        record.expires_at = min(now + idle_timeout, record.created_at + max_lifetime)
    return SignedIn(record=record, user=user, membership_count=int(membership_count))  # changes left pending


def end_session(session: Session, *, token: str) -> None:
    """Sign-out: the session's record is deleted, so its cookie no longer signs anyone in."""
    session.execute(delete(UserSession).where(UserSession.token_hash == _token_digest(token)))


def end_user_sessions(session: Session, *, user: User) -> int:
    """End every session of `user` (sign out everywhere, a new password); return how many ended."""
    return session.execute(delete(UserSession).where(UserSession.user_id == user.id)).rowcount


def count_sessions(session: Session, *, user: User, now: datetime | None = None) -> int:
    """How many live sessions `user` has (each signed-in browser is one)."""
    now = now or utcnow()
    return session.scalar(select(func.count()).select_from(UserSession)
                          .where(UserSession.user_id == user.id, UserSession.expires_at > now))


def purge_expired_sessions(session: Session, now: datetime | None = None) -> int:
    """Delete the records of sessions that idled out or reached their lifetime; return how many."""
    now = now or utcnow()
    return session.execute(delete(UserSession).where(UserSession.expires_at <= now)).rowcount


# --- password policy ---------------------------------------------------------------------------

def check_password_strength(password: str, *, email: str = "", name: str = "", field: str = "password") -> None:
    """Refuse short, common and easily guessed passwords (zxcvbn's estimate, which also knows the
    person's own email and name); raise IdentityError naming `field`, with the reason to show there."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise IdentityError(f"Use at least {MIN_PASSWORD_LENGTH} characters.", field=field)
    own_words = [word for word in re.split(r"[^a-z0-9]+", f"{email} {name}".lower()) if len(word) >= 3]
    estimate = zxcvbn(password[:ZXCVBN_MAX_LENGTH], user_inputs=own_words)
    if estimate["score"] < MIN_PASSWORD_SCORE:
        feedback = estimate["feedback"]
        reason = feedback.get("warning") or "This password is easy to guess."
        hint = " ".join(feedback.get("suggestions") or []) or "Use a few unrelated words."
        raise IdentityError(f"{reason} {hint}".strip(), field=field)


def change_password(session: Session, *, user: User, current: str, new: str) -> None:
    if not user.password_hash or not check_password_hash(user.password_hash, current):
        raise IdentityError("Your current password is not right.", field="current_password")
    check_password_strength(new, email=user.email, name=user.name, field="new_password")
    user.password_hash = hash_password(new)
    end_user_sessions(session, user=user)  # the view starts a new one for the browser that changed it
    audit.record(session, action="user.password_changed", target_type="user", target_id=user.id, actor=user)

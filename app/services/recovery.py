"""Accounts by mail: confirming an email address, resetting a forgotten password, and a sign-up
with an address that already has an account.

Links carry a token signed with the app's secret (itsdangerous), with a purpose of its own and an
age limit. A reset token also carries a fingerprint of the password it replaces, so it works
once: the new password changes the fingerprint. A confirmation token carries the address it
confirms and is refused once that address is confirmed. Nothing here tells a caller whether an
address has an account.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash

from app.models import MailMessage, User, utcnow
from app.services import audit, identity, mail
from app.services.errors import ServiceError

UNVERIFIED_MESSAGE = ("Confirm your email address before you {action}: open the link we mailed you, "
                      "or send a new one from the banner at the top of the page.")
RESEND_INTERVAL = timedelta(minutes=1)
_RESET_SALT = "password-reset"
_VERIFY_SALT = "email-verify"


class RecoveryError(ServiceError):
    """A link or a request was refused; the message is safe to show."""


def _serializer(secret_key: str, salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=salt)


def _password_fingerprint(user: User) -> str:
    return hashlib.sha256((user.password_hash or "").encode()).hexdigest()[:20]


def _mailed_recently(session: Session, *, user: User, template: str, now=None) -> bool:
    """Whether `user` got a `template` mail within RESEND_INTERVAL: nobody can flood a mailbox."""
    last = session.scalar(
        select(MailMessage.created_at).where(MailMessage.user_id == user.id, MailMessage.template == template)
        .order_by(MailMessage.id.desc()).limit(1)
    )
    return last is not None and last > (now or utcnow()) - RESEND_INTERVAL


# --- email confirmation ----------------------------------------------------------------------


def make_verification_token(user: User, *, secret_key: str) -> str:
    return _serializer(secret_key, _VERIFY_SALT).dumps({"u": user.id, "e": user.email})


def send_verification(session: Session, *, user: User, secret_key: str, hours: int, next_url: str | None = None,
                      now=None) -> MailMessage | None:
    """Mail `user` a link that confirms their address (refused when already confirmed, or when the
    last link went out less than a minute ago)."""
    if user.email_verified:
        raise RecoveryError("Your email address is already confirmed.", status=409)
    if _mailed_recently(session, user=user, template="verify_email", now=now):
        raise RecoveryError("We sent you a link a moment ago. Check your inbox, or try again in a minute.",
                            status=429)
    token = make_verification_token(user, secret_key=secret_key)
    values = {"token": token}
    if next_url:
        values["next"] = next_url
    return mail.queue_mail(
        session, to=user.email, template="verify_email", user_id=user.id,
        dedupe_key=f"verify-email:user:{user.id}:{secrets.token_hex(8)}",
        context={"name": user.name, "hours": hours, "verify_url": mail.link("auth.verify_email", **values)},
    )


def verify_email(session: Session, *, token: str, secret_key: str, max_age_seconds: int) -> User:
    """Confirm the address a link was sent to; once. Flushes; the caller commits."""
    try:
        data = _serializer(secret_key, _VERIFY_SALT).loads(token, max_age=max_age_seconds)
    except SignatureExpired:
        raise RecoveryError("This confirmation link has expired. Sign in and send yourself a new one.",
                            status=410) from None
    except BadSignature:
        raise RecoveryError("This confirmation link is not valid. Check that you copied all of it.",
                            status=400) from None
    user = session.get(User, data.get("u")) if isinstance(data, dict) else None
    if user is None or not user.is_active or user.email != data.get("e"):
        raise RecoveryError("This confirmation link is not valid any more.", status=400)
    if user.email_verified:
        raise RecoveryError("This confirmation link was already used: your email address is confirmed.",
                            status=409)
    user.email_verified_at = utcnow()
    audit.record(session, action="user.email_verified", target_type="user", target_id=user.id, actor=user)
    session.flush()
    return user


# --- password reset --------------------------------------------------------------------------


def make_reset_token(user: User, *, secret_key: str) -> str:
    return _serializer(secret_key, _RESET_SALT).dumps({"u": user.id, "p": _password_fingerprint(user)})


def request_password_reset(session: Session, *, email: str, secret_key: str, minutes: int) -> None:
    """Mail a reset link when `email` belongs to an active account with a password; otherwise do
    nothing. The caller answers the same either way."""
    user = identity.get_user_by_email(session, email or "")
    if user is None or not user.is_active or not user.password_hash:
        return
    if _mailed_recently(session, user=user, template="password_reset"):
        return  # the link sent a moment ago still works
    token = make_reset_token(user, secret_key=secret_key)
    mail.queue_mail(
        session, to=user.email, template="password_reset", user_id=user.id,
        dedupe_key=f"password-reset:user:{user.id}:{secrets.token_hex(8)}",
        context={"name": user.name, "minutes": minutes, "reset_url": mail.link("auth.password_reset", token=token)},
    )


def user_for_reset_token(session: Session, *, token: str, secret_key: str, max_age_seconds: int) -> User:
    """The account a reset link is for, while the link is unused and young enough."""
    try:
        data = _serializer(secret_key, _RESET_SALT).loads(token, max_age=max_age_seconds)
    except SignatureExpired:
        raise RecoveryError("This reset link has expired. Ask for a new one.", status=410) from None
    except BadSignature:
        raise RecoveryError("This reset link is not valid. Ask for a new one.", status=400) from None
    user = session.get(User, data.get("u")) if isinstance(data, dict) else None
    if (user is None or not user.is_active or not user.password_hash
            or not hmac.compare_digest(str(data.get("p", "")), _password_fingerprint(user))):
        raise RecoveryError("This reset link was already used or is no longer valid. Ask for a new one.",
                            status=410)
    return user


def reset_password(session: Session, *, token: str, new_password: str, secret_key: str,
                   max_age_seconds: int) -> User:
    """Set a new password from a reset link (flushes; the caller commits). The new password hash
    changes the session stamp, which ends every session of the account, and uses up the link.
    Following the link also proves the address, so it is confirmed too."""
    user = user_for_reset_token(session, token=token, secret_key=secret_key, max_age_seconds=max_age_seconds)
    try:
        identity.check_password_strength(new_password or "", email=user.email, name=user.name, field="password")
    except identity.IdentityError as exc:
        raise RecoveryError(exc.message, field=exc.field) from None
    if len(new_password) > 200:
        raise RecoveryError("Use at most 200 characters.", field="password")
    if check_password_hash(user.password_hash, new_password):
        raise RecoveryError("Choose a password you have not used for this account.", field="password")
    user.password_hash = identity.hash_password(new_password)
    identity.end_user_sessions(session, user=user)  # whoever had the old password is signed out everywhere
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()
    identity.clear_sign_in_throttle(session, email=user.email)
    audit.record(session, action="user.password_reset", target_type="user", target_id=user.id, actor=user)
    session.flush()
    return user


# --- sign-up ---------------------------------------------------------------------------------


def sign_up(session: Session, *, email: str, name: str, password: str, secret_key: str, verify_hours: int,
            next_url: str | None = None) -> User | None:
    """A new local account that must confirm its address (mailed a link), or, when the address has
    an account already, a mail to its owner and nothing else. Returns the new user, or None; the
    caller answers the same way in both cases. Flushes; the caller commits."""
    # refused alike with or without an account, before the address is looked up
    identity.check_password_strength(password or "", email=email or "", name=name or "", field="password")
    existing = identity.get_user_by_email(session, email or "")
    if existing is not None:
        identity.hash_password(password or "x")  # the same work as a new account: timing tells nothing
        if existing.is_active and not _mailed_recently(session, user=existing, template="signup_existing"):
            mail.queue_mail(
                session, to=existing.email, template="signup_existing", user_id=existing.id,
                dedupe_key=f"signup-existing:user:{existing.id}:{secrets.token_hex(8)}",
                context={"name": existing.name, "login_url": mail.link("auth.login"),
                         "reset_url": mail.link("auth.password_forgot")},
            )
        return None
    user = identity.create_user(session, email=email, name=name, password=password)
    send_verification(session, user=user, secret_key=secret_key, hours=verify_hours, next_url=next_url)
    return user

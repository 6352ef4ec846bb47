"""Teams: inviting people to an organization by email, and what they can do with the invitation.

An owner or admin invites an email address with a role (only owners invite owners, as with
`organizations.add_member`). The invitation is mailed as a link carrying a signature (itsdangerous,
the app's secret) over the invitation's id and a random nonce; it works until `expires_at`, once.
Resending draws a new nonce and expiry, so an older link stops working; revoking closes it. The
person accepts signed in with the invited address (or after signing up with it) and becomes a member
with the role. Members, roles and leaving keep the rules of `app.services.organizations`.
"""
from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import MemberRole, Membership, Organization, OrganizationInvitation, User, utcnow
from app.services import audit, identity, mail, organizations
from app.services.errors import ServiceError

_SALT = "organization-invitation"
_ADDRESS = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+$")
RESEND_INTERVAL = timedelta(minutes=1)
ROLE_LABELS = {"owner": "Owner", "admin": "Admin", "member": "Member"}


class InvitationError(ServiceError):
    """An invitation could not be made, used or changed; the message is safe to show."""


def _serializer(secret_key: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret_key, salt=_SALT)


def invitation_token(invitation: OrganizationInvitation, *, secret_key: str) -> str:
    return _serializer(secret_key).dumps({"i": invitation.id, "n": invitation.nonce})


def _aware(moment: datetime) -> datetime:
    from datetime import timezone

    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def _queue_invitation_mail(session: Session, invitation: OrganizationInvitation, *, inviter: User,
                           secret_key: str) -> None:
    token = invitation_token(invitation, secret_key=secret_key)
    mail.queue_mail(
        session, to=invitation.email, template="team_invitation",
        dedupe_key=f"team-invitation:{invitation.id}:{invitation.nonce}",
        context={
            "inviter": inviter.name, "organization": invitation.organization.name,
            "role": ROLE_LABELS.get(invitation.role, invitation.role),
            "expires_at": invitation.expires_at, "accept_url": mail.link("account.invitation_show", token=token),
        },
    )


def _open_invitation_for(session: Session, organization_id: int, email: str, now: datetime):
    return session.scalar(
        select(OrganizationInvitation).where(
            OrganizationInvitation.organization_id == organization_id, OrganizationInvitation.email == email,
            OrganizationInvitation.accepted_at.is_(None), OrganizationInvitation.revoked_at.is_(None),
            OrganizationInvitation.expires_at > now,
        )
    )


def invite_member(session: Session, *, organization_id: int, actor: User, email: str, role: str,
                  secret_key: str, days: int, now: datetime | None = None) -> OrganizationInvitation:
    """Invite `email` to the organization with `role` and queue the mail with the link (flushes)."""
    now = now or utcnow()
    acting = organizations.require_role(session, user=actor, organization_id=organization_id)
    if role not in organizations.ALL_ROLES:
        raise InvitationError(f"Choose one of: {', '.join(organizations.ALL_ROLES)}.", field="role")
    if role == MemberRole.OWNER.value and acting.role != MemberRole.OWNER.value:
        raise organizations.NotAllowed("Only owners may invite another owner.")
    organization = session.get(Organization, organization_id)
    if organization.is_personal:
        raise InvitationError("A personal workspace has one member; create an organization to work with others.",
                              status=409)
    email = identity.normalize_email(email or "")
    if len(email) > 254 or not _ADDRESS.match(email):
        raise InvitationError("Enter an email address like name@example.com.", field="email")
    existing = identity.get_user_by_email(session, email)
    if existing is not None and organizations.membership(session, user=existing,
                                                         organization_id=organization_id) is not None:
        raise InvitationError("This person is already a member.", field="email", status=409)
    if _open_invitation_for(session, organization_id, email, now) is not None:
        raise InvitationError("This address has an invitation waiting; resend it from the list below.",
                              field="email", status=409)
    invitation = OrganizationInvitation(
        organization_id=organization_id, email=email, role=role, nonce=secrets.token_hex(16),
        invited_by_id=actor.id, sent_at=now, expires_at=now + timedelta(days=days),
    )
    session.add(invitation)
    session.flush()
    _queue_invitation_mail(session, invitation, inviter=actor, secret_key=secret_key)
    audit.record(session, action="organization.member_invited", target_type="organization_invitation",
                 target_id=invitation.id, organization_id=organization_id, actor=actor,
                 data={"email": email, "role": role})
    return invitation


def list_invitations(session: Session, *, user: User, organization_id: int,
                     now: datetime | None = None) -> list[OrganizationInvitation]:
    """Invitations not yet accepted or revoked (expired ones too, to resend), newest first; managers only."""
    organizations.require_role(session, user=user, organization_id=organization_id)
    return list(session.scalars(
        select(OrganizationInvitation).where(
            OrganizationInvitation.organization_id == organization_id,
            OrganizationInvitation.accepted_at.is_(None), OrganizationInvitation.revoked_at.is_(None),
        ).order_by(OrganizationInvitation.id.desc())
    ))


def _managed_invitation(session: Session, *, organization_id: int, actor: User,
                        invitation_id: int) -> OrganizationInvitation:
    acting = organizations.require_role(session, user=actor, organization_id=organization_id)
    invitation = session.get(OrganizationInvitation, invitation_id)
    if invitation is None or invitation.organization_id != organization_id:
        raise InvitationError("Invitation not found.", status=404)
    if invitation.role == MemberRole.OWNER.value and acting.role != MemberRole.OWNER.value:
        raise organizations.NotAllowed("Only owners may change an invitation to become an owner.")
    if invitation.accepted_at is not None:
        raise InvitationError("This invitation was accepted already.", status=409)
    if invitation.revoked_at is not None:
        raise InvitationError("This invitation was revoked.", status=409)
    return invitation


def resend_invitation(session: Session, *, organization_id: int, actor: User, invitation_id: int,
                      secret_key: str, days: int, now: datetime | None = None) -> OrganizationInvitation:
    """Mail a fresh link (new expiry; the previous link stops working)."""
    now = now or utcnow()
    invitation = _managed_invitation(session, organization_id=organization_id, actor=actor,
                                     invitation_id=invitation_id)
    if _aware(invitation.sent_at) > now - RESEND_INTERVAL:
        raise InvitationError("This invitation was sent a moment ago; try again in a minute.", status=429)
    invitation.nonce = secrets.token_hex(16)
    invitation.sent_at = now
    invitation.expires_at = now + timedelta(days=days)
    session.flush()
    _queue_invitation_mail(session, invitation, inviter=actor, secret_key=secret_key)
    audit.record(session, action="organization.invitation_resent", target_type="organization_invitation",
                 target_id=invitation.id, organization_id=organization_id, actor=actor,
                 data={"email": invitation.email})
    return invitation


def revoke_invitation(session: Session, *, organization_id: int, actor: User, invitation_id: int,
                      now: datetime | None = None) -> OrganizationInvitation:
    invitation = _managed_invitation(session, organization_id=organization_id, actor=actor,
                                     invitation_id=invitation_id)
    invitation.revoked_at = now or utcnow()
    session.flush()
    audit.record(session, action="organization.invitation_revoked", target_type="organization_invitation",
                 target_id=invitation.id, organization_id=organization_id, actor=actor,
                 data={"email": invitation.email})
    return invitation


def read_invitation(session: Session, *, token: str, secret_key: str, now: datetime | None = None,
                    lock: bool = False) -> OrganizationInvitation:
    """The open invitation a link names; InvitationError when the link is forged, outdated or used."""
    now = now or utcnow()
    try:
        claims = _serializer(secret_key).loads(token or "")
        invitation_id, nonce = int(claims["i"]), str(claims["n"])
    except (BadSignature, KeyError, TypeError, ValueError):
        raise InvitationError("This invitation link is not valid. Ask for a new invitation.", status=404) from None
    query = select(OrganizationInvitation).where(OrganizationInvitation.id == invitation_id)
    if lock and session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()  # two accepts of one link: the second sees it accepted
    invitation = session.scalar(query.execution_options(populate_existing=True))
    if invitation is None or not secrets.compare_digest(invitation.nonce, nonce):
        raise InvitationError("This invitation link is no longer valid: a newer one was sent, or it was "
                              "withdrawn. Ask for a new invitation.", status=410)
    if invitation.revoked_at is not None:
        raise InvitationError("This invitation was withdrawn. Ask for a new invitation.", status=410)
    if invitation.accepted_at is not None:
        raise InvitationError("This invitation was accepted already.", status=409)
    if _aware(invitation.expires_at) <= now:
        raise InvitationError("This invitation has expired. Ask for a new invitation.", status=410)
    return invitation


def accept_invitation(session: Session, *, token: str, user: User, secret_key: str,
                      now: datetime | None = None) -> Membership:
    """Make `user` a member with the invited role; the user must be signed in with the invited address."""
    now = now or utcnow()
    invitation = read_invitation(session, token=token, secret_key=secret_key, now=now, lock=True)
    if identity.normalize_email(user.email) != invitation.email:
        raise InvitationError(f"This invitation was sent to {invitation.email}. Sign in with that address "
                              "(or create an account with it) to accept.", status=403)
    member = organizations.membership(session, user=user, organization_id=invitation.organization_id)
    if member is not None:
        raise InvitationError("You are already a member of this organization.", status=409)
    member = Membership(user_id=user.id, organization_id=invitation.organization_id, role=invitation.role)
    session.add(member)
    invitation.accepted_at = now
    invitation.accepted_by_id = user.id
    if user.email_verified_at is None:
        user.email_verified_at = now  # the link reached this mailbox
    session.flush()
    audit.record(session, action="organization.invitation_accepted", target_type="membership", target_id=member.id,
                 organization_id=invitation.organization_id, actor=user,
                 data={"invitation_id": invitation.id, "role": invitation.role})
    return member

"""Organizations and their members: who may see and manage an organization's data.

Every question "may this user touch organization X" is answered here. Someone who is not a
member gets OrganizationNotFound (404), never a hint that the organization exists.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import MemberRole, Membership, Organization, User
from app.services import audit, identity
from app.services.errors import ServiceError
from app.services.text_rules import refuse_spoofing_characters

MANAGER_ROLES = (MemberRole.OWNER.value, MemberRole.ADMIN.value)
ALL_ROLES = tuple(r.value for r in MemberRole)


class OrganizationError(ServiceError):
    """An organization rule was broken; the message is safe to show."""


class OrganizationNotFound(OrganizationError):
    def __init__(self, message: str = "Organization not found.") -> None:
        super().__init__(message, status=404)


class NotAllowed(OrganizationError):
    def __init__(self, message: str = "Only owners and admins of the organization may do this.") -> None:
        super().__init__(message, status=403)


def membership(session: Session, *, user: User, organization_id: int) -> Membership | None:
    return identity.membership(session, user=user, organization_id=organization_id)


def require_member(session: Session, *, user: User, organization_id: int,
                   not_found: Exception | None = None) -> Membership:
    """The user's membership of the organization; not a member: `not_found` (404) is raised."""
    found = membership(session, user=user, organization_id=organization_id)
    if found is None:
        raise not_found or OrganizationNotFound()
    return found


def require_role(session: Session, *, user: User, organization_id: int, roles=MANAGER_ROLES,
                 not_found: Exception | None = None) -> Membership:
    """Membership with one of `roles`: a non-member gets `not_found` (404), a member without the role 403."""
    found = require_member(session, user=user, organization_id=organization_id, not_found=not_found)
    if found.role not in roles:
        raise NotAllowed()
    return found


def list_organizations(session: Session, *, user: User) -> list[Membership]:
    """The user's memberships (organization and role), personal workspace first."""
    return identity.memberships_of(session, user)


def get_organization(session: Session, *, user: User, organization_id: int) -> Organization:
    require_member(session, user=user, organization_id=organization_id)
    return session.get(Organization, organization_id)


def create_organization(session: Session, *, user: User, name: str) -> Organization:
    """A team organization with `user` as its owner (and its wallet)."""
    refuse_spoofing_characters(name, field="name", error=OrganizationError)
    try:
        return identity.create_organization(session, name=name, owner=user)
    except identity.IdentityError as exc:
        raise OrganizationError(str(exc), field=exc.field) from exc


def list_members(session: Session, *, user: User, organization_id: int) -> list[Membership]:
    require_member(session, user=user, organization_id=organization_id)
    return list(session.scalars(
        select(Membership).where(Membership.organization_id == organization_id)
        .join(Membership.user).order_by(Membership.id)
    ))


def _check_role_value(role: str) -> str:
    if role not in ALL_ROLES:
        raise OrganizationError(f"Choose one of: {', '.join(ALL_ROLES)}.", field="role")
    return role


def _owners_locked(session: Session, organization_id: int) -> list[Membership]:
    """The owner memberships, row-locked on PostgreSQL so two demotions cannot both pass the last-owner check."""
    return list(session.scalars(
        select(Membership)
        .where(Membership.organization_id == organization_id, Membership.role == MemberRole.OWNER.value)
        .with_for_update()
    ))


def add_member(session: Session, *, organization_id: int, actor: User, email: str,
               role: str = MemberRole.MEMBER.value) -> Membership:
    """Add an existing account by email. Owners and admins may add; only owners may add owners."""
    acting = require_role(session, user=actor, organization_id=organization_id)
    role = _check_role_value(role)
    if role == MemberRole.OWNER.value and acting.role != MemberRole.OWNER.value:
        raise NotAllowed("Only owners may add another owner.")
    organization = session.get(Organization, organization_id)
    if organization.is_personal:
        raise OrganizationError("A personal workspace has one member; create an organization to work with others.",
                                status=409)
    user = identity.get_user_by_email(session, email or "")
    if user is None or not user.is_active:
        raise OrganizationError("No account uses this email; ask them to sign up first.", field="email")
    if membership(session, user=user, organization_id=organization_id) is not None:
        raise OrganizationError("This person is already a member.", field="email", status=409)
    added = Membership(user_id=user.id, organization_id=organization_id, role=role)
    session.add(added)
    session.flush()
    audit.record(session, action="organization.member_added", target_type="membership", target_id=added.id,
                 organization_id=organization_id, actor=actor, data={"user_id": user.id, "role": role})
    return added


def _target_membership(session: Session, organization_id: int, user_id: int) -> Membership:
    found = session.scalar(
        select(Membership).where(Membership.organization_id == organization_id, Membership.user_id == user_id)
    )
    if found is None:
        raise OrganizationError("Member not found.", status=404)
    return found


def change_member_role(session: Session, *, organization_id: int, actor: User, user_id: int, role: str) -> Membership:
    """Owners change anyone's role; admins change admins and members but never make or unmake owners.

    The last owner cannot be demoted.
    """
    acting = require_role(session, user=actor, organization_id=organization_id)
    role = _check_role_value(role)
    target = _target_membership(session, organization_id, user_id)
    involves_owner = MemberRole.OWNER.value in (role, target.role)
    if involves_owner and acting.role != MemberRole.OWNER.value:
        raise NotAllowed("Only owners may make someone an owner or change an owner's role.")
    if target.role == role:
        return target
    if target.role == MemberRole.OWNER.value:
        owners = _owners_locked(session, organization_id)
        if len(owners) <= 1:
            raise OrganizationError("An organization needs at least one owner; make someone else owner first.",
                                    field="role", status=409)
    previous = target.role
    target.role = role
    session.flush()
    audit.record(session, action="organization.member_role_changed", target_type="membership", target_id=target.id,
                 organization_id=organization_id, actor=actor,
                 data={"user_id": user_id, "from": previous, "to": role})
    return target


def remove_member(session: Session, *, organization_id: int, actor: User, user_id: int) -> None:
    """Owners and admins remove members (admins cannot remove owners); anyone may leave.

    The last owner cannot be removed (nor leave).
    """
    acting = require_member(session, user=actor, organization_id=organization_id)
    target = _target_membership(session, organization_id, user_id)
    leaving = target.user_id == actor.id
    if not leaving:
        if acting.role not in MANAGER_ROLES:
            raise NotAllowed()
        if target.role == MemberRole.OWNER.value and acting.role != MemberRole.OWNER.value:
            raise NotAllowed("Only owners may remove an owner.")
    if target.role == MemberRole.OWNER.value:
        owners = _owners_locked(session, organization_id)
        if len(owners) <= 1:
            raise OrganizationError("The last owner cannot be removed; make someone else owner first.", status=409)
    removed_user = session.get(User, target.user_id)
    session.delete(target)
    if removed_user.current_organization_id == organization_id:
        removed_user.current_organization_id = None
    session.flush()
    audit.record(session, action="organization.member_removed", target_type="membership", target_id=target.id,
                 organization_id=organization_id, actor=actor, data={"user_id": user_id, "role": target.role})

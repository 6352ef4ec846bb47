"""Organizations and members: /api/organizations/..."""
from __future__ import annotations

from flask import current_app, g

from app.cp import schemas, serializers
from app.cp.auth import USER_KINDS, api_auth
from app.cp.openapi import responses, spec
from app.cp.views import bp
from app.extensions import db
from app.services import listings, organizations, teams

ID = "int(min=1, max=2147483647)"
TAGS = ["organizations"]


@bp.get("/organizations/")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(200, schemas.OrganizationList), tags=TAGS)
def list_organizations():
    """The organizations you belong to, with your role; your personal workspace first."""
    memberships = organizations.list_organizations(db.session, user=g.api_user)
    return schemas.OrganizationList(items=[serializers.organization_out(m.organization, m.role) for m in memberships])


@bp.post("/organizations/")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(201, schemas.OrganizationOut, 400), tags=TAGS)
def create_organization(json: schemas.OrganizationCreate):
    """Create a team organization; you become its owner, and it gets an empty wallet."""
    org = organizations.create_organization(db.session, user=g.api_user, name=json.name)
    db.session.commit()
    return serializers.organization_out(org, "owner"), 201


@bp.get(f"/organizations/<{ID}:organization_id>")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(200, schemas.OrganizationOut, 404), tags=TAGS)
def get_organization(organization_id: int):
    """One of your organizations (others are not found)."""
    org = organizations.get_organization(db.session, user=g.api_user, organization_id=organization_id)
    role = organizations.membership(db.session, user=g.api_user, organization_id=organization_id).role
    return serializers.organization_out(org, role)


@bp.get(f"/organizations/<{ID}:organization_id>/members/")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(200, schemas.MemberList, 404), tags=TAGS)
def list_members(organization_id: int):
    """The members of one of your organizations."""
    members = organizations.list_members(db.session, user=g.api_user, organization_id=organization_id)
    return schemas.MemberList(items=[serializers.member_out(m) for m in members])


@bp.post(f"/organizations/<{ID}:organization_id>/members/")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(201, schemas.MemberOut, 400, 403, 404, 409), tags=TAGS)
def add_member(organization_id: int, json: schemas.MemberAdd):
    """Add someone who has an account, by email (owners and admins; only owners add owners)."""
    added = organizations.add_member(db.session, organization_id=organization_id, actor=g.api_user,
                                     email=json.email, role=json.role)
    db.session.commit()
    return serializers.member_out(added), 201


@bp.patch(f"/organizations/<{ID}:organization_id>/members/<{ID}:user_id>")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(200, schemas.MemberOut, 400, 403, 404, 409), tags=TAGS)
def change_member_role(organization_id: int, user_id: int, json: schemas.MemberRoleChange):
    """Change a member's role. The last owner cannot be demoted."""
    changed = organizations.change_member_role(db.session, organization_id=organization_id, actor=g.api_user,
                                               user_id=user_id, role=json.role)
    db.session.commit()
    return serializers.member_out(changed)


@bp.delete(f"/organizations/<{ID}:organization_id>/members/<{ID}:user_id>")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(204, None, 403, 404, 409), tags=TAGS)
def remove_member(organization_id: int, user_id: int):
    """Remove a member, or leave (your own user id). The last owner cannot be removed."""
    organizations.remove_member(db.session, organization_id=organization_id, actor=g.api_user, user_id=user_id)
    db.session.commit()
    return "", 204


def _invite_settings() -> dict:
    return {"secret_key": current_app.config["SECRET_KEY"], "days": int(current_app.config.get("TEAM_INVITE_DAYS") or 7)}


@bp.get(f"/organizations/<{ID}:organization_id>/invitations/")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(200, schemas.InvitationList, 403, 404), tags=TAGS)
def list_invitations(organization_id: int):
    """Invitations not yet accepted or revoked, newest first (owners and admins)."""
    rows = teams.list_invitations(db.session, user=g.api_user, organization_id=organization_id)
    return schemas.InvitationList(items=[serializers.invitation_out(i) for i in rows])


@bp.post(f"/organizations/<{ID}:organization_id>/invitations/")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(201, schemas.InvitationOut, 400, 403, 404, 409), tags=TAGS)
def create_invitation(organization_id: int, json: schemas.InvitationCreate):
    """Invite an email address with a role: we mail a signed link that expires (owners and admins; only
    owners invite owners). Accepting it, signed in with that address, makes them a member."""
    invitation = teams.invite_member(db.session, organization_id=organization_id, actor=g.api_user,
                                     email=json.email, role=json.role, **_invite_settings())
    db.session.commit()
    return serializers.invitation_out(invitation), 201


@bp.post(f"/organizations/<{ID}:organization_id>/invitations/<{ID}:invitation_id>/resend")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(200, schemas.InvitationOut, 403, 404, 409, 429), tags=TAGS)
def resend_invitation(organization_id: int, invitation_id: int):
    """Mail a fresh link with a new expiry; the previous link stops working."""
    invitation = teams.resend_invitation(db.session, organization_id=organization_id, actor=g.api_user,
                                         invitation_id=invitation_id, **_invite_settings())
    db.session.commit()
    return serializers.invitation_out(invitation)


@bp.delete(f"/organizations/<{ID}:organization_id>/invitations/<{ID}:invitation_id>")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(204, None, 403, 404, 409), tags=TAGS)
def revoke_invitation(organization_id: int, invitation_id: int):
    """Revoke an invitation that was not accepted yet; its link stops working."""
    teams.revoke_invitation(db.session, organization_id=organization_id, actor=g.api_user,
                            invitation_id=invitation_id)
    db.session.commit()
    return "", 204


@bp.post("/invitations/accept")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(201, schemas.MemberOut, 400, 403, 404, 409, 410), tags=TAGS)
def accept_invitation(json: schemas.InvitationAccept):
    """Accept an invitation with the token from its link; you must be the invited email address."""
    member = teams.accept_invitation(db.session, token=json.token, user=g.api_user,
                                     secret_key=current_app.config["SECRET_KEY"])
    db.session.commit()
    return serializers.member_out(member), 201


@bp.get(f"/organizations/<{ID}:organization_id>/offerings")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(200, schemas.OfferingList, 404), tags=["offerings"])
def publisher_offerings(organization_id: int):
    """Every offering the organization publishes, in every status (its members only)."""
    rows = listings.publisher_offerings(db.session, user=g.api_user, organization_id=organization_id)
    return schemas.OfferingList(items=[serializers.offering_out(o, private=True) for o in rows], page=1,
                                per_page=max(1, len(rows)), total=len(rows))

"""Teams in the account pages: your organizations, creating one, and for each its members and
invitations; the invitation link a person follows from the mail. The rules are the services'
(`organizations` for members and roles, `teams` for invitations), the same the API uses."""
from __future__ import annotations

from flask import abort, current_app, flash, g, redirect, render_template, request, url_for

from app.account.forms import ActionForm, InvitationForm, MemberRoleForm, OrganizationCreateForm
from app.account.views import bp
from app.auth.session_user import login_required
from app.extensions import db
from app.models import User, utcnow
from app.services import identity, organizations, teams
from app.services.errors import ServiceError


_A_ROLE = {"owner": "an owner", "admin": "an admin", "member": "a member"}


def _secret() -> str:
    return current_app.config["SECRET_KEY"]


def _days() -> int:
    return int(current_app.config.get("TEAM_INVITE_DAYS") or 7)


def _put_error(form, exc: ServiceError) -> None:
    target = getattr(form, exc.field, None) if exc.field else None
    (target.errors if target is not None and hasattr(target, "errors") else form.form_errors).append(str(exc))


@bp.get("/teams")
@login_required
def teams_list():
    return _teams_page()


def _teams_page(status: int = 200, **overrides):
    context = {
        "memberships": identity.memberships_of(db.session, g.user),
        "create_form": OrganizationCreateForm(formdata=None),
    }
    context.update(overrides)
    return render_template("account/teams.html", **context), status


@bp.post("/teams")
@login_required
def team_create():
    form = OrganizationCreateForm()
    if form.validate_on_submit():
        try:
            org = organizations.create_organization(db.session, user=g.user, name=form.name.data)
        except ServiceError as exc:
            db.session.rollback()
            _put_error(form, exc)
        else:
            db.session.commit()
            flash(f"{org.name} is ready. Invite your team below.", "success")
            return redirect(url_for("account.team_detail", organization_id=org.id), 303)
    return _teams_page(400, create_form=form)


def _team_page(organization_id: int, status: int = 200, **overrides):
    try:
        mine = organizations.require_member(db.session, user=g.user, organization_id=organization_id)
    except organizations.OrganizationNotFound:
        abort(404)
    manager = mine.role in organizations.MANAGER_ROLES
    members = organizations.list_members(db.session, user=g.user, organization_id=organization_id)
    context = {
        "organization": mine.organization,
        "mine": mine,
        "manager": manager,
        "is_owner": mine.role == "owner",
        "members": members,
        "owner_count": sum(1 for m in members if m.role == "owner"),
        "invitations": teams.list_invitations(db.session, user=g.user, organization_id=organization_id)
        if manager else [],
        "invite_form": _invite_form(InvitationForm(formdata=None)),
        "action_form": ActionForm(formdata=None),
        "role_labels": teams.ROLE_LABELS,
        "refusal": None,
        "now": utcnow(),
    }
    context.update(overrides)
    _invite_form(context["invite_form"])
    return render_template("account/team_detail.html", **context), status, {"Cache-Control": "no-store"}


def _invite_form(form: InvitationForm) -> InvitationForm:
    days = _days()
    form.email.description = f"We mail them a link that works for {days} day{'s' if days != 1 else ''}."
    return form


@bp.get("/teams/<int:organization_id>")
@login_required
def team_detail(organization_id: int):
    return _team_page(organization_id)


@bp.post("/teams/<int:organization_id>/invitations")
@login_required
def team_invite(organization_id: int):
    form = InvitationForm()
    if form.validate_on_submit():
        try:
            invitation = teams.invite_member(
                db.session, organization_id=organization_id, actor=g.user, email=form.email.data,
                role=form.role.data, secret_key=_secret(), days=_days(),
            )
        except organizations.OrganizationNotFound:
            db.session.rollback()
            abort(404)
        except organizations.NotAllowed as exc:
            db.session.rollback()
            form.form_errors.append(str(exc))
            return _team_page(organization_id, 403, invite_form=form, refusal=str(exc))
        except ServiceError as exc:
            db.session.rollback()
            _put_error(form, exc)
        else:
            db.session.commit()
            flash(f"Invitation sent to {invitation.email}.", "success")
            return redirect(url_for("account.team_detail", organization_id=organization_id), 303)
    return _team_page(organization_id, 400, invite_form=form)


def _button(organization_id: int, action, success):
    """A POST button on the team page: check CSRF, run `action`, commit, and say what happened."""
    if not ActionForm().validate_on_submit():
        flash("Your session expired or the form was tampered with. Reload the page and try again.", "error")
        return redirect(url_for("account.team_detail", organization_id=organization_id), 303)
    try:
        result = action()
    except organizations.OrganizationNotFound:
        db.session.rollback()
        abort(404)
    except ServiceError as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        db.session.commit()
        flash(success if not callable(success) else success(result), "success")
    return None


@bp.post("/teams/<int:organization_id>/invitations/<int:invitation_id>/resend")
@login_required
def team_invitation_resend(organization_id: int, invitation_id: int):
    _button(organization_id, lambda: teams.resend_invitation(
        db.session, organization_id=organization_id, actor=g.user, invitation_id=invitation_id,
        secret_key=_secret(), days=_days(),
    ), lambda inv: f"A new invitation link was sent to {inv.email}.")
    return redirect(url_for("account.team_detail", organization_id=organization_id), 303)


@bp.post("/teams/<int:organization_id>/invitations/<int:invitation_id>/revoke")
@login_required
def team_invitation_revoke(organization_id: int, invitation_id: int):
    _button(organization_id, lambda: teams.revoke_invitation(
        db.session, organization_id=organization_id, actor=g.user, invitation_id=invitation_id,
    ), lambda inv: f"The invitation to {inv.email} was revoked; its link no longer works.")
    return redirect(url_for("account.team_detail", organization_id=organization_id), 303)


@bp.post("/teams/<int:organization_id>/members/<int:user_id>/role")
@login_required
def team_member_role(organization_id: int, user_id: int):
    form = MemberRoleForm()
    if not form.validate_on_submit():
        flash("Choose a role: member, admin or owner.", "error")
        return redirect(url_for("account.team_detail", organization_id=organization_id), 303)
    _button(organization_id, lambda: organizations.change_member_role(
        db.session, organization_id=organization_id, actor=g.user, user_id=user_id, role=form.role.data,
    ), lambda m: f"{m.user.name} is now {_A_ROLE[m.role]}.")
    return redirect(url_for("account.team_detail", organization_id=organization_id), 303)


@bp.post("/teams/<int:organization_id>/members/<int:user_id>/remove")
@login_required
def team_member_remove(organization_id: int, user_id: int):
    leaving = user_id == g.user.id
    target = db.session.get(User, user_id)
    name = target.name if target is not None else "The member"
    mine = organizations.membership(db.session, user=g.user, organization_id=organization_id)
    org_name = mine.organization.name if mine is not None else "the organization"
    _button(organization_id, lambda: organizations.remove_member(
        db.session, organization_id=organization_id, actor=g.user, user_id=user_id,
    ), f"You left {org_name}." if leaving else f"{name} was removed from {org_name}.")
    if leaving and organizations.membership(db.session, user=g.user, organization_id=organization_id) is None:
        return redirect(url_for("account.teams_list"), 303)
    return redirect(url_for("account.team_detail", organization_id=organization_id), 303)


# --- the link in the invitation mail --------------------------------------------------------------

@bp.route("/invitations/<token>", methods=["GET", "POST"])
def invitation_show(token: str):
    """Anyone with the link sees what it invites to; accepting needs the invited address signed in."""
    try:
        invitation = teams.read_invitation(db.session, token=token, secret_key=_secret())
    except teams.InvitationError as exc:
        db.session.rollback()
        return render_template("account/invitation.html", invitation=None, problem=str(exc)), exc.status
    form = ActionForm()
    user = g.get("user")
    if request.method == "POST" and user is not None and form.validate_on_submit():
        try:
            member = teams.accept_invitation(db.session, token=token, user=user, secret_key=_secret())
        except teams.InvitationError as exc:
            db.session.rollback()
            return render_template("account/invitation.html", invitation=invitation, problem=str(exc),
                                   form=ActionForm(formdata=None)), exc.status
        org_name = member.organization.name if member.organization else invitation.organization.name
        user.current_organization_id = member.organization_id
        db.session.commit()
        flash(f"Welcome to {org_name}. You are now working in it.", "success")
        return redirect(url_for("account.team_detail", organization_id=member.organization_id), 303)
    if request.method == "POST" and user is None:
        return redirect(url_for("auth.login", next=request.path), 303)
    wrong_account = user is not None and identity.normalize_email(user.email) != invitation.email
    return render_template("account/invitation.html", invitation=invitation, problem=None,
                           form=ActionForm(formdata=None), wrong_account=wrong_account), 200, \
        {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}

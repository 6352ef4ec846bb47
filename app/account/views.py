"""The signed-in buyer's account pages."""
from __future__ import annotations

from flask import Blueprint, g, render_template

from app.auth.session_user import current_org, login_required
from app.extensions import db
from app.services import identity

bp = Blueprint("account", __name__)


@bp.get("/")
@login_required
def profile():
    memberships = identity.memberships_of(db.session, g.user)
    return render_template("account/profile.html", memberships=memberships, org=current_org())

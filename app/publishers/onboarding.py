"""Becoming a seller: the publisher organization (step one), the seller terms (step two), then the first draft
in the seller console. With single sign-on the seller role comes from the identity provider's group, so the
page says how to ask for it instead."""
from __future__ import annotations

from flask import current_app, flash, g, redirect, render_template, request, session, url_for

from app.auth.session_user import login_required
from app.extensions import db
from app.forms_flow import submit
from app.models import Role
from app.publishers.forms import PublisherApplicationForm, TermsForm
from app.publishers.views import bp
from app.services import media, publishers
from app.services.offerings import render_description
from app.services.publishers import PublisherDetails

APPLICATION_KEY = "publisher_application"


def _seller_groups() -> list[str]:
    """The identity-provider groups that carry the seller role (OIDC_GROUP_ROLES, e.g. sellers=seller)."""
    pairs = (item.split("=", 1) for item in current_app.config.get("OIDC_GROUP_ROLES", "").split(",") if "=" in item)
    return [group.strip() for group, role in pairs if role.strip() == Role.SELLER.value and group.strip()]


def _status_page():
    """What a signed-in person sees instead of the form: single sign-on, a seller already, or waiting."""
    user = g.user
    if current_app.config.get("AUTH_BACKEND") == "oidc" and not user.has_role(Role.SELLER):
        return render_template("publishers/sell_sso.html", groups=_seller_groups(),
                               contact=current_app.config.get("SELLER_ACCESS_CONTACT", ""))
    pending = publishers.open_application(db.session, user=user)
    if pending is not None:
        return render_template("publishers/sell_pending.html", profile=pending)
    return None


@bp.route("/sell", methods=["GET", "POST"])
@login_required
def sell():
    """Step one: the publisher organization and its public details. A seller following "Sell on Digitlify"
    is taken to their console; `?another=1` applies for an additional publisher."""
    if g.user.has_role(Role.SELLER) and request.method == "GET" and not request.args.get("another"):
        return redirect(url_for("seller.dashboard"))
    waiting = _status_page()
    if waiting is not None:
        return waiting
    saved = session.get(APPLICATION_KEY) or {}
    form = PublisherApplicationForm(data=saved if request.method == "GET" else None)
    if request.method == "GET" and not saved:
        form.support_email.data = g.user.email

    def check() -> PublisherDetails:
        logo_key = saved.get("logo_key")
        upload = form.logo.data
        if upload is not None and getattr(upload, "filename", ""):
            logo_key = media.store_image(upload.read(), max_side=media.LOGO_MAX_SIDE, field="logo").key
        return publishers.check_publisher_details(
            db.session, name=form.name.data, slug=form.slug.data, website=form.website.data,
            support_email=form.support_email.data, description=form.description.data, logo_key=logo_key,
        )

    done = submit(form, check)
    if done.ok:
        session[APPLICATION_KEY] = done.value.as_dict()
        return redirect(url_for("publishers.sell_terms"))
    last_declined = publishers.last_declined(db.session, user=g.user)
    return render_template("publishers/sell.html", form=form, logo_key=saved.get("logo_key"),
                           last_declined=last_declined, is_seller=g.user.has_role(Role.SELLER)), done.status


@bp.route("/sell/terms", methods=["GET", "POST"])
@login_required
def sell_terms():
    """Step two: read and accept the seller terms; accepting sends the application and opens the console."""
    waiting = _status_page()
    if waiting is not None:
        return waiting
    saved = session.get(APPLICATION_KEY)
    if isinstance(saved, dict):  # only the fields step one stores: an older cookie never breaks the page
        saved = {name: saved.get(name) for name in ("name", "slug", "website", "support_email", "description",
                                                    "logo_key")}
    if not saved or not saved.get("name"):
        flash("Start with your publisher's details.", "info")
        return redirect(url_for("publishers.sell"))
    terms = publishers.current_terms(db.session)
    form = TermsForm()
    if request.method == "GET":
        form.terms_version.data = terms.version
    done = submit(form, lambda: publishers.apply_as_publisher(
        db.session, user=g.user, details=PublisherDetails(**saved), terms_version=form.terms_version.data or "",
        accepted=bool(form.accept.data),
    ), field_map={"name": "", "slug": "", "website": "", "support_email": "", "description": ""})
    if done.ok:
        session.pop(APPLICATION_KEY, None)
        profile = done.value
        flash(f"Thanks! “{profile.organization.name}” is waiting for an operator's approval. Meanwhile you can "
              "prepare your first offering as a draft.", "success")
        return redirect(url_for("seller.offering_create", publisher=profile.organization_id))
    if request.method == "POST":  # the refusal rolled back: the terms row may be new again
        terms = publishers.current_terms(db.session)
    return render_template("publishers/sell_terms.html", form=form, terms=terms, details=saved,
                           terms_html=render_description(terms.body_md)), done.status

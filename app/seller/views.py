"""The seller area: the blueprint, what its pages share (the seller's publishers, the offering lookup),
the dashboard and publisher organizations. Listings live in `listings.py`, sales and analytics in `sales.py`."""
from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, request, session, url_for

from app.auth.session_user import login_required
from app.extensions import db
from app.forms_flow import act
from app.models import Offering, Organization, utcnow
from app.seller.forms import PublisherForm
from app.services import analytics, identity
from app.services import publishers as publishing
from app.services import offerings as svc
from app.services.offerings import OfferingNotFound

bp = Blueprint("seller", __name__)

PUBLISHER_SESSION_KEY = "seller_publisher_id"


@bp.before_request
@login_required
def _sellers_only():
    """Every page here needs the seller role, or a publisher application of the user's own (they prepare
    drafts while it waits); 403 for anyone else, sign-in first."""
    if not publishing.has_publisher_access(db.session, user=g.user):
        abort(403, description="The seller console is for publishers. Apply to sell on Digitlify to get started.")
    return None


# --- helpers the seller pages share ------------------------------------------------------------

def wants_fragment() -> bool:
    headers = request.headers
    return bool(headers.get("HX-Request")) and not headers.get("HX-Boosted") and not headers.get(
        "HX-History-Restore-Request"
    )


def publishers() -> list[Organization]:
    """The organizations the user publishes for; someone whose application waits sees only that publisher."""
    choices = svc.publisher_organizations(db.session, user=g.user)
    if not g.user.has_role("seller"):
        applied = publishing.statuses_of(db.session, organization_ids=[org.id for org in choices])
        choices = [org for org in choices if applied.get(org.id) in ("pending", "approved")]
    return choices


def selected_publisher(choices: list[Organization]) -> Organization:
    """The publisher the seller is looking at: ?publisher=<id>, else the last one chosen, else the first."""
    requested = request.args.get("publisher", type=int)
    if requested is not None:
        chosen = next((p for p in choices if p.id == requested), None)
        if chosen is None:
            abort(404)
        session[PUBLISHER_SESSION_KEY] = chosen.id
        return chosen
    remembered = session.get(PUBLISHER_SESSION_KEY)
    return next((p for p in choices if p.id == remembered), choices[0])


def offering_or_404(offering_id: int) -> Offering:
    try:
        return svc.get_offering_for_seller(db.session, user=g.user, offering_id=offering_id)
    except OfferingNotFound:
        abort(404)


# --- dashboard ---------------------------------------------------------------------------------

@bp.get("/")
def dashboard():
    choices = publishers()
    publisher = selected_publisher(choices)
    start, end = analytics.month_to_date(utcnow())
    figures = analytics.publisher_overview(db.session, publisher_id=publisher.id, start=start, end=end)
    items = svc.offerings_of_publisher(db.session, publisher=publisher)
    totals = {
        "sales": analytics.sum_by_currency(figures),
        "orders": sum(f.orders for f in figures.values()),
        "active_instances": sum(f.active_instances for f in figures.values()),
        "runs": sum(f.runs for f in figures.values()),
        "credits": sum(f.credits for f in figures.values()),
    }
    return render_template(
        "seller/dashboard.html", publishers=choices, publisher=publisher, offerings=items, figures=figures,
        totals=totals, month_start=start, month_end=end,
        submit_blocker=publishing.submit_blocker(db.session, organization_id=publisher.id, actor=g.user),
    )


@bp.post("/publishers/create")
def publisher_create():
    """A seller may publish under a team organization of their own."""
    form = PublisherForm()
    done = act(form, lambda: identity.create_organization(db.session, name=form.name.data, owner=g.user),
               invalid="Give the organization a name (up to 120 characters).")
    if done.ok:
        org = done.value
        session[PUBLISHER_SESSION_KEY] = org.id
        flash(f"Publisher organization “{org.name}” created.", "success")
    return redirect(url_for("seller.dashboard"))

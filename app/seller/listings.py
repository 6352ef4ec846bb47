"""The seller's listings: create and edit an offering, its description preview, submit and archive, its
versions and its plans."""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TypeVar

from flask import flash, g, redirect, render_template, request, session, url_for
from jinja2_fragments.flask import render_block

from app.extensions import db
from app.formatting import CURRENCY_EXPONENT, decimal_amount
from app.forms_flow import Outcome, act, attach_error, submit
from app.models import Offering, Plan
from app.seller.forms import (
    ActionForm, OfferingEditForm, OfferingForm, PlansForm, VersionForm, as_choices, set_runtime_choices,
)
from app.seller.views import PUBLISHER_SESSION_KEY, bp, offering_or_404, publishers, selected_publisher
from app.services import offerings as svc
from app.services import publishers as publishing
from app.services.errors import ServiceError
from app.services.offerings import OfferingError

T = TypeVar("T")


def _html(template: str, status: int = 200, **context):
    return render_template(template, **context), status


# --- offerings: create and edit ----------------------------------------------------------------

RUNTIME_FIELDS = {"runtime_kind": "runtime", "runtime_ref": "runtime"}


def _prepare(form, offering=None) -> svc.RuntimeChoices | None:
    """Fill the form's lists; returns the runtime choices when the form picks a version's agent or flow."""
    form.set_vocabulary(svc.facet_vocabulary(db.session))
    if hasattr(form, "publisher_id") and form.publisher_id is not None:
        form.publisher_id.choices = as_choices((p.id, p.name) for p in publishers())
    if getattr(form, "runtime", None) is None:
        return None
    choices = svc.runtime_choices()
    set_runtime_choices(form.runtime, choices)
    return choices


def _preview_or_submit(form, save: Callable[[], T], field_map=None) -> tuple[str | None, Outcome[T]]:
    """The listing form's two buttons: Preview renders the description and saves nothing; Save runs `save`."""
    if request.method == "POST" and request.form.get("action") == "preview":
        return svc.render_description(form.description_md.data or ""), Outcome(ok=False)
    return None, submit(form, save, field_map=field_map)


@bp.route("/offerings/create", methods=["GET", "POST"])
def offering_create():
    form = OfferingForm()
    choices = _prepare(form)
    if request.method == "GET":
        form.publisher_id.data = selected_publisher(publishers()).id

    def create() -> Offering:
        publisher = svc.get_publisher_for_seller(db.session, user=g.user, organization_id=form.publisher_id.data)
        offering = svc.create_offering(
            db.session, publisher=publisher, actor=g.user, name=form.name.data, summary=form.summary.data,
            description_md=form.description_md.data or "", category=form.category.data,
            facets=form.facets(), trial_days=form.trial_days.data, trial_credits=form.trial_credits.data,
            slug=form.slug.data or None,
        )
        kind, ref = form.runtime.kind_and_ref()
        svc.add_version(
            db.session, offering=offering, actor=g.user, version=form.version.data or "1.0.0",
            changelog="First version.", runtime_kind=kind, runtime_ref=ref,
        )
        return offering

    preview, done = _preview_or_submit(form, create, field_map=RUNTIME_FIELDS)
    if done.ok:
        offering = done.value
        session[PUBLISHER_SESSION_KEY] = offering.publisher_id
        flash(f"Draft “{offering.name}” saved. Add its plans, then submit it for review.", "success")
        return redirect(url_for("seller.offering_plans", offering_id=offering.id))
    return _html("seller/offering_form.html", done.status, form=form, offering=None, preview=preview,
                 runtime_choices=choices)


@bp.route("/offerings/<int:offering_id>/update", methods=["GET", "POST"])
def offering_update(offering_id: int):
    offering = offering_or_404(offering_id)
    form = OfferingEditForm(obj=offering if request.method == "GET" else None)
    _prepare(form, offering)
    if request.method == "GET":
        for group in svc.SELLER_FACET_GROUPS:
            getattr(form, group).data = [v for v in offering.facet_values(group) if v != svc.DERIVED_PRICING]

    def update() -> None:
        fields = {
            "name": form.name.data, "summary": form.summary.data, "description_md": form.description_md.data or "",
            "category": form.category.data, "facets": form.facets(), "trial_days": form.trial_days.data,
            "trial_credits": form.trial_credits.data,
        }
        if offering.published_at is None:
            fields["slug"] = form.slug.data or svc.suggest_slug(
                db.session, form.name.data, exclude_offering_id=offering.id
            )
        svc.update_offering(db.session, offering=offering, actor=g.user, **fields)

    preview, done = _preview_or_submit(form, update)
    if done.ok:
        flash("Listing saved.", "success")
        return redirect(url_for("seller.offering_detail", offering_id=offering.id))
    return _html("seller/offering_form.html", done.status, form=form, offering=offering, preview=preview)


@bp.post("/preview")
def description_preview():
    """The Markdown preview beside the description (htmx); the forms' Preview button does the same without JS."""
    html = svc.render_description(request.form.get("description_md", "")[: svc.DESCRIPTION_MAX])
    return render_block("seller/offering_form.html", "preview", preview=html), {"Vary": "HX-Request"}


# --- one offering ------------------------------------------------------------------------------

@bp.get("/offerings/<int:offering_id>")
def offering_detail(offering_id: int):
    offering = offering_or_404(offering_id)
    return render_template(
        "seller/offering_detail.html", offering=offering, action_form=ActionForm(),
        blockers=svc.review_blockers(offering), latest=svc.latest_version(offering),
        description_html=svc.render_description(offering.description_md),
        publisher_blocker=publishing.submit_blocker(db.session, organization_id=offering.publisher_id, actor=g.user),
    )


@bp.post("/offerings/<int:offering_id>/submit")
def offering_submit(offering_id: int):
    offering = offering_or_404(offering_id)
    if act(ActionForm(), lambda: svc.submit_for_review(db.session, offering=offering, actor=g.user)).ok:
        flash("Submitted for review. An operator will approve it or tell you what to change.", "success")
    return redirect(url_for("seller.offering_detail", offering_id=offering.id))


@bp.post("/offerings/<int:offering_id>/archive")
def offering_archive(offering_id: int):
    offering = offering_or_404(offering_id)
    if act(ActionForm(), lambda: svc.archive(db.session, offering=offering, actor=g.user)).ok:
        flash(f"“{offering.name}” is archived and no longer in the catalog.", "success")
    return redirect(url_for("seller.offering_detail", offering_id=offering.id))


@bp.route("/offerings/<int:offering_id>/versions", methods=["GET", "POST"])
def offering_versions(offering_id: int):
    offering = offering_or_404(offering_id)
    latest = svc.latest_version(offering)
    form = VersionForm()
    choices = svc.runtime_choices()
    current = (latest.runtime_kind, latest.runtime_ref) if latest is not None else None
    set_runtime_choices(form.runtime, choices, current)
    if request.method == "GET":
        form.version.data = svc.next_version(offering)
        if latest is not None:
            form.runtime.data = f"{latest.runtime_kind}:{latest.runtime_ref}"
            form.output_component.data = latest.output_component or ""
            form.tweaks.data = json.dumps(latest.tweaks, indent=2) if latest.tweaks else ""

    def publish():
        kind, ref = form.runtime.kind_and_ref()
        return svc.add_version(
            db.session, offering=offering, actor=g.user, version=form.version.data,
            changelog=form.changelog.data or "", runtime_kind=kind, runtime_ref=ref,
            output_component=form.output_component.data, tweaks=form.tweaks.data,
        )

    done = submit(form, publish, field_map=RUNTIME_FIELDS)
    if done.ok:
        flash(f"Version {done.value.version} published.", "success")
        return redirect(url_for("seller.offering_versions", offering_id=offering.id))
    offering = offering_or_404(offering_id)  # reloaded after a rollback
    versions = sorted(offering.versions, key=lambda v: v.semver, reverse=True)
    return _html("seller/offering_versions.html", done.status, offering=offering, form=form, versions=versions,
                 runtime_choices=choices, **_flow_details(form.runtime.kind_and_ref()))


def _flow_details(kind_and_ref: tuple[str, str]) -> dict:
    """The chosen flow's outputs and components (what the output component and tweaks name), or why not."""
    kind, ref = kind_and_ref
    details = {"flow": None, "flow_error": None, "protected": svc.PROTECTED_TWEAK_FIELDS}
    if kind == "langflow":
        try:
            details["flow"] = svc.describe_runtime_reference(runtime_kind=kind, runtime_ref=ref)
        except OfferingError as exc:
            details["flow_error"] = exc.message
    return details


@bp.get("/offerings/<int:offering_id>/versions/flow")
def offering_version_flow(offering_id: int):
    """The flow details block for the flow just chosen in the version form (htmx)."""
    offering_or_404(offering_id)
    form = VersionForm(formdata=request.args, meta={"csrf": False})
    html = render_block("seller/offering_versions.html", "flow_details", **_flow_details(form.runtime.kind_and_ref()))
    return html, {"Vary": "HX-Request", "Cache-Control": "no-store"}


# --- plans -------------------------------------------------------------------------------------

PRICE_RE = re.compile(r"^(-?)([0-9]{0,9})(?:\.([0-9]*))?$")


def price_to_minor(text: str | None, currency: str | None) -> int:
    """'29.00' in USD -> 2900, with integer arithmetic; raises OfferingError naming the price field."""
    raw = (text or "").strip().replace(",", "")
    match = PRICE_RE.match(raw)
    if not match or not (match.group(2) or match.group(3)):
        raise OfferingError("Enter a price like 29.00.", field="price_minor")
    sign, whole, fraction = match.group(1), match.group(2) or "0", match.group(3) or ""
    exponent = CURRENCY_EXPONENT.get((currency or "").strip().upper(), 2)
    if len(fraction) > exponent:
        raise OfferingError(f"Use at most {exponent} decimal places.", field="price_minor")
    minor = int(whole) * 10**exponent + int(fraction.ljust(exponent, "0") or "0")
    return -minor if sign else minor


@bp.route("/offerings/<int:offering_id>/plans", methods=["GET", "POST"])
def offering_plans(offering_id: int):
    offering = offering_or_404(offering_id)
    existing: dict[str, Plan] = {p.tier: p for p in offering.plans}
    form = PlansForm()
    if request.method == "GET":
        for tier in PlansForm.TIERS:
            sub = getattr(form, tier).form
            plan = existing.get(tier)
            if plan is None:
                sub.name.data = tier.title()
                sub.offered.data = not existing  # a new offering starts with all three tiers
                continue
            sub.name.data, sub.currency.data = plan.name, plan.currency
            sub.price.data = decimal_amount(plan.price_minor, plan.currency)
            sub.included_credits.data, sub.credits_per_run.data = plan.included_credits, plan.credits_per_run
            sub.max_runs_per_period.data, sub.features.data = plan.max_runs_per_period, plan.features
            sub.interval.data, sub.rollover_credits.data = plan.interval, plan.rollover_credits
            sub.max_concurrent_runs.data = plan.max_concurrent_runs
            sub.max_concurrent_runs_per_wallet.data = plan.max_concurrent_runs_per_wallet

    def save_tiers() -> None:
        """Every tier is tried, so each one's errors show at once; any error and nothing is saved."""
        failed = False
        for tier in PlansForm.TIERS:
            sub = getattr(form, tier).form
            if tier not in existing and not sub.offered.data:
                continue
            try:
                svc.set_plan(
                    db.session, offering=offering, actor=g.user, tier=tier, name=sub.name.data or "",
                    price_minor=price_to_minor(sub.price.data, sub.currency.data), currency=sub.currency.data or "",
                    included_credits=sub.included_credits.data if sub.included_credits.data is not None else 0,
                    credits_per_run=sub.credits_per_run.data if sub.credits_per_run.data is not None else 0,
                    max_runs_per_period=sub.max_runs_per_period.data, features=sub.features.data or "",
                    interval=sub.interval.data or "month", rollover_credits=bool(sub.rollover_credits.data),
                    max_concurrent_runs=sub.max_concurrent_runs.data,
                    max_concurrent_runs_per_wallet=sub.max_concurrent_runs_per_wallet.data,
                )
            except ServiceError as exc:
                failed = True
                attach_error(sub, exc, {"price_minor": "price"})
        if failed:
            raise OfferingError("Nothing was saved: fix the fields marked below.")

    done = submit(form, save_tiers)
    if done.ok:
        flash("Plans saved.", "success")
        return redirect(url_for("seller.offering_detail", offering_id=offering.id))
    offering = offering_or_404(offering_id)  # reloaded after a rollback
    return _html("seller/offering_plans.html", done.status, offering=offering, form=form,
                 existing={p.tier: p for p in offering.plans})

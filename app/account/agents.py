"""Account pages: My Agents, the instances with their API keys, connectors and documents, and the run console."""
from __future__ import annotations

import uuid

from flask import abort, flash, g, redirect, render_template, request, url_for
from jinja2_fragments.flask import render_block

from app.account.forms import ActionForm, ApiKeyCreateForm, ApiKeyLimitsForm, ConnectorForm, DocumentForm, RunForm
from app.account.views import bp, has_endpoint, refusal_text, wants_fragment
from app.auth import rate_limits
from app.auth.session_user import current_org, login_required
from app.extensions import db
from app.forms_flow import attach_error
from app.services import account, connectors, instances, keys, knowledge, organizations, runs

MANAGER_ROLES = organizations.MANAGER_ROLES

# what to type into each built-in agent, shown in the console
INPUT_EXAMPLES = {
    "support-faq": "How do I reset my password?",
    "kb-search": "How much can I spend on a hotel per night?",
    "sales-email": "name: Ada Lovelace\ncompany: Analytical Engines\nrole: Head of Operations\n"
                   "pain: manual invoice processing\nsender: Sam",
    "summarize": "We reviewed the Q3 roadmap. We decided to delay the mobile app until November.\n"
                 "Maria will send the revised budget by Friday.\nAction: Tom to update the onboarding docs.",
    "triage": "I was charged twice for my subscription this month! Please refund ASAP.",
    "invoice-extract": "ACME Supplies Ltd\nInvoice No: INV-2026-0042\nInvoice date: 2026-03-01\nNet 30\n"
                       "Subtotal: €1,250.00\nVAT (20%): €250.00\nTotal due: €1,500.00",
    "lead-score": "role: VP of Sales\nemployees: 250\nbudget: $40k\ntimeline: this quarter\ndemo_requested: yes",
    "seo-brief": "Paste a draft or a competitor page of at least 30 words.",
    "onboarding": "name: Jamie Rivera\nrole: Backend Engineer\nteam: Payments\nstart_date: 2026-03-02\n"
                  "manager: Priya\nbuddy: Tom",
    "csv-clean": "name,email,phone\n JOHN SMITH ,John@Example.com,(555) 123-4567\njohn smith,john@example.com,555.123.4567",
}


@bp.get("/agents")
@login_required
def agents():
    org = current_org()
    subs = account.subscriptions(db.session, user=g.user, organization_id=org.id)
    return render_template("account/agents.html", subscriptions=subs, org=org)


@bp.get("/instances", endpoint="instances")
@login_required
def instances_page():
    org = current_org()
    subs = account.subscriptions(db.session, user=g.user, organization_id=org.id)
    return render_template("account/instances.html", subscriptions=subs, org=org)


def _instance_or_404(instance_id: int):
    try:
        return instances.get_instance_for_user(db.session, user=g.user, instance_id=instance_id)
    except instances.InstanceNotFound:
        abort(404)


def _can_manage(instance) -> bool:
    member = organizations.membership(db.session, user=g.user, organization_id=instance.organization_id)
    return member is not None and member.role in MANAGER_ROLES


def _runtime_ref(instance) -> str:
    version = instance.version or instance.offering.current_version
    return version.runtime_ref if version else ""


def _detail_context(instance, **overrides) -> dict:
    sub = account.subscription(db.session, user=g.user, instance=instance)
    run_form = overrides.pop("run_form", None) or RunForm(formdata=None)
    run_form.idempotency_key.data = uuid.uuid4().hex  # a new key per rendered form: a resubmit replays
    ref = _runtime_ref(instance)
    api_keys = keys.list_api_keys(db.session, instance=instance)
    limit_forms = overrides.pop("limit_forms", {})
    for key in api_keys:
        if key.id not in limit_forms:
            limit_forms[key.id] = ApiKeyLimitsForm(formdata=None, prefix=f"key{key.id}", obj=key)
    context = {
        "instance": instance,
        "sub": sub,
        "ent": sub.entitlements,
        "quote": runs.quote_for(instance.plan),
        "can_manage": _can_manage(instance),
        "api_keys": api_keys,
        "key_usage": keys.key_usage(db.session, instance=instance),
        "limit_forms": limit_forms,
        "bindings": connectors.list_bindings(db.session, user=g.user, instance_id=instance.id),
        "documents": knowledge.list_documents(db.session, instance=instance) if ref == "kb-search" else None,
        "recent": runs.recent_runs(db.session, instance=instance, limit=10),
        "key_form": ApiKeyCreateForm(formdata=None),
        "connector_form": ConnectorForm(formdata=None),
        "document_form": DocumentForm(formdata=None),
        "run_form": run_form,
        "action_form": ActionForm(formdata=None),
        "example": INPUT_EXAMPLES.get(ref, ""),
        "new_key": None,
        "result": None,
        "refusal": None,
        "buy_packs": account.credit_packs(db.session) if has_endpoint("storefront.cart_add") else [],
        "can_buy": has_endpoint("storefront.cart_add"),
        "product_url": url_for("storefront.product", slug=instance.offering.slug) if has_endpoint("storefront.product") else None,
        "oob": False,
        "config_of": connectors.config_of,
    }
    context.update(overrides)
    return context


def _detail_page(instance, status: int = 200, **overrides):
    html = render_template("account/instance_detail.html", **_detail_context(instance, **overrides))
    return html, status, {"Cache-Control": "no-store"}


@bp.get("/instances/<int:instance_id>")
@login_required
def instance_detail(instance_id: int):
    return _detail_page(_instance_or_404(instance_id))


@bp.route("/instances/<int:instance_id>/cancel", methods=["GET", "POST"])
@login_required
def instance_cancel(instance_id: int):
    instance = _instance_or_404(instance_id)
    form = ActionForm()
    if request.method == "POST" and form.validate_on_submit():
        try:
            instances.cancel_instance(db.session, instance=instance, actor=g.user)
        except (instances.InstanceError, organizations.OrganizationError) as exc:
            db.session.rollback()
            message = ("Only an owner or admin of the organization can cancel it."
                       if isinstance(exc, organizations.NotAllowed) else str(exc))
            flash(message, "error")
            return redirect(url_for("account.agents"), 303)
        db.session.commit()
        flash(f"{instance.offering.name} is cancelled. Its API keys no longer run it.", "success")
        return redirect(url_for("account.agents"), 303)
    return render_template("account/instance_cancel.html", instance=instance, form=ActionForm(formdata=None))


@bp.post("/instances/<int:instance_id>/suspend")
@login_required
def instance_suspend(instance_id: int):
    return _lifecycle(instance_id, instances.suspend_instance, "is suspended: it cannot run until it is resumed. "
                      "Its keys, settings and history are kept.")


@bp.post("/instances/<int:instance_id>/resume")
@login_required
def instance_resume(instance_id: int):
    return _lifecycle(instance_id, instances.resume_instance, "is active again.")


def _lifecycle(instance_id: int, change, done: str):
    """Suspend or resume from the instance page (owners and admins); refusals come back as a message."""
    instance = _instance_or_404(instance_id)
    if ActionForm().validate_on_submit():
        try:
            change(db.session, instance=instance, actor=g.user)
        except (instances.InstanceError, organizations.OrganizationError) as exc:
            db.session.rollback()
            flash("Only an owner or admin of the organization can do that."
                  if isinstance(exc, organizations.NotAllowed) else str(exc), "error")
        else:
            db.session.commit()
            flash(f"{instance.offering.name} {done}", "success")
    else:
        flash("Your session expired. Reload the page and try again.", "error")
    return redirect(url_for("account.instance_detail", instance_id=instance.id), 303)


@bp.post("/instances/<int:instance_id>/keys")
@login_required
def instance_key_create(instance_id: int):
    instance = _instance_or_404(instance_id)
    form = ApiKeyCreateForm()
    if form.validate_on_submit():
        try:
            key, secret = keys.create_api_key(db.session, instance=instance, actor=g.user, name=form.name.data,
                                              rate_limit=form.rate_limit.data,
                                              monthly_credit_quota=form.monthly_credit_quota.data)
        except (keys.ApiKeyError, organizations.OrganizationError) as exc:
            db.session.rollback()
            if isinstance(exc, keys.ApiKeyError) and exc.field:
                attach_error(form, exc)
            else:
                form.form_errors.append(refusal_text(exc, "create API keys"))
            return _detail_page(instance, 403 if isinstance(exc, organizations.NotAllowed) else 400, key_form=form)
        db.session.commit()
        return _detail_page(instance, 201, new_key={"key": key, "secret": secret})
    return _detail_page(instance, 400, key_form=form)


@bp.post("/instances/<int:instance_id>/keys/<int:key_id>/limits")
@login_required
def instance_key_limits(instance_id: int, key_id: int):
    """A key's own request rate and monthly credit quota (owners and admins)."""
    instance = _instance_or_404(instance_id)
    form = ApiKeyLimitsForm(prefix=f"key{key_id}")
    if form.validate_on_submit():
        try:
            key = keys.update_api_key_limits(db.session, instance=instance, key_id=key_id, actor=g.user,
                                             rate_limit=form.rate_limit.data,
                                             monthly_credit_quota=form.monthly_credit_quota.data)
        except (keys.ApiKeyError, organizations.OrganizationError) as exc:
            db.session.rollback()
            if isinstance(exc, keys.ApiKeyNotFound):
                abort(404)
            if isinstance(exc, keys.ApiKeyError) and exc.field:
                attach_error(form, exc)
            else:
                form.form_errors.append(refusal_text(exc, "change API key limits"))
            return _detail_page(instance, 403 if isinstance(exc, organizations.NotAllowed) else 400,
                                limit_forms={key_id: form})
        db.session.commit()
        rate_limits.forget_api_key_rate(key.prefix)
        flash(f"Limits of API key “{key.name}” saved.", "success")
        return redirect(url_for("account.instance_detail", instance_id=instance.id, _anchor="api-keys"), 303)
    return _detail_page(instance, 400, limit_forms={key_id: form})


@bp.post("/instances/<int:instance_id>/keys/<int:key_id>/revoke")
@login_required
def instance_key_revoke(instance_id: int, key_id: int):
    instance = _instance_or_404(instance_id)
    if ActionForm().validate_on_submit():
        try:
            key = keys.revoke_api_key(db.session, instance=instance, key_id=key_id, actor=g.user)
        except (keys.ApiKeyError, organizations.OrganizationError) as exc:
            db.session.rollback()
            if isinstance(exc, keys.ApiKeyNotFound):
                abort(404)
            flash(refusal_text(exc, "revoke API keys"), "error")
        else:
            db.session.commit()
            flash(f"API key “{key.name}” ({key.prefix}…) revoked.", "success")
    return redirect(url_for("account.instance_detail", instance_id=instance.id, _anchor="api-keys"), 303)


def _parse_settings(text: str | None) -> dict[str, str]:
    """`name = value` lines into a dict; the connectors service checks names and values."""
    settings = {}
    for number, line in enumerate((text or "").splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, value = line.partition("=")
        if not sep:
            name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise connectors.ConnectorError(f"Line {number}: write settings as name = value.", field="settings")
        settings[name.strip()] = value.strip()
    return settings


@bp.post("/instances/<int:instance_id>/connectors")
@login_required
def instance_connector_create(instance_id: int):
    instance = _instance_or_404(instance_id)
    form = ConnectorForm()
    if form.validate_on_submit():
        try:
            binding = connectors.create_binding(
                db.session, instance=instance, actor=g.user, kind=form.kind.data,
                config=_parse_settings(form.settings.data), secret=form.secret.data or None,
            )
        except (connectors.ConnectorError, organizations.OrganizationError) as exc:
            db.session.rollback()
            field = getattr(exc, "field", None) or ""
            target = form.settings if field.startswith("config") or field == "settings" else getattr(form, field, None)
            (target.errors if target is not None else form.form_errors).append(refusal_text(exc, "add connectors"))
            return _detail_page(instance, getattr(exc, "status", 400), connector_form=form)
        db.session.commit()
        flash(f"Connector “{binding.kind}” added" + (" with its secret stored encrypted." if binding.secret_ref else "."),
              "success")
        return redirect(url_for("account.instance_detail", instance_id=instance.id, _anchor="connectors"), 303)
    return _detail_page(instance, 400, connector_form=form)


@bp.post("/instances/<int:instance_id>/connectors/<int:binding_id>/revoke")
@login_required
def instance_connector_revoke(instance_id: int, binding_id: int):
    instance = _instance_or_404(instance_id)
    if ActionForm().validate_on_submit():
        try:
            binding = connectors.get_binding_for_user(db.session, user=g.user, binding_id=binding_id)
            if binding.instance_id != instance.id:
                raise connectors.ConnectorNotFound()
            connectors.revoke_binding(db.session, binding_id=binding_id, actor=g.user)
        except connectors.ConnectorNotFound:
            db.session.rollback()
            abort(404)
        except (connectors.ConnectorError, organizations.OrganizationError) as exc:
            db.session.rollback()
            flash(refusal_text(exc, "revoke connectors"), "error")
        else:
            db.session.commit()
            flash(f"Connector “{binding.kind}” revoked and its secret destroyed.", "success")
    return redirect(url_for("account.instance_detail", instance_id=instance.id, _anchor="connectors"), 303)


@bp.post("/instances/<int:instance_id>/documents")
@login_required
def instance_document_create(instance_id: int):
    instance = _instance_or_404(instance_id)
    form = DocumentForm()
    if form.validate_on_submit():
        try:
            document = knowledge.add_document(db.session, instance=instance, actor=g.user, title=form.title.data,
                                              body=form.body.data)
        except knowledge.KnowledgeError as exc:
            db.session.rollback()
            (getattr(form, exc.field).errors if exc.field else form.form_errors).append(str(exc))
            return _detail_page(instance, exc.status, document_form=form)
        db.session.commit()
        flash(f"“{document.title}” added. The assistant searches it from the next run.", "success")
        return redirect(url_for("account.instance_detail", instance_id=instance.id, _anchor="documents"), 303)
    return _detail_page(instance, 400, document_form=form)


@bp.post("/instances/<int:instance_id>/documents/<int:document_id>/delete")
@login_required
def instance_document_delete(instance_id: int, document_id: int):
    instance = _instance_or_404(instance_id)
    if ActionForm().validate_on_submit():
        try:
            knowledge.delete_document(db.session, instance=instance, actor=g.user, document_id=document_id)
        except knowledge.KnowledgeError as exc:
            db.session.rollback()
            abort(exc.status if exc.status == 404 else 400)
        db.session.commit()
        flash("Document deleted.", "success")
    return redirect(url_for("account.instance_detail", instance_id=instance.id, _anchor="documents"), 303)


# --- the run console ------------------------------------------------------------------------------


@bp.post("/instances/<int:instance_id>/runs")
@login_required
def instance_run(instance_id: int):
    """Run the agent from the console: the same gateway as the API, then the console block again.

    With htmx the answer is the `console` block plus the `recent_runs` block (out of band) and
    `HX-Trigger: credits-changed` for the header badge; without JavaScript, the whole page.
    """
    instance = _instance_or_404(instance_id)
    form = RunForm()
    result = refusal = None
    status = 200
    if form.validate_on_submit():
        try:
            prepared = runs.start_run(
                db.session, instance=instance, input_text=form.input.data, user=g.user,
                idempotency_key=form.idempotency_key.data or None, spending_cap=form.spending_cap.data,
            )
        except runs.RunError as exc:
            db.session.rollback()
            refusal, status = exc, exc.status
            if exc.field == "spending_cap":
                form.spending_cap.errors = [str(exc)]
            elif exc.field == "input":
                form.input.errors = [str(exc)]
        else:
            db.session.commit()  # the hold is in place before the agent starts
            result = runs.finish_run(db.session, prepared=prepared)
            db.session.commit()
            status = 200 if result.failure is None else 502
    else:
        status = 400
    context = _detail_context(instance, run_form=form, result=result, refusal=refusal)
    headers = {"Vary": "HX-Request", "Cache-Control": "no-store"}
    if result is not None:
        headers["HX-Trigger"] = "credits-changed"
    if wants_fragment():  # htmx swaps 2xx only: the outcome is in the block, not the status
        html = render_block("account/instance_detail.html", "console", **context)
        html += render_block("account/instance_detail.html", "recent_runs", **{**context, "oob": True})
        return html, 200, headers
    return render_template("account/instance_detail.html", **context), status, headers

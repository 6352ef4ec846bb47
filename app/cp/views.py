"""The control-plane JSON API under /api: the blueprint, health, the OpenAPI document and its docs page,
and the mapping of service errors to problem+json. The resources live in the sibling modules."""
from __future__ import annotations

from http import HTTPStatus

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Blueprint, current_app, jsonify, render_template, request
from spectree import Response
from sqlalchemy import text

from app.cp import schemas
from app.cp.openapi import document, spec, takes_json_body
from app.extensions import csrf, db
from app.web import problem

bp = Blueprint("cp", __name__)
# JSON callers are not forms: app.cp.auth checks the CSRF header itself, for cookie sessions only
csrf.exempt(bp)


@bp.before_request
def _json_bodies_are_json():
    """An operation that reads a JSON body refuses any other media type with 415, and a body that is
    not JSON (or is `null`) with 422: either would otherwise reach the view as an empty object, so
    a PATCH of garbage answered 200."""
    if request.method not in ("POST", "PUT", "PATCH") or request.url_rule is None:
        return None
    if not takes_json_body(request.url_rule, request.method):
        return None
    if not request.is_json:
        return problem(415, "Unsupported Media Type", "Send the body as JSON (Content-Type: application/json).",
                       errors=[{"field": "Content-Type", "message": "Use application/json."}])
    if request.get_json(silent=True) is None:  # unreadable, or the literal null
        return problem(422, "Unprocessable Content", "The body is not a JSON document.",
                       errors=[{"field": "body", "message": "Send a JSON object."}])
    return None


@bp.get("/health")
@spec.validate(resp=Response(HTTP_200=schemas.HealthOut, HTTP_503=schemas.HealthOut), tags=["health"])
def health():
    """Liveness with the database status: 200 when the database answers, 503 when not."""
    try:
        db.session.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means the database is not usable
        db.session.rollback()
        return jsonify(status="degraded", database={"status": "unavailable", "error": type(exc).__name__}), 503
    return jsonify(status="ok", database={"status": "ok", "dialect": db.engine.dialect.name})


@bp.get("/health/live")
@spec.validate(resp=Response(HTTP_200=schemas.LiveOut), tags=["health"])
def health_live():
    """The process answers requests (a liveness probe: it never touches the database, so an outage elsewhere
    does not get healthy processes restarted)."""
    return jsonify(status="ok")


@bp.get("/health/ready")
@spec.validate(resp=Response(HTTP_200=schemas.ReadyOut, HTTP_503=schemas.ReadyOut), tags=["health"])
def health_ready():
    """Ready for traffic: the database answers and its schema is at the migrations' head (a readiness probe)."""
    try:
        current = set(MigrationContext.configure(db.session.connection()).get_current_heads())
    except Exception as exc:  # any driver error means the database is not usable
        db.session.rollback()
        return jsonify(status="unavailable", database="unavailable", migrations="unknown",
                       error=type(exc).__name__), 503
    db.session.rollback()
    expected = _migration_heads()
    if current != expected:
        return jsonify(status="unavailable", database="ok", migrations="behind",
                       current=sorted(current), expected=sorted(expected)), 503
    return jsonify(status="ok", database="ok", migrations="current", current=sorted(current),
                   expected=sorted(expected))


def _migration_heads() -> set[str]:
    """The head revisions of the migrations shipped with this code (read once per process)."""
    heads = current_app.extensions.get("_migration_heads")
    if heads is None:
        directory = current_app.extensions["migrate"].directory
        heads = set(ScriptDirectory(directory).get_heads())
        current_app.extensions["_migration_heads"] = heads
    return heads


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3.1 document, generated from the routes and their models."""
    return current_app.json.response(document())


@bp.get("/docs")
def docs():
    """Swagger UI over /api/openapi.json (assets from npm, served locally)."""
    return render_template("cp/docs.html")


def _service_problem(exc: Exception):
    """A service's rule error as problem+json; the transaction is rolled back first."""
    db.session.rollback()
    status = getattr(exc, "status", None) or (404 if type(exc).__name__.endswith("NotFound") else 400)
    field = getattr(exc, "field", None)
    extra = {}
    if field:
        extra["errors"] = [{"field": field, "message": str(exc)}]
    for name in ("available", "requested"):
        if hasattr(exc, name):
            extra[name] = getattr(exc, name)
    return problem(status, HTTPStatus(status).phrase, str(exc), **extra)


def _register_service_errors() -> None:
    from app.adapters.identity import TokenError
    from app.services.billing import BillingError
    from app.services.connectors import ConnectorError
    from app.services.instances import InstanceError
    from app.services.keys import ApiKeyError
    from app.services.listings import ListingError
    from app.services.offerings import OfferingError
    from app.services.organizations import OrganizationError
    from app.services.invoices import InvoiceError
    from app.services.orders import OrderError
    from app.services.payouts import PayoutError
    from app.services.refunds import RefundError
    from app.services.reviews import ReviewError
    from app.services.subscriptions import SubscriptionError
    from app.services.teams import InvitationError
    from app.services.text_rules import TextRuleError
    from app.services.tokens import TokenError as PersonalTokenError
    from app.services.trials import TrialError

    for error in (BillingError, ConnectorError, InstanceError, ApiKeyError, OfferingError, OrganizationError,
                  PersonalTokenError, TrialError, TokenError, ListingError, TextRuleError, ReviewError,
                  InvitationError, SubscriptionError, PayoutError, InvoiceError, OrderError, RefundError):
        bp.register_error_handler(error, _service_problem)


_register_service_errors()

"""Wiring of the web layer: blueprints, error pages, security headers, template helpers, CLI."""
from __future__ import annotations

from flask import Flask, g, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from app import formatting


def init_app(app: Flask) -> None:
    from app.account import bp as account_bp
    from app.auth import bp as auth_bp
    from app.cp import bp as cp_bp
    from app.operator import bp as operator_bp
    from app.seller import bp as seller_bp
    from app.storefront import bp as storefront_bp

    app.register_blueprint(storefront_bp)
    app.register_blueprint(auth_bp, url_prefix="/auth")
    app.register_blueprint(account_bp, url_prefix="/account")
    app.register_blueprint(seller_bp, url_prefix="/seller")
    app.register_blueprint(operator_bp, url_prefix="/operator")
    app.register_blueprint(cp_bp, url_prefix="/api")

    from app.auth import session_user
    app.before_request(session_user.load_current_user)
    app.after_request(_security_headers)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    formatting.init_app(app)
    app.context_processor(layout_context)

    from app import cli
    cli.init_app(app)


CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self' {extra}"
)


def _security_headers(response):
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    extra = g.get("csp_form_action_extra", "")
    response.headers.setdefault("Content-Security-Policy", CSP.format(extra=extra).strip())
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    return response


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/api"


def problem(status: int, title: str, detail: str | None = None, **extra):
    """An RFC 9457 problem+json response."""
    body = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    response = jsonify(body)
    response.status_code = status
    response.mimetype = "application/problem+json"
    return response


def _http_error(exc: HTTPException):
    code = exc.code or 500
    if _wants_json():
        response = problem(code, exc.name, exc.description)
        if code == 405 and exc.get_response().headers.get("Allow"):
            response.headers["Allow"] = exc.get_response().headers["Allow"]
        return response
    template = f"errors/{code}.html" if code in (400, 401, 403, 404, 405, 413, 429, 503) else "errors/generic.html"
    return render_template(template, error=exc, code=code), code


def _unexpected_error(exc: Exception):
    from app.extensions import db
    import logging

    logging.getLogger("app").exception("Unhandled error on %s %s", request.method, request.path)
    db.session.rollback()
    if _wants_json():
        return problem(500, "Internal Server Error", "Something went wrong on our side. It has been logged.")
    return render_template("errors/500.html", code=500), 500


NAV_CATEGORIES = [("agents", "Agents"), ("apps", "Apps"), ("assistants", "Assistants"), ("automations", "Automations")]

# (endpoint, label, role or None) for the user menu; endpoints not registered are skipped
ACCOUNT_LINKS = [
    ("account.profile", "Profile", None),
    ("account.agents", "My Agents", None),
    ("account.instances", "Instances", None),
    ("account.billing", "Billing & Credits", None),
    ("account.orders", "Orders", None),
    ("account.settings", "Settings", None),
    ("seller.dashboard", "Seller dashboard", "seller"),
    ("operator.dashboard", "Operator console", "operator"),
]


def layout_context() -> dict:
    from datetime import date

    from flask import current_app, url_for

    endpoints = set(current_app.view_functions)
    context = {
        "nav_categories": NAV_CATEGORIES,
        "nav_endpoints": endpoints,
        "current_year": date.today().year,
        "account_links": [],
        "org_switch": None,
        "cart_count": 0,
    }
    counter = current_app.extensions.get("cart_count")
    if counter is not None:
        try:
            context["cart_count"] = counter()
        except Exception:  # the header must render even when the cart cannot be read
            current_app.logger.exception("cart count failed")
    user = g.get("user")
    if user is not None:
        context["account_links"] = [
            {"url": url_for(endpoint), "label": label}
            for endpoint, label, role in ACCOUNT_LINKS
            if endpoint in endpoints and (role is None or user.has_role(role))
        ]
        if "account.organization_switch" in endpoints:
            from app.auth.session_user import current_org
            from app.extensions import db
            from app.services import identity

            memberships = identity.memberships_of(db.session, user)
            if len(memberships) > 1:
                context["org_switch"] = {
                    "action": url_for("account.organization_switch"),
                    "memberships": memberships,
                    "current_id": current_org().id,
                }
    return context

"""Wiring of the web layer: blueprints, error pages, security headers, template helpers, CLI."""
from __future__ import annotations

import logging

from flask import Flask, g, jsonify, render_template, request
from markupsafe import Markup
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException, ServiceUnavailable, default_exceptions

from app import formatting, routing


def init_app(app: Flask) -> None:
    from app.account import bp as account_bp
    from app.auth import bp as auth_bp
    from app.cp import bp as cp_bp
    from app.operator import bp as operator_bp
    from app.publishers import bp as publishers_bp
    from app.seller import bp as seller_bp
    from app.storefront import bp as storefront_bp

    routing.init_app(app)  # before the blueprints: their `<int:...>` rules use the id converter
    app.register_blueprint(storefront_bp)
    app.register_blueprint(auth_bp, url_prefix="/auth")
    app.register_blueprint(account_bp, url_prefix="/account")
    app.register_blueprint(seller_bp, url_prefix="/seller")
    app.register_blueprint(operator_bp, url_prefix="/operator")
    app.register_blueprint(cp_bp, url_prefix="/api")
    app.register_blueprint(publishers_bp)

    from app.auth import session_user
    app.before_request(session_user.load_current_user)
    app.after_request(_security_headers)
    app.after_request(_retry_after)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(OperationalError, _database_error)
    app.register_error_handler(InterfaceError, _database_error)
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


SERVICE_UNAVAILABLE_RETRY_AFTER_SECONDS = 30


def _retry_after(response):
    """Every 503 says when to try again (RFC 9110 §10.2.3): clients and Saleor's webhook retries back
    off instead of hammering; a view that knows better sets its own value."""
    if response.status_code == 503:
        response.headers.setdefault("Retry-After", str(SERVICE_UNAVAILABLE_RETRY_AFTER_SECONDS))
    return response


def _wants_json() -> bool:
    """API paths, and requests that send or ask for JSON rather than a page, get problem+json."""
    if request.path.startswith("/api/") or request.path == "/api" or request.is_json:
        return True
    accept = request.accept_mimetypes
    best = accept.best_match(["text/html", "application/json", "application/problem+json"])
    return best in ("application/json", "application/problem+json") and accept[best] > accept["text/html"]


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


# The framework's stock descriptions ("You don't have the permission to access the requested resource…"):
# never shown; each status has our own words and a way forward instead.
_STOCK_DESCRIPTIONS = frozenset(cls.description for cls in default_exceptions.values() if cls.description)
ERROR_TEXT = {
    400: ("That request didn't look right", "Something in the request was malformed. Go back and try again."),
    401: ("Please sign in", "You need to be signed in to see this."),
    403: ("You don't have access to this page",
          "Your account doesn't have the role this page needs. If you think it should, ask an operator."),
    404: ("We couldn't find that page", "The link may be broken, or the item may have been removed."),
    405: ("That action isn't allowed here", "This page doesn't accept that kind of request."),
    406: ("We can't answer in that format", "This address answers with a web page or JSON only."),
    408: ("That took too long", "The request took too long to arrive. Please try again."),
    409: ("That clashed with another change",
          "Something changed while you were working. Reload the page to see the latest, then try again."),
    410: ("That is gone", "This item was removed and is no longer available."),
    411: ("That request didn't look right", "The request did not say how long it was. Please try again."),
    412: ("That changed in the meantime", "Reload the page to see the latest, then try again."),
    413: ("That was too large", "The upload or form was bigger than we accept. Try a smaller file."),
    414: ("That address is too long", "Shorten the address or the search and try again."),
    415: ("We can't read that kind of file", "Send a kind of content this page accepts."),
    416: ("We can't send that part", "Ask for the whole file instead."),
    417: ("That request didn't look right", "The request asked for something we can't promise. Try again."),
    418: ("That request didn't look right", "Go back and try again."),
    421: ("That request went to the wrong place", "Open the marketplace's address directly and try again."),
    422: ("We couldn't process that", "Some of what you sent doesn't fit. Check it and try again."),
    423: ("That is locked", "Someone else is changing this right now. Try again in a moment."),
    424: ("That depended on something that failed", "Try again in a moment."),
    428: ("That needs a fresh copy", "Reload the page to see the latest, then try again."),
    429: ("Slow down a little", "You've sent a lot of requests in a short time. Wait a minute, then try again."),
    431: ("That request was too large", "Clear this site's cookies or shorten the address, then try again."),
    451: ("Not available here", "This item can't be shown where you are."),
    503: ("We're having trouble reaching a service",
          "Part of the marketplace is temporarily unavailable. Your cart, credits and orders are safe."),
}
_TEMPLATES = (400, 401, 403, 404, 405, 413, 429, 503)
_FORWARD_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")


def error_text(code: int, description: str | None) -> tuple[str, str]:
    """(title, explanation) for an error page or problem: our words, or the message a view gave to abort()."""
    title, text = ERROR_TEXT.get(code, ("Something went wrong", "Go back and try again."))
    title, text = Markup(title), Markup(text)  # our own words, written without markup: shown as they are
    if description and description not in _STOCK_DESCRIPTIONS and code not in (404, 500):
        text = description  # a view's message: escaped like any other value
    return title, text


def _http_error(exc: HTTPException):
    code = exc.code or 500
    title, text = error_text(code, exc.description)
    forwarded = {name: value for name, value in exc.get_response().headers.items() if name in _FORWARD_HEADERS}
    if _wants_json():
        response = problem(code, exc.name, text)
        response.headers.update(forwarded)
        return response
    template = f"errors/{code}.html" if code in _TEMPLATES else "errors/generic.html"
    return render_template(template, error=exc, code=code, title=title, text=text), code, forwarded


def _unexpected_error(exc: Exception):
    from app.extensions import db

    logging.getLogger("app").exception("Unhandled error on %s %s", request.method, request.path)
    db.session.rollback()
    if _wants_json():
        return problem(500, "Internal Server Error", "Something went wrong on our side. It has been logged.")
    return render_template("errors/500.html", code=500), 500


DATABASE_RETRY_AFTER_SECONDS = 30
# PostgreSQL: connection exceptions (class 08), the server shutting down or starting, too many clients
_UNAVAILABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300")
# SQLite: the file cannot be opened or is held by another writer for too long
_UNAVAILABLE_SQLITE = ("unable to open database file", "database is locked", "disk i/o error")


def database_unavailable(exc: BaseException) -> bool:
    """Whether a database error means "the database cannot be reached now" rather than a defect.

    A lost, refused or invalidated connection is; a query the database refused (a missing table,
    bad SQL, a constraint) is not and stays a 500.
    """
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated or isinstance(exc, InterfaceError):
        return True
    original = exc.orig
    if hasattr(original, "sqlstate"):  # psycopg: no SQLSTATE means the server never answered
        state = original.sqlstate
        return state is None or state.startswith(_UNAVAILABLE_SQLSTATES)
    message = str(original).lower()
    return any(text in message for text in _UNAVAILABLE_SQLITE)


def _database_error(exc: DBAPIError):
    """The database cannot be reached: 503 with Retry-After (a page, or problem+json under /api)."""
    if not database_unavailable(exc):
        return _unexpected_error(exc)
    from app.db_retry import is_dropped_connection, mark_dropped
    from app.extensions import db

    if is_dropped_connection(exc):
        mark_dropped(request.environ)  # a GET or HEAD is answered again on a fresh connection

    logging.getLogger("app").error("Database unavailable on %s %s: %s", request.method, request.path,
                                   exc.orig if exc.orig is not None else exc)
    try:
        db.session.rollback()
    except Exception:  # the connection is gone; the pool replaces it on the next checkout
        pass
    g.database_unavailable = True
    g.user = None  # its attributes were expired by the rollback and cannot be read again now
    retry = {"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)}
    if _wants_json():
        response = problem(503, "Service Unavailable",
                           "The database is not answering right now; try again shortly.")
        response.headers.update(retry)
        return response
    error = ServiceUnavailable("We can't reach our database right now. Please try again in a minute.")
    return render_template("errors/503.html", error=error, code=503), 503, retry


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


def _account_links(roles: str, endpoints: set[str]) -> list[dict]:
    """The user menu's links for someone with these roles: the same on every page of a host, so built
    once per (host, script root, roles) and kept on the app."""
    from flask import current_app, url_for

    cache = current_app.extensions.setdefault("account_links", {})
    key = (request.host, request.script_root, roles)
    links = cache.get(key)
    if links is None:
        held = set(roles.split())
        links = [{"url": url_for(endpoint), "label": label} for endpoint, label, role in ACCOUNT_LINKS
                 if endpoint in endpoints and (role is None or role in held)]
        if len(cache) < 256:  # a few role sets per host; an odd Host header cannot grow it without bound
            cache[key] = links
    return links


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
    if g.get("database_unavailable"):  # an error page for a database outage: nothing to look up
        return context
    if g.get("page_cache_rendering"):  # a page kept for everyone: the per-user parts are filled per request
        return context
    counter = current_app.extensions.get("cart_count")
    if counter is not None:
        try:
            context["cart_count"] = counter()
        except Exception:  # the header must render even when the cart cannot be read
            current_app.logger.exception("cart count failed")
    user = g.get("user")
    if user is not None:
        context["account_links"] = _account_links(user.roles, endpoints)
        if "account.organization_switch" in endpoints:
            from app.auth.session_user import current_org, membership_count
            from app.extensions import db
            from app.services import identity

            # most people belong to one organization: count first (loaded with the user), load the list
            # only for the switch
            memberships = identity.memberships_of(db.session, user) if membership_count() > 1 else []
            if len(memberships) > 1:
                context["org_switch"] = {
                    "action": url_for("account.organization_switch"),
                    "memberships": memberships,
                    "current_id": current_org().id,
                }
    return context

"""Digitlify Marketplace: the storefront and the control plane in one Flask app."""
from __future__ import annotations

from flask import Flask

from app import config as settings
from app.extensions import csrf, db, htmx, migrate


def create_app(test_config: dict | None = None) -> Flask:
    app = Flask(__name__, instance_relative_config=True)
    _configure(app, test_config)
    _refuse_insecure_production(app)
    _wrap_wsgi(app)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(_migrations_dir()), render_as_batch=True, compare_type=True)
    csrf.init_app(app)
    htmx.init_app(app)
    if app.config.get("AUTH_BACKEND") == "oidc":
        from app.adapters.identity import oidc as oidc_identity
        oidc_identity.init_app(app)  # registers the OIDC client; discovery waits for the first sign-in

    from app import observability, tracing, web
    from app.auth import commands, rate_limits
    observability.init_app(app)  # first: every answer, a 429 too, carries its request id
    rate_limits.init_app(app)  # before the web layer's hooks: a request over its rate does no database work
    commands.init_app(app)
    web.init_app(app)
    tracing.init_app(app)
    return app


def _configure(app: Flask, test_config: dict | None) -> None:
    """Defaults, then the environment (or the test's settings), then what follows from them."""
    app.config.from_object(settings.Defaults)
    if test_config is None:
        settings.load_environment(app.config)
    else:
        app.config.update(test_config)
        if app.testing and "RATE_LIMITS_ENABLED" not in test_config:
            # test apps share one address and process: only tests about request rates turn them on
            app.config["RATE_LIMITS_ENABLED"] = False
    app.config["SQLALCHEMY_DATABASE_URI"] = settings.database_uri(app.config, app.instance_path)
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS",
                          settings.engine_options(app.config, app.config["SQLALCHEMY_DATABASE_URI"]))
    # the session cookie lives as long as the server-side session it names can
    app.config["PERMANENT_SESSION_LIFETIME"] = int(app.config["SESSION_MAX_LIFETIME"])


def _wrap_wsgi(app: Flask) -> None:
    """A safe request that met a dropped database connection is answered again; behind a proxy we were
    told about, its X-Forwarded-* headers are honoured (outermost, so the retry sees the client's values)."""
    from app.db_retry import RetryOnDroppedConnection

    app.wsgi_app = RetryOnDroppedConnection(app.wsgi_app)
    if app.config.get("TRUST_PROXY"):
        from werkzeug.middleware.proxy_fix import ProxyFix
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)


def _migrations_dir():
    from pathlib import Path
    return Path(__file__).resolve().parent.parent / "migrations"


def _refuse_insecure_production(app: Flask) -> None:
    production = app.config.get("APP_ENV") == "production" and not app.testing
    if production:
        app.config["SESSION_COOKIE_SECURE"] = True
    key = app.config.get("SECRET_KEY")
    if production and (not key or key == settings.DEV_SECRET_KEY or len(key) < 16):
        raise RuntimeError(
            "SECRET_KEY is missing or the development default: set a long random SECRET_KEY "
            "(or run with FLASK_DEBUG=1 for local development)."
        )

"""Request rates (Flask-Limiter) on the sign-in pages (`/auth/*`, per address) and the API (`/api`, per
caller credential, or per address without one; and per instance API key: the key's own rate, or
RATE_LIMIT_API_KEY). Counted in process memory by default, in Redis when
REDIS_URL is set (then every worker and host shares the counts). Over a limit: 429 with Retry-After,
as problem+json on the API and the friendly error page elsewhere (app/web.py renders both).

The password-guessing limits are a separate, stricter matter: see identity.begin_sign_in.
"""
from __future__ import annotations

import hashlib
import hmac
import time

from flask import Flask, current_app, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from sqlalchemy import select

MESSAGE = "Too many requests in a short time. Wait a little and try again."


def init_app(app: Flask) -> Limiter:
    """Bind a limiter to `app` (one per app: Flask-Limiter keeps its storage and limits per instance)."""
    config = app.config
    redis_url = config.get("REDIS_URL") or ""
    config["RATELIMIT_ENABLED"] = bool(config.get("RATE_LIMITS_ENABLED"))
    config["RATELIMIT_HEADERS_ENABLED"] = True
    config["RATELIMIT_STORAGE_URI"] = redis_url or "memory://"
    if redis_url:
        timeout = float(config.get("REDIS_TIMEOUT") or 1.0)
        config["RATELIMIT_STORAGE_OPTIONS"] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
        # Redis unreachable: count in memory meanwhile rather than refuse or fail every request
        config["RATELIMIT_IN_MEMORY_FALLBACK_ENABLED"] = True
    limiter = Limiter(key_func=get_remote_address)

    from app.auth import bp as auth_bp
    from app.cp import bp as cp_bp

    limiter.limit(lambda: current_app.config["RATE_LIMIT_AUTH"], error_message=MESSAGE)(auth_bp)
    limiter.limit(lambda: current_app.config["RATE_LIMIT_API"], key_func=api_caller, error_message=MESSAGE,
                  exempt_when=is_gateway)(cp_bp)
    limiter.limit(api_key_rate, key_func=api_key_prefix, error_message=api_key_message,
                  exempt_when=lambda: API_KEY_HEADER not in request.headers)(cp_bp)
    limiter.init_app(app)
    return limiter


def limit_view(app: Flask, endpoint: str, setting: str) -> None:
    """Give one registered view its own per-address budget, the `setting` of the configuration (e.g.
    the search box's suggestions, asked on every pause in typing); called once the view is registered."""
    for limiter in app.extensions.get("limiter", ()):
        view = app.view_functions[endpoint]
        app.view_functions[endpoint] = limiter.limit(lambda: current_app.config[setting], error_message=MESSAGE)(view)


def api_caller() -> str:
    """Whom an API request is counted for: its credential (never stored, only a digest of it), or its
    address when it carries none (browser sessions, anonymous calls)."""
    credential = request.headers.get("Authorization") or request.headers.get("X-API-Key")
    if credential:
        return "credential:" + hashlib.sha256(credential.encode("utf-8", "replace")).hexdigest()[:32]
    return "address:" + (get_remote_address() or "unknown")


API_KEY_HEADER = "X-API-Key"
# a key's own rate is read from the database at most this often per process (a change made here
# applies at once: the views call forget_api_key_rate)
RATE_CACHE_SECONDS = 30.0


def api_key_prefix() -> str:
    """The instance API key's public prefix (``dmk_<id>``): every request of one key is counted together."""
    from app.services import keys, tokens

    lookup = tokens.split_secret(request.headers.get(API_KEY_HEADER, "").strip(), keys.API_KEY_PREFIX)
    return "api-key:" + (lookup or "malformed")


def api_key_rate() -> str:
    """The calling key's own rate if it has one, else RATE_LIMIT_API_KEY."""
    prefix = api_key_prefix().removeprefix("api-key:")
    cache = current_app.extensions.setdefault("api_key_rates", {})
    cached = cache.get(prefix)
    if cached is None or cached[1] < time.monotonic():
        from app.extensions import db
        from app.models import ApiKey

        own = None
        if prefix != "malformed":
            own = db.session.scalar(select(ApiKey.rate_limit).where(ApiKey.prefix == prefix))
        cached = cache[prefix] = (own, time.monotonic() + RATE_CACHE_SECONDS)
    return cached[0] or current_app.config["RATE_LIMIT_API_KEY"]


def api_key_message() -> str:
    return f"Too many requests with this API key: its limit is {api_key_rate()}. Wait a little and try again."


def forget_api_key_rate(prefix: str) -> None:
    """Read the key's rate afresh on its next request (after it was changed)."""
    current_app.extensions.get("api_key_rates", {}).pop(prefix, None)


def is_gateway() -> bool:
    """The run gateway (the platform's own service token) is not rate limited: it carries every
    customer's runs, and each customer is limited on their own credential."""
    token = current_app.config.get("GATEWAY_SERVICE_TOKEN") or ""
    header = request.headers.get("Authorization") or ""
    if not token or not header.lower().startswith("bearer "):
        return False
    return hmac.compare_digest(header[7:].strip().encode("utf-8", "replace"), token.encode("utf-8"))

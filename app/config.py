"""Settings: development defaults, overridden by environment variables.

Every variable is listed with its meaning in `.env.example`.
"""
from __future__ import annotations

import os
from pathlib import Path

DEV_SECRET_KEY = "dev-only-insecure-secret-key"

_ENV_KEYS: dict[str, type] = {
    "APP_ENV": str,
    "TRUST_PROXY": bool,
    "SECRET_KEY": str,
    "DATABASE_URL": str,
    "COMMERCE_BACKEND": str,
    "CATALOG_INDEX": str,
    "PAGE_CACHE_ENABLED": bool,
    "PAGE_CACHE_ENTRIES": int,
    "PAGE_CACHE_SALEOR_TTL": float,
    "AUTH_BACKEND": str,
    "SECRETS_BACKEND": str,
    "SECRETS_KEY": str,
    "SALEOR_API_URL": str,
    "SALEOR_CHANNEL": str,
    "SALEOR_APP_TOKEN": str,
    "SALEOR_WEBHOOK_SECRET": str,
    "SALEOR_JWKS_URL": str,
    "SALEOR_TIMEOUT": float,
    "SALEOR_PAYMENT_TIMEOUT": float,
    "SALEOR_PAYMENT_GATEWAY": str,
    "SALEOR_ATTRIBUTE_PREFIX": str,
    "SALEOR_CATALOG_COLLECTION": str,
    "SALEOR_FEATURED_COLLECTION": str,
    "SALEOR_VOCABULARY_TTL": float,
    "KEYCLOAK_ISSUER": str,
    "KEYCLOAK_CLIENT_ID": str,
    "KEYCLOAK_CLIENT_SECRET": str,
    "KEYCLOAK_AUDIENCE": str,
    "KEYCLOAK_TIMEOUT": float,
    "OIDC_GROUP_ROLES": str,
    "LANGFLOW_URL": str,
    "LANGFLOW_API_KEY": str,
    "LANGFLOW_TIMEOUT": float,
    "LANGFLOW_CHECK_TIMEOUT": float,
    "BUILTIN_STREAM_DELAY_MS": int,
    "VAULT_ADDR": str,
    "VAULT_TOKEN": str,
    "VAULT_MOUNT": str,
    "VAULT_PATH_PREFIX": str,
    "VAULT_TIMEOUT": float,
    "GATEWAY_SERVICE_TOKEN": str,
    "DEMO_PASSWORD": str,
    "PUBLIC_BASE_URL": str,
    "LOGIN_MAX_FAILURES": int,
    "LOGIN_LOCK_SECONDS": int,
    "LOGIN_SLOWDOWN_SECONDS": int,
    "SESSION_IDLE_TIMEOUT": int,
    "SESSION_MAX_LIFETIME": int,
    "REDIS_URL": str,
    "REDIS_TIMEOUT": float,
    "RATE_LIMITS_ENABLED": bool,
    "RATE_LIMIT_AUTH": str,
    "RATE_LIMIT_API": str,
    "RATE_LIMIT_SUGGEST": str,
    "SEARCH_SUGGEST_LIMIT": int,
    "TEAM_INVITE_DAYS": int,
    "SELLER_WEBHOOK_TIMEOUT": float,
    "SELLER_WEBHOOK_ALLOW_PRIVATE": bool,
    "RATE_LIMIT_API_KEY": str,
    "WEBHOOK_MAX_BYTES": int,
    "PLATFORM_FEE_PERCENT": str,
    "PORT": int,
    "JOB_KEEP_HOURS": int,
    "RENEWAL_GRACE_DAYS": int,
    "RENEWAL_RETRY_DAYS": str,
    "JOB_BACKGROUND_THREADS": int,
    "RUN_TIMEOUT": float,
    "RUN_LATE_WAIT": float,
    "MAIL_BACKEND": str,
    "MAIL_FROM": str,
    "SMTP_URL": str,
    "SMTP_TIMEOUT": float,
    "PASSWORD_RESET_MINUTES": int,
    "EMAIL_VERIFY_HOURS": int,
    "LOG_FORMAT": str,
    "LOG_LEVEL": str,
    "METRICS_TOKEN": str,
    "OTEL_EXPORTER_OTLP_ENDPOINT": str,
    "DATABASE_POOL_SIZE": int,
    "DATABASE_MAX_OVERFLOW": int,
    "DATABASE_POOL_TIMEOUT": float,
    "DATABASE_POOL_RECYCLE": int,
    "DATABASE_POOL_PRE_PING": bool,
    "DATABASE_CONNECT_TIMEOUT": int,
    "OTEL_SERVICE_NAME": str,
    "STORAGE_BACKEND": str,
    "MEDIA_DIR": str,
    "S3_ENDPOINT": str,
    "S3_BUCKET": str,
    "S3_ACCESS_KEY": str,
    "S3_SECRET_KEY": str,
    "S3_REGION": str,
    "S3_TIMEOUT": float,
    "MEDIA_MAX_BYTES": int,
    "MEDIA_MAX_PIXELS": int,
    "SELLER_ACCESS_CONTACT": str,
    "INVOICE_ISSUER_NAME": str,
    "INVOICE_ISSUER_ADDRESS": str,
    "INVOICE_ISSUER_VAT_ID": str,
}

# JOB_EVERY_<TASK> (seconds between a periodic task's ticks, e.g. JOB_EVERY_EXPIRE_HOLDS=60): read for
# every registered periodic task, so a new sweep needs no line here
JOB_INTERVAL_PREFIX = "JOB_EVERY_"


class Defaults:
    """Development defaults. No real secrets here."""

    APP_ENV = "production"  # "development" allows the default SECRET_KEY and plain-http cookies
    TRUST_PROXY = False  # honour X-Forwarded-* from one reverse proxy
    SECRET_KEY = DEV_SECRET_KEY
    DATABASE_URL = ""  # empty: a SQLite file in the instance folder
    COMMERCE_BACKEND = "local"
    CATALOG_INDEX = "memory"  # local catalog: facet counts and order from an in-process index, or "sql"
    PAGE_CACHE_ENABLED = True  # catalog pages rendered once per catalog state (app/storefront/page_cache.py)
    PAGE_CACHE_ENTRIES = 300  # pages each process keeps, least recently used dropped first
    PAGE_CACHE_SALEOR_TTL = 30.0  # seconds a Saleor-mode page is kept at most (changes made in Saleor itself)
    AUTH_BACKEND = "local"
    SECRETS_BACKEND = "local"
    SECRETS_KEY = ""  # empty: derived from SECRET_KEY
    SALEOR_API_URL = "http://127.0.0.1:8000/graphql/"
    SALEOR_CHANNEL = "default-channel"
    SALEOR_APP_TOKEN = ""
    SALEOR_WEBHOOK_SECRET = ""
    SALEOR_JWKS_URL = ""  # empty: <origin of SALEOR_API_URL>/.well-known/jwks.json
    SALEOR_TIMEOUT = 3.0
    SALEOR_PAYMENT_TIMEOUT = 20.0  # paying and completing a checkout (Saleor may deliver webhooks inline)
    SALEOR_PAYMENT_GATEWAY = ""  # empty: Saleor's Dummy Payment App (development)
    # our attributes and product types in a shared Saleor: <prefix>category, <prefix>offering, ...
    SALEOR_ATTRIBUTE_PREFIX = "digitlify-"
    SALEOR_CATALOG_COLLECTION = ""  # empty: the catalog is the products of our product types
    SALEOR_FEATURED_COLLECTION = "digitlify-featured"  # the sync fills it from the offerings' featured flag
    SALEOR_VOCABULARY_TTL = 300.0  # seconds the facet vocabulary is kept between syncs
    KEYCLOAK_ISSUER = ""
    KEYCLOAK_CLIENT_ID = "marketplace"
    KEYCLOAK_CLIENT_SECRET = ""
    KEYCLOAK_AUDIENCE = ""  # empty: the client id
    KEYCLOAK_TIMEOUT = 5.0
    OIDC_GROUP_ROLES = "gsv-team=operator,sellers=seller,buyers=buyer"
    LANGFLOW_URL = "http://127.0.0.1:7860"
    LANGFLOW_API_KEY = ""
    LANGFLOW_TIMEOUT = 30.0
    LANGFLOW_CHECK_TIMEOUT = 5.0  # listing flows and checking a version's flow: a form waits on it
    BUILTIN_STREAM_DELAY_MS = 0  # pause between the words a built-in agent streams (0: as fast as it can)
    VAULT_ADDR = "http://127.0.0.1:8200"
    VAULT_TOKEN = ""
    VAULT_MOUNT = "secret"
    VAULT_PATH_PREFIX = "digitlify/connectors"
    VAULT_TIMEOUT = 5.0
    GATEWAY_SERVICE_TOKEN = ""
    DEMO_PASSWORD = "demo-password-2026"
    PUBLIC_BASE_URL = ""
    LOGIN_MAX_FAILURES = 5
    LOGIN_LOCK_SECONDS = 300
    LOGIN_SLOWDOWN_SECONDS = 15  # first wait once a sign-in limit is reached; doubles up to LOGIN_LOCK_SECONDS
    SESSION_IDLE_TIMEOUT = 12 * 3600  # seconds without a request before a signed-in session ends
    SESSION_MAX_LIFETIME = 14 * 86400  # seconds after sign-in when a session ends however busy
    REDIS_URL = ""  # empty: request-rate counters in process memory
    REDIS_TIMEOUT = 1.0
    RATE_LIMITS_ENABLED = True
    RATE_LIMIT_AUTH = "60 per minute"  # per address, on /auth/*
    RATE_LIMIT_API = "600 per minute"  # per credential (or address), on /api; not the gateway's service token
    RATE_LIMIT_SUGGEST = "120 per minute"  # per address, on the search box's suggestions
    SEARCH_SUGGEST_LIMIT = 6  # offerings suggested under the search box
    TEAM_INVITE_DAYS = 7  # how long an invitation to join an organization works
    SELLER_WEBHOOK_TIMEOUT = 10.0  # seconds a seller's endpoint has to answer one delivery
    SELLER_WEBHOOK_ALLOW_PRIVATE = False  # deliver to loopback/private addresses (development and tests only)
    RATE_LIMIT_API_KEY = "120 per minute"  # per instance API key, unless the key has its own rate
    WEBHOOK_MAX_BYTES = 256 * 1024
    PLATFORM_FEE_PERCENT = "15"  # the platform's share of each sale, e.g. "15" or "12.5"; operators may set one per publisher
    PORT = 5000
    JOB_KEEP_HOURS = 168  # succeeded jobs are deleted from the queue after this long
    RENEWAL_GRACE_DAYS = 7  # a subscription whose renewal payment failed keeps running this long
    RENEWAL_RETRY_DAYS = "1,3,5"  # days after the first failed renewal when the saved card is charged again
    JOB_BACKGROUND_THREADS = 4  # SQLite only: runs execute on this many threads of the web process
    RUN_TIMEOUT = 60.0  # seconds a run may take in the runner before it is stopped and released
    RUN_LATE_WAIT = 30.0  # seconds the runner keeps listening after giving up, to record a late reply
    MAIL_BACKEND = ""  # outbox (stored in the database, shown at Operator > Outbox) or smtp; empty: smtp when SMTP_URL is set
    MAIL_FROM = "Digitlify Marketplace <no-reply@localhost>"
    SMTP_URL = ""  # smtp://user:password@host:587 (STARTTLS) or smtps://user:password@host:465 (TLS)
    SMTP_TIMEOUT = 10.0
    PASSWORD_RESET_MINUTES = 60  # how long a password reset link works
    EMAIL_VERIFY_HOURS = 72  # how long an email confirmation link works
    LOG_FORMAT = ""  # json or text; empty: text in development, json elsewhere
    LOG_LEVEL = "info"
    METRICS_TOKEN = ""  # bearer token Prometheus sends to /metrics; empty: /metrics only in development
    OTEL_EXPORTER_OTLP_ENDPOINT = ""  # OTLP/HTTP collector, e.g. http://otel-collector:4318; empty: no tracing
    OTEL_SERVICE_NAME = "digitlify-marketplace"
    STORAGE_BACKEND = "local"  # local (a directory) or s3 (S3-compatible: MinIO, AWS S3)
    MEDIA_DIR = ""  # empty: <instance folder>/media
    S3_ENDPOINT = ""  # empty: AWS S3
    S3_BUCKET = ""
    S3_ACCESS_KEY = ""
    S3_SECRET_KEY = ""
    S3_REGION = "us-east-1"
    S3_TIMEOUT = 5.0
    MEDIA_MAX_BYTES = 1536 * 1024  # an image upload; below MAX_CONTENT_LENGTH so the form can say why
    MEDIA_MAX_PIXELS = 40_000_000
    SELLER_ACCESS_CONTACT = ""  # AUTH_BACKEND=oidc: whom to ask for the sellers group (email or URL)
    INVOICE_ISSUER_NAME = "Digitlify Marketplace"  # who issues invoices and credit notes, on every document
    INVOICE_ISSUER_ADDRESS = ""  # the issuer's postal address; "\n" separates lines
    INVOICE_ISSUER_VAT_ID = ""  # the issuer's VAT ID, printed when set

    # PostgreSQL connections per process: one per gunicorn thread (GUNICORN_THREADS) is enough; the
    # overflow covers the worker's job threads and bursts. A dropped connection is not pinged for before
    # each use (a round trip per request): app.db_retry answers a safe request again on a fresh one.
    DATABASE_POOL_SIZE = 5
    DATABASE_MAX_OVERFLOW = 10
    DATABASE_POOL_TIMEOUT = 10.0  # seconds a request waits for a free connection before it fails
    DATABASE_POOL_RECYCLE = 1800  # seconds: replace connections before proxies and servers drop idle ones
    DATABASE_POOL_PRE_PING = False
    DATABASE_CONNECT_TIMEOUT = 5  # seconds to open a connection: a host that drops packets fails fast (503)
    SESSION_COOKIE_NAME = "dm_session"  # never "_session": an OIDC provider on the same host uses it
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    # the cookie is sent again only when its contents change: a signed-in cookie expires with the absolute
    # lifetime it was issued for, and the idle timeout is kept on the server (app.services.identity), so
    # re-signing it on every answer would only cost time and make answers uncacheable
    SESSION_REFRESH_EACH_REQUEST = False
    WTF_CSRF_TIME_LIMIT = None  # tokens live as long as the session
    MAX_CONTENT_LENGTH = 2 * 1024 * 1024
    JSON_SORT_KEYS = False


def _parse(kind: type, raw: str):
    if kind is bool:
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    return kind(raw)


def load_environment(config: dict) -> None:
    """Copy known environment variables into `config`, parsed to their type."""
    for key, kind in _ENV_KEYS.items():
        raw = os.environ.get(key)
        if raw is not None and raw != "":
            config[key] = _parse(kind, raw)
    for key, raw in os.environ.items():
        if key.startswith(JOB_INTERVAL_PREFIX) and raw.strip():
            try:
                config[key] = int(raw)
            except ValueError:
                raise RuntimeError(f"{key} must be a whole number of seconds, not {raw!r}.") from None


def database_uri(config: dict, instance_path: str) -> str:
    url = config.get("SQLALCHEMY_DATABASE_URI") or config.get("DATABASE_URL")
    if not url:
        Path(instance_path).mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{Path(instance_path) / 'marketplace.db'}"
    if url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url[len("postgres://"):]
    elif url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def engine_options(config: dict, url: str) -> dict:
    """SQLAlchemy engine options for `url`; the pool settings apply to PostgreSQL (SQLite uses its own pool)."""
    if not url.startswith("postgresql"):
        return {}
    return {
        "pool_size": int(config["DATABASE_POOL_SIZE"]),
        "max_overflow": int(config["DATABASE_MAX_OVERFLOW"]),
        "pool_timeout": float(config["DATABASE_POOL_TIMEOUT"]),
        "pool_recycle": int(config["DATABASE_POOL_RECYCLE"]),
        "pool_pre_ping": bool(config["DATABASE_POOL_PRE_PING"]),
        "connect_args": {"connect_timeout": int(config["DATABASE_CONNECT_TIMEOUT"])},
    }

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
    "AUTH_BACKEND": str,
    "SECRETS_BACKEND": str,
    "SECRETS_KEY": str,
    "SALEOR_API_URL": str,
    "SALEOR_CHANNEL": str,
    "SALEOR_APP_TOKEN": str,
    "SALEOR_WEBHOOK_SECRET": str,
    "SALEOR_JWKS_URL": str,
    "SALEOR_TIMEOUT": float,
    "SALEOR_PAYMENT_GATEWAY": str,
    "KEYCLOAK_ISSUER": str,
    "KEYCLOAK_CLIENT_ID": str,
    "KEYCLOAK_CLIENT_SECRET": str,
    "KEYCLOAK_AUDIENCE": str,
    "KEYCLOAK_TIMEOUT": float,
    "OIDC_GROUP_ROLES": str,
    "LANGFLOW_URL": str,
    "LANGFLOW_API_KEY": str,
    "LANGFLOW_TIMEOUT": float,
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
    "WEBHOOK_MAX_BYTES": int,
    "PORT": int,
}


class Defaults:
    """Development defaults. No real secrets here."""

    APP_ENV = "production"  # "development" allows the default SECRET_KEY and plain-http cookies
    TRUST_PROXY = False  # honour X-Forwarded-* from one reverse proxy
    SECRET_KEY = DEV_SECRET_KEY
    DATABASE_URL = ""  # empty: a SQLite file in the instance folder
    COMMERCE_BACKEND = "local"
    CATALOG_INDEX = "memory"  # local catalog: facet counts and order from an in-process index, or "sql"
    AUTH_BACKEND = "local"
    SECRETS_BACKEND = "local"
    SECRETS_KEY = ""  # empty: derived from SECRET_KEY
    SALEOR_API_URL = "http://127.0.0.1:8000/graphql/"
    SALEOR_CHANNEL = "default-channel"
    SALEOR_APP_TOKEN = ""
    SALEOR_WEBHOOK_SECRET = ""
    SALEOR_JWKS_URL = ""  # empty: <origin of SALEOR_API_URL>/.well-known/jwks.json
    SALEOR_TIMEOUT = 3.0
    SALEOR_PAYMENT_GATEWAY = ""  # empty: Saleor's Dummy Payment App (development)
    KEYCLOAK_ISSUER = ""
    KEYCLOAK_CLIENT_ID = "marketplace"
    KEYCLOAK_CLIENT_SECRET = ""
    KEYCLOAK_AUDIENCE = ""  # empty: the client id
    KEYCLOAK_TIMEOUT = 5.0
    OIDC_GROUP_ROLES = "gsv-team=operator,sellers=seller,buyers=buyer"
    LANGFLOW_URL = "http://127.0.0.1:7860"
    LANGFLOW_API_KEY = ""
    LANGFLOW_TIMEOUT = 30.0
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
    WEBHOOK_MAX_BYTES = 256 * 1024
    PORT = 5000

    SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_pre_ping": True}
    SESSION_COOKIE_NAME = "dm_session"  # never "_session": an OIDC provider on the same host uses it
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
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

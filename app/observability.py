"""Request ids, JSON logs and Prometheus metrics for the web process.

- Every request gets an id (app.context), returned as `X-Request-Id` and put in the WSGI environ with the
  user and organization ids, where gunicorn's JSON access log (gunicorn.conf.py) reads them: one line
  per request with method, path, status, duration, user, organization and request id.
- `LOG_FORMAT=json` (the default outside development) writes every application log line as one JSON
  object (python-json-logger) carrying the request id of the request it belongs to.
- `/metrics` serves the series of app.metrics in Prometheus' text format. Under gunicorn the workers
  share them through PROMETHEUS_MULTIPROC_DIR (set up by gunicorn.conf.py). Outside development it
  answers only with `Authorization: Bearer <METRICS_TOKEN>`, and 404 when no token is configured.
"""
from __future__ import annotations

import hmac
import logging
import time

from flask import Flask, Response, abort, current_app, g, request
from sqlalchemy import inspect as sa_inspect

from app import context, metrics

ENVIRON_PREFIX = "marketplace."


def init_app(app: Flask) -> None:
    _learn_systems(app.config)
    instrument_outgoing_calls()
    app.before_request(_start)
    app.after_request(_finish)
    app.teardown_request(_forget)
    app.add_url_rule("/metrics", "metrics", _metrics_view)
    if log_format(app.config) == "json" and not app.testing:
        configure_json_logging(app.config.get("LOG_LEVEL", "info"))


def log_format(config) -> str:
    """json or text: LOG_FORMAT, else text in development and json elsewhere."""
    return config.get("LOG_FORMAT") or ("text" if config.get("APP_ENV") == "development" else "json")


def json_log_handler(stream=None) -> logging.Handler:
    """A handler that writes each record as one JSON object, with the request id it belongs to."""
    from pythonjsonlogger.json import JsonFormatter

    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
                                       rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"}))
    handler.addFilter(RequestIdFilter())
    return handler


def configure_json_logging(level: str = "info") -> None:
    """One JSON object per log line on stderr for the whole process (web or worker)."""
    root = logging.getLogger()
    root.handlers[:] = [json_log_handler()]
    root.setLevel(level.upper())


class RequestIdFilter(logging.Filter):
    """Adds the current request id to every record (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = context.current_request_id()
        return True


# --- calls to other systems -------------------------------------------------------------------------

_SYSTEMS: dict[str, str] = {}  # "host:port" -> the system it is, from the configured URLs
_SYSTEM_SETTINGS = {"SALEOR_API_URL": "saleor", "SALEOR_JWKS_URL": "saleor", "LANGFLOW_URL": "langflow",
                    "KEYCLOAK_ISSUER": "keycloak", "VAULT_ADDR": "vault"}


def _learn_systems(config) -> None:
    from urllib.parse import urlsplit

    for setting, system in _SYSTEM_SETTINGS.items():
        url = config.get(setting) or ""
        parts = urlsplit(url)
        if parts.hostname:
            _SYSTEMS[f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"] = system


def system_of(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return _SYSTEMS.get(f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}", "other")


def instrument_outgoing_calls() -> None:
    """Every HTTP call made with requests (the Saleor, Langflow, Keycloak and Vault clients all use it)
    carries the current request id and is timed in marketplace_external_call_duration_seconds by system.
    Installed once per process; the clients themselves stay unaware of it."""
    import requests

    if getattr(requests.Session.send, "_marketplace", False):
        return
    original = requests.Session.send

    def send(self, request, **kwargs):
        for name, value in context.outbound_headers().items():
            request.headers.setdefault(name, value)
        started = time.perf_counter()
        outcome = "error"
        try:
            response = original(self, request, **kwargs)
            outcome = "ok" if response.status_code < 500 else "server_error"
            return response
        except requests.Timeout:
            outcome = "timeout"
            raise
        finally:
            metrics.EXTERNAL_CALLS.labels(system_of(request.url), outcome).observe(time.perf_counter() - started)

    send._marketplace = True  # type: ignore[attr-defined]
    requests.Session.send = send


def _start() -> None:
    g.request_started = time.perf_counter()
    rid = context.accept_request_id(request.headers.get(context.REQUEST_ID_HEADER))
    g.request_id = rid
    g.request_id_token = context.set_request_id(rid)
    request.environ[ENVIRON_PREFIX + "request_id"] = rid


def _finish(response):
    rid = g.get("request_id")
    if rid:
        response.headers[context.REQUEST_ID_HEADER] = rid
    user = g.get("user") or g.get("api_user")
    org = g.get("org") or g.get("api_org")
    if user is not None:
        request.environ[ENVIRON_PREFIX + "user_id"] = user.id
    if org is not None:
        # the id from the identity map: after the view's commit, reading org.id would reload the row
        identity = sa_inspect(org).identity
        request.environ[ENVIRON_PREFIX + "org_id"] = identity[0] if identity else org.id
    started = g.get("request_started")
    if started is not None:
        endpoint = request.url_rule.endpoint if request.url_rule is not None else "unmatched"
        metrics.HTTP_LATENCY.labels(request.method, endpoint, str(response.status_code)).observe(
            time.perf_counter() - started)
    return response


def _forget(_exc=None) -> None:
    token = g.pop("request_id_token", None)
    if token is not None:
        context.reset_request_id(token)


def _metrics_view():
    token = current_app.config.get("METRICS_TOKEN") or ""
    if token:
        sent = request.headers.get("Authorization", "")
        if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            abort(404)
    elif current_app.config.get("APP_ENV") != "development" and not current_app.testing:
        abort(404)  # no token configured: not served outside development
    body, content_type = metrics.exposition()
    return Response(body, content_type=content_type, headers={"Cache-Control": "no-store"})

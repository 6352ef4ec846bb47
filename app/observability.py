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

from app import context, metrics

ENVIRON_PREFIX = "marketplace."


def init_app(app: Flask) -> None:
    app.before_request(_start)
    app.after_request(_finish)
    app.teardown_request(_forget)
    app.add_url_rule("/metrics", "metrics", _metrics_view)
    fmt = app.config.get("LOG_FORMAT") or ("text" if app.config.get("APP_ENV") == "development" else "json")
    if fmt == "json" and not app.testing:
        configure_json_logging(app.config.get("LOG_LEVEL", "info"))


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
        request.environ[ENVIRON_PREFIX + "org_id"] = org.id
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

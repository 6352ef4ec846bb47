"""Gunicorn settings for the web process, every one from the environment (listed in .env.example).

The image runs `gunicorn -c gunicorn.conf.py "app:create_app()"`; `make run` keeps Flask's own server for
development. The workers are gevent workers: a request mostly waits (on PostgreSQL, Saleor, a runtime), and
an open run event stream (GET /api/runs/<id>/events, a streamed POST of a run) waits for minutes; with gevent
each of those is a greenlet that costs a few kilobytes, never one of a few threads that serve pages.
psycopg 3 (3.1.14 and later) cooperates with gevent's monkey-patching by itself, and a waiting event stream
holds no database connection, so DATABASE_POOL_SIZE bounds only the requests that use the database at once.
Do not preload the app (`--preload`, preload_app) with gevent workers: psycopg chooses how it waits
on its sockets when it is imported, and imported in the master, before gevent patches the worker, it
blocks the whole worker while a run event stream listens.
GUNICORN_WORKER_CLASS=gthread goes back to threads (GUNICORN_THREADS per worker), where every open stream
holds a thread.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time

from gunicorn.glogging import Logger


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gevent")
# gevent: the most connections (pages, API calls and open event streams together) one worker serves at once
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", "1000"))
# a request that takes longer than this is stuck (runs have their own, shorter, runtime timeout)
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
# on SIGTERM, requests in flight get this long to finish before the worker is stopped
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
# recycle workers now and then so a slow leak cannot grow without bound; jitter keeps them from restarting together
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "5000"))
max_requests_jitter = max_requests // 10
# X-Forwarded-* are honoured only behind a proxy we were told about (the app's ProxyFix reads TRUST_PROXY too)
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "*") if _flag("TRUST_PROXY") else ""
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()


class JsonAccessLogger(Logger):
    """One JSON object per request on the access log, so a log pipeline needs no parsing rules."""

    def access(self, resp, req, environ, request_time):
        if not (self.cfg.accesslog or self.cfg.logconfig or self.cfg.syslog):
            return
        headers = {name.lower(): value for name, value in req.headers}
        line = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "event": "access",
            "method": req.method,
            "path": req.path,
            "status": resp.status_code,
            "bytes": getattr(resp, "sent", None),
            "duration_ms": round(request_time.total_seconds() * 1000, 1),
            "remote": environ.get("REMOTE_ADDR"),
            "request_id": environ.get("marketplace.request_id") or headers.get("x-request-id"),
            "user_id": environ.get("marketplace.user_id"),
            "org_id": environ.get("marketplace.org_id"),
            "user_agent": headers.get("user-agent"),
        }
        try:
            self.access_log.info(json.dumps(line, separators=(",", ":")))
        except Exception:  # logging must never break a response
            self.exception("Failed to write the access log line")


logger_class = JsonAccessLogger


# Prometheus: every worker writes its series to files in one directory, so a scrape of any worker
# sees the whole server. The directory is emptied at start (values of a previous run must not count);
# one made here for want of PROMETHEUS_MULTIPROC_DIR is removed again when the server exits.
_made_metrics_dir = None
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _made_metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="marketplace-metrics-")


def on_starting(server):
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory, exist_ok=True)


def on_exit(server):
    if _made_metrics_dir:
        shutil.rmtree(_made_metrics_dir, ignore_errors=True)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)

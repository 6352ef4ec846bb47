"""A safe request that met a dropped database connection is answered again, once, on a fresh one.

The pool does not ping a connection before each use (that costs a round trip on every request). After
PostgreSQL restarts or a proxy drops idle connections, the first statement on a dead connection fails;
SQLAlchemy then marks it, and every pooled connection older than it, invalid. For GET and HEAD, which
change nothing, this middleware discards that failed answer and runs the request once more, so nobody
sees the failure. Other methods answer 503 with Retry-After: whether they changed anything is not known
to the server, and the client decides (idempotency keys make a retry safe on the API).
"""
from __future__ import annotations

from sqlalchemy.exc import DBAPIError

FLAG = "marketplace.db_connection_dropped"
SAFE_METHODS = frozenset({"GET", "HEAD"})


def is_dropped_connection(exc: BaseException) -> bool:
    """True for a driver error that SQLAlchemy recognised as a lost connection."""
    return isinstance(exc, DBAPIError) and bool(getattr(exc, "connection_invalidated", False))


def mark_dropped(environ: dict) -> None:
    """Called by the error handler that answered a request whose connection was dropped."""
    environ[FLAG] = True


class RetryOnDroppedConnection:
    def __init__(self, wsgi_app) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        if environ.get("REQUEST_METHOD") not in SAFE_METHODS:
            return self.wsgi_app(environ, start_response)
        held: list = []

        def hold(status, headers, exc_info=None):
            held[:] = [status, headers, exc_info]
            return lambda data: None  # the legacy write() is not used by Flask

        body = self.wsgi_app(environ, hold)
        if environ.pop(FLAG, False):
            if hasattr(body, "close"):
                body.close()
            return self.wsgi_app(environ, start_response)  # once: a second drop is answered as it is
        start_response(*held)
        return body

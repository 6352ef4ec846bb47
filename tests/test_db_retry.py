"""Dropped database connections: the pool does not ping before each use; a GET or HEAD that met a dropped
connection is answered again on a fresh one, other methods are not replayed."""
from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from app.config import Defaults, engine_options
from app.db_retry import FLAG, RetryOnDroppedConnection
from tests.conftest import ON_POSTGRES, PG_URL


def _app_that_drops(times: int):
    calls = []

    def wsgi(environ, start_response):
        calls.append(environ["REQUEST_METHOD"])
        if len(calls) <= times:
            environ[FLAG] = True
            start_response("503 SERVICE UNAVAILABLE", [("Content-Type", "text/plain")])
            return [b"dropped"]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"fresh"]

    return wsgi, calls


def _call(middleware, method):
    seen = []
    body = middleware({"REQUEST_METHOD": method}, lambda status, headers, exc_info=None: seen.append(status))
    return seen, b"".join(body)


def test_a_get_that_met_a_dropped_connection_is_answered_again_once():
    wsgi, calls = _app_that_drops(1)
    assert _call(RetryOnDroppedConnection(wsgi), "GET") == (["200 OK"], b"fresh")
    assert calls == ["GET", "GET"]


def test_a_second_drop_is_answered_as_it_is():
    wsgi, calls = _app_that_drops(5)
    assert _call(RetryOnDroppedConnection(wsgi), "HEAD") == (["503 SERVICE UNAVAILABLE"], b"dropped")
    assert calls == ["HEAD", "HEAD"]


def test_a_post_is_never_replayed():
    wsgi, calls = _app_that_drops(1)
    assert _call(RetryOnDroppedConnection(wsgi), "POST") == (["503 SERVICE UNAVAILABLE"], b"dropped")
    assert calls == ["POST"]


def test_pool_settings_come_from_configuration_and_do_not_ping():
    config = {k: getattr(Defaults, k) for k in dir(Defaults) if k.isupper()}
    config.update(DATABASE_POOL_SIZE=8, DATABASE_MAX_OVERFLOW=2)
    assert engine_options(config, "postgresql+psycopg://u@h/db") == {
        "pool_size": 8, "max_overflow": 2, "pool_timeout": 10.0, "pool_recycle": 1800, "pool_pre_ping": False,
        "connect_args": {"connect_timeout": 5}}
    assert engine_options(config, "sqlite:///x.db") == {}


@pytest.mark.postgres_only
def test_after_the_server_drops_every_connection_pages_still_answer(make_app, client):
    app = make_app()
    pages = app.test_client()
    assert pages.get("/").status_code == 200  # the pool now holds a connection
    killer = create_engine(PG_URL)
    with killer.begin() as conn:
        dropped = conn.execute(text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )).scalar()
    killer.dispose()
    assert dropped >= 1
    assert app.config["SQLALCHEMY_ENGINE_OPTIONS"]["pool_pre_ping"] is False
    assert pages.get("/").status_code == 200
    assert pages.get("/search?q=agent").status_code == 200

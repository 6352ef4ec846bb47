"""Fixtures: one migrated database per test run (SQLite file, or PostgreSQL from TEST_DATABASE_URL),
emptied before every test; an app, a client and a session on it; signed-in clients."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from app import create_app
from app.extensions import db as _db
from app.models import Model

PG_URL = os.environ.get("TEST_DATABASE_URL", "")
# procrastinate's tables (not our models) are emptied between tests too
JOB_QUEUE_TABLES = ("procrastinate_events", "procrastinate_periodic_defers", "procrastinate_jobs",
                    "procrastinate_workers")
ON_POSTGRES = PG_URL.startswith("postgresql")


@pytest.fixture(autouse=True, scope="session")
def _fast_password_hashing():
    """scrypt with a smaller work factor in tests: the same code path, a fraction of the time."""
    from app.services import identity

    identity.PASSWORD_METHOD = "scrypt:4096:8:1"
    yield


def pytest_report_header(config):
    return f"database: {'PostgreSQL (' + PG_URL.rsplit('@', 1)[-1] + ')' if ON_POSTGRES else 'SQLite'}"


def pytest_collection_modifyitems(config, items):
    skip_pg = pytest.mark.skip(reason="needs PostgreSQL (runs in the PostgreSQL pass of make test)")
    for item in items:
        if "postgres_only" in item.keywords and not ON_POSTGRES:
            item.add_marker(skip_pg)


def _migrate(url: str) -> None:
    from flask_migrate import upgrade

    app = create_app({"TESTING": True, "SECRET_KEY": "test-secret-key-123456", "SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        upgrade()
        _db.engine.dispose()


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory) -> str:
    """Migrate once per run; tests then start from an empty copy of that schema."""
    if ON_POSTGRES:
        engine = create_engine(PG_URL)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
        _migrate(PG_URL)
        return PG_URL
    path = tmp_path_factory.mktemp("db") / "template.db"
    _migrate(f"sqlite:///{path}")
    return str(path)


@pytest.fixture
def db_url(migrated_template, tmp_path) -> str:
    if ON_POSTGRES:
        engine = create_engine(PG_URL)
        tables = ", ".join([f'"{t.name}"' for t in Model.metadata.sorted_tables] + list(JOB_QUEUE_TABLES))
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        engine.dispose()
        return PG_URL
    path = tmp_path / "test.db"
    shutil.copyfile(migrated_template, path)
    return f"sqlite:///{path}"


TEST_CONFIG = {
    "TESTING": True,
    "SECRET_KEY": "test-secret-key-123456",
    "WTF_CSRF_ENABLED": False,
    "DEMO_PASSWORD": "demo-password-2026",
    "SERVER_NAME": None,
}


@pytest.fixture
def make_app(db_url):
    """Build an app on the test database; keyword arguments override the config."""
    apps = []

    def factory(**overrides):
        config = {**TEST_CONFIG, "SQLALCHEMY_DATABASE_URI": db_url, **overrides}
        app = create_app(config)
        apps.append(app)
        return app

    factory.apps = apps  # the run_worker fixture runs jobs for the newest one
    yield factory
    from app.jobs.engine import wait_for_background

    wait_for_background(timeout=30)  # SQLite: runs still on the in-process pool end before the database goes
    for app in apps:
        with app.app_context():
            _db.session.remove()
            _db.engine.dispose()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def run_worker(make_app, app):
    """Runs started by a test are executed: on SQLite they run on the in-process pool anyway; on
    PostgreSQL a thread works off the job queue (as `flask worker` would) for the newest app, until
    the test ends."""
    if not ON_POSTGRES:
        yield
        return
    import threading

    from app.jobs.worker import work_off

    stop = threading.Event()

    def loop():
        while not stop.is_set():
            try:
                work_off(make_app.apps[-1])
            except Exception:  # a torn-down database at the end of a test: try again or stop
                pass
            stop.wait(0.05)

    thread = threading.Thread(target=loop, name="test-run-worker", daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=60)


@pytest.fixture
def session(app):
    with app.app_context():
        yield _db.session


@pytest.fixture
def client(app):
    return app.test_client()


def login(client, user) -> None:
    """Sign a test client in as `user` without the form (the form has its own tests): a server-side
    session record, named by the cookie as a real sign-in does."""
    from app.auth.session_user import SESSION_TOKEN_KEY, session_lifetimes, session_stamp
    from app.services import identity

    from contextlib import nullcontext

    from flask import current_app, has_app_context

    user_id, stamp = user.id, session_stamp(user)
    # inside this app's context the caller's session may hold the user uncommitted: use (and commit) it
    same_app = has_app_context() and current_app._get_current_object() is client.application
    with nullcontext() if same_app else client.application.app_context():
        idle, lifetime = session_lifetimes()
        token = identity.start_session(_db.session, user_id=user_id, idle_timeout=idle, max_lifetime=lifetime)
        _db.session.commit()
    with client.session_transaction() as s:
        s["user_id"] = user_id
        s["stamp"] = stamp
        s[SESSION_TOKEN_KEY] = token


@pytest.fixture
def demo(session, app):
    """The demo catalog and users, committed."""
    from app.services import seed

    seed.seed_demo(session, password=app.config["DEMO_PASSWORD"])
    session.commit()
    return seed


@pytest.fixture
def buyer(session, demo):
    from app.services import identity
    return identity.get_user_by_email(session, "buyer@example.com")


@pytest.fixture
def seller(session, demo):
    from app.services import identity
    return identity.get_user_by_email(session, "seller@example.com")


@pytest.fixture
def operator(session, demo):
    from app.services import identity
    return identity.get_user_by_email(session, "operator@example.com")


@pytest.fixture
def buyer_client(client, buyer):
    login(client, buyer)
    return client


@pytest.fixture
def saleor_fake():
    """A fake Saleor GraphQL server on a free loopback port (see tests/saleor_fake.py); set
    `saleor_fake.resolvers[...]` and pass `saleor_fake.url` as SALEOR_API_URL."""
    from tests.saleor_fake import SaleorFake

    with SaleorFake() as fake:
        yield fake


@pytest.fixture
def store(saleor_fake):
    """An in-memory Saleor catalog answering the product sync behind the fake Saleor."""
    from tests.seller.saleor_store import SaleorStore

    store = SaleorStore()
    store.install(saleor_fake)
    return store


@pytest.fixture
def saleor_app(make_app, saleor_fake, store, demo):
    """The app on the Saleor commerce backend, pointed at the fake Saleor, with the demo catalog."""
    from tests.seller.saleor_store import APP_TOKEN

    return make_app(COMMERCE_BACKEND="saleor", SALEOR_API_URL=saleor_fake.url, SALEOR_APP_TOKEN=APP_TOKEN,
                    SALEOR_CHANNEL="default-channel")


ROOT = Path(__file__).resolve().parent.parent

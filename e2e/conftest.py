"""Browser journeys: the app served by gunicorn on PostgreSQL (E2E_DATABASE_URL) or a SQLite file,
driven by Playwright in Debian's Chromium. Each journey records a screenshot per step and keeps
them under e2e/artifacts/<test>/ when it fails."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "e2e" / "artifacts"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
DEMO_PASSWORD = "demo-password-2026"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prepare_database(url: str) -> None:
    """An empty database, migrated and seeded with the demo data."""
    if url.startswith("postgresql"):
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        target = make_url(url)
        admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{target.database}"'))
        admin.dispose()
    env = {**os.environ, "DATABASE_URL": url, "APP_ENV": "development", "DEMO_PASSWORD": DEMO_PASSWORD}
    flask = [sys.executable, "-m", "flask", "--app", "app"]
    subprocess.run([*flask, "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True)
    subprocess.run([*flask, "seed", "demo"], cwd=ROOT, env=env, check=True, capture_output=True)


@pytest.fixture(scope="session")
def e2e_db_url(tmp_path_factory) -> str:
    url = os.environ.get("E2E_DATABASE_URL") or f"sqlite:///{tmp_path_factory.mktemp('e2e') / 'e2e.db'}"
    _prepare_database(url)
    return url


class Server:
    def __init__(self, url: str, process: subprocess.Popen, log: Path) -> None:
        self.url, self.process, self.log = url, process, log

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def start_app_server(db_url: str, tmp_dir: Path, port: int | None = None, **env_overrides: str) -> Server:
    """gunicorn serving create_app() on a free loopback port; waits for /api/health."""
    port = port or free_port()
    log = tmp_dir / f"gunicorn-{port}.log"
    env = {
        **os.environ, "DATABASE_URL": db_url, "APP_ENV": "development", "SECRET_KEY": "e2e-secret-key-0123456789",
        "DEMO_PASSWORD": DEMO_PASSWORD, **env_overrides,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", "2", "--threads", "4", "--bind", f"127.0.0.1:{port}",
         "--timeout", "60", "app:create_app()"],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {log.read_text()[-2000:]}")
        try:
            if requests.get(url + "/api/health", timeout=2).status_code == 200:
                return Server(url, process, log)
        except requests.RequestException:
            pass
        time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"gunicorn did not answer: {log.read_text()[-2000:]}")


@pytest.fixture(scope="session")
def app_server(e2e_db_url, tmp_path_factory):
    server = start_app_server(e2e_db_url, tmp_path_factory.mktemp("server"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def base_url(app_server) -> str:  # overrides pytest-base-url; Playwright's page.goto("/x") uses it
    return app_server.url


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps"],
    }


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.journey_failed = report.failed


class Journey:
    """Names each step of a journey and keeps a screenshot of the page after it."""

    def __init__(self, page) -> None:
        self.page = page
        self.shots: list[tuple[str, bytes]] = []

    @contextmanager
    def step(self, name: str):
        try:
            yield
        finally:
            try:
                self.shots.append((name, self.page.screenshot(full_page=True)))
            except Exception:  # the page may be gone; the failure itself is what matters
                pass


@pytest.fixture
def journey(page, request):
    j = Journey(page)
    yield j
    if getattr(request.node, "journey_failed", False):
        folder = ARTIFACTS / re.sub(r"[^\w.-]+", "_", request.node.name)
        folder.mkdir(parents=True, exist_ok=True)
        for i, (name, png) in enumerate(j.shots, 1):
            (folder / f"{i:02d}-{re.sub(r'[^a-z0-9]+', '-', name.lower())}.png").write_bytes(png)


def sign_in(page, email: str, password: str = DEMO_PASSWORD) -> None:
    page.goto("/auth/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()

"""Browser journeys: the app served by gunicorn on PostgreSQL (E2E_DATABASE_URL) or a SQLite file,
driven by Playwright in Debian's Chromium. Each journey records a screenshot per step and keeps
them under e2e/artifacts/<test>/ when it fails.

One job worker (`flask --app app worker`) runs beside them on the same database, as `make run` and
production do: on PostgreSQL it is what sends the mail a journey reads from the Outbox.

When an SSO journey is collected, a second app server runs with AUTH_BACKEND=oidc against the
Keycloak-shaped OpenID provider of tests/oidc (node). The database is prepared and the servers boot
side by side: each of them is mostly Python start-up time."""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from playwright.sync_api import expect

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "e2e" / "artifacts"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
DEMO_PASSWORD = "demo-password-2026"
NEW_USER_PASSWORD = "journey-password-2026"
START_TIMEOUT = 120  # seconds for the database and a server to be ready on a busy machine
# built-in agents stream their output word by word this far apart, so a journey sees it arrive
STREAM_DELAY_MS = "40"

if str(ROOT) not in sys.path:  # the OpenID provider is started by tests/oidc_support.py
    sys.path.insert(0, str(ROOT))

# The machines that run `make test` are shared and often busy: give assertions time to come true
# (they still return as soon as they do).
expect.set_options(timeout=20_000)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the database ------------------------------------------------------------------------------

_PREPARE = """
import sys, traceback
from app import create_app
runner = create_app().test_cli_runner()
for args in (["db", "upgrade"], ["seed", "demo"]):
    outcome = runner.invoke(args=args)
    if outcome.exit_code != 0:
        print(" ".join(args), "failed:", outcome.output)
        if outcome.exc_info:
            traceback.print_exception(*outcome.exc_info)
        sys.exit(1)
"""


def _start_preparing_database(url: str) -> subprocess.Popen:
    """Empty the database, then migrate and seed it with the demo data in a child process
    (`flask db upgrade` and `flask seed demo` in one process: importing the app is the slow part)."""
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
    return subprocess.Popen([sys.executable, "-c", _PREPARE], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _finish_preparing_database(process: subprocess.Popen) -> None:
    try:
        output, _ = process.communicate(timeout=START_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"preparing the E2E database failed:\n{output[-4000:]}")


# --- app servers -------------------------------------------------------------------------------

class Server:
    def __init__(self, url: str, process: subprocess.Popen, log: Path) -> None:
        self.url, self.process, self.log = url, process, log

    def wait_until_up(self, timeout: float = START_TIMEOUT) -> Server:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.log.read_text()[-2000:]}")
            try:
                if requests.get(self.url + "/api/health", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"gunicorn did not answer within {timeout} s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        stop_servers(self)


def stop_servers(*servers: Server | Worker | None) -> None:
    """SIGTERM to each (by PID), then wait for all: the workers get a second (--graceful-timeout) to
    finish what they are serving, and gunicorn's master takes about as long again to notice; a job
    worker finishes the job it is running."""
    running = [s for s in servers if s is not None and s.process.poll() is None]
    for server in running:
        server.process.send_signal(signal.SIGTERM)
    for server in running:
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=10)


def launch_app_server(db_url: str, tmp_dir: Path, port: int | None = None, **env_overrides: str) -> Server:
    """gunicorn serving create_app() on a loopback port (a free one unless given); does not wait."""
    port = port or free_port()
    log = tmp_dir / f"gunicorn-{port}.log"
    env = {
        **os.environ, "DATABASE_URL": db_url, "APP_ENV": "development", "SECRET_KEY": "e2e-secret-key-0123456789",
        "DEMO_PASSWORD": DEMO_PASSWORD, "BUILTIN_STREAM_DELAY_MS": STREAM_DELAY_MS, **env_overrides,
    }
    # gunicorn.conf.py (read from the working directory) makes these gevent workers, as in production.
    # No --preload: psycopg picks how it waits on sockets when it is imported, so it must be imported
    # after gevent has patched the worker (imported in the master it blocks the whole worker while a
    # run event stream listens, and every page of that worker waits).
    command = [sys.executable, "-m", "gunicorn", "--workers", "2", "--threads", "4",
               "--bind", f"127.0.0.1:{port}", "--timeout", "60", "--graceful-timeout", "1"]
    if _gunicorn_has_control_socket():
        command.append("--no-control-socket")  # one per user by default, shared with every other gunicorn
    with log.open("w") as out:
        process = subprocess.Popen([*command, "app:create_app()"], cwd=ROOT, env=env, stdout=out,
                                   stderr=subprocess.STDOUT)
    return Server(f"http://127.0.0.1:{port}", process, log)


class Worker:
    """`flask --app app worker` on the stack's database."""

    def __init__(self, process: subprocess.Popen, log: Path) -> None:
        self.process, self.log = process, log

    def wait_until_up(self, timeout: float = START_TIMEOUT) -> Worker:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the job worker exited: {self.log.read_text()[-2000:]}")
            if "Worker started" in self.log.read_text():
                return self
            time.sleep(0.2)
        stop_servers(self)
        raise RuntimeError(f"the job worker did not start within {timeout} s: {self.log.read_text()[-2000:]}")


def launch_worker(db_url: str, tmp_dir: Path) -> Worker:
    """One job worker on `db_url` (started once the database is migrated); does not wait."""
    log = tmp_dir / "worker.log"
    env = {**os.environ, "DATABASE_URL": db_url, "APP_ENV": "development", "SECRET_KEY": "e2e-secret-key-0123456789",
           "DEMO_PASSWORD": DEMO_PASSWORD, "BUILTIN_STREAM_DELAY_MS": STREAM_DELAY_MS}
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "worker"], cwd=ROOT, env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    return Worker(process, log)


def _gunicorn_has_control_socket() -> bool:
    from gunicorn.config import KNOWN_SETTINGS

    return any("--no-control-socket" in (setting.cli or []) for setting in KNOWN_SETTINGS)


def start_app_server(db_url: str, tmp_dir: Path, port: int | None = None, **env_overrides: str) -> Server:
    """gunicorn serving create_app(); waits for /api/health."""
    return launch_app_server(db_url, tmp_dir, port, **env_overrides).wait_until_up()


@dataclass
class Stack:
    db_url: str
    app: Server
    worker: Worker
    sso: Server | None  # AUTH_BACKEND=oidc, when an SSO journey is collected
    provider: object | None  # tests.oidc_support.Provider


def _sso_collected(session) -> bool:
    return any("sso_app" in item.fixturenames for item in session.items)


@pytest.fixture(scope="session")
def stack(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    db_url = os.environ.get("E2E_DATABASE_URL") or f"sqlite:///{tmp / 'e2e.db'}"
    with ExitStack() as cleanup:
        preparing = _start_preparing_database(db_url)
        cleanup.callback(lambda: preparing.poll() is None and preparing.kill())
        app = launch_app_server(db_url, tmp)  # boots while the database is prepared; serves nothing before
        sso = provider = worker = None
        cleanup.callback(lambda: stop_servers(app, sso, worker))
        if _sso_collected(request.session):
            from tests.oidc_support import CLIENT_ID, CLIENT_SECRET, run_provider

            # the provider only redirects back to the app port it is started with
            provider = cleanup.enter_context(run_provider(tmp / "oidc-provider.log"))
            sso = launch_app_server(
                db_url, tmp, port=provider.app_port, AUTH_BACKEND="oidc", KEYCLOAK_ISSUER=provider.issuer,
                KEYCLOAK_CLIENT_ID=CLIENT_ID, KEYCLOAK_CLIENT_SECRET=CLIENT_SECRET,
            )
        _finish_preparing_database(preparing)
        worker = launch_worker(db_url, tmp)  # its queue is in the migrated database
        for server in (app, sso, worker):
            if server is not None:
                server.wait_until_up()
        yield Stack(db_url=db_url, app=app, worker=worker, sso=sso, provider=provider)


@pytest.fixture(scope="session")
def e2e_db_url(stack) -> str:
    return stack.db_url


@pytest.fixture(scope="session")
def app_server(stack) -> Server:
    return stack.app


@pytest.fixture(scope="session")
def sso_app(stack) -> Server:
    """A second app server with AUTH_BACKEND=oidc on the same database."""
    return stack.sso


@pytest.fixture(scope="session")
def oidc_provider(stack):
    """The Keycloak-shaped OpenID provider (`node tests/oidc/server.mjs` on a free port, stopped by PID)."""
    return stack.provider


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
    """Names each step of a journey and keeps a screenshot of the page after it: the visible part as a
    JPEG after a step that passed (cheap on a busy machine), the whole page as a PNG after the step
    that failed.

    A journey with several people passes the page the step happens on: `journey.step("approve", operator)`.
    """

    def __init__(self, page) -> None:
        self.page = page
        self.shots: list[tuple[str, str, bytes]] = []  # (step, file suffix, image)

    @contextmanager
    def step(self, name: str, page=None):
        page = page or self.page
        try:
            yield
        except BaseException:
            self._shoot(f"{name} (failed)", "png", lambda: _whole_page(page))
            raise
        self._shoot(name, "jpg", lambda: page.screenshot(type="jpeg", quality=80, timeout=10_000))

    def _shoot(self, name: str, suffix: str, take) -> None:
        try:
            self.shots.append((name, suffix, take()))
        except Exception:  # the page may be gone; the failure itself is what matters
            pass


def _whole_page(page) -> bytes:
    page.evaluate("window.scrollTo(0, 0)")  # else a sticky header is drawn where the page was scrolled to
    return page.screenshot(full_page=True, timeout=10_000)


@pytest.fixture
def journey(page, request):
    j = Journey(page)
    yield j
    folder = ARTIFACTS / re.sub(r"[^\w.-]+", "_", request.node.name)
    shutil.rmtree(folder, ignore_errors=True)  # screenshots of an earlier failed run would mislead
    if getattr(request.node, "journey_failed", False):
        folder.mkdir(parents=True, exist_ok=True)
        for i, (name, suffix, image) in enumerate(j.shots, 1):
            (folder / f"{i:02d}-{re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')}.{suffix}").write_bytes(image)


def sign_in(page, email: str, password: str = DEMO_PASSWORD) -> None:
    page.goto("/auth/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def unique(text: str) -> str:
    """`text` with a short random suffix: journeys never share names, emails or offerings."""
    return f"{text} {uuid.uuid4().hex[:6]}"


def sign_up(page, name: str, *, open_form: bool = True) -> str:
    """Create a new account (on the sign-up form already open when open_form is False), confirm its
    email with the link from the mail, and sign in; its email. The page ends where the sign-up was
    headed (the form's `next`), or on the home page."""
    email = f"{re.sub(r'[^a-z0-9]+', '.', unique(name).lower())}@example.com"
    if open_form:
        page.goto("/auth/signup")
    page.get_by_label("Full name").fill(name)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(NEW_USER_PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", level=1, name="Check your inbox")).to_be_visible()
    confirm_email(page, email)
    return email


def confirm_email(page, email: str) -> None:
    """Follow the confirmation link mailed to `email`, then sign in as that account."""
    link = mail_link(page, to=email, subject="Confirm your email address")
    page.goto(link)
    page.get_by_role("button", name="Confirm my email").click()
    expect(page.get_by_text("Your email address is confirmed. Sign in to continue.")).to_be_visible()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(NEW_USER_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text(re.compile(r"^Welcome back, "))).to_be_visible()


def open_mail(operator_page, *, to: str, subject: str) -> None:
    """On the operator's page: open the newest mail to `to` with `subject` from the Outbox."""
    operator_page.goto("/operator/outbox?to=" + to)
    expect(operator_page.get_by_role("heading", level=1, name="Outbox")).to_be_visible()
    operator_page.get_by_role("link", name=subject).first.click()
    expect(operator_page.get_by_role("heading", level=2, name=subject)).to_be_visible()


def expect_mail_sent(operator_page, timeout: float = 20) -> None:
    """The mail open on the operator's page is sent, or becomes so within `timeout` seconds (its job
    runs in a worker beside the app; the page is reloaded until then)."""
    status = fact(operator_page, "Status")
    deadline = time.monotonic() + timeout
    while status.inner_text().strip() != "Sent" and time.monotonic() < deadline:
        time.sleep(0.5)
        operator_page.reload()
    expect(status).to_have_text("Sent")


def mail_text(operator_page) -> str:
    """The text part of the mail open on the operator's page."""
    return operator_page.get_by_role("region", name="As text").locator("pre").inner_text()


def mail_link(page, *, to: str, subject: str) -> str:
    """The first link in the newest mail to `to` with `subject`, read from the Outbox page by an
    operator in a browser context of its own (the person's own session is left alone)."""
    origin = re.match(r"^https?://[^/]+", page.url).group(0)
    context = page.context.browser.new_context(base_url=origin)
    try:
        operator = context.new_page()
        sign_in(operator, "operator@example.com")
        expect(operator.get_by_text(re.compile(r"^Welcome back, "))).to_be_visible()
        open_mail(operator, to=to, subject=subject)
        return re.search(r"https?://\S+", mail_text(operator)).group(0)
    finally:
        context.close()


def credits_badge(page):
    """The header's credits badge (a link to Billing & Credits named by the available balance)."""
    return page.get_by_role("banner").get_by_role("link", name=re.compile(r"^Credits\b"))


def open_account_menu(page, link: str) -> None:
    """Follow a link of the header's account menu ("My Agents", "Seller dashboard", ...)."""
    header = page.get_by_role("banner")
    header.get_by_label(re.compile(r"^Account menu for ")).click()
    header.get_by_role("link", name=link, exact=True).click()


def fact(scope, term: str):
    """The value of a term in a description list (<dt>term</dt><dd>value</dd>) inside `scope`."""
    return scope.get_by_role("term").filter(has_text=re.compile(rf"^\s*{re.escape(term)}\s*$")) \
        .locator("xpath=following-sibling::dd[1]")


def run_in_console(page, text: str) -> tuple:
    """Run the agent from the instance page's console and wait for the turn to end; (the turn's
    result region, credits it used)."""
    console = page.get_by_role("region", name="Run console")
    console.get_by_label("Input").fill(text)
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/runs")):
        console.get_by_role("button", name=re.compile(r"^(Run agent|Send to the agent)$")).click()
    turn = console.get_by_role("article", name=re.compile(r"^Run #\d+$")).last
    result = turn.get_by_role("status")
    expect(result.get_by_text(re.compile(r"credits? used"))).to_be_visible(timeout=60_000)
    meta = result.get_by_text(re.compile(r"^Run #\d+ ·")).inner_text()
    return result, int(re.search(r"(\d+) credits? used", meta).group(1))


def pay_with_test_card(page, card: str = "4242 4242 4242 4242") -> None:
    """From the checkout page: place the order for the personal workspace and pay with the test-mode card."""
    expect(page.get_by_role("heading", level=1, name="Checkout")).to_be_visible()
    page.get_by_role("button", name="Place order and continue to payment").click()
    expect(page.get_by_role("note", name="TEST MODE")).to_be_visible()
    page.get_by_label("Card number").fill(card)
    page.get_by_label("Expiry (MM/YY)").fill("12/39")
    page.get_by_label("Security code (CVC)").fill("123")
    page.get_by_role("button", name=re.compile(r"^Pay .* \(test mode\)$")).click()

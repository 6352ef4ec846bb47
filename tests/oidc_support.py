"""Helpers for the SSO tests: the Keycloak-shaped OpenID provider in tests/oidc (node), a live app
on a chosen port, the browser's redirect dance with requests, and signing test tokens."""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from werkzeug.serving import make_server

OIDC_DIR = Path(__file__).resolve().parent / "oidc"
REALM = "digitlify"
CLIENT_ID = "marketplace"
CLIENT_SECRET = "marketplace-test-secret"
REALM_KID = "realm-key-1"
PASSWORDS = {"alice": "alice-pw", "sam": "sam-pw", "olga": "olga-pw", "rolf": "rolf-pw", "nora": "nora-pw"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict:
    return {**RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "use": "sig", "alg": "RS256"}


def sign(claims: dict, key, *, kid: str | None = REALM_KID, alg: str = "RS256", typ: str | None = "JWT") -> str:
    headers = {}
    if kid is not None:
        headers["kid"] = kid
    if typ is not None:
        headers["typ"] = typ
    return jwt.encode(claims, key, algorithm=alg, headers=headers)


@dataclass
class Provider:
    issuer: str
    app_port: int
    key: rsa.RSAPrivateKey
    process: subprocess.Popen

    @property
    def app_base(self) -> str:
        return f"http://127.0.0.1:{self.app_port}"

    @property
    def callback(self) -> str:
        return f"{self.app_base}/auth/oidc/callback"

    def metadata(self) -> dict:
        return requests.get(f"{self.issuer}/.well-known/openid-configuration", timeout=5).json()


@contextmanager
def run_provider(log_path: Path):
    """Start `node server.mjs` on a free port, for an app that will listen on another chosen port."""
    if shutil.which("node") is None or not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        raise RuntimeError("The SSO tests need Node.js and `npm ci` in tests/oidc (scripts/test.sh runs it).")
    port, app_port = free_port(), free_port()
    key = new_rsa_key()
    signing_jwk = {k: v for k, v in RSAAlgorithm.to_jwk(key, as_dict=True).items() if k != "key_ops"}
    signing_jwk["kid"] = REALM_KID
    issuer = f"http://127.0.0.1:{port}/realms/{REALM}"
    env = {
        **os.environ, "OIDC_PORT": str(port), "REALM": REALM, "CLIENT_ID": CLIENT_ID, "CLIENT_SECRET": CLIENT_SECRET,
        "REDIRECT_URI": f"http://127.0.0.1:{app_port}/auth/oidc/callback",
        "POST_LOGOUT_REDIRECT_URI": f"http://127.0.0.1:{app_port}/", "OIDC_SIGNING_JWK": json.dumps(signing_jwk),
    }
    with open(log_path, "wb") as log:
        process = subprocess.Popen(["node", "server.mjs"], cwd=OIDC_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_for(issuer, process, log_path)
            yield Provider(issuer=issuer, app_port=app_port, key=key, process=process)
        finally:
            process.terminate()  # by its PID
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _wait_for(issuer: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the OpenID provider exited: {log_path.read_text(errors='replace')}")
        try:
            if requests.get(f"{issuer}/.well-known/openid-configuration", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the OpenID provider did not start: {log_path.read_text(errors='replace')}")


@contextmanager
def serve(app, port: int):
    """The Flask app on 127.0.0.1:<port> in a thread (the provider's redirect URI names that port)."""
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# --- the browser's part, with requests ---------------------------------------------------------

def follow(browser: requests.Session, response: requests.Response, *, stop_at: str | None = None):
    """Follow redirects by hand; return the URL that starts with `stop_at` unvisited, or the last response."""
    while response.is_redirect:
        location = urljoin(response.url, response.headers["Location"])
        if stop_at and location.startswith(stop_at):
            return location
        response = browser.get(location, allow_redirects=False, timeout=10)
    return response


def form_action(page: requests.Response) -> str:
    match = re.search(r'<form[^>]*action="([^"]+)"', page.text)
    assert match, page.text
    return urljoin(page.url, unescape(match.group(1)))


def open_login(browser: requests.Session, app_base: str, next_url: str | None = None) -> requests.Response:
    """Our sign-in link, followed to the provider's login form."""
    params = {"next": next_url} if next_url is not None else None
    response = browser.get(f"{app_base}/auth/oidc/login", params=params, allow_redirects=False, timeout=10)
    return follow(browser, response)


def callback_url(browser: requests.Session, provider: Provider, username: str, next_url: str | None = None) -> str:
    """Sign in at the provider and return the callback URL (code, state, iss) without visiting it."""
    form = open_login(browser, provider.app_base, next_url)
    response = browser.post(form_action(form), data={"username": username, "password": PASSWORDS[username]},
                            allow_redirects=False, timeout=10)
    location = follow(browser, response, stop_at=provider.callback)
    assert isinstance(location, str), f"the provider did not redirect to the app: {location.text[:500]}"
    return location


def sign_in(browser: requests.Session, provider: Provider, username: str, next_url: str | None = None):
    """The whole round trip; the response of the page where it lands."""
    response = browser.get(callback_url(browser, provider, username, next_url), allow_redirects=False, timeout=10)
    return follow(browser, response)


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}

"""The one way this app talks to Saleor: one operation per HTTP request, over one kept-alive
connection pool per process, with a short timeout and two exceptions the callers can act on.

Documents live in `graphql/<Operation>.graphql` beside this module, one operation per file,
because Saleor validates every operation in a posted document. Selection sets shared by several
operations are fragments in `graphql/fragments/<Fragment>.graphql` (one per file); each request
carries its operation plus exactly the fragments it uses, directly or through other fragments
(Saleor also refuses a document with an unused fragment). `tests/test_saleor_documents.py` checks
each document as sent against Saleor's schema.

Connections: every request of a process goes through one `requests.Session` (urllib3's pool is
thread-safe; the session keeps no cookies, so nothing of one caller's request reaches another's),
so a page's calls reuse open connections instead of paying a TCP (and TLS) handshake each. A
forked worker makes its own pool.
"""
from __future__ import annotations

import functools
import os
import re
import threading
from http.cookiejar import DefaultCookiePolicy
from pathlib import Path
from typing import Any

import requests
from flask import current_app
from gql import GraphQLRequest, gql
from graphql import FragmentSpreadNode, Visitor, parse, visit
from requests.adapters import HTTPAdapter

from app.adapters.commerce import CommerceUnavailable

DOCUMENTS_DIR = Path(__file__).resolve().parent / "graphql"
FRAGMENTS_DIR = DOCUMENTS_DIR / "fragments"
MAX_TIMEOUT_SECONDS = 3.0
_OPERATION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SaleorError(CommerceUnavailable):
    """Saleor answered, but with GraphQL errors (or an answer that is not GraphQL).

    `errors` holds the GraphQL error dicts as Saleor sent them. Errors a mutation reports in its
    payload (`errors { field code message }`) are data, not this exception."""

    def __init__(self, message: str, *, operation: str, errors: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.operation = operation
        self.errors = errors or []


class SaleorUnavailable(SaleorError):
    """Saleor could not be reached in time: timeout, refused connection or an HTTP 5xx."""


class _FragmentSpreads(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def enter_fragment_spread(self, node: FragmentSpreadNode, *_: Any) -> None:
        self.names.append(node.name.value)


def _spread_names(source: str) -> list[str]:
    """The fragments a document spreads, in order of first use."""
    spreads = _FragmentSpreads()
    visit(parse(source), spreads)
    return list(dict.fromkeys(spreads.names))


@functools.cache
def fragment_sources() -> dict[str, str]:
    """Fragment name -> its file's text, from `graphql/fragments/<Fragment>.graphql`."""
    return {path.stem: path.read_text(encoding="utf-8") for path in sorted(FRAGMENTS_DIR.glob("*.graphql"))}


@functools.cache
def document_source(name: str) -> str:
    """The text sent for operation `name`: `graphql/<name>.graphql` followed by every fragment it
    uses, directly or through other fragments, each once (cached; the files are fixed at deploy time)."""
    if not _OPERATION_NAME.match(name):
        raise ValueError(f"not an operation name: {name!r}")
    source = (DOCUMENTS_DIR / f"{name}.graphql").read_text(encoding="utf-8")
    fragments = fragment_sources()
    used: list[str] = []
    pending = _spread_names(source)
    while pending:
        fragment = pending.pop(0)
        if fragment in used:
            continue
        if fragment not in fragments:
            raise LookupError(f"{name} uses fragment {fragment}, which graphql/fragments/ does not define")
        used.append(fragment)
        pending.extend(_spread_names(fragments[fragment]))
    return "\n\n".join([source.rstrip("\n"), *(fragments[f].rstrip("\n") for f in used)]) + "\n"


@functools.cache
def load_document(name: str) -> GraphQLRequest:
    """The parsed document for operation `name`, with its fragments (see `document_source`)."""
    return gql(document_source(name))


def timeout_seconds() -> float:
    """SALEOR_TIMEOUT, never above three seconds: a page must not hang on Saleor."""
    configured = float(current_app.config.get("SALEOR_TIMEOUT") or MAX_TIMEOUT_SECONDS)
    return min(configured, MAX_TIMEOUT_SECONDS) if configured > 0 else MAX_TIMEOUT_SECONDS


def payment_timeout_seconds() -> float:
    """SALEOR_PAYMENT_TIMEOUT: paying and completing a checkout. Saleor runs the payment app and, without
    a task broker, delivers the order-paid webhooks inline before it answers, so these calls take
    longer than a catalog read; the buyer is looking at "Paying…" meanwhile."""
    configured = float(current_app.config.get("SALEOR_PAYMENT_TIMEOUT") or 0)
    return configured if configured > 0 else 20.0


POOL_SIZE = 16  # connections kept open to Saleor per process (pages run a few calls at once)
_http: tuple[int, requests.Session] | None = None
_http_lock = threading.Lock()


def http_session() -> requests.Session:
    """This process's session for Saleor (made on first use, and again in a forked child)."""
    global _http
    current = _http
    if current is not None and current[0] == os.getpid():
        return current[1]
    with _http_lock:
        if _http is None or _http[0] != os.getpid():
            http = requests.Session()
            http.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))  # keep no cookies
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE, max_retries=0)
            http.mount("http://", adapter)
            http.mount("https://", adapter)
            _http = (os.getpid(), http)
        return _http[1]


def _graphql_errors(body: Any) -> list[dict[str, Any]]:
    errors = body.get("errors") if isinstance(body, dict) else None
    return [e if isinstance(e, dict) else {"message": str(e)} for e in errors] if isinstance(errors, list) else []


def execute(
    operation: str,
    variables: dict[str, Any] | None = None,
    *,
    bearer_token: str | None = None,
    anonymous: bool = False,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Send one operation and return its `data`.

    The app token (SALEOR_APP_TOKEN) is sent when configured; `bearer_token` (a customer's
    Saleor JWT) replaces it for calls made on behalf of a signed-in customer; `anonymous` sends
    neither (storefront reads: Saleor then shows only what a visitor may see).
    Raises SaleorUnavailable (timeout, connection error, HTTP 5xx) or SaleorError (GraphQL errors,
    a refused request, an answer that is not GraphQL). No hidden retries: a retry would double the
    wait behind a page. `timeout` replaces the page timeout for the few calls a buyer waits on
    knowingly (paying: see `payment_timeout_seconds`).
    """
    config = current_app.config
    token = "" if anonymous else (bearer_token or config.get("SALEOR_APP_TOKEN") or "")
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    payload = {"query": document_source(operation), "variables": variables or {}, "operationName": operation}
    try:
        response = http_session().post(config["SALEOR_API_URL"], json=payload, headers=headers,
                                       timeout=timeout or timeout_seconds())
    except requests.RequestException as error:
        raise SaleorUnavailable(f"Saleor is unreachable for {operation}: {error}", operation=operation) from error
    if response.status_code >= 500:
        raise SaleorUnavailable(f"Saleor is unreachable for {operation}: {response.status_code} Server Error",
                                operation=operation)
    try:
        body = response.json()
    except ValueError:
        body = None
    errors = _graphql_errors(body)
    if response.status_code >= 400:
        detail = f": {errors[0].get('message')}" if errors else ""
        raise SaleorError(f"Saleor refused {operation}: HTTP {response.status_code}{detail}", operation=operation,
                          errors=errors)
    if errors:
        raise SaleorError(f"Saleor rejected {operation}: {errors[0].get('message')}", operation=operation,
                          errors=errors)
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        raise SaleorError(f"Saleor sent an unexpected answer to {operation}", operation=operation)
    return body["data"]

"""The one way this app talks to Saleor: a gql Client per call over HTTP, one operation per
request, a short timeout, and two exceptions the callers can act on.

Documents live in `graphql/<Operation>.graphql` beside this module, one operation per file,
because Saleor validates every operation in a posted document. Selection sets shared by several
operations are fragments in `graphql/fragments/<Fragment>.graphql` (one per file); each request
carries its operation plus exactly the fragments it uses, directly or through other fragments
(Saleor also refuses a document with an unused fragment). `tests/test_saleor_documents.py` checks
each document as sent against Saleor's schema.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import requests
from flask import current_app
from gql import Client, GraphQLRequest, gql
from graphql import FragmentSpreadNode, Visitor, parse, visit
from gql.transport.exceptions import (
    TransportConnectionFailed,
    TransportProtocolError,
    TransportQueryError,
    TransportServerError,
)
from gql.transport.requests import RequestsHTTPTransport

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


def _raise_for_server_error(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    # Saleor's 5xx bodies may be JSON with "errors"; gql would report them as GraphQL errors,
    # but for us a 5xx means "Saleor is down", whatever the body says.
    if response.status_code >= 500:
        response.raise_for_status()


def execute(
    operation: str,
    variables: dict[str, Any] | None = None,
    *,
    bearer_token: str | None = None,
    anonymous: bool = False,
) -> dict[str, Any]:
    """Send one operation and return its `data`.

    The app token (SALEOR_APP_TOKEN) is sent when configured; `bearer_token` (a customer's
    Saleor JWT) replaces it for calls made on behalf of a signed-in customer; `anonymous` sends
    neither (storefront reads: Saleor then shows only what a visitor may see).
    Raises SaleorUnavailable (timeout, connection error, HTTP 5xx) or SaleorError (GraphQL errors).
    """
    config = current_app.config
    token = "" if anonymous else (bearer_token or config.get("SALEOR_APP_TOKEN") or "")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = RequestsHTTPTransport(
        url=config["SALEOR_API_URL"],
        headers=headers,
        timeout=timeout_seconds(),  # type: ignore[arg-type]  # requests accepts float seconds
        retries=0,  # no hidden retries: a retry would double the wait behind a page
        hooks={"response": [_raise_for_server_error]},
    )
    request = GraphQLRequest(load_document(operation), variable_values=variables or {}, operation_name=operation)
    client = Client(transport=transport, fetch_schema_from_transport=False)
    try:
        return client.execute(request)
    except TransportQueryError as error:
        raise SaleorError(
            f"Saleor rejected {operation}: {error}", operation=operation, errors=list(error.errors or [])
        ) from error
    except TransportConnectionFailed as error:
        raise SaleorUnavailable(f"Saleor is unreachable for {operation}: {error}", operation=operation) from error
    except TransportServerError as error:
        if (error.code or 0) >= 500:
            raise SaleorUnavailable(f"Saleor failed {operation}: HTTP {error.code}", operation=operation) from error
        raise SaleorError(f"Saleor refused {operation}: HTTP {error.code}", operation=operation) from error
    except TransportProtocolError as error:
        raise SaleorError(f"Saleor sent an unexpected answer to {operation}: {error}", operation=operation) from error
    except requests.RequestException as error:
        raise SaleorUnavailable(f"Saleor is unreachable for {operation}: {error}", operation=operation) from error

"""The one way this app talks to Saleor: a gql Client per call over HTTP, one operation per
request, a short timeout, and two exceptions the callers can act on.

Documents live in `graphql/<Operation>.graphql` beside this module (one operation plus its
fragments per file, because Saleor validates every operation in a posted document), and
`tests/test_saleor_documents.py` checks each against Saleor's schema.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import requests
from flask import current_app
from gql import Client, GraphQLRequest, gql
from gql.transport.exceptions import (
    TransportConnectionFailed,
    TransportProtocolError,
    TransportQueryError,
    TransportServerError,
)
from gql.transport.requests import RequestsHTTPTransport

from app.adapters.commerce import CommerceUnavailable

DOCUMENTS_DIR = Path(__file__).resolve().parent / "graphql"
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


@functools.cache
def load_document(name: str) -> GraphQLRequest:
    """The parsed document `graphql/<name>.graphql` (cached; the file set is fixed at deploy time)."""
    if not _OPERATION_NAME.match(name):
        raise ValueError(f"not an operation name: {name!r}")
    path = DOCUMENTS_DIR / f"{name}.graphql"
    return gql(path.read_text(encoding="utf-8"))


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

"""What the current unit of work is called, for logs and for the calls it makes to other systems.

A request id comes with the request (`X-Request-Id`, from the proxy or the caller) or is made here; it is
returned on the response, written on every log line of the request, and sent on to Saleor, Langflow,
Keycloak and Vault, so one id follows a purchase or a run through every system. Adapters read it with
`outbound_headers()`; this module imports nothing of the app, so any layer may use it.
"""
from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

REQUEST_ID_HEADER = "X-Request-Id"
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def accept_request_id(incoming: str | None) -> str:
    """The caller's id when it is a sane token (no spaces, no control characters, at most 128), else a new one."""
    if incoming and _VALID_ID.match(incoming):
        return incoming
    return uuid.uuid4().hex


def set_request_id(value: str | None):
    """Make `value` the current id; returns the token to restore the previous one."""
    return _request_id.set(value)


def reset_request_id(token) -> None:
    _request_id.reset(token)


def current_request_id() -> str | None:
    return _request_id.get()


def outbound_headers() -> dict[str, str]:
    """Headers to add to a call to another system: the current request id, when there is one."""
    rid = _request_id.get()
    return {REQUEST_ID_HEADER: rid} if rid else {}

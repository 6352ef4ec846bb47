"""The signed-in buyer's account pages: the blueprint and what its pages share. The pages live beside it:
`settings.py` (profile, settings, switching organization), `agents.py` (My Agents, instances with their
keys, connectors, documents and the run console), `billing.py` (Billing & Credits, the header credits
badge), `trials.py` (starting a free trial) and `orders.py` (order history).

Everything is scoped to the user's current organization (switchable in the user menu); a member
of another organization gets 404 for an instance, never a hint that it exists.
"""
from __future__ import annotations

from flask import Blueprint, current_app, request

from app.services import organizations

bp = Blueprint("account", __name__)


def has_endpoint(name: str) -> bool:
    """Whether another blueprint's page is there to link to (the storefront, in tests, may be left out)."""
    return name in current_app.view_functions


def refusal_text(exc: Exception, action: str) -> str:
    if isinstance(exc, organizations.NotAllowed):
        return f"Only an owner or admin of the organization can {action}."
    return str(exc)


def wants_fragment() -> bool:
    """An htmx request that wants a block, not a boosted navigation or a history restore."""
    return (request.headers.get("HX-Request") == "true" and request.headers.get("HX-Boosted") != "true"
            and request.headers.get("HX-History-Restore-Request") != "true")

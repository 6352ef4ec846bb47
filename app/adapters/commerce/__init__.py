"""The commerce port (read side: the catalog). Views and services ask `get_catalog()` for the
adapter chosen by COMMERCE_BACKEND and never import an adapter directly."""
from __future__ import annotations


class CommerceUnavailable(Exception):
    """The commerce backend could not answer (down, slow, or broken); show the fallback page."""

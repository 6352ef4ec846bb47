"""The product-sync port: push a published offering (product, variants per plan, prices) to the
commerce backend's own catalog. Only Saleor keeps a catalog of its own; on the local backend the
app's tables are the catalog, so there is nothing to push and `get_product_sync()` returns None."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from app.models import Offering


class ProductSyncError(Exception):
    """The push failed; the message is safe for operators (no tokens) and is stored on the offering."""


class ProductSync(Protocol):
    backend: str

    def sync_offering(self, offering: "Offering", *, on_product_id: Callable[[str], None]) -> str:
        """Create or update the offering's product; return its id in the backend.

        Idempotent: a second call updates what the first created. `on_product_id` is called as
        soon as the product's id is known, so a later failure still leaves it recorded.
        Raises ProductSyncError.
        """
        ...


def get_product_sync(config: dict[str, Any] | None = None) -> ProductSync | None:
    """The adapter for COMMERCE_BACKEND, or None when the backend has no catalog to sync."""
    if config is None:
        from flask import current_app

        config = current_app.config
    if config.get("COMMERCE_BACKEND") != "saleor":
        return None
    from app.adapters.commerce.saleor.sync import SaleorProductSync

    return SaleorProductSync(channel=config.get("SALEOR_CHANNEL") or "default-channel")

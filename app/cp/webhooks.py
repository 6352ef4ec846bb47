"""Inbound webhooks: the Saleor order-paid event."""
from app.cp.views import bp  # noqa: F401

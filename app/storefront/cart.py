"""Cart and checkout routes of the storefront blueprint."""
from app.storefront.views import bp  # noqa: F401

from app.storefront.views import bp
from app.storefront import cart  # noqa: F401  (cart and checkout routes on the same blueprint)
from app.storefront import reviews  # noqa: F401  (review pages and forms on the same blueprint)
from app.storefront import suggest  # noqa: F401  (the search box's suggestions)

__all__ = ["bp"]

from app.storefront.views import bp
from app.storefront import cart  # noqa: F401  (cart and checkout routes on the same blueprint)

__all__ = ["bp"]

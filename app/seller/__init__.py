from app.seller.views import bp
from app.seller import listings, sales, webhooks  # noqa: F401  (routes on the same blueprint)

__all__ = ["bp"]

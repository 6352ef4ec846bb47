from app.seller.views import bp
from app.seller import earnings, listings, media, sales, webhooks  # noqa: F401  (routes on the same blueprint)
from app.seller import reviews  # noqa: F401  (routes on the same blueprint)

__all__ = ["bp"]

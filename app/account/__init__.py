from app.account.views import bp
from app.account import orders  # noqa: F401  (order pages on the same blueprint)

__all__ = ["bp"]

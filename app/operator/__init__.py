from app.operator.views import bp
from app.operator import outbox  # noqa: F401  (its routes are on the same blueprint)

__all__ = ["bp"]

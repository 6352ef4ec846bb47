from app.auth.views import bp
from app.auth import oidc  # noqa: F401  (its routes are on the same blueprint)
from app.auth import recovery  # noqa: F401  (forgotten password, email confirmation; same blueprint)

__all__ = ["bp"]

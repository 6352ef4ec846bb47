from app.publishers.views import bp
from app.publishers import onboarding  # noqa: F401  (routes on the same blueprint)

__all__ = ["bp"]

from app.account.views import bp
from app.account import agents, billing, orders, settings, trials  # noqa: F401  (routes on the same blueprint)
from app.account import instance_versions  # noqa: F401

__all__ = ["bp"]

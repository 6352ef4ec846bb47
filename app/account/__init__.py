from app.account.views import bp
from app.account import agents, billing, console, invoices, orders, settings, teams, trials  # noqa: F401  (routes on the same blueprint)

__all__ = ["bp"]

from app.account import instance_versions  # noqa: F401,E402  (routes on the same blueprint)

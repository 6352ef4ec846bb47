from app.account.views import bp
from app.account import agents, billing, invoices, orders, settings, teams, trials  # noqa: F401  (routes on the same blueprint)

__all__ = ["bp"]

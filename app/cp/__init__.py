from app.cp.views import bp
from app.cp import audit, connectors, instances, offerings, organizations, tokens, wallets  # noqa: F401
from app.cp import runs, webhooks  # noqa: F401  (routes on the same blueprint)
from app.cp import reviews  # noqa: F401  (routes on the same blueprint)

__all__ = ["bp"]

from app.cp import earnings, instance_versions, orders, refunds, subscriptions  # noqa: F401,E402  (routes on the same blueprint)

from app.operator.views import bp
from app.operator import jobs as _jobs_page  # noqa: E402,F401  (the Jobs page: routes on the same blueprint)
from app.operator import outbox, publishers  # noqa: F401  (their routes are on the same blueprint)
from app.operator import orders  # noqa: F401  (Orders and Payouts: routes on the same blueprint)
from app.operator import reviews  # noqa: F401  (buyer reviews: routes on the same blueprint)

__all__ = ["bp"]

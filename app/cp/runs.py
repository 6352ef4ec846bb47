"""The run gateway: POST /api/instances/<id>/runs."""
from app.cp.views import bp  # noqa: F401

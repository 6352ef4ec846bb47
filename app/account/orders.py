"""Order history pages of the account blueprint."""
from app.account.views import bp  # noqa: F401

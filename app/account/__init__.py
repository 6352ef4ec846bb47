from app.account.views import bp

__all__ = ["bp"]

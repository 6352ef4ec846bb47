from app.auth.views import bp

__all__ = ["bp"]

from app.cp.views import bp

__all__ = ["bp"]

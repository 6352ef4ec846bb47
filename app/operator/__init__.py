from app.operator.views import bp

__all__ = ["bp"]

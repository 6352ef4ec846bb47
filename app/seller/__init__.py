from app.seller.views import bp

__all__ = ["bp"]

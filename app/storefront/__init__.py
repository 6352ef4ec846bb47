from app.storefront.views import bp

__all__ = ["bp"]

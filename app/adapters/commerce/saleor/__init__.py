"""Saleor adapter of the commerce port: GraphQL over HTTP (gql), documents in `graphql/`."""
from app.adapters.commerce.saleor.client import SaleorError, SaleorUnavailable

__all__ = ["SaleorError", "SaleorUnavailable"]

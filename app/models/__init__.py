"""All models, importable without Flask."""
from app.models.audit import AuditEvent
from app.models.base import Model, utcnow
from app.models.billing import (
    CreditGrant, GrantOrigin, Hold, HoldStatus, LedgerEntry, LedgerKind, Notification, Wallet,
)
from app.models.catalog import (
    CATEGORIES, FACET_GROUPS, PLAN_TIERS, CatalogRevision, CreditPack, FacetValue, Offering, OfferingFacet,
    OfferingStatus, OfferingVersion, Plan,
)
from app.models.commerce import Cart, CartLine, LineKind, Order, OrderLine, OrderStatus, Payment
from app.models.earnings import EarningEntry, EarningKind, Payout, PublisherFee, Refund, RefundSource, UnconfirmedRefund
from app.models.commerce import (
    Cart, CartLine, LineKind, Order, OrderLine, OrderPurpose, OrderStatus, Payment, PaymentMethod,
)
from app.models.identity import LoginThrottle, MemberRole, Membership, Organization, PersonalAccessToken, Role, User, UserSession
from app.models.instances import (
    RUN_FINISHED, ApiKey, Instance, InstanceStatus, KnowledgeDocument, Run, RunEvent, RunStatus, TrialClaim,
)
from app.models.integrations import STORE_SYNC_KEY, ConnectorBinding, StoredSecret, StoreSyncState, WebhookEvent
from app.models.invoicing import BillingDetails, DocumentKind, DocumentSequence, Invoice, InvoiceLine
from app.models.integrations import ConnectorBinding, StoredSecret, WebhookEvent
from app.models.jobs import JobFailure, PeriodicRun
from app.models.mail import MailMessage, MailStatus, OutboxDelivery
from app.models.reviews import Review, ReviewerKind, ReviewVote
from app.models.publishing import (
    MediaKind, OfferingMedia, PublisherProfile, PublisherStatus, SellerTerms, SellerTermsAcceptance,
)
from app.models.seller_webhooks import (
    SellerWebhookAttempt, SellerWebhookDelivery, SellerWebhookEndpoint, SellerWebhookEvent, WebhookDeliveryStatus,
)
from app.models.teams import OrganizationInvitation

__all__ = [
    "ApiKey", "AuditEvent", "CATEGORIES", "Cart", "CartLine", "CatalogRevision", "ConnectorBinding", "CreditGrant", "CreditPack", "EarningEntry", "EarningKind",
    "FACET_GROUPS", "FacetValue", "GrantOrigin", "Hold", "HoldStatus", "Instance", "InstanceStatus", "JobFailure",
    "KnowledgeDocument", "LedgerEntry", "LedgerKind", "LineKind", "LoginThrottle", "MailMessage", "MailStatus", "MemberRole", "Membership",
    "Model", "Notification", "Offering", "OfferingFacet", "OfferingStatus", "OfferingVersion", "Order",
    "OrderLine", "OrderStatus", "Organization", "OutboxDelivery", "PLAN_TIERS", "Payment", "Payout", "PublisherFee", "Refund", "RefundSource", "UnconfirmedRefund", "PeriodicRun", "PersonalAccessToken", "Plan", "Role", "Review", "ReviewerKind", "ReviewVote", "OrderPurpose", "PaymentMethod",
    "Run", "RunStatus", "StoredSecret", "TrialClaim", "User", "UserSession", "Wallet", "WebhookEvent", "utcnow",
    "STORE_SYNC_KEY", "StoreSyncState",
    "OrderLine", "OrderStatus", "Organization", "OutboxDelivery", "PLAN_TIERS", "Payment", "PeriodicRun", "PersonalAccessToken", "Plan", "Role",
    "Run", "RunStatus",
    "MediaKind", "OfferingMedia", "PublisherProfile", "PublisherStatus", "SellerTerms", "SellerTermsAcceptance", "StoredSecret", "TrialClaim", "User", "UserSession", "Wallet", "WebhookEvent", "utcnow",
    "BillingDetails", "DocumentKind", "DocumentSequence", "Invoice", "InvoiceLine",
    "OrganizationInvitation", "SellerWebhookAttempt", "SellerWebhookDelivery", "SellerWebhookEndpoint",
    "SellerWebhookEvent", "WebhookDeliveryStatus",
    "OrderLine", "OrderStatus", "Organization", "OutboxDelivery", "PLAN_TIERS", "Payment", "PeriodicRun", "PersonalAccessToken", "Plan", "Role",
    "RUN_FINISHED", "Run", "RunEvent", "RunStatus", "StoredSecret", "TrialClaim", "User", "UserSession", "Wallet", "WebhookEvent", "utcnow",
]

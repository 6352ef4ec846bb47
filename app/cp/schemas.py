"""Request and response bodies of the control-plane API (pydantic v2 models).

They are the single description of the JSON: spectree validates requests and responses with them
and turns them into the OpenAPI document. Bounds are explicit (ids fit a 32-bit key, credit
amounts a sane range) so that no input can reach the database as something it cannot store.
"""

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app.routing import MAX_ID  # one bound for ids in paths, headers and bodies
from app.services.text_rules import SPOOFING_PATTERN, TextRuleError, refuse_spoofing_characters

MAX_CREDITS = 1_000_000_000

Id = Annotated[int, Field(ge=1, le=MAX_ID, strict=True)]
QueryId = Annotated[int, Field(ge=1, le=MAX_ID)]
Credits = Annotated[int, Field(ge=0, le=MAX_CREDITS, strict=True)]
PositiveCredits = Annotated[int, Field(ge=1, le=MAX_CREDITS, strict=True)]
IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9._:\-]{1,128}$"
IdempotencyKey = Annotated[str, Field(min_length=1, max_length=128, pattern=IDEMPOTENCY_KEY_PATTERN,
                                      description="Client-chosen; a retry with the same key returns the same result.")]
MemberRoleName = Literal["owner", "admin", "member"]


def valid_idempotency_key(key: str) -> bool:
    """For a key that came in a header, where the models do not check it."""
    return re.fullmatch(IDEMPOTENCY_KEY_PATTERN, key) is not None


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("Remove the NUL character.")
    return value


# "must not contain NUL" as `not: {pattern}` rather than an anchored pattern: generators and validators
# otherwise fold maxLength into the regex (a 100,000-fold repetition) and spend seconds compiling it
NO_NUL_SCHEMA = {"not": {"pattern": r"\x00"}}


def text(max_length: int, min_length: int = 0, **kwargs: Any):
    """A string of bounded length without NUL characters (which PostgreSQL text cannot hold)."""
    return Annotated[str, Field(min_length=min_length, max_length=max_length, json_schema_extra=NO_NUL_SCHEMA,
                                **kwargs), AfterValidator(_no_nul)]


def _no_spoofing(value: str) -> str:
    try:
        return refuse_spoofing_characters(value, field="")
    except TextRuleError as exc:
        raise ValueError(exc.message) from None


def display_text(max_length: int, min_length: int = 0, **kwargs: Any):
    """`text`, for names and summaries that others read: no bidirectional controls or zero-width
    characters either (see app.services.text_rules)."""
    schema = {"not": {"pattern": "[\\x00" + SPOOFING_PATTERN[1:]}}
    return Annotated[str, Field(min_length=min_length, max_length=max_length, json_schema_extra=schema, **kwargs),
                     AfterValidator(_no_nul), AfterValidator(_no_spoofing)]


class In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# --- errors ----------------------------------------------------------------------------------------

class FieldError(BaseModel):
    field: str = Field(description="The input that was wrong: a body field, query parameter or header.")
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldError] | None = None


class ValidationProblem(Problem):
    """A request that does not match its schema: 422 with one entry per wrong field."""


# --- organizations ------------------------------------------------------------------------------------

class OrganizationOut(Out):
    id: int
    name: str
    slug: str
    is_personal: bool
    role: MemberRoleName | None = Field(None, description="The caller's role in it.")
    created_at: datetime


class OrganizationList(Out):
    items: list[OrganizationOut]


class OrganizationCreate(In):
    name: display_text(120, 1)


class MemberOut(Out):
    user_id: int
    email: str
    name: str
    role: MemberRoleName
    joined_at: datetime


class MemberList(Out):
    items: list[MemberOut]


class MemberAdd(In):
    email: text(254, 3)
    role: MemberRoleName = "member"


class MemberRoleChange(In):
    role: MemberRoleName


class InvitationCreate(In):
    email: text(254, 3)
    role: MemberRoleName = "member"


class InvitationOut(Out):
    id: int
    organization_id: int
    email: str
    role: MemberRoleName
    sent_at: datetime
    expires_at: datetime


class InvitationList(Out):
    items: list[InvitationOut]


class InvitationAccept(In):
    token: text(500, 1)


# --- offerings -------------------------------------------------------------------------------------

class PublisherOut(Out):
    id: int
    name: str
    slug: str


class PlanOut(Out):
    id: int
    tier: str
    name: str
    sku: str
    price_minor: int
    currency: str
    interval: str
    included_credits: int
    credits_per_run: int
    credits_per_1k_units: int = Field(description="Extra credits per 1,000 characters (built-in runtime) or "
                                                  "tokens (Langflow) a run uses; 0: a flat price per run.")
    max_runs_per_period: int | None
    features: list[str]


class VersionOut(Out):
    id: int
    version: str
    changelog: str
    runtime_kind: str
    runtime_ref: str | None = Field(None, description="Shown to the publisher and operators only.")
    output_component: str | None = Field(None, description="Langflow: the output component a run reads. Shown to "
                                                           "the publisher and operators only.")
    tweaks: dict[str, dict[str, Any]] | None = Field(
        None, description="Langflow: {component id: {field: value}} sent with every run. Shown to the publisher and "
                          "operators only.")
    created_at: datetime


class OfferingOut(Out):
    id: int
    slug: str
    name: str
    summary: str
    description_md: str
    category: str
    status: str
    featured: bool
    publisher: PublisherOut
    facets: dict[str, list[str]]
    trial_days: int
    trial_credits: int
    published_at: datetime | None
    review_note: str | None = Field(None, description="Shown to the publisher and operators only.")
    versions: list[VersionOut]
    plans: list[PlanOut]


class OfferingList(Out):
    items: list[OfferingOut]
    page: int
    per_page: int
    total: int


FacetSlug = text(64, 1)


class OfferingQuery(BaseModel):
    q: text(200) | None = Field(None, description="Words in the name or summary.")
    category: text(32) | None = None
    outcome: FacetSlug | None = None
    role: FacetSlug | None = None
    capability: FacetSlug | None = None
    pricing: FacetSlug | None = None
    publisher: FacetSlug | None = Field(None, description="Publisher organization slug.")
    sort: Literal["relevance", "newest", "price_asc", "price_desc", "name", "rating"] = Field(
        "relevance", description="`rating`: the best average of reviews first (not with the Saleor commerce backend).")
    min_rating: int | None = Field(None, ge=1, le=4, description="Only offerings rated this many stars and up "
                                                                  "on average (not with the Saleor commerce backend).")
    status: Literal["draft", "in_review", "published", "archived"] = Field(
        "published", description="Anything but published is for operators only.")
    page: int = Field(1, ge=1, le=10_000)
    per_page: int = Field(20, ge=1, le=100)


class OfferingCreate(In):
    publisher_id: Id | None = Field(None, description="Defaults to the caller's current organization.")
    name: display_text(120, 1)
    summary: display_text(280, 1)
    description_md: text(20_000) = ""
    category: text(32, 1)
    facets: dict[text(16, 1), list[FacetSlug]] = Field(default_factory=dict, max_length=6)
    trial_days: Annotated[int, Field(ge=0, le=365, strict=True)] = 0
    trial_credits: Credits = 0
    slug: text(140) | None = None


class OfferingUpdate(In):
    name: display_text(120, 1) | None = None
    summary: display_text(280, 1) | None = None
    description_md: text(20_000) | None = None
    category: text(32, 1) | None = None
    facets: dict[text(16, 1), list[FacetSlug]] | None = Field(None, max_length=6)
    trial_days: Annotated[int, Field(ge=0, le=365, strict=True)] | None = None
    trial_credits: Credits | None = None
    slug: text(140) | None = None


class VersionCreate(In):
    """Publishing a version checks its runtime reference first: the built-in agent exists, or the Langflow
    flow exists with a Chat Input and a Chat Output (and the output component and tweaks name what it has).
    A missing one is a 400 naming the field; a Langflow that cannot be asked is a 503 ("could not check")."""

    version: text(32, 1) = Field(description="MAJOR.MINOR.PATCH, above the latest version of its major line (a new "
                                             "major line starts above every version).")
    changelog: text(5_000) = ""
    runtime_kind: Literal["builtin", "langflow"] = "builtin"
    runtime_ref: text(200, 1) = Field(description="A built-in agent, or a Langflow flow id (or endpoint name).")
    output_component: text(200, 1) | None = Field(None, description="Langflow: which output a run reads.")
    tweaks: dict[str, dict[str, Any]] | None = Field(
        None, description="Langflow: {component id: {field: value}}. Fields that hold code (e.g. `code`) are refused.")


class PlanSet(In):
    name: display_text(60, 1)
    price_minor: Annotated[int, Field(ge=0, le=100_000_000, strict=True)]
    currency: text(3, 3)
    included_credits: Credits = 0
    credits_per_run: Credits = 1
    max_runs_per_period: Annotated[int, Field(ge=1, le=10_000_000, strict=True)] | None = None
    max_concurrent_runs: Annotated[int, Field(ge=1, le=10_000, strict=True)] | None = Field(
        default=None, description="Runs in progress at once per instance; omitted: unchanged (8 for a new plan).")
    max_concurrent_runs_per_wallet: Annotated[int, Field(ge=1, le=10_000, strict=True)] | None = Field(
        default=None, description="Runs in progress at once per buyer organization; omitted: unchanged (32 for a "
                                  "new plan).")
    features: text(2_000) = ""


class RejectBody(In):
    reason: text(2_000, 1)


# --- reviews ---------------------------------------------------------------------------------------

Stars = Annotated[int, Field(ge=1, le=5, strict=True, description="1 to 5 stars.")]


class ReviewReplyOut(Out):
    body: str
    replied_at: datetime | None


class ReviewOut(Out):
    id: int
    offering_id: int
    organization_id: int
    author_name: str
    reviewer: Literal["buyer", "trial"] = Field(
        description="`buyer`: the organization subscribed (shown as “Verified buyer”); `trial`: it only tried "
                    "the offering (“Trial user”).")
    rating: int
    title: str
    body: str
    created_at: datetime
    updated_at: datetime | None
    helpful_count: int
    reply: ReviewReplyOut | None
    hidden_at: datetime | None = Field(None, description="Operators only: when the review was hidden.")
    hidden_reason: str | None = Field(None, description="Operators only: why.")


class RatingSummaryOut(Out):
    average: float | None = Field(description="Of the visible reviews, to one decimal; null without reviews.")
    count: int
    distribution: dict[str, int] = Field(description="How many reviews gave each number of stars, \"1\" to \"5\".")


class ReviewList(Out):
    summary: RatingSummaryOut
    items: list[ReviewOut]
    page: int
    per_page: int
    total: int


class ReviewQuery(BaseModel):
    sort: Literal["newest", "helpful"] = "newest"
    page: int = Field(1, ge=1, le=10_000)
    per_page: int = Field(20, ge=1, le=100)


class ReviewCreate(In):
    rating: Stars
    title: display_text(120, 1)
    body: text(5_000, 1)


class ReviewUpdate(In):
    rating: Stars | None = None
    title: display_text(120, 1) | None = None
    body: text(5_000, 1) | None = None


class ReviewReplyBody(In):
    body: text(3_000, 1)


class ReviewHideBody(In):
    reason: text(1_000, 1) = Field(description="Mailed to the review's author.")


class HelpfulOut(Out):
    counted: bool = Field(description="False when this person had marked the review helpful already.")
    helpful_count: int


# --- instances and keys -----------------------------------------------------------------------------

class OfferingRef(Out):
    id: int
    slug: str
    name: str


class PlanRef(Out):
    id: int
    tier: str
    name: str
    sku: str


class VersionNote(Out):
    version: str
    changelog: str


class InstanceOut(Out):
    id: int
    organization_id: int
    offering: OfferingRef
    plan: PlanRef
    version: str | None
    status: Literal["active", "suspended", "cancelled", "expired", "past_due"]
    is_trial: bool
    trial_ends_at: datetime | None
    period_start: datetime
    created_at: datetime
    cancelled_at: datetime | None
    pinned: bool = Field(False, description="`version` is what its runs use now: the pinned version when true, "
                                            "otherwise the latest of its major line (unpin with POST …/follow).")
    upgrade_available: VersionNote | None = Field(
        None, description="A newer major version, offered: accept it with POST …/upgrade {\"version\": …}.")


class InstanceList(Out):
    items: list[InstanceOut]


class InstanceQuery(BaseModel):
    organization_id: QueryId | None = None
    status: Literal["active", "suspended", "cancelled", "expired", "past_due"] | None = None


class VersionPin(In):
    version: text(32, 1) | None = Field(None, description="A version of the same major line; default: the one it "
                                                          "runs now.")


class VersionUpgrade(In):
    version: text(32, 1) = Field(description="The version offered in `upgrade_available`.")


class TrialStart(In):
    offering_id: Id


class EntitlementsOut(Out):
    instance_id: int
    status: str
    plan_tier: str
    included_credits: int
    credits_per_run: int
    credits_per_1k_units: int = Field(description="Extra credits per 1,000 characters (built-in runtime) or "
                                                  "tokens (Langflow) a run uses; 0: a flat price per run.")
    max_credits_per_run: int
    max_runs_per_period: int | None
    credits_available: int
    runs_this_period: int
    period_start: datetime
    period_end: datetime
    is_trial: bool
    trial_ends_at: datetime | None
    may_run: bool
    reason: Literal["instance_suspended", "instance_cancelled", "instance_expired", "instance_past_due",
                    "trial_ended", "run_limit_reached", "insufficient_credits"] | None
    cancel_at_period_end: bool = Field(description="The subscription ends at period_end instead of renewing.")
    next_charge_at: datetime | None = Field(description="When the subscription is charged next; null when it "
                                                        "will not renew.")
    next_charge_minor: int | None = Field(description="What it is charged then, in minor units of currency.")
    currency: str
    next_plan_tier: str | None = Field(description="The plan it renews on (differs after a downgrade).")


class ApiKeyUsageOut(Out):
    runs: int = Field(description="Runs this calendar month (UTC).")
    credits: int = Field(description="Credits charged this month, plus what runs in progress hold.")
    errors: int = Field(description="Failed runs this month.")
    p50_latency_ms: int | None = Field(description="Median run duration this month; null before the first run.")


class ApiKeyOut(Out):
    id: int
    name: str
    prefix: str
    scopes: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    rate_limit: str | None = Field(description="Requests this key may make (\"60 per minute\"); null: the "
                                               "platform's default rate for keys.")
    monthly_credit_quota: int | None = Field(
        description="The most credits this key's runs may use in a calendar month (UTC), counting what runs in "
                    "progress hold; a run that would go past it is refused with 402 before anything is held. "
                    "null: no quota.")
    usage: ApiKeyUsageOut | None = Field(default=None, description="This month's usage (in the list of keys).")


class ApiKeyCreated(ApiKeyOut):
    secret: str = Field(description="The key. It is shown this once and cannot be retrieved again.")


class ApiKeyList(Out):
    items: list[ApiKeyOut]


class NameIn(In):
    name: text(80, 1)


class ApiKeyLimitsIn(In):
    rate_limit: text(40) | None = Field(default=None, description="Requests per period, e.g. \"60 per minute\"; "
                                                                    "null or empty: the default rate.")
    monthly_credit_quota: Annotated[int, Field(ge=1, le=MAX_CREDITS, strict=True)] | None = Field(
        default=None, description="Credits per calendar month (UTC); null: no quota.")


class ApiKeyCreate(ApiKeyLimitsIn):
    name: text(80, 1)


# --- personal access tokens ----------------------------------------------------------------------

class TokenOut(Out):
    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="The token. It is shown this once and cannot be retrieved again.")


class TokenList(Out):
    items: list[TokenOut]


class TokenCreate(In):
    name: text(80, 1)
    expires_in_days: Annotated[int, Field(ge=1, le=366, strict=True)] | None = None


# --- wallets and billing -------------------------------------------------------------------------

class WalletOut(Out):
    organization_id: int
    balance: int
    held: int
    available: int
    low_balance_threshold: int | None


class WalletSettingsIn(In):
    low_balance_threshold: Annotated[int, Field(ge=1, le=10_000_000, strict=True)] | None = Field(
        description="Notify when the balance falls below this many credits; null switches it off.")


class LedgerEntryOut(Out):
    id: int
    kind: str
    amount: int
    held_delta: int
    balance_after: int
    hold_id: int | None
    instance_id: int | None
    reference: str | None
    description: str | None = None  # the entry in words, as the Billing & Credits page shows it
    created_at: datetime


class LedgerPage(Out):
    items: list[LedgerEntryOut]
    next_cursor: str | None


Cursor = Annotated[str, Field(pattern=r"^[1-9][0-9]{0,11}$", description="The next_cursor of the previous page.")]


class CursorQuery(BaseModel):
    cursor: Cursor | None = None
    limit: int = Field(50, ge=1, le=200)


class AuthorizeIn(In):
    instance_id: Id
    amount: PositiveCredits
    idempotency_key: IdempotencyKey
    ttl_seconds: Annotated[int, Field(ge=1, le=86_400, strict=True)] = 300


class SettleIn(In):
    hold_id: Id
    amount: Credits
    idempotency_key: IdempotencyKey


class ReleaseIn(In):
    hold_id: Id
    idempotency_key: IdempotencyKey | None = None


class HoldOut(Out):
    id: int
    instance_id: int | None
    amount: int
    captured: int
    status: Literal["active", "settled", "released", "expired"]
    expires_at: datetime
    created_at: datetime
    closed_at: datetime | None


# --- connectors ------------------------------------------------------------------------------------

ConfigValue = text(1000) | int | bool | None


class BindingCreate(In):
    instance_id: Id
    kind: text(40, 2)
    config: dict[text(64, 1), ConfigValue] = Field(
        default_factory=dict, max_length=30)
    secret: text(10_000, 1) | None = Field(None, description="Stored through the secrets port; never returned.")


class BindingOut(Out):
    id: int
    organization_id: int
    instance_id: int
    kind: str
    config: dict[str, Any]
    has_secret: bool
    status: Literal["active", "revoked"]
    created_at: datetime
    revoked_at: datetime | None


class BindingList(Out):
    items: list[BindingOut]


class BindingQuery(BaseModel):
    instance_id: QueryId | None = None
    organization_id: QueryId | None = None


# --- audit -----------------------------------------------------------------------------------------

class AuditEventOut(Out):
    id: int
    action: str
    actor_label: str
    actor_user_id: int | None
    target_type: str
    target_id: str | None
    organization_id: int | None
    data: dict[str, Any]
    description: str = Field(description="What happened, as a sentence (amounts in money, credits as numbers).")
    created_at: datetime


class AuditPage(Out):
    items: list[AuditEventOut]
    next_cursor: str | None


class AuditQuery(BaseModel):
    organization_id: QueryId | None = Field(
        None, description="Operators: any organization or all when absent. Others: one they administer "
                          "(default: the current organization).")
    action: text(64) | None = None
    cursor: Cursor | None = None
    limit: int = Field(50, ge=1, le=200)


# --- health ----------------------------------------------------------------------------------------

class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    database: dict[str, str]


class LiveOut(BaseModel):
    status: Literal["ok"]


class ReadyOut(BaseModel):
    status: Literal["ok", "unavailable"]
    database: Literal["ok", "unavailable"]
    migrations: Literal["current", "behind", "unknown"]
    current: list[str] | None = None
    expected: list[str] | None = None
    error: str | None = None

"""The rules every offering field obeys: limits, vocabularies, the cleaning of each input, and who
may write a listing. The writing modules share them; `OfferingError` names the field that was wrong."""
from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import CATEGORIES, Membership, Offering, OfferingStatus, Role, User
from app.services.errors import ServiceError
from app.services.text_rules import refuse_spoofing_characters



# Groups the seller picks from; category and publisher follow from the offering itself, and
# "free-trial" pricing follows from the trial terms, so the catalog can never contradict them.
SELLER_FACET_GROUPS = ("outcome", "role", "capability", "pricing")
DERIVED_PRICING = "free-trial"
RUNTIME_KINDS = ("builtin", "langflow")
EDITABLE_FIELDS = frozenset(
    {"name", "summary", "description_md", "category", "facets", "trial_days", "trial_credits", "slug"}
)

NAME_MAX, SUMMARY_MAX, DESCRIPTION_MAX, SLUG_MAX = 120, 280, 20_000, 140
CHANGELOG_MAX, REASON_MAX, FEATURES_MAX, PLAN_NAME_MAX = 5_000, 2_000, 2_000, 60
TRIAL_DAYS_MAX, TRIAL_CREDITS_MAX = 90, 100_000
PRICE_MAX = 100_000_000  # one million in a two-decimal currency: a typo guard, not a business limit
CREDITS_MAX = 10_000_000

SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
SEMVER_RE = re.compile(r"^(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})$")
RUNTIME_REF_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$")
MARKUP_RE = re.compile(r"[<>]|&(?:#\d+|#x[0-9a-fA-F]+|[A-Za-z]+);")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")

# An offering's product in the commerce backend (Saleor): in step, to refresh, or last push failed.
SYNC_SYNCED, SYNC_PENDING, SYNC_FAILED = "synced", "pending", "failed"
SYNC_ERROR_MAX = 2_000

# ISO 4217 active currency codes (funds and precious-metal codes left out: nobody prices a plan in them).
ISO_4217 = frozenset("""
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD CAD CDF
CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD
HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD
MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN
PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP
TRY TTD TWD TZS UAH UGX USD UYU UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
""".split())


class OfferingError(ServiceError):
    """A publishing rule was broken; the message is safe to show the seller."""


class OfferingNotFound(OfferingError):
    """No such offering, or not one of the user's publishers (the same answer, so nothing leaks)."""

    def __init__(self, message: str = "Offering not found.") -> None:
        super().__init__(message)


def _require_member(session: Session, user: User, organization_id: int) -> None:
    """Listings are written by members of their publisher, and by operators (who curate them all)."""
    if user.has_role(Role.OPERATOR):
        return
    found = session.scalar(
        select(Membership.id).where(Membership.user_id == user.id, Membership.organization_id == organization_id)
    )
    if found is None:
        raise OfferingNotFound()


def _require_operator(user: User) -> None:
    if not user.has_role(Role.OPERATOR):
        raise OfferingError("Only operators review offerings.")


def _require_status(offering: Offering, allowed: set[OfferingStatus], message: str) -> None:
    if offering.status not in {s.value for s in allowed}:
        raise OfferingError(message)


def _clean_name(name: str) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise OfferingError("Give the offering a name.", field="name")
    if len(name) > NAME_MAX:
        raise OfferingError(f"Use at most {NAME_MAX} characters.", field="name")
    if MARKUP_RE.search(name) or CONTROL_RE.search(name):
        raise OfferingError("Use plain text: no HTML or special characters like < and >.", field="name")
    if not re.search(r"\w", name):
        raise OfferingError("Use at least one letter or digit.", field="name")
    refuse_spoofing_characters(name, field="name", error=OfferingError)
    return name


def _clean_multiline(text: str | None, limit: int, field: str) -> str:
    """Free text kept as written (line breaks and tabs allowed), without other control characters."""
    text = (text or "").replace("\r\n", "\n").strip()
    if len(text) > limit:
        raise OfferingError(f"Use at most {limit:,} characters.", field=field)
    if CONTROL_RE.search(text.replace("\n", "").replace("\t", "")):
        raise OfferingError("Remove the control characters.", field=field)
    return text


def _clean_summary(summary: str) -> str:
    summary = " ".join((summary or "").split())
    if not summary:
        raise OfferingError("Write a one-line summary for the catalog card.", field="summary")
    if len(summary) > SUMMARY_MAX:
        raise OfferingError(f"Use at most {SUMMARY_MAX} characters.", field="summary")
    if MARKUP_RE.search(summary) or CONTROL_RE.search(summary):
        raise OfferingError("Use plain text: no HTML or special characters like < and >.", field="summary")
    refuse_spoofing_characters(summary, field="summary", error=OfferingError)
    return summary


def _clean_description(description_md: str) -> str:
    text = (description_md or "").replace("\r\n", "\n").strip()
    if len(text) > DESCRIPTION_MAX:
        raise OfferingError(f"Use at most {DESCRIPTION_MAX:,} characters.", field="description_md")
    if CONTROL_RE.search(text.replace("\n", "").replace("\t", "")):
        raise OfferingError("Remove the control characters from the description.", field="description_md")
    return text


def _clean_category(category: str) -> str:
    if category not in CATEGORIES:
        raise OfferingError(f"Choose one of: {', '.join(CATEGORIES)}.", field="category")
    return category


def _clean_trial(trial_days: Any, trial_credits: Any) -> tuple[int, int]:
    days = _int_in_range(trial_days, "trial_days", 0, TRIAL_DAYS_MAX,
                         f"Give between 0 and {TRIAL_DAYS_MAX} days.")
    credits_ = _int_in_range(trial_credits, "trial_credits", 0, TRIAL_CREDITS_MAX,
                             f"Give between 0 and {TRIAL_CREDITS_MAX:,} credits.")
    if days == 0 and credits_:
        raise OfferingError("Trial credits need trial days; set the days or clear the credits.",
                            field="trial_credits")
    return days, credits_


def _clean_slug(session: Session, slug: Any, *, exclude_offering_id: int | None) -> str:
    slug = str(slug or "").strip().lower()
    if not slug or len(slug) > SLUG_MAX or not SLUG_RE.match(slug):
        raise OfferingError(
            f"Use lowercase letters, digits and single hyphens, up to {SLUG_MAX} characters.", field="slug"
        )
    if _slug_taken(session, slug, exclude_offering_id):
        raise OfferingError("Another offering already uses this address.", field="slug")
    return slug


def _slug_taken(session: Session, slug: str, exclude_offering_id: int | None) -> bool:
    query = select(Offering.id).where(Offering.slug == slug)
    if exclude_offering_id is not None:
        query = query.where(Offering.id != exclude_offering_id)
    return session.scalar(query) is not None


def _int_in_range(value: Any, field: str, low: int, high: int, message: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = int(str(value).strip())
        except (TypeError, ValueError):
            raise OfferingError("Enter a whole number.", field=field) from None
    if value < low or value > high:
        raise OfferingError(message if value < low else f"Use at most {high:,}.", field=field)
    return value


def _mark_sync_pending(offering: Offering) -> None:
    # Only offerings that have been sent to the commerce backend before have something to refresh.
    if offering.sync_status is not None:
        offering.sync_status = SYNC_PENDING
        offering.sync_error = None

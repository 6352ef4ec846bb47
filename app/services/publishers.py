"""Publishers: becoming one (the application with the seller terms), an operator's decision on it, the
public profile behind the vendor page, and the rule that only an approved publisher submits for review.

An organization without a PublisherProfile predates self-serve onboarding (set up by an operator, or by a
seller who already had the seller role): it publishes as before, without the verified badge.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import (
    FacetValue, MemberRole, Membership, Offering, OfferingStatus, Organization, PublisherProfile, PublisherStatus, Role, SellerTerms, SellerTermsAcceptance,
    User, utcnow,
)
from app.services import audit, identity, mail
from app.services.errors import ServiceError
from app.services.text_rules import refuse_spoofing_characters

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,58}[a-z0-9])?$")
RESERVED_SLUGS = frozenset({"admin", "api", "operator", "seller", "sellers", "digitlify", "support", "static", "media"})
DESCRIPTION_MAX = 2000
REASON_MAX = 1000
MANAGER_ROLES = (MemberRole.OWNER.value, MemberRole.ADMIN.value)

# The seller terms in force. A change of wording is a new version: the old one stays stored, and so
# does who accepted it.
SELLER_TERMS_VERSION = "2026-12"
SELLER_TERMS_MD = """\
## Seller terms

1. **Your listings are yours to stand behind.** You describe each offering truthfully, keep its
   description, plans and versions current, and support the buyers who subscribe to it at the support
   address on your vendor page.
2. **Review before publication.** Every offering is reviewed by the marketplace team before it appears in
   the catalog, and again when you change it in ways buyers would notice. We may send a listing back with a
   note, or take down one that breaks these terms.
3. **Buyers' data.** You use what you learn about buyers only to provide and support your offering, and
   you keep credentials buyers connect to your agents secret.
4. **Payments.** Buyers pay the marketplace. Your share of each sale, less the platform fee shown in the
   seller console, is paid out to your publisher organization.
5. **Images and text.** You upload only images and text you have the right to use.
6. **Changes.** When these terms change, you are asked to accept the new version before your next
   submission.
"""


class PublisherError(ServiceError):
    """A publishing rule was broken; the message is safe to show beside `field`."""

    status = 422


class PublisherNotFound(PublisherError):
    def __init__(self, message: str = "We couldn't find that publisher.") -> None:
        super().__init__(message, status=404)


@dataclass(frozen=True)
class PublisherDetails:
    """The first step of the application, checked: what the organization and its profile will hold."""

    name: str
    slug: str
    website: str
    support_email: str
    description: str = ""
    logo_key: str | None = None

    def as_dict(self) -> dict:
        return {"name": self.name, "slug": self.slug, "website": self.website, "support_email": self.support_email,
                "description": self.description, "logo_key": self.logo_key}


# --- checks ------------------------------------------------------------------------------------

def _clean_name(name: str | None) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise PublisherError("Give your publisher organization a name.", field="name")
    if len(name) > 120:
        raise PublisherError("Use at most 120 characters for the name.", field="name")
    refuse_spoofing_characters(name, field="name", error=PublisherError)
    return name


def clean_website(url: str | None, *, required: bool = True) -> str:
    url = (url or "").strip()
    if not url:
        if required:
            raise PublisherError("Enter your website, starting with https://.", field="website")
        return ""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or "." not in parts.hostname or len(url) > 300:
        raise PublisherError("Enter a web address starting with https://, like https://example.com.", field="website")
    return url


def clean_support_email(address: str | None) -> str:
    address = (address or "").strip()
    if not address:
        raise PublisherError("Enter the address buyers can write to for support.", field="support_email")
    try:
        return validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError:
        raise PublisherError("Enter an email address like support@example.com.", field="support_email") from None


def _clean_description(text: str | None) -> str:
    text = (text or "").strip()
    if len(text) > DESCRIPTION_MAX:
        raise PublisherError(f"Keep the description under {DESCRIPTION_MAX} characters.", field="description")
    return text


def check_slug(session: Session, slug: str | None, *, exclude_organization_id: int | None = None) -> str:
    slug = (slug or "").strip().lower()
    if not slug:
        raise PublisherError("Choose the address of your vendor page.", field="slug")
    if not SLUG_RE.match(slug):
        raise PublisherError("Use 1 to 60 lowercase letters, digits and hyphens, starting and ending with a "
                             "letter or digit.", field="slug")
    if slug in RESERVED_SLUGS:
        raise PublisherError("That address is reserved. Choose another.", field="slug")
    query = select(Organization.id).where(Organization.slug == slug)
    if exclude_organization_id is not None:
        query = query.where(Organization.id != exclude_organization_id)
    if session.scalar(query) is not None:
        raise PublisherError("That address is taken. Choose another.", field="slug")
    return slug


def check_publisher_details(session: Session, *, name: str | None, slug: str | None, website: str | None,
                            support_email: str | None, description: str | None = None,
                            logo_key: str | None = None) -> PublisherDetails:
    """Step one of becoming a publisher: every field checked, nothing stored yet."""
    return PublisherDetails(
        name=_clean_name(name), slug=check_slug(session, slug), website=clean_website(website),
        support_email=clean_support_email(support_email), description=_clean_description(description),
        logo_key=logo_key,
    )


def suggest_slug(session: Session, name: str) -> str:
    base = identity.slugify(name or "", 60) or "publisher"
    return base if session.scalar(select(Organization.id).where(Organization.slug == base)) is None else ""


# --- the terms ---------------------------------------------------------------------------------

def current_terms(session: Session) -> SellerTerms:
    """The seller terms in force, stored on first use so every acceptance points at the exact text."""
    terms = session.scalar(select(SellerTerms).where(SellerTerms.version == SELLER_TERMS_VERSION))
    if terms is None:
        terms = SellerTerms(version=SELLER_TERMS_VERSION, body_md=SELLER_TERMS_MD, published_at=utcnow())
        session.add(terms)
        session.flush()
    return terms


def acceptances_of(session: Session, *, organization_id: int) -> list[SellerTermsAcceptance]:
    return list(session.scalars(select(SellerTermsAcceptance).where(
        SellerTermsAcceptance.organization_id == organization_id).order_by(SellerTermsAcceptance.accepted_at)))


# --- applying ----------------------------------------------------------------------------------

def open_application(session: Session, *, user: User) -> PublisherProfile | None:
    """The user's publisher application still waiting for an operator, if any."""
    return session.scalar(
        select(PublisherProfile)
        .join(Membership, Membership.organization_id == PublisherProfile.organization_id)
        .where(Membership.user_id == user.id, PublisherProfile.status == PublisherStatus.PENDING.value)
        .order_by(PublisherProfile.id.desc()).limit(1)
    )


def last_declined(session: Session, *, user: User) -> PublisherProfile | None:
    """The user's most recent application that an operator declined (shown when they apply again)."""
    return session.scalar(
        select(PublisherProfile).where(PublisherProfile.applied_by_user_id == user.id,
                                       PublisherProfile.status == PublisherStatus.DECLINED.value)
        .order_by(PublisherProfile.decided_at.desc(), PublisherProfile.id.desc()).limit(1)
    )


def apply_as_publisher(session: Session, *, user: User, details: PublisherDetails, terms_version: str,
                       accepted: bool) -> PublisherProfile:
    """Create the publisher organization (the user its owner), its profile waiting for approval, and the
    record that the user accepted this version of the seller terms for it."""
    if not accepted:
        raise PublisherError("Accept the seller terms to continue.", field="accept")
    terms = current_terms(session)
    if terms_version != terms.version:
        raise PublisherError("The seller terms changed while you were reading them. Read the new version and "
                             "accept it.", field="accept", status=409)
    if open_application(session, user=user) is not None:
        raise PublisherError("You already have an application waiting for approval.", status=409)
    details = check_publisher_details(
        session, name=details.name, slug=details.slug, website=details.website,
        support_email=details.support_email, description=details.description, logo_key=details.logo_key,
    )
    org = identity.create_organization(session, name=details.name, owner=user)
    org.slug = details.slug
    profile = PublisherProfile(
        organization_id=org.id, status=PublisherStatus.PENDING.value, description=details.description,
        website=details.website, support_email=details.support_email, logo_key=details.logo_key,
        applied_by_user_id=user.id, applied_at=utcnow(),
    )
    session.add(profile)
    session.add(SellerTermsAcceptance(terms_id=terms.id, user_id=user.id, organization_id=org.id,
                                      accepted_at=utcnow()))
    session.flush()
    audit.record(session, action="publisher.applied", target_type="organization", target_id=org.id,
                 organization_id=org.id, actor=user, data={"terms_version": terms.version})
    return profile


# --- who may do what ---------------------------------------------------------------------------

def profile_of(session: Session, *, organization_id: int) -> PublisherProfile | None:
    return session.scalar(select(PublisherProfile).where(PublisherProfile.organization_id == organization_id))


def statuses_of(session: Session, *, organization_ids: list[int]) -> dict[int, str]:
    """The application status of each of these organizations that has a publisher profile."""
    if not organization_ids:
        return {}
    return dict(session.execute(select(PublisherProfile.organization_id, PublisherProfile.status).where(
        PublisherProfile.organization_id.in_(organization_ids))).tuples().all())


def has_publisher_access(session: Session, *, user: User) -> bool:
    """Whether the seller console is open to the user: the seller role, or a publisher application of theirs
    (they prepare drafts while it waits)."""
    if user.has_role(Role.SELLER):
        return True
    return session.scalar(
        select(PublisherProfile.id)
        .join(Membership, Membership.organization_id == PublisherProfile.organization_id)
        .where(Membership.user_id == user.id, PublisherProfile.status != PublisherStatus.DECLINED.value).limit(1)
    ) is not None


def may_prepare_drafts(session: Session, *, organization_id: int) -> bool:
    """Whether members of this organization may write drafts without the seller role: it applied to publish
    and was not declined (membership is the caller's check)."""
    profile = profile_of(session, organization_id=organization_id)
    return profile is not None and profile.status != PublisherStatus.DECLINED.value


def submit_blocker(session: Session, *, organization_id: int, actor: User) -> str | None:
    """Why the publisher cannot submit offerings for review yet (None when it can)."""
    profile = profile_of(session, organization_id=organization_id)
    if profile is None:
        return None if actor.has_role(Role.SELLER) else (
            "Only approved publishers submit offerings for review. Apply to sell on Digitlify first.")
    if profile.status == PublisherStatus.PENDING.value:
        return ("Your publisher application is waiting for an operator's approval. You can keep preparing "
                "drafts, and submit them for review once it is approved.")
    if profile.status == PublisherStatus.DECLINED.value:
        return "Your publisher application was declined, so offerings cannot be submitted for review."
    return None


# --- the operator's decision -------------------------------------------------------------------

def applications(session: Session, *, status: str | None = PublisherStatus.PENDING.value) -> list[PublisherProfile]:
    query = select(PublisherProfile).join(PublisherProfile.organization)
    if status:
        query = query.where(PublisherProfile.status == status)
    return list(session.scalars(query.order_by(PublisherProfile.applied_at, PublisherProfile.id)))


def _managers(session: Session, organization_id: int) -> list[User]:
    return list(session.scalars(
        select(User).join(Membership, Membership.user_id == User.id)
        .where(Membership.organization_id == organization_id, Membership.role.in_(MANAGER_ROLES),
               User.is_active.is_(True)).order_by(User.id)
    ))


def decide_application(session: Session, *, profile: PublisherProfile, actor: User, approve: bool,
                       reason: str | None = None) -> PublisherProfile:
    """Approve (the applicant and the organization's owners and admins get the seller role) or decline with a
    reason. Audited; the applicant is mailed either way."""
    if not actor.has_role(Role.OPERATOR):
        raise PublisherError("Only operators decide on publisher applications.", status=403)
    if profile.status != PublisherStatus.PENDING.value:
        raise PublisherError("This application was already decided.", status=409)
    reason = (reason or "").strip()
    if not approve and not reason:
        raise PublisherError("Tell the applicant why, so they know what to change.", field="reason")
    if len(reason) > REASON_MAX:
        raise PublisherError(f"Keep the reason under {REASON_MAX} characters.", field="reason")
    profile.status = (PublisherStatus.APPROVED if approve else PublisherStatus.DECLINED).value
    profile.decided_by_user_id = actor.id
    profile.decided_at = utcnow()
    profile.decision_reason = reason or None
    sellers = _managers(session, profile.organization_id) if approve else []
    for user in sellers:
        if not user.has_role(Role.SELLER):
            user.roles = " ".join(sorted({*user.role_list, Role.SELLER.value}))
            audit.record(session, action="user.roles_changed", target_type="user", target_id=user.id, actor=actor,
                         data={"added": Role.SELLER.value, "publisher": profile.organization_id})
    session.flush()
    audit.record(session, action="publisher.approved" if approve else "publisher.declined",
                 target_type="organization", target_id=profile.organization_id,
                 organization_id=profile.organization_id, actor=actor, data={"reason": reason} if reason else None)
    applicant = session.get(User, profile.applied_by_user_id) if profile.applied_by_user_id else None
    if applicant is not None:
        mail.queue_mail(
            session, to=applicant.email, user_id=applicant.id,
            template="publisher_approved" if approve else "publisher_declined",
            dedupe_key=f"publisher-decided:{profile.id}:{profile.status}",
            context={"name": applicant.name, "publisher": profile.organization.name, "reason": reason,
                     "console_url": mail.link("seller.dashboard"),
                     "vendor_url": mail.link("publishers.vendor", slug=profile.organization.slug),
                     "sell_url": mail.link("publishers.sell")},
        )
    return profile


# --- the profile -------------------------------------------------------------------------------

def update_profile(session: Session, *, organization: Organization, actor: User, name: str | None,
                   description: str | None, website: str | None, support_email: str | None,
                   logo_key: str | None = None) -> tuple[PublisherProfile, str | None]:
    """Edit the vendor page (owners and admins of the publisher). Returns the profile and the key of a
    replaced logo, for the caller to discard after the commit."""
    member = identity.membership(session, user=actor, organization_id=organization.id)
    if member is None or member.role not in MANAGER_ROLES:
        raise PublisherError("Only owners and admins of the publisher edit its profile.", status=403)
    name = _clean_name(name)
    profile = profile_of(session, organization_id=organization.id)
    if profile is None:  # a publisher from before onboarding: its profile starts now, already approved
        profile = PublisherProfile(organization_id=organization.id, status=PublisherStatus.APPROVED.value,
                                   applied_at=utcnow(), description="", website="", support_email="")
        session.add(profile)
    profile.description = _clean_description(description)
    profile.website = clean_website(website, required=False)
    profile.support_email = clean_support_email(support_email) if (support_email or "").strip() else ""
    old_logo = None
    if logo_key is not None and logo_key != profile.logo_key:
        old_logo, profile.logo_key = profile.logo_key, logo_key
    if organization.name != name:
        organization.name = name
        facet = session.scalar(select(FacetValue).where(FacetValue.group == "publisher",
                                                        FacetValue.slug == organization.slug))
        if facet is not None:  # the publisher filter in search shows the new name too
            facet.label = name[:80]
    session.flush()
    audit.record(session, action="publisher.profile_updated", target_type="organization", target_id=organization.id,
                 organization_id=organization.id, actor=actor)
    return profile, old_logo


@dataclass(frozen=True)
class Vendor:
    organization: Organization
    profile: PublisherProfile | None

    @property
    def verified(self) -> bool:
        return self.profile is not None and self.profile.is_approved


def get_vendor(session: Session, *, slug: str) -> Vendor:
    """A publisher's public page: any organization with a published offering, or an approved profile.
    Pending and declined applicants and plain teams are not found."""
    org = session.scalar(select(Organization).where(Organization.slug == slug, Organization.is_personal.is_(False)))
    if org is None:
        raise PublisherNotFound()
    profile = profile_of(session, organization_id=org.id)
    if profile is not None and profile.is_approved:
        return Vendor(org, profile)
    if profile is None and session.scalar(select(Offering.id).where(
            Offering.publisher_id == org.id, Offering.status == OfferingStatus.PUBLISHED.value).limit(1)) is not None:
        return Vendor(org, None)
    raise PublisherNotFound()

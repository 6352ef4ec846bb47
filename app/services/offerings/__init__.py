"""Publishing rules: sellers create and edit offerings, versions and plans; operators review them.

Every function takes the caller's session, flushes and never commits. Every state change is
written to the audit log. Errors are `OfferingError`s whose message is safe to show the seller
and whose `field` names the input that was wrong.

The package keeps one public surface (import from `app.services.offerings`); its modules follow
the lines of the work:
- `rules`: limits, vocabularies, input cleaning, who may write a listing, the errors;
- `reading`: publishers, listings, the review queue, the facet vocabulary, free slugs;
- `rendering`: the description's Markdown as safe HTML;
- `editing`: creating and editing the listing and its facets;
- `versions`: versions (checked against their runtime), plans, and which version an instance runs;
- `review`: submit, approve, reject, archive;
- `sync`: pushing an offering to the commerce backend's catalog (`sync_offering`).
"""
from app.services.offerings.editing import create_offering, update_offering
from app.services.offerings.reading import (
    facet_vocabulary, get_offering_for_seller, get_publisher_for_seller, offerings_of_publisher,
    publisher_organizations, review_queue, suggest_slug,
)
from app.services.offerings.rendering import DESCRIPTION_TAGS, render_description
from app.services.offerings.review import approve, archive, reject, review_blockers, submit_for_review
from app.services.offerings.rules import (
    CHANGELOG_MAX, CONTROL_RE, CREDITS_MAX, DERIVED_PRICING, DESCRIPTION_MAX, EDITABLE_FIELDS, FEATURES_MAX,
    ISO_4217, MARKUP_RE, NAME_MAX, PLAN_NAME_MAX, PRICE_MAX, REASON_MAX, RUNTIME_KINDS, RUNTIME_REF_RE,
    SELLER_FACET_GROUPS, SEMVER_RE, SLUG_MAX, SLUG_RE, SUMMARY_MAX, SYNC_ERROR_MAX, SYNC_FAILED, SYNC_PENDING,
    SYNC_SYNCED, TRIAL_CREDITS_MAX, TRIAL_DAYS_MAX, OfferingError, OfferingNotFound,
)
from app.services.offerings.sync import (
    build_product_data, bump_catalog_generation, catalog_generation, credit_packs_to_sync, offerings_to_sync,
    sync_credit_packs, sync_offering,
)
from app.services.offerings.versions import add_version, latest_version, next_version, parse_semver, set_plan

__all__ = [
    "CHANGELOG_MAX", "CONTROL_RE", "CREDITS_MAX", "DERIVED_PRICING", "DESCRIPTION_MAX", "DESCRIPTION_TAGS",
    "EDITABLE_FIELDS", "FEATURES_MAX", "ISO_4217", "MARKUP_RE", "NAME_MAX", "PLAN_NAME_MAX", "PRICE_MAX",
    "REASON_MAX", "RUNTIME_KINDS", "RUNTIME_REF_RE", "SELLER_FACET_GROUPS", "SEMVER_RE", "SLUG_MAX", "SLUG_RE",
    "SUMMARY_MAX", "SYNC_ERROR_MAX", "SYNC_FAILED", "SYNC_PENDING", "SYNC_SYNCED", "TRIAL_CREDITS_MAX",
    "TRIAL_DAYS_MAX", "OfferingError", "OfferingNotFound",
    "add_version", "approve", "archive", "build_product_data", "bump_catalog_generation", "catalog_generation",
    "credit_packs_to_sync", "sync_credit_packs", "create_offering", "facet_vocabulary",
    "get_offering_for_seller", "get_publisher_for_seller", "latest_version", "next_version", "offerings_of_publisher",
    "offerings_to_sync", "parse_semver", "publisher_organizations", "reject", "render_description",
    "review_blockers", "review_queue", "set_plan", "submit_for_review", "suggest_slug", "sync_offering",
    "update_offering",
]

# which version an instance runs, and the check of a version's agent or flow before it is published
from app.services.offerings.versions import (  # noqa: E402
    PROTECTED_TWEAK_FIELDS, RuntimeChoices, VersionState, check_published_versions, check_runtime_reference,
    clean_tweaks, describe_runtime_reference, follow_updates, pin_version, run_options, runtime_choices,
    upgrade_for_instance, upgrade_instance, version_for_instance, version_state,
)

__all__ += [
    "PROTECTED_TWEAK_FIELDS", "RuntimeChoices", "VersionState", "check_published_versions", "check_runtime_reference",
    "clean_tweaks", "describe_runtime_reference", "follow_updates", "pin_version", "run_options", "runtime_choices",
    "upgrade_for_instance", "upgrade_instance", "version_for_instance", "version_state",
]

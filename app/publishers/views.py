"""Public publisher pages: the vendor page and the stored images it and the catalog show. Becoming a
publisher lives in `onboarding.py`."""
from __future__ import annotations

from flask import Blueprint, abort, render_template, request

from app.adapters.commerce import SearchQuery, get_catalog
from app.adapters.storage import KEY_RE
from app.extensions import db
from app.services import media, publishers
from app.services.offerings import render_description

bp = Blueprint("publishers", __name__)

MEDIA_CACHE = "public, max-age=31536000, immutable"  # the name is the hash of the bytes: it never changes


@bp.get("/vendors/<slug>")
def vendor(slug: str):
    try:
        found = publishers.get_vendor(db.session, slug=slug)
    except publishers.PublisherNotFound:
        abort(404)
    org = found.organization
    result = get_catalog().search(SearchQuery(filters=(("publisher", (org.slug,)),), sort="newest", per_page=48))
    profile = found.profile
    return render_template(
        "publishers/vendor.html", org=org, profile=profile, verified=found.verified, cards=result.items,
        total=result.total,
        description_html=render_description(profile.description) if profile and profile.description else "",
    )


@bp.get("/media/<key>")
def media_file(key: str):
    """A stored image: only our re-encoded PNG, JPEG or WebP files, each under the hash of its bytes, so it
    is cached for a year and never sniffed or run as anything else."""
    if not KEY_RE.match(key):
        abort(404)
    if request.if_none_match and key in request.if_none_match:
        return "", 304, {"Cache-Control": MEDIA_CACHE, "ETag": f'"{key}"'}
    try:
        data = media.read_file(key)
    except media.MediaError:
        abort(503, description="Images can't be loaded right now. Please try again in a minute.")
    if data is None:
        abort(404)
    return data, 200, {
        "Content-Type": media.content_type_of(key),
        "Cache-Control": MEDIA_CACHE,
        "ETag": f'"{key}"',
        "X-Content-Type-Options": "nosniff",
        "Content-Disposition": f'inline; filename="{key}"',
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cross-Origin-Resource-Policy": "same-origin",
    }

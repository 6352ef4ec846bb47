"""Catalog pages rendered once per catalog state, with the visitor's own parts filled in per request.

A catalog page (home, browse, search, product) depends on the catalog and the URL, and on a few
parts that belong to the visitor: the header's cart count and account menu, the CSRF token, the
email-confirmation banner and flash messages. So the page is rendered once with markers where
those parts go (`page_slots` in base.html; `g.csrf_token` holds a marker while it renders, so every
`csrf_token()` and form token on the page is one) and kept in this process under the URL and what
the catalog depends on:

- local catalog: the catalog revision token (`catalog_revision`, replaced in the same transaction
  as any change the pages show: see app/models/catalog.py);
- Saleor: `saleor_generation()` (moved on by the product sync) and at most PAGE_CACHE_SALEOR_TTL
  seconds, for changes made in Saleor itself; and the local revision token, since the ratings,
  reviews and listing images on those pages are ours.

Each request then renders only the per-user blocks of base.html and puts them, and its own CSRF
token, into the kept page. Nothing of one visitor is ever stored; whatever a product page shows per
user beyond these blocks is loaded as an htmx fragment of its own.

Anonymous answers carry `ETag` (the kept page's digest plus this visitor's parts and session token)
and `Last-Modified` (when the catalog last changed) and answer 304 to a matching `If-None-Match` or,
for a visitor with nothing of their own on the page, `If-Modified-Since`; `Cache-Control: private,
no-cache`, since the page carries the visitor's CSRF token. Signed-in answers are `private, no-store`.

The store is a small LRU in process memory: an entry is valid for one revision token, so workers
need not agree on anything, and a hit costs no network round trip or unpickling (a Redis-backed
cache would, for a page that is cheap to rebuild once per worker and catalog change).
"""
from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import wraps

from flask import Flask, current_app, g, request, session
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup

from app.extensions import db
from app.services import catalog as catalog_service

# markers are random per process: catalog text cannot spell one and receive a visitor's token
_NONCE = secrets.token_hex(12)
_MARKER = re.compile(rf"@@{_NONCE}:(\w+)@@")
CSRF_MARK = f"@@{_NONCE}:csrf@@"
SLOTS = ("cart_count", "account_menu", "user_notices")  # blocks of base.html, filled per request
PAGE_SLOTS = {name: Markup(f"@@{_NONCE}:{name}@@") for name in SLOTS}
EXTENSION = "page_cache"


def saleor_generation() -> int:
    """The generation of the Saleor catalog that the product sync moves on after each change it makes
    (0 before the first sync); a Saleor-mode page also lives at most PAGE_CACHE_SALEOR_TTL seconds."""
    from app.services.offerings import catalog_generation

    return catalog_generation(db.session)


@dataclass(frozen=True)
class Dependency:
    """What a kept page is valid for: a token, when it changed (None: unknown), and a maximum age."""

    token: str
    changed_at: datetime | None
    max_age: float | None


@dataclass
class Entry:
    body: str
    digest: str
    last_modified: datetime
    mimetype: str
    stored_at: float
    # the page as every anonymous visitor without a cart or a message sees it, but for the CSRF token
    # (their parts depend on the URL alone): made on the first such request, then only the token changes
    plain: tuple[str, str] | None = None  # (body, digest of the parts)


class PageStore:
    """A thread-safe LRU of rendered pages; entries past their dependency's maximum age are misses."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[tuple, Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: tuple, max_age: float | None) -> Entry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and max_age is not None and time.monotonic() - entry.stored_at > max_age:
                del self._entries[key]
                entry = None
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry

    def put(self, key: tuple, entry: Entry) -> None:
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def init_app(app: Flask) -> None:
    app.extensions[EXTENSION] = PageStore(int(app.config["PAGE_CACHE_ENTRIES"]))
    app.context_processor(_slots_context)


def store_of(app: Flask) -> PageStore:
    return app.extensions[EXTENSION]


def _slots_context() -> dict:
    return {"page_slots": PAGE_SLOTS if g.get("page_cache_rendering") else None}


def dont_keep() -> None:
    """This answer depends on more than the catalog (e.g. popular offerings by subscriptions): serve it,
    filled as usual, but do not keep it."""
    g.page_cache_dont_keep = True


def current_dependency() -> Dependency | None:
    """What the catalog pages depend on right now, or None when there is nothing to key them by."""
    config = current_app.config
    revision = catalog_service.catalog_revision(db.session)
    if config.get("COMMERCE_BACKEND") == "saleor":
        local = revision[0] if revision is not None else "-"
        return Dependency(f"saleor:{saleor_generation()}:{local}", None, float(config["PAGE_CACHE_SALEOR_TTL"]))
    if revision is None:  # no revision row yet: nothing tells us when the catalog changes
        return None
    token, changed_at = revision
    return Dependency(f"local:{token}", _as_utc(changed_at), None)


def cached_page(view):
    """Serve a catalog view from the page store, filling in the visitor's parts (see the module's doc)."""
    @wraps(view)
    def wrapped(*args, **kwargs):
        if not current_app.config["PAGE_CACHE_ENABLED"] or request.method not in ("GET", "HEAD"):
            return view(*args, **kwargs)
        dependency = current_dependency()
        store = store_of(current_app)
        key = _key(dependency) if dependency is not None else None
        entry = store.get(key, dependency.max_age) if key is not None else None
        if entry is None:
            g.page_cache_rendering = True
            g.csrf_token = CSRF_MARK
            try:
                response = current_app.make_response(view(*args, **kwargs))
            finally:
                g.pop("page_cache_rendering", None)
                g.pop("csrf_token", None)
            if response.status_code != 200 or response.is_streamed:
                return _fill_response(response)
            body = response.get_data(as_text=True)
            entry = Entry(
                body=body, digest=hashlib.blake2b(body.encode(), digest_size=12).hexdigest(),
                last_modified=(dependency.changed_at if dependency and dependency.changed_at
                               else datetime.now(timezone.utc)).replace(microsecond=0),
                mimetype=response.mimetype, stored_at=time.monotonic(),
            )
            if key is not None and not g.pop("page_cache_dont_keep", False):
                store.put(key, entry)
        return _respond(entry)

    return wrapped


def _key(dependency: Dependency) -> tuple:
    fragment = bool(request.headers.get("HX-Request")) and not request.headers.get("HX-Boosted")
    return (request.path, request.query_string, fragment, dependency.token, datetime.now(timezone.utc).year)


def _user_parts() -> tuple[dict[str, str], dict]:
    """The per-user blocks of base.html for this request, rendered with one run of the context processors."""
    template = current_app.jinja_env.get_template("base.html")
    context: dict = {"page_slots": None}
    current_app.update_template_context(context)
    render_context = template.new_context(context)
    parts = {name: "".join(template.blocks[name](render_context)) for name in SLOTS}
    return parts, context


def _fill(body: str, parts: dict[str, str]) -> str:
    values = dict(parts)
    if CSRF_MARK in body:
        values["csrf"] = generate_csrf()
    return _MARKER.sub(lambda m: values.get(m.group(1), ""), body)


def _fill_response(response):
    """An answer rendered with markers that is not kept: give it this visitor's parts, no validators."""
    parts, _ = _user_parts()
    response.set_data(_fill(response.get_data(as_text=True), parts))
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _respond(entry: Entry):
    had_flashes = bool(session.get("_flashes"))
    had_token = "csrf_token" in session  # a new session's token cannot be in a copy the browser kept
    if g.get("user") is None and not had_flashes and not session.get("cart_token"):
        if entry.plain is None:
            parts, _ = _user_parts()
            entry.plain = (_MARKER.sub(lambda m: parts.get(m.group(1), m.group(0)), entry.body),
                           _digest(*(parts[name] for name in SLOTS)))
        body, parts_digest = entry.plain
        body = body.replace(CSRF_MARK, generate_csrf()) if CSRF_MARK in body else body
        own_parts = not had_token
    else:
        parts, context = _user_parts()
        body = _fill(entry.body, parts)
        parts_digest = _digest(*(parts[name] for name in SLOTS))
        own_parts = had_flashes or not had_token or bool(context.get("cart_count"))
    response = current_app.response_class(body, mimetype=entry.mimetype)
    response.vary.update(("Cookie", "HX-Request"))
    if g.get("user") is not None:
        response.headers["Cache-Control"] = "private, no-store"
        return response
    # the visitor's CSRF token is valid as long as the session's raw token (WTF_CSRF_TIME_LIMIT is None),
    # so a copy the browser keeps stays usable while the page, its parts and that raw token are unchanged
    response.set_etag(_digest(entry.digest, parts_digest, str(session.get("csrf_token", ""))), weak=True)
    response.last_modified = entry.last_modified
    response.headers["Cache-Control"] = "private, no-cache"
    if _not_modified(response, entry, own_parts=own_parts):
        return _not_modified_response(response)
    return response


def _digest(*pieces: str) -> str:
    digest = hashlib.blake2b(digest_size=12)
    for piece in pieces:
        digest.update(piece.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def _not_modified(response, entry: Entry, *, own_parts: bool) -> bool:
    etag, _ = response.get_etag()
    if request.if_none_match:  # when both are sent, If-None-Match decides (RFC 9110 13.2.2)
        return request.if_none_match.contains_weak(etag)
    since = request.if_modified_since
    return since is not None and not own_parts and entry.last_modified <= since


def _not_modified_response(response):
    keep = ("ETag", "Last-Modified", "Cache-Control", "Vary")
    not_modified = current_app.response_class(status=304)
    for name in keep:
        if name in response.headers:
            not_modified.headers[name] = response.headers[name]
    return not_modified


def _as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite without the column's type applied (a plain Core row)
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)

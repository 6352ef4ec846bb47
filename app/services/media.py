"""Listing images: uploads checked by their content, re-encoded by Pillow, stored through the storage port
under a name made from their bytes, and the logo and screenshots of an offering (add, reorder, delete).

An upload is refused unless its first bytes say PNG, JPEG or WebP and Pillow decodes it as that format:
an SVG, an HTML page named `.png` or anything else never reaches the store. Images larger than
MEDIA_MAX_PIXELS, or that Pillow flags as decompression bombs, are refused before they are decoded. What
is stored is a fresh encoding of the pixels only (no EXIF, no comments, no colour-profile tricks), so the
stored file is exactly an image of the type its name says.
"""
from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from flask import current_app
from PIL import Image, ImageOps, UnidentifiedImageError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.adapters.storage import StorageError, get_storage
from app.models import MediaKind, Offering, OfferingMedia, PublisherProfile, User
from app.services import audit
from app.services.errors import ServiceError
from app.services.text_rules import refuse_spoofing_characters

MAX_SCREENSHOTS = 6
LOGO_MAX_SIDE = 512
SCREENSHOT_MAX_SIDE = 2400
ALT_MAX = 200
# content type of each stored extension: the only types the media route ever answers with
CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}
_FORMATS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}


class MediaError(ServiceError):
    """An upload or a media change was refused; the message is safe to show beside the file field."""

    status = 422


@dataclass(frozen=True)
class StoredImage:
    key: str
    content_type: str
    width: int
    height: int
    byte_size: int


def sniff_format(data: bytes) -> str | None:
    """The image format the first bytes announce (PNG, JPEG, WEBP), whatever the file is called."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def _limits() -> tuple[int, int]:
    config = current_app.config
    return int(config.get("MEDIA_MAX_BYTES", 5 * 1024 * 1024)), int(config.get("MEDIA_MAX_PIXELS", 40_000_000))


def reencode_image(data: bytes, *, max_side: int, field: str = "image") -> tuple[bytes, str, int, int]:
    """(bytes, extension, width, height) of a clean copy of the image, or MediaError naming `field`."""
    max_bytes, max_pixels = _limits()
    if not data:
        raise MediaError("Choose an image file to upload.", field=field)
    if len(data) > max_bytes:
        size = f"{max_bytes / (1024 * 1024):.1f}".removesuffix(".0")
        raise MediaError(f"That file is too large: images can be up to {size} MB.",
                         field=field)
    announced = sniff_format(data)
    if announced is None:
        raise MediaError("Upload a PNG, JPEG or WebP image. Other files (SVG, HTML, documents) are not accepted.",
                         field=field)
    try:
        with warnings.catch_warnings():
            # Pillow warns past MAX_IMAGE_PIXELS and raises past twice that: both are refusals here
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[announced]) as image:
                if image.width * image.height > max_pixels:
                    raise MediaError("That image has too many pixels. Use one of at most "
                                     f"{max_pixels // 1_000_000} megapixels.", field=field)
                image.load()
                clean = ImageOps.exif_transpose(image)  # keep the orientation the camera meant, then drop EXIF
    except MediaError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise MediaError("That image has too many pixels. Use a smaller image.", field=field) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise MediaError("That file is not a readable image. Upload a PNG, JPEG or WebP image.", field=field) from None
    clean.thumbnail((max_side, max_side))
    extension = _FORMATS[announced]
    out = io.BytesIO()
    if extension == "jpg":
        clean.convert("RGB").save(out, format="JPEG", quality=88, optimize=True)
    elif extension == "png":
        mode = "RGBA" if clean.mode in ("RGBA", "LA", "P", "PA") else "RGB"
        clean.convert(mode).save(out, format="PNG", optimize=True)
    else:
        mode = "RGBA" if clean.mode in ("RGBA", "LA", "P", "PA") else "RGB"
        clean.convert(mode).save(out, format="WEBP", quality=88)
    return out.getvalue(), extension, clean.width, clean.height


def store_image(data: bytes, *, max_side: int, field: str = "image") -> StoredImage:
    """Check and re-encode the upload, then put it in the store under the hash of its clean bytes."""
    clean, extension, width, height = reencode_image(data, max_side=max_side, field=field)
    key = f"{hashlib.sha256(clean).hexdigest()}.{extension}"
    try:
        get_storage().put(key, clean, CONTENT_TYPES[extension])
    except StorageError as exc:
        raise MediaError(str(exc), field=field, status=503) from exc
    return StoredImage(key=key, content_type=CONTENT_TYPES[extension], width=width, height=height,
                       byte_size=len(clean))


def content_type_of(key: str) -> str | None:
    return CONTENT_TYPES.get(key.rsplit(".", 1)[-1]) if "." in key else None


# --- an offering's images ----------------------------------------------------------------------

def _alt(text: str | None, default: str) -> str:
    text = " ".join((text or "").split())
    if len(text) > ALT_MAX:
        raise MediaError(f"Keep the description of the image under {ALT_MAX} characters.", field="alt_text")
    refuse_spoofing_characters(text, field="alt_text", error=MediaError)
    return text or default


def media_of(session: Session, *, offering_id: int, kind: MediaKind | None = None) -> list[OfferingMedia]:
    query = select(OfferingMedia).where(OfferingMedia.offering_id == offering_id)
    if kind is not None:
        query = query.where(OfferingMedia.kind == kind.value)
    return list(session.scalars(query.order_by(OfferingMedia.kind, OfferingMedia.position, OfferingMedia.id)))


def set_offering_logo(session: Session, *, offering: Offering, actor: User, data: bytes) -> tuple[OfferingMedia, str | None]:
    """Replace the offering's logo. Returns the new row and the key of the file it replaced (the caller
    removes that file after the commit with `discard_if_unused`)."""
    stored = store_image(data, max_side=LOGO_MAX_SIDE, field="logo")
    previous = media_of(session, offering_id=offering.id, kind=MediaKind.LOGO)
    old_key = previous[0].storage_key if previous else None
    for row in previous:
        session.delete(row)
    row = OfferingMedia(offering_id=offering.id, kind=MediaKind.LOGO.value, position=0, storage_key=stored.key,
                        content_type=stored.content_type, width=stored.width, height=stored.height,
                        byte_size=stored.byte_size, alt_text=f"{offering.name} logo")
    session.add(row)
    session.flush()
    audit.record(session, action="offering.logo_changed", target_type="offering", target_id=offering.id,
                 organization_id=offering.publisher_id, actor=actor)
    return row, old_key


def add_screenshot(session: Session, *, offering: Offering, actor: User, data: bytes, alt_text: str | None) -> OfferingMedia:
    """Add a screenshot at the end (at most MAX_SCREENSHOTS per offering)."""
    alt = _alt(alt_text, f"Screenshot of {offering.name}")
    # lock the offering row so two uploads at once cannot both take the sixth place
    session.scalar(select(Offering.id).where(Offering.id == offering.id).with_for_update())
    count = session.scalar(select(func.count()).select_from(OfferingMedia).where(
        OfferingMedia.offering_id == offering.id, OfferingMedia.kind == MediaKind.SCREENSHOT.value))
    if count >= MAX_SCREENSHOTS:
        raise MediaError(f"An offering can show up to {MAX_SCREENSHOTS} screenshots. Delete one to add another.",
                         field="screenshot")
    stored = store_image(data, max_side=SCREENSHOT_MAX_SIDE, field="screenshot")
    last = session.scalar(select(func.max(OfferingMedia.position)).where(
        OfferingMedia.offering_id == offering.id, OfferingMedia.kind == MediaKind.SCREENSHOT.value))
    row = OfferingMedia(offering_id=offering.id, kind=MediaKind.SCREENSHOT.value,
                        position=(last if last is not None else -1) + 1, storage_key=stored.key,
                        content_type=stored.content_type, width=stored.width, height=stored.height,
                        byte_size=stored.byte_size, alt_text=alt)
    session.add(row)
    session.flush()
    audit.record(session, action="offering.screenshot_added", target_type="offering", target_id=offering.id,
                 organization_id=offering.publisher_id, actor=actor, data={"media_id": row.id})
    return row


def _media_item(session: Session, offering: Offering, media_id: int) -> OfferingMedia:
    row = session.get(OfferingMedia, media_id)
    if row is None or row.offering_id != offering.id:
        raise MediaError("That image is not part of this offering.", status=404)
    return row


def delete_media(session: Session, *, offering: Offering, actor: User, media_id: int) -> str:
    """Remove one image; returns its storage key for `discard_if_unused` after the commit."""
    row = _media_item(session, offering, media_id)
    key, kind = row.storage_key, row.kind
    session.delete(row)
    session.flush()
    if kind == MediaKind.SCREENSHOT.value:
        for position, rest in enumerate(media_of(session, offering_id=offering.id, kind=MediaKind.SCREENSHOT)):
            rest.position = position
        session.flush()
    audit.record(session, action="offering.media_deleted", target_type="offering", target_id=offering.id,
                 organization_id=offering.publisher_id, actor=actor, data={"media_id": media_id, "kind": kind})
    return key


def move_screenshot(session: Session, *, offering: Offering, actor: User, media_id: int, offset: int) -> None:
    """Move a screenshot one place earlier (offset -1) or later (+1)."""
    if offset not in (-1, 1):
        raise MediaError("Move a screenshot one place at a time.", field="offset")
    row = _media_item(session, offering, media_id)
    if row.kind != MediaKind.SCREENSHOT.value:
        raise MediaError("Only screenshots have an order.")
    shots = media_of(session, offering_id=offering.id, kind=MediaKind.SCREENSHOT)
    index = next(i for i, s in enumerate(shots) if s.id == row.id)
    target = index + offset
    if not 0 <= target < len(shots):
        return  # already first or last: nothing to do
    shots[index], shots[target] = shots[target], shots[index]
    for position, shot in enumerate(shots):
        shot.position = position
    session.flush()
    audit.record(session, action="offering.screenshots_reordered", target_type="offering", target_id=offering.id,
                 organization_id=offering.publisher_id, actor=actor)


def update_alt_text(session: Session, *, offering: Offering, actor: User, media_id: int, alt_text: str | None) -> None:
    row = _media_item(session, offering, media_id)
    row.alt_text = _alt(alt_text, f"Screenshot of {offering.name}")
    session.flush()
    audit.record(session, action="offering.screenshot_described", target_type="offering", target_id=offering.id,
                 organization_id=offering.publisher_id, actor=actor, data={"media_id": media_id})


def discard_if_unused(session: Session, key: str | None) -> bool:
    """Delete a stored file that no listing or publisher uses any more (same bytes share one file).
    Call after the commit that dropped its last use; a store that fails keeps the file (harmless)."""
    if not key:
        return False
    in_use = session.scalar(select(OfferingMedia.id).where(OfferingMedia.storage_key == key).limit(1)) is not None \
        or session.scalar(select(PublisherProfile.id).where(PublisherProfile.logo_key == key).limit(1)) is not None
    if in_use:
        return False
    try:
        get_storage().delete(key)
    except StorageError:
        current_app.logger.warning("stored file %s could not be removed", key)
        return False
    return True


def read_file(key: str) -> bytes | None:
    """The stored bytes under `key` (for the media route); None when there is no such file."""
    try:
        return get_storage().get(key)
    except StorageError as exc:
        raise MediaError(str(exc), status=503) from exc

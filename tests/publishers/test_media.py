"""Listing images: what an upload must be, what is stored, and how it is served."""
import io

import pytest
from PIL import Image
from sqlalchemy import func, select

from app.models import AuditEvent, MediaKind, OfferingMedia
from app.services import media
from tests.conftest import login
from tests.factories import make_offering, make_org, make_user
from tests.publishers.images import HTML_AS_PNG, SVG, jpeg_with_exif, png, png_bomb


@pytest.fixture
def listing(session, app, tmp_path):
    app.config["MEDIA_DIR"] = str(tmp_path / "media")
    seller = make_user(session, roles=("buyer", "seller"))
    org = make_org(session, owner=seller, name="Pixel Works")
    offering = make_offering(session, publisher=org, name="Screen Reader")
    session.commit()
    return seller, org, offering


def _media_count(session) -> int:
    return session.scalar(select(func.count()).select_from(OfferingMedia))


@pytest.mark.parametrize("data, message", [
    (SVG, "Upload a PNG, JPEG or WebP image"),
    (HTML_AS_PNG, "Upload a PNG, JPEG or WebP image"),
    (b"\x89PNG\r\n\x1a\n" + b"<html><script>alert(1)</script></html>", "not a readable image"),
    (b"", "Choose an image file"),
])
def test_files_that_are_not_images_are_refused(app, data, message):
    with app.app_context():
        with pytest.raises(media.MediaError) as refused:
            media.reencode_image(data, max_side=512, field="logo")
    assert message in refused.value.message
    assert refused.value.field == "logo"


def test_an_oversized_upload_is_refused(app):
    app.config["MEDIA_MAX_BYTES"] = 512 * 1024
    with app.app_context():
        with pytest.raises(media.MediaError) as refused:
            media.reencode_image(png() + b"\x00" * (512 * 1024), max_side=512, field="logo")
        media.reencode_image(png(), max_side=512)  # the same image within the limit is fine
    assert refused.value.message == "That file is too large: images can be up to 0.5 MB."
    assert refused.value.field == "logo"


def test_a_decompression_bomb_is_refused_before_it_is_decoded(app):
    bomb = png_bomb()
    assert len(bomb) < 50_000
    with app.app_context():
        with pytest.raises(media.MediaError) as refused:
            media.reencode_image(bomb, max_side=512)
    assert "too many pixels" in refused.value.message


def test_an_image_under_pillows_bomb_limit_but_over_ours_is_refused(app):
    app.config["MEDIA_MAX_PIXELS"] = 1000
    with app.app_context():
        with pytest.raises(media.MediaError) as refused:
            media.reencode_image(png(40, 30), max_side=512)
    assert "too many pixels" in refused.value.message


def test_a_jpeg_is_re_encoded_without_its_exif(app):
    original = jpeg_with_exif()
    assert b"SecretCam" in original
    with app.app_context():
        clean, extension, width, height = media.reencode_image(original, max_side=512)
    assert extension == "jpg" and (width, height) == (40, 30)
    assert b"SecretCam" not in clean
    with Image.open(io.BytesIO(clean)) as image:
        assert image.format == "JPEG"
        assert dict(image.getexif()) == {}


def test_a_large_image_is_scaled_down_to_the_limit(app):
    with app.app_context():
        _, extension, width, height = media.reencode_image(png(1200, 600), max_side=512)
    assert (extension, width, height) == ("png", 512, 256)


def test_seller_uploads_a_logo_shown_on_the_card_and_served_as_an_image(client, session, listing):
    seller, org, offering = listing
    login(client, seller)
    response = client.post(f"/seller/offerings/{offering.id}/images/logo",
                           data={"logo": (io.BytesIO(png()), "logo.png")}, content_type="multipart/form-data")
    assert response.status_code == 302
    logo = session.scalars(select(OfferingMedia).where(OfferingMedia.offering_id == offering.id)).one()
    assert logo.kind == MediaKind.LOGO.value and logo.storage_key.endswith(".png")
    assert session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "offering.logo_changed")) == 1

    served = client.get(f"/media/{logo.storage_key}")
    assert served.status_code == 200
    assert served.headers["Content-Type"] == "image/png"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert served.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert "sandbox" in served.headers["Content-Security-Policy"]
    assert served.data.startswith(b"\x89PNG")

    page = client.get(f"/search?q=Screen").get_data(as_text=True)
    assert f'src="/media/{logo.storage_key}"' in page


@pytest.mark.parametrize("name, data", [("evil.svg", SVG), ("cat.png", HTML_AS_PNG), ("bomb.png", png_bomb())])
def test_a_refused_upload_shows_the_error_beside_the_field_and_stores_nothing(client, session, listing, name, data, tmp_path):
    seller, org, offering = listing
    login(client, seller)
    response = client.post(f"/seller/offerings/{offering.id}/images/screenshots",
                           data={"screenshot": (io.BytesIO(data), name), "alt_text": "x"},
                           content_type="multipart/form-data")
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert 'id="screenshot-error"' in body
    assert _media_count(session) == 0
    media_dir = tmp_path / "media"
    assert not media_dir.exists() or list(media_dir.iterdir()) == []


def test_an_upload_larger_than_any_request_gets_our_413_page(client, listing):
    seller, org, offering = listing
    login(client, seller)
    response = client.post(f"/seller/offerings/{offering.id}/images/logo",
                           data={"logo": (io.BytesIO(b"\x00" * (3 * 1024 * 1024)), "huge.png")},
                           content_type="multipart/form-data")
    assert response.status_code == 413
    assert "That was too large" in response.get_data(as_text=True)


def test_six_screenshots_at_most_reordered_and_deleted_shown_in_the_gallery(client, session, listing):
    seller, org, offering = listing
    login(client, seller)
    colors = [(i * 30, 100, 200 - i * 20) for i in range(7)]
    for i, color in enumerate(colors):
        response = client.post(f"/seller/offerings/{offering.id}/images/screenshots",
                               data={"screenshot": (io.BytesIO(png(80, 60, color)), f"s{i}.png"),
                                     "alt_text": f"Step {i + 1} of the flow"},
                               content_type="multipart/form-data")
        assert response.status_code == (302 if i < 6 else 400)
    shots = media.media_of(session, offering_id=offering.id, kind=MediaKind.SCREENSHOT)
    assert [s.alt_text for s in shots] == [f"Step {i} of the flow" for i in range(1, 7)]

    first, second = shots[0].id, shots[1].id
    assert client.post(f"/seller/offerings/{offering.id}/images/{first}/move", data={"direction": "down"}).status_code == 302
    session.expire_all()
    order = [s.id for s in media.media_of(session, offering_id=offering.id, kind=MediaKind.SCREENSHOT)]
    assert order[:2] == [second, first]

    assert client.post(f"/seller/offerings/{offering.id}/images/{second}/delete").status_code == 302
    session.expire_all()
    remaining = media.media_of(session, offering_id=offering.id, kind=MediaKind.SCREENSHOT)
    assert [s.position for s in remaining] == [0, 1, 2, 3, 4]
    assert remaining[0].id == first

    page = client.get(f"/p/{offering.slug}").get_data(as_text=True)
    assert 'aria-labelledby="gallery-heading"' in page
    assert 'alt="Step 1 of the flow"' in page and 'alt="Step 2 of the flow"' not in page


def test_another_publishers_offering_images_cannot_be_changed(client, session, listing):
    seller, org, offering = listing
    other = make_user(session, roles=("buyer", "seller"))
    session.commit()
    login(client, other)
    response = client.post(f"/seller/offerings/{offering.id}/images/logo",
                           data={"logo": (io.BytesIO(png()), "logo.png")}, content_type="multipart/form-data")
    assert response.status_code == 404
    assert _media_count(session) == 0


def test_media_route_answers_only_for_stored_image_names(client, listing):
    assert client.get("/media/../../etc/passwd").status_code == 404
    assert client.get("/media/index.html").status_code == 404
    missing = client.get("/media/" + "a" * 64 + ".png")
    assert missing.status_code == 404
    assert missing.headers["Content-Type"].startswith("text/html")


def test_a_screenshot_description_is_edited_and_checked(client, session, listing):
    seller, org, offering = listing
    login(client, seller)
    client.post(f"/seller/offerings/{offering.id}/images/screenshots",
                data={"screenshot": (io.BytesIO(png()), "s.png"), "alt_text": ""}, content_type="multipart/form-data")
    shot = media.media_of(session, offering_id=offering.id, kind=MediaKind.SCREENSHOT)[0]
    assert shot.alt_text == "Screenshot of Screen Reader"  # never an image without a description
    assert client.post(f"/seller/offerings/{offering.id}/images/{shot.id}/alt",
                       data={"alt_text": "The reader highlighting a paragraph"}).status_code == 302
    session.expire_all()
    assert session.get(OfferingMedia, shot.id).alt_text == "The reader highlighting a paragraph"
    too_long = client.post(f"/seller/offerings/{offering.id}/images/{shot.id}/alt", data={"alt_text": "x" * 201},
                           follow_redirects=True)
    assert "Keep the description of the image under 200 characters." in too_long.get_data(as_text=True)
    session.expire_all()
    assert session.get(OfferingMedia, shot.id).alt_text == "The reader highlighting a paragraph"


@pytest.mark.postgres_only
def test_two_uploads_racing_for_the_last_place_leave_six_screenshots(make_app, tmp_path):
    import threading

    from app.extensions import db

    app = make_app(MEDIA_DIR=str(tmp_path / "media"))
    with app.app_context():
        seller = make_user(db.session, roles=("buyer", "seller"))
        org = make_org(db.session, owner=seller, name="Race Co")
        offering = make_offering(db.session, publisher=org, name="Racer")
        for i in range(5):
            media.add_screenshot(db.session, offering=offering, actor=seller, data=png(20, 20, (i, i, i)),
                                 alt_text=f"Shot {i}")
        db.session.commit()
        seller_id, offering_id = seller.id, offering.id
    barrier = threading.Barrier(2)
    outcomes = []

    def upload(n: int) -> None:
        with app.app_context():
            from app.models import Offering, User
            actor, target = db.session.get(User, seller_id), db.session.get(Offering, offering_id)
            barrier.wait()
            try:
                media.add_screenshot(db.session, offering=target, actor=actor, data=png(20, 20, (200, n, 0)),
                                     alt_text=f"Racer {n}")
                db.session.commit()
                outcomes.append("added")
            except media.MediaError:
                db.session.rollback()
                outcomes.append("refused")
            finally:
                db.session.remove()

    threads = [threading.Thread(target=upload, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["added", "refused"]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(OfferingMedia).where(
            OfferingMedia.offering_id == offering_id)) == 6


def test_a_store_that_does_not_answer_gives_our_503_page_not_a_500(app, client):
    from app.adapters.storage import StorageError

    class Down:
        def get(self, key):
            raise StorageError("The file store is not answering; please try again in a minute.")

    app.extensions["storage"] = Down()
    response = client.get("/media/" + "b" * 64 + ".webp")
    assert response.status_code == 503
    body = response.get_data(as_text=True)
    assert "Images can&#39;t be loaded right now." in body and 'class="error-page"' in body

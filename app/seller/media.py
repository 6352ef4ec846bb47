"""The seller's images: an offering's logo and screenshots (upload, reorder, delete) and the publisher's
vendor page profile."""
from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, url_for

from app.extensions import db
from app.forms_flow import act, submit
from app.models import MediaKind
from app.publishers.forms import PublisherProfileForm
from app.seller.forms import ActionForm, AltTextForm, LogoUploadForm, MoveForm, ScreenshotUploadForm
from app.seller.views import bp, offering_or_404, publishers
from app.services import media
from app.services import publishers as publishing


def _uploaded(field) -> bytes:
    upload = field.data
    return upload.read() if upload is not None and getattr(upload, "filename", "") else b""


def _images_page(offering, *, logo_form=None, shot_form=None, status: int = 200):
    rows = media.media_of(db.session, offering_id=offering.id)
    return render_template(
        "seller/offering_images.html", offering=offering, logo=next((m for m in rows if m.kind == "logo"), None),
        screenshots=[m for m in rows if m.kind == MediaKind.SCREENSHOT.value], max_screenshots=media.MAX_SCREENSHOTS,
        logo_form=logo_form or LogoUploadForm(), shot_form=shot_form or ScreenshotUploadForm(),
        move_form=MoveForm(), action_form=ActionForm(), alt_form=AltTextForm(),
    ), status


@bp.get("/offerings/<int:offering_id>/images")
def offering_images(offering_id: int):
    return _images_page(offering_or_404(offering_id))


@bp.post("/offerings/<int:offering_id>/images/logo")
def offering_logo_upload(offering_id: int):
    offering = offering_or_404(offering_id)
    form = LogoUploadForm()
    done = submit(form, lambda: media.set_offering_logo(db.session, offering=offering, actor=g.user,
                                                        data=_uploaded(form.logo)))
    if not done.ok:
        return _images_page(offering, logo_form=form, status=done.status)
    media.discard_if_unused(db.session, done.value[1])
    flash("Logo saved.", "success")
    return redirect(url_for("seller.offering_images", offering_id=offering.id))


@bp.post("/offerings/<int:offering_id>/images/screenshots")
def offering_screenshot_upload(offering_id: int):
    offering = offering_or_404(offering_id)
    form = ScreenshotUploadForm()
    done = submit(form, lambda: media.add_screenshot(db.session, offering=offering, actor=g.user,
                                                     data=_uploaded(form.screenshot), alt_text=form.alt_text.data))
    if not done.ok:
        return _images_page(offering, shot_form=form, status=done.status)
    flash("Screenshot added.", "success")
    return redirect(url_for("seller.offering_images", offering_id=offering.id))


@bp.post("/offerings/<int:offering_id>/images/<int:media_id>/move")
def offering_image_move(offering_id: int, media_id: int):
    offering = offering_or_404(offering_id)
    form = MoveForm()
    act(form, lambda: media.move_screenshot(db.session, offering=offering, actor=g.user, media_id=media_id,
                                            offset=-1 if form.direction.data == "up" else 1))
    return redirect(url_for("seller.offering_images", offering_id=offering.id))


@bp.post("/offerings/<int:offering_id>/images/<int:media_id>/alt")
def offering_image_alt(offering_id: int, media_id: int):
    """Change what a screenshot's description (read aloud in place of the image) says."""
    offering = offering_or_404(offering_id)
    form = AltTextForm()
    if act(form, lambda: media.update_alt_text(db.session, offering=offering, actor=g.user, media_id=media_id,
                                               alt_text=form.alt_text.data),
           invalid=f"Keep the description of the image under {media.ALT_MAX} characters.").ok:
        flash("Description saved.", "success")
    return redirect(url_for("seller.offering_images", offering_id=offering.id))


@bp.post("/offerings/<int:offering_id>/images/<int:media_id>/delete")
def offering_image_delete(offering_id: int, media_id: int):
    offering = offering_or_404(offering_id)
    done = act(ActionForm(), lambda: media.delete_media(db.session, offering=offering, actor=g.user,
                                                        media_id=media_id))
    if done.ok:
        media.discard_if_unused(db.session, done.value)
        flash("Image deleted.", "success")
    return redirect(url_for("seller.offering_images", offering_id=offering.id))


@bp.route("/publishers/<int:organization_id>/profile", methods=["GET", "POST"])
def publisher_profile(organization_id: int):
    """The vendor page's details, for the publisher's owners and admins."""
    org = next((p for p in publishers() if p.id == organization_id), None)
    if org is None or org.is_personal:  # a personal workspace has no vendor page
        abort(404)
    profile = publishing.profile_of(db.session, organization_id=org.id)
    form = PublisherProfileForm(obj=profile if profile else None, name=org.name)
    if not form.is_submitted():
        form.name.data = org.name

    def save():
        data = _uploaded(form.logo)
        logo_key = media.store_image(data, max_side=media.LOGO_MAX_SIDE, field="logo").key if data else None
        return publishing.update_profile(
            db.session, organization=org, actor=g.user, name=form.name.data, description=form.description.data,
            website=form.website.data, support_email=form.support_email.data, logo_key=logo_key,
        )

    done = submit(form, save)
    if done.ok:
        media.discard_if_unused(db.session, done.value[1])
        flash("Vendor page saved.", "success")
        return redirect(url_for("seller.publisher_profile", organization_id=org.id))
    return render_template("seller/publisher_profile.html", form=form, org=org, profile=profile), done.status

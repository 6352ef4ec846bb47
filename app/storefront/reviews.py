"""Reviews on the storefront: the review page of an offering (the whole list, the write or edit form,
helpful votes and replies: it works without JavaScript), the per-person controls that the product page
loads as a fragment (so the product page itself is the same for every visitor and can be cached), and
the form posts behind them."""
from __future__ import annotations

from flask import abort, current_app, flash, g, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import HiddenField, RadioField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length

from app.auth.session_user import login_required, safe_next
from app.extensions import db
from app.forms_flow import attach_error
from app.models import Offering, Review, User
from app.services import reviews as svc
from app.services.errors import ServiceError
from app.storefront.views import bp

STAR_CHOICES = [SelectChoice(5, "5 stars"), SelectChoice(4, "4 stars"), SelectChoice(3, "3 stars"),
                SelectChoice(2, "2 stars"), SelectChoice(1, "1 star")]


class ReviewForm(FlaskForm):
    organization = SelectField("Review as", coerce=int, validate_choice=False)
    rating = RadioField("Your rating", choices=STAR_CHOICES, coerce=int,
                        validators=[InputRequired("Choose from 1 to 5 stars.")])
    title = StringField("Title", validators=[InputRequired("Give your review a title."), Length(max=svc.TITLE_MAX)])
    body = TextAreaField("Your review", validators=[InputRequired("Write what you found."),
                                                    Length(max=svc.BODY_MAX)])


class HelpfulForm(FlaskForm):
    next = HiddenField()


class ReplyForm(FlaskForm):
    body = TextAreaField("Your reply", validators=[InputRequired("Write your reply."), Length(max=svc.REPLY_MAX)])
    next = HiddenField()


def _offering_or_404(slug: str) -> Offering:
    offering = svc.published_offering(db.session, slug)
    if offering is None:
        abort(404)
    return offering


def _review_or_404(review_id: int) -> Review:
    try:
        return svc.get_review(db.session, review_id)
    except svc.ReviewNotFound:
        abort(404)


class Viewer:
    """What one signed-in person may do with the reviews on a page (or nothing, signed out)."""

    def __init__(self, user: User | None, offering: Offering, review_ids: list[int]) -> None:
        self.user = user
        self.organizations: list[svc.ReviewerOrganization] = []
        self.member_of: set[int] = set()
        self.voted: set[int] = set()
        self.is_publisher = False
        if user is not None:
            self.organizations = svc.reviewer_organizations(db.session, user=user, offering=offering)
            self.member_of = svc.member_organization_ids(db.session, user=user)
            self.voted = svc.voted_review_ids(db.session, user=user, review_ids=review_ids)
            self.is_publisher = offering.publisher_id in self.member_of

    @property
    def writable(self) -> list[svc.ReviewerOrganization]:
        """Organizations the person can write a review for now, or edit their own review of."""
        return [o for o in self.organizations
                if o.review is None or (o.review.author_id == self.user.id and not o.review.is_hidden)]

    @property
    def hidden_own(self) -> list[svc.ReviewerOrganization]:
        """Reviews this person wrote that moderators hid (they cannot be changed)."""
        return [o for o in self.organizations
                if o.review is not None and o.review.author_id == self.user.id and o.review.is_hidden]

    @property
    def colleague_reviews(self) -> list[svc.ReviewerOrganization]:
        return [o for o in self.organizations if o.review is not None and o.review.author_id != self.user.id]

    def can_vote(self, review: Review) -> bool:
        return self.user is not None and review.organization_id not in self.member_of

    def can_reply(self, review: Review) -> bool:
        return self.is_publisher and review.reply_body is None


def _review_form(viewer: Viewer, formdata=None) -> ReviewForm | None:
    writable = viewer.writable if viewer.user is not None else []
    if not writable:
        return None
    chosen = writable[0]
    defaults = {}
    if formdata is None and chosen.review is not None:
        defaults = {"rating": chosen.review.rating, "title": chosen.review.title, "body": chosen.review.body}
    form = ReviewForm(formdata=formdata, organization=chosen.organization.id, **defaults)
    form.organization.choices = [
        SelectChoice(o.organization.id, f"{o.organization.name} ({svc.KIND_LABELS[o.kind.value]})") for o in writable
    ]
    return form


def _context(offering: Offering, listing: svc.OfferingReviews, viewer: Viewer, form: ReviewForm | None) -> dict:
    editing = None
    if form is not None:
        by_org = {o.organization.id: o for o in viewer.writable}
        chosen = by_org.get(form.organization.data)
        editing = chosen.review if chosen is not None else None
    return {
        "offering": offering, "listing": listing, "viewer": viewer, "form": form, "editing": editing,
        "helpful_form": HelpfulForm(formdata=None), "reply_form": ReplyForm(formdata=None),
        "kind_labels": svc.KIND_LABELS, "review_sorts": svc.SORT_LABELS,
    }


@bp.get("/p/<slug>/reviews")
def reviews_page(slug: str):
    """Every review of an offering, with the person's own form and buttons (the no-JavaScript page)."""
    offering = _offering_or_404(slug)
    listing = svc.offering_reviews(db.session, offering_id=offering.id, sort=request.args.get("sort"),
                                   page=request.args.get("page", 1, type=int))
    viewer = Viewer(g.get("user"), offering, listing.ids)
    response = current_app.make_response(render_template(
        "storefront/reviews.html", **_context(offering, listing, viewer, _review_form(viewer))))
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/p/<slug>/reviews/controls")
def review_controls(slug: str):
    """The person's part of a product page: the write or edit form, and (swapped out of band into
    each listed review) the helpful and reply buttons. `ids`: the reviews the page lists."""
    offering = _offering_or_404(slug)
    ids = [int(i) for i in request.args.get("ids", "").split(",")[:50] if i.isdigit() and len(i) <= 10]
    shown = svc.reviews_by_ids(db.session, offering_id=offering.id, ids=ids)
    listing = svc.offering_reviews(db.session, offering_id=offering.id)
    viewer = Viewer(g.get("user"), offering, [r.id for r in shown])
    context = _context(offering, listing, viewer, _review_form(viewer))
    context["shown"] = shown
    response = current_app.make_response(render_template("storefront/review_controls.html", **context))
    response.headers["Cache-Control"] = "private, no-store"
    response.vary.add("Cookie")
    return response


@bp.post("/p/<slug>/review")
@login_required
def review_save(slug: str):
    """Write the organization's review, or change one's own."""
    offering = _offering_or_404(slug)
    listing = svc.offering_reviews(db.session, offering_id=offering.id)
    viewer = Viewer(g.user, offering, listing.ids)
    form = _review_form(viewer, formdata=request.form)
    if form is None:
        abort(403)
    if form.validate_on_submit():
        chosen = {o.organization.id: o for o in viewer.writable}.get(form.organization.data)
        try:
            if chosen is None:
                raise svc.ReviewError("Choose an organization that subscribed to or tried this offering.",
                                      field="organization", status=403)
            if chosen.review is not None:
                svc.edit_review(db.session, user=g.user, review=chosen.review, rating=form.rating.data,
                                title=form.title.data, body=form.body.data)
                message = "Your review is updated."
            else:
                svc.write_review(db.session, user=g.user, organization_id=chosen.organization.id, offering=offering,
                                 rating=form.rating.data, title=form.title.data, body=form.body.data)
                message = "Thank you: your review is on the page."
        except ServiceError as exc:
            db.session.rollback()
            attach_error(form, exc, {"organization_id": "organization"})
        else:
            db.session.commit()
            flash(message, "success")
            return redirect(url_for("storefront.product", slug=offering.slug) + "#reviews")
    offering = _offering_or_404(slug)
    listing = svc.offering_reviews(db.session, offering_id=offering.id)
    viewer = Viewer(g.user, offering, listing.ids)
    return render_template("storefront/reviews.html", **_context(offering, listing, viewer, form)), 400


def _back(review: Review) -> str:
    default = url_for("storefront.reviews_page", slug=review.offering.slug) + f"#review-{review.id}"
    target = request.form.get("next") or ""
    return safe_next(target, default) if target else default


@bp.post("/reviews/<int:review_id>/helpful")
@login_required
def review_helpful(review_id: int):
    review = _review_or_404(review_id)
    if not HelpfulForm().validate_on_submit():
        abort(400)
    try:
        svc.mark_helpful(db.session, user=g.user, review=review)
    except ServiceError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    else:
        db.session.commit()
    if request.headers.get("HX-Request"):
        review = _review_or_404(review_id)
        viewer = Viewer(g.user, review.offering, [review.id])
        count = svc.helpful_counts(db.session, [review.id]).get(review.id, 0)
        return render_template("storefront/_review_actions.html", review=review, viewer=viewer, oob=False,
                               helpful_form=HelpfulForm(formdata=None), reply_form=ReplyForm(formdata=None),
                               next_url=request.form.get("next") or "")
    return redirect(_back(review))


@bp.post("/reviews/<int:review_id>/reply")
@login_required
def review_reply(review_id: int):
    """The publisher's one reply (from the product page or the seller console)."""
    review = _review_or_404(review_id)
    form = ReplyForm()
    if not form.validate_on_submit():
        for errors in form.errors.values():
            for message in errors:
                flash(message, "error")
        return redirect(_back(review))
    try:
        svc.reply_to_review(db.session, user=g.user, review=review, body=form.body.data)
    except ServiceError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    else:
        db.session.commit()
        flash("Your reply is published under the review.", "success")
    return redirect(_back(review))

"""Buyer reviews for operators: every review (or only the visible or hidden ones), and hiding one with
the reason its author is mailed."""
from __future__ import annotations

from flask import flash, g, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import TextAreaField
from wtforms.validators import DataRequired, Length

from app.extensions import db
from app.forms_flow import attach_error
from app.operator.views import bp
from app.services import reviews as svc
from app.services.errors import ServiceError

SHOW = {"visible": False, "hidden": True, "all": None}


class HideReviewForm(FlaskForm):
    reason = TextAreaField("Why it is hidden", validators=[DataRequired("Say why the review is hidden."),
                                                           Length(max=svc.REASON_MAX)],
                           description="The author receives this by mail.")


def _page(show: str, form: HideReviewForm | None = None, form_review_id: int | None = None, status: int = 200):
    listed = svc.reviews_for_operators(db.session, hidden=SHOW.get(show), page=request.args.get("page", 1, type=int))
    return render_template(
        "operator/reviews.html", listed=listed, show=show, kind_labels=svc.KIND_LABELS,
        helpful=svc.helpful_counts(db.session, [r.id for r in listed.items]),
        forms={r.id: (form if r.id == form_review_id else HideReviewForm(formdata=None, prefix=f"r{r.id}"))
               for r in listed.items if not r.is_hidden},
        page_url=lambda p: url_for("operator.reviews", show=show, page=p),
    ), status


@bp.get("/reviews")
def reviews():
    show = request.args.get("show", "visible")
    return _page(show if show in SHOW else "visible")


@bp.post("/reviews/<int:review_id>/hide")
def review_hide(review_id: int):
    try:
        review = svc.get_review(db.session, review_id, include_hidden=True)
    except svc.ReviewNotFound:
        return _page("visible", status=404)
    form = HideReviewForm(prefix=f"r{review_id}")
    if form.validate_on_submit():
        try:
            svc.hide_review(db.session, operator=g.user, review=review, reason=form.reason.data)
        except ServiceError as exc:
            db.session.rollback()
            attach_error(form, exc)
        else:
            db.session.commit()
            flash(f"The review “{review.title}” is hidden and its author has been told why.", "success")
            return redirect(url_for("operator.reviews"))
    return _page("visible", form=form, form_review_id=review_id, status=400)

"""The seller's reviews: what buyers wrote about the selected publisher's offerings, and the one reply
per review (the form posts to the storefront's reply view, which the product page uses too)."""
from __future__ import annotations

from flask import g, render_template, request, url_for

from app.extensions import db
from app.seller.views import bp, publishers, selected_publisher
from app.services import reviews as svc
from app.storefront.reviews import ReplyForm


@bp.get("/reviews")
def reviews():
    choices = publishers()
    publisher = selected_publisher(choices)
    unanswered = request.args.get("show") == "unanswered"
    listed = svc.reviews_for_publisher(db.session, user=g.user, publisher_id=publisher.id, unanswered=unanswered,
                                       page=request.args.get("page", 1, type=int))
    return render_template(
        "seller/reviews.html", publishers=choices, publisher=publisher, listed=listed, unanswered=unanswered,
        helpful=svc.helpful_counts(db.session, [r.id for r in listed.items]), kind_labels=svc.KIND_LABELS,
        reply_form=ReplyForm(formdata=None), next_url=request.full_path.rstrip("?"),
        page_url=lambda p: url_for("seller.reviews", page=p, publisher=publisher.id,
                                   show="unanswered" if unanswered else None),
    )

"""The storefront: home, browse, search, product detail."""
from __future__ import annotations

from flask import Blueprint, render_template
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.extensions import db
from app.models import Offering, OfferingStatus

bp = Blueprint("storefront", __name__)


@bp.get("/")
def home():
    offerings = db.session.scalars(
        select(Offering).where(Offering.status == OfferingStatus.PUBLISHED.value)
        .options(selectinload(Offering.plans), selectinload(Offering.publisher))
        .order_by(Offering.featured.desc(), Offering.name)
    ).all()
    return render_template("storefront/home.html", offerings=offerings)

"""Fixtures for the job engine tests: a wallet with one expired credit hold (what the expire-holds
task releases), and a Saleor-backed app whose product sync fails until told otherwise."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import pytest

from app.extensions import db
from app.models import Hold
from app.services import billing
from tests.factories import make_org, make_user

LONG_AGO = datetime(2001, 1, 1, tzinfo=timezone.utc)


@dataclass
class ExpiredHold:
    hold_id: int
    wallet_id: int

    def status(self) -> str:
        db.session.expire_all()
        return db.session.get(Hold, self.hold_id).status


@pytest.fixture
def expired_hold(app) -> ExpiredHold:
    with app.app_context():
        organization = make_org(db.session, owner=make_user(db.session))
        wallet = billing.wallet_for_organization(db.session, organization.id)
        billing.grant_credits(db.session, wallet=wallet, amount=40, origin="purchase")
        hold = billing.authorize(db.session, wallet=wallet, amount=25, idempotency_key="old-run", now=LONG_AGO)
        db.session.commit()
        return ExpiredHold(hold_id=hold.id, wallet_id=wallet.id)






@pytest.fixture
def published_offering_id(session, demo) -> int:
    from sqlalchemy import select

    from app.models import Offering

    return session.scalar(select(Offering.id).where(Offering.status == "published").order_by(Offering.id).limit(1))

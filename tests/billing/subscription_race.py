"""Process target for the renewal race: a worker of its own (its own app, engine and session) that
renews what is due after a barrier, counting the charges it sends to the gateway."""
from __future__ import annotations

import time
from datetime import datetime

from app.adapters.commerce.local_checkout import LocalCheckout


class CountingGateway(LocalCheckout):
    """The test-mode gateway, slowed down a little and counting saved-card charges across processes."""

    def __init__(self, counter) -> None:
        self.counter = counter

    def charge_saved_card(self, **kwargs):
        with self.counter.get_lock():
            self.counter.value += 1
        time.sleep(0.2)  # a slow provider: the other workers pile up behind the lock meanwhile
        return super().charge_saved_card(**kwargs)


def renew_in_process(db_url: str, now: datetime, barrier, counter, results) -> None:
    try:
        from app import create_app
        from app.extensions import db
        from app.services import subscriptions

        app = create_app({"TESTING": True, "SECRET_KEY": "race-secret-key-123456", "SQLALCHEMY_DATABASE_URI": db_url})
        with app.app_context():
            barrier.wait()
            report = subscriptions.renew_due_subscriptions(db.session, now=now, gateway=CountingGateway(counter),
                                                           config={}, commit=db.session.commit)
            db.session.commit()
            results.put((report.renewed, report.failed, report.skipped))
            db.session.remove()
            db.engine.dispose()
    except Exception as exc:  # the test reports it
        results.put(repr(exc))

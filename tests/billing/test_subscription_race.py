"""Workers in separate processes racing on the same due renewal (PostgreSQL): one order, one charge,
one period, one grant."""
from __future__ import annotations

import multiprocessing

import pytest
from sqlalchemy import func, select

from app.models import CreditGrant, Instance, Order, Payment
from tests.billing.subscription_race import renew_in_process
from tests.billing.test_subscriptions import T0, _buy, _ledger, shop  # noqa: F401  (shop is a fixture)

WORKERS = 4


@pytest.mark.postgres_only
def test_workers_racing_on_one_due_renewal_make_one_order_one_charge_one_period(session, shop, db_url):
    buyer, org, plans = shop
    instance = _buy(session, buyer, org, plans["starter"])
    due = instance.period_end

    context = multiprocessing.get_context("fork")
    barrier, results, counter = context.Barrier(WORKERS), context.Queue(), context.Value("i", 0)
    processes = [context.Process(target=renew_in_process, args=(db_url, due, barrier, counter, results))
                 for _ in range(WORKERS)]
    for process in processes:
        process.start()
    reports = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=30)

    assert [process.exitcode for process in processes] == [0] * WORKERS
    assert not [report for report in reports if isinstance(report, str)], reports
    assert sorted(len(renewed) for renewed, _, _ in reports) == [0] * (WORKERS - 1) + [1]
    assert counter.value == 1  # one charge sent to the gateway
    session.expire_all()
    renewals = session.scalars(select(Order).where(Order.renews_instance_id == instance.id)).all()
    assert [(o.purpose, o.status, o.total_minor) for o in renewals] == [("renewal", "paid", 1000)]
    assert session.scalar(select(func.count()).select_from(Payment).where(Payment.order_id == renewals[0].id)) == 1
    instance = session.get(Instance, instance.id)
    assert (instance.period_start, instance.period_end.month) == (due, 3)
    assert session.scalar(select(func.count()).select_from(CreditGrant)
                          .where(CreditGrant.instance_id == instance.id)) == 2
    assert _ledger(session, org) == [("grant", 100), ("grant", 100)]

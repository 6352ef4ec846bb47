"""Sales and analytics figures (computed in SQL) equal a brute-force computation in Python over the
same orders, instances and runs: random data with a fixed seed, edges at UTC midnight, other
publishers' rows, unpaid orders and credit packs mixed in."""
from __future__ import annotations

import csv
import io
import json
import random
import re
from collections import defaultdict
from datetime import date, datetime, time, timedelta, timezone

import pytest

from app.models import Instance, Order, OrderLine, Run
from app.services import analytics
from app.services import offerings as svc
from tests.conftest import login
from tests.factories import make_offering, make_org, make_user

START, END = date(2026, 3, 1), date(2026, 3, 31)


def _at(day: date, seconds: int) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.utc) + timedelta(seconds=seconds)


@pytest.fixture
def world(session, seller, operator):
    """Orders, instances and runs for Northwind AI's offerings and for a rival publisher's."""
    rng = random.Random(20260301)
    northwind = next(o for o in svc.publisher_organizations(session, user=seller) if o.slug == "northwind-ai")
    rival = make_org(session, owner=operator, name="Rival Labs")
    mine = [make_offering(session, publisher=northwind, name=f"Mine {n}") for n in range(3)]
    theirs = [make_offering(session, publisher=rival, name="Theirs")]
    buyers = [make_org(session, owner=make_user(session), name=f"Buyer {n}") for n in range(4)]
    session.flush()
    offerings = mine + theirs
    days = [START - timedelta(days=3) + timedelta(days=n) for n in range((END - START).days + 7)]
    seconds = [0, 1, 3600, 43_200, 86_399]  # midnight, just after, ..., the last second of the day

    orders, lines, instances, runs = [], [], [], []
    for n in range(160):
        offering = rng.choice(offerings)
        plan = rng.choice(offering.plans)
        status = rng.choice(["paid", "paid", "paid", "pending", "cancelled"])
        created = _at(rng.choice(days), rng.choice(seconds))
        paid_at = created + timedelta(seconds=rng.choice([0, 30, 86_400])) if status == "paid" else None
        if status == "paid" and n % 17 == 0:
            paid_at = None  # imported without a payment time: counts from created_at
        currency = rng.choice(["USD", "USD", "EUR"])
        order = Order(number=f"T-{n:04d}", organization_id=rng.choice(buyers).id, email="b@example.test",
                      status=status, currency=currency, created_at=created, paid_at=paid_at, total_minor=0)
        quantity = rng.choice([1, 1, 2])
        price = rng.choice([0, plan.price_minor, plan.price_minor + 99])
        order.lines.append(OrderLine(kind="plan", sku=plan.sku, name=plan.name, plan_id=plan.id,
                                     offering_id=offering.id, quantity=quantity, unit_price_minor=price,
                                     total_minor=price * quantity))
        if n % 5 == 0:
            order.lines.append(OrderLine(kind="credit_pack", sku="CREDITS-100", name="100 credits",
                                         quantity=1, unit_price_minor=1000, total_minor=1000))
        order.total_minor = sum(line.total_minor for line in order.lines)
        session.add(order)
        orders.append(order)
        lines.extend(order.lines)
    for n in range(120):
        offering = rng.choice(offerings)
        instance = Instance(
            organization_id=rng.choice(buyers).id, offering_id=offering.id, plan_id=offering.plans[0].id,
            status=rng.choice(["active", "active", "cancelled", "expired"]), is_trial=rng.random() < 0.5,
            created_at=_at(rng.choice(days), rng.choice(seconds)),
        )
        session.add(instance)
        instances.append(instance)
    session.flush()
    for n in range(300):
        instance = rng.choice(instances)
        run = Run(instance_id=instance.id, status=rng.choice(["succeeded", "failed", "running"]),
                  credits=rng.choice([0, 1, 2, 5, 13]), created_at=_at(rng.choice(days), rng.choice(seconds)))
        session.add(run)
        runs.append(run)
    session.commit()
    return {"publisher": northwind, "mine": mine, "orders": orders, "lines": lines, "instances": instances,
            "runs": runs, "buyers": {b.id: b.name for b in buyers}}


def _in(moment: datetime, start: date, end: date) -> bool:
    return start <= moment.astimezone(timezone.utc).date() <= end


def _paid_lines(world, start, end, offering_id=None):
    mine = {o.id for o in world["mine"]}
    for order in world["orders"]:
        when = order.paid_at or order.created_at
        if order.status != "paid" or not _in(when, start, end):
            continue
        for line in order.lines:
            if line.offering_id in mine and (offering_id is None or line.offering_id == offering_id):
                yield order, line, when


def test_dashboard_figures_equal_brute_force(session, world):
    figures = analytics.publisher_overview(session, publisher_id=world["publisher"].id, start=START, end=END)

    expected = {o.id: {"sales": defaultdict(int), "orders": set(), "active": 0, "runs": 0, "credits": 0}
                for o in world["mine"]}
    for order, line, _ in _paid_lines(world, START, END):
        expected[line.offering_id]["sales"][order.currency] += line.total_minor
        expected[line.offering_id]["orders"].add(order.id)
    for instance in world["instances"]:
        if instance.offering_id in expected and instance.status == "active":
            expected[instance.offering_id]["active"] += 1
    by_id = {i.id: i for i in world["instances"]}
    for run in world["runs"]:
        offering_id = by_id[run.instance_id].offering_id
        if offering_id in expected and _in(run.created_at, START, END):
            expected[offering_id]["runs"] += 1
            expected[offering_id]["credits"] += run.credits

    demo_ids = set(figures) - set(expected)  # the demo catalog's offerings: no activity
    assert all((f.sales, f.orders, f.active_instances, f.runs, f.credits) == ({}, 0, 0, 0, 0)
               for i, f in figures.items() if i in demo_ids)
    assert {i: (dict(f.sales), f.orders, f.active_instances, f.runs, f.credits)
            for i, f in figures.items() if i in expected} == {
        i: (dict(e["sales"]), len(e["orders"]), e["active"], e["runs"], e["credits"])
        for i, e in expected.items()
    }
    assert sum(e["runs"] for e in expected.values()) > 20  # the data exercise the query


def test_sales_lines_and_totals_equal_brute_force_with_filters(session, world):
    publisher_id = world["publisher"].id
    offering = world["mine"][1]
    for offering_id, start, end in [(None, None, None), (offering.id, None, None), (None, START, END),
                                    (offering.id, date(2026, 3, 10), date(2026, 3, 10))]:
        lines = analytics.sales_lines(session, publisher_id=publisher_id, offering_id=offering_id, start=start,
                                      end=end)
        count, totals = analytics.sales_summary(session, publisher_id=publisher_id, offering_id=offering_id,
                                                start=start, end=end)

        expected = sorted(
            ((order.number, line.sku, line.total_minor, order.currency, world["buyers"][order.organization_id])
             for order, line, _ in _paid_lines(world, start or date.min, end or date.max, offering_id)),
        )
        expected_totals = defaultdict(int)
        for _, _, amount, currency, _ in expected:
            expected_totals[currency] += amount
        assert sorted((s.order_number, s.sku, s.total_minor, s.currency, s.buyer_organization) for s in lines) == expected
        assert (count, totals) == (len(expected), dict(sorted(expected_totals.items())))
        assert [s.paid_at for s in lines] == sorted((s.paid_at for s in lines), reverse=True)


def test_analytics_series_equal_brute_force(session, world):
    report = analytics.publisher_analytics(session, publisher_id=world["publisher"].id, start=START, end=END)

    revenue = defaultdict(lambda: defaultdict(int))
    for order, line, when in _paid_lines(world, START, END):
        revenue[order.currency][when.astimezone(timezone.utc).date()] += line.total_minor
    mine = {o.id for o in world["mine"]}
    new, trials, converted = defaultdict(int), defaultdict(int), defaultdict(int)
    per_offering = {o.id: [0, 0, 0, 0] for o in world["mine"]}  # runs, credits, trials, converted
    for instance in world["instances"]:
        if instance.offering_id not in mine or not _in(instance.created_at, START, END):
            continue
        day = instance.created_at.astimezone(timezone.utc).date()
        if not instance.is_trial:
            new[day] += 1
            continue
        trials[day] += 1
        per_offering[instance.offering_id][2] += 1
        if any(
            order.status == "paid" and order.organization_id == instance.organization_id
            and line.offering_id == instance.offering_id and line.kind == "plan" and line.unit_price_minor > 0
            and (order.paid_at or order.created_at) > instance.created_at
            for order in world["orders"] for line in order.lines
        ):
            converted[day] += 1
            per_offering[instance.offering_id][3] += 1
    by_id = {i.id: i for i in world["instances"]}
    for run in world["runs"]:
        offering_id = by_id[run.instance_id].offering_id
        if offering_id in mine and _in(run.created_at, START, END):
            per_offering[offering_id][0] += 1
            per_offering[offering_id][1] += run.credits

    assert report.days == [START + timedelta(days=n) for n in range(31)]
    assert {c: dict(d) for c, d in report.revenue.items()} == {c: dict(d) for c, d in revenue.items()}
    assert {d: v for d, v in report.new_instances.items() if v} == dict(new)
    assert {d: v for d, v in report.trials_started.items() if v} == dict(trials)
    assert {d: v for d, v in report.trials_converted.items() if v} == dict(converted)
    assert {o.offering_id: [o.runs, o.credits, o.trials_started, o.trials_converted]
            for o in report.per_offering if o.offering_id in mine} == per_offering
    assert sum(converted.values()) > 0 and sum(trials.values()) > sum(converted.values())


def test_sales_csv_export_has_the_same_lines(client, session, seller, world):
    login(client, seller)

    response = client.get(f"/seller/sales.csv?publisher={world['publisher'].id}&start=2026-03-01&end=2026-03-31")

    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    expected = sorted((order.number, line.sku, line.quantity, line.total_minor, order.currency)
                      for order, line, _ in _paid_lines(world, START, END))
    got = sorted((r["order"], r["sku"], int(r["quantity"]), int(r["amount"].replace(".", "")), r["currency"])
                 for r in rows)
    assert got == expected
    assert set(rows[0]) == {"date", "order", "buyer_organization", "offering", "plan", "tier", "sku", "quantity",
                            "unit_price", "amount", "currency"}


def test_sales_page_shows_the_same_totals(client, session, seller, world):
    login(client, seller)
    offering = world["mine"][0]

    html = client.get(f"/seller/sales?publisher={world['publisher'].id}&offering={offering.id}").get_data(as_text=True)

    expected = defaultdict(int)
    count = 0
    for order, line, _ in _paid_lines(world, date.min, date.max, offering.id):
        expected[order.currency] += line.total_minor
        count += 1
    from app.formatting import money
    summary = " + ".join(money(amount, currency) for currency, amount in sorted(expected.items()))
    assert f"<strong>{count}</strong> order lines · {summary}" in html


def test_analytics_page_charts_carry_the_computed_series(client, session, seller, world):
    login(client, seller)

    response = client.get(f"/seller/analytics?publisher={world['publisher'].id}&start=2026-03-01&end=2026-03-31")

    assert response.status_code == 200
    html = response.get_data(as_text=True)
    data = json.loads(re.search(r'<script type="application/json" id="analytics-data">(.*?)</script>', html,
                                re.S).group(1))
    report = analytics.publisher_analytics(session, publisher_id=world["publisher"].id, start=START, end=END)
    assert data["days"][0] == "2026-03-01" and len(data["days"]) == 31
    assert data["trialsStarted"] == [report.trials_started.get(d, 0) for d in report.days]
    assert {s["currency"]: s["values"] for s in data["revenue"]} == {
        c: [by_day.get(d, 0) for d in report.days] for c, by_day in report.revenue.items()}


def test_another_publisher_cannot_see_these_sales(client, session, world, operator):
    rival_seller = make_user(session, roles=["buyer", "seller"])
    session.commit()
    login(client, rival_seller)

    response = client.get(f"/seller/sales?publisher={world['publisher'].id}")
    export = client.get(f"/seller/sales.csv?publisher={world['publisher'].id}")

    assert (response.status_code, export.status_code) == (404, 404)


def test_an_end_before_the_start_is_refused_on_analytics(client, seller, world):
    login(client, seller)

    response = client.get("/seller/analytics?start=2026-03-10&end=2026-03-01")

    assert response.status_code == 400
    assert "The end date is before the start date." in response.get_data(as_text=True)


def test_the_htmx_filter_returns_only_the_results_block(client, session, seller, world):
    login(client, seller)
    offering = world["mine"][2]

    response = client.get(f"/seller/sales?publisher={world['publisher'].id}&offering={offering.id}&start=&end=",
                          headers={"HX-Request": "true"})

    assert response.status_code == 200
    html = response.get_data(as_text=True)
    count = sum(1 for _ in _paid_lines(world, date.min, date.max, offering.id))
    assert "<html" not in html and 'id="sales-results"' not in html
    assert f"<strong>{count}</strong> order line" in html
    assert "HX-Request" in response.headers["Vary"]

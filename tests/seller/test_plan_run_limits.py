"""A seller sets how many runs may be in progress at once on each plan: per instance and per buyer."""
from sqlalchemy import select

from app.models import Plan
from tests.conftest import login
from tests.seller.test_seller_pages import PLANS_FORM, _draft, _field_error


def test_the_plans_form_saves_the_concurrency_limits_and_new_plans_get_the_defaults(client, session, seller):
    offering = _draft(session, seller)
    login(client, seller)

    response = client.post(f"/seller/offerings/{offering.id}/plans", data={
        **PLANS_FORM, "starter-max_concurrent_runs": "2", "starter-max_concurrent_runs_per_wallet": "5"})
    page = client.get(f"/seller/offerings/{offering.id}/plans").get_data(as_text=True)

    assert response.status_code == 302
    plans = session.scalars(select(Plan).where(Plan.offering_id == offering.id).order_by(Plan.price_minor)).all()
    assert [(p.tier, p.max_concurrent_runs, p.max_concurrent_runs_per_wallet) for p in plans] == [
        ("starter", 2, 5), ("pro", 8, 32)]
    assert 'id="starter-max_concurrent_runs" name="starter-max_concurrent_runs" type="number" value="2"' in page
    assert '<label for="starter-max_concurrent_runs_per_wallet">Runs at once per buyer</label>' in page


def test_more_runs_per_instance_than_per_buyer_is_refused_beside_the_field(client, session, seller):
    offering = _draft(session, seller)
    login(client, seller)

    response = client.post(f"/seller/offerings/{offering.id}/plans", data={
        **PLANS_FORM, "pro-max_concurrent_runs": "10", "pro-max_concurrent_runs_per_wallet": "4",
        "starter-max_concurrent_runs": "0"})

    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert _field_error(html, "pro-max_concurrent_runs_per_wallet") == (
        "Allow at least as many runs at once per organization as per instance.")
    assert _field_error(html, "starter-max_concurrent_runs") == "Allow from 1 to 10,000 runs at once."
    assert session.scalars(select(Plan).where(Plan.offering_id == offering.id)).all() == []

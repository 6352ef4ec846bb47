"""Health, seed, layout, error pages, security headers and configuration."""
import pytest
from sqlalchemy import func, select

from app import create_app
from app.models import CreditPack, LedgerEntry, Offering, OfferingFacet, Plan, User, Wallet
from app.services import identity, seed
from tests.conftest import login


def test_health_reports_database_ok(client):
    response = client.get("/api/health")
    assert response.status_code == 200
    assert response.get_json()["database"]["status"] == "ok"


def test_health_is_503_when_the_database_does_not_answer(make_app):
    app = make_app(SQLALCHEMY_DATABASE_URI="postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1")
    response = app.test_client().get("/api/health")
    assert response.status_code == 503
    assert response.get_json()["database"]["status"] == "unavailable"


def test_seed_is_idempotent_and_complete(session, app):
    first = seed.seed_demo(session, password="demo-password-2026")
    session.commit()
    second = seed.seed_demo(session, password="demo-password-2026")
    session.commit()
    assert first.changed and not second.changed
    assert session.scalar(select(func.count()).select_from(Offering)) == 10
    assert session.scalar(select(func.count()).select_from(Plan)) == 30
    assert session.scalar(select(func.count()).select_from(CreditPack)) == 3
    slugs = set(session.scalars(select(Offering.slug)))
    assert {"customer-support-agent", "knowledge-base-assistant", "sales-outreach-agent"} <= slugs
    for offering in session.scalars(select(Offering)):
        groups = {f.group for f in offering.facets}
        assert groups == {"category", "outcome", "role", "capability", "pricing", "publisher"}, offering.slug
        assert len(offering.plans) == 3 and offering.versions
    trials = {o.slug for o in session.scalars(select(Offering).where(Offering.trial_days > 0))}
    assert {"customer-support-agent", "knowledge-base-assistant"} <= trials
    buyer = identity.get_user_by_email(session, "buyer@example.com")
    wallet = session.scalar(select(Wallet).where(Wallet.organization_id == buyer.current_organization_id))
    assert wallet.balance == seed.BUYER_STARTING_CREDITS
    assert session.scalar(select(func.sum(LedgerEntry.amount)).where(LedgerEntry.wallet_id == wallet.id)) == wallet.balance
    assert session.scalar(select(func.count()).select_from(User)) == 3


def test_demo_users_sign_in_with_the_demo_password(client, demo):
    response = client.post("/auth/login", data={"email": "buyer@example.com", "password": "demo-password-2026"})
    assert response.status_code == 302
    page = client.get("/").get_data(as_text=True)
    assert "Bea Buyer" in page and "Customer Support Agent" in page


def test_home_lists_the_catalog_signed_out(client, demo):
    page = client.get("/").get_data(as_text=True)
    assert page.count('class="offering-card"') == 11  # the storefront home: 3 featured and the 8 newest
    assert "Sign in" in page


def test_unknown_page_is_404_in_the_layout(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    body = response.get_data(as_text=True)
    assert "We couldn't find that page" in body and 'class="site-header"' in body


def test_unknown_api_path_is_problem_json(client):
    response = client.get("/api/no-such-thing")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["status"] == 404


def test_security_headers(client):
    response = client.get("/")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]


def test_production_refuses_default_secret_key(db_url):
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app({"APP_ENV": "production", "SQLALCHEMY_DATABASE_URI": db_url})
    app = create_app({"APP_ENV": "production", "SECRET_KEY": "a-long-random-production-key",
                      "SQLALCHEMY_DATABASE_URI": db_url})
    assert app.config["SESSION_COOKIE_SECURE"] is True


def test_development_mode_accepts_default_key(db_url):
    app = create_app({"APP_ENV": "development", "SQLALCHEMY_DATABASE_URI": db_url})
    assert app.config["SESSION_COOKIE_SECURE"] is False

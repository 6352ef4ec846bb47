"""Helpers for the control-plane API tests: credentials for a user, an instance with a key."""
from __future__ import annotations

import pytest

from app.services import keys, tokens
from app.services.instances import create_instance

SERVICE_TOKEN = "gateway-service-token-for-tests-0123456789"


@pytest.fixture
def app(make_app):
    return make_app(GATEWAY_SERVICE_TOKEN=SERVICE_TOKEN)


@pytest.fixture
def auth_for(session):
    """Authorization headers (a fresh personal access token) for a user."""

    def make(user, **extra):
        _, secret = tokens.create_token(session, user=user, name="tests")
        session.commit()
        return {"Authorization": f"Bearer {secret}", **extra}

    return make


@pytest.fixture
def service_headers():
    return {"Authorization": f"Bearer {SERVICE_TOKEN}"}


@pytest.fixture
def instance_with_key(session):
    """An active instance of `offering` in `organization` created by `owner`, and an API key for it."""

    def make(*, organization, owner, offering):
        instance = create_instance(session, organization=organization, plan=offering.plans[0], created_by=owner)
        key, secret = keys.create_api_key(session, instance=instance, actor=owner, name="runtime")
        session.commit()
        return instance, key, secret

    return make

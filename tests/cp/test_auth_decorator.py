"""The api_auth decorator on a probe route: which credentials pass, and what the others get."""
from flask import g, jsonify

from app.cp.auth import api_auth
from app.extensions import csrf, db
from app.models import User
from app.services import keys, tokens
from app.services.instances import create_instance
from tests.conftest import login
from tests.factories import make_offering, make_org, make_user


def _probe_app(make_app, *kinds, **config):
    app = make_app(GATEWAY_SERVICE_TOKEN="gateway-token-for-tests-0123456789", **config)

    @api_auth(*kinds)
    def probe():
        return jsonify(kind=g.api_kind, user=g.api_user.email if g.api_user else None,
                       org=g.api_org.id if g.api_org else None, key=g.api_key.prefix if g.api_key else None)

    csrf.exempt(probe)  # as the cp blueprint is: the decorator does the CSRF check
    app.add_url_rule("/api/probe", view_func=probe, methods=["GET", "POST"])
    return app


def test_no_credential_is_401_problem(make_app):
    app = _probe_app(make_app, "session", "pat")
    response = app.test_client().get("/api/probe")
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'


def test_pat_authenticates_its_user_and_a_revoked_one_is_refused(make_app):
    app = _probe_app(make_app, "pat")
    with app.app_context():
        user = make_user(db.session, email="pat@example.test")
        token, secret = tokens.create_token(db.session, user=user, name="script")
        org_id, user_id, token_id = user.current_organization_id, user.id, token.id
        db.session.commit()
    client = app.test_client()
    ok = client.get("/api/probe", headers={"Authorization": f"Bearer {secret}"})
    assert ok.status_code == 200
    assert ok.get_json() == {"kind": "pat", "user": "pat@example.test", "org": org_id, "key": None}
    wrong = client.get("/api/probe", headers={"Authorization": f"Bearer {secret[:-2]}xx"})
    assert wrong.status_code == 401
    with app.app_context():
        tokens.revoke_token(db.session, user=db.session.get(User, user_id), token_id=token_id)
        db.session.commit()
    assert client.get("/api/probe", headers={"Authorization": f"Bearer {secret}"}).status_code == 401


def test_service_token_and_unaccepted_kinds(make_app):
    app = _probe_app(make_app, "service")
    client = app.test_client()
    ok = client.get("/api/probe", headers={"Authorization": "Bearer gateway-token-for-tests-0123456789"})
    assert ok.status_code == 200 and ok.get_json()["kind"] == "service"
    assert client.get("/api/probe", headers={"Authorization": "Bearer gateway-token-wrong"}).status_code == 401
    with app.app_context():
        login(client, make_user(db.session))
        db.session.commit()
    refused = client.get("/api/probe")
    assert refused.status_code == 403
    assert "does not accept a signed-in browser session" in refused.get_json()["detail"]


def test_api_key_sets_its_instance_organization(make_app):
    app = _probe_app(make_app, "api_key")
    with app.app_context():
        owner = make_user(db.session)
        org = make_org(db.session, owner=owner)
        offering = make_offering(db.session, publisher=org)
        instance = create_instance(db.session, organization=org, plan=offering.plans[0], created_by=owner)
        key, secret = keys.create_api_key(db.session, instance=instance, actor=owner, name="runtime")
        org_id, prefix = org.id, key.prefix
        db.session.commit()
    client = app.test_client()
    ok = client.get("/api/probe", headers={"X-API-Key": secret})
    assert ok.get_json() == {"kind": "api_key", "user": None, "org": org_id, "key": prefix}
    assert client.get("/api/probe", headers={"X-API-Key": "dmk_0000000000_nope"}).status_code == 401


def test_session_needs_csrf_header_on_unsafe_methods(make_app):
    app = _probe_app(make_app, "session", WTF_CSRF_ENABLED=True)
    client = app.test_client()
    with app.app_context():
        login(client, make_user(db.session))
        db.session.commit()
    assert client.get("/api/probe").status_code == 200
    refused = client.post("/api/probe")
    assert refused.status_code == 403
    assert "CSRF" in refused.get_json()["detail"]
    with app.test_request_context():
        from flask_wtf.csrf import generate_csrf
        from flask import session as flask_session
        token = generate_csrf()
        raw = flask_session["csrf_token"]
    with client.session_transaction() as s:
        s["csrf_token"] = raw
    assert client.post("/api/probe", headers={"X-CSRFToken": token}).status_code == 200

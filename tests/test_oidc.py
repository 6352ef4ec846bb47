"""Single sign-on against a real OpenID provider on loopback (tests/oidc/server.mjs, shaped like a
Keycloak realm): the sign-in round trip, group-to-role mapping, refused callbacks, sign-out, and
the provider's access tokens as the API sees them."""
from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time

import jwt
import pytest
import requests
from sqlalchemy import func, select

from app.adapters.identity import TokenError, get_identity, verify_access_token
from app.extensions import db
from app.models import AuditEvent, Membership, Organization, User, Wallet
from app.services import identity
from tests.oidc_support import (
    CLIENT_ID, CLIENT_SECRET, PASSWORDS, REALM_KID, follow, form_action, new_rsa_key, open_login, query,
    run_provider, serve, sign, sign_in,
)
from tests.oidc_support import callback_url as provider_callback


@pytest.fixture(scope="module")
def provider(tmp_path_factory):
    with run_provider(tmp_path_factory.mktemp("oidc") / "provider.log") as running:
        yield running


@pytest.fixture
def make_sso_app(make_app, provider):
    def factory(**overrides):
        return make_app(AUTH_BACKEND="oidc", KEYCLOAK_ISSUER=provider.issuer, KEYCLOAK_CLIENT_ID=CLIENT_ID,
                        KEYCLOAK_CLIENT_SECRET=CLIENT_SECRET, **overrides)
    return factory


@pytest.fixture
def sso_app(make_sso_app):
    return make_sso_app()


@pytest.fixture
def live(sso_app, provider):
    with serve(sso_app, provider.app_port) as base:
        yield base


@pytest.fixture
def visitor():
    with requests.Session() as session:
        yield session


def _users(app) -> list[tuple]:
    with app.app_context():
        return [(u.oidc_subject, u.email, u.name, u.roles)
                for u in db.session.scalars(select(User).order_by(User.id))]


def _signed_in(visitor, base) -> bool:
    response = visitor.get(f"{base}/account/", allow_redirects=False, timeout=10)
    return response.status_code == 200


def test_sign_in_round_trip_creates_the_user_with_a_personal_workspace_and_wallet(live, sso_app, provider, visitor):
    # given: nobody has signed in yet
    assert _users(sso_app) == []
    # when: the sign-in link is followed
    start = visitor.get(f"{live}/auth/login", params={"next": "/account/"}, allow_redirects=False)
    assert start.headers["Location"] == "/auth/oidc/login?next=/account/"
    to_provider = visitor.get(f"{live}/auth/oidc/login?next=/account/", allow_redirects=False)
    # then: an authorization code request with PKCE (S256), state and nonce, back to our exact callback
    assert to_provider.status_code == 302
    params = query(to_provider.headers["Location"])
    assert to_provider.headers["Location"].startswith(provider.metadata()["authorization_endpoint"] + "?")
    assert params["response_type"] == "code" and params["client_id"] == CLIENT_ID
    assert params["redirect_uri"] == f"{live}/auth/oidc/callback"
    assert params["code_challenge_method"] == "S256" and len(params["code_challenge"]) == 43
    assert len(params["state"]) >= 20 and len(params["nonce"]) >= 20
    assert params["scope"].split() == ["openid", "email", "profile"]
    # when: the person signs in at the provider
    landing = sign_in(visitor, provider, "alice", next_url="/account/")
    # then: they land on `next`, signed in, with our cookie (never the provider's `_session`)
    assert landing.status_code == 200 and landing.url == f"{live}/account/"
    assert "Alice Buyer" in landing.text
    assert "dm_session" in visitor.cookies.keys()
    assert _users(sso_app) == [("alice", "alice@example.test", "Alice Buyer", "buyer")]
    with sso_app.app_context():
        user = db.session.scalar(select(User))
        org = db.session.scalar(select(Organization).join(Membership).where(Membership.user_id == user.id))
        assert org.is_personal and org.name == "Alice Buyer's workspace"
        assert user.current_organization_id == org.id and user.password_hash is None
        assert db.session.scalar(select(Wallet.balance).where(Wallet.organization_id == org.id)) == 0


def test_each_sign_in_updates_the_user_from_the_provider(live, sso_app, provider, visitor):
    # given: alice signed in before, with an old address and name, and was a seller then
    with sso_app.app_context():
        identity.create_user(db.session, email="old-alice@example.test", name="Old Name", password=None,
                             roles=["seller"], oidc_subject="alice")
        db.session.commit()
    # when
    sign_in(visitor, provider, "alice")
    # then: the provider's claims win, and she keeps her one workspace
    assert _users(sso_app) == [("alice", "alice@example.test", "Alice Buyer", "buyer")]
    with sso_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Organization)) == 1
        change = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "user.roles_changed"))
        assert change is not None and '"from": "seller"' in change.data_json and '"to": "buyer"' in change.data_json


@pytest.mark.parametrize("username,roles", [
    ("alice", "buyer"),      # group /buyers
    ("sam", "seller"),       # group /sellers
    ("olga", "operator"),    # group /gsv-team
    ("rolf", "seller"),      # realm role "sellers" (realm_access.roles, in the access token only)
    ("nora", "buyer"),       # in no mapped group: a plain buyer, as after a local sign-up
])
def test_provider_groups_map_to_roles(live, sso_app, provider, visitor, username, roles):
    sign_in(visitor, provider, username)
    assert [(u[0], u[3]) for u in _users(sso_app)] == [(username, roles)]


def test_the_group_mapping_is_configurable(make_sso_app, provider, visitor):
    app = make_sso_app(OIDC_GROUP_ROLES="gsv-team=seller,sellers=buyer")
    with serve(app, provider.app_port):
        sign_in(visitor, provider, "olga")
    assert [(u[0], u[3]) for u in _users(app)] == [("olga", "seller")]


@pytest.mark.parametrize("next_url,expected", [
    (None, "default"),
    ("/", "default"),  # the header's sign-in link on the home page: no real preference
    ("/cart?x=1", "/cart?x=1"),
    ("https://evil.example/", "default"),
    ("//evil.example/x", "default"),
])
def test_a_seller_lands_on_the_seller_dashboard_unless_a_safe_next_was_given(
        live, sso_app, provider, visitor, next_url, expected):
    default = "/seller/" if "seller.dashboard" in sso_app.view_functions else "/"
    callback = visitor.get(provider_callback(visitor, provider, "sam", next_url), allow_redirects=False)
    assert callback.status_code == 302
    assert callback.headers["Location"] == (default if expected == "default" else expected)
    assert callback.headers["Cache-Control"] == "no-store"


def test_a_tampered_state_is_refused_and_signs_nobody_in(live, sso_app, provider, visitor):
    # given: a genuine callback URL from the provider
    genuine = provider_callback(visitor, provider, "alice")
    state = query(genuine)["state"]
    tampered = genuine.replace(f"state={state}", f"state={'A' if state[0] != 'A' else 'B'}{state[1:]}")
    # when
    refused = visitor.get(tampered, allow_redirects=False)
    # then: refused before any code exchange; nothing changed
    assert refused.status_code == 400
    assert "does not match a sign-in started here (state)" in refused.text
    assert _users(sso_app) == [] and not _signed_in(visitor, live)
    # and the genuine response still works: the state alone made the difference
    assert follow(visitor, visitor.get(genuine, allow_redirects=False)).url == f"{live}/"
    assert _users(sso_app) == [("alice", "alice@example.test", "Alice Buyer", "buyer")]


def test_a_replayed_callback_is_refused(live, sso_app, provider, visitor):
    genuine = provider_callback(visitor, provider, "alice")
    assert visitor.get(genuine, allow_redirects=False).status_code == 302
    before = _users(sso_app)
    replay = visitor.get(genuine, allow_redirects=False)
    assert replay.status_code == 400 and "(state)" in replay.text
    assert _users(sso_app) == before and _signed_in(visitor, live)


def test_a_replayed_authorization_code_is_refused(live, sso_app, provider, visitor):
    # given: alice signed in; her code was redeemed
    stolen = provider_callback(visitor, provider, "alice")
    assert follow(visitor, visitor.get(stolen, allow_redirects=False)).url == f"{live}/"
    # when: someone else starts a sign-in of their own and presents alice's code with their state
    with requests.Session() as attacker:
        start = attacker.get(f"{live}/auth/oidc/login", allow_redirects=False)
        their_state = query(start.headers["Location"])["state"]
        replay = attacker.get(f"{live}/auth/oidc/callback", allow_redirects=False, params={
            "code": query(stolen)["code"], "state": their_state, "iss": provider.issuer})
        # then: our state check passes, the provider refuses the code, nobody new is signed in
        assert replay.status_code == 400
        assert "refused the authorization code (invalid_grant)" in replay.text
        assert not _signed_in(attacker, live)
    assert _users(sso_app) == [("alice", "alice@example.test", "Alice Buyer", "buyer")]


def test_a_response_naming_another_issuer_is_refused(live, sso_app, provider, visitor):
    genuine = provider_callback(visitor, provider, "alice")
    mixed_up = genuine.replace("realms%2Fdigitlify", "realms%2Fother")
    assert mixed_up != genuine
    refused = visitor.get(mixed_up, allow_redirects=False)
    assert refused.status_code == 400 and "(issuer)" in refused.text
    assert _users(sso_app) == [] and not _signed_in(visitor, live)


def test_a_sign_in_cancelled_at_the_provider_goes_home_signed_out(live, sso_app, provider, visitor):
    start = visitor.get(f"{live}/auth/oidc/login", allow_redirects=False)
    state = query(start.headers["Location"])["state"]
    response = visitor.get(f"{live}/auth/oidc/callback", allow_redirects=False,
                           params={"error": "access_denied", "state": state, "iss": provider.issuer})
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert "Sign-in was cancelled" in visitor.get(f"{live}/").text
    assert _users(sso_app) == [] and not _signed_in(visitor, live)


def test_sign_out_ends_our_session_and_the_providers(live, sso_app, provider, visitor):
    # given: alice is signed in here and at the provider
    sign_in(visitor, provider, "alice")
    assert _signed_in(visitor, live)
    # when: she signs out
    response = visitor.post(f"{live}/auth/logout", allow_redirects=False)
    # then: our session is over, and the visitor goes to the provider's end-session endpoint
    assert response.status_code == 302
    location = response.headers["Location"]
    end_session = provider.metadata()["end_session_endpoint"]
    assert location.startswith(end_session + "?")
    params = query(location)
    assert params["post_logout_redirect_uri"] == f"{live}/" and params["client_id"] == CLIENT_ID
    hint = jwt.decode(params["id_token_hint"], provider.key.public_key(), algorithms=["RS256"],
                      audience=CLIENT_ID, issuer=provider.issuer)
    assert hint["sub"] == "alice"
    assert not _signed_in(visitor, live)
    # when: the provider's sign-out page is confirmed
    confirm = visitor.get(location, allow_redirects=False)
    assert confirm.status_code == 200 and "log out" in confirm.text
    back = visitor.post(form_action(confirm), data={"xsrf": _input_value(confirm.text, "xsrf"), "logout": "yes"},
                        allow_redirects=False)
    # then: the provider sends the visitor back to our home page, and its own session is gone too
    assert follow(visitor, back).url == f"{live}/"
    login_form = open_login(visitor, live)
    assert login_form.url.startswith(provider.issuer + "/interaction/") and 'name="password"' in login_form.text


def _input_value(html: str, name: str) -> str:
    match = re.search(rf'name="{name}"\s+value="([^"]+)"', html) or re.search(rf'value="([^"]+)"\s+name="{name}"', html)
    assert match, html
    return match.group(1)


# --- the provider's access tokens, as the control-plane API checks them -----------------------

def _tokens_for(provider, username: str) -> dict:
    """Authorization code flow with PKCE as our client, straight at the provider (like a CLI would)."""
    meta = provider.metadata()
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    with requests.Session() as visitor:
        response = visitor.get(meta["authorization_endpoint"], allow_redirects=False, params={
            "client_id": CLIENT_ID, "response_type": "code", "scope": "openid email profile",
            "redirect_uri": provider.callback, "state": secrets.token_urlsafe(16), "nonce": secrets.token_urlsafe(16),
            "code_challenge": challenge, "code_challenge_method": "S256"})
        form = follow(visitor, response)
        response = visitor.post(form_action(form), data={"username": username, "password": PASSWORDS[username]},
                                allow_redirects=False)
        code = query(follow(visitor, response, stop_at=provider.callback))["code"]
    token = requests.post(meta["token_endpoint"], auth=(CLIENT_ID, CLIENT_SECRET), timeout=10, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": provider.callback,
        "code_verifier": verifier})
    assert token.status_code == 200, token.text
    return token.json()


@pytest.fixture(scope="module")
def sam_tokens(provider):
    return _tokens_for(provider, "sam")


def _claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def test_the_providers_access_token_is_accepted(sso_app, sam_tokens, provider):
    with sso_app.app_context():
        claims = verify_access_token(sam_tokens["access_token"])
        profile = get_identity().profile_from_claims(claims)
    # Keycloak's shape: our client in azp, not in aud
    assert claims["sub"] == "sam" and claims["iss"] == provider.issuer
    assert claims["azp"] == CLIENT_ID and claims["aud"] == "account" and claims["typ"] == "Bearer"
    assert (profile.subject, profile.email, profile.name, profile.roles) == (
        "sam", "sam@example.test", "Sam Seller", ("seller",))


def _resigned(provider, token: str, **changes) -> str:
    claims = {**_claims(token), **changes}
    return sign({k: v for k, v in claims.items() if v is not None}, provider.key)


@pytest.mark.parametrize("case,message", [
    ("wrong issuer", "issued by someone else (issuer)"),
    ("wrong audience", "not meant for this service (audience)"),
    ("expired", "has expired"),
    ("signed with another key", "signature does not verify"),
    ("unknown key", "a key the identity provider does not publish"),
    ("unsigned", "algorithm that is not accepted"),
    ("public key as HMAC secret", "algorithm that is not accepted"),
    ("an ID token", "not an access token"),
    ("not a JWT", "not a JWT"),
])
def test_access_tokens_that_should_not_pass_are_refused(sso_app, sam_tokens, provider, case, message):
    access = sam_tokens["access_token"]
    now = int(time.time())
    token = {
        "wrong issuer": lambda: _resigned(provider, access, iss=provider.issuer.replace("digitlify", "other")),
        "wrong audience": lambda: _resigned(provider, access, aud="other-api", azp="other-client"),
        "expired": lambda: _resigned(provider, access, iat=now - 900, exp=now - 600),
        "signed with another key": lambda: sign(_claims(access), new_rsa_key()),
        "unknown key": lambda: sign(_claims(access), new_rsa_key(), kid="rogue"),
        "unsigned": lambda: jwt.encode(_claims(access), None, algorithm="none", headers={"kid": REALM_KID}),
        "public key as HMAC secret": lambda: _hmac_with_public_key(provider, _claims(access)),
        "an ID token": lambda: sam_tokens["id_token"],
        "not a JWT": lambda: "not-a-token",
    }[case]()
    with sso_app.app_context():
        with pytest.raises(TokenError) as refused:
            verify_access_token(token)
    assert message in str(refused.value) and refused.value.status == 401


def _hmac_with_public_key(provider, claims: dict) -> str:
    import hmac
    import json

    from cryptography.hazmat.primitives import serialization

    secret = provider.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                    serialization.PublicFormat.SubjectPublicKeyInfo)
    segments = [base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=")
                for part in ({"alg": "HS256", "typ": "JWT", "kid": REALM_KID}, claims)]
    signing_input = b".".join(segments)
    signature = base64.urlsafe_b64encode(hmac.new(secret, signing_input, hashlib.sha256).digest()).rstrip(b"=")
    return (signing_input + b"." + signature).decode()


@pytest.mark.parametrize("aud,azp", [
    (["account", CLIENT_ID], "another-client"),  # an audience mapper put us in aud
    (None, CLIENT_ID),                            # no aud at all, issued to us
])
def test_our_client_in_aud_or_azp_is_accepted(sso_app, sam_tokens, provider, aud, azp):
    token = _resigned(provider, sam_tokens["access_token"], aud=aud, azp=azp)
    with sso_app.app_context():
        assert verify_access_token(token)["sub"] == "sam"


def test_a_configured_audience_is_required(make_sso_app, sam_tokens, provider):
    app = make_sso_app(KEYCLOAK_AUDIENCE="marketplace-api")
    for_api = _resigned(provider, sam_tokens["access_token"], aud=["marketplace-api"])
    with app.app_context():
        with pytest.raises(TokenError, match="audience"):
            verify_access_token(sam_tokens["access_token"])  # azp is our client, but that is not the audience now
        assert verify_access_token(for_api)["aud"] == ["marketplace-api"]

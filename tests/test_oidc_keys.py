"""The OIDC adapter's edges without the node provider: the JWKS cache (fetched once, fetched again
for a rotated key, never hammered by made-up key ids), an unreachable, slow or misconfigured
provider, and start-up without network."""
from __future__ import annotations

import json
import re
import threading
import time

import pytest
from flask import Flask
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from app import create_app
from app.adapters.identity import IdentityConfigError, ProviderUnavailable, TokenError, get_identity
from app.adapters.identity.oidc import OidcIdentity
from tests.oidc_support import free_port, new_rsa_key, public_jwk, sign

CLIENT_ID = "marketplace"


class KeyServer:
    """Discovery and a JWKS that a test can change, counting how often the keys are read."""

    def __init__(self) -> None:
        self.keys: list[dict] = []
        self.jwks_reads = 0
        self.delay = 0.0
        self.issuer_override: str | None = None
        self.server = make_server("127.0.0.1", 0, self, threaded=True)
        self.issuer = f"http://127.0.0.1:{self.server.server_port}/realms/test"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __call__(self, environ, start_response):
        request = Request(environ)
        if request.path == "/realms/test/.well-known/openid-configuration":
            body = {"issuer": self.issuer_override or self.issuer, "jwks_uri": f"{self.issuer}/certs",
                    "authorization_endpoint": f"{self.issuer}/auth", "token_endpoint": f"{self.issuer}/token"}
        elif request.path == "/realms/test/certs":
            self.jwks_reads += 1
            if self.delay:
                time.sleep(self.delay)
            body = {"keys": self.keys}
        else:
            return Response(status=404)(environ, start_response)
        return Response(json.dumps(body), mimetype="application/json")(environ, start_response)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def keys():
    server = KeyServer()
    yield server
    server.close()


def _adapter(issuer: str, **kwargs) -> OidcIdentity:
    return OidcIdentity(app=Flask(__name__), issuer=issuer, client_id=CLIENT_ID, client_secret="s", audience=CLIENT_ID,
                        group_roles={"sellers": "seller"}, **kwargs)


def _token(issuer: str, key, kid: str, **claims) -> str:
    now = int(time.time())
    return sign({"iss": issuer, "sub": "u1", "aud": "account", "azp": CLIENT_ID, "typ": "Bearer",
                 "iat": now, "exp": now + 300, **claims}, key, kid=kid)


def test_the_key_set_is_read_once_and_cached(keys):
    key = new_rsa_key()
    keys.keys = [public_jwk(key, "k1")]
    adapter = _adapter(keys.issuer)
    for _ in range(3):
        assert adapter.verify_access_token(_token(keys.issuer, key, "k1"))["sub"] == "u1"
    assert keys.jwks_reads == 1


def test_a_rotated_key_is_fetched_once_when_a_token_names_it(keys):
    old, new = new_rsa_key(), new_rsa_key()
    keys.keys = [public_jwk(old, "k1")]
    adapter = _adapter(keys.issuer, jwks_min_refetch=0)
    adapter.verify_access_token(_token(keys.issuer, old, "k1"))
    # when: the provider rotates to a new key
    keys.keys = [public_jwk(new, "k2"), public_jwk(old, "k1")]
    # then: the unknown kid makes us read the key set again, once
    assert adapter.verify_access_token(_token(keys.issuer, new, "k2"))["sub"] == "u1"
    assert adapter.verify_access_token(_token(keys.issuer, new, "k2"))["sub"] == "u1"
    assert keys.jwks_reads == 2


def test_made_up_key_ids_do_not_make_us_hammer_the_provider(keys):
    key = new_rsa_key()
    keys.keys = [public_jwk(key, "k1")]
    adapter = _adapter(keys.issuer, jwks_min_refetch=60)
    adapter.verify_access_token(_token(keys.issuer, key, "k1"))  # first read
    for n in range(5):
        with pytest.raises(TokenError, match="does not publish"):
            adapter.verify_access_token(_token(keys.issuer, new_rsa_key(), f"rogue-{n}"))
    assert keys.jwks_reads == 1  # all within a minute of the last read: no read again


def test_a_token_without_kid_uses_the_only_key_and_is_refused_when_there_are_several(keys):
    key, other = new_rsa_key(), new_rsa_key()
    keys.keys = [public_jwk(key, "k1")]
    assert _adapter(keys.issuer).verify_access_token(_token(keys.issuer, key, None))["sub"] == "u1"
    keys.keys = [public_jwk(key, "k1"), public_jwk(other, "k2")]
    with pytest.raises(TokenError, match="does not publish"):
        _adapter(keys.issuer).verify_access_token(_token(keys.issuer, key, None))


def test_an_unreachable_provider_is_503_not_401():
    issuer = f"http://127.0.0.1:{free_port()}/realms/test"  # nothing listens there
    with pytest.raises(ProviderUnavailable) as unavailable:
        _adapter(issuer, timeout=1).verify_access_token(_token(issuer, new_rsa_key(), "k1"))
    assert unavailable.value.status == 503


def test_a_slow_provider_is_given_up_after_the_timeout(keys):
    keys.keys = [public_jwk(new_rsa_key(), "k1")]
    keys.delay = 3
    with pytest.raises(ProviderUnavailable, match="signing keys could not be read"):
        _adapter(keys.issuer, timeout=0.3).verify_access_token(_token(keys.issuer, new_rsa_key(), "k1"))


def test_cached_keys_keep_working_while_the_provider_is_down():
    keys, key = KeyServer(), new_rsa_key()
    keys.keys = [public_jwk(key, "k1")]
    adapter = _adapter(keys.issuer, jwks_max_age=0, jwks_min_refetch=0)
    adapter.verify_access_token(_token(keys.issuer, key, "k1"))
    keys.close()  # the provider goes away; the cached key set is stale at once (max age 0)
    assert adapter.verify_access_token(_token(keys.issuer, key, "k1"))["sub"] == "u1"
    assert adapter._jwks.fetches == 1


def test_discovery_for_another_issuer_is_refused(keys):
    key = new_rsa_key()
    keys.keys = [public_jwk(key, "k1")]
    keys.issuer_override = "https://evil.example/realms/test"
    with pytest.raises(ProviderUnavailable, match="issuer mismatch"):
        _adapter(keys.issuer).verify_access_token(_token(keys.issuer, key, "k1"))
    assert keys.jwks_reads == 0


def test_oidc_backend_starts_without_network_and_explains_an_unreachable_provider(make_app):
    # given: a provider address where nothing listens; create_app must not need it
    app = make_app(AUTH_BACKEND="oidc", KEYCLOAK_ISSUER=f"http://127.0.0.1:{free_port()}/realms/x", KEYCLOAK_TIMEOUT=1)
    client = app.test_client()
    assert client.get("/auth/login?next=/account/").headers["Location"] == "/auth/oidc/login?next=/account/"
    assert client.get("/auth/signup").headers["Location"] == "/auth/oidc/login"
    response = client.get("/auth/oidc/login")
    assert response.status_code == 503
    assert "The sign-in service is not reachable right now." in response.get_data(as_text=True)
    with client.session_transaction() as session:
        assert not any(key.startswith("_state_") for key in session)


def test_local_backend_has_no_sso_routes_and_refuses_provider_tokens(app, client):
    assert client.get("/auth/oidc/login").status_code == 404
    assert client.get("/auth/oidc/callback?code=x&state=y").status_code == 404
    with app.app_context():
        with pytest.raises(TokenError) as refused:
            get_identity().verify_access_token(_token("https://sso.example.com/realms/x", new_rsa_key(), "k1"))
    assert refused.value.status == 401 and "AUTH_BACKEND=oidc" in str(refused.value)


@pytest.mark.parametrize("overrides,message", [
    ({"KEYCLOAK_ISSUER": ""}, "needs KEYCLOAK_ISSUER"),
    ({"KEYCLOAK_ISSUER": "sso.example.com/realms/x"}, "not an http(s) URL"),
    ({"OIDC_GROUP_ROLES": "sellers=admin"}, "'admin' is not a marketplace role"),
    ({"OIDC_GROUP_ROLES": "sellers"}, "expected group=role"),
])
def test_unusable_oidc_settings_stop_the_start(overrides, message):
    config = {"TESTING": True, "SECRET_KEY": "x" * 24, "SQLALCHEMY_DATABASE_URI": "sqlite://", "AUTH_BACKEND": "oidc",
              "KEYCLOAK_ISSUER": "https://sso.example.com/realms/x", **overrides}
    with pytest.raises(IdentityConfigError, match=re.escape(message)):
        create_app(config)


def test_production_requires_an_https_issuer():
    config = {"APP_ENV": "production", "SECRET_KEY": "a-long-random-production-secret", "SQLALCHEMY_DATABASE_URI":
              "sqlite://", "AUTH_BACKEND": "oidc", "KEYCLOAK_ISSUER": "http://sso.example.com/realms/x"}
    with pytest.raises(IdentityConfigError, match="must use https"):
        create_app(config)
    assert create_app({**config, "KEYCLOAK_ISSUER": "https://sso.example.com/realms/x"}).extensions["identity.oidc"]

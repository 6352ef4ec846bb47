"""Provider access tokens on the API (AUTH_BACKEND=oidc): a valid one acts as its person (created on
the first call, roles from groups); expired, wrongly signed or wrong-audience tokens are refused."""
import json
import threading
import time

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from app.models import User
from tests.oidc_support import new_rsa_key, public_jwk, sign

CLIENT_ID = "marketplace"
KID = "api-test-key"


class Issuer:
    """Discovery and JWKS of a Keycloak-shaped realm, on a free loopback port."""

    def __init__(self) -> None:
        self.key = new_rsa_key()
        self.server = make_server("127.0.0.1", 0, self, threaded=True)
        self.issuer = f"http://127.0.0.1:{self.server.server_port}/realms/api"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __call__(self, environ, start_response):
        path = Request(environ).path
        if path.endswith("/.well-known/openid-configuration"):
            body = {"issuer": self.issuer, "jwks_uri": f"{self.issuer}/certs",
                    "authorization_endpoint": f"{self.issuer}/auth", "token_endpoint": f"{self.issuer}/token"}
        elif path.endswith("/certs"):
            body = {"keys": [public_jwk(self.key, KID)]}
        else:
            return Response(status=404)(environ, start_response)
        return Response(json.dumps(body), mimetype="application/json")(environ, start_response)

    def token(self, key=None, **changes) -> str:
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": "kc-olga", "aud": "account", "azp": CLIENT_ID, "typ": "Bearer",
                  "iat": now, "exp": now + 300, "email": "olga@example.test", "email_verified": True,
                  "name": "Olga Ops", "groups": ["/gsv-team"], **changes}
        return sign({k: v for k, v in claims.items() if v is not None}, key or self.key, kid=KID)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def issuer():
    server = Issuer()
    yield server
    server.close()


@pytest.fixture
def sso_client(make_app, issuer):
    app = make_app(AUTH_BACKEND="oidc", KEYCLOAK_ISSUER=issuer.issuer, KEYCLOAK_CLIENT_ID=CLIENT_ID,
                   KEYCLOAK_CLIENT_SECRET="s", OIDC_GROUP_ROLES="gsv-team=operator,sellers=seller")
    return app.test_client()


def test_a_valid_access_token_acts_as_its_person_created_on_first_call(sso_client, session, issuer):
    response = sso_client.get("/api/organizations/", headers={"Authorization": f"Bearer {issuer.token()}"})

    assert response.status_code == 200
    assert [o["is_personal"] for o in response.get_json()["items"]] == [True]
    user = session.scalar(select(User).where(User.oidc_subject == "kc-olga"))
    assert (user.email, user.roles) == ("olga@example.test", "operator")
    audit = sso_client.get("/api/audit/?limit=1", headers={"Authorization": f"Bearer {issuer.token()}"})
    assert audit.status_code == 200  # operator, from the provider's group


@pytest.mark.parametrize("case", ["expired", "wrong audience", "wrongly signed", "wrong issuer", "garbage"])
def test_bad_access_tokens_are_refused(sso_client, session, issuer, case):
    now = int(time.time())
    token = {
        "expired": lambda: issuer.token(iat=now - 900, exp=now - 600),
        "wrong audience": lambda: issuer.token(aud="another-api", azp="another-client"),
        "wrongly signed": lambda: issuer.token(key=new_rsa_key()),
        "wrong issuer": lambda: issuer.token(iss="http://127.0.0.1:1/realms/other"),
        "garbage": lambda: "eyJhbGciOi.not.a-jwt",
    }[case]()

    response = sso_client.get("/api/organizations/", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert session.scalar(select(User).where(User.oidc_subject == "kc-olga")) is None


def test_access_tokens_are_refused_with_local_accounts(client, issuer):
    response = client.get("/api/organizations/", headers={"Authorization": f"Bearer {issuer.token()}"})

    assert response.status_code == 401


def test_an_unreachable_provider_is_503(make_app):
    app = make_app(AUTH_BACKEND="oidc", KEYCLOAK_ISSUER="http://127.0.0.1:9/realms/none",
                   KEYCLOAK_CLIENT_ID=CLIENT_ID, KEYCLOAK_TIMEOUT=1)
    issuer = Issuer()
    try:
        token = issuer.token()
    finally:
        issuer.close()

    response = app.test_client().get("/api/organizations/", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 503

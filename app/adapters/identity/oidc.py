"""Keycloak (or any OpenID Connect provider shaped like it) through Authlib's Flask client.

- Discovery is lazy: nothing is fetched at start-up; the first sign-in or token check reads
  `<KEYCLOAK_ISSUER>/.well-known/openid-configuration` and checks that its `issuer` is ours.
- Sign-in is the authorization code flow with PKCE (S256); Authlib keeps state, nonce and the code
  verifier in the signed session and checks state and nonce; we also check RFC 9207's `iss`
  parameter when the provider sends it (Keycloak does).
- Access tokens for the API are JWTs checked here: signature against the provider's JWKS (cached,
  fetched again for an unknown `kid` at most every `jwks_min_refetch` seconds), issuer, expiry,
  audience and token type. Audience rule: the expected audience (KEYCLOAK_AUDIENCE, else the client
  id) must be in `aud`, or be the `azp` (authorized party). Keycloak puts the requesting client in
  `azp` and, unless an audience mapper adds it, not in `aud` (which then holds e.g. "account").
  Token type: Keycloak marks access tokens with the claim `typ: "Bearer"` (ID tokens say "ID");
  RFC 9068 providers use the header `typ: at+jwt`. Anything else, such as an ID token, is refused.
- Every call to the provider has a timeout (KEYCLOAK_TIMEOUT seconds in the app config, default 5).
"""
from __future__ import annotations

import ipaddress
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import jwt
import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.flask_client import OAuth, OAuthError
from flask import Flask, Response, redirect, request, session

try:
    from joserfc.errors import JoseError
except ImportError:  # Authlib before joserfc validated ID tokens with its own jose module
    JoseError = AuthlibBaseError

from app.adapters.identity import (
    ExternalProfile,
    IdentityConfigError,
    LoginCancelled,
    LoginError,
    LoginResult,
    ProviderUnavailable,
    TokenError,
    parse_group_roles,
    provider_groups,
    roles_for_groups,
)

log = logging.getLogger(__name__)

CLIENT_NAME = "keycloak"  # Authlib's registry name; also the prefix of its state keys in the session
SCOPES = "openid email profile"
# Asymmetric algorithms only: never "none", never HMAC (a public key must not become a shared secret).
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
LEEWAY_SECONDS = 30  # clock skew between us and the provider
DEFAULT_TIMEOUT = 5.0
JWKS_MAX_AGE = 600  # fetch the key set again after this many seconds (drops retired keys)
JWKS_MIN_REFETCH = 30  # an unknown kid triggers at most one fetch per this many seconds
MAX_TOKEN_LENGTH = 16 * 1024
MAX_PENDING_LOGINS = 3  # sign-ins started but not finished, kept in the session cookie
CANCEL_ERRORS = {"access_denied", "login_required", "consent_required", "interaction_required"}


def init_app(app: Flask) -> None:
    """Register the OIDC client for this app (AUTH_BACKEND=oidc). No network here."""
    issuer = (app.config.get("KEYCLOAK_ISSUER") or "").strip().rstrip("/")
    if not issuer:
        raise IdentityConfigError(
            "AUTH_BACKEND=oidc needs KEYCLOAK_ISSUER, e.g. https://sso.example.com/realms/digitlify."
        )
    parts = urlsplit(issuer)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise IdentityConfigError(f"KEYCLOAK_ISSUER is not an http(s) URL: {issuer!r}.")
    production = app.config.get("APP_ENV") == "production" and not app.testing
    if production and parts.scheme != "https" and not _is_loopback(parts.hostname):
        raise IdentityConfigError("KEYCLOAK_ISSUER must use https in production.")
    client_id = (app.config.get("KEYCLOAK_CLIENT_ID") or "").strip()
    if not client_id:
        raise IdentityConfigError("AUTH_BACKEND=oidc needs KEYCLOAK_CLIENT_ID.")
    adapter = OidcIdentity(
        issuer=issuer,
        client_id=client_id,
        client_secret=app.config.get("KEYCLOAK_CLIENT_SECRET") or "",
        audience=(app.config.get("KEYCLOAK_AUDIENCE") or "").strip() or client_id,
        group_roles=parse_group_roles(app.config.get("OIDC_GROUP_ROLES", "")),
        timeout=float(app.config.get("KEYCLOAK_TIMEOUT", DEFAULT_TIMEOUT)),
        app=app,
    )
    app.extensions["identity.oidc"] = adapter


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class OidcIdentity:
    backend = "oidc"

    def __init__(
        self, *, app: Flask, issuer: str, client_id: str, client_secret: str, audience: str,
        group_roles: Mapping[str, str], timeout: float = DEFAULT_TIMEOUT, jwks_max_age: float = JWKS_MAX_AGE,
        jwks_min_refetch: float = JWKS_MIN_REFETCH,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self.audience = audience
        self.group_roles = dict(group_roles)
        self.timeout = timeout
        # One Authlib registry per app: the registry caches a client per name for its lifetime, and
        # the factory may build several apps in one process with different providers (tests do).
        registry = OAuth(app)
        self.client = registry.register(
            CLIENT_NAME,
            client_id=client_id,
            client_secret=client_secret or None,
            server_metadata_url=f"{self.issuer}/.well-known/openid-configuration",
            client_kwargs={
                "scope": SCOPES,
                "code_challenge_method": "S256",
                "default_timeout": timeout,
                # a public client (no secret) authenticates with PKCE alone
                "token_endpoint_auth_method": "client_secret_basic" if client_secret else "none",
            },
        )
        self._jwks = JwksCache(self._fetch_jwks, max_age=jwks_max_age, min_refetch=jwks_min_refetch)

    # --- discovery --------------------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (fetched once), checked to be for our issuer."""
        try:
            meta = self.client.load_server_metadata()
        except (requests.RequestException, ValueError, TypeError) as exc:
            log.warning("OIDC discovery at %s failed: %s", self.issuer, exc)
            raise ProviderUnavailable("The identity provider did not answer.") from exc
        found = meta.get("issuer")
        if not isinstance(found, str) or found.rstrip("/") != self.issuer:
            log.error("OIDC discovery names issuer %r, configured %r", found, self.issuer)
            raise ProviderUnavailable("The identity provider is misconfigured (issuer mismatch).")
        return meta

    def _fetch_jwks(self) -> list[dict[str, Any]]:
        uri = self.metadata().get("jwks_uri")
        if not isinstance(uri, str) or not uri:
            raise ProviderUnavailable("The identity provider publishes no signing keys (jwks_uri).")
        try:
            response = requests.get(uri, timeout=self.timeout, headers={"Accept": "application/json"})
            response.raise_for_status()
            keys = response.json().get("keys")
        except (requests.RequestException, ValueError, AttributeError) as exc:
            log.warning("OIDC key set at %s could not be read: %s", uri, exc)
            raise ProviderUnavailable("The identity provider's signing keys could not be read.") from exc
        if not isinstance(keys, list):
            raise ProviderUnavailable("The identity provider's key set has no keys.")
        return [k for k in keys if isinstance(k, dict)]

    # --- access tokens (the control-plane API) ----------------------------------------------

    def verify_access_token(self, token: str) -> dict[str, Any]:
        claims, header = self._decode(token)
        if not self._audience_ok(claims):
            raise TokenError("The access token is not meant for this service (audience).")
        typ = str(header.get("typ", "")).lower()
        if typ not in ("at+jwt", "application/at+jwt") and claims.get("typ") != "Bearer":
            raise TokenError("This is not an access token.")
        return claims

    def profile_from_claims(self, claims: Mapping[str, Any]) -> ExternalProfile:
        return self._profile(claims, provider_groups(claims))

    def _decode(self, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Signature, issuer and expiry checked; the claims and the header."""
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            raise TokenError("The access token is malformed.")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenError("The access token is not a JWT.") from None
        alg = header.get("alg")
        if alg not in SIGNING_ALGORITHMS:
            raise TokenError("The access token is signed with an algorithm that is not accepted.")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise TokenError("The access token is malformed.")
        key = self._jwks.key(kid, alg)
        issuer = self.metadata()["issuer"]
        try:
            claims = jwt.decode(
                token, key=key, algorithms=[alg], issuer=issuer, leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "iss", "sub"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("The access token has expired.") from None
        except jwt.InvalidIssuerError:
            raise TokenError("The access token was issued by someone else (issuer).") from None
        except jwt.InvalidSignatureError:
            raise TokenError("The access token's signature does not verify.") from None
        except jwt.PyJWTError as exc:
            raise TokenError(f"The access token is not valid ({type(exc).__name__}).") from None
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise TokenError("The access token names no subject.")
        return claims, header

    def _audience_ok(self, claims: Mapping[str, Any]) -> bool:
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else [a for a in aud if isinstance(a, str)] if isinstance(
            aud, list) else []
        return self.audience in audiences or claims.get("azp") == self.audience

    # --- sign-in (browser) ------------------------------------------------------------------

    def begin_login(self, *, redirect_uri: str, next_url: str) -> Response:
        self.metadata()
        try:
            authorization = self.client.create_authorization_url(redirect_uri)
        except requests.RequestException as exc:
            raise ProviderUnavailable("The identity provider did not answer.") from exc
        url = authorization.pop("url")
        self._prune_pending_logins()
        # keeps state, nonce, code_verifier, redirect_uri and our `next` under the state's key
        self.client.save_authorize_data(redirect_uri=redirect_uri, next=next_url, **authorization)
        return redirect(url)

    def finish_login(self) -> LoginResult:
        args = request.args
        state = args.get("state") or ""
        if args.get("error"):
            self._forget(state)
            error = re.sub(r"[^a-z0-9_]", "", args["error"].lower())[:40]
            if error in CANCEL_ERRORS:
                raise LoginCancelled("Sign-in was cancelled at the identity provider.")
            raise LoginError(f"The identity provider refused the sign-in ({error or 'error'}).")
        pending = self.client.framework.get_state_data(session, state) if state else None
        if not pending:
            raise LoginError("This sign-in response does not match a sign-in started here (state). "
                             "Start the sign-in again.")
        meta = self.metadata()
        iss = args.get("iss")
        if (iss is not None or meta.get("authorization_response_iss_parameter_supported")) and iss != meta["issuer"]:
            self._forget(state)
            raise LoginError("The sign-in response did not come from our identity provider (issuer).")
        if not args.get("code"):
            self._forget(state)
            raise LoginError("The sign-in response carries no authorization code.")
        try:
            token = self.client.authorize_access_token()  # exchanges the code with the PKCE verifier; checks the nonce
        except OAuthError as exc:
            error = re.sub(r"[^a-z0-9_]", "", str(exc.error or "").lower())[:40]
            log.info("OIDC code exchange refused: %s %s", exc.error, exc.description)
            raise LoginError(f"The identity provider refused the authorization code ({error or 'error'}). "
                             "Start the sign-in again.") from None
        except requests.RequestException as exc:
            log.warning("OIDC code exchange or key set request failed: %s", exc)
            raise ProviderUnavailable("The identity provider did not answer.") from exc
        except (JoseError, AuthlibBaseError, ValueError) as exc:
            log.warning("OIDC ID token refused: %s", exc)
            raise LoginError("The identity provider's ID token did not verify.") from None
        id_token, claims = token.get("id_token"), token.get("userinfo")
        if not id_token or not claims or not claims.get("sub"):
            raise LoginError("The identity provider sent no ID token.")
        groups = provider_groups(claims)
        # Keycloak puts realm roles (realm_access) in the access token only; it was just handed to us
        # by the token endpoint for our code, so its audience is not checked, only its signature.
        access_claims = self._access_claims(token.get("access_token"))
        if access_claims.get("sub") == claims["sub"]:
            groups |= provider_groups(access_claims)
        try:
            profile = self._profile(claims, groups)
        except TokenError as exc:
            raise LoginError(str(exc)) from None
        return LoginResult(profile=profile, id_token=id_token, next_url=pending.get("next") or "")

    def end_session_url(self, *, id_token: str, post_logout_redirect_uri: str) -> str:
        endpoint = self.metadata().get("end_session_endpoint")
        if not isinstance(endpoint, str) or not endpoint:
            raise ProviderUnavailable("The identity provider has no end-session endpoint.")
        query = urlencode({"id_token_hint": id_token, "post_logout_redirect_uri": post_logout_redirect_uri,
                           "client_id": self.client_id})
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"

    # --- helpers ----------------------------------------------------------------------------

    def _access_claims(self, access_token: Any) -> dict[str, Any]:
        if not isinstance(access_token, str) or access_token.count(".") != 2:
            return {}  # an opaque token: groups come from the ID token alone
        try:
            claims, _ = self._decode(access_token)
        except TokenError as exc:
            log.info("OIDC access token not used for roles: %s", exc)
            return {}
        return claims

    def _profile(self, claims: Mapping[str, Any], groups: set[str]) -> ExternalProfile:
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise TokenError("The identity provider named no subject.")
        email = claims.get("email") if isinstance(claims.get("email"), str) else None
        username = claims.get("preferred_username") if isinstance(claims.get("preferred_username"), str) else None
        name = claims.get("name") if isinstance(claims.get("name"), str) else ""
        if not name.strip():
            parts = [claims.get(k) for k in ("given_name", "family_name")]
            name = " ".join(p for p in parts if isinstance(p, str) and p.strip())
        name = (name.strip() or username or (email.split("@")[0] if email else "") or subject)[:120]
        return ExternalProfile(
            subject=subject, email=email, email_verified=claims.get("email_verified") is True, name=name,
            username=username, roles=roles_for_groups(groups, self.group_roles),
        )

    def _forget(self, state: str) -> None:
        if state:
            self.client.framework.clear_state_data(session, state)

    def _prune_pending_logins(self) -> None:
        prefix = f"_state_{CLIENT_NAME}_"
        pending = sorted((k for k in session if k.startswith(prefix)),
                         key=lambda k: (session[k] or {}).get("exp", 0))
        for key in pending[: max(0, len(pending) - (MAX_PENDING_LOGINS - 1))]:
            session.pop(key, None)


class JwksCache:
    """The provider's signing keys, shared by the threads of one process.

    Read again when older than `max_age`, or when a token names an unknown `kid` (key rotation);
    either way at most once per `min_refetch` seconds (5 s after a failed read), so tokens with
    made-up kids cannot make us hammer the provider.
    """

    FAILURE_BACKOFF = 5.0

    def __init__(self, fetch: Callable[[], list[dict[str, Any]]], *, max_age: float, min_refetch: float) -> None:
        self._fetch = fetch
        self._max_age = max_age
        self._min_refetch = min_refetch
        self._keys: list[dict[str, Any]] = []
        self._fetched_at: float | None = None  # last successful read
        self._attempted_at: float | None = None  # last read, successful or not
        self._failed = False
        self._lock = threading.Lock()
        self.fetches = 0  # successful reads (for the logs and tests)

    def key(self, kid: str | None, alg: str) -> jwt.PyJWK:
        with self._lock:
            now = time.monotonic()
            fresh = self._fetched_at is not None and now - self._fetched_at < self._max_age
            if not fresh and self._may_try(now):
                self._refresh(now)
            if self._fetched_at is None:
                raise ProviderUnavailable("The identity provider's signing keys could not be read.")
            jwk = self._find(kid)
            if jwk is None and self._may_try(now):
                self._refresh(now)  # the provider may have rotated its keys
                jwk = self._find(kid)
        if jwk is None:
            raise TokenError("The access token is signed with a key the identity provider does not publish.")
        if jwk.get("alg") not in (None, alg):
            raise TokenError("The access token's algorithm does not match its key.")
        try:
            return jwt.PyJWK(jwk, algorithm=alg)
        except jwt.PyJWTError:
            raise TokenError("The access token's algorithm does not match its key.") from None

    def _may_try(self, now: float) -> bool:
        wait = min(self._min_refetch, self.FAILURE_BACKOFF) if self._failed else self._min_refetch
        return self._attempted_at is None or now - self._attempted_at >= wait

    def _refresh(self, now: float) -> None:
        self._attempted_at = now
        try:
            keys = self._fetch()
        except ProviderUnavailable:
            self._failed = True
            if self._fetched_at is None:
                raise
            log.warning("OIDC key set refresh failed; verifying with the cached keys")
            return
        self._failed = False
        self.fetches += 1
        self._keys = [k for k in keys if k.get("use", "sig") == "sig"
                      and ("key_ops" not in k or "verify" in (k.get("key_ops") or []))]
        self._fetched_at = now

    def _find(self, kid: str | None) -> dict[str, Any] | None:
        if kid is None:
            return self._keys[0] if len(self._keys) == 1 else None
        return next((k for k in self._keys if k.get("kid") == kid), None)

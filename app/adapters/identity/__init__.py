"""The identity port: who signs people in, and whose bearer tokens the control-plane API accepts.

Two adapters implement it, chosen by AUTH_BACKEND:

- ``local`` (the embedded default): accounts with hashed passwords in our database
  (`app.services.identity`); there is no outside issuer, so provider access tokens are refused.
- ``oidc``: Keycloak, or any OpenID Connect provider shaped like it, through Authlib's Flask client.
  Sign-in is the authorization code flow with PKCE (S256), state and nonce; the provider's groups
  and realm roles map to marketplace roles (OIDC_GROUP_ROLES); access tokens are verified against
  the provider's JWKS.

Views, services and the API ask `get_identity()` (or call `verify_access_token`) and never import an
adapter module. Everything here needs an application context.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from flask import Response, current_app

BACKENDS = ("local", "oidc")
MARKETPLACE_ROLES = ("buyer", "seller", "operator")
DEFAULT_ROLE = "buyer"  # a signed-in person in no mapped group, as with a local sign-up


class IdentityConfigError(RuntimeError):
    """The identity settings cannot work (raised at start-up, never for a request)."""


class TokenError(Exception):
    """An access token was refused. `str(exc)` is safe to send back to the caller; `status` is 401."""

    status = 401


class ProviderUnavailable(TokenError):
    """The identity provider could not be asked (down, slow, or answering nonsense). `status` is 503."""

    status = 503


class LoginError(Exception):
    """A sign-in through the provider was refused; the message is safe to show."""


class LoginCancelled(LoginError):
    """The person cancelled at the provider (or it declined to sign them in)."""


@dataclass(frozen=True)
class ExternalProfile:
    """Who the provider says a person is, with the marketplace roles their groups map to."""

    subject: str
    email: str | None
    email_verified: bool
    name: str
    username: str | None
    roles: tuple[str, ...]


@dataclass(frozen=True)
class LoginResult:
    profile: ExternalProfile
    id_token: str  # kept in the session for RP-initiated logout (id_token_hint)
    next_url: str  # the safe `next` given when the sign-in started, or ""


class IdentityPort(Protocol):
    backend: str

    def verify_access_token(self, token: str) -> dict[str, Any]:
        """The verified claims of a provider access token; raise TokenError (or ProviderUnavailable)."""

    def profile_from_claims(self, claims: Mapping[str, Any]) -> ExternalProfile:
        """The person and their marketplace roles from verified token claims; raise TokenError."""


@runtime_checkable
class RedirectLogin(Protocol):
    """An identity backend where people sign in at an outside provider (implemented by ``oidc``)."""

    backend: str

    def begin_login(self, *, redirect_uri: str, next_url: str) -> Response:
        """Redirect to the provider's sign-in, remembering state, nonce, PKCE verifier and `next`."""

    def finish_login(self) -> LoginResult:
        """Check the callback request and exchange its code; raise LoginError, LoginCancelled or
        ProviderUnavailable."""

    def end_session_url(self, *, id_token: str, post_logout_redirect_uri: str) -> str:
        """The provider's end-session URL (RP-initiated logout); raise ProviderUnavailable."""


def get_identity() -> IdentityPort:
    """The identity adapter chosen by AUTH_BACKEND for the current app."""
    backend = current_app.config.get("AUTH_BACKEND", "local")
    if backend == "oidc":
        adapter = current_app.extensions.get("identity.oidc")
        if adapter is None:
            raise IdentityConfigError("AUTH_BACKEND=oidc but the OIDC adapter was not initialised by create_app.")
        return adapter
    if backend == "local":
        from app.adapters.identity.local import LocalIdentity

        return LocalIdentity()
    raise IdentityConfigError(f"AUTH_BACKEND must be one of {', '.join(BACKENDS)}, not {backend!r}.")


def verify_access_token(token: str) -> dict[str, Any]:
    """The verified claims of a provider access token (signature against the provider's JWKS, issuer,
    audience, expiry); raise TokenError (401) or ProviderUnavailable (503). Needs an app context."""
    return get_identity().verify_access_token(token)


# --- group and role mapping (pure functions, shared by the adapters and their tests) ------------

def parse_group_roles(spec: str) -> dict[str, str]:
    """`"gsv-team=operator,sellers=seller"` -> {"gsv-team": "operator", "sellers": "seller"}."""
    mapping: dict[str, str] = {}
    for item in (spec or "").split(","):
        item = item.strip()
        if not item:
            continue
        group, sep, role = item.partition("=")
        group, role = _normalize_group(group), role.strip()
        if not sep or not group or not role:
            raise IdentityConfigError(f"OIDC_GROUP_ROLES: expected group=role, got {item!r}.")
        if role not in MARKETPLACE_ROLES:
            raise IdentityConfigError(
                f"OIDC_GROUP_ROLES: {role!r} is not a marketplace role ({', '.join(MARKETPLACE_ROLES)})."
            )
        mapping[group] = role
    return mapping


def _normalize_group(name: str) -> str:
    # Keycloak sends full group paths ("/sellers") unless the mapper's "Full group path" is off;
    # a nested group keeps its parent ("/partners/sellers" -> "partners/sellers") so it never
    # matches a top-level group of the same name by accident.
    return name.strip().strip("/")


def provider_groups(claims: Mapping[str, Any]) -> set[str]:
    """The group names and realm role names in `claims` (`groups` and `realm_access.roles`)."""
    names: set[str] = set()
    names.update(_strings(claims.get("groups")))
    realm_access = claims.get("realm_access")
    if isinstance(realm_access, Mapping):
        names.update(_strings(realm_access.get("roles")))
    return {_normalize_group(n) for n in names if _normalize_group(n)}


def roles_for_groups(groups: Iterable[str], mapping: Mapping[str, str]) -> tuple[str, ...]:
    """Marketplace roles for these provider groups; DEFAULT_ROLE when none maps."""
    roles = {mapping[g] for g in groups if g in mapping}
    return tuple(sorted(roles or {DEFAULT_ROLE}))


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, str)]
    return []

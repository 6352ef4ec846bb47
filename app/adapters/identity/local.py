"""The embedded identity backend: accounts with hashed passwords in our own database.

Sign-up and sign-in run through `app.services.identity` and the forms in `app.auth.views`; there is
no outside issuer, so the API refuses every provider access token (people use personal access
tokens instead).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.adapters.identity import ExternalProfile, TokenError


class LocalIdentity:
    backend = "local"

    def verify_access_token(self, token: str) -> dict[str, Any]:
        raise TokenError("Identity provider access tokens are accepted only with single sign-on "
                         "(AUTH_BACKEND=oidc); use a personal access token.")

    def profile_from_claims(self, claims: Mapping[str, Any]) -> ExternalProfile:
        raise TokenError("There is no identity provider: accounts are local (AUTH_BACKEND=local).")

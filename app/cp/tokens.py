"""Personal access tokens: /api/tokens/... A token cannot mint or revoke tokens: that takes a
session (or single sign-on), so a leaked token cannot entrench itself."""
from __future__ import annotations

from flask import g

from app.cp import schemas, serializers
from app.cp.auth import USER_KINDS, api_auth
from app.cp.openapi import responses, spec
from app.cp.views import bp
from app.extensions import db
from app.services import tokens

ID = "int(min=1, max=2147483647)"
TAGS = ["tokens"]


@bp.get("/tokens/")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(200, schemas.TokenList), tags=TAGS)
def list_tokens():
    """Your personal access tokens, newest first (prefix only; the token itself is never shown again)."""
    return schemas.TokenList(items=[serializers.token_out(t) for t in tokens.list_tokens(db.session, user=g.api_user)])


@bp.post("/tokens/")
@api_auth("session", "bearer")
@spec.validate(resp=responses(201, schemas.TokenCreated, 400), tags=TAGS)
def create_token(json: schemas.TokenCreate):
    """Create a token for scripts. The response holds the token, once."""
    token, secret = tokens.create_token(db.session, user=g.api_user, name=json.name,
                                        expires_in_days=json.expires_in_days)
    db.session.commit()
    return schemas.TokenCreated(**serializers.token_out(token).model_dump(), token=secret), 201


@bp.post(f"/tokens/<{ID}:token_id>/revoke")
@api_auth("session", "bearer")
@spec.validate(resp=responses(200, schemas.TokenOut, 404), tags=TAGS)
def revoke_token(token_id: int):
    """Revoke one of your tokens; it stops working at once."""
    token = tokens.revoke_token(db.session, user=g.api_user, token_id=token_id)
    db.session.commit()
    return serializers.token_out(token)

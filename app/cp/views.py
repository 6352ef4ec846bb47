"""The control-plane JSON API under /api."""
from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import text

from app.extensions import csrf, db

bp = Blueprint("cp", __name__)
# JSON callers are not forms: app.cp.auth checks the CSRF header itself, for cookie sessions only
csrf.exempt(bp)


@bp.get("/health")
def health():
    """Liveness with the database status: 200 when the database answers, 503 when not."""
    try:
        db.session.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means the database is not usable
        db.session.rollback()
        return jsonify(status="degraded", database={"status": "unavailable", "error": type(exc).__name__}), 503
    return jsonify(status="ok", database={"status": "ok", "dialect": db.engine.dialect.name})

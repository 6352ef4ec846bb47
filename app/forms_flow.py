"""The form flow the seller and operator pages share: check the form, call a service, commit, or roll back
and show the service's refusal where the user looks for it (beside the field it names, above the form, or as
a flash message when the button sits on a page that is not a form).

The view keeps what differs: which page to render, where to redirect, and what to say on success.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from flask import abort, flash
from flask_wtf import FlaskForm
from wtforms.form import BaseForm

from app.extensions import db
from app.services.errors import ServiceError

T = TypeVar("T")


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What a submission came to: `ok` with the service's return value (committed), or not, with the
    status to render the form again with (200 for a form not yet submitted, 400 for one refused)."""

    ok: bool
    status: int = 200
    value: T | None = None


def attach_error(form: BaseForm, exc: ServiceError, field_map: Mapping[str, str] | None = None) -> None:
    """Show a service error beside the field it names (renamed through `field_map` where the form calls
    it otherwise), or among the form's own errors when the form has no such field."""
    name = (field_map or {}).get(exc.field or "", exc.field)
    target = getattr(form, name, None) if name else None
    if target is not None and hasattr(target, "errors"):
        target.errors = [*target.errors, exc.message]
    else:
        form.form_errors.append(exc.message)


def submit(form: FlaskForm, call: Callable[[], T], *, field_map: Mapping[str, str] | None = None) -> Outcome[T]:
    """A form page: a valid submission runs `call` and commits; a ServiceError rolls back and goes into the form.

    Not submitted (GET): nothing runs, status 200. Submitted but failing the form's checks, or refused by
    the service: status 400, with the errors in the form for the page to render again.
    """
    if not form.validate_on_submit():
        return Outcome(ok=False, status=400 if form.is_submitted() else 200)
    return _commit_or_refuse(call, lambda exc: attach_error(form, exc, field_map))


def act(form: FlaskForm, call: Callable[[], T], *, invalid: str | None = None) -> Outcome[T]:
    """A button that changes something and then redirects: the service's refusal becomes an error flash.

    A form that fails its checks (in practice a stale CSRF token) is a 400, or, with `invalid`, that
    message flashed instead; either way nothing runs.
    """
    if not form.validate_on_submit():
        if invalid is None:
            abort(400)
        flash(invalid, "error")
        return Outcome(ok=False, status=400)
    return _commit_or_refuse(call, lambda exc: flash(exc.message, "error"))


def _commit_or_refuse(call: Callable[[], T], refused: Callable[[ServiceError], object]) -> Outcome[T]:
    """Run the service call and commit; a ServiceError rolls everything back and is handed to `refused`."""
    try:
        value = call()
    except ServiceError as exc:
        db.session.rollback()
        refused(exc)
        return Outcome(ok=False, status=400)
    db.session.commit()
    return Outcome(ok=True, value=value)

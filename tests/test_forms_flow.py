"""The form flow the seller and operator pages share (app.forms_flow): what runs, what is committed or rolled
back, and where a refusal is shown."""
from __future__ import annotations

import pytest
from flask import get_flashed_messages
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.exceptions import BadRequest
from wtforms import StringField
from wtforms.validators import DataRequired

from app.extensions import db
from app.forms_flow import act, submit
from app.models import Organization
from app.services.errors import ServiceError
from tests.factories import make_org, make_user


class NameForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired()])


@pytest.fixture
def owner(session):
    user = make_user(session)
    session.commit()
    return user


def _org_names(session) -> list[str]:
    """Team organizations as another connection sees them: committed ones only."""
    with Session(db.engine) as other:
        return sorted(other.scalars(select(Organization.name).where(~Organization.is_personal)))


def _org_count(session) -> int:
    """Organizations as the request's own session sees them: flushed and not rolled back ones count too."""
    return session.scalar(select(func.count()).select_from(Organization))


def test_submit_on_get_runs_nothing_and_renders_with_200(app, session):
    calls = []
    with app.test_request_context("/", method="GET"):
        outcome = submit(NameForm(), lambda: calls.append("ran"))
    assert (outcome.ok, outcome.status, outcome.value, calls) == (False, 200, None, [])


def test_submit_of_an_invalid_form_runs_nothing_and_renders_with_400(app, session):
    calls = []
    with app.test_request_context("/", method="POST", data={"name": ""}):
        form = NameForm()
        outcome = submit(form, lambda: calls.append("ran"))
    assert (outcome.ok, outcome.status, calls) == (False, 400, [])
    assert form.name.errors == ["This field is required."]


def test_submit_commits_and_returns_the_services_value(app, session, owner):
    with app.test_request_context("/", method="POST", data={"name": "Acme"}):
        form = NameForm()
        outcome = submit(form, lambda: make_org(db.session, owner=owner, name=form.name.data))
    assert (outcome.ok, outcome.status, outcome.value.name) == (True, 200, "Acme")
    assert _org_names(session) == ["Acme"]


def test_a_refusal_rolls_back_and_is_shown_beside_the_field_it_names(app, session, owner):
    before = _org_count(session)

    def refuse():
        make_org(db.session, owner=owner, name="Half done")
        raise ServiceError("That name is taken.", field="name")

    with app.test_request_context("/", method="POST", data={"name": "Half done"}):
        form = NameForm()
        outcome = submit(form, refuse)
    assert (outcome.ok, outcome.status, outcome.value) == (False, 400, None)
    assert form.name.errors == ["That name is taken."]
    assert form.form_errors == []
    assert _org_count(session) == before


def test_a_refusal_follows_the_field_map_or_goes_above_the_form(app, session):
    def refuse(field):
        def call():
            raise ServiceError(f"About {field}.", field=field)
        return call

    with app.test_request_context("/", method="POST", data={"name": "x"}):
        mapped, unknown, none = NameForm(), NameForm(), NameForm()
        submit(mapped, refuse("title"), field_map={"title": "name"})
        submit(unknown, refuse("colour"))
        submit(none, refuse(None))
    assert (mapped.name.errors, mapped.form_errors) == (["About title."], [])
    assert (unknown.name.errors, unknown.form_errors) == ([], ["About colour."])
    assert (none.name.errors, none.form_errors) == ([], ["About None."])


def test_act_commits_and_flashes_nothing_itself(app, session, owner):
    with app.test_request_context("/", method="POST", data={"name": "Beta"}):
        outcome = act(NameForm(), lambda: make_org(db.session, owner=owner, name="Beta"))
        flashed = get_flashed_messages(with_categories=True)
    assert (outcome.ok, outcome.value.name, flashed) == (True, "Beta", [])
    assert _org_names(session) == ["Beta"]


def test_act_flashes_a_refusal_and_rolls_back(app, session, owner):
    before = _org_count(session)

    def refuse():
        make_org(db.session, owner=owner, name="Gamma")
        raise ServiceError("Not now.")

    with app.test_request_context("/", method="POST", data={"name": "Gamma"}):
        outcome = act(NameForm(), refuse)
        flashed = get_flashed_messages(with_categories=True)
    assert (outcome.ok, outcome.status, flashed) == (False, 400, [("error", "Not now.")])
    assert _org_count(session) == before


def test_act_on_an_invalid_form_is_a_400_or_the_given_message(app, session):
    calls = []
    with app.test_request_context("/", method="POST", data={"name": ""}):
        with pytest.raises(BadRequest):
            act(NameForm(), lambda: calls.append("ran"))
    with app.test_request_context("/", method="POST", data={"name": ""}):
        outcome = act(NameForm(), lambda: calls.append("ran"), invalid="Give it a name.")
        flashed = get_flashed_messages(with_categories=True)
    assert (outcome.ok, outcome.status, flashed, calls) == (False, 400, [("error", "Give it a name.")], [])

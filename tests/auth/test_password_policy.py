"""Common and easily guessed passwords are refused at sign-up and password change, with the reason
beside the field; one service function holds the rule for every caller."""
import re

import pytest
from sqlalchemy import func, select

from app.models import User
from app.services import identity
from app.services.seed import DEMO_USERS
from tests.conftest import login
from tests.factories import make_user


def _field_errors(page: str, field_id: str) -> list[str]:
    block = re.search(rf'<ul class="field-error" id="{field_id}-error">(.*?)</ul>', page, re.S)
    return re.findall(r"<li>(.*?)</li>", block.group(1)) if block else []


@pytest.mark.parametrize("password,reason", [
    ("1234567890", "This is a top-100 common password."),
    ("aaaaaaaaaa", "Repeats like &#34;aaa&#34; are easy to guess."),
    ("qwertyuiop", "This is a top-100 common password."),
    ("Password2026", "This is similar to a commonly used password."),
    ("short-pw", "Field must be between 10 and 200 characters long."),
])
def test_sign_up_refuses_a_weak_password_beside_the_field(client, session, password, reason):
    before = session.scalar(select(func.count()).select_from(User))

    response = client.post("/auth/signup", data={"name": "Ada Lovelace", "email": "ada@example.com",
                                                 "password": password})

    assert response.status_code == 400
    errors = _field_errors(response.get_data(as_text=True), "password")
    assert len(errors) == 1 and errors[0].startswith(reason)
    assert session.scalar(select(func.count()).select_from(User)) == before
    with client.session_transaction() as s:
        assert "user_id" not in s


def test_a_password_made_of_the_persons_own_name_and_email_is_refused():
    with pytest.raises(identity.IdentityError) as refused:
        identity.check_password_strength("adalovelace", email="ada.lovelace@example.com", name="Ada Lovelace")
    assert refused.value.field == "password"
    # the same letters are fine for someone else
    identity.check_password_strength("adalovelace-engine", email="bob@example.com", name="Bob")


def test_a_password_change_refuses_a_weak_password_and_keeps_the_old_one(client, session):
    user = make_user(session, password="correct-horse-battery")
    session.commit()
    login(client, user)
    old_hash = user.password_hash

    response = client.post("/account/settings/password", data={
        "current_password": "correct-horse-battery", "new_password": "1234567890", "confirm_password": "1234567890"})

    assert response.status_code == 400
    errors = _field_errors(response.get_data(as_text=True), "new_password")
    assert errors == ["This is a top-100 common password. Add another word or two. Uncommon words are better."]
    session.expire_all()
    assert session.get(User, user.id).password_hash == old_hash
    assert client.get("/account/settings").status_code == 200  # still signed in


def test_the_field_named_by_the_caller_carries_the_error():
    with pytest.raises(identity.IdentityError) as refused:
        identity.check_password_strength("aaaaaaaaaa", email="a@example.com", name="A", field="new_password")
    assert refused.value.field == "new_password"


def test_long_passwords_are_judged_without_failing():
    identity.check_password_strength("a-very-long-passphrase-" * 9, email="a@example.com", name="A")
    with pytest.raises(identity.IdentityError):
        identity.check_password_strength("a" * 200, email="a@example.com", name="A")


def test_the_demo_password_passes_the_policy_for_every_demo_account(app):
    for email, name, _roles in DEMO_USERS:
        identity.check_password_strength(app.config["DEMO_PASSWORD"], email=email, name=name)
    identity.check_password_strength("demo-password-2026", email="buyer@example.com", name="Bea Buyer")

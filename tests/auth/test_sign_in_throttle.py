"""Password guessing is slowed down per account and address, per address and per account, counted
atomically (parallel attempts see each other), and never keeps the right password out from an
address that has not been failing."""
import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import LoginThrottle, utcnow
from app.services import identity
from tests.factories import make_user

PASSWORD = "correct-horse-battery"


def _post_login(client, address: str, password: str, email: str = "u@example.com"):
    return client.post("/auth/login", data={"email": email, "password": password},
                       environ_base={"REMOTE_ADDR": address})


def _signed_in(client) -> bool:
    with client.session_transaction() as s:
        return "user_id" in s


def test_failures_from_one_address_slow_it_down_but_not_the_right_password_from_another(make_app):
    app = make_app(LOGIN_MAX_FAILURES=3, LOGIN_LOCK_SECONDS=600, LOGIN_SLOWDOWN_SECONDS=30)
    with app.app_context():
        make_user(db.session, email="u@example.com", password=PASSWORD)
        db.session.commit()
    attacker = app.test_client()
    for _ in range(3):
        assert _post_login(attacker, "203.0.113.7", "nope-nope-nope").status_code == 401

    held = _post_login(attacker, "203.0.113.7", PASSWORD)
    owner = app.test_client()
    welcome = _post_login(owner, "198.51.100.20", PASSWORD)

    assert held.status_code == 429
    assert held.headers["Retry-After"] == "30"
    assert "Too many failed sign-ins. Try again in 30 seconds." in held.get_data(as_text=True)
    assert not _signed_in(attacker)
    assert welcome.status_code == 302 and _signed_in(owner)


def test_a_slowed_down_address_gets_one_attempt_per_wait_and_the_wait_doubles(session):
    make_user(session, email="u@example.com", password=PASSWORD)
    session.commit()
    policy = identity.ThrottlePolicy(max_failures=3, lock_seconds=600, slowdown_seconds=10)
    start = utcnow()

    def attempt(seconds: float, password: str = "nope-nope-nope"):
        now = start + timedelta(seconds=seconds)
        counted = identity.begin_sign_in(session, email="u@example.com", remote_addr="203.0.113.7", policy=policy,
                                         now=now)
        return identity.finish_sign_in(session, attempt=counted, password=password, policy=policy, now=now)

    for second in range(3):
        with pytest.raises(identity.IdentityError, match="Email or password is not right."):
            attempt(second)
    with pytest.raises(identity.ThrottledError) as held:
        attempt(5)
    assert held.value.retry_after == 7  # ten seconds after the third failure
    with pytest.raises(identity.IdentityError, match="Email or password is not right."):
        attempt(12.5)  # the one attempt let through after the wait
    with pytest.raises(identity.ThrottledError) as held:
        attempt(13)
    assert held.value.retry_after == 20  # the next wait is twice as long
    assert attempt(33, PASSWORD).email == "u@example.com"  # slowed down, never locked out
    # success forgets this address's failures for the account
    assert session.get(LoginThrottle, "pair:203.0.113.7|u@example.com") is None


def test_failures_are_forgotten_after_the_window(session):
    make_user(session, email="u@example.com", password=PASSWORD)
    policy = identity.ThrottlePolicy(max_failures=2, lock_seconds=60, slowdown_seconds=60)
    start = utcnow()
    for second in (0, 1):
        counted = identity.begin_sign_in(session, email="u@example.com", remote_addr="a", policy=policy,
                                         now=start + timedelta(seconds=second))
        with pytest.raises(identity.IdentityError):
            identity.finish_sign_in(session, attempt=counted, password="nope", policy=policy,
                                    now=start + timedelta(seconds=second))
    with pytest.raises(identity.ThrottledError):
        identity.begin_sign_in(session, email="u@example.com", remote_addr="a", policy=policy,
                               now=start + timedelta(seconds=30))

    later = start + timedelta(seconds=62)
    counted = identity.begin_sign_in(session, email="u@example.com", remote_addr="a", policy=policy, now=later)
    assert identity.finish_sign_in(session, attempt=counted, password=PASSWORD, policy=policy, now=later)


def test_one_address_failing_on_many_accounts_is_slowed_down(session):
    policy = identity.ThrottlePolicy(max_failures=2, lock_seconds=600, slowdown_seconds=60)
    now = utcnow()
    for n in range(8):  # the address limit is four times the account one: 8
        counted = identity.begin_sign_in(session, email=f"victim{n}@example.com", remote_addr="203.0.113.9",
                                         policy=policy, now=now)
        with pytest.raises(identity.IdentityError):
            identity.finish_sign_in(session, attempt=counted, password="guess-guess", policy=policy, now=now)

    with pytest.raises(identity.ThrottledError):
        identity.begin_sign_in(session, email="victim9@example.com", remote_addr="203.0.113.9", policy=policy,
                               now=now)
    assert identity.begin_sign_in(session, email="victim9@example.com", remote_addr="198.51.100.1",
                                  policy=policy, now=now)


def _forty_addresses_at_once(app, password: str) -> Counter:
    """40 browsers at 40 addresses send a sign-in at the same moment, on real threads."""
    statuses: list[int] = []
    barrier = threading.Barrier(40)
    lock = threading.Lock()

    def one(n: int) -> None:
        client = app.test_client()
        barrier.wait()
        status = _post_login(client, f"10.0.{n // 250}.{n % 250 + 1}", password).status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return Counter(statuses)


def _account_limit(app) -> int:
    return app.config["LOGIN_MAX_FAILURES"] * identity.ThrottlePolicy().account_factor


@pytest.mark.postgres_only
def test_forty_parallel_wrong_passwords_check_at_most_the_limit_and_the_owner_still_signs_in(make_app):
    app = make_app(LOGIN_MAX_FAILURES=2, LOGIN_LOCK_SECONDS=600, LOGIN_SLOWDOWN_SECONDS=60,
                   SQLALCHEMY_ENGINE_OPTIONS={"pool_size": 45, "max_overflow": 5})
    with app.app_context():
        make_user(db.session, email="u@example.com", password=PASSWORD)
        db.session.commit()
    owners_browser = app.test_client()  # signed in before, from home
    assert _post_login(owners_browser, "192.0.2.10", PASSWORD).status_code == 302
    assert owners_browser.post("/auth/logout").status_code == 302

    statuses = _forty_addresses_at_once(app, "wrong-guess-wrong")

    assert set(statuses) <= {401, 429}
    assert statuses[401] == _account_limit(app) == 8  # passwords checked: exactly the account limit
    assert statuses[429] == 32
    # the owner's browser, at an address that has not been failing, signs in at once
    assert _post_login(owners_browser, "192.0.2.77", PASSWORD).status_code == 302
    # a browser new to the account is slowed down for a minute, not locked out
    stranger = _post_login(app.test_client(), "192.0.2.78", PASSWORD)
    assert stranger.status_code == 429 and int(stranger.headers["Retry-After"]) <= 60
    with app.app_context():
        # every attempt that reached the counter counted; one that arrived once the account was already
        # slowed down is refused before counting, so how many did depends on the threads' timing
        assert _account_limit(app) <= db.session.get(LoginThrottle, "acct:u@example.com").failures <= 40


def test_forty_wrong_passwords_from_forty_addresses_check_at_most_the_limit(make_app):
    """The same on SQLite, one after another: the account-wide count holds across addresses."""
    app = make_app(LOGIN_MAX_FAILURES=2, LOGIN_LOCK_SECONDS=600, LOGIN_SLOWDOWN_SECONDS=60)
    with app.app_context():
        make_user(db.session, email="u@example.com", password=PASSWORD)
        db.session.commit()
    statuses = Counter(_post_login(app.test_client(), f"10.1.0.{n + 1}", "wrong-guess-wrong").status_code
                       for n in range(40))

    assert statuses == Counter({401: _account_limit(app), 429: 40 - _account_limit(app)})
    with app.app_context():  # a refused attempt is not counted against its address
        assert db.session.scalar(select(func.count()).select_from(LoginThrottle)
                                 .where(LoginThrottle.key.like("pair:%"))) == _account_limit(app)


def test_a_success_takes_its_attempt_back(make_app):
    app = make_app()
    with app.app_context():
        make_user(db.session, email="u@example.com", password=PASSWORD)
        db.session.commit()
    for n in range(30):  # more sign-ins than any limit, from one address and from many
        assert _post_login(app.test_client(), f"10.2.0.{n % 3 + 1}", PASSWORD).status_code == 302
    with app.app_context():
        counts = dict(db.session.execute(select(LoginThrottle.key, LoginThrottle.failures)).all())
    assert counts == {"acct:u@example.com": 0, "ip:10.2.0.1": 0, "ip:10.2.0.2": 0, "ip:10.2.0.3": 0}


def test_a_browser_that_signed_in_before_is_not_held_by_the_account_wide_limit(make_app):
    app = make_app(LOGIN_MAX_FAILURES=1, LOGIN_LOCK_SECONDS=600, LOGIN_SLOWDOWN_SECONDS=45)
    with app.app_context():
        make_user(db.session, email="u@example.com", password=PASSWORD)
        db.session.commit()
    owners_browser = app.test_client()
    assert _post_login(owners_browser, "192.0.2.10", PASSWORD).status_code == 302
    assert owners_browser.post("/auth/logout").status_code == 302
    for n in range(4):  # four addresses fail once each: the account-wide limit (1 x 4) is reached
        assert _post_login(app.test_client(), f"10.3.0.{n + 1}", "wrong-guess-wrong").status_code == 401

    stranger = _post_login(app.test_client(), "192.0.2.78", PASSWORD)
    owner = _post_login(owners_browser, "192.0.2.77", PASSWORD)

    assert stranger.status_code == 429 and stranger.headers["Retry-After"] == "45"
    assert owner.status_code == 302 and _signed_in(owners_browser)


def test_a_forged_known_device_cookie_is_ignored(make_app):
    app = make_app(LOGIN_MAX_FAILURES=1, LOGIN_LOCK_SECONDS=600, LOGIN_SLOWDOWN_SECONDS=45)
    with app.app_context():
        user_id = make_user(db.session, email="u@example.com", password=PASSWORD).id
        db.session.commit()
    for n in range(4):
        assert _post_login(app.test_client(), f"10.4.0.{n + 1}", "wrong-guess-wrong").status_code == 401
    forger = app.test_client()
    forger.set_cookie("dm_device", f"{user_id}.forged.signature")

    assert _post_login(forger, "192.0.2.79", PASSWORD).status_code == 429

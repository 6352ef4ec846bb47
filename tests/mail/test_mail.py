"""Rendering, the outbox, "never twice", the receipt, trials, low balance, offering reviews, the Outbox page."""
from __future__ import annotations

from datetime import timedelta

import pytest

from sqlalchemy import func, select

from app.models import (
    Instance, JobFailure, MailMessage, Notification, Order, OrderLine, OrderStatus, OutboxDelivery, utcnow,
)
from app.services import instances, mail, orders, provisioning, trials
from tests.conftest import ON_POSTGRES, login
from tests.factories import make_offering, make_org, make_user
from tests.mail.delivery import pending_in_process, queued_jobs, run_jobs, stop_before_delivering


def _mails(session, **where):
    query = select(MailMessage).order_by(MailMessage.id)
    for key, value in where.items():
        query = query.where(getattr(MailMessage, key) == value)
    return session.scalars(query).all()


def test_rendering_makes_both_parts_on_one_layout_and_escapes_input_in_html(app):
    with app.app_context():
        rendered = mail.render_mail("offering_sent_back", {
            "name": "Sam", "offering": "<script>alert(1)</script>", "note": "Add a <img src=x onerror=alert(1)> logo",
            "offering_url": "https://m.example/seller/offerings/1", "product_url": "https://m.example/p/x"})
    assert rendered.subject == "<script>alert(1)</script> needs changes before it is published"
    assert rendered.text.startswith("Digitlify Marketplace\n=====")  # the text layout
    assert "Add a <img src=x onerror=alert(1)> logo" in rendered.text
    assert "You get this mail because of your account" in rendered.text
    assert "<script>" not in rendered.html and "<img" not in rendered.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered.html
    assert "Add a &lt;img src=x onerror=alert(1)&gt; logo" in rendered.html
    assert "You get this mail because of your account" in rendered.html  # the HTML layout
    assert "<title>&lt;script&gt;alert(1)&lt;/script&gt; needs changes" in rendered.html


def test_queue_is_a_no_op_for_a_second_mail_with_the_same_key_and_delivery_sends_once(session, app):
    context = {"name": "Ada", "message": "Low.", "billing_url": "https://m.example/account/billing"}
    first = mail.queue_mail(session, to="ada@example.test", template="low_balance", context=context, dedupe_key="k:1")
    second = mail.queue_mail(session, to="ada@example.test", template="low_balance", context=context, dedupe_key="k:1")
    assert first is not None and second is None
    session.commit()  # its job delivers it after the commit, on the embedded outbox
    run_jobs(app)
    assert [m.status for m in _mails(session)] == ["sent"]
    assert mail.deliver_mail(session, message_id=first.id) is False
    session.commit()
    delivered = session.scalars(select(OutboxDelivery)).all()
    assert [(d.to_address, d.subject) for d in delivered] == [("ada@example.test", "Your credit balance is running low")]
    assert delivered[0].headers["Content-Type"].startswith("multipart/alternative")


def test_a_rolled_back_cause_never_mails(session):
    mail.queue_mail(session, to="ada@example.test", template="low_balance", dedupe_key="k:2",
                    context={"name": "Ada", "message": "Low.", "billing_url": "https://m.example/b"})
    session.rollback()
    session.commit()
    assert _mails(session) == [] and session.scalars(select(OutboxDelivery)).all() == []


def test_a_mail_gets_its_delivery_job_with_its_cause_and_never_when_the_cause_rolls_back(session, app, db_url):
    context = {"name": "Ada", "message": "Low.", "billing_url": "https://m.example/b"}
    # given: a mail queued in a transaction that rolls back
    mail.queue_mail(session, to="ada@example.test", template="low_balance", dedupe_key="k:gone", context=context)
    if not ON_POSTGRES:
        assert [name for name, _ in pending_in_process(session)] == ["deliver-mail"]
    session.rollback()

    # then: no job is left, none runs, nothing is mailed
    if ON_POSTGRES:
        assert queued_jobs(db_url) == []
    else:
        assert pending_in_process(session) == []
    session.commit()
    run_jobs(app)
    assert _mails(session) == [] and session.scalars(select(OutboxDelivery)).all() == []
    assert session.scalar(select(func.count()).select_from(JobFailure)) == 0

    # when: the same mail is queued again and the cause commits
    kept = mail.queue_mail(session, to="ada@example.test", template="low_balance", dedupe_key="k:gone",
                           context=context)
    message_id = kept.id
    if not ON_POSTGRES:
        assert pending_in_process(session) == [("deliver-mail", {"message_id": message_id})]
    session.commit()

    # then: it has exactly one job, which delivers it
    if ON_POSTGRES:
        assert [(job.task_name, job.status, job.args) for job in queued_jobs(db_url)] == [
            ("deliver-mail", "todo", {"message_id": message_id})]
    run_jobs(app)
    if ON_POSTGRES:
        assert [(job.task_name, job.status) for job in queued_jobs(db_url)] == [("deliver-mail", "succeeded")]
    assert [(m.id, m.status) for m in _mails(session)] == [(message_id, "sent")]
    assert session.scalar(select(func.count()).select_from(OutboxDelivery)) == 1


def test_a_bad_address_is_refused_and_nothing_is_queued(session):
    import pytest

    with pytest.raises(mail.MailError):
        mail.queue_mail(session, to="ada@example.test\r\nBcc: x@y.z", template="low_balance", dedupe_key="k:3",
                        context={"name": "A", "message": "m", "billing_url": "u"})
    assert _mails(session) == []


def test_deliver_pending_sends_queued_mail(session):
    mail.queue_mail(session, to="ada@example.test", template="low_balance", dedupe_key="k:4",
                    context={"name": "A", "message": "m", "billing_url": "https://m.example/b"})
    stop_before_delivering(session)
    session.commit()
    assert [m.status for m in _mails(session)] == ["queued"]
    report = mail.deliver_pending(session, limit=10)
    session.commit()
    assert (report.sent, report.failed) == (1, 0)
    assert [m.status for m in _mails(session)] == ["sent"]


def _paid_order(session):
    buyer = make_user(session, email="buyer1@example.test", name="Bea Buyer")
    seller = make_user(session, roles=("buyer", "seller"))
    offering = make_offering(session, publisher=make_org(session, owner=seller), name="Ledger Bot")
    plan = offering.plans[0]
    org = orders.checkout_organizations(session, user=buyer)[0]
    order = Order(number="DM-RECEIPT1", user_id=buyer.id, organization_id=org.id, email="receipts@example.test",
                  status=OrderStatus.PAID.value, total_minor=plan.price_minor, currency=plan.currency,
                  paid_at=utcnow())
    session.add(order)
    session.flush()
    session.add(OrderLine(order_id=order.id, kind="plan", sku=plan.sku, name="Ledger Bot Starter", plan_id=plan.id,
                          offering_id=offering.id, quantity=1, unit_price_minor=plan.price_minor,
                          total_minor=plan.price_minor))
    session.commit()
    return session.get(Order, order.id)


def test_the_receipt_is_sent_once_when_the_paid_handler_runs_twice(session, app):
    order = _paid_order(session)
    provisioning.handle_order_paid(session, order=order, actor_label="webhook")
    session.commit()
    provisioning.handle_order_paid(session, order=order, actor_label="reconcile-orders")
    session.commit()
    run_jobs(app)
    receipts = _mails(session, template="order_receipt")
    assert [(m.to_address, m.status, m.dedupe_key) for m in receipts] == [
        ("receipts@example.test", "sent", f"receipt:order:{order.id}")]
    assert receipts[0].subject == "Your receipt for order DM-RECEIPT1"
    assert "Ledger Bot Starter" in receipts[0].text_body and "Ledger Bot Starter" in receipts[0].html_body
    assert f"/account/orders/{order.id}" in receipts[0].text_body
    assert session.scalar(select(func.count()).select_from(OutboxDelivery)) == 1


def test_unverified_account_cannot_start_a_trial_or_buy(session):
    import pytest

    user = make_user(session, verified=False)
    seller = make_user(session, roles=("buyer", "seller"))
    offering = make_offering(session, publisher=make_org(session, owner=seller), trial_days=7, trial_credits=5)
    session.commit()
    org = orders.checkout_organizations(session, user=user)[0]
    with pytest.raises(trials.TrialError) as refused:
        trials.start_trial(session, user=user, organization=org, offering=offering)
    assert refused.value.status == 403 and "Confirm your email address before you start a free trial" in str(refused.value)
    with pytest.raises(orders.OrderError) as refused:
        orders.place_order(session, user=user, cart=None, organization_id=None, email=user.email, backend="local")
    assert refused.value.status == 403 and "Confirm your email address before you buy" in str(refused.value)
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Instance)) == 0


def test_trial_mails_started_ending_and_ended_once_each(session, app):
    user = make_user(session, name="Tia")
    seller = make_user(session, roles=("buyer", "seller"))
    offering = make_offering(session, publisher=make_org(session, owner=seller), name="Note Taker", trial_days=7,
                             trial_credits=5)
    org = orders.checkout_organizations(session, user=user)[0]
    started = utcnow() - timedelta(days=6)
    instance = trials.start_trial(session, user=user, organization=org, offering=offering, now=started)
    session.commit()
    runner = app.test_cli_runner()  # the trial ends in a day: the two-day reminder is due, once
    assert "Queued 1 trial reminder(s)." in runner.invoke(args=["trial-reminders"]).output
    assert "Queued 0 trial reminder(s)." in runner.invoke(args=["trial-reminders"]).output
    instance.trial_ends_at = utcnow() - timedelta(minutes=1)
    session.commit()
    instances.expire_ended_trials(session)
    session.commit()
    instances.expire_ended_trials(session)
    session.commit()
    assert [(m.template, m.to_address) for m in _mails(session)] == [
        ("trial_started", user.email), ("trial_ending", user.email), ("trial_ended", user.email)]
    assert _mails(session)[0].subject == "Your free trial of Note Taker has started"


def test_low_balance_notices_are_mailed_once_to_owners_and_admins(session, app):
    owner = make_user(session, name="Olive")
    org = make_org(session, owner=owner)
    session.add(Notification(organization_id=org.id, kind="low_balance",
                             message="Your credit balance fell below 100: 40 credits left."))
    session.commit()
    runner = app.test_cli_runner()
    assert "Queued 1 low-balance mail(s)." in runner.invoke(args=["low-balance-mails"]).output
    assert "Queued 0 low-balance mail(s)." in runner.invoke(args=["low-balance-mails"]).output
    run_jobs(app)
    sent = _mails(session, template="low_balance")
    assert [(m.to_address, m.status) for m in sent] == [(owner.email, "sent")]
    assert "40 credits left" in sent[0].text_body


def test_offering_reviewed_mails_the_sellers_members_with_the_note_once(session):
    seller = make_user(session, roles=("buyer", "seller"))
    offering = make_offering(session, publisher=make_org(session, owner=seller), name="Brief Writer")
    session.commit()
    assert mail.offering_reviewed(session, offering, False, "Add a <b>logo</b>.") == 1
    assert mail.offering_reviewed(session, offering, False, "Add a <b>logo</b>.") == 0
    session.commit()
    (sent,) = _mails(session)
    assert (sent.to_address, sent.subject) == (seller.email, "Brief Writer needs changes before it is published")
    assert "Add a <b>logo</b>." in sent.text_body and "Add a &lt;b&gt;logo&lt;/b&gt;." in sent.html_body


def test_the_outbox_page_lists_mail_and_shows_one_in_a_sandbox(client, session, operator, app):
    mail.queue_mail(session, to="ada@example.test", template="low_balance", dedupe_key="k:page",
                    context={"name": "A", "message": "<script>x</script>", "billing_url": "https://m.example/b"})
    session.commit()
    run_jobs(app)
    (message,) = _mails(session)
    login(client, operator)
    page = client.get("/operator/outbox").get_data(as_text=True)
    assert "ada@example.test" in page and "Your credit balance is running low" in page and "Sent" in page
    detail = client.get(f"/operator/outbox/{message.id}").get_data(as_text=True)
    assert f'sandbox="" referrerpolicy="no-referrer" src="/operator/outbox/{message.id}/html"' in detail
    assert "&lt;script&gt;x&lt;/script&gt;" in detail  # the text part, escaped on the page
    html = client.get(f"/operator/outbox/{message.id}/html")
    assert html.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert "&lt;script&gt;x&lt;/script&gt;" in html.get_data(as_text=True)


def test_the_outbox_is_for_operators_only(client, session, buyer):
    login(client, buyer)
    assert client.get("/operator/outbox").status_code == 403


def test_with_smtp_the_outbox_hides_mails_whose_link_signs_in(make_app, session, demo):
    from app.services import identity, recovery

    app = make_app(MAIL_BACKEND="smtp", SMTP_URL="smtp://127.0.0.1:9?starttls=false", SMTP_TIMEOUT=1)
    from app.extensions import db
    with app.app_context():
        user = identity.get_user_by_email(db.session, "buyer@example.com")
        recovery.request_password_reset(db.session, email=user.email, secret_key="k" * 20, minutes=60)
        db.session.commit()
        message_id = db.session.scalar(select(MailMessage.id).where(MailMessage.template == "password_reset"))
        client = app.test_client()
        login(client, identity.get_user_by_email(db.session, "operator@example.com"))
    detail = client.get(f"/operator/outbox/{message_id}").get_data(as_text=True)
    assert "/auth/password/reset/" not in detail and "its text is not shown here" in detail
    assert client.get(f"/operator/outbox/{message_id}/html").status_code == 404


@pytest.mark.postgres_only
def test_two_concurrent_paid_handlers_queue_one_receipt(app, session):
    import threading

    from sqlalchemy.orm import Session as PlainSession

    order_id = _paid_order(session).id
    engine = session.get_bind()
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def deliver_webhook(label: str) -> None:
        with app.app_context(), PlainSession(bind=engine) as own:
            try:
                order = own.get(Order, order_id)
                barrier.wait(timeout=10)
                own.refresh(order, with_for_update=True)  # as apply_remote_payment does
                provisioning.handle_order_paid(own, order=order, actor_label=label)
                own.commit()
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                errors.append(exc)

    threads = [threading.Thread(target=deliver_webhook, args=(label,)) for label in ("webhook", "reconcile")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    run_jobs(app)
    assert [m.dedupe_key for m in _mails(session, template="order_receipt")] == [f"receipt:order:{order_id}"]
    assert session.scalar(select(func.count()).select_from(OutboxDelivery)) == 1


def test_send_mail_command_sends_what_is_queued_and_reports_failures(make_app):
    from app.extensions import db

    refused = make_app(MAIL_BACKEND="smtp", SMTP_URL="smtp://127.0.0.1:9?starttls=false", SMTP_TIMEOUT=1)
    outbox = make_app()
    with outbox.app_context():
        mail.queue_mail(db.session, to="ada@example.test", template="low_balance", dedupe_key="k:cli",
                        context={"name": "A", "message": "m", "billing_url": "https://m.example/b"})
        stop_before_delivering(db.session)
        db.session.commit()
    outcome = refused.test_cli_runner().invoke(args=["send-mail"])
    assert outcome.exit_code == 1 and "Sent 0 mail(s); 1 not sent" in outcome.output
    with outbox.app_context():
        (message,) = _mails(db.session)
        assert (message.status, message.attempts) == ("queued", 1)
        assert "Could not reach the mail server" in message.last_error
        message.last_attempt_at = utcnow() - timedelta(minutes=5)  # its back-off has passed
        db.session.commit()
    outcome = outbox.test_cli_runner().invoke(args=["send-mail"])
    assert outcome.exit_code == 0 and "Sent 1 mail(s); 0 not sent" in outcome.output
    assert "Sent 0 mail(s); 0 not sent" in outbox.test_cli_runner().invoke(args=["send-mail"]).output
    with outbox.app_context():
        assert [m.status for m in _mails(db.session)] == ["sent"]


def test_an_operators_decision_mails_the_seller_with_it(session, seller, operator):
    from tests.seller.test_seller_pages import _draft

    from app.services import offerings

    approved, sent_back = _draft(session, seller, name="Memo Writer"), _draft(session, seller, name="Brief Bot")
    for offering in (approved, sent_back):
        offerings.set_plan(session, offering=offering, actor=seller, tier="starter", name="Starter", price_minor=900,
                           currency="USD", included_credits=100, credits_per_run=1, max_runs_per_period=None)
        offerings.submit_for_review(session, offering=offering, actor=seller)
    offerings.approve(session, offering=approved, actor=operator)
    offerings.reject(session, offering=sent_back, actor=operator, reason="Add a screenshot.")
    session.commit()

    assert sorted((m.template, m.to_address) for m in _mails(session) if m.template.startswith("offering_")) == [
        ("offering_approved", seller.email), ("offering_sent_back", seller.email)]
    (note,) = _mails(session, template="offering_sent_back")
    assert "Add a screenshot." in note.text_body


def test_the_send_mail_sweep_sends_mail_whose_job_was_lost_once_and_records_its_run(app, session):
    from app.jobs import load_tasks
    from app.jobs.runtime import run_task
    from app.models import PeriodicRun

    mail.queue_mail(session, to="ada@example.test", template="low_balance", dedupe_key="k:sweep",
                    context={"name": "A", "message": "m", "billing_url": "https://m.example/b"})
    stop_before_delivering(session)
    session.commit()

    outcome = run_task(app, load_tasks()["send-mail"], {})  # as the worker runs the periodic task

    assert str(outcome) == "Sent 1 mail(s); 0 not sent."
    run_jobs(app)  # PostgreSQL: the job was only waiting; it finds the mail sent and sends nothing
    assert [m.status for m in _mails(session)] == ["sent"]
    assert session.scalar(select(func.count()).select_from(OutboxDelivery)) == 1
    run = session.get(PeriodicRun, "send-mail")
    assert (run.succeeded, run.summary) == (True, "Sent 1 mail(s); 0 not sent.")

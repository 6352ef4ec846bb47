"""The SMTP adapter against a real SMTP server on loopback (aiosmtpd), through deliver_mail."""
from __future__ import annotations

import socket
from email import message_from_bytes, policy

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from app.jobs import load_tasks
from app.jobs.runtime import run_task
from app.models import JobFailure, MailMessage
from app.services import mail
from tests.mail.delivery import make_jobs_due, queued_jobs, run_jobs, stop_before_delivering


class Recorder:
    """An SMTP handler that keeps what it accepted; it can refuse the first `refuse` attempts."""

    def __init__(self, refuse: int = 0) -> None:
        self.refuse = refuse
        self.accepted: list = []
        self.tries = 0

    async def handle_DATA(self, server, session, envelope):
        self.tries += 1
        if self.tries <= self.refuse:
            return "451 4.3.0 Try again later"
        self.accepted.append(envelope)
        return "250 OK"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server():
    servers = []

    def start(refuse: int = 0) -> tuple[Recorder, int]:
        handler = Recorder(refuse)
        controller = Controller(handler, hostname="127.0.0.1", port=_port())
        controller.start()
        servers.append(controller)
        return handler, controller.port

    yield start
    for controller in servers:
        controller.stop()


def _queue(session, app, *, deliver: bool = True) -> int:
    """Queue a mail and commit; with `deliver`, its job then runs once (after the commit on SQLite,
    by a worker on PostgreSQL)."""
    message = mail.queue_mail(session, to="ada@example.test", template="trial_ended", dedupe_key="test:smtp:1",
                              context={"name": "Ada", "offering": "Notes <b>Pro</b>", "trial_ends_at": None,
                                       "credits": 0, "instance_url": "https://m.example/i/1",
                                       "product_url": "https://m.example/p/x"})
    if not deliver:
        stop_before_delivering(session)
    session.commit()
    message_id = message.id
    if deliver:
        run_jobs(app)
    return message_id


def test_a_queued_mail_goes_out_once_as_multipart_text_and_html(make_app, smtp_server):
    handler, port = smtp_server()
    app = make_app(MAIL_BACKEND="smtp", SMTP_URL=f"smtp://127.0.0.1:{port}?starttls=false",
                   MAIL_FROM="Market <mail@market.example>")
    from app.extensions import db
    with app.app_context():
        message_id = _queue(db.session, app)  # delivered by its job
        assert mail.deliver_mail(db.session, message_id=message_id) is False  # a repeat sends nothing
        db.session.commit()
        message = db.session.get(MailMessage, message_id)
        assert (message.status, message.attempts, message.last_error) == ("sent", 1, None)
    assert len(handler.accepted) == 1
    envelope = handler.accepted[0]
    assert envelope.rcpt_tos == ["ada@example.test"]
    parsed = message_from_bytes(envelope.content, policy=policy.default)
    assert parsed["From"] == "Market <mail@market.example>"
    assert parsed["Subject"] == "Your free trial of Notes <b>Pro</b> has ended"
    assert parsed.get_content_type() == "multipart/alternative"
    assert "Notes <b>Pro</b>" in parsed.get_body(("plain",)).get_content()
    assert "Notes &lt;b&gt;Pro&lt;/b&gt;" in parsed.get_body(("html",)).get_content()


def test_a_refused_first_attempt_is_recorded_then_the_retry_sends_it_once(make_app, smtp_server):
    handler, port = smtp_server(refuse=1)
    app = make_app(MAIL_BACKEND="smtp", SMTP_URL=f"smtp://127.0.0.1:{port}?starttls=false")
    from app.extensions import db
    with app.app_context():
        message_id = _queue(db.session, app)  # its job's try is refused and recorded
        message = db.session.get(MailMessage, message_id)
        db.session.refresh(message)
        assert (message.status, message.attempts) == ("queued", 1)
        assert "451" in message.last_error and "Try again later" in message.last_error
        assert mail.deliver_mail(db.session, message_id=message_id) is True  # the job's retry
        db.session.commit()
        assert mail.deliver_mail(db.session, message_id=message_id) is False
        db.session.refresh(message)
        assert (message.status, message.attempts, message.last_error) == ("sent", 2, None)
    assert handler.tries == 2 and len(handler.accepted) == 1


def test_an_unreachable_server_raises_for_the_job_and_keeps_the_mail_queued(make_app):
    app = make_app(MAIL_BACKEND="smtp", SMTP_URL=f"smtp://127.0.0.1:{_port()}?starttls=false", SMTP_TIMEOUT=2)
    from app.extensions import db
    with app.app_context():
        message_id = _queue(db.session, app)
        with pytest.raises(mail.MailDeliveryError):
            mail.deliver_mail(db.session, message_id=message_id)
        db.session.commit()
        message = db.session.scalar(select(MailMessage).where(MailMessage.id == message_id))
        assert (message.status, message.attempts) == ("queued", 2)
        assert "Could not reach the mail server" in message.last_error


def test_starttls_is_required_when_the_server_does_not_offer_it(make_app, smtp_server):
    handler, port = smtp_server()
    app = make_app(MAIL_BACKEND="smtp", SMTP_URL=f"smtp://user:pw@127.0.0.1:{port}")
    from app.extensions import db
    with app.app_context():
        message_id = _queue(db.session, app)
        message = db.session.get(MailMessage, message_id)
        db.session.refresh(message)
        assert message.status == "queued" and "does not offer STARTTLS" in message.last_error
    assert handler.accepted == []


def test_the_delivery_job_records_a_refusal_raises_for_a_retry_and_sends_once(make_app, smtp_server):
    handler, port = smtp_server(refuse=1)
    app = make_app(MAIL_BACKEND="smtp", SMTP_URL=f"smtp://127.0.0.1:{port}?starttls=false")
    from app.extensions import db
    deliver = load_tasks()["deliver-mail"]
    with app.app_context():
        message_id = _queue(db.session, app, deliver=False)
    with pytest.raises(mail.MailDeliveryError):
        run_task(app, deliver, {"message_id": message_id})  # refused: raised for the engine to retry
    with app.app_context():
        message = db.session.get(MailMessage, message_id)
        assert (message.status, message.attempts) == ("queued", 1)  # the attempt was committed
        assert "451" in message.last_error
    assert str(run_task(app, deliver, {"message_id": message_id})) == f"Sent mail {message_id}."
    assert str(run_task(app, deliver, {"message_id": message_id})) == (
        f"Mail {message_id} was sent already or is no longer queued.")
    with app.app_context():
        message = db.session.get(MailMessage, message_id)
        assert (message.status, message.attempts) == ("sent", 2)
    assert handler.tries == 2 and len(handler.accepted) == 1


@pytest.mark.postgres_only
def test_a_refused_mail_is_retried_by_the_job_engine_with_backoff_and_sent_exactly_once(
        make_app, smtp_server, db_url):
    from datetime import datetime, timezone

    handler, port = smtp_server(refuse=1)
    app = make_app(MAIL_BACKEND="smtp", SMTP_URL=f"smtp://127.0.0.1:{port}?starttls=false")
    from app.extensions import db

    # given: a queued mail whose job is waiting for a worker
    with app.app_context():
        message_id = _queue(db.session, app, deliver=False)
    (job,) = queued_jobs(db_url)
    assert (job.task_name, job.status, job.args) == ("deliver-mail", "todo", {"message_id": message_id})

    # when: a worker runs it and the server refuses
    before = datetime.now(timezone.utc)
    run_jobs(app)

    # then: the refusal is kept on the message and the job waits for its retry
    (job,) = queued_jobs(db_url)
    assert (job.status, job.attempts) == ("todo", 1)
    assert 4 <= (job.scheduled_at - before).total_seconds() < 14  # the first backoff: 4 s
    with app.app_context():
        message = db.session.get(MailMessage, message_id)
        assert (message.status, message.attempts) == ("queued", 1) and "451" in message.last_error
        (failure,) = db.session.scalars(select(JobFailure)).all()
        assert (failure.job_id, failure.task_name, failure.attempt) == (job.id, "deliver-mail", 1)
    run_jobs(app)  # not due yet: nothing runs
    assert handler.tries == 1

    # when: its retry is due and a worker runs it
    make_jobs_due(db_url)
    run_jobs(app)

    # then: it was sent, once; nothing is left to run or to send
    (job,) = queued_jobs(db_url)
    assert (job.status, job.attempts) == ("succeeded", 2)
    make_jobs_due(db_url)
    run_jobs(app)
    assert app.test_cli_runner().invoke(args=["send-mail"]).output.startswith("Sent 0 mail(s); 0 not sent")
    with app.app_context():
        message = db.session.get(MailMessage, message_id)
        assert (message.status, message.attempts, message.last_error) == ("sent", 2, None)
    assert handler.tries == 2 and len(handler.accepted) == 1


@pytest.fixture
def tls_files(tmp_path, monkeypatch):
    """A self-signed certificate for 127.0.0.1 that the client trusts (SSL_CERT_FILE)."""
    import datetime
    import ipaddress
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_file, key_file)
    return server_context


def _checking_password(logins: list):
    from aiosmtpd.smtp import AuthResult

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.login == b"mailer" and auth_data.password == b"p@ss word")

    return authenticator


def test_smtp_url_speaks_starttls_then_logs_in(make_app, tls_files):
    handler, logins = Recorder(), []
    controller = Controller(handler, hostname="127.0.0.1", port=_port(), tls_context=tls_files,
                            require_starttls=True, authenticator=_checking_password(logins), auth_required=True)
    controller.start()
    try:
        app = make_app(MAIL_BACKEND="smtp", SMTP_URL=f"smtp://mailer:p%40ss%20word@127.0.0.1:{controller.port}")
        from app.extensions import db
        with app.app_context():
            message_id = _queue(db.session, app)
            assert db.session.get(MailMessage, message_id).status == "sent"
    finally:
        controller.stop()
    assert logins == [(b"mailer", b"p@ss word")] and len(handler.accepted) == 1


def test_smtps_url_speaks_tls_from_the_first_byte(make_app, tls_files):
    handler = Recorder()
    controller = Controller(handler, hostname="127.0.0.1", port=_port(), ssl_context=tls_files)
    controller.start()
    try:
        app = make_app(MAIL_BACKEND="smtp", SMTP_URL=f"smtps://127.0.0.1:{controller.port}")
        from app.extensions import db
        with app.app_context():
            message_id = _queue(db.session, app)
            assert db.session.get(MailMessage, message_id).status == "sent"
    finally:
        controller.stop()
    assert len(handler.accepted) == 1

"""Seller webhooks: endpoints and their secrets, events on instance changes signed with the Standard
Webhooks scheme (checked here independently), retries with backoff until marked failed, the
delivery log with Resend, and the SSRF guard."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import socket
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler

import pytest
from sqlalchemy import func, select, update

from app.adapters.secrets import get_secret_store
from app.adapters.webhooks import DestinationRefused, HttpWebhookSender, check_destination
from app.extensions import db
from app.jobs.webhook_tasks import deliver_seller_webhook, queue_due_webhooks
from app.models import (
    Membership, SellerWebhookAttempt, SellerWebhookDelivery, SellerWebhookEndpoint, SellerWebhookEvent,
    StoredSecret,
)
from app.services import instances, seller_webhooks
from tests.conftest import login
from tests.factories import make_offering, make_org, make_user
from tests.mail.delivery import run_jobs
from tests.fake_http import FakeServer


class Receiver:
    """A local HTTP endpoint that records what it receives and answers with `status`."""

    def __init__(self) -> None:
        self.status = 200
        self.requests: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.status)
                self.send_header("content-type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if receiver.status < 300 else b"receiver is down")

            def log_message(self, *args):
                pass

        self.server = FakeServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def app(make_app):
    return make_app(SELLER_WEBHOOK_ALLOW_PRIVATE=True, SELLER_WEBHOOK_TIMEOUT=3.0)


@pytest.fixture
def shop(session):
    """A publisher with an offering, its owner (a seller), and a customer organization."""
    seller = make_user(session, email="sia@example.test", name="Sia Seller", roles=("buyer", "seller"))
    publisher = make_org(session, owner=seller, name="Sia Labs")
    offering = make_offering(session, publisher=publisher, name="Ticket Sorter")
    buyer = make_user(session, email="bo@example.test", name="Bo Buyer")
    customer = make_org(session, owner=buyer, name="Bo Co")
    session.commit()
    return seller, publisher, offering, buyer, customer


def _verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The Standard Webhooks check, written from the scheme's description, not from our code."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(expected, part.split(",", 1)[1])
               for part in headers["webhook-signature"].split() if part.startswith("v1,"))


def _count(session, model):
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model))


def test_an_instance_event_reaches_the_endpoint_signed_and_verifiable(app, session, shop, receiver):
    seller, publisher, offering, buyer, customer = shop
    endpoint, secret = seller_webhooks.create_endpoint(
        session, user=seller, organization_id=publisher.id, url=receiver.url,
        events=["instance.created", "instance.cancelled"])
    session.commit()
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{32}", secret)
    assert secret.encode() not in b"".join(bytes(s.ciphertext) for s in session.scalars(select(StoredSecret)))
    assert get_secret_store(session).get(endpoint.secret_ref) == secret

    instance = instances.create_instance(session, organization=customer, plan=offering.plans[0], created_by=buyer)
    session.commit()
    run_jobs(app)
    instances.cancel_instance(session, instance=instance, actor=buyer)
    session.commit()
    run_jobs(app)

    assert len(receiver.requests) == 2
    (created_headers, created_body), (cancelled_headers, cancelled_body) = receiver.requests
    for headers, body in receiver.requests:
        assert _verify(secret, headers, body)
        assert not _verify(secret, headers, body + b" ")
        assert not _verify(seller_webhooks.new_secret(), headers, body)
        assert abs(int(headers["webhook-timestamp"]) - datetime.now(timezone.utc).timestamp()) < 120
        assert headers["content-type"] == "application/json"
    created = json.loads(created_body)
    assert created["type"] == "instance.created"
    assert created["data"]["instance_id"] == instance.id
    assert created["data"]["offering"] == {"id": offering.id, "slug": offering.slug, "name": "Ticket Sorter"}
    assert created["data"]["customer"] == {"organization_id": customer.id, "name": "Bo Co"}
    assert json.loads(cancelled_body)["type"] == "instance.cancelled"
    assert json.loads(cancelled_body)["data"]["status"] == "cancelled"
    assert created_headers["webhook-id"].startswith("evt_") and created_headers["webhook-id"] != cancelled_headers[
        "webhook-id"]
    assert {d.status for d in session.scalars(select(SellerWebhookDelivery))} == {"succeeded"}
    attempt = session.scalars(select(SellerWebhookAttempt).order_by(SellerWebhookAttempt.id)).first()
    assert (attempt.status_code, attempt.attempt, attempt.response_excerpt, attempt.succeeded) == (200, 1, "ok", True)


def test_only_subscribed_active_endpoints_of_that_publisher_get_an_event(app, session, shop, receiver):
    seller, publisher, offering, buyer, customer = shop
    seller_webhooks.create_endpoint(session, user=seller, organization_id=publisher.id, url=receiver.url,
                                    events=["instance.cancelled"])
    other_owner = make_user(session, roles=("buyer", "seller"))
    other = make_org(session, owner=other_owner)
    seller_webhooks.create_endpoint(session, user=other_owner, organization_id=other.id, url=receiver.url,
                                    events=["instance.created"])
    session.commit()

    instances.create_instance(session, organization=customer, plan=offering.plans[0], created_by=buyer)
    session.commit()
    run_jobs(app)

    assert receiver.requests == []
    assert _count(session, SellerWebhookEvent) == 0
    with pytest.raises(seller_webhooks.WebhookError):
        seller_webhooks.emit(session, publisher_id=publisher.id, event="instance.exploded", data={})


def test_a_failing_endpoint_is_retried_with_backoff_then_marked_failed(app, session, shop, receiver):
    seller, publisher, offering, buyer, customer = shop
    receiver.status = 500
    endpoint, secret = seller_webhooks.create_endpoint(session, user=seller, organization_id=publisher.id,
                                                       url=receiver.url, events=["instance.created"])
    session.commit()
    instances.create_instance(session, organization=customer, plan=offering.plans[0], created_by=buyer)
    session.commit()
    run_jobs(app)  # the first try, right away

    delivery = session.scalar(select(SellerWebhookDelivery))
    session.refresh(delivery)
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    first_try = delivery.last_attempt_at
    assert delivery.next_attempt_at - first_try == timedelta(seconds=5)

    # the sweep queues it once it is due, and the job tries again
    delivery.next_attempt_at = delivery.next_attempt_at - timedelta(seconds=10)
    session.commit()
    queue_due_webhooks(session)
    session.commit()
    run_jobs(app)
    session.refresh(delivery)
    assert delivery.attempts == 2
    assert delivery.next_attempt_at - delivery.last_attempt_at == timedelta(seconds=20)

    # then on schedule (the clock moved on by hand) until the 24 hours are over
    gaps = []
    while delivery.status == "pending":
        due = delivery.next_attempt_at
        gaps.append(due - delivery.last_attempt_at)
        assert deliver_seller_webhook(session, delivery_id=delivery.id, now=(due - timedelta(seconds=1)).isoformat()
                                      ).endswith("is not due (sent, failed, or being sent).")
        deliver_seller_webhook(session, delivery_id=delivery.id, now=due.isoformat())
        session.commit()
        session.refresh(delivery)
    assert [g.total_seconds() for g in gaps] == [20, 80, 320, 1280, 5120, 20480, 28800, 28800]
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("failed", 10, None)
    assert delivery.last_attempt_at - delivery.created_at <= timedelta(hours=24)
    assert len(receiver.requests) == 10
    assert len({h["webhook-id"] for h, _ in receiver.requests}) == 1  # one event, one id on every try
    assert all(_verify(secret, h, b) for h, b in receiver.requests)
    attempts = list(session.scalars(select(SellerWebhookAttempt).order_by(SellerWebhookAttempt.attempt)))
    assert [a.attempt for a in attempts] == list(range(1, 11))
    assert {(a.status_code, a.response_excerpt, a.succeeded) for a in attempts} == {(500, "receiver is down", False)}
    assert deliver_seller_webhook(session, delivery_id=delivery.id).endswith("is not due (sent, failed, or being sent).")


def test_the_seller_registers_an_endpoint_sees_the_secret_once_reads_the_log_and_resends(
        app, client, session, shop, receiver):
    seller, publisher, offering, buyer, customer = shop
    login(client, seller)

    refused = client.post(f"/seller/webhooks?publisher={publisher.id}",
                          data={"url": receiver.url, "events": []})
    created = client.post(f"/seller/webhooks?publisher={publisher.id}",
                          data={"url": receiver.url, "events": ["instance.created"], "is_active": "y"})

    assert refused.status_code == 400 and "Choose at least one event to send." in refused.get_data(as_text=True)
    assert created.status_code == 201
    secret = re.search(r'value="(whsec_[^"]+)"', created.get_data(as_text=True)).group(1)
    listing = client.get(f"/seller/webhooks?publisher={publisher.id}").get_data(as_text=True)
    assert receiver.url in listing and secret not in listing
    endpoint = session.scalar(select(SellerWebhookEndpoint))

    instances.create_instance(session, organization=customer, plan=offering.plans[0], created_by=buyer)
    session.commit()
    run_jobs(app)
    detail = client.get(f"/seller/webhooks/{endpoint.id}").get_data(as_text=True)
    assert "instance.created" in detail and "delivered" in detail
    assert re.search(r"<td>1</td>\s*<td>200", detail)  # try 1 answered 200
    delivery = session.scalar(select(SellerWebhookDelivery))

    resent = client.post(f"/seller/webhooks/{endpoint.id}/deliveries/{delivery.id}/resend")
    run_jobs(app)

    assert resent.status_code == 303
    assert len(receiver.requests) == 2
    assert receiver.requests[0][0]["webhook-id"] == receiver.requests[1][0]["webhook-id"]
    assert all(_verify(secret, h, b) for h, b in receiver.requests)

    rotated = client.post(f"/seller/webhooks/{endpoint.id}/rotate")
    new_secret = re.search(r'value="(whsec_[^"]+)"', rotated.get_data(as_text=True)).group(1)
    assert new_secret != secret
    client.post(f"/seller/webhooks/{endpoint.id}/deliveries/{delivery.id}/resend")
    run_jobs(app)
    headers, body = receiver.requests[-1]
    assert _verify(new_secret, headers, body) and not _verify(secret, headers, body)


def test_a_plain_member_of_the_publisher_cannot_see_or_change_its_webhooks(app, client, session, shop, receiver):
    seller, publisher, offering, buyer, customer = shop
    endpoint, _ = seller_webhooks.create_endpoint(session, user=seller, organization_id=publisher.id,
                                                  url=receiver.url, events=["instance.created"])
    colleague = make_user(session, roles=("buyer", "seller"))
    session.add(Membership(user_id=colleague.id, organization_id=publisher.id, role="member"))
    session.commit()
    login(client, colleague)

    page = client.get(f"/seller/webhooks?publisher={publisher.id}")
    assert page.status_code == 200 and "Only owners and admins" in page.get_data(as_text=True)
    assert receiver.url not in page.get_data(as_text=True)
    assert client.get(f"/seller/webhooks/{endpoint.id}").status_code == 404
    assert client.post(f"/seller/webhooks/{endpoint.id}/rotate").status_code == 404
    assert client.post(f"/seller/webhooks/{endpoint.id}/delete").status_code == 404
    assert _count(session, SellerWebhookEndpoint) == 1


# --- the SSRF guard ---------------------------------------------------------------------------------

@pytest.mark.parametrize("url", [
    "https://127.0.0.1/hooks", "https://localhost/hooks", "https://10.1.2.3/hooks", "https://172.16.0.5/",
    "https://192.168.1.10/", "https://169.254.169.254/latest/meta-data", "https://100.64.0.1/", "https://0.0.0.0/",
    "https://[::1]/", "https://[fe80::1]/", "https://[fd00::1]/", "https://[::ffff:10.0.0.1]/", "https://240.0.0.1/",
])
def test_private_and_reserved_addresses_are_refused_in_production_mode(make_app, session, shop, url):
    app = make_app(SELLER_WEBHOOK_ALLOW_PRIVATE=False)
    with app.app_context():
        seller, publisher = db.session.merge(shop[0]), shop[1]
        with pytest.raises(seller_webhooks.WebhookError) as refused:
            seller_webhooks.create_endpoint(db.session, user=seller, organization_id=publisher.id, url=url,
                                            events=["instance.created"])
        db.session.rollback()
    assert refused.value.field == "url"
    assert "private or reserved" in str(refused.value)
    assert _count(session, SellerWebhookEndpoint) == 0


def test_a_name_that_resolves_to_a_private_address_is_refused_and_public_https_is_accepted():
    def resolver(addresses):
        return lambda host, port, type=None: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]

    with pytest.raises(DestinationRefused, match="private or reserved"):
        check_destination("https://hooks.example.com/x", allow_private=False,
                          resolve=resolver(["93.184.215.14", "192.168.0.7"]))
    check_destination("https://hooks.example.com/x", allow_private=False, resolve=resolver(["93.184.215.14"]))
    for url in ("http://hooks.example.com/x", "ftp://hooks.example.com/", "https://user:pw@hooks.example.com/",
                "hooks.example.com", "https://"):
        with pytest.raises(DestinationRefused):
            check_destination(url, allow_private=False, resolve=resolver(["93.184.215.14"]))
    check_destination("http://127.0.0.1:8080/x", allow_private=True)


def test_delivery_time_check_refuses_a_private_address_and_sends_nothing(receiver):
    sender = HttpWebhookSender(timeout=2.0, allow_private=False)

    result = sender.send(receiver.url.replace("http://", "https://"), body=b"{}", headers={})

    assert not result.ok and result.status_code is None and "private or reserved" in result.error
    assert receiver.requests == []
    allowed = HttpWebhookSender(timeout=2.0, allow_private=True).send(receiver.url, body=b"{}", headers={})
    assert allowed.ok and allowed.status_code == 200 and len(receiver.requests) == 1


def test_an_endpoint_that_does_not_answer_in_time_is_a_failed_try():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts the connection, never answers
    try:
        result = HttpWebhookSender(timeout=0.5, allow_private=True).send(
            f"http://127.0.0.1:{listener.getsockname()[1]}/", body=b"{}", headers={})
    finally:
        listener.close()
    assert not result.ok and result.status_code is None
    assert result.error == "No answer within 0.5 seconds."


@pytest.mark.postgres_only
def test_parallel_workers_claim_a_due_delivery_once(app, session, shop, receiver):
    seller, publisher, offering, buyer, customer = shop
    receiver.status = 500
    seller_webhooks.create_endpoint(session, user=seller, organization_id=publisher.id, url=receiver.url,
                                    events=["instance.created"])
    session.commit()
    instances.create_instance(session, organization=customer, plan=offering.plans[0], created_by=buyer)
    session.commit()
    run_jobs(app)
    delivery_id = session.scalar(select(SellerWebhookDelivery.id))
    session.execute(update(SellerWebhookDelivery).values(next_attempt_at=datetime.now(timezone.utc)
                                                         - timedelta(seconds=1)))
    session.commit()
    outcomes, barrier = [], threading.Barrier(8)

    def worker():
        with app.app_context():
            barrier.wait()
            outcomes.append(deliver_seller_webhook(db.session, delivery_id=delivery_id))
            db.session.commit()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    tried = [o for o in outcomes if "failed on try 2" in o]
    assert len(tried) == 1 and len(outcomes) == 8
    assert len(receiver.requests) == 2  # the first try, and one of the eight workers
    session.expire_all()
    assert session.get(SellerWebhookDelivery, delivery_id).attempts == 2


def _self_signed(tmp_path, hostname: str):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


def test_https_goes_to_the_checked_address_with_the_host_name_for_tls(tmp_path, receiver):
    import ssl

    cert_file, key_file = _self_signed(tmp_path, "hooks.test")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    receiver.server.socket = context.wrap_socket(receiver.server.socket, server_side=True)
    port = receiver.server.server_port
    lookups = []

    def resolve(host, port, type=None):
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    sender = HttpWebhookSender(timeout=3.0, allow_private=True, resolve=resolve, ca_certs=cert_file)
    result = sender.send(f"https://hooks.test:{port}/in?x=1", body=b'{"a":1}', headers={"webhook-id": "evt_1"})

    assert result.ok and result.status_code == 200 and result.response_excerpt == "ok"
    assert lookups == ["hooks.test"]  # one lookup: the address checked is the address used
    [(headers, body)] = receiver.requests
    assert headers["host"] == f"hooks.test:{port}" and headers["webhook-id"] == "evt_1" and body == b'{"a":1}'

    other_name = HttpWebhookSender(timeout=3.0, allow_private=True, resolve=resolve, ca_certs=cert_file).send(
        f"https://elsewhere.test:{port}/in", body=b"{}", headers={})
    assert not other_name.ok and other_name.error == "The endpoint's TLS certificate could not be verified."
    assert len(receiver.requests) == 1


def test_a_redirect_is_not_followed_and_counts_as_a_failed_try(receiver):
    receiver.status = 307

    result = HttpWebhookSender(timeout=2.0, allow_private=True).send(receiver.url, body=b"{}", headers={})

    assert not result.ok and result.status_code == 307 and result.error == "The endpoint answered 307."
    assert len(receiver.requests) == 1

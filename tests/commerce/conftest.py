"""Fixtures for cart, checkout, orders and the Saleor order-paid webhook.

Signatures are real: an RSA key made for the test run signs detached-payload JWS headers the way
Saleor does, and a small HTTP server on a free loopback port serves the matching JWKS.
"""
from __future__ import annotations

import json
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.fake_http import FakeServer

WEBHOOK_URL = "/api/integrations/saleor/order-paid"
WEBHOOK_SECRET = "legacy-webhook-secret-for-tests"


def public_jwk(private_key, kid: str) -> dict:
    data = json.loads(RSAAlgorithm.to_jwk(private_key.public_key()))
    data.update(kid=kid, use="sig", alg="RS256")
    return data


def sign_jws(body: bytes, private_key, kid: str) -> str:
    """`<header>..<signature>`: RS256 over `header + "." + raw body`, payload detached, b64=false."""
    return jwt.api_jws.encode(body, private_key, algorithm="RS256", headers={"kid": kid, "b64": False},
                              is_payload_detached=True)


class JwksServer:
    """Serves {"keys": [...]} at /.well-known/jwks.json and counts the fetches."""

    def __init__(self, keys: list[dict]) -> None:
        self.keys = keys
        self.fetches = 0
        self.failing = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                server.fetches += 1
                if server.failing or self.path != "/.well-known/jwks.json":
                    self.send_response(503 if server.failing else 404)
                    self.end_headers()
                    return
                data = json.dumps({"keys": server.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self._httpd = FakeServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        self.origin = f"http://127.0.0.1:{self._httpd.server_port}"
        self.url = f"{self.origin}/.well-known/jwks.json"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture(scope="session")
def saleor_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def other_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def jwks(saleor_key):
    server = JwksServer([public_jwk(saleor_key, "saleor-key-1")])
    yield server
    server.stop()


@pytest.fixture
def webhook_app(make_app, jwks):
    """An app that trusts the test JWKS and the legacy secret (no data: add `demo` where needed)."""
    return make_app(SALEOR_JWKS_URL=jwks.url, SALEOR_WEBHOOK_SECRET=WEBHOOK_SECRET, SALEOR_TIMEOUT=2.0)


def money(amount: str, currency: str = "USD") -> dict:
    return {"amount": float(Decimal(amount)), "currency": currency}  # Saleor sends JSON numbers


def order_event(
    *, order_id: str = "T3JkZXI6MDAwMDAwMDEtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAx", number: str = "101",
    email: str = "buyer@example.com", lines: list[tuple[str, int, str]] = (), typename: str = "OrderFullyPaid",
    charge_status: str = "FULL", metadata: dict[str, str] | None = None, currency: str = "USD",
) -> dict:
    """A subscription payload as Saleor sends it: the event object itself."""
    total = sum(Decimal(price) * qty for _, qty, price in lines)
    return {
        "__typename": typename,
        "issuedAt": "2026-11-25T10:00:00+00:00",
        "version": "3.23.28",
        "order": {
            "id": order_id, "number": number, "userEmail": email, "user": {"id": "VXNlcjox", "email": email},
            "channel": {"slug": "default-channel"}, "status": "UNFULFILLED", "chargeStatus": charge_status,
            "isPaid": charge_status == "FULL",
            "total": {"gross": money(str(total), currency)}, "totalCharged": money(str(total), currency),
            "lines": [
                {"id": f"T3JkZXJMaW5lOj{i}", "productSku": sku, "productName": sku.title(), "variantName": "",
                 "quantity": qty, "variant": {"id": f"UHJvZHVjdFZhcmlhbnQ6{i}", "sku": sku},
                 "unitPrice": {"gross": money(price, currency)}}
                for i, (sku, qty, price) in enumerate(lines)
            ],
            "metadata": [{"key": k, "value": v} for k, v in (metadata or {}).items()],
        },
    }


def encode(event) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


def deliver(client, body: bytes, *, signature: str | None, event: str = "order_fully_paid", **headers):
    all_headers = {"Content-Type": "application/json", "Saleor-Event": event, "Saleor-Domain": "saleor.test",
                   "Saleor-Api-Url": "http://saleor.test/graphql/", **headers}
    if signature is not None:
        all_headers["Saleor-Signature"] = signature
    return client.post(WEBHOOK_URL, data=body, headers=all_headers)

"""deploy/scripts/saleor_setup.py: its documents are valid for Saleor's schema (when the schema is at hand),
and against a Saleor stand-in it creates the app, then the webhook with the subscription, and prints
the settings for the marketplace."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted((ROOT / "deploy" / "saleor").glob("*.graphql"))
SCHEMA = Path(os.environ.get("SALEOR_SCHEMA_PATH") or ROOT.parent / "shared" / "saleor" / "schema.graphql")


@pytest.fixture(scope="module")
def saleor_schema():
    if not SCHEMA.is_file():
        pytest.skip(f"Saleor's schema is not at {SCHEMA} (set SALEOR_SCHEMA_PATH)")
    from graphql import build_schema

    return build_schema(SCHEMA.read_text())


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.stem)
def test_setup_documents_are_valid_for_saleor(path, saleor_schema):
    from graphql import parse, validate

    assert validate(saleor_schema, parse(path.read_text())) == []


class StandIn:
    def __init__(self):
        self.calls: list[tuple[str, dict, str | None]] = []
        self.server = make_server("127.0.0.1", 0, self, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/graphql/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __call__(self, environ, start_response):
        request = Request(environ)
        body = json.loads(request.get_data())
        operation = body["query"].split("(")[0].split()[-1]
        self.calls.append((operation, body["variables"], request.headers.get("Authorization")))
        data = {
            "StaffToken": {"tokenCreate": {"token": "staff-jwt", "errors": []}},
            "MarketplaceAppCreate": {"appCreate": {"authToken": "app-token-1", "app": {"id": "QXBwOjE=", "name": "x"},
                                                   "errors": []}},
            "OrderPaidWebhookCreate": {"webhookCreate": {"webhook": {"id": "V2ViaG9vazox", "asyncEvents": [
                {"eventType": "ORDER_PAID"}, {"eventType": "ORDER_FULLY_PAID"}]}, "errors": []}},
            "OrderRefundedWebhookCreate": {"webhookCreate": {"webhook": {"id": "V2ViaG9vazoy", "asyncEvents": [
                {"eventType": "ORDER_REFUNDED"}, {"eventType": "ORDER_FULLY_REFUNDED"}]}, "errors": []}},
        }[operation]
        return Response(json.dumps({"data": data}), content_type="application/json")(environ, start_response)


def test_setup_creates_the_app_and_its_signed_webhook_and_prints_the_settings():
    saleor = StandIn()
    try:
        result = subprocess.run(
            [sys.executable, str(ROOT / "deploy" / "scripts" / "saleor_setup.py"), "--api-url", saleor.url,
             "--staff-email", "staff@example.com", "--target-url", "https://market.example.com/api/integrations/saleor/order-paid"],
            env={**os.environ, "SALEOR_STAFF_PASSWORD": "staff-pass"}, capture_output=True, text=True, timeout=60)
    finally:
        saleor.server.shutdown()
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["COMMERCE_BACKEND=saleor", f"SALEOR_API_URL={saleor.url}",
                                          "SALEOR_APP_TOKEN=app-token-1", "SALEOR_CHANNEL=default-channel",
                                          "SALEOR_ATTRIBUTE_PREFIX=digitlify-",
                                          "SALEOR_FEATURED_COLLECTION=digitlify-featured"]
    assert "Celery worker and beat" in result.stderr
    (op1, v1, auth1), (op2, v2, auth2), (op3, v3, auth3), (op4, v4, auth4) = saleor.calls
    assert (op1, v1, auth1) == ("StaffToken", {"email": "staff@example.com", "password": "staff-pass"}, None)
    assert (op2, auth2) == ("MarketplaceAppCreate", "Bearer staff-jwt")
    assert (op3, auth3) == ("OrderPaidWebhookCreate", "Bearer staff-jwt")
    assert v3["app"] == "QXBwOjE=" and v3["targetUrl"].endswith("/api/integrations/saleor/order-paid")
    assert v3["query"].startswith("subscription OrderPaidForMarketplace")
    assert (op4, auth4, v4["app"], v4["targetUrl"]) == ("OrderRefundedWebhookCreate", "Bearer staff-jwt", "QXBwOjE=",
                                                         v3["targetUrl"])
    assert v4["query"].startswith("subscription OrderRefundedForMarketplace")
    assert "ORDER_FULLY_REFUNDED" in result.stderr


def test_setup_refuses_to_run_without_the_staff_password():
    env = {k: v for k, v in os.environ.items() if k != "SALEOR_STAFF_PASSWORD"}
    result = subprocess.run([sys.executable, str(ROOT / "deploy" / "scripts" / "saleor_setup.py"), "--api-url",
                             "http://127.0.0.1:9/graphql/", "--staff-email", "s@example.com", "--target-url", "x"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "SALEOR_STAFF_PASSWORD" in result.stderr

"""Request ids, JSON log lines and the Prometheus series, in the app and under a real gunicorn."""
from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from app import context
from app.observability import json_log_handler
from tests.conftest import ON_POSTGRES

ROOT = Path(__file__).resolve().parent.parent


def test_a_request_id_is_made_when_none_comes_and_kept_when_one_does(client):
    made = client.get("/api/health/live").headers["X-Request-Id"]
    kept = client.get("/api/health/live", headers={"X-Request-Id": "edge-42.a:b"}).headers["X-Request-Id"]
    refused = client.get("/api/health/live", headers={"X-Request-Id": "two words\u202e"}).headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    assert kept == "edge-42.a:b"
    assert re.fullmatch(r"[0-9a-f]{32}", refused)
    assert context.current_request_id() is None  # nothing leaks out of the request


def test_log_lines_are_json_with_the_request_id_of_their_request(app):
    stream = io.StringIO()
    logger = logging.getLogger("app.test-observability")
    logger.addHandler(json_log_handler(stream))
    logger.propagate = False

    @app.get("/_log-something")
    def _log_something():
        logger.warning("card declined for order %s", 7)
        return "ok"

    app.test_client().get("/_log-something", headers={"X-Request-Id": "req-123"})
    logger.warning("outside a request")

    first, second = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert (first["message"], first["level"], first["request_id"]) == ("card declined for order 7", "WARNING",
                                                                       "req-123")
    assert first["logger"] == "app.test-observability" and "ts" in first
    assert second["request_id"] is None


def test_metrics_count_requests_by_endpoint(client):
    client.get("/")
    client.get("/no-such-page")
    text = client.get("/metrics").get_data(as_text=True)
    assert re.search(r'marketplace_http_request_duration_seconds_count\{endpoint="storefront\.\w+",method="GET",'
                     r'status="200"\} [1-9]', text)
    assert 'endpoint="unmatched",method="GET",status="404"' in text
    assert "marketplace_holds_total" in text and "marketplace_runs_total" in text


def test_metrics_need_the_token_outside_development(make_app):
    closed = make_app(APP_ENV="production", TESTING=False, METRICS_TOKEN="")
    guarded = make_app(APP_ENV="production", TESTING=False, METRICS_TOKEN="scrape-token-123")
    assert closed.test_client().get("/metrics").status_code == 404
    assert guarded.test_client().get("/metrics").status_code == 404
    assert guarded.test_client().get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 404
    answer = guarded.test_client().get("/metrics", headers={"Authorization": "Bearer scrape-token-123"})
    assert answer.status_code == 200 and answer.mimetype == "text/plain"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(ON_POSTGRES, reason="one gunicorn run is enough; it runs in the SQLite pass")
def test_under_gunicorn_each_request_is_one_json_access_line_and_metrics_add_up_across_workers(db_url, tmp_path):
    port = _free_port()
    env = {**os.environ, "APP_ENV": "development", "DATABASE_URL": db_url, "GUNICORN_BIND": f"127.0.0.1:{port}",
           "WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "2", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
           "LOG_FORMAT": "json", "GUNICORN_GRACEFUL_TIMEOUT": "3", "GUNICORN_KEEPALIVE": "1"}
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent))
    log = (tmp_path / "gunicorn.log").open("w+")
    server = subprocess.Popen([gunicorn, "-c", str(ROOT / "gunicorn.conf.py"), "app:create_app()"], cwd=ROOT,
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{base}/api/health/live", timeout=1)
                break
            except requests.RequestException:
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        for i in range(8):  # new connections, so both workers take some
            assert requests.get(f"{base}/api/health/live", headers={"X-Request-Id": f"probe-{i}"},
                                timeout=5).status_code == 200
        scraped = requests.get(f"{base}/metrics", timeout=5).text
    finally:
        server.terminate()
        server.wait(timeout=30)
    log.seek(0)
    lines = [json.loads(line) for line in log if line.startswith("{") and '"event":"access"' in line.replace(" ", "")]
    probes = [line for line in lines if (line.get("request_id") or "").startswith("probe-")]
    assert sorted(line["request_id"] for line in probes) == [f"probe-{i}" for i in range(8)]
    assert {(line["method"], line["path"], line["status"]) for line in probes} == {("GET", "/api/health/live", 200)}
    assert all(isinstance(line["duration_ms"], float) and "user_id" in line for line in probes)
    counted = re.search(r'marketplace_http_request_duration_seconds_count\{endpoint="cp\.health_live",'
                        r'method="GET",status="200"\} (\d+(?:\.\d+)?)', scraped)
    assert counted and float(counted.group(1)) >= 9  # the start-up probe and the eight, whichever worker served them


def test_tracing_sends_request_and_sql_spans_to_the_configured_collector(make_app):
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    from werkzeug.serving import make_server
    import threading

    received: list[bytes] = []

    def collector(environ, start_response):
        received.append(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
        start_response("200 OK", [("Content-Type", "application/x-protobuf")])
        return [b""]

    server = make_server("127.0.0.1", 0, collector, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    app = make_app(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{server.server_port}")
    try:
        assert app.test_client().get("/api/health").status_code == 200
        app.extensions["tracer_provider"].force_flush(10_000)
        received_names = _span_names(received)
    finally:
        server.shutdown()
        # the instrumentors patch requests and create_engine for the whole process: undo it for the next tests
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

        RequestsInstrumentor().uninstrument()
        SQLAlchemyInstrumentor().uninstrument()
        app.extensions["tracer_provider"].shutdown()
    assert "GET /api/health" in received_names
    assert any(name.startswith("SELECT") or name == "connect" for name in received_names), received_names


def _span_names(bodies: list[bytes]) -> set[str]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    names = set()
    for body in bodies:
        export = ExportTraceServiceRequest.FromString(body)
        names |= {span.name for rs in export.resource_spans for ss in rs.scope_spans for span in ss.spans}
    return names


def test_no_tracing_without_an_endpoint(app):
    assert "tracer_provider" not in app.extensions


def test_calls_to_other_systems_carry_the_request_id_and_are_timed_by_system(make_app):
    import threading

    from werkzeug.serving import make_server

    seen: list[str | None] = []

    def langflow(environ, start_response):
        seen.append(environ.get("HTTP_X_REQUEST_ID"))
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b"{}"]

    server = make_server("127.0.0.1", 0, langflow, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    app = make_app(LANGFLOW_URL=url)

    @app.get("/_calls-langflow")
    def _calls_langflow():
        requests.get(f"{url}/api/v1/flows", timeout=5)
        return "ok"

    try:
        app.test_client().get("/_calls-langflow", headers={"X-Request-Id": "buyer-run-7"})
        requests.get(f"{url}/health", timeout=5)  # outside a request: no id to pass on
    finally:
        server.shutdown()
    text = app.test_client().get("/metrics").get_data(as_text=True)
    assert seen == ["buyer-run-7", None]
    assert re.search(r'marketplace_external_call_duration_seconds_count\{outcome="ok",system="langflow"\} [1-9]', text)


def test_money_and_work_totals_come_from_the_database(client, session):
    from app.models import Hold
    from app.services import billing
    from tests.factories import make_org, make_user

    org = make_org(session, owner=make_user(session))
    wallet = billing.wallet_for_organization(session, org.id)
    billing.grant_credits(session, wallet=wallet, amount=50, origin="purchase", idempotency_key="pack:1",
                          reference="welcome")
    hold = billing.authorize(session, wallet=wallet, amount=5, idempotency_key="k1")
    billing.authorize(session, wallet=wallet, amount=5, idempotency_key="k2")
    billing.settle(session, hold_id=hold.id, amount=3, idempotency_key="s1")
    session.commit()

    text = client.get("/metrics").get_data(as_text=True)

    assert 'marketplace_holds_total{status="active"} 1.0' in text
    assert 'marketplace_holds_total{status="settled"} 1.0' in text
    assert "marketplace_run_credits_total 0.0" in text
    assert session.query(Hold).count() == 2

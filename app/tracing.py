"""OpenTelemetry tracing, switched on by configuration: with OTEL_EXPORTER_OTLP_ENDPOINT set, every request,
every SQL statement and every outgoing HTTP call (Saleor, Langflow, Keycloak, Vault) becomes a span, sent
over OTLP/HTTP in batches. The SDK reads the other standard OTEL_* variables itself (headers, sampler)."""
from __future__ import annotations

import os

from flask import Flask

_provider = None  # one per process: OpenTelemetry allows the global provider to be set once


def init_app(app: Flask) -> None:
    endpoint = app.config.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    if not endpoint:
        return
    from opentelemetry.instrumentation.flask import FlaskInstrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    from app.extensions import db

    provider = _tracer_provider(endpoint, app.config.get("OTEL_SERVICE_NAME") or "digitlify-marketplace")
    FlaskInstrumentor().instrument_app(app, tracer_provider=provider, excluded_urls="api/health/live,metrics")
    if not RequestsInstrumentor().is_instrumented_by_opentelemetry:
        RequestsInstrumentor().instrument(tracer_provider=provider)
    with app.app_context():
        SQLAlchemyInstrumentor().instrument(engine=db.engine, tracer_provider=provider)
    app.extensions["tracer_provider"] = provider


def _tracer_provider(endpoint: str, service_name: str):
    global _provider
    if _provider is None:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        _provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        exporter = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces", timeout=5)
        _provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(_provider)
    return _provider

"""The Prometheus series the marketplace exposes at /metrics (prometheus_client).

Latency histograms are module globals, updated where the thing happens. The money and
work totals (holds, runs and their credits, webhook deliveries, the job queue) are read from the database
when Prometheus scrapes (app.services.figures), so every replica reports the same numbers. Under gunicorn (PROMETHEUS_MULTIPROC_DIR set) every
worker writes its values to files there and a scrape adds them up.
"""
from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client import REGISTRY as DEFAULT_REGISTRY

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

HTTP_LATENCY = Histogram(
    "marketplace_http_request_duration_seconds", "Time to answer a request, by endpoint",
    ["method", "endpoint", "status"], buckets=_LATENCY_BUCKETS)
EXTERNAL_CALLS = Histogram(
    "marketplace_external_call_duration_seconds", "Calls to other systems, by system and outcome",
    ["system", "outcome"], buckets=_LATENCY_BUCKETS)

_extra_collectors: list = []


def register_scrape_collector(collector) -> None:
    """A collector whose values are read at scrape time (e.g. queue depth from the database)."""
    _extra_collectors.append(collector)


def exposition() -> tuple[bytes, str]:
    """The text format of every series, added up across gunicorn workers when multiprocess mode is on."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_ThisProcess())
    for collector in _extra_collectors:
        registry.register(collector)
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _ThisProcess:
    """This process's own series (the default registry), for a server without multiprocess mode."""

    def collect(self):
        yield from DEFAULT_REGISTRY.collect()


class DatabaseFigures:
    """The totals kept in the database, as Prometheus series; read at each scrape (in an app context)."""

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        from app.extensions import db
        from app.services.figures import current_figures

        try:
            figures = current_figures(db.session)
        finally:
            db.session.rollback()  # read only: end the transaction the reads began
        holds = CounterMetricFamily("marketplace_holds", "Credit holds opened, by their status now", labels=["status"])
        for status, count in sorted(figures.holds.items()):
            holds.add_metric([status], count)
        runs = CounterMetricFamily("marketplace_runs", "Agent runs, by status", labels=["status"])
        for status, count in sorted(figures.runs.items()):
            runs.add_metric([status], count)
        credits = CounterMetricFamily("marketplace_run_credits", "Credits charged for runs")
        credits.add_metric([], figures.run_credits)
        webhooks = CounterMetricFamily("marketplace_webhook_deliveries", "Webhook deliveries stored, by source and "
                                       "outcome", labels=["source", "status"])
        for (source, status), count in sorted(figures.webhooks.items()):
            webhooks.add_metric([source, status], count)
        yield from (holds, runs, credits, webhooks)
        if figures.job_queue is not None:
            queue = GaugeMetricFamily("marketplace_job_queue", "Jobs in the queue by state, and workers online",
                                      labels=["state"])
            for state, count in figures.job_queue.items():
                queue.add_metric([state], count)
            yield queue


register_scrape_collector(DatabaseFigures())

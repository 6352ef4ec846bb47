"""The Prometheus series the marketplace exposes at /metrics (prometheus_client).

Counters and histograms are module globals, updated where the thing happens; the job-queue figures are
read from the database when Prometheus scrapes. Under gunicorn (PROMETHEUS_MULTIPROC_DIR set) every
worker writes its values to files there and a scrape adds them up.
"""
from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import REGISTRY as DEFAULT_REGISTRY

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

HTTP_LATENCY = Histogram(
    "marketplace_http_request_duration_seconds", "Time to answer a request, by endpoint",
    ["method", "endpoint", "status"], buckets=_LATENCY_BUCKETS)
RUNS = Counter("marketplace_runs_total", "Agent runs by outcome", ["outcome"])
RUN_CREDITS = Counter("marketplace_run_credits_total", "Credits charged for runs")
HOLDS = Counter("marketplace_holds_total", "Credit holds by event (opened, settled, released, expired)", ["event"])
WEBHOOKS = Counter("marketplace_webhook_deliveries_total", "Webhook deliveries received, by source and outcome",
                   ["source", "outcome"])
EXTERNAL_CALLS = Histogram(
    "marketplace_external_call_duration_seconds", "Calls to other systems, by system and outcome",
    ["system", "outcome"], buckets=_LATENCY_BUCKETS)
JOBS = Counter("marketplace_jobs_total", "Background jobs finished, by task and outcome", ["task", "outcome"])

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

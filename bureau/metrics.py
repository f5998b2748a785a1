"""Prometheus metrics of the webhook and the workers.

Under gunicorn with several workers set PROMETHEUS_MULTIPROC_DIR (an empty folder) so that /metrics
adds up every worker's counters; without it each process reports its own.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

WEBHOOK_REQUESTS = Counter(
    "zhanyou_webhook_requests_total",
    "WeChat pushes received, by message type and outcome",
    ["msg_type", "outcome"],
)
WEBHOOK_LATENCY = Histogram(
    "zhanyou_webhook_latency_seconds",
    "Time to the passive reply of a WeChat push",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 4.5, 5.0, 10.0),
)
DEADLINE_MISSES = Counter(
    "zhanyou_deadline_misses_total",
    "Answers not ready within the reply budget, sent through the customer-service API",
)
DEDUPE_HITS = Counter("zhanyou_dedupe_hits_total", "WeChat retries recognised and not processed again")
WECHAT_API_ERRORS = Counter(
    "zhanyou_wechat_api_errors_total", "WeChat server API errors by errcode", ["errcode"]
)
DELIVERIES = Counter("zhanyou_deliveries_total", "Broadcast deliveries recorded, by final status", ["status"])
CRISIS_ALERTS = Counter("zhanyou_crisis_alerts_total", "Crisis alerts raised, by source", ["source"])
DEGRADED = Counter(
    "zhanyou_degraded_total",
    "Calls that met an unavailable database or Redis, by dependency and outcome "
    "(database: retry, recovered, gave_up, commit_unknown; redis: fallback)",
    ["dependency", "outcome"],
)


def render() -> tuple[bytes, str]:
    """The exposition text and its content type, aggregated across processes when configured."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST

"""Prometheus metrics of this process (prometheus-client), and their exposition for GET /metrics.

The metrics live in prometheus-client's default registry, once per process, beside its own process_* and
python_gc_* collectors. Where they are counted: HTTP requests in adapters/http/observability.py, the token cache
and JWKS fetches in adapters/jwks.py, webhook events in adapters/http/webhooks.py, provisioner calls and outbox
deliveries in adapters/metered.py (wrapped around the parts in entrypoints/containers.py). The outbox backlog is
read from storage at each scrape (`OutboxSnapshot`), so every server shows the same, whichever process delivers.

`serve --workers N` runs N processes, each with its own values; a scrape reaches one of them. With
PROMETHEUS_MULTIPROC_DIR set (an empty directory, before the server starts), prometheus-client keeps the values in
files there and /metrics adds up every process's (README, "Logs and metrics").
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import re
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector

from marketplace_provider.domain.outbox import OutboxCounts
from marketplace_provider.ports.storage import Storage

log = logging.getLogger("marketplace.metrics")

# The text format every Prometheus reads.
CONTENT_TYPE = "text/plain; version=0.0.4"
OUTBOX_QUERY_SECONDS = 2.0  # a scrape must not hang on a database that does not answer

# No `*_created` series beside each counter and histogram: they double the output and say when a label first came.
disable_created_metrics()

# Requests take milliseconds; the slowest (a provisioner, a database under load) seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# From a message recorded to Vercel having it: a moment when all is well, hours while Vercel refuses.
LAG_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 24 * 3600.0)

HTTP_REQUESTS = Counter(
    "marketplace_http_requests", "HTTP requests answered, by method, route template and status", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "marketplace_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by method and route template",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)

_TOKEN_CACHE = Counter("marketplace_token_cache", "Verified bearer tokens looked up in the cache", ["result"])
TOKEN_CACHE_HITS = _TOKEN_CACHE.labels(result="hit")
TOKEN_CACHE_MISSES = _TOKEN_CACHE.labels(result="miss")  # verified from scratch (or refused)
_JWKS_FETCHES = Counter("marketplace_jwks_fetches", "Fetches of Vercel's signing keys (JWKS), by outcome", ["outcome"])
JWKS_FETCHED = _JWKS_FETCHES.labels(outcome="ok")
JWKS_FETCH_FAILED = _JWKS_FETCHES.labels(outcome="failed")

WEBHOOK_EVENTS = Counter(
    "marketplace_webhook_events",
    "Webhook deliveries by event type and outcome: refused (bad signature), invalid, accepted, duplicate; "
    "then applied or apply_failed",
    ["type", "outcome"],
)

PROVISIONER_CALLS = Counter(
    "marketplace_provisioner_calls", "Calls to the integrator's provisioner, by operation and outcome (ok, failed)",
    ["operation", "outcome"],
)
PROVISIONER_LATENCY = Histogram(
    "marketplace_provisioner_duration_seconds", "Time the provisioner took, by operation", ["operation"],
    buckets=LATENCY_BUCKETS,
)

OUTBOX_DELIVERIES = Counter(
    "marketplace_outbox_deliveries",
    "Outbox delivery attempts by message kind and outcome: delivered, retrying (failed, tried again later), dead",
    ["kind", "outcome"],
)
OUTBOX_LAG = Histogram(
    "marketplace_outbox_delivery_lag_seconds",
    "Time from a message being recorded to its delivery, by message kind",
    ["kind"],
    buckets=LAG_BUCKETS,
)

# Event types become label values: only well-formed ones, and only so many (a leaked client secret must not be
# able to grow the registry without end). Vercel sends a few dozen types.
_EVENT_TYPE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}\Z")
MAX_EVENT_TYPES = 100
_event_types: set[str] = set()


def event_type_label(event_type: str | None) -> str:
    if event_type is None:
        return "unknown"
    if event_type in _event_types:
        return event_type
    if len(_event_types) < MAX_EVENT_TYPES and _EVENT_TYPE.match(event_type):
        _event_types.add(event_type)
        return event_type
    return "other"


class OutboxSnapshot(Collector):
    """The outbox backlog as read from storage for one scrape (None: storage did not answer)."""

    def __init__(self, counts: OutboxCounts | None) -> None:
        self.counts = counts

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("marketplace_storage_up", "1 when storage answered this scrape's outbox query")
        up.add_metric([], 0 if self.counts is None else 1)
        yield up
        if self.counts is None:
            return
        backlog = GaugeMetricFamily(
            "marketplace_outbox_messages",
            "Messages owed to Vercel or the provisioner, by state: pending (never tried), retrying, dead",
            labels=["state"],
        )
        for state in ("pending", "retrying", "dead"):
            backlog.add_metric([state], getattr(self.counts, state))
        yield backlog


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir") or None


def exposition(scraped: Iterable[Collector] = ()) -> bytes:
    """The text exposition format: this process's metrics (or every process's, in multiprocess mode), then the
    values read for this scrape."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        text = generate_latest(registry)
    else:
        text = generate_latest(REGISTRY)
    now = CollectorRegistry(auto_describe=False)
    for collector in scraped:
        now.register(collector)
    return text + generate_latest(now)


def token_matches(header: str | None, token: str) -> bool:
    """`Authorization: Bearer <token>` (METRICS_TOKEN), the token compared in constant time."""
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("latin-1", "replace"), token.encode())


async def outbox_counts(storage: Storage) -> OutboxCounts | None:
    """The backlog for one scrape; None when storage does not answer in time (marketplace_storage_up 0)."""
    try:
        async with asyncio.timeout(OUTBOX_QUERY_SECONDS):
            async with storage.unit_of_work() as uow:
                return await uow.outbox.counts()
    except Exception as exc:
        log.warning("metrics: the outbox counts could not be read (%s)", type(exc).__name__)
        return None

"""The service's metrics: HTTP requests by route, refusals, held events, durable waits; and
``/metrics``, which adds the policy (``policyloop_policy_*``, by version) and SDK series.

Names follow prometheus-client conventions (counters exposed with ``_total``, durations in
``_seconds``). API keys never appear: a request's key is only ever "matched" or not.

With several workers, the worker that answers ``/metrics`` gathers every worker's series over
their private sockets and labels each with ``worker``, so a scrape sees the whole service and
``rate()`` stays monotonic whichever worker answers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

__all__ = ["HttpMetricsMiddleware", "Scope", "ServeMetrics", "merge_worker_metrics"]

#: An ASGI scope or message.
Scope = dict[str, Any]

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip


class ServeMetrics:
    """The ``policyloop_serve_*`` series of one worker."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "policyloop_serve_requests",
            "HTTP requests answered, by route template, method and status code.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "policyloop_serve_request_duration_seconds",
            "Time from the request's arrival to its last reply byte, by route template.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.refused = Counter(
            "policyloop_serve_refused_requests",
            "Requests refused before the route ran: unauthorized, rate_limited, too_large.",
            ["reason"],
            registry=registry,
        )
        self.invalid = Counter(
            "policyloop_serve_invalid_requests",
            "Requests refused by the event contract or the body's shape, by field.",
            ["field"],
            registry=registry,
        )
        self.forwarded = Counter(
            "policyloop_serve_forwarded_requests",
            "Requests passed to the worker that owns their episode.",
            registry=registry,
        )
        self.held = Gauge(
            "policyloop_serve_deferred_events",
            "Personalizer events ranked with deferActivation and not yet activated.",
            registry=registry,
        )
        self.dropped_held = Counter(
            "policyloop_serve_deferred_dropped",
            "Held events dropped unlogged: never activated within defer_ttl_s (ttl), or "
            "pushed out by defer_max_events (capacity).",
            ["reason"],
            registry=registry,
        )
        self.durable_wait = Histogram(
            "policyloop_serve_durable_wait_seconds",
            "How long durable replies waited for their events to reach the disk spool.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.decision_batch = Histogram(
            "policyloop_serve_decision_batch_size",
            "Decisions made by one model call: those that arrived in the same event-loop turn.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=registry,
        )
        self.ready = Gauge(
            "policyloop_serve_ready", "1 when the worker serves decisions.", registry=registry
        )


class HttpMetricsMiddleware:
    """Counts every HTTP request by route template (not by path: ids would explode the
    label set), method and status, and observes its duration. A request forwarded from another
    worker is counted there, once."""

    def __init__(self, app: Any, metrics: ServeMetrics, route_of: Callable[[Scope], str]) -> None:
        self.app = app
        self.metrics = metrics
        self.route_of = route_of
        # The labelled children, looked up once: ``labels()`` checks and locks on every call,
        # a few µs a request; routes, methods and statuses are few.
        self._counts: dict[tuple[str, str, int], Any] = {}
        self._latencies: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Scope) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            if not scope.get("policyloop.internal"):  # else counted where it was received
                route = self.route_of(scope)
                key = (route, scope["method"], status)
                count = self._counts.get(key)
                if count is None:
                    count = self._counts[key] = self.metrics.requests.labels(
                        route, key[1], str(status)
                    )
                count.inc()
                latency = self._latencies.get(route)
                if latency is None:
                    latency = self._latencies[route] = self.metrics.latency.labels(route)
                latency.observe(time.perf_counter() - started)


class _Families:
    """A collector that yields already gathered families (for the merged ``/metrics``)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families


def merge_worker_metrics(texts: dict[int, str]) -> bytes:
    """One exposition of several workers' ``/metrics`` texts, each sample labelled ``worker``."""
    merged: dict[str, Metric] = {}
    for worker, text in sorted(texts.items()):
        for family in text_string_to_metric_families(text):
            target = merged.get(family.name)
            if target is None:
                target = merged[family.name] = Metric(
                    family.name, family.documentation, family.type, family.unit
                )
            target.samples.extend(
                Sample(s.name, {**s.labels, "worker": str(worker)}, s.value, s.timestamp)
                for s in family.samples
            )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(merged.values()))
    return generate_latest(registry)

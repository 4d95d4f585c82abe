"""Prometheus metrics of the sessionizer, served on ``/metrics`` by prometheus_client.

One registry per worker (not the process-global one) so tests can run several workers in one
process without name clashes. Names follow Prometheus conventions; the group id is a label so
several consumer groups can share a Prometheus.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from services.sessionizer.state_limits import EPISODE_EVENTS, EVENT_IDS, OPEN_EPISODES

__all__ = ["SessionizerMetrics"]

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 3, 4, 5, 7.5, 10, 15, 30, 60, 120, 300, 600)


class SessionizerMetrics:
    """The worker's counters, gauges and histograms."""

    def __init__(self, group: str) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events = Counter(
            "policyloop_sessionizer_events",
            "Events consumed, by type and outcome (accepted, duplicate, dlq).",
            ["group", "type", "outcome"],
            registry=r,
        ).labels
        self.rows = Counter(
            "policyloop_sessionizer_rows_written", "Timeline rows committed.", ["group"], registry=r
        ).labels(group)
        self.dlq = Counter(
            "policyloop_sessionizer_dlq",
            "Dead letters sent, by reason.",
            ["group", "reason"],
            registry=r,
        ).labels
        self.state_limit = Counter(
            "policyloop_sessionizer_state_limit",
            "State caps hit, by cap (state_limits.py): events turned away at open_episodes or "
            "episode_events, event ids forgotten at event_ids.",
            ["group", "limit"],
            registry=r,
        ).labels
        # Exported at 0 from the start: an alert on a series that appears only at the first hit
        # cannot tell "never hit" from "not scraped", and rate() needs the zero before the hit.
        for limit in (OPEN_EPISODES, EPISODE_EVENTS, EVENT_IDS):
            self.state_limit(group, limit)
        self.fenced_partitions = Counter(
            "policyloop_sessionizer_fenced_partitions",
            "Partitions this worker found it had lost when it went to commit them: another "
            "worker claimed them (fencing.py), and their uncommitted work was dropped.",
            ["group"],
            registry=r,
        ).labels(group)
        self.open_episodes = Gauge(
            "policyloop_sessionizer_open_episodes", "Episodes in memory.", ["group"], registry=r
        ).labels(group)
        self.commit_seconds = Histogram(
            "policyloop_sessionizer_delta_commit_seconds",
            "Duration of one Delta commit (checkpoint + append).",
            ["group"],
            registry=r,
        ).labels(group)
        self.lag = Gauge(
            "policyloop_sessionizer_consumer_lag",
            "Records between the consumer position and the partition end.",
            ["group", "partition"],
            registry=r,
        ).labels
        self.latency = Histogram(
            "policyloop_sessionizer_event_to_row_seconds",
            "From the newest event in a row (its ts) to the Delta commit holding the row.",
            ["group"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        ).labels(group)
        self.group = group

    def observe_latencies(self, seconds: Sequence[float]) -> None:
        """Observe many event-to-row latencies at once (one per row: 100k+ per commit).

        ``Histogram.observe`` takes a lock and scans the buckets per value; here the values
        are counted per bucket first and each bucket is incremented once. Falls back to
        ``observe`` if prometheus_client's histogram internals ever change.
        """
        hist = self.latency
        bounds = getattr(hist, "_upper_bounds", None)
        buckets = getattr(hist, "_buckets", None)
        total = getattr(hist, "_sum", None)
        if bounds is None or buckets is None or total is None:
            for value in seconds:
                hist.observe(value)
            return
        for index, n in Tally(bisect_left(bounds, v) for v in seconds).items():
            buckets[index].inc(n)
        total.inc(sum(seconds))

    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Start the HTTP endpoint; returns the port (``0`` picks a free one)."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return server.server_port

"""Prometheus metrics of the logging SDK.

The metrics are created once per registry (once per process for the default registry), so that
several loggers in one process add to the same series instead of failing on a duplicate
registration. Tests pass their own ``CollectorRegistry``.

Counting per event on the caller's thread through prometheus-client would cost about a
microsecond each (a lock per increment); the caller keeps plain integers in
:class:`CallerCounts` instead and the sender thread publishes the increments every loop and on
``flush()``, so the exported totals lag the truth by at most one sender loop.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.prometheus_collectors import OncePerCollectorRegistry
from services.sdk.spool_losses import LOSS_REASONS, QUARANTINE_REASONS, LossCounts, LossLedger

__all__ = ["CallerCounts", "SdkMetrics", "sdk_metrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5, 10, 30)


@dataclass
class CallerCounts:
    """Counts kept by the caller's thread with plain integer arithmetic (no locks)."""

    accepted: dict[str, int] = field(
        default_factory=lambda: {"decision": 0, "reward": 0, "episode_end": 0}
    )
    dropped: dict[str, int] = field(default_factory=dict)
    # What SdkMetrics.publish already added to the Prometheus counters for this logger.
    published_accepted: dict[str, int] = field(default_factory=dict)
    published_dropped: dict[str, int] = field(default_factory=dict)
    # The spool's loss ledger as last published (``LossLedger.changes`` and its counts).
    published_loss_changes: int = 0
    published_losses: LossCounts = field(default_factory=LossCounts)

    @property
    def accepted_total(self) -> int:
        return sum(self.accepted.values())


class SdkMetrics:
    """The SDK's series in one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.accepted = Counter(
            "policyloop_sdk_events_accepted",
            "Events validated and accepted by DecisionLogger calls.",
            ["type"],
            registry=registry,
        )
        self.sent = Counter(
            "policyloop_sdk_events_sent",
            "Events acknowledged by the broker (acks=all).",
            registry=registry,
        )
        self.spooled = Counter(
            "policyloop_sdk_events_spooled",
            "Events written to the local disk spool (broker unreachable or queue spilling).",
            registry=registry,
        )
        self.dropped = Counter(
            "policyloop_sdk_events_dropped",
            "Events dropped, by reason: queue_full (when_full=drop), spool_full and "
            "spool_write_failed (at close), spool_missing (spool data removed under it), "
            "quarantined (in a spool entry moved to the quarantine file).",
            ["reason"],
            registry=registry,
        )
        self.quarantined = Counter(
            "policyloop_sdk_spool_quarantined",
            "Spool entries moved to the quarantine file and skipped, by reason (corrupt, torn, "
            "undecodable, undeliverable).",
            ["reason"],
            registry=registry,
        )
        self.spool_write_errors = Counter(
            "policyloop_sdk_spool_write_errors",
            "Failed writes to the disk spool (disk full, file-size limit, I/O error); the "
            "records wait in memory and the write is tried again.",
            registry=registry,
        )
        self.send_errors = Counter(
            "policyloop_sdk_send_errors",
            "Records the producer failed to deliver (they are spooled and sent again).",
            registry=registry,
        )
        self.records_sent = Counter(
            "policyloop_sdk_records_sent",
            "Kafka records (batches of events) acknowledged by the broker.",
            registry=registry,
        )
        self.queue_depth = Gauge(
            "policyloop_sdk_queue_depth",
            "Events waiting in memory for the sender thread.",
            registry=registry,
        )
        self.spool_bytes = Gauge(
            "policyloop_sdk_spool_bytes",
            "Bytes held by the local disk spool.",
            registry=registry,
        )
        self.send_latency = Histogram(
            "policyloop_sdk_send_latency_seconds",
            "Time from handing a record to the producer to the broker's acknowledgement.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        # Known reasons start at 0, so that rate() and alerts see a series before the first drop.
        for reason in DROP_REASONS:
            self.dropped.labels(reason)
        for reason in QUARANTINE_REASONS:
            self.quarantined.labels(reason)
        self._lock = threading.Lock()

    def publish(self, counts: CallerCounts, losses: LossLedger | None = None) -> None:
        """Add what the caller counted, and what the spool lost, since the last publish."""
        with self._lock:
            _publish(counts.accepted, counts.published_accepted, self.accepted)
            _publish(counts.dropped, counts.published_dropped, self.dropped)
            if losses is None or losses.changes == counts.published_loss_changes:
                return
            counts.published_loss_changes = losses.changes
            now = losses.counts()
            new = now.since(counts.published_losses)
            counts.published_losses = now
            for reason, n in new.events.items():
                if n:
                    self.dropped.labels(reason).inc(n)
            for reason, n in new.entries.items():
                if n:
                    self.quarantined.labels(reason).inc(n)


#: Why the SDK drops an event: the queue was full (``when_full=drop``), or the spool lost it.
DROP_REASONS = ("queue_full", *LOSS_REASONS)


def _publish(current: dict[str, int], published: dict[str, int], counter: Counter) -> None:
    for label, value in list(current.items()):
        delta = value - published.get(label, 0)
        if delta:
            counter.labels(label).inc(delta)
            published[label] = value


_per_registry = OncePerCollectorRegistry(SdkMetrics)


def sdk_metrics(registry: CollectorRegistry | None = None) -> SdkMetrics:
    """The SDK's metrics in ``registry`` (default: the process-wide one), created once."""
    return _per_registry(registry)

"""Prometheus metrics of the policy client, by policy and version (names are a contract).

The Grafana dashboard and the alert rules are written against these names:

* ``policyloop_policy_decisions_total{policy,policy_version}``
* ``policyloop_policy_episodes_total{policy,policy_version}`` — counted at an episode's first act
* ``policyloop_policy_reward_sum{policy,policy_version}`` — gauge (rewards may be negative)
* ``policyloop_policy_propensity{policy,policy_version}`` — histogram, buckets 0.001 … 1
* ``policyloop_policy_load_failures_total{policy,policy_version}`` — ``policy_version`` is
  ``CURRENT`` or ``ROLLOUT`` when that pointer file itself cannot be read
* ``policyloop_policy_serving{policy,policy_version,role}`` — 1 for served versions
* ``policyloop_rollout_fraction{policy,policy_version}`` — share routed to the candidate

Why a custom collector: ``act`` must cost microseconds, and a prometheus-client counter or
histogram takes a lock per observation. Each client keeps plain numbers per version
(:class:`VersionStats`, updated under the client's own lock) and this collector reads them at
scrape time. One collector per ``CollectorRegistry`` serves every live client in it, so several
clients in one process add up instead of clashing on registration.
"""

from __future__ import annotations

import bisect
import threading
import weakref
from collections.abc import Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from services.prometheus_collectors import OncePerCollectorRegistry

__all__ = ["PROPENSITY_BUCKETS", "PolicyClientCollector", "VersionStats", "collector_for"]

PROPENSITY_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95,
    0.99, 1.0,
)  # fmt: skip


class VersionStats:
    """What one client counted for one version (plain numbers; see module doc)."""

    __slots__ = ("bucket_counts", "decisions", "episodes", "load_failures", "propensity_sum",
                 "reward_sum")  # fmt: skip

    def __init__(self) -> None:
        self.decisions = 0
        self.episodes = 0
        self.reward_sum = 0.0
        self.propensity_sum = 0.0
        self.load_failures = 0
        # one count per bucket of PROPENSITY_BUCKETS plus +Inf (never used: p <= 1)
        self.bucket_counts = [0] * (len(PROPENSITY_BUCKETS) + 1)

    def observe_propensity(self, p: float) -> None:
        self.bucket_counts[bisect.bisect_left(PROPENSITY_BUCKETS, p)] += 1
        self.propensity_sum += p


class MetricsSource(Protocol):
    """What the collector needs from a client."""

    policy_name: str

    def metric_snapshot(self) -> tuple[dict[str, VersionStats], dict[str, Any]]: ...


class PolicyClientCollector(Collector):
    """Collects every registered client's numbers at scrape time."""

    def __init__(self) -> None:
        self._clients: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = threading.Lock()

    def add(self, client: MetricsSource) -> None:
        with self._lock:
            self._clients.add(client)

    def remove(self, client: MetricsSource) -> None:
        with self._lock:
            self._clients.discard(client)

    def describe(self) -> list[Any]:
        return list(self._families())

    def collect(self) -> Iterator[Any]:
        with self._lock:
            clients = list(self._clients)
        totals: dict[tuple[str, str], VersionStats] = {}
        serving: dict[tuple[str, str, str], float] = {}
        fractions: dict[tuple[str, str], float] = {}
        for client in clients:
            stats, snapshot = client.metric_snapshot()
            policy = client.policy_name
            for version, s in stats.items():
                total = totals.setdefault((policy, version), VersionStats())
                total.decisions += s.decisions
                total.episodes += s.episodes
                total.reward_sum += s.reward_sum
                total.propensity_sum += s.propensity_sum
                total.load_failures += s.load_failures
                for i, count in enumerate(s.bucket_counts):
                    total.bucket_counts[i] += count
            serving[(policy, snapshot["incumbent"], "incumbent")] = 1.0
            if snapshot["candidate"] is not None:
                serving[(policy, snapshot["candidate"], "candidate")] = 1.0
                key = (policy, snapshot["candidate"])
                fractions[key] = max(fractions.get(key, 0.0), snapshot["fraction"])
        families = self._families()
        decisions, episodes, reward, propensity, failures, served, fraction = families
        for (policy, version), s in sorted(totals.items()):
            labels = [policy, version]
            decisions.add_metric(labels, s.decisions)
            episodes.add_metric(labels, s.episodes)
            reward.add_metric(labels, s.reward_sum)
            failures.add_metric(labels, s.load_failures)
            if s.decisions:
                cumulative, buckets = 0, []
                for bound, count in zip(
                    (*PROPENSITY_BUCKETS, float("inf")), s.bucket_counts, strict=True
                ):
                    cumulative += count
                    buckets.append((_bound_text(bound), cumulative))
                propensity.add_metric(labels, buckets, s.propensity_sum)
        for (policy, version, role), value in sorted(serving.items()):
            served.add_metric([policy, version, role], value)
        for (policy, version), value in sorted(fractions.items()):
            fraction.add_metric([policy, version], value)
        yield from families

    @staticmethod
    def _families() -> tuple[Any, ...]:
        labels = ["policy", "policy_version"]
        return (
            CounterMetricFamily(
                "policyloop_policy_decisions", "Decisions served (act calls).", labels=labels
            ),
            CounterMetricFamily(
                "policyloop_policy_episodes",
                "Episodes started (counted at their first act).",
                labels=labels,
            ),
            GaugeMetricFamily(
                "policyloop_policy_reward_sum",
                "Sum of rewards reported through the client (may decrease: rewards may be "
                "negative).",
                labels=labels,
            ),
            HistogramMetricFamily(
                "policyloop_policy_propensity",
                "Propensity of the sampled action.",
                labels=labels,
            ),
            CounterMetricFamily(
                "policyloop_policy_load_failures",
                "Versions the client refused to load (sha256 mismatch, corrupt file, missing "
                "manifest; policy_version CURRENT or ROLLOUT: that pointer file is unreadable); "
                "the last good version, or the uniform fallback, kept serving.",
                labels=labels,
            ),
            GaugeMetricFamily(
                "policyloop_policy_serving",
                "1 for each version the client serves, by role (incumbent or candidate).",
                labels=["policy", "policy_version", "role"],
            ),
            GaugeMetricFamily(
                "policyloop_rollout_fraction",
                "Share of episodes the client routes to the rollout candidate.",
                labels=labels,
            ),
        )


def _bound_text(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


def _registered_collector(registry: CollectorRegistry) -> PolicyClientCollector:
    collector = PolicyClientCollector()
    registry.register(collector)
    return collector


_per_registry = OncePerCollectorRegistry(_registered_collector)


def collector_for(registry: CollectorRegistry | None = None) -> PolicyClientCollector:
    """The client collector registered in ``registry`` (default: the process-wide one)."""
    return _per_registry(registry)

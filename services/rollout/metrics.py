"""Prometheus metrics of the rollout controller (names are a contract with the dashboard).

* ``policyloop_rollout_episodes{policy,policy_version,role}`` — complete episodes in the step
* ``policyloop_rollout_mean_reward{policy,policy_version,role}`` — their mean return
* ``policyloop_rollout_step_fraction{policy,policy_version}`` — the candidate's share now
* ``policyloop_rollout_decisions_total{policy,decision}``

``role`` is ``candidate`` or ``incumbent``. The gauges are set at every tick.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from services.prometheus_collectors import OncePerCollectorRegistry

__all__ = ["RolloutMetrics", "rollout_metrics"]


class RolloutMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.episodes = Gauge(
            "policyloop_rollout_episodes",
            "Complete episodes observed in the current rollout step, by role.",
            ["policy", "policy_version", "role"],
            registry=registry,
        )
        self.mean_reward = Gauge(
            "policyloop_rollout_mean_reward",
            "Mean episode return in the current rollout step, by role.",
            ["policy", "policy_version", "role"],
            registry=registry,
        )
        self.step_fraction = Gauge(
            "policyloop_rollout_step_fraction",
            "Share of episodes the rollout plan routes to the candidate now.",
            ["policy", "policy_version"],
            registry=registry,
        )
        self.decisions = Counter(
            "policyloop_rollout_decisions",
            "Rollout controller decisions (start, hold, advance, promote, rollback, abort).",
            ["policy", "decision"],
            registry=registry,
        )


_per_registry = OncePerCollectorRegistry(RolloutMetrics)


def rollout_metrics(registry: CollectorRegistry | None = None) -> RolloutMetrics:
    """The controller's metrics in ``registry`` (default: the process-wide one), made once."""
    return _per_registry(registry)

"""What the PolicyClient tests share: a client on a test registry and a metric's value."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from services.registry import Registry
from services.sdk.policy_client import PolicyClient

__all__ = ["open_client", "sample"]


def open_client(registry: Registry, metrics: CollectorRegistry, **options) -> PolicyClient:
    """A client of ``registry``'s policy that polls only when a test says so."""
    options.setdefault("poll_interval_s", 3600.0)  # tests refresh explicitly unless they poll
    return PolicyClient(registry.uri, registry.policy_name, metrics_registry=metrics, **options)


def sample(metrics: CollectorRegistry, name: str, **labels: str) -> float:
    """The value of metric ``name`` with ``labels``; 0 before its first increment."""
    value = metrics.get_sample_value(name, labels)
    return 0.0 if value is None else value

"""One instance of a component's metrics per Prometheus registry, made on first use.

Why: prometheus-client refuses to register the same metric name twice in one registry, yet
several loggers, clients or controllers in one process (and tests that give each its own
registry) must share their component's series. Each component keeps one
:class:`OncePerCollectorRegistry` of its metrics class; instances are held weakly, so a test's
throw-away registry is freed. ("Registry" here is prometheus-client's CollectorRegistry; in the
rest of policyloop the word means the policy registry.)
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

from prometheus_client import REGISTRY, CollectorRegistry

__all__ = ["OncePerCollectorRegistry"]

T = TypeVar("T")


class OncePerCollectorRegistry(Generic[T]):
    """``factory(registry)`` called at most once per registry (default: the process-wide one)."""

    def __init__(self, factory: Callable[[CollectorRegistry], T]) -> None:
        self._factory = factory
        self._made: weakref.WeakKeyDictionary[CollectorRegistry, T] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def __call__(self, registry: CollectorRegistry | None = None) -> T:
        registry = REGISTRY if registry is None else registry
        with self._lock:
            made = self._made.get(registry)
            if made is None:
                made = self._made[registry] = self._factory(registry)
            return made

"""Fixtures of the rollout tests: a registry with an incumbent and a candidate, a clock."""

from __future__ import annotations

import datetime as dt

import pytest
from prometheus_client import CollectorRegistry

from services.registry import Registry
from services.rollout.controller import RolloutController
from services.rollout.settings import RolloutSettings
from tests.rollout.factory import publish


class Clock:
    """A settable UTC clock, so tests place timeline rows relative to step starts."""

    def __init__(self) -> None:
        self.now = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> dt.datetime:
        self.now += dt.timedelta(**delta)
        return self.now


@pytest.fixture(scope="session")
def versions_dir(tmp_path_factory) -> str:
    """A registry made once (exporting policies takes a moment): v1 CURRENT, v2 stored."""
    root = tmp_path_factory.mktemp("rollout-registry")
    registry = Registry(str(root), "cartpole")
    publish(registry, promote=True, logits=[0.0, 0.0])
    publish(registry, logits=[1.0, 0.0])
    return str(root)


@pytest.fixture
def registry(versions_dir, tmp_path) -> Registry:
    """A private copy of the session registry (tests move CURRENT and ROLLOUT)."""
    import shutil

    root = tmp_path / "registry"
    shutil.copytree(versions_dir, root)
    return Registry(str(root), "cartpole")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def metrics() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def controller(registry, tmp_path, clock, metrics) -> RolloutController:
    return RolloutController(
        registry,
        str(tmp_path / "timeline"),
        str(tmp_path / "rollout_log"),
        RolloutSettings(min_test_episodes=30),
        metrics_registry=metrics,
        clock=clock,
    )


@pytest.fixture
def env(registry, tmp_path) -> dict[str, str]:
    """``POLICYLOOP_*`` variables pointing the CLI at this test's registry and tables."""
    return {
        "POLICYLOOP_LEARNER__REGISTRY_URI": registry.uri,
        "POLICYLOOP_LEARNER__POLICY_NAME": "cartpole",
        "POLICYLOOP_TABLES__TIMELINE_URI": str(tmp_path / "timeline"),
        "POLICYLOOP_LEARNER__ANNOUNCE": "false",
        "POLICYLOOP_ROLLOUT__ROLLOUT_LOG_URI": str(tmp_path / "rollout_log"),
    }

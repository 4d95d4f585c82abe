"""PolicyClient.reward refuses bad input with an error naming the field, and counts nothing."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry

from services.broker.embedded import find_free_port
from services.kafka_settings import KafkaSettings
from services.registry import Registry
from services.sdk import DecisionLogger, PolicyClient
from services.sdk.settings import SdkSettings
from tests.rollout.factory import publish

STATE = {"cart_position": 0.3, "cart_velocity": -0.5, "pole_angle": 0.05,
         "pole_angular_velocity": 0.7}  # fmt: skip


@pytest.fixture
def metrics() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def client(tmp_path, metrics):
    """A client serving a published version; episode "ep" has acted once (step 0)."""
    registry = Registry(str(tmp_path / "registry"), "cartpole")
    publish(registry, promote=True)
    with PolicyClient(
        registry.uri, "cartpole", metrics_registry=metrics, poll_interval_s=3600, seed=0
    ) as client:
        client.act("ep", STATE, [0, 1])
        yield client


def _reward_sum(client: PolicyClient, metrics: CollectorRegistry) -> float:
    labels = {"policy": "cartpole", "policy_version": client.serving.current_version}
    return metrics.get_sample_value("policyloop_policy_reward_sum", labels) or 0.0


@pytest.mark.parametrize("reward", [math.nan, math.inf, -math.inf, True, "1.0", None], ids=repr)
def test_a_reward_that_is_not_a_finite_number_is_refused_naming_reward(client, metrics, reward):
    with pytest.raises(ValueError, match=r"^reward=.*must be a finite number"):
        client.reward("ep", reward)
    assert _reward_sum(client, metrics) == 0.0


def test_an_integer_reward_is_a_number(client, metrics):
    client.reward("ep", 2)
    assert _reward_sum(client, metrics) == 2.0


def test_a_reward_for_an_episode_that_never_acted_needs_an_explicit_step(client, metrics):
    with pytest.raises(ValueError, match=r"episode 'stranger' has no open act.*pass step="):
        client.reward("stranger", 1.0)
    client.reward("stranger", 1.0, step=0)  # explicit: accepted (nothing here to count it)
    assert _reward_sum(client, metrics) == 0.0


def test_a_reward_after_the_episode_ended_needs_an_explicit_step(client):
    client.end_episode("ep", terminal=True)
    with pytest.raises(ValueError, match=r"episode 'ep' has no open act"):
        client.reward("ep", 1.0)


@pytest.fixture
def logging_client(tmp_path, client):
    """``client`` with a DecisionLogger attached (broker unreachable: it validates, spools)."""
    nowhere = KafkaSettings(bootstrap_servers=f"127.0.0.1:{find_free_port()}", topic_prefix="x")
    settings = SdkSettings(spool_dir=str(tmp_path / "spool"), max_block_ms=200)
    logger = DecisionLogger(kafka=nowhere, settings=settings, registry=CollectorRegistry())
    client.logger = logger  # the attribute the constructor's logger= sets
    try:
        yield client
    finally:
        client.logger = None
        logger.close(timeout=0.1)


BAD_STEPS = pytest.mark.parametrize("step", [-1, 1.5, "0", True], ids=repr)


@BAD_STEPS
def test_a_bad_step_is_refused_naming_step_with_a_logger_attached(logging_client, step):
    with pytest.raises(ValueError, match=r"reward\.step=.*must be"):
        logging_client.reward("ep", 1.0, step=step)


@BAD_STEPS
def test_a_bad_step_is_refused_naming_step_without_a_logger(client, metrics, step):
    with pytest.raises(ValueError, match=r"step=.*must be"):
        client.reward("ep", 1.0, step=step)
    assert _reward_sum(client, metrics) == 0.0

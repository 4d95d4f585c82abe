"""PolicyClient against a damaged registry: a corrupt ROLLOUT, a CURRENT that cannot be loaded.

A corrupt ``ROLLOUT`` means "no rollout": the incumbent serves every episode, one ERROR names
the file and the rule, ``policyloop_policy_load_failures_total{policy_version="ROLLOUT"}``
counts it, and the constructor never raises. A ``CURRENT`` that cannot be loaded when the
client starts is served as the uniform fallback with an ERROR naming the version and the reason
and a count in the metric (``fallback="uniform"``), or refused with
:class:`PolicyUnavailableError` naming both (``fallback="none"``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from services.registry import Registry
from services.sdk import PolicyUnavailableError
from tests.rollout.factory import publish
from tests.sdk.policy_client_setup import open_client, sample

STATE = {"cart_position": 0.3, "cart_velocity": -0.5, "pole_angle": 0.05,
         "pole_angular_velocity": 0.7}  # fmt: skip
LOGGER = "services.sdk.policy_client"
FAILURES = "policyloop_policy_load_failures_total"

CORRUPT_ROLLOUTS = {
    "truncated JSON": (b'{"version": "v2", "fract', "not valid JSON"),
    "not UTF-8": (b"\xff\xfe\x00garbage", "not valid JSON"),
    "not an object": (b"[1, 2]", "JSON object"),
    "fraction not a number": (b'{"version": "v2", "fraction": "half"}', "fraction"),
    "fraction above 1": (b'{"version": "v2", "fraction": 7}', "fraction"),
    "version not a name": (b'{"version": 2, "fraction": 0.5}', "version"),
}


@pytest.fixture
def registry(tmp_path) -> Registry:
    return Registry(str(tmp_path / "registry"), "cartpole")


@pytest.fixture
def metrics() -> CollectorRegistry:
    return CollectorRegistry()


def _failures(metrics: CollectorRegistry, version: str) -> float:
    return sample(metrics, FAILURES, policy="cartpole", policy_version=version)


def _policy_dir(registry: Registry) -> Path:
    return Path(registry.uri) / registry.policy_name


def _flip_a_byte(registry: Registry, version: str) -> None:
    path = _policy_dir(registry) / version / "policy.pt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("content,rule", CORRUPT_ROLLOUTS.values(), ids=list(CORRUPT_ROLLOUTS))
def test_a_corrupt_rollout_is_no_rollout_and_never_crashes_the_constructor(
    registry, metrics, caplog, content, rule
):
    incumbent = publish(registry, promote=True, logits=[0.0, 0.0])
    publish(registry, logits=[3.0, 0.0])
    (_policy_dir(registry) / "ROLLOUT").write_bytes(content)
    caplog.set_level(logging.WARNING, logger=LOGGER)
    with open_client(registry, metrics, seed=1) as client:
        client.refresh()  # still corrupt: not logged or counted again
        acts = [client.act(f"ep-{i}", STATE, [0, 1]) for i in range(50)]
        assert client.serving.current_version == incumbent
        assert client.serving.candidate_version is None
        failures = _failures(metrics, "ROLLOUT")
    assert {a.policy_version for a in acts} == {incumbent}
    errors = _errors(caplog)
    assert len(errors) == 1, errors
    assert "ROLLOUT" in errors[0] and rule in errors[0] and incumbent in errors[0]
    assert failures == 1


def test_a_rollout_that_turns_corrupt_sends_every_new_episode_to_the_incumbent(
    registry, metrics, caplog
):
    incumbent = publish(registry, promote=True, logits=[0.0, 0.0])
    candidate = publish(registry, logits=[3.0, 0.0])
    registry.set_rollout(candidate, 1.0)
    with open_client(registry, metrics, seed=2) as client:
        assert client.serving.candidate_version == candidate
        (_policy_dir(registry) / "ROLLOUT").write_bytes(b"{oops")
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            assert client.refresh()
        assert client.serving.current_version == incumbent
        assert client.serving.candidate_version is None
        assert client.act("new-episode", STATE, [0, 1]).policy_version == incumbent
        registry.set_rollout(candidate, 1.0)  # repaired: the rollout resumes
        assert client.refresh()
        assert client.serving.candidate_version == candidate
        failures = _failures(metrics, "ROLLOUT")
    assert failures == 1
    assert any("ROLLOUT" in m and "not valid JSON" in m for m in _errors(caplog))


@pytest.mark.parametrize("damage", ["flipped byte", "missing version", "not a version name"])
def test_an_unloadable_current_at_start_serves_uniform_and_says_so(
    registry, metrics, caplog, damage
):
    version = publish(registry, promote=True, logits=[3.0, 0.0])
    reason = "sha256"
    if damage == "flipped byte":
        _flip_a_byte(registry, version)
    elif damage == "missing version":
        version, reason = "v9", "no version"
        (_policy_dir(registry) / "CURRENT").write_text("v9\n")
    else:
        version, reason = "latest", "must look like"
        (_policy_dir(registry) / "CURRENT").write_text("latest\n")
    caplog.set_level(logging.WARNING, logger=LOGGER)
    with open_client(registry, metrics, seed=3) as client:
        client.refresh()  # still broken: not logged or counted again
        act = client.act("ep", STATE, [0, 1])
        assert client.serving.current_version == "uniform"
        failures = _failures(metrics, version)
    assert act.policy_version == "uniform" and act.propensity == 0.5
    errors = _errors(caplog)
    assert len(errors) == 1, errors
    assert version in errors[0] and reason in errors[0] and "uniform" in errors[0]
    assert failures == 1


def test_an_undecodable_current_at_start_serves_uniform_and_says_so(registry, metrics, caplog):
    publish(registry, promote=True)
    (_policy_dir(registry) / "CURRENT").write_bytes(b"\xff\xfe\x00")
    caplog.set_level(logging.WARNING, logger=LOGGER)
    with open_client(registry, metrics) as client:
        client.refresh()  # still unreadable: not logged or counted again
        assert client.serving.current_version == "uniform"
        failures = _failures(metrics, "CURRENT")
    errors = _errors(caplog)
    assert len(errors) == 1 and "CURRENT" in errors[0] and "UTF-8" in errors[0], errors
    assert failures == 1


def test_an_unloadable_current_with_fallback_none_refuses_naming_version_and_reason(
    registry, metrics
):
    version = publish(registry, promote=True)
    _flip_a_byte(registry, version)
    with pytest.raises(PolicyUnavailableError, match=rf"version {version} .*sha256"):
        open_client(registry, metrics, fallback="none")


def test_an_undecodable_current_with_fallback_none_refuses_naming_the_file(registry, metrics):
    publish(registry, promote=True)
    (_policy_dir(registry) / "CURRENT").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(PolicyUnavailableError, match=r"CURRENT.*UTF-8"):
        open_client(registry, metrics, fallback="none")


def test_a_corrupt_rollout_does_not_stop_fallback_none_from_serving_current(registry, metrics):
    version = publish(registry, promote=True)
    (_policy_dir(registry) / "ROLLOUT").write_bytes(b"not json at all")
    with open_client(registry, metrics, fallback="none") as client:
        assert client.serving.current_version == version

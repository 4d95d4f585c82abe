"""PolicyClient: what it serves, how it routes, reloads, refuses and reports.

Registry versions are real served policies (``tests.rollout.factory``) in a real registry
directory; metrics are read from a real prometheus-client ``CollectorRegistry``.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from services.registry import Registry, load_policy
from services.sdk import PolicyUnavailableError, episode_bucket
from tests.rollout.factory import publish
from tests.sdk.policy_client_setup import open_client, sample

STATE = {"cart_position": 0.3, "cart_velocity": -0.5, "pole_angle": 0.05,
         "pole_angular_velocity": 0.7}  # fmt: skip
THREE = ["left", "stay", "right"]


@pytest.fixture
def registry(tmp_path) -> Registry:
    return Registry(str(tmp_path / "registry"), "cartpole")


@pytest.fixture
def metrics() -> CollectorRegistry:
    return CollectorRegistry()


def test_propensities_equal_the_served_distribution(registry, metrics):
    version = publish(registry, promote=True, actions=THREE, seed=3, hidden_sizes=(8,))
    served = load_policy(registry.load_bytes(version)[0])
    want = served(STATE, [True, True, True])
    draws = 6000
    with open_client(registry, metrics, seed=11) as client:
        acts = [client.act(f"ep-{i}", STATE, THREE) for i in range(draws)]
    counts = Counter(a.action for a in acts)
    for act in acts:
        assert act.policy_version == version
        assert act.action_probs == pytest.approx(want, abs=1e-6)
        assert act.propensity == act.action_probs[THREE.index(act.action)]
    chi2 = sum((counts[a] - draws * p) ** 2 / (draws * p) for a, p in zip(THREE, want, strict=True))
    assert chi2 < 13.82, (counts, want)  # chi-square, 2 degrees of freedom, 0.999 quantile


def test_probabilities_follow_the_possible_actions_given(registry, metrics):
    version = publish(registry, promote=True, actions=THREE, seed=3, hidden_sizes=(8,))
    served = load_policy(registry.load_bytes(version)[0])
    full = served(STATE, [True, False, True])
    with open_client(registry, metrics, seed=1) as client:
        act = client.act("ep", STATE, ["right", "left"])
    assert act.action_probs == pytest.approx([full[2], full[0]], abs=1e-6)
    assert act.action in ("right", "left")


@pytest.mark.parametrize(
    ("manifest_actions", "given"),
    [(["0", "1"], [1, 0]), (["1", "0"], [0, 1]), (["1", "0"], [1, 0])],
    ids=["reversed", "texts-not-positions", "texts-not-positions-reversed"],
)
def test_integer_actions_map_to_the_manifests_action_texts(
    registry, metrics, manifest_actions, given
):
    # The manifest's first action gets softmax([0, 3])[0], its second the rest. Matching by
    # position in `given`, or reading an integer as a manifest index, gives other numbers.
    publish(registry, promote=True, actions=manifest_actions, logits=[0.0, 3.0])
    low = math.exp(0.0) / (math.exp(0.0) + math.exp(3.0))
    by_text = {manifest_actions[0]: low, manifest_actions[1]: 1.0 - low}
    with open_client(registry, metrics, seed=2) as client:
        acts = [client.act(f"ep-{i}", STATE, given) for i in range(50)]
    for act in acts:
        assert act.action_probs == pytest.approx([by_text[str(a)] for a in given], abs=1e-6)
        assert act.propensity == pytest.approx(by_text[str(act.action)], abs=1e-6)


def test_a_possible_action_the_model_does_not_know_is_named_in_the_error(registry, metrics):
    publish(registry, promote=True)
    with open_client(registry, metrics) as client, pytest.raises(ValueError, match="'jump'"):
        client.act("ep", STATE, [0, "jump"])


def test_steps_count_per_episode_and_rewards_default_to_the_last_step(registry, metrics):
    version = publish(registry, promote=True)
    with open_client(registry, metrics, seed=0) as client:
        steps = [client.act("ep-a", STATE, [0, 1]).step for _ in range(3)]
        client.reward("ep-a", 2.5)
        client.reward("ep-a", -1.0, step=0)
        other = client.act("ep-b", STATE, [0, 1]).step
        client.end_episode("ep-a", terminal=True)
        again = client.act("ep-a", STATE, [0, 1]).step
        reward = sample(metrics, "policyloop_policy_reward_sum", policy="cartpole",
                         policy_version=version)  # fmt: skip
    assert steps == [0, 1, 2] and other == 0 and again == 0
    assert reward == pytest.approx(1.5)


def test_without_current_the_uniform_fallback_serves(registry, metrics):
    with open_client(registry, metrics, seed=5) as client:
        act = client.act("ep", STATE, ["a", "b", "c", "d"])
        assert client.serving.current_version == "uniform"
    assert act.policy_version == "uniform"
    assert act.action_probs == [0.25] * 4 and act.propensity == 0.25


def test_without_current_fallback_none_refuses_to_start(registry, metrics):
    with pytest.raises(PolicyUnavailableError, match="no CURRENT"):
        open_client(registry, metrics, fallback="none")


def test_routing_is_stable_per_episode_and_matches_the_fraction(registry, metrics):
    incumbent = publish(registry, promote=True, logits=[0.0, 0.0])
    candidate = publish(registry, logits=[1.0, 0.0])
    registry.set_rollout(candidate, 0.3)
    episodes = [f"user-{i}" for i in range(4000)]
    with open_client(registry, metrics, seed=0) as client:
        first = {e: client.act(e, STATE, [0, 1]).policy_version for e in episodes}
        registry.set_rollout(candidate, 0.9)  # the fraction changes mid-episode
        assert client.refresh()
        assert client.serving.fraction == 0.9
        second = {e: client.act(e, STATE, [0, 1]).policy_version for e in episodes}
        fresh = client.act("a-new-episode", STATE, [0, 1])
    assert second == first  # every open episode keeps the version of its first act
    for episode, version in first.items():
        assert version == (candidate if episode_bucket(episode) < 0.3 else incumbent)
    share = sum(v == candidate for v in first.values()) / len(first)
    assert abs(share - 0.3) < 4 * math.sqrt(0.3 * 0.7 / len(first))
    expected = candidate if episode_bucket("a-new-episode") < 0.9 else incumbent
    assert fresh.policy_version == expected


def test_episode_bucket_is_the_same_in_every_process():
    # blake2b, not Python's salted hash(): a fixed value for a fixed id
    assert episode_bucket("user-42") == episode_bucket("user-42")
    assert 0.0 <= episode_bucket("user-42") < 1.0
    import subprocess
    import sys

    code = (
        "from services.sdk.policy_routing import episode_bucket; "
        "print(repr(episode_bucket('user-42')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert float(out.stdout) == episode_bucket("user-42")


def test_hot_reload_switches_versions_without_a_failed_act(registry, metrics):
    old = publish(registry, promote=True, logits=[0.0, 0.0])
    new = publish(registry, logits=[2.0, 0.0])
    seen: Counter[str] = Counter()
    errors: list[BaseException] = []
    stop = threading.Event()
    with open_client(registry, metrics, seed=0, poll_interval_s=0.05) as client:

        def hammer() -> None:
            n = 0
            while not stop.is_set():
                try:
                    seen[client.act(f"ep-{n}", STATE, [0, 1]).policy_version] += 1
                except BaseException as exc:  # the test reports any failure
                    errors.append(exc)
                    return
                n += 1

        thread = threading.Thread(target=hammer)
        thread.start()
        try:
            _wait(lambda: seen[old] > 200)
            registry.promote(new)
            _wait(lambda: client.serving.current_version == new)
            _wait(lambda: seen[new] > 200)
        finally:
            stop.set()
            thread.join(10)
    assert errors == []
    assert seen[old] > 200 and seen[new] > 200


def _version_dir(registry: Registry, version: str) -> Path:
    return Path(registry.uri) / registry.policy_name / version


def _wait(condition, timeout: float = 20.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_a_corrupt_new_version_is_refused_and_the_old_one_keeps_serving(registry, metrics, caplog):
    good = publish(registry, promote=True, logits=[0.0, 0.0])
    with open_client(registry, metrics, seed=0) as client:
        bad = publish(registry, promote=True, logits=[3.0, 0.0])
        path = _version_dir(registry, bad) / "policy.pt"  # tampered after promotion
        path.write_bytes(path.read_bytes()[:-16] + b"\x00" * 16)
        with caplog.at_level(logging.WARNING, logger="services.sdk.policy_client"):
            changed = client.refresh()
            client.refresh()  # not retried while CURRENT stays on the broken version
        act = client.act("ep", STATE, [0, 1])
        assert client.serving.current_version == good
        failures = sample(metrics, "policyloop_policy_load_failures_total", policy="cartpole",
                           policy_version=bad)  # fmt: skip
    assert not changed and act.policy_version == good
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and bad in warnings[0].getMessage()
    assert "sha256" in warnings[0].getMessage()
    assert failures == 1


def test_a_version_without_manifest_is_refused(registry, metrics, caplog):
    good = publish(registry, promote=True)
    with open_client(registry, metrics) as client:
        bad = publish(registry, promote=True)
        (_version_dir(registry, bad) / "manifest.json").unlink()
        with caplog.at_level(logging.WARNING, logger="services.sdk.policy_client"):
            client.refresh()
        assert client.serving.current_version == good
    assert any(bad in r.getMessage() for r in caplog.records)


def test_metrics_by_version(registry, metrics):
    incumbent = publish(registry, promote=True, logits=[0.0, 0.0])
    candidate = publish(registry, logits=[0.0, 0.0])
    registry.set_rollout(candidate, 0.5)
    with open_client(registry, metrics, seed=0) as client:
        versions = Counter()
        for i in range(200):
            act = client.act(f"ep-{i}", STATE, [0, 1])
            client.act(f"ep-{i}", STATE, [0, 1])
            client.reward(f"ep-{i}", 1.0)
            versions[act.policy_version] += 1
        for role, version in (("incumbent", incumbent), ("candidate", candidate)):
            labels = {"policy": "cartpole", "policy_version": version}
            assert (
                sample(metrics, "policyloop_policy_episodes_total", **labels) == versions[version]
            )
            assert (
                sample(metrics, "policyloop_policy_decisions_total", **labels)
                == 2 * versions[version]
            )
            assert sample(metrics, "policyloop_policy_reward_sum", **labels) == versions[version]
            assert (
                sample(metrics, "policyloop_policy_propensity_count", **labels)
                == 2 * versions[version]
            )
            assert (
                sample(metrics, "policyloop_policy_propensity_bucket", le="0.5", **labels)
                == 2 * versions[version]
            )
            assert sample(metrics, "policyloop_policy_propensity_bucket", le="0.4", **labels) == 0
            assert sample(metrics, "policyloop_policy_serving", role=role, **labels) == 1
        fraction = sample(metrics, "policyloop_rollout_fraction", policy="cartpole",
                           policy_version=candidate)  # fmt: skip
    assert fraction == 0.5
    assert versions[incumbent] > 0 and versions[candidate] > 0  # fmt: skip


def test_a_corrupt_rollout_candidate_gets_no_traffic(registry, metrics):
    incumbent = publish(registry, promote=True)
    candidate = publish(registry)
    registry.set_rollout(candidate, 0.5)  # verified here, tampered with afterwards
    path = _version_dir(registry, candidate) / "policy.pt"
    path.write_bytes(b"not a model")
    with open_client(registry, metrics) as client:
        versions = {client.act(f"ep-{i}", STATE, [0, 1]).policy_version for i in range(200)}
        assert client.serving.candidate_version is None and client.serving.fraction == 0.0
        failures = sample(metrics, "policyloop_policy_load_failures_total", policy="cartpole",
                           policy_version=candidate)  # fmt: skip
    assert versions == {incumbent}
    assert failures == 1


def test_open_episodes_are_bounded_and_the_oldest_is_forgotten(registry, metrics, caplog):
    publish(registry, promote=True)
    with open_client(registry, metrics, max_open_episodes=2) as client:
        with caplog.at_level(logging.WARNING, logger="services.sdk.policy_client"):
            for episode in ("a", "b", "c", "d"):
                client.act(episode, STATE, [0, 1])
        assert client.open_episodes == 2
        assert client.act("d", STATE, [0, 1]).step == 1  # still open
        assert client.act("a", STATE, [0, 1]).step == 0  # forgotten: starts again
    assert sum("max_open_episodes" in r.getMessage() for r in caplog.records) == 1

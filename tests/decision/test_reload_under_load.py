"""Hot reload and staged rollout under concurrent load, over real HTTP: the service serves what
``PolicyClient`` serves (CURRENT, ROLLOUT), switches without failing a request, and an episode
keeps the version it started with. One scenario for the module; one behaviour per test."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

import pytest

from services.registry import Registry
from services.sdk import episode_bucket
from tests.decision.conftest import Served
from tests.decision.load import Load, Reply
from tests.rollout.factory import publish

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FRACTION = 0.5


@dataclass
class Switches:
    replies: list[Reply]
    ends: list[int]
    promoted_seen: float  # when the first reply of the promoted version came back
    rollout_seen: float  # when the first reply of the rollout candidate came back


def _first_reply_of(load: Load, version: str, timeout_s: float = 20.0) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for reply in list(load.replies):
            if reply.decision is not None and reply.decision["policy_version"] == version:
                return reply.answered
        time.sleep(0.02)
    raise AssertionError(f"no reply of {version} within {timeout_s} s")


@pytest.fixture(scope="module")
def switches(server: Served, registry: Registry) -> Switches:
    load = Load(server.url, threads=3, steps=4).start()
    try:
        time.sleep(1.0)
        promoted = publish(registry, promote=True, seed=11)
        promoted_seen = _first_reply_of(load, promoted)
        time.sleep(1.0)
        candidate = publish(registry, promote=False, seed=12)
        registry.set_rollout(candidate, FRACTION)
        rollout_seen = _first_reply_of(load, candidate)
        time.sleep(1.5)
    finally:
        load.stop()
    return Switches(load.replies, load.ends, promoted_seen, rollout_seen)


def _episodes(replies: list[Reply]) -> dict[str, list[Reply]]:
    episodes: dict[str, list[Reply]] = defaultdict(list)
    for reply in replies:
        if reply.decision is not None:
            episodes[reply.decision["episode_id"]].append(reply)
    return episodes


def test_no_request_fails_while_versions_are_promoted_and_rolled_out_under_load(switches):
    assert len(switches.replies) > 200
    assert {r.status for r in switches.replies} == {200}
    assert set(switches.ends) == {200}


def test_new_episodes_get_the_promoted_version_without_a_restart(switches):
    later = [
        r.decision["policy_version"]
        for r in switches.replies
        if r.episode_start
        and switches.promoted_seen < r.sent
        and r.answered < switches.rollout_seen
    ]
    assert later and set(later) == {"v2"}


def test_an_episode_keeps_the_version_it_started_with_across_reloads(switches):
    spanning = 0
    for replies in _episodes(switches.replies).values():
        versions = {r.decision["policy_version"] for r in replies}
        assert len(versions) == 1, versions
        spanning += replies[0].sent < switches.promoted_seen < replies[-1].answered
    assert spanning, "no episode spanned the promotion"


def test_a_staged_rollout_routes_new_episodes_by_their_stable_bucket(switches):
    routed = {
        replies[0].decision["episode_id"]: replies[0].decision["policy_version"]
        for replies in _episodes(switches.replies).values()
        if replies[0].episode_start and replies[0].sent > switches.rollout_seen
    }
    assert len(routed) > 20
    for episode_id, version in routed.items():
        expected = "v3" if episode_bucket(episode_id) < FRACTION else "v2"
        assert version == expected, episode_id
    assert set(routed.values()) == {"v2", "v3"}

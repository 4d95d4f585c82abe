"""Incremental checkpoints: the changes since the last commit, applied to the previous state,
give the state a full checkpoint would hold (``services/sessionizer/state_changes.py``)."""

from __future__ import annotations

import random

import msgpack

from schemas.wire import encode_event
from services.sessionizer.sessionize import PartitionSessionizer, SessionConfig
from services.sessionizer.state_changes import merge_changes
from tests.sessionizer.factory import T0, decision, end, reward

CONFIG = SessionConfig(
    reward_window_ms=5_000, episode_timeout_ms=60_000, closed_memory_episodes=5,
    max_episode_event_ids=6,
)  # fmt: skip


def _on_disk(data: dict) -> dict:
    return msgpack.unpackb(msgpack.packb(data, use_bin_type=True), raw=False)


def _comparable(snap: dict) -> dict:
    """The snapshot with its open episodes keyed by id: this workload redelivers events, and
    an episode moved only by an ignored event keeps its earlier place in a merged state
    (``state_changes.py``); the order is compared in ``test_incremental_checkpoint.py``."""
    snap = _on_disk(snap)
    snap["episodes"] = {entry[0]: entry for entry in snap["episodes"]}
    snap.setdefault("forgot_through", {})
    return snap


def _round(sess: PartitionSessionizer, rng: random.Random, round_: int, offset: int) -> int:
    """Some events of a few of twelve episodes, then the clock moves on."""
    base = T0 + round_ * 4_000
    for _ in range(rng.randint(1, 8)):
        episode = f"e{rng.randrange(12)}"
        step = round_ * 2 + rng.randint(0, 1)
        kind = rng.random()
        if kind < 0.5:
            event = decision(episode, step, ts=base + step)
        elif kind < 0.85:
            event = reward(episode, step, 1.0, ts=base + step + 1)
        else:
            event = end(episode, rng.random() < 0.5, ts=base + 2)
        sess.process_record(encode_event(event), offset, base + 10)
        offset += 1
    sess.expire(base + 3_000 if rng.random() < 0.5 else None)
    return offset


def test_each_commits_changes_applied_to_the_previous_state_give_the_full_state():
    rng = random.Random(7)
    sess = PartitionSessionizer(CONFIG)
    state = _on_disk(sess.snapshot())
    offset = 0
    for round_ in range(40):
        offset = _round(sess, rng, round_, offset)
        changes = _on_disk(sess.snapshot_changes(sess.take_changes()))
        state = merge_changes(state, changes)
        assert _comparable(state) == _comparable(sess.snapshot()), f"round {round_}"


def test_a_commit_without_changes_writes_no_episode():
    sess = PartitionSessionizer(CONFIG)
    sess.process_record(encode_event(decision("a", 0)), 0, T0 + 10)
    sess.take_changes()
    changes = sess.snapshot_changes(sess.take_changes())
    assert changes["episodes"] == [] and changes["removed"] == []


def test_the_merged_state_restores_a_sessionizer():
    sess = PartitionSessionizer(CONFIG)
    state = _on_disk(sess.snapshot())
    for offset, event in enumerate([decision("a", 0), decision("a", 1), reward("a", 0, 2.0)]):
        sess.process_record(encode_event(event), offset, T0 + 10_000)
    state = merge_changes(state, sess.snapshot_changes(sess.take_changes()))
    again = PartitionSessionizer(CONFIG)
    again.restore(state)
    for s in (sess, again):
        s.process_record(encode_event(end("a", True, ts=T0 + 1_500)), 3, T0 + 10_000)
        s.advance(T0 + 20_000)
    assert again.take_output().rows == sess.take_output().rows

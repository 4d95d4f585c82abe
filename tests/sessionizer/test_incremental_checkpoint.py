"""Incremental checkpoints through the worker's own parts: what a commit writes, and what a
restart reads back (issue 13, case 8: "checkpoints that do not rewrite every open episode at
every commit when most are unchanged").

A partition's checkpoint is its full state (a base) or the changes since the previous one,
chained to a base (``services/sessionizer/checkpoint_chain.py``); the table names the chain's
last link and a restart merges the chain (``checkpoint_load.py``). The worker is
:class:`tests.sessionizer.test_incremental_checkpoint_rig.WorkerRig`: the real batch, committer,
assigner, Delta sink and checkpoint store, without Kafka.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from services.sessionizer.settings import SessionizerSettings
from tests.sessionizer.factory import T0, decision, end, reward
from tests.sessionizer.test_incremental_checkpoint_rig import WorkerRig, on_disk

pytestmark = pytest.mark.integration

OPEN_EPISODES = 10_000
#: Rows wait for their window, episodes stay open: only the state changes.
QUIET = SessionizerSettings(reward_window_s=600, episode_timeout_s=36_000)


def _open_episodes(rig: WorkerRig, n: int) -> int:
    """``n`` open episodes of one decision each; returns the next free event time."""
    rig.feed([decision(f"e{i}", 0, ts=T0 + i) for i in range(n)], now_ms=T0 + n)
    return T0 + n


def test_with_most_episodes_unchanged_a_commit_writes_a_small_fraction_of_a_full_checkpoint(
    tmp_path: Path,
) -> None:
    rig = WorkerRig(tmp_path, QUIET, "w").claim()
    ts = _open_episodes(rig, OPEN_EPISODES)
    rig.commit()
    full = rig.committed_file()
    in_full = len(full.read()["episodes"])
    written = []
    for n in range(20):  # each commit: one episode of 10,000 gets its next decision
        rig.feed([decision(f"e{n}", 1, ts=ts + n)], now_ms=ts + n)
        rig.commit()
        written.append(rig.committed_file().nbytes)

    assert in_full == OPEN_EPISODES, "the first checkpoint is the full state"
    assert max(written) < full.nbytes / 100, (
        f"commits changing one episode of {OPEN_EPISODES:,} wrote {written} bytes each; "
        f"the full checkpoint is {full.nbytes:,}"
    )


class _Workload:
    """Episodes given events in order, every one of them accepted (no redelivery, no event the
    sessionizer would reject): decisions with a reward each, ends, quiet time closing windows.

    Episodes time out and leave the closed memory, and forget event ids, on the way.
    """

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._next_step: dict[str, int] = {}
        self._ended: set[str] = set()
        self.now = T0

    def events(self) -> list[dict[str, Any]]:
        rng = self._rng
        self.now += rng.randint(200, 4_000)
        events: list[dict[str, Any]] = []
        while not events or rng.random() < 0.6:
            episode = f"e{rng.randrange(40)}"
            if episode in self._ended:
                continue
            step = self._next_step.get(episode, 0)
            if step and rng.random() < 0.2:
                events.append(end(episode, rng.random() < 0.5, ts=self.now))
                self._ended.add(episode)
                continue
            events.append(decision(episode, step, ts=self.now))
            if rng.random() < 0.6:
                events.append(reward(episode, step, 1.0, ts=self.now + 1))
            self._next_step[episode] = step + 1
        return events

    def quiet(self) -> int | None:
        """Quiet time (wall time minus the slack) for ``expire``, now and then."""
        return self.now + self._rng.randint(0, 8_000) if self._rng.random() < 0.4 else None


def _restarted(tmp_path: Path, settings: SessionizerSettings, writer: str) -> WorkerRig:
    return WorkerRig(tmp_path, settings, writer).claim()


def test_a_restart_from_a_chain_restores_exactly_the_state_of_the_last_commit(
    tmp_path: Path,
) -> None:
    settings = SessionizerSettings(
        reward_window_s=5, episode_timeout_s=40, closed_memory_episodes=12,
        max_episode_event_ids=4, checkpoint_base_every=6, checkpoint_chain_share=100.0,
    )  # fmt: skip
    workload, rng = _Workload(seed=13), random.Random(5)
    rig = _restarted(tmp_path, settings, "w0")
    restarts_from_a_chain = 0
    for commit in range(1, 91):
        rig.feed(workload.events(), now_ms=workload.now + 10)
        rig.expire(workload.quiet())
        rig.commit()
        if rng.random() < 0.15:
            committed = on_disk(rig.sessionizer().snapshot())
            restarts_from_a_chain += "base" in rig.committed_file().read()  # a changes record
            rig.close()
            rig = _restarted(tmp_path, settings, f"w{commit}")
            assert on_disk(rig.sessionizer().snapshot()) == committed, f"commit {commit}"
    rig.close()
    assert restarts_from_a_chain >= 5


def _three_commits(rig: WorkerRig) -> int:
    """A base and two changes records; returns the next free event time."""
    ts = _open_episodes(rig, 50)
    rig.commit()
    for n in range(2):
        rig.feed([decision(f"e{n}", 1, ts=ts + n)], now_ms=ts + n)
        rig.commit()
    return ts + 2


def _kill_before_delta(rig: WorkerRig, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker dies once its checkpoints are saved, before its Delta commit."""

    def killed(batches: object) -> None:
        raise RuntimeError("killed before the Delta commit")

    monkeypatch.setattr(rig.sink, "commit", killed)
    with pytest.raises(RuntimeError, match="killed"):
        rig.commit()


def test_a_changes_file_whose_delta_commit_never_happened_is_ignored_on_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = WorkerRig(tmp_path, QUIET, "w").claim()
    ts = _three_commits(rig)
    committed = on_disk(rig.sessionizer().snapshot())
    rig.feed([decision("e7", 1, ts=ts), decision("e8", 1, ts=ts)], now_ms=ts)
    _kill_before_delta(rig, monkeypatch)
    assert rig.recorded_checkpoint() == (3, 1)
    assert [(f.number, f.generation) for f in rig.files()][-1] == (4, 1), "the orphan is there"

    restarted = _restarted(tmp_path, QUIET, "w2")

    assert on_disk(restarted.sessionizer().snapshot()) == committed


def test_the_first_checkpoint_after_a_claim_is_a_base_so_a_chain_never_spans_two_writers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = WorkerRig(tmp_path, QUIET, "w").claim()
    ts = _three_commits(rig)
    rig.feed([decision("e7", 1, ts=ts)], now_ms=ts)
    _kill_before_delta(rig, monkeypatch)
    restarted = _restarted(tmp_path, QUIET, "w2")

    restarted.feed([decision("e7", 1, ts=ts)], now_ms=ts)
    restarted.commit()

    newest = {(f.number, f.generation): f for f in restarted.files()}
    assert restarted.recorded_checkpoint() == (4, 2)
    assert "base" in newest[(4, 1)].read(), "the dead writer's orphan: a changes record"
    assert "base" not in newest[(4, 2)].read(), "the new writer's first: its full state"


def test_pruning_keeps_exactly_the_chain_the_committed_checkpoint_depends_on(
    tmp_path: Path,
) -> None:
    settings = SessionizerSettings(reward_window_s=600, checkpoint_base_every=3)
    rig = WorkerRig(tmp_path, settings, "w").claim()
    ts = _open_episodes(rig, 20)
    kept = []
    for n in range(8):
        rig.feed([decision(f"e{n}", 1, ts=ts + n)], now_ms=ts + n)
        rig.commit()
        kept.append([f.number for f in rig.files()])

    # bases at 1, 4 and 7: each commit leaves its chain, from its base
    assert kept == [[1], [1, 2], [1, 2, 3], [4], [4, 5], [4, 5, 6], [7], [7, 8]]

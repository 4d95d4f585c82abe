"""``kill -9`` of one of two workers under load, over real HTTP, into the real timeline.

Durable mode (``--durability durable``): no acknowledged decision is lost. Default mode: the
test measures how many acknowledged decisions are lost, and checks that they are only what the
killed worker held in memory (its own decisions, acknowledged just before the kill). The
figures are printed and written to ``kill9-<mode>.json`` in the test's folder; the README
quotes them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.decision.workers import WorkerRing
from tests.decision.conftest import Served, cartpole_registry, fresh_kafka, sessionize, start_server
from tests.decision.load import Load

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@dataclass
class KillRun:
    acknowledged: dict[str, float]  # decision id -> when acknowledged (monotonic)
    episode_owner: dict[str, int]  # decision id -> worker index that owned its episode
    victim: int
    killed_at: float
    timeline_ids: set[str]
    failed_requests: int
    restarted: bool
    spool_owners: list[str]  # the spool's owner directories while both workers ran
    metric_workers: set[str]  # the worker labels of one /metrics reply

    @property
    def lost(self) -> list[str]:
        return sorted(set(self.acknowledged) - self.timeline_ids)


def _workers_by_index(served: Served) -> dict[int, int]:
    """worker index -> pid, from /readyz on fresh connections until both answered."""
    seen: dict[int, int] = {}
    deadline = time.monotonic() + 30
    while len(seen) < 2 and time.monotonic() < deadline:
        reply = httpx.get(f"{served.url}/readyz", timeout=5).json()
        if reply.get("status") == "ready":
            seen[reply["worker"]] = reply["pid"]
    assert len(seen) == 2, seen
    return seen


def _kill_one_worker_under_load(broker: Any, tmp: Path, durability: str) -> KillRun:
    kafka = fresh_kafka(broker)
    registry = cartpole_registry(tmp / "registry")
    served = start_server(
        kafka,
        Path(registry.uri),
        tmp / "server",
        "--workers", "2",
        "--durability", durability,
        env={"POLICYLOOP_SDK__LINGER_MS": "20"},  # the product's default: the loss window
    )  # fmt: skip
    try:
        pids = _workers_by_index(served)
        spool_owners = sorted(p.name for p in served.spool.glob("pid-*"))
        metrics = httpx.get(f"{served.url}/metrics", timeout=10).text
        metric_workers = set(re.findall(r'worker="(\d+)"', metrics))
        victim = 1
        load = Load(served.url, threads=4, steps=1, end=False).start()
        try:
            time.sleep(2.0)
            killed_at = time.monotonic()
            os.kill(pids[victim], signal.SIGKILL)
            time.sleep(2.5)
        finally:
            load.stop()
        restarted = _workers_by_index(served)[victim] != pids[victim]
    finally:
        assert served.stop() == 0, served.log_tail()
    ring = WorkerRing(0, 2, None, tls=False)
    acknowledged = {r.decision["decision_id"]: r.answered for r in load.acknowledged()}
    owners = {
        r.decision["decision_id"]: ring.owner(r.decision["episode_id"]) for r in load.acknowledged()
    }
    rows = sessionize(kafka, tmp / "timeline")
    run = KillRun(
        acknowledged,
        owners,
        victim,
        killed_at,
        {row["decision_id"] for row in rows},
        sum(1 for r in load.replies if r.decision is None),
        restarted,
        spool_owners,
        metric_workers,
    )
    figures = {
        "durability": durability,
        "acknowledged": len(acknowledged),
        "acknowledged_by_victim": sum(1 for w in owners.values() if w == victim),
        "lost": len(run.lost),
        "failed_requests": run.failed_requests,
        "lost_acknowledged_ms_before_kill": sorted(
            round((killed_at - acknowledged[d]) * 1000, 1) for d in run.lost
        ),
    }
    print(json.dumps(figures))
    (tmp / f"kill9-{durability}.json").write_text(json.dumps(figures, indent=2))
    return run


@pytest.fixture(scope="module")
def durable_run(broker: Any, tmp_path_factory: pytest.TempPathFactory) -> KillRun:
    return _kill_one_worker_under_load(broker, tmp_path_factory.mktemp("durable"), "durable")


@pytest.fixture(scope="module")
def queued_run(broker: Any, tmp_path_factory: pytest.TempPathFactory) -> KillRun:
    return _kill_one_worker_under_load(broker, tmp_path_factory.mktemp("queued"), "queued")


def test_durable_mode_loses_no_acknowledged_decision_when_a_worker_is_killed(durable_run):
    assert len(durable_run.acknowledged) > 300
    assert durable_run.lost == []


def test_the_supervisor_restarts_a_killed_worker_with_its_index(durable_run):
    assert durable_run.restarted


def test_each_worker_owns_a_spool_directory_of_its_own(durable_run):
    assert len(durable_run.spool_owners) == 2, durable_run.spool_owners


def test_any_worker_serves_the_metrics_of_every_worker(durable_run):
    assert durable_run.metric_workers == {"0", "1"}


def test_default_mode_loses_only_what_the_killed_worker_held_in_memory(queued_run):
    assert len(queued_run.acknowledged) > 300
    for decision_id in queued_run.lost:
        assert queued_run.episode_owner[decision_id] == queued_run.victim
        assert queued_run.killed_at - queued_run.acknowledged[decision_id] < 1.0

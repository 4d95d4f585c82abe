"""A deterministic workload for the integration tests, and the rows it must produce.

The expected rows come from this module's own plain description of each episode (steps,
rewards, how it ends), not from the sessionizer, so a test comparing them checks the worker.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from schemas.tables import TIMELINE_SCHEMA
from services.delta_tables import open_table, read_table
from services.kafka_settings import KafkaSettings
from services.sdk import DecisionLogger
from services.sdk.settings import SdkSettings

REPO = Path(__file__).resolve().parents[2]
DEFAULT_REWARD = -1.0


@dataclass(frozen=True)
class Episode:
    episode_id: str
    steps: int
    rewards: dict[int, list[float]]
    terminal: bool


def make_episodes(n: int, seed: int, prefix: str = "ep") -> list[Episode]:
    rng = random.Random(seed)
    episodes = []
    for i in range(n):
        steps = rng.randint(1, 4)
        rewards = {
            s: [float(rng.randint(-3, 3)) for _ in range(rng.randint(0, 2))] for s in range(steps)
        }
        episodes.append(Episode(f"{prefix}{i}", steps, rewards, rng.random() < 0.7))
    return episodes


def expected_rows(episodes: list[Episode]) -> dict[tuple[str, int], tuple]:
    """(episode_id, step) -> (reward, reward_count, next_action, time_diff, terminal, truncated)."""
    out = {}
    for ep in episodes:
        for s in range(ep.steps):
            last = s == ep.steps - 1
            rs = ep.rewards.get(s, [])
            out[(ep.episode_id, s)] = (
                sum(rs) if rs else DEFAULT_REWARD,
                len(rs),
                None if last else str((s + 1) % 3),
                None if last else 1,
                last and ep.terminal,
                last and not ep.terminal,
            )
    return out


def log_step(logger: DecisionLogger, ep: Episode, i: int, s: int) -> None:
    """Step ``s`` of episode ``ep`` (the ``i``-th logged): its decision, then its rewards --
    what :func:`expected_rows` expects of it."""
    logger.decision(
        ep.episode_id,
        s,
        {"x": float(s), "i": float(i)},
        s % 3,
        [0, 1, 2],
        0.25,
        "v1",
        action_probs=[0.5, 0.25, 0.25] if s % 3 == 1 else None,
    )
    for value in ep.rewards.get(s, []):
        logger.reward(ep.episode_id, s, value)


def log_episodes(
    kafka: KafkaSettings,
    episodes: list[Episode],
    spool_dir: Path,
    *,
    pace_s: float = 0.0,
    chunk: int = 200,
) -> None:
    """Log every episode with the SDK (steps in order, rewards right after their decision)."""
    settings = SdkSettings(spool_dir=str(spool_dir), linger_ms=5)
    with DecisionLogger(kafka=kafka, settings=settings) as logger:
        for i, ep in enumerate(episodes):
            for s in range(ep.steps):
                log_step(logger, ep, i, s)
            logger.end_episode(ep.episode_id, ep.terminal)
            if pace_s and i % chunk == chunk - 1:
                time.sleep(pace_s)
        logger.flush(60)


def log_unended_episode(
    kafka: KafkaSettings, spool_dir: Path, episode_id: str, steps: int, *, end: bool = False
) -> None:
    """``steps`` decisions of one episode with no reward; its ``episode_end`` (truncated) only
    with ``end``: the episode the batch-mode and timeout tests keep open."""
    with DecisionLogger(kafka=kafka, settings=SdkSettings(spool_dir=str(spool_dir))) as logger:
        for s in range(steps):
            logger.decision(episode_id, s, {"x": float(s)}, s % 3, [0, 1, 2], 0.25, "v1")
        if end:
            logger.end_episode(episode_id, False)
        logger.flush(30)


def run_batch(
    kafka: KafkaSettings,
    table_uri: Path,
    *flags: str,
    until_idle: float = 1.0,
    timeout_s: float = 180,
) -> subprocess.CompletedProcess:
    """``policyloop sessionize --until-idle`` with :func:`worker_command`'s settings and
    ``flags``, to completion."""
    cmd = worker_command(kafka, table_uri, until_idle=until_idle, extra=list(flags))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)


def table_rows(table_uri: str | Path) -> dict[tuple[str, int], tuple]:
    """The table's rows in the form of :func:`expected_rows`; fails on a duplicate key."""
    table = open_table(str(table_uri))
    assert table is not None, f"no table at {table_uri}"
    data = read_table(table, TIMELINE_SCHEMA).to_pylist()
    out: dict[tuple[str, int], tuple] = {}
    duplicates = []
    for r in data:
        key = (r["episode_id"], r["step"])
        if key in out:
            duplicates.append(key)
        out[key] = (
            r["reward"],
            r["reward_count"],
            r["next_action"],
            r["time_diff"],
            r["terminal"],
            r["truncated"],
        )
    assert not duplicates, f"{len(duplicates)} duplicate keys, e.g. {duplicates[:5]}"
    return out


def worker_command(
    kafka: KafkaSettings,
    table_uri: Path,
    *,
    group: str = "g",
    until_idle: float | None = None,
    extra: list[str] | None = None,
) -> list[str]:
    cmd = [
        sys.executable, "-m", "services.cli", "sessionize",
        "--bootstrap-servers", kafka.bootstrap_servers,
        "--topic-prefix", kafka.topic_prefix,
        "--table-uri", str(table_uri),
        "--group", group,
        "--reward-window", "0.5",
        "--default-reward", str(DEFAULT_REWARD),
        "--batch-max-seconds", "0.3",
        "--rebalance-timeout", "2",
        "--session-timeout", "4",
        "--idle-clock-slack", "0.2",
        "--metrics-port", "0",
    ]  # fmt: skip
    if until_idle is not None:
        cmd += ["--until-idle", str(until_idle)]
    return cmd + (extra or [])


def start_worker(cmd: list[str], log_path: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    log = open(log_path, "ab")  # noqa: SIM115 - closed by the child's exit
    return subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)

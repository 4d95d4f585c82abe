"""Fixtures shared by the learner's end-to-end tests: tiny timeline tables with known truth.

The tables are written through ``schemas.tables.rows_to_table`` + ``write_deltalake`` exactly as
the sessionizer writes them, so the learner reads real Delta tables.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from deltalake import write_deltalake

from learner.settings import LearnerSettings
from schemas.tables import TIMELINE_PARTITION_BY, TIMELINE_SCHEMA, rows_to_table
from services.kafka_settings import KafkaSettings

_EPOCH = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)


def bandit_rows(n: int, seed: int, *, start: int = 0) -> list[dict[str, Any]]:
    """One-step episodes logged by a uniform policy over actions "0"/"1".

    Reward 1 when the action matches the sign of ``x`` (``"1"`` iff x > 0), else 0: the logged
    policy is worth 0.5, the best policy 1.0. ``y`` is noise.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(start, start + n):
        x, y = rng.normal(), rng.normal()
        action = str(int(rng.integers(2)))
        reward = 1.0 if (action == "1") == (x > 0) else 0.0
        ts = _EPOCH + dt.timedelta(seconds=i)
        rows.append(_row(f"b{i}", 0, ts, {"x": x, "y": y}, action, reward, None, True))
    return rows


def chain_rows(n: int, seed: int, horizon: int = 4) -> list[dict[str, Any]]:
    """Episodes of ``horizon`` decisions, uniform logging; reward 1 for matching sign(x)."""
    rng = np.random.default_rng(seed)
    rows = []
    for e in range(n):
        states = [{"x": float(rng.normal()), "t": float(t)} for t in range(horizon)]
        for t in range(horizon):
            action = str(int(rng.integers(2)))
            reward = 1.0 if (action == "1") == (states[t]["x"] > 0) else 0.0
            ts = _EPOCH + dt.timedelta(seconds=e * horizon + t)
            nxt = states[t + 1] if t + 1 < horizon else None
            rows.append(_row(f"c{e}", t, ts, states[t], action, reward, nxt, t + 1 == horizon))
    return rows


def _row(episode, step, ts, state, action, reward, next_state, last) -> dict[str, Any]:
    return {
        "ds": ts.strftime("%Y-%m-%d"),
        "episode_id": episode,
        "step": step,
        "step_ordinal": step,
        "decision_id": f"{episode}/{step}",
        "ts": ts,
        "state": state,
        "action": action,
        "possible_actions": ["0", "1"],
        "propensity": 0.5,
        "action_probs": [0.5, 0.5],
        "reward": reward,
        "metrics": None,
        "reward_count": 1,
        "next_state": next_state,
        "next_action": None,
        "possible_next_actions": None if next_state is None else ["0", "1"],
        "next_propensity": None if next_state is None else 0.5,
        "time_diff": None if next_state is None else 1,
        "time_since_first": step,
        "terminal": last,
        "truncated": False,
        "policy_version": "v0",
        "processed_at": ts,
    }


def write_timeline(uri: str | Path, rows: list[dict[str, Any]]) -> int:
    """Append ``rows`` to the timeline table at ``uri``; returns the new table version."""
    from deltalake import DeltaTable

    write_deltalake(
        str(uri),
        rows_to_table(rows, TIMELINE_SCHEMA),
        partition_by=TIMELINE_PARTITION_BY,
        mode="append",
    )
    return DeltaTable(str(uri)).version()


def fast_settings(home: Path, **overrides: Any) -> LearnerSettings:
    """Learner settings with everything under ``home`` and models small enough for tests.

    The timeline a run reads is an argument of the run (the shared ``tables.timeline_uri``);
    these tests keep it at ``home / "timeline"``.
    """
    values: dict[str, Any] = {
        "gate_log_uri": str(home / "gate_log"),
        "registry_uri": str(home / "registry"),
        "reports_dir": str(home / "reports"),
        "policy_name": "test",
        "progress": False,
        "trainer": {
            "hidden_sizes": [32],
            "steps": 300,
            "batch_size": 128,
            "learning_rate": 3e-3,
            "log_every": 25,
            "num_threads": 1,
        },
        "cpe": {
            "n_bootstrap": 100,
            "fqe": {"hidden_sizes": [32], "n_steps": 300, "target_update_every": 50},
        },
    }
    values.update(overrides)
    return LearnerSettings.model_validate(values)


def read_policy_updates(kafka: KafkaSettings, timeout_s: float = 20.0) -> list[dict]:
    """Every message on the policy-updates topic, read from the beginning up to the end offsets
    it has now (no consumer group), so a duplicate announcement shows up as a second message."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap_servers, enable_auto_commit=False)
    try:
        topic = kafka.policy_updates_topic
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        records = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(p) < ends[p] for p in partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: not read to its end offsets {ends} in {timeout_s} s")
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        records.sort(key=lambda r: (r.timestamp, r.partition, r.offset))
        return [json.loads(r.value) for r in records]
    finally:
        consumer.close()

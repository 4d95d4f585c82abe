"""Helpers of the interop tests: run the real ``policyloop`` command, read the real table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from schemas.tables import TIMELINE_SCHEMA
from services.cli.main import cli
from services.delta_tables import open_table, read_table

#: 2024-03-01T00:00:00Z, the event time the tests give rows without one (--ts)
TS = "2024-03-01T00:00:00Z"
TS_MS = 1_709_251_200_000


def run_import(fmt: str, table: Path, rejects: Path, *args: str) -> Result:
    """``policyloop import FMT ...`` with the test's table and reject directory."""
    argv = ["import", fmt, *args, "--table-uri", str(table), "--rejects-dir", str(rejects)]
    if "--ts" not in args:
        argv += ["--ts", TS]
    return CliRunner().invoke(cli, argv, catch_exceptions=False)


def table_rows(table: Path) -> list[dict[str, Any]]:
    """Every row of the timeline, by (episode_id, step), without ``processed_at``."""
    delta = open_table(str(table))
    assert delta is not None, f"no table at {table}"
    rows = read_table(delta, TIMELINE_SCHEMA).to_pylist()
    for row in rows:
        del row["processed_at"]
        row["ts"] = int(row["ts"].timestamp() * 1000)
        for column in ("state", "next_state", "metrics"):
            if row[column] is not None:
                row[column] = dict(row[column])
    return sorted(rows, key=lambda r: (r["episode_id"], r["step"]))


def table_version(table: Path) -> int:
    delta = open_table(str(table))
    assert delta is not None
    return delta.version()


def rejects_of(rejects: Path) -> list[dict[str, Any]]:
    """Every reject line written under ``rejects``."""
    out = []
    for path in sorted(rejects.glob("*.rejects.jsonl")):
        out += [json.loads(line) for line in path.read_text().splitlines()]
    return out


def row(
    episode_id: str,
    step: int,
    state: dict[str, float],
    action: str,
    reward: float,
    *,
    ordinal: int,
    first: int = 0,
    successor: tuple[int, dict[str, float], str, float] | None = None,
    end: str | None = None,
    possible: list[str] | None = None,
    propensity: float = 0.5,
    probs: list[float] | None = None,
    ts: int = TS_MS,
    ds: str = "2024-03-01",
    policy_version: str = "imported",
    decision_id: str | None = None,
    metrics: dict[str, float] | None = None,
    reward_count: int = 1,
) -> dict[str, Any]:
    """The timeline row expected for one decision, spelled out column by column.

    ``successor`` is (step, state, action, propensity) of the episode's next row; ``end`` is
    "terminal" or "truncated" on an episode's last row. ``decision_id`` None: not compared.
    """
    possible = possible if possible is not None else ["0", "1"]
    expected: dict[str, Any] = {
        "ds": ds,
        "episode_id": episode_id,
        "step": step,
        "step_ordinal": ordinal,
        "decision_id": decision_id,
        "ts": ts,
        "state": state,
        "action": action,
        "possible_actions": possible,
        "propensity": propensity,
        "action_probs": probs,
        "reward": reward,
        "metrics": metrics,
        "reward_count": reward_count,
        "next_state": None,
        "next_action": None,
        "possible_next_actions": None,
        "next_propensity": None,
        "time_diff": None,
        "time_since_first": step - first,
        "terminal": end == "terminal",
        "truncated": end == "truncated",
        "policy_version": policy_version,
    }
    for column in TIMELINE_SCHEMA:  # a column an import has no data for (action_features) is null
        if column.nullable and column.name not in expected:
            expected[column.name] = None
    if successor is not None:
        next_step, next_state, next_action, next_propensity = successor
        expected.update(
            next_state=next_state,
            next_action=next_action,
            possible_next_actions=possible,
            next_propensity=next_propensity,
            time_diff=next_step - step,
        )
    return expected


def without_ids(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with ``decision_id`` blanked (generated ids are compared by their own test)."""
    return [{**r, "decision_id": None} for r in rows]


@pytest.fixture
def table(tmp_path: Path) -> Path:
    return tmp_path / "timeline"


@pytest.fixture
def rejects(tmp_path: Path) -> Path:
    return tmp_path / "rejects"

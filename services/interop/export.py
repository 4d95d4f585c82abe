"""``policyloop export``: a pinned version of the timeline, for d3rlpy, RLlib or any parquet reader.

Why read the table here and not through the learner's reader: this part runs next to production
and must not import the learner (``pyproject.toml``, import-linter). The shared helper
:func:`services.delta_tables.read_table` reads a pinned version with ``pyarrow.dataset`` (the
same way the learner does, without delta-rs issue 2184), ``--since/--until`` filter on the
``ds`` partition, and :mod:`.dense` densifies states with the learner's conventions (sorted
feature names; actions numeric when all are integers). The window is held in memory: cut a
large table with ``--since/--until``.

Formats:

* ``d3rlpy``: an ``.npz`` of ``observations`` (float32, n x features), ``actions`` (int64 index
  into ``action_names``), ``rewards``, ``terminals``, ``timeouts`` (float32), plus
  ``feature_names`` and ``action_names``: what ``d3rlpy.dataset.MDPDataset`` takes. An episode's
  last row is a terminal or, when truncated or not ended yet, a timeout.
* ``rllib-json``: one ``SampleBatch`` per episode and line (``obs``, ``new_obs``, ``actions``,
  ``rewards``, ``terminateds``, ``truncateds``, ``eps_id``, ``t``, ``action_prob``,
  ``action_logp``, ``infos``). ``infos[i]["policyloop"]`` carries the rest of the row (time,
  ids, possible actions, probabilities, metrics, features absent from the state, and on each
  line's first step the obs names), so ``policyloop import rllib-json`` restores the same rows.
  The timeline keeps no observation after an episode's last decision: that step's ``new_obs``
  repeats its ``obs``.
* ``parquet``: the rows as they are, sorted by episode and step.

Absent features are NaN in the arrays (the summary counts them).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from schemas.tables import TIMELINE_SCHEMA
from services.delta_tables import open_table, read_table
from services.interop.dense import action_space, densify, feature_names

__all__ = ["EXPORT_FORMATS", "ExportResult", "export_timeline", "read_window"]

EXPORT_FORMATS = ("d3rlpy", "rllib-json", "parquet")


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote, from which table version."""

    path: str
    table_version: int
    rows: int
    episodes: int
    feature_names: list[str]
    actions: list[str]
    missing_values: int


def read_window(
    uri: str, version: int | None, since: str | None, until: str | None
) -> tuple[pa.Table, int]:
    """The rows of ``uri`` at ``version`` (newest: None) with ``since <= ds <= until``, sorted
    by episode and step, and the version read."""
    table = open_table(uri, version)
    if table is None:
        raise FileNotFoundError(f"no Delta table at {uri}")
    condition = None
    if since is not None:
        condition = pc.field("ds") >= since
    if until is not None:
        upper = pc.field("ds") <= until
        condition = upper if condition is None else condition & upper
    data = read_table(table, TIMELINE_SCHEMA, filter=condition)
    order = [("episode_id", "ascending"), ("step", "ascending")]
    return data.sort_by(order), table.version()


def export_timeline(
    fmt: str,
    uri: str,
    output: str | Path,
    version: int | None = None,
    since: str | None = None,
    until: str | None = None,
) -> ExportResult:
    """Write the window of the timeline at ``version`` to ``output`` in ``fmt``."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"format {fmt!r}: must be one of {', '.join(EXPORT_FORMATS)}")
    data, pinned = read_window(uri, version, since, until)
    names = feature_names(data.column("state"), data.column("next_state"))
    actions = action_space(data.column("possible_actions"))
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    missing = 0
    if fmt == "parquet":
        pq.write_table(data, path)
    else:
        obs = densify(data.column("state"), names)
        missing = int(np.isnan(obs).sum())
        if fmt == "d3rlpy":
            _d3rlpy(data, obs, names, actions, path)
        else:
            _rllib_json(data, obs, names, actions, path)
    episodes = len(pc.unique(data.column("episode_id"))) if data.num_rows else 0
    return ExportResult(str(path), pinned, data.num_rows, episodes, names, actions, missing)


def _last_rows(data: pa.Table) -> np.ndarray:
    """True on the last row of each episode (rows sorted by episode and step)."""
    episodes = data.column("episode_id").to_numpy(zero_copy_only=False)
    last = np.ones(len(episodes), dtype=bool)
    if len(episodes) > 1:
        last[:-1] = episodes[1:] != episodes[:-1]
    return last


def _d3rlpy(
    data: pa.Table, obs: np.ndarray, names: list[str], actions: list[str], path: Path
) -> None:
    index = {a: i for i, a in enumerate(actions)}
    chosen = np.array([index[a] for a in data.column("action").to_pylist()], dtype=np.int64)
    last = _last_rows(data)
    terminal = data.column("terminal").to_numpy(zero_copy_only=False) & last
    with path.open("wb") as fh:  # np.savez would append .npz to a name without it
        np.savez(
            fh,
            observations=obs.astype(np.float32),
            actions=chosen,
            rewards=data.column("reward").to_numpy().astype(np.float32),
            terminals=terminal.astype(np.float32),
            timeouts=(last & ~terminal).astype(np.float32),
            feature_names=np.array(names, dtype=np.str_),
            action_names=np.array(actions, dtype=np.str_),
        )


def _action_value(actions: list[str]) -> Any:
    """RLlib's discrete actions are integers: written as such when every action is one."""
    try:
        [int(a) for a in actions]
    except ValueError:
        return str
    return int


def _rllib_json(
    data: pa.Table, obs: np.ndarray, names: list[str], actions: list[str], path: Path
) -> None:
    as_action = _action_value(actions)
    rows = data.to_pylist()
    last = _last_rows(data)
    start = 0
    with path.open("w", encoding="utf-8") as fh:
        for i in range(len(rows)):
            if last[i]:
                fh.write(json.dumps(_batch(rows[start : i + 1], obs[start : i + 1], names,
                                           as_action)) + "\n")  # fmt: skip
                start = i + 1


def _batch(
    rows: list[dict[str, Any]], obs: np.ndarray, names: list[str], as_action: Any
) -> dict[str, Any]:
    """One episode as a SampleBatch (see module doc)."""
    observations = obs.tolist()
    new_obs = observations[1:] + observations[-1:]
    infos = []
    for i, row in enumerate(rows):
        extra: dict[str, Any] = {
            "ts": int(row["ts"].timestamp() * 1000),
            "decision_id": row["decision_id"],
            "policy_version": row["policy_version"],
            "possible_actions": row["possible_actions"],
            "action_probs": row["action_probs"],
            "reward_count": row["reward_count"],
        }
        if row["metrics"] is not None:
            extra["metrics"] = dict(row["metrics"])
        absent = [names[j] for j, v in enumerate(observations[i]) if math.isnan(v)]
        if absent:
            extra["absent"] = absent
        if i == 0:
            extra["obs_names"] = names
        infos.append({"policyloop": extra})
    return {
        "type": "SampleBatch",
        "obs": observations,
        "new_obs": new_obs,
        "actions": [as_action(r["action"]) for r in rows],
        "rewards": [r["reward"] for r in rows],
        "terminateds": [r["terminal"] for r in rows],
        "truncateds": [r["truncated"] for r in rows],
        "eps_id": [r["episode_id"] for r in rows],
        "t": [r["step"] for r in rows],
        "action_prob": [r["propensity"] for r in rows],
        "action_logp": [math.log(r["propensity"]) for r in rows],
        "infos": infos,
    }

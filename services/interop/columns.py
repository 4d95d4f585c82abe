"""Column maps: which column of a CSV or parquet file plays which role in a timeline row.

Given as flags (``--column reward=click --column state=age,hour``) or a TOML file
(``--columns map.toml``, its ``[columns]`` table or top level), flags winning::

    [columns]
    episode_id = "session"        # absent: every row is a one-step episode (a bandit log)
    step = "position"             # required with episode_id
    state = ["age", "hour"]       # numeric columns, named as in the file; or
    obs = "features"              # one list column, named obs_0.. (or --obs-names)
    action = "item"
    reward = "click"
    propensity = "pscore"         # or logp = "action_logp" (its natural log)
    possible_actions = "shown"    # a list column, or JSON text; absent: --actions
    action_probs = "probs"        # list column or JSON text, aligned with possible_actions
    terminal = "done"             # true on the last row of an episode the environment ended
    truncated = "timeout"         # true on the last row of an episode that was cut
    ts = "time"                   # epoch ms, a timestamp or ISO text; absent: --ts
    metrics = ["dwell_s"]         # numeric columns joined to the reward as metrics
    policy_version = "model"
    decision_id = "id"
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from services.interop.source import ImportFormatError

__all__ = ["LIST_ROLES", "ROLES", "load_column_map", "parse_column_flags"]

#: Roles that name one column.
ROLES = (
    "episode_id",
    "step",
    "obs",
    "action",
    "reward",
    "propensity",
    "logp",
    "possible_actions",
    "action_probs",
    "terminal",
    "truncated",
    "ts",
    "policy_version",
    "decision_id",
)
#: Roles that name several columns.
LIST_ROLES = ("state", "metrics")


def _check(mapping: dict[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for role, value in mapping.items():
        if role in LIST_ROLES:
            names = value.split(",") if isinstance(value, str) else value
            if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
                raise ImportFormatError(f"{where}: {role}={value!r}: must list column names")
            out[role] = list(names)
        elif role in ROLES:
            if not isinstance(value, str) or not value:
                raise ImportFormatError(f"{where}: {role}={value!r}: must name one column")
            out[role] = value
        else:
            raise ImportFormatError(
                f"{where}: {role!r} is not a role; roles: {', '.join((*ROLES, *LIST_ROLES))}"
            )
    return out


def parse_column_flags(flags: list[str]) -> dict[str, Any]:
    """``["reward=click", "state=a,b"]`` as a column map."""
    mapping: dict[str, Any] = {}
    for flag in flags:
        role, sep, column = flag.partition("=")
        if not sep:
            raise ImportFormatError(f"--column {flag!r}: must look like ROLE=COLUMN")
        mapping[role.strip()] = column.strip()
    return _check(mapping, "--column")


def load_column_map(path: str | Path) -> dict[str, Any]:
    """The column map in a TOML file (its ``[columns]`` table, or the top level)."""
    try:
        with Path(path).open("rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ImportFormatError(f"--columns {path}: {exc}") from None
    table = data.get("columns", data)
    if not isinstance(table, dict):
        raise ImportFormatError(f"--columns {path}: [columns] must be a table")
    return _check(table, f"--columns {path}")

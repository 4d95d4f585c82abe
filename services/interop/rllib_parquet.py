"""RLlib's tabular episodes in parquet: one row per step, as RLlib's newer offline writer
stores them (``eps_id``, ``t``, ``obs``, ``actions``, ``rewards``, ``new_obs``, ``terminateds``,
``truncateds``, and ``action_logp`` or ``action_prob``).

It is the tabular reader (:mod:`services.interop.tabular`) with RLlib's column names as the
default map; ``--column ROLE=COLUMN`` changes any of them. As in :mod:`.rllib_json`,
``new_obs`` is not read (the next state is the episode's next row's), and a column of
compressed or pickled observations (binary or text instead of arrays) is refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from pathlib import Path

import pyarrow.parquet as pq

from services.interop.source import READ_ROWS, ImportFormatError, ImportOptions, SourceItem
from services.interop.tabular import read_batches

__all__ = ["DEFAULT_END", "RLLIB_COLUMNS", "read"]

#: An episode cut by the end of the file (a fragment) is truncated.
DEFAULT_END = "truncated"

RLLIB_COLUMNS = {
    "episode_id": "eps_id",
    "step": "t",
    "obs": "obs",
    "action": "actions",
    "reward": "rewards",
    "terminal": "terminateds",
    "truncated": "truncateds",
}


def read(path: Path, sha256: str, options: ImportOptions) -> Iterator[SourceItem]:
    """The steps of an RLlib episodes parquet file (see module doc)."""
    try:
        file = pq.ParquetFile(path)
    except (OSError, ValueError) as exc:
        raise ImportFormatError(f"rllib-parquet: {path}: not a parquet file ({exc})") from None
    present = set(file.schema_arrow.names)
    columns = dict(RLLIB_COLUMNS)
    if "action_prob" in present:
        columns["propensity"] = "action_prob"
    elif "action_logp" in present:
        columns["logp"] = "action_logp"
    columns.update(options.columns)
    if "propensity" in columns and "logp" in columns:
        del columns["logp" if "propensity" in options.columns else "propensity"]
    for role, value in columns.items():
        for name in _names({role: value}) - present:
            raise ImportFormatError(
                f"rllib-parquet: {path} has no column {name!r} (for {role}; map another with "
                f"--column {role}=COLUMN); its columns: {', '.join(sorted(present))}"
            )
    mapped = dataclasses.replace(options, columns=columns)
    batches = file.iter_batches(batch_size=READ_ROWS, columns=sorted(_names(columns)))
    yield from read_batches(batches, "rllib-parquet", path, sha256, mapped)


def _names(columns: Mapping[str, object]) -> set[str]:
    out: set[str] = set()
    for value in columns.values():
        out.update([value] if isinstance(value, str) else value)  # type: ignore[arg-type]
    return out

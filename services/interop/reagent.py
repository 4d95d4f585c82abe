"""ReAgent's pre-timeline rows (its "Step 1" table), as JSON lines or parquet.

One row per decision: ``ds``, ``mdp_id`` (the episode), ``sequence_number`` (the step),
``state_features`` (a map of feature id to value; ids become state names as text),
``action``, ``reward``, ``possible_actions``, ``action_probability`` (the propensity) and
``metrics``. ReAgent's own timeline operator treats the last row of an ``mdp_id`` as the end
of its episode (its next state is empty); so does this importer (terminal by default,
``--episode-end truncated`` for logs cut at the end of a day). A ``ds`` that is a date
(``YYYY-MM-DD``) gives the rows' event time (midnight UTC), so they land in the same ``ds``
partition; otherwise ``--ts`` does.

Rows of an episode need not be sorted, but an episode stays open until the end of the file or
until ``max_open_episodes`` others were read after it: in a file larger than memory, keep an
episode's rows together (ReAgent's Spark jobs write them so when sorted by mdp_id).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq

from services.interop.source import (
    READ_ROWS,
    ImportFormatError,
    ImportOptions,
    Reject,
    SourceItem,
    Where,
)
from services.interop.steps import StepMaker, missing_propensities

__all__ = ["DEFAULT_END", "read"]

DEFAULT_END = "terminal"

_FORMAT = "reagent"
#: ReAgent column -> the event field it becomes (for rejects)
_REQUIRED = {
    "mdp_id": "episode_id",
    "sequence_number": "step",
    "state_features": "state",
    "action": "action",
    "reward": "reward",
}


def read(path: Path, sha256: str, options: ImportOptions) -> Iterator[SourceItem]:
    """The steps of a ReAgent file: parquet when it starts with ``PAR1``, else JSON lines."""
    with path.open("rb") as fh:
        magic = fh.read(4)
    rows = _parquet_rows(path) if magic == b"PAR1" else _json_rows(path)
    maker = StepMaker(sha256, options)
    times: dict[str, int] = {}
    checked = False
    for where, row in rows:
        if isinstance(row, Reject):
            if maker.owns_lines:
                yield row
            continue
        if options.shard is not None and not maker.mine(row.get("mdp_id")):
            continue  # another worker's episode
        if not checked:
            checked = True
            if row.get("action_probability") is None and options.logger is None:
                raise missing_propensities(_FORMAT, f"{path} {where.kind} {where.number}",
                                           "action_probability is missing or null")  # fmt: skip
        yield _step(where, row, maker, options, times)


def _json_rows(path: Path) -> Iterator[tuple[Where, Any]]:
    with path.open("rb") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = Where("line", number)
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError:
                try:
                    row = json.loads(line)  # NaN and Infinity
                except ValueError as exc:
                    yield where, Reject(where, "malformed", f"not JSON: {exc}")
                    continue
            if type(row) is not dict:
                yield where, Reject(where, "malformed", "must be a JSON object")
                continue
            yield where, row


def _parquet_rows(path: Path) -> Iterator[tuple[Where, Any]]:
    try:
        file = pq.ParquetFile(path)
    except (OSError, ValueError) as exc:
        raise ImportFormatError(f"{_FORMAT}: {path}: not a parquet file ({exc})") from None
    number = 0
    for batch in file.iter_batches(batch_size=READ_ROWS):
        for row in batch.to_pylist():
            number += 1
            yield Where("row", number), row


def _as_map(value: Any) -> Any:
    """A map as a dict with text keys: parquet maps come as lists of (key, value) pairs."""
    if type(value) is list and all(type(p) is tuple and len(p) == 2 for p in value):
        return {str(k): v for k, v in value}
    if type(value) is dict:
        return {k if type(k) is str else str(k): v for k, v in value.items()}
    return value


def _ts(ds: Any, options: ImportOptions, times: dict[str, int]) -> int:
    if type(ds) is not str:
        return options.ts_ms
    ts = times.get(ds)
    if ts is None:
        try:
            day = dt.date.fromisoformat(ds)
            ts = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()) * 1000
        except ValueError:
            ts = options.ts_ms
        times[ds] = ts
    return ts


def _step(
    where: Where,
    row: dict[str, Any],
    maker: StepMaker,
    options: ImportOptions,
    times: dict[str, int],
) -> SourceItem:
    for column, field in _REQUIRED.items():
        if row.get(column) is None:
            return Reject(where, f"invalid:{field}", f"{column}=None: is required")
    metrics = row.get("metrics")
    return maker.make(
        where,
        row["mdp_id"],
        row["sequence_number"],
        _ts(row.get("ds"), options, times),
        _as_map(row["state_features"]),
        row["action"],
        maker.possible(row.get("possible_actions")),
        row.get("action_probability"),
        row["reward"],
        None,
        metrics=None if metrics is None else _as_map(metrics),
    )

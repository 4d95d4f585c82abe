"""Any CSV or parquet file, with a column map (:mod:`services.interop.columns`).

Files are read in batches by pyarrow's streaming readers (``pyarrow.csv.open_csv``,
``ParquetFile.iter_batches``), so a file larger than memory imports in flat memory. CSV columns
that play a role are read as text and converted here (:mod:`.arrow_values`), so a cell that is
not a number refuses its row, not its whole block; a line with the wrong number of cells is
refused as ``malformed`` with its line number. ``row`` in a reject counts the data rows read
(1-based; malformed lines are not counted).

Without an ``episode_id`` column every row is a one-step episode that ends there (a bandit log).
With one, ``step`` is required, and an episode whose rows carry no ``terminal``/``truncated``
flag is closed at the end of the file as truncated (``--episode-end terminal`` to change).
"""

from __future__ import annotations

import math
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from services.interop.arrow_values import Bad, flags, json_lists, numbers, times
from services.interop.source import (
    READ_ROWS,
    ImportFormatError,
    ImportOptions,
    Reject,
    SourceItem,
    Where,
)
from services.interop.steps import StepMaker, missing_propensities, obs_names_for

__all__ = [
    "DEFAULT_END",
    "check_map",
    "open_csv",
    "parquet_batches",
    "read_batches",
    "read_csv",
    "read_parquet",
    "rows_of",
    "shared_batches",
    "with_malformed",
]

DEFAULT_END = "truncated"

T = TypeVar("T")

#: role -> the event field its bad cells are refused under (``invalid:<field>``)
_FIELD = {"logp": "propensity", "obs": "state", "truncated": "terminal"}
_TEXT_ROLES = ("episode_id", "action", "policy_version", "decision_id")


def read_csv(path: Path, sha256: str, options: ImportOptions) -> Iterator[SourceItem]:
    """The steps of a CSV file with a header row."""
    batches, malformed = open_csv(path, options.columns)
    items = read_batches(batches, "csv", path, sha256, options)
    yield from with_malformed(items, malformed, options)


def open_csv(path: Path, columns: dict[str, Any]) -> tuple[Iterator[pa.RecordBatch], list[Reject]]:
    """The CSV file's batches (role columns as text, converted per cell later), and the list
    the reader appends a ``malformed`` reject to for each line with the wrong number of cells
    (:func:`with_malformed` yields them)."""
    malformed: list[Reject] = []

    def on_invalid(row: Any) -> str:
        number = row.number if row.number is not None else 0
        malformed.append(
            Reject(
                Where("line", number),
                "malformed",
                f"{row.actual_columns} cells where the header has {row.expected_columns}",
            )
        )
        return "skip"

    role_columns = {c for v in columns.values() for c in ([v] if isinstance(v, str) else v)}

    def batches() -> Iterator[pa.RecordBatch]:
        # A Python file, not the path: given a path, pyarrow reads the whole file ahead of the
        # parser (measured: 60 MB held for a 61 MB file); through a Python file, a block at a time.
        with path.open("rb") as fh:
            yield from pacsv.open_csv(
                fh,
                # single-threaded parsing: pyarrow knows a bad line's number only then
                read_options=pacsv.ReadOptions(use_threads=False, block_size=2 << 20),
                parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
                convert_options=pacsv.ConvertOptions(
                    column_types={c: pa.string() for c in role_columns}, strings_can_be_null=True
                ),
            )

    return batches(), malformed


def with_malformed(
    items: Iterator[T], malformed: list[Reject], options: ImportOptions
) -> Iterator[T | Reject]:
    """``items`` with the malformed lines read so far before each (from the first worker)."""
    owns_lines = options.shard is None or options.shard.index == 0
    for item in items:
        if owns_lines:
            yield from malformed
        malformed.clear()
        yield item
    if owns_lines:
        yield from malformed


def read_parquet(path: Path, sha256: str, options: ImportOptions) -> Iterator[SourceItem]:
    """The steps of a parquet file, batch by batch."""
    yield from read_batches(parquet_batches(path), "parquet", path, sha256, options)


def parquet_batches(path: Path) -> Iterator[pa.RecordBatch]:
    """The parquet file's batches of ``READ_ROWS`` rows."""
    try:
        file = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ImportFormatError(f"{path}: not a parquet file ({exc})") from None
    yield from file.iter_batches(batch_size=READ_ROWS)


def read_batches(
    batches: Iterator[pa.RecordBatch],
    fmt: str,
    path: Path,
    sha256: str,
    options: ImportOptions,
) -> Iterator[SourceItem]:
    """The steps of Arrow ``batches`` under ``options.columns`` (see module doc)."""
    columns = options.columns
    check_map(columns, fmt, options)
    maker = StepMaker(sha256, options)
    names: list[str] | None = None
    for batch, numbers_of_rows in shared_batches(batches, columns, maker, fmt, path):
        names = yield from rows_of(
            batch, numbers_of_rows, columns, maker, options, names, fmt, path
        )


def shared_batches(
    batches: Iterator[pa.RecordBatch],
    columns: dict[str, Any],
    maker: StepMaker,
    fmt: str,
    path: Path,
) -> Iterator[tuple[pa.RecordBatch, np.ndarray]]:
    """Each batch (this worker's rows only) with the 1-based numbers of its rows in the file;
    the file's columns are checked against the map at the first batch."""
    first_row = 1
    for batch in batches:
        if first_row == 1:
            _check_columns(batch.schema, columns, fmt, path)
        numbers_of_rows = np.arange(first_row, first_row + batch.num_rows)
        first_row += batch.num_rows
        if maker.shard is not None:  # keep this worker's rows before converting anything
            keep = _share_mask(batch, columns.get("episode_id"), numbers_of_rows, maker)
            batch, numbers_of_rows = batch.filter(pa.array(keep)), numbers_of_rows[keep]
        yield batch, numbers_of_rows


def check_map(columns: dict[str, Any], fmt: str, options: ImportOptions) -> None:
    """The column map names the roles every row needs (an error for the whole file)."""
    needed = ("action", "reward")
    missing = [r for r in needed if r not in columns]
    if "state" not in columns and "obs" not in columns:
        missing.append("state (or obs)")
    if missing:
        raise ImportFormatError(
            f"{fmt}: the column map names no column for {', '.join(missing)} "
            "(--column ROLE=COLUMN or --columns map.toml)"
        )
    if "episode_id" in columns and "step" not in columns:
        raise ImportFormatError(
            f"{fmt}: episode_id={columns['episode_id']!r} is mapped but step is not: rows of an "
            "episode need their step (--column step=COLUMN)"
        )


def _check_columns(schema: pa.Schema, columns: dict[str, Any], fmt: str, path: Path) -> None:
    present = set(schema.names)
    for role, value in columns.items():
        for name in [value] if isinstance(value, str) else value:
            if name not in present:
                raise ImportFormatError(
                    f"{fmt}: {path} has no column {name!r} (mapped to {role}); its columns: "
                    f"{', '.join(schema.names)}"
                )
    obs = columns.get("obs")
    if obs is not None:
        kind = schema.field(obs).type
        if pa.types.is_binary(kind) or pa.types.is_string(kind) or pa.types.is_large_binary(kind):
            raise ImportFormatError(
                f"{fmt}: {path}: column {obs!r} holds {kind} values, not arrays of numbers "
                "(compressed or pickled observations?); policyloop never unpickles input. Write "
                "observations as lists of numbers and import again"
            )


def rows_of(
    batch: pa.RecordBatch,
    numbers_of_rows: np.ndarray,
    columns: dict[str, Any],
    maker: StepMaker,
    options: ImportOptions,
    names: list[str] | None,
    fmt: str,
    path: Path,
) -> Generator[SourceItem, None, list[str] | None]:
    """The row path: the items of ``batch``'s rows (numbered ``numbers_of_rows``), one by one;
    returns the state names in use (of an ``obs`` list column)."""
    row_number = numbers_of_rows.tolist()
    n = batch.num_rows
    bad: dict[int, tuple[str, str, str]] = {}  # row -> (field, cell, rule)

    def note(field: str, cells: Bad, rule: str) -> None:
        """Refuse the rows of ``cells``: ``field`` is a role or an event field (``state.x``)."""
        for i, cell in cells.items():
            bad.setdefault(i, (_FIELD.get(field, field), cell, rule))

    def col(role: str) -> pa.Array | None:
        name = columns.get(role)
        return None if name is None else batch.column(name)

    def nums(role: str, kind: str, rule: str = "must be a number") -> list[Any] | None:
        array = col(role)
        if array is None:
            return None
        values, cells = numbers(array, kind)  # type: ignore[arg-type]
        note(role, cells, rule)
        return values

    def texts(role: str) -> list[Any] | None:
        array = col(role)
        return None if array is None else array.to_pylist()

    if "propensity" not in columns and "logp" not in columns and options.logger is None:
        raise missing_propensities(fmt, str(path), "no column mapped to propensity or logp")
    states, names = _states(batch, columns, options, names, note, f"{path}")
    steps = nums("step", "int", "must be an integer") or [0] * n
    rewards = nums("reward", "float")
    propensities = nums("propensity", "float")
    logps = nums("logp", "float")
    if logps is not None:
        propensities = [None if v is None else math.exp(v) for v in logps]
    ts = [options.ts_ms] * n
    if col("ts") is not None:
        ts_values, cells = times(col("ts"))
        note("ts", cells, "must be epoch milliseconds, a timestamp or ISO-8601 text")
        ts = [options.ts_ms if v is None else v for v in ts_values]
    ends = _ends(col("terminal"), col("truncated"), note, n, "episode_id" in columns)
    possible = _lists(col("possible_actions"), "possible_actions", note)
    probs = _lists(col("action_probs"), "action_probs", note)
    metrics = _metrics(batch, columns.get("metrics"), note)
    episodes = texts("episode_id")
    actions, versions, ids = texts("action"), texts("policy_version"), texts("decision_id")
    assert rewards is not None and actions is not None
    default_possible = maker.possible(None)
    for i in range(n):
        where = Where("row", row_number[i])
        if i in bad:
            field, cell, rule = bad[i]
            yield Reject(where, f"invalid:{field.split('.')[0]}", f"{field}={cell}: {rule}")
            continue
        yield maker.make(
            where,
            episodes[i] if episodes is not None else maker.episode_for(where),
            steps[i],
            ts[i],
            states[i],
            actions[i],
            maker.possible(possible[i]) if possible is not None else default_possible,
            propensities[i] if propensities is not None else None,
            rewards[i],
            ends[i],
            action_probs=probs[i] if probs is not None else None,
            policy_version=versions[i] if versions is not None else None,
            decision_id=ids[i] if ids is not None else None,
            metrics=metrics[i] if metrics is not None else None,
        )
    return names


def _share_mask(
    batch: pa.RecordBatch, episode_column: str | None, rows: np.ndarray, maker: StepMaker
) -> np.ndarray:
    """The rows of this worker's episodes (each distinct episode id hashed once)."""
    if episode_column is None:
        return np.array([maker.mine_row(int(r)) for r in rows], dtype=bool)
    episodes = batch.column(episode_column)
    distinct = pc.unique(episodes)
    mine = pa.array([maker.mine(e) for e in distinct.to_pylist()], pa.bool_())
    keep = pc.take(mine, pc.index_in(episodes, value_set=distinct))
    # a row without an episode id is refused (invalid:episode_id) by the first worker
    mask: np.ndarray = keep.fill_null(maker.owns_lines).to_numpy(zero_copy_only=False)
    return mask


def _states(
    batch: pa.RecordBatch,
    columns: dict[str, Any],
    options: ImportOptions,
    names: list[str] | None,
    note: Any,
    where: str,
) -> tuple[list[Any], list[str] | None]:
    """Per row the state map: named numeric columns (nulls left out), or one list column."""
    if "state" in columns:
        cols = []
        for name in columns["state"]:
            values, cells = numbers(batch.column(name), "float")
            note(f"state.{name}", cells, "must be a number")
            cols.append(values)
        state_names = columns["state"]
        if not any(None in c for c in cols):
            rows = zip(*cols, strict=True)
            return [dict(zip(state_names, row, strict=True)) for row in rows], names
        sparse = [
            {k: v for k, v in zip(state_names, row, strict=True) if v is not None}
            for row in zip(*cols, strict=True)
        ]
        return sparse, names
    values = batch.column(columns["obs"]).to_pylist()
    states: list[dict[str, float] | None] = []
    for i, value in enumerate(values):
        try:
            flat = np.asarray(value, dtype=np.float64).reshape(-1).tolist()
        except (TypeError, ValueError):
            note("obs", {i: repr(value)[:200]}, "must be an array of numbers")
            states.append(None)
            continue
        if names is None:
            names = obs_names_for(len(flat), options, where)
        if len(flat) != len(names):
            note("obs", {i: f"{len(flat)} values"}, f"must have {len(names)} values")
            states.append(None)
            continue
        states.append(dict(zip(names, flat, strict=True)))
    return states, names


def _ends(
    terminal: pa.Array | None, truncated: pa.Array | None, note: Any, n: int, episodic: bool
) -> list[bool | None]:
    if not episodic:
        return [True] * n  # one-step episodes, each ended by its only row
    ends: list[bool | None] = [None] * n
    if truncated is not None:
        values, cells = flags(truncated)
        note("truncated", cells, "must be true or false")
        ends = [False if v else None for v in values]
    if terminal is not None:
        values, cells = flags(terminal)
        note("terminal", cells, "must be true or false")
        ends = [True if v else e for v, e in zip(values, ends, strict=True)]
    return ends


def _lists(array: pa.Array | None, field: str, note: Any) -> list[Any] | None:
    if array is None:
        return None
    values, cells = json_lists(array)
    note(field, cells, "must be a JSON array")
    return values


def _metrics(batch: pa.RecordBatch, names: list[str] | None, note: Any) -> list[Any] | None:
    if not names:
        return None
    cols = []
    for name in names:
        values, cells = numbers(batch.column(name), "float")
        note(f"metrics.{name}", cells, "must be a number")
        cols.append(values)
    return [
        {k: v for k, v in zip(names, row, strict=True) if v is not None}
        for row in zip(*cols, strict=True)
    ]

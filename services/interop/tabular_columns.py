"""CSV and parquet with a column map, in Arrow: each batch as event columns (the Arrow path).

Batches are read, shared among workers and checked against the map exactly as by
:mod:`.tabular`; then each role's column is converted once for the whole batch (the same
conversions, :mod:`.arrow_values`) and :mod:`.step_checks` decides which rows may skip the row
path. A row with a bad cell, or one that fails a check, goes through
:func:`services.interop.tabular.rows_of` (the row path) for its exact reject.

Maps with per-row lists or extra maps (``obs``, ``possible_actions``, ``action_probs``,
``metrics``) take the row path for the whole file: they are for bandit logs and exports, not
the bulk of an import.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from services.interop.arrow_values import Bad, flags, numbers, times
from services.interop.source import ImportOptions, SourceItem
from services.interop.step_checks import Candidates, batch_rules_hold
from services.interop.step_table import END_NONE, END_TERMINAL, END_TRUNCATED
from services.interop.steps import StepMaker, missing_propensities
from services.interop.tabular import (
    check_map,
    open_csv,
    parquet_batches,
    rows_of,
    shared_batches,
    with_malformed,
)

__all__ = ["read_csv_columns", "read_parquet_columns"]

_ROW_PATH_ROLES = ("obs", "possible_actions", "action_probs", "metrics")
_INT64 = 2**63


def read_csv_columns(
    path: Path, sha256: str, options: ImportOptions
) -> Iterator[Candidates | SourceItem]:
    """The batches of a CSV file with a header row (malformed lines as rejects)."""
    batches, malformed = open_csv(path, options.columns)
    yield from with_malformed(_read(batches, "csv", path, sha256, options), malformed, options)


def read_parquet_columns(
    path: Path, sha256: str, options: ImportOptions
) -> Iterator[Candidates | SourceItem]:
    """The batches of a parquet file."""
    yield from _read(parquet_batches(path), "parquet", path, sha256, options)


def _read(
    batches: Iterator[pa.RecordBatch], fmt: str, path: Path, sha256: str, options: ImportOptions
) -> Iterator[Candidates | SourceItem]:
    columns = options.columns
    check_map(columns, fmt, options)
    maker = StepMaker(sha256, options)
    names: list[str] | None = None
    row_path = any(role in columns for role in _ROW_PATH_ROLES)
    for batch, numbers_of_rows in shared_batches(batches, columns, maker, fmt, path):
        if row_path:
            names = yield from rows_of(
                batch, numbers_of_rows, columns, maker, options, names, fmt, path
            )
            continue
        if "propensity" not in columns and "logp" not in columns and options.logger is None:
            raise missing_propensities(fmt, str(path), "no column mapped to propensity or logp")
        if batch.num_rows:
            yield _candidates(batch, numbers_of_rows, maker, options, fmt, path)


def _array(values: list[Any], kind: pa.DataType) -> pa.Array:
    try:
        return pa.array(values, kind)
    except (OverflowError, pa.ArrowInvalid):  # an integer beyond 64 bits: the row path's
        return pa.array([v if v is None or -_INT64 < v < _INT64 else None for v in values], kind)


def _numbers(array: pa.Array, kind: Literal["float", "int"]) -> tuple[pa.Array, Bad]:
    """:func:`.arrow_values.numbers` as an Arrow column (the cast itself when it succeeds)."""
    target = pa.float64() if kind == "float" else pa.int64()
    if not pa.types.is_boolean(array.type):
        try:
            return pc.cast(array, target), {}
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            pass
    values, cells = numbers(array, kind)
    return _array(values, target), cells


def _texts(array: pa.Array) -> pa.Array:
    """Text as the row path makes it: strings as they are, integers as decimal text; other
    types are null (the row path names what is wrong with them)."""
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        return array.cast(pa.string())
    if pa.types.is_integer(array.type):
        return array.cast(pa.string())
    return pa.nulls(len(array), pa.string())


def _state(batch: pa.RecordBatch, names: list[str], bad: np.ndarray) -> tuple[pa.Array, np.ndarray]:
    """The state map of each row from numeric columns (null cells left out), and whether all
    its values are finite."""
    n = batch.num_rows
    values = np.empty((n, len(names)))
    present = np.empty((n, len(names)), dtype=bool)
    for j, name in enumerate(names):
        column, cells = _numbers(batch.column(name), "float")
        bad[list(cells)] = True
        present[:, j] = ~column.is_null().to_numpy(zero_copy_only=False)
        values[:, j] = column.fill_null(0.0).to_numpy(zero_copy_only=False)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(present.sum(axis=1), out=offsets[1:])
    keys = pa.array(names, pa.string()).take(pa.array(np.tile(np.arange(len(names)), n)))
    flat = present.reshape(-1)
    state = pa.MapArray.from_arrays(
        pa.array(offsets), keys.filter(pa.array(flat)), pa.array(values.reshape(-1)[flat])
    )
    finite: np.ndarray = np.asarray(np.isfinite(values).all(axis=1), dtype=bool)
    return state, finite


def _ends(batch: pa.RecordBatch, columns: dict[str, Any], bad: np.ndarray) -> np.ndarray:
    n = batch.num_rows
    if "episode_id" not in columns:
        return np.full(n, END_TERMINAL, dtype=np.int8)  # one-step episodes
    end = np.full(n, END_NONE, dtype=np.int8)
    for role, code in (("truncated", END_TRUNCATED), ("terminal", END_TERMINAL)):
        if role in columns:
            values, cells = flags(batch.column(columns[role]))
            bad[list(cells)] = True
            end[np.array(values, dtype=bool)] = code
    return end


def _candidates(
    batch: pa.RecordBatch,
    numbers_of_rows: np.ndarray,
    maker: StepMaker,
    options: ImportOptions,
    fmt: str,
    path: Path,
) -> Candidates:
    columns = options.columns
    n = batch.num_rows
    bad = np.zeros(n, dtype=bool)  # rows with a cell the row path refuses

    def number(role: str, kind: Literal["float", "int"]) -> pa.Array | None:
        if role not in columns:
            return None
        column, cells = _numbers(batch.column(columns[role]), kind)
        bad[list(cells)] = True
        return column

    state, finite = _state(batch, columns["state"], bad)
    step = number("step", "int")
    reward = number("reward", "float")
    propensity = number("propensity", "float")
    logp = number("logp", "float")
    if logp is not None:
        propensity = pc.if_else(pc.less_equal(logp, 0.0), pc.exp(logp), None)  # else: row path
    if propensity is None:
        propensity = pa.nulls(n, pa.float64())  # --logger: the row path fills them
    ts = pa.array(np.full(n, options.ts_ms, dtype=np.int64))
    if "ts" in columns:
        values, cells = times(batch.column(columns["ts"]))
        bad[list(cells)] = True
        ts = _array([options.ts_ms if v is None else v for v in values], pa.int64())
    end = _ends(batch, columns, bad)
    number_text = pa.array(numbers_of_rows, pa.int64()).cast(pa.string())
    if "episode_id" in columns:
        episode = _texts(batch.column(columns["episode_id"]))
    else:
        episode = pc.binary_join_element_wise(maker.id_prefix[:12], number_text, "-")
    if options.episode_prefix:
        episode = pc.binary_join_element_wise(options.episode_prefix, episode, "")
    for role in ("decision_id", "policy_version"):  # ids are text: the row path refuses others
        if role in columns and not pa.types.is_string(batch.column(columns[role]).type):
            bad[:] = True
    generated = pc.binary_join_element_wise(maker.id_prefix, number_text, ":")
    decision_id = generated
    if "decision_id" in columns:
        decision_id = pc.coalesce(_texts(batch.column(columns["decision_id"])), generated)
    default_version = pa.repeat(pa.scalar(options.policy_version, pa.string()), n)
    version = default_version
    if "policy_version" in columns:  # a missing or empty version is the default one
        given = _texts(batch.column(columns["policy_version"]))
        version = pc.if_else(pc.fill_null(pc.equal(given, ""), True), default_version, given)
    possible = maker.possible(None)
    return Candidates(
        kind="row",
        number=pa.array(numbers_of_rows, pa.int64()),
        index=None,
        episode_id=episode,
        step=step if step is not None else pa.array(np.zeros(n, dtype=np.int64)),
        ts=ts,
        state=state,
        usable=~bad & finite & batch_rules_hold(columns["state"], possible),
        action=_texts(batch.column(columns["action"])),
        possible=possible,
        propensity=propensity,
        reward=reward if reward is not None else pa.nulls(n, pa.float64()),
        end=end,
        decision_id=decision_id,
        policy_version=version,
        fallback=lambda rows: _row_path(batch, numbers_of_rows, rows, maker, options, fmt, path),
    )


def _row_path(
    batch: pa.RecordBatch,
    numbers_of_rows: np.ndarray,
    rows: np.ndarray,
    maker: StepMaker,
    options: ImportOptions,
    fmt: str,
    path: Path,
) -> Iterator[SourceItem]:
    subset = batch.take(pa.array(rows, pa.int64()))
    yield from rows_of(
        subset, numbers_of_rows[rows], options.columns, maker, options, None, fmt, path
    )

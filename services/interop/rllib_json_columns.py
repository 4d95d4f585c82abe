"""RLlib offline JSON in Arrow: each SampleBatch line as whole columns (the import's Arrow path).

Lines are parsed and checked exactly as by :mod:`.rllib_json` (the same line rejects and file
errors); then each column of the batch becomes one Arrow column (:func:`candidates`) instead of
one ``StepMaker.make`` call per step, and :mod:`.step_checks` decides which rows may skip the
row path. Those that may not (a wrong type, a value out of range) go through
:func:`services.interop.rllib_json.steps`, the row path, for their exact reject.

A line written by ``policyloop export`` (``infos[i]["policyloop"]``: times, ids, possible
actions per row) goes through the row path whole: it restores what RLlib's columns do not
carry, which is round-trip work, not bulk import.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from services.interop.arrow_columns import floats, ints, texts
from services.interop.rllib_json import CheckedBatch, Line, check_batch, lines, steps
from services.interop.source import READ_ROWS, ImportOptions, Reject, SourceItem
from services.interop.step_checks import Candidates, batch_rules_hold
from services.interop.step_table import END_NONE, END_TERMINAL, END_TRUNCATED
from services.interop.steps import StepMaker

__all__ = ["Checked", "candidates", "read_columns"]

#: Columns a line may have or not: lines converted together have the same of them.
_VARYING = ("terminateds", "truncateds", "dones", "infos", "action_prob", "action_logp")


def read_columns(
    path: Path, sha256: str, options: ImportOptions
) -> Iterator[Candidates | SourceItem]:
    """The lines of ``path`` as :class:`Candidates` of several lines each (or row-path items and
    rejects), in file order."""
    maker = StepMaker(sha256, options)
    names: list[str] | None = None
    group: list[Checked] = []
    rows = 0
    for line in lines(path, maker):
        if not isinstance(line, Line):
            yield from _flush(group, options, maker)
            yield line
            continue
        checked = check_batch(line.batch, line.number, str(path), options, maker, names)
        if type(checked) is Reject:
            yield from _flush(group, options, maker)
            if maker.owns_lines:
                yield checked
            continue
        assert isinstance(checked, CheckedBatch)
        names = checked.names
        if _exported(line.batch):
            yield from _flush(group, options, maker)
            yield from steps(line.batch, line.number, checked, options, maker, range(checked.n))
            continue
        if group and (rows >= READ_ROWS or _shape(group[-1]) != _shape(Checked(line, checked))):
            yield from _flush(group, options, maker)
        if not group:
            rows = 0
        group.append(Checked(line, checked))
        rows += checked.n
    yield from _flush(group, options, maker)


class Checked(NamedTuple):
    """A line and its checked batch."""

    line: Line
    checked: CheckedBatch


def _shape(item: Checked) -> tuple[Any, ...]:
    """What lines converted together must share: state names and which columns they have."""
    batch = item.line.batch
    return (item.checked.names, tuple(c for c in _VARYING if batch.get(c) is not None))


def _flush(group: list[Checked], options: ImportOptions, maker: StepMaker) -> Iterator[Candidates]:
    """The candidates of the lines gathered so far (then none are)."""
    if group:
        lines_ = list(group)
        group.clear()
        if sum(item.checked.n for item in lines_):
            yield candidates(lines_, options, maker)


def _exported(batch: dict[str, Any]) -> bool:
    infos = batch.get("infos")
    return type(infos) is list and any(type(i) is dict and "policyloop" in i for i in infos)


def _truthy(values: list[Any] | None, n: int) -> np.ndarray:
    if values is None:
        return np.zeros(n, dtype=bool)
    return np.fromiter(map(bool, values), bool, n)


def _ends(batch: dict[str, Any], n: int) -> np.ndarray:
    """End codes as the row path reads them: ``terminateds``, else ``truncateds``, else the
    older ``dones`` (truncated when ``infos[i]["TimeLimit.truncated"]``)."""
    terminated = batch.get("terminateds")
    end = np.full(n, END_NONE, dtype=np.int8)
    dones = batch.get("dones") if terminated is None else None
    if dones is not None:
        infos = batch.get("infos")
        done = _truthy(dones, n)
        limit = np.fromiter(
            (bool(infos and type(infos[i]) is dict and infos[i].get("TimeLimit.truncated", False))
             for i in range(n)),
            bool, n,
        )  # fmt: skip
        end[done] = np.where(limit[done], END_TRUNCATED, END_TERMINAL)
    end[_truthy(batch.get("truncateds"), n)] = END_TRUNCATED
    end[_truthy(terminated, n)] = END_TERMINAL
    return end


def _joined(group: list[Checked], column: str) -> list[Any]:
    return list(chain.from_iterable(item.line.batch[column] for item in group))


def candidates(group: list[Checked], options: ImportOptions, maker: StepMaker) -> Candidates:
    """The rows of checked batches of one shape as event columns (this worker's episodes)."""
    counts = [item.checked.n for item in group]
    n = sum(counts)
    eps = _joined(group, "eps_id")
    rows = np.arange(n)
    if options.shard is not None:
        mine = {e: maker.mine(e) for e in set(map(str, eps))}
        rows = rows[np.fromiter((mine[str(e)] for e in eps), bool, n)]
    take = None if len(rows) == n else pa.array(rows)

    def kept(array: pa.Array) -> pa.Array:
        return array if take is None else array.take(take)

    first = group[0]
    names = first.checked.names
    k = len(names)
    obs = np.concatenate([item.checked.obs for item in group])
    obs = obs if take is None else obs[rows]
    state = pa.MapArray.from_arrays(
        pa.array(np.arange(len(rows) + 1, dtype=np.int32) * k),
        pa.array(names, pa.string()).take(pa.array(np.tile(np.arange(k), len(rows)))),
        pa.array(obs.reshape(-1)),
    )
    possible = maker.possible(None)
    usable = np.isfinite(obs).all(axis=1) & batch_rules_hold(names, possible)
    episode = kept(texts(eps))
    if options.episode_prefix:
        episode = pc.binary_join_element_wise(options.episode_prefix, episode, "")
    if first.line.batch.get("action_prob") is not None:
        propensity = kept(floats(_joined(group, "action_prob")))
    elif first.line.batch.get("action_logp") is not None:
        logp = kept(floats(_joined(group, "action_logp")))
        propensity = pc.if_else(pc.less_equal(logp, 0.0), pc.exp(logp), None)  # else: row path
    else:
        propensity = pa.nulls(len(rows), pa.float64())  # --logger: the row path fills them
    number = pa.array(np.repeat([item.line.number for item in group], counts)[rows])
    index = pa.array(np.concatenate([np.arange(c) for c in counts])[rows])
    as_text = [pc.cast(number, pa.string()), pc.cast(index, pa.string())]
    starts = np.cumsum(counts) - counts
    return Candidates(
        kind="line",
        number=number,
        index=index,
        episode_id=episode,
        step=kept(ints(_joined(group, "t"))),
        ts=pa.array(np.full(len(rows), options.ts_ms, dtype=np.int64)),
        state=state,
        usable=usable,
        action=kept(texts(_joined(group, "actions"))),
        possible=possible,
        propensity=propensity,
        reward=kept(floats(_joined(group, "rewards"))),
        end=np.concatenate([_ends(item.line.batch, item.checked.n) for item in group])[rows],
        decision_id=pc.binary_join_element_wise(maker.id_prefix, *as_text, ":"),
        policy_version=pa.repeat(pa.scalar(options.policy_version, pa.string()), len(rows)),
        fallback=lambda bad: _row_path(group, starts, rows[bad], options, maker),
    )


def _row_path(
    group: list[Checked],
    starts: np.ndarray,
    rows: np.ndarray,
    options: ImportOptions,
    maker: StepMaker,
) -> Iterator[SourceItem]:
    """The row path's items of ``rows`` (positions in the group's joined columns, ascending)."""
    of_line = np.searchsorted(starts, rows, side="right") - 1
    for g in np.unique(of_line).tolist():
        line, checked = group[g]
        local = (rows[of_line == g] - starts[g]).tolist()
        yield from steps(line.batch, line.number, checked, options, maker, local)

"""The live contract over whole columns: which rows of a batch are valid steps, at once.

A format's Arrow reader turns a batch of source rows into :class:`Candidates` (one Arrow column
per event field), and :func:`valid_steps` checks every rule of ``schemas.events`` that such a
row can break with vectorized comparisons: ids and texts of 1-256 characters, steps and times
in range, finite numbers, the propensity in (0, 1] and above the floor, the action among the
possible actions. The rules that hold for a whole batch (the possible actions, the state's
names) are checked once, by ``validate_event`` itself on a probe decision.

Why the row path stays: a row that fails any check goes through the reader's row path (its
``fallback``: ``StepMaker.make`` and ``validate_event``, as before), so it is refused with
exactly the reason and detail it always had, and a row a check was too strict for is still
imported. The checks only decide which rows may skip the row path; they never refuse a row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.event_builders import decision_event
from schemas.events import LIMITS, MIN_PROPENSITY, EventValidationError, validate_event
from services.interop.episodes import validated
from services.interop.source import Reject, SourceItem, SourceStep
from services.interop.step_table import END, STEP_SCHEMA, WHERE, WHERE_KINDS, steps_of_items

__all__ = ["Candidates", "batch_rules_hold", "valid_steps"]

_ID_CHARS = LIMITS["id_chars"]


@dataclass(frozen=True)
class Candidates:
    """Source rows of one batch as event columns (nulls where a cell has no usable value).

    ``kind``/``number``/``index``: where each row is (see :class:`~.source.Where`).
    ``state``: map column. ``usable``: False where the reader could not make a row's values
    (a bad cell, a state value not finite). ``possible``: the possible actions of every row (as
    text; None: none known). ``end``: end codes (``step_table.END_*``). ``ts`` in epoch ms.
    ``fallback(indices)``: the row path's items for those rows, in their order.
    """

    kind: str
    number: pa.Array
    index: pa.Array | None
    episode_id: pa.Array
    step: pa.Array
    ts: pa.Array
    state: pa.Array
    usable: np.ndarray
    action: pa.Array
    possible: list[str] | None
    propensity: pa.Array
    reward: pa.Array
    end: np.ndarray
    decision_id: pa.Array
    policy_version: pa.Array
    fallback: Callable[[np.ndarray], Iterator[SourceItem]]

    def __len__(self) -> int:
        return len(self.number)


def batch_rules_hold(state_names: list[str], possible: list[str] | None) -> bool:
    """Whether the rules that concern a whole batch hold: ``validate_event`` on a probe decision
    with every state name and the possible actions. False: every row takes the row path."""
    if possible is None or len(set(state_names)) != len(state_names):
        return False
    actions: list[str | int] = list(possible)
    probe = decision_event(
        "probe", "probe", 0, 0, dict.fromkeys(state_names, 0.0), possible[0] if possible else "",
        actions, 1.0, "probe",
    )  # fmt: skip
    try:
        validate_event(probe)
    except EventValidationError:
        return False
    return True


def _mask(array: Any) -> np.ndarray:
    mask: np.ndarray = pc.fill_null(array, False).to_numpy(zero_copy_only=False)
    return mask


def _text_ok(array: pa.Array) -> np.ndarray:
    length = pc.utf8_length(array)
    return _mask(pc.and_(pc.greater_equal(length, 1), pc.less_equal(length, _ID_CHARS)))


def _int_ok(array: pa.Array, upper: int) -> np.ndarray:
    return _mask(pc.and_(pc.greater_equal(array, 0), pc.less_equal(array, upper)))


def _finite(array: pa.Array) -> np.ndarray:
    return _mask(pc.is_finite(array))


def _passing(c: Candidates) -> np.ndarray:
    """Rows that pass every vectorized check (see module doc)."""
    if c.possible is None:
        return np.zeros(len(c), dtype=bool)
    p = c.propensity
    propensity_ok = _mask(
        pc.and_(
            pc.and_(pc.greater(p, 0.0), pc.less_equal(p, 1.0)),
            pc.greater_equal(p, MIN_PROPENSITY),
        )
    )
    ok: np.ndarray = (
        c.usable
        & _text_ok(c.episode_id)
        & _text_ok(c.decision_id)
        & _text_ok(c.policy_version)
        & _int_ok(c.step, LIMITS["step_max"])
        & _int_ok(c.ts, LIMITS["ts_max_ms"])
        & _mask(pc.is_in(c.action, value_set=pa.array(c.possible, pa.string())))
        & _finite(p)
        & propensity_ok
        & _finite(c.reward)
    )
    return ok


def _repeated(values: list[str], n: int) -> pa.Array:
    """A list column holding ``values`` in each of ``n`` rows (built in Arrow, not Python)."""
    k = len(values)
    offsets = pa.array(
        np.arange(0, n * k + 1, k, dtype=np.int32) if k else np.zeros(n + 1, np.int32)
    )
    items = pa.array(values, pa.string()).take(pa.array(np.tile(np.arange(k), n)))
    return pa.ListArray.from_arrays(offsets, items)


def _fast_table(c: Candidates, ok: np.ndarray) -> pa.Table:
    keep = pa.array(ok)
    n = int(np.count_nonzero(ok))
    possible = _repeated(c.possible or [], n)
    columns = {
        "episode_id": c.episode_id,
        "step": c.step,
        "decision_id": c.decision_id,
        "ts": pc.cast(pc.multiply(c.ts, 1000), pa.timestamp("us", tz="UTC")),
        "state": c.state,
        "action": c.action,
        "propensity": c.propensity,
        "reward": pc.add(c.reward, 0.0),  # the builder's sum: -0.0 is written as 0.0
        "reward_count": pa.array(np.ones(len(c), dtype=np.int32)),
        "policy_version": c.policy_version,
        END: pa.array(c.end, pa.int8()),
        WHERE[0]: pa.array(np.full(len(c), WHERE_KINDS.index(c.kind), dtype=np.int8)),
        WHERE[1]: c.number,
        WHERE[2]: c.index if c.index is not None else pa.nulls(len(c), pa.int64()),
    }
    arrays = []
    for field in STEP_SCHEMA:
        if field.name == "possible_actions":
            arrays.append(possible)
        elif field.name in columns:
            column = columns[field.name] if n == len(c) else pc.filter(columns[field.name], keep)
            arrays.append(column if column.type == field.type else column.cast(field.type))
        else:
            arrays.append(pa.nulls(n, field.type))
    return pa.Table.from_arrays(arrays, schema=STEP_SCHEMA)


def valid_steps(c: Candidates) -> tuple[pa.Table, list[Reject]]:
    """The valid steps of ``c`` as a step table in file order, and the rejects of the others
    (the row path's, in their order)."""
    ok = _passing(c)
    table = _fast_table(c, ok)
    if ok.all():
        return table, []
    rejects: list[Reject] = []
    valid: list[SourceStep] = []
    for item in c.fallback(np.flatnonzero(~ok)):
        if type(item) is SourceStep:
            refused = validated(item)
            if refused is None:
                valid.append(item)
            else:
                rejects.append(refused)
        else:
            assert isinstance(item, Reject)
            rejects.append(item)
    if valid:  # valid after all: back in file order among the others
        table = pa.concat_tables([table, steps_of_items(valid)])
        table = table.sort_by([(WHERE[1], "ascending"), (WHERE[2], "ascending")])
    return table, rejects

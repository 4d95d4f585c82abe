"""The rows ``policyloop score`` writes: one Arrow batch per input batch, built from flat numpy
buffers (list columns from offsets and one values array, never row by row).

Columns: the kept input columns, ``row``, ``action``, ``propensity``, ``possible_actions``,
``action_probs`` (aligned with ``possible_actions``) and ``policy_version``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from services.interop.score_input import PossibleActions

__all__ = ["Scored", "output_batch"]


@lru_cache(maxsize=4)
def _every_action(actions: tuple[str, ...], rows: int) -> pa.Array:
    """``actions`` repeated for ``rows`` rows: the same for every full batch, so made once."""
    names = pa.array(actions, pa.string())
    every: pa.Array = names.take(pa.array(np.tile(np.arange(len(actions), dtype=np.int32), rows)))
    return every


class Scored(NamedTuple):
    """What the policy made of one input batch."""

    first_row: int
    possible: PossibleActions
    probs: np.ndarray
    chosen: np.ndarray


def output_batch(
    batch: pa.RecordBatch, keep: list[str], scored: Scored, actions: list[str], version: str
) -> pa.RecordBatch:
    """The output rows of ``batch``."""
    n = batch.num_rows
    probs, chosen, possible = scored.probs, scored.chosen, scored.possible
    names = pa.array(actions, pa.string())
    offsets = pa.array(possible.offsets)
    if possible.columns is None:  # every action of every row, in the policy's order
        listed = _every_action(tuple(actions), n)
        values = probs.reshape(-1).astype(np.float64)
    else:
        assert possible.rows is not None
        listed = names.take(pa.array(possible.columns))
        values = probs[possible.rows, possible.columns].astype(np.float64)
    propensity = np.take_along_axis(probs, chosen[:, None], axis=1)[:, 0].astype(np.float64)
    arrays = [batch.column(c) for c in keep] + [
        pa.array(np.arange(scored.first_row, scored.first_row + n, dtype=np.int64)),
        names.take(pa.array(chosen)),
        pa.array(propensity),
        pa.ListArray.from_arrays(offsets, listed),
        pa.ListArray.from_arrays(offsets, pa.array(values)),
        pa.repeat(pa.scalar(version, pa.string()), n),
    ]
    fields = [*keep, "row", "action", "propensity", "possible_actions", "action_probs"]
    return pa.RecordBatch.from_arrays(arrays, names=[*fields, "policy_version"])

"""Python lists of parsed JSON values as Arrow columns, with the contract's notion of a type.

``pyarrow.array`` converts leniently: ``1.5`` into an int64 column is ``1``, ``True`` into a
float64 column is ``1.0``. The contract is strict (``schemas.events``: a step is an ``int``, a
bool is not a number), so a value whose Python type the contract would refuse is a null here,
and the row path then refuses its row with its exact reason. A list of one type, the usual
case, is converted by pyarrow in one call.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

__all__ = ["floats", "ints", "texts"]

_INT64 = 2**63


def _fits(value: int) -> bool:
    return -_INT64 < value < _INT64  # the contract's int64 bound is symmetric: +-(2**63 - 1)


def ints(values: list[Any]) -> pa.Array:
    """Integers (``type(v) is int`` within 64 bits); anything else is null."""
    if set(map(type, values)) <= {int}:
        try:
            return pa.array(values, pa.int64())
        except (OverflowError, pa.ArrowInvalid):
            pass
    return pa.array([v if type(v) is int and _fits(v) else None for v in values], pa.int64())


def floats(values: list[Any]) -> pa.Array:
    """Numbers (``float``, or ``int`` within 64 bits) as float64; anything else is null."""
    if set(map(type, values)) <= {float}:
        return pa.array(values, pa.float64())
    return pa.array(
        [
            v if type(v) is float else float(v) if type(v) is int and _fits(v) else None
            for v in values
        ],
        pa.float64(),
    )


def texts(values: list[Any]) -> pa.Array:
    """Values as table text: a string as it is, an integer as its decimal text (as the
    sessionizer writes integer actions and ids); anything else is null."""
    kinds = set(map(type, values))
    if kinds <= {str}:
        return pa.array(values, pa.string())
    if kinds <= {int}:
        try:
            return pa.array(values, pa.int64()).cast(pa.string())
        except (OverflowError, pa.ArrowInvalid):
            pass
    return pa.array(
        [v if type(v) is str else str(v) if type(v) is int else None for v in values],
        pa.string(),
    )

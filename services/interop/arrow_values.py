"""Arrow columns as Python values, refusing bad cells one by one instead of a whole batch.

pyarrow converts a column in one call, and one bad cell fails that call for every row of the
batch. The fast path here is that one call; only when it fails does the column go value by
value, so the batch's good rows import and each bad cell is named with its row.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from services.interop.source import parse_ts

__all__ = ["Bad", "flags", "json_lists", "numbers", "times"]

#: row index in the batch -> the bad cell as shown in the reject
Bad = dict[int, str]


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("not an integer")
        return int(value)
    return int(str(value).strip())


def numbers(array: pa.Array, kind: Literal["float", "int"]) -> tuple[list[Any], Bad]:
    """Values as floats or ints (nulls stay None) and the cells that are not numbers."""
    target = pa.float64() if kind == "float" else pa.int64()
    if pa.types.is_boolean(array.type):
        return [None] * len(array), {i: "a boolean" for i in range(len(array))}
    try:
        return pc.cast(array, target).to_pylist(), {}
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        pass
    values: list[Any] = []
    bad: Bad = {}
    for i, value in enumerate(array.to_pylist()):
        if value is None:
            values.append(None)
            continue
        try:
            values.append(float(value) if kind == "float" else _int(value))
        except (TypeError, ValueError):
            values.append(None)
            bad[i] = repr(value)[:200]
    return values, bad


def flags(array: pa.Array) -> tuple[list[bool], Bad]:
    """Booleans (null: false) from a bool, number or ``true/false/1/0`` text column."""
    try:
        cast = array if pa.types.is_boolean(array.type) else pc.cast(array, pa.bool_())
        return [v is True for v in cast.to_pylist()], {}
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        pass
    values: list[bool] = []
    bad: Bad = {}
    for i, value in enumerate(array.to_pylist()):
        text = str(value).strip().lower()
        if value is None or text in ("false", "0", ""):
            values.append(False)
        elif text in ("true", "1"):
            values.append(True)
        else:
            values.append(False)
            bad[i] = repr(value)[:200]
    return values, bad


def json_lists(array: pa.Array) -> tuple[list[Any], Bad]:
    """A list column as lists; a text column holding JSON arrays (CSV) parsed, each distinct
    text once (rows usually repeat the same list of possible actions)."""
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        return array.to_pylist(), {}
    parsed: dict[str, Any] = {}
    values: list[Any] = []
    bad: Bad = {}
    for i, text in enumerate(array.to_pylist()):
        if text is None:
            values.append(None)
            continue
        value = parsed.get(text)
        if value is None:
            try:
                value = orjson.loads(text)
            except orjson.JSONDecodeError:
                values.append(None)
                bad[i] = repr(text)[:200]
                continue
            parsed[text] = value
        values.append(value)
    return values, bad


def times(array: pa.Array) -> tuple[list[int | None], Bad]:
    """Epoch milliseconds from a timestamp, date, integer (ms) or ISO-text column."""
    kind = array.type
    if pa.types.is_timestamp(kind):
        ms = pc.cast(pc.cast(array, pa.timestamp("ms", tz=kind.tz)), pa.int64())
        return ms.to_pylist(), {}
    if pa.types.is_date(kind):
        ms = pc.multiply(pc.cast(pc.cast(array, pa.date32()), pa.int64()), 86_400_000)
        return ms.to_pylist(), {}
    if pa.types.is_integer(kind):
        return pc.cast(array, pa.int64()).to_pylist(), {}
    values: list[int | None] = []
    bad: Bad = {}
    for i, value in enumerate(array.to_pylist()):
        if value is None:
            values.append(None)
            continue
        parsed = parse_ts(_int(value) if isinstance(value, str) and value.isdigit() else value)
        if parsed is None or (isinstance(value, float) and not math.isfinite(value)):
            bad[i] = repr(value)[:200]
        values.append(parsed)
    return values, bad

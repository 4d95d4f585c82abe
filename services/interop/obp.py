"""Open Bandit Pipeline's bandit feedback, saved as an ``.npz`` of its arrays.

OBP hands logged bandit feedback around as a dict of arrays (``context`` (n, d), ``action``,
``reward``, ``pscore``, ``position``, ``n_actions``, ...); ``np.savez(path, **feedback)`` stores
it. Each round is a one-step episode that ends there (terminal). ``context`` columns become the
state names ``context_0``, ``context_1``, ... (or ``--obs-names``); ``position`` (the slot the
item was shown in) joins the state as ``position``. The possible actions are ``0 ..
n_actions-1`` (or ``--actions``); ``pscore`` is the propensity. ``action_context`` (features of
the actions) has no place in the timeline and is not read.

An ``.npz`` is read array by array (not streamed: numpy has no row reader for it); rounds are
converted ``batch_rows`` at a time. Object arrays would be unpickled by numpy, so the file is
loaded with ``allow_pickle=False`` and such an array is refused, naming it.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from services.interop.source import (
    READ_ROWS,
    ImportFormatError,
    ImportOptions,
    SourceItem,
    Where,
)
from services.interop.steps import StepMaker, missing_propensities

__all__ = ["DEFAULT_END", "read"]

DEFAULT_END = "terminal"

_FORMAT = "obp"
_CHUNK = READ_ROWS


def _array(data: Any, key: str, path: Path) -> np.ndarray | None:
    if key not in data.files:
        return None
    try:
        value: np.ndarray = data[key]
    except ValueError as exc:  # an object array: numpy would have to unpickle it
        raise ImportFormatError(
            f"{_FORMAT}: {path}: array {key!r} is an object array, which numpy stores pickled; "
            "policyloop never unpickles input. Save it as numbers and import again"
        ) from exc
    return value


def read(path: Path, sha256: str, options: ImportOptions) -> Iterator[SourceItem]:
    """One terminal one-step episode per round of the feedback in ``path``."""
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ImportFormatError(f"{_FORMAT}: {path}: not an .npz file ({exc})") from None
    with data:
        arrays = {k: _array(data, k, path) for k in ("context", "action", "reward", "pscore")}
        for key in ("context", "action", "reward"):
            if arrays[key] is None:
                raise ImportFormatError(f"{_FORMAT}: {path} has no array {key!r}")
        if arrays["pscore"] is None and options.logger is None:
            raise missing_propensities(_FORMAT, str(path), "no array 'pscore'")
        position = _array(data, "position", path)
        n_actions = _array(data, "n_actions", path)
        context = np.asarray(arrays["context"], dtype=np.float64)
        context = context.reshape(len(context), -1)
        names = options.obs_names or [f"context_{i}" for i in range(context.shape[1])]
        if len(names) != context.shape[1]:
            raise ImportFormatError(
                f"--obs-names: {len(names)} names given but context has {context.shape[1]} columns"
            )
        maker = StepMaker(sha256, options)
        possible = maker.possible(None)
        if possible is None and n_actions is not None:
            possible = [str(a) for a in range(int(n_actions))]
        n = len(context)
        for name in ("action", "reward", "pscore"):
            value = arrays[name]
            if value is not None and len(value) != n:
                raise ImportFormatError(
                    f"{_FORMAT}: {path}: {name} has {len(value)} entries, context has {n}"
                )
        for start in range(0, n, _CHUNK):
            yield from _rounds(
                start, context, arrays, position, names, possible, maker, options.ts_ms
            )


def _rounds(
    start: int,
    context: np.ndarray,
    arrays: dict[str, np.ndarray | None],
    position: np.ndarray | None,
    names: list[str],
    possible: list[str] | None,
    maker: StepMaker,
    ts_ms: int,
) -> Iterator[SourceItem]:
    stop = min(start + _CHUNK, len(context))
    rows = context[start:stop].tolist()
    slots = position[start:stop].tolist() if position is not None else None
    actions = arrays["action"][start:stop].tolist()  # type: ignore[index]
    rewards = arrays["reward"][start:stop].tolist()  # type: ignore[index]
    pscores = arrays["pscore"]
    props = pscores[start:stop].tolist() if pscores is not None else [None] * (stop - start)
    for i, row in enumerate(rows):
        if not maker.mine_row(start + i + 1):
            continue  # another worker's round
        where = Where("row", start + i + 1)
        state = dict(zip(names, row, strict=True))
        if slots is not None:
            state["position"] = slots[i]
        yield maker.make(
            where,
            maker.episode_for(where),
            0,
            ts_ms,
            state,
            actions[i],
            possible,
            props[i],
            rewards[i],
            True,
        )

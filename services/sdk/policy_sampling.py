"""Drawing an action from served probabilities: the draw behind ``PolicyClient.act``.

Why a plain loop and not ``random.choices`` or numpy: the probabilities are a short Python list
(one per possible action) on the hot path of every decision, where a loop over a handful of
floats costs less than building cumulative weights or an array; and the propensity logged is
``probs[index]``, so the draw must follow exactly those numbers, rounding included.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["sample_index"]


def sample_index(probs: Sequence[float], u: float) -> int:
    """The index that ``u`` (uniform in [0, 1)) draws from ``probs``, scaled by their total.

    When rounding leaves ``u * total`` at or past the last cumulative sum, the last index with
    mass is drawn: never an action the policy gave probability 0.
    """
    total = 0.0
    for p in probs:
        total += p
    target = u * total
    acc = 0.0
    for i, p in enumerate(probs):
        acc += p
        if target < acc:
            return i
    return max(i for i, p in enumerate(probs) if p > 0.0)

"""A time limit in the logs: when episodes cut at one length are a horizon, not a log cut.

FQE leaves the last step of a truncated episode out of its regression: a cut by the log (an
idle session closed, a window's edge) says nothing about what comes next, and the world goes
on. A *time limit* is different: when several episodes were cut at exactly the longest length
the logs hold (gymnasium's ``TimeLimit``, a session cap), the deployment itself ends every
episode there, and the value a policy earns is the value up to that step. A Q-function of the
state alone cannot know how many steps are left, so on such logs FQE estimated the value
without the limit: on Taxi (200 steps, gamma 0.99, where gamma^200 = 0.13 of the value still
lies beyond the limit) every candidate's FQE interval lay below its true value as served.

With a time limit ``L`` detected, FQE takes the step's position ``t / L`` as one more input
and ends the regression at ``L`` (no value after it), which is the finite-horizon value the
deployment earns. Logs without one (lengths that vary, one long episode) are unchanged.

**How the limit enters the Q-function.** For any policy, the value up to the limit is the
value without it less what lies beyond: ``Q_L(s, a, t) = Q(s, a) - gamma^(L - t) W(s, a, t)``,
where ``W`` is the value without a limit from where the episode stands at ``L`` (zero if it
ended before). So FQE's network has two heads, ``U`` and ``W``, and its Q is
``U - gamma^(L - t) W`` (:func:`remaining_discount`). A network given only ``t / L`` had to
learn that product itself, among hundreds of state features, from the few rows near the limit:
on Taxi it estimated the value *without* the limit (tabular FQE on the same eval split: -61.9
without the limit, -58.7 with it; the network -63.2 either way; true value -56.7).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "MIN_EPISODES_AT_LIMIT",
    "detect_time_limit",
    "remaining_discount",
    "with_step_position",
]

#: Cut episodes at the longest length needed to call it a limit: one is a coincidence.
MIN_EPISODES_AT_LIMIT = 2


def detect_time_limit(valid: np.ndarray, terminal: np.ndarray | None) -> int | None:
    """The logs' time limit ``L`` (module doc), or None.

    ``valid`` ``(E, T)`` marks real steps; ``terminal`` where the environment ended the
    episode (None: no episode was cut, so there is no limit to find). A limit is the longest
    episode length when at least :data:`MIN_EPISODES_AT_LIMIT` episodes of that length were
    cut (truncated, not terminal).
    """
    if terminal is None or valid.size == 0:
        return None
    lengths = valid.sum(axis=1)
    longest = int(lengths.max())
    rows = np.arange(len(lengths))
    ended = terminal[rows, lengths - 1]
    cut_at_longest = int(np.count_nonzero((lengths == longest) & ~ended))
    return longest if cut_at_longest >= MIN_EPISODES_AT_LIMIT else None


def with_step_position(states: np.ndarray, steps: np.ndarray, limit: int) -> np.ndarray:
    """``states`` ``(n, F)`` with the steps' positions ``t / limit`` as column ``F``."""
    position = (np.asarray(steps, np.float64) / float(limit)).astype(states.dtype, copy=False)
    return np.concatenate([states, position[:, None]], axis=1)


def remaining_discount(steps: np.ndarray, limit: int, gamma: float) -> np.ndarray:
    """``gamma^(limit - t)`` for each step ``t``: the weight of what lies beyond the limit in
    a value without one (module doc), as float32."""
    left = float(limit) - np.asarray(steps, np.float64)
    return np.power(float(gamma), left).astype(np.float32)

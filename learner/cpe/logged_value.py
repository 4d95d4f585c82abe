"""The logged policy's value: the on-policy average of what the deployed policy earned.

This is the yardstick of every normalized estimate and of the gate. It needs no model and no
importance weights: the mean reward per decision (one-step) or the mean discounted return per
episode (sequential), with the same bootstrap as the estimators.
"""

from __future__ import annotations

import numpy as np

from learner.cpe.bootstrap import percentile_interval
from learner.cpe.estimate import Estimate
from learner.cpe.inputs import BanditInput, SequentialInput

__all__ = ["LOGGED", "logged_policy_value", "logged_returns"]

LOGGED = "logged"


def logged_returns(data: BanditInput | SequentialInput) -> np.ndarray:
    """Per unit: the reward (one-step) or the discounted return of the episode (sequential)."""
    if isinstance(data, SequentialInput):
        return data.discounted_returns
    if isinstance(data, BanditInput):
        return data.rewards
    raise TypeError(f"data: expected BanditInput or SequentialInput, got {type(data).__name__}")


def logged_policy_value(
    data: BanditInput | SequentialInput,
    *,
    n_bootstrap: int = 300,
    alpha: float = 0.05,
    seed: int = 0,
) -> Estimate:
    """Mean logged (discounted) return with a bootstrap interval; ``normalized`` is 1."""
    columns = logged_returns(data)[:, None]
    n = len(columns)
    value = float(columns.sum() / n)
    low, high, _ = percentile_interval(lambda t: t[:, 0] / n, columns, n_bootstrap, alpha, seed)
    return Estimate(LOGGED, value, low, high, 1.0, [])

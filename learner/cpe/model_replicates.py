"""Model uncertainty in an interval: bagged Q-models as bootstrap replicates of the whole fit.

A bootstrap that resamples episodes but keeps one fitted Q-model shows how the estimate moves
with the *start states* and the importance weights, not how it moves with the *model*: refit
on other logs, the model would differ, and so would every estimate built on it. In the CartPole
demo the fixed-model FQE interval was [99.02, 99.10] around a true value of 95.09.

Bagged FQE (:mod:`learner.cpe.fqe_fit`) fits ``B`` members, member ``b`` on its own episode
bootstrap resample (``counts[b]``: how often the resample drew each episode). Evaluating an
estimator on resample ``b`` with member ``b``'s Q is then one honest bootstrap replicate of the
*whole* procedure -- resample the logs, refit the model, estimate -- which is the bootstrap of
fitted Q-evaluation that Hao et al. (2021, "Bootstrapping fitted Q-evaluation for off-policy
inference") show to be distributionally consistent: the spread of such replicates estimates the
sampling spread of the estimator, model and data together.

With few replicates a percentile interval is not possible (the 2.5% quantile of 10 values is
their minimum), so the interval is the normal-theory bootstrap interval with the standard error
estimated from the replicates, ``value +- t_{B-1}(1 - alpha/2) * sd(replicates)`` (Efron &
Tibshirani 1993, ch. 13): the Student t quantile with ``B - 1`` degrees of freedom pays for
estimating that standard error from ``B`` values (2.26 instead of 1.96 for ``B = 10``). The
replicates are single fits while the point estimate averages the ``B`` members, whose fit noise
partly cancels: the interval is conservative in that respect.

Each estimator's final interval is the *hull* of this replicate interval and its fixed-model
percentile interval (many resamples, so it keeps the skew of heavy importance weights): it is
never narrower than what the data alone showed before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import NamedTuple

import numpy as np

from learner.cpe.bootstrap import resample_counts

__all__ = [
    "Interval",
    "ModelReplicates",
    "episode_resample_counts",
    "hull",
    "replicate_interval",
    "student_t_quantile",
]


@dataclass(frozen=True, eq=False)
class ModelReplicates:
    """The members of a bagged Q-model on the episodes they were fitted on.

    ``q_hat[b]`` ``(E, T, A)`` is member ``b``'s Q on every step (zero on padding);
    ``counts[b]`` ``(E,)`` how often member ``b``'s episode resample drew each episode (the
    counts sum to ``E``).
    """

    q_hat: np.ndarray
    counts: np.ndarray

    def __post_init__(self) -> None:
        if self.q_hat.ndim != 4:
            raise ValueError(f"q_hat: shape {self.q_hat.shape}, expected (members, E, T, A)")
        members, episodes = self.q_hat.shape[:2]
        if self.counts.shape != (members, episodes):
            raise ValueError(f"counts: shape {self.counts.shape}, expected {(members, episodes)}")

    @property
    def members(self) -> int:
        return int(self.q_hat.shape[0])


class Interval(NamedTuple):
    """A confidence interval; NaN bounds when there is none."""

    low: float
    high: float


def episode_resample_counts(n_episodes: int, members: int, seed: int) -> np.ndarray:
    """``(members, n_episodes)`` episode counts of the members' bootstrap resamples.

    One member is fitted on the logs as they are (all counts 1): a single fitted model, whose
    interval then has no model part. Several members each get their own multinomial resample
    of the episodes (the unit the bootstrap resamples everywhere in CPE), from a stream of
    ``seed`` apart from the one the estimators' bootstrap draws.
    """
    if members <= 1:
        return np.ones((1, n_episodes), np.int64)
    rng = np.random.default_rng([seed, 14])
    return resample_counts(rng, n_episodes, members)


def student_t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t with ``df`` (integer >= 1) degrees of freedom.

    By bisection on the exact distribution function for integer ``df`` (Abramowitz & Stegun
    26.7.3-4, a finite sum in ``cos(theta)``, ``theta = atan(t / sqrt(df))``): no scipy needed.
    """
    if not 0.0 < p < 1.0 or df < 1:
        raise ValueError(f"p={p}, df={df}: need 0 < p < 1 and df >= 1")
    if p < 0.5:
        return -student_t_quantile(1.0 - p, df)
    target = 2.0 * p - 1.0  # P(|T| <= t)
    low, high = 0.0, max(1.0, 2.0 * abs(NormalDist().inv_cdf(p)))
    while _t_central(high, df) < target:
        high *= 2.0
    for _ in range(200):
        mid = 0.5 * (low + high)
        if _t_central(mid, df) < target:
            low = mid
        else:
            high = mid
        if high - low < 1e-12 * max(1.0, high):
            break
    return 0.5 * (low + high)


def _t_central(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with integer ``df`` (Abramowitz & Stegun 26.7.3-4)."""
    theta = math.atan(t / math.sqrt(df))
    c2 = math.cos(theta) ** 2
    if df % 2 == 1:
        term, total = math.cos(theta), 0.0
        for k in range(1, (df - 1) // 2 + 1):  # cos + 2/3 cos^3 + (2*4)/(3*5) cos^5 + ...
            total += term
            term *= c2 * (2 * k) / (2 * k + 1)
        series = math.sin(theta) * total if df > 1 else 0.0
        return 2.0 / math.pi * (theta + series)
    term, total = 1.0, 0.0
    for k in range(1, df // 2 + 1):  # 1 + 1/2 cos^2 + (1*3)/(2*4) cos^4 + ...
        total += term
        term *= c2 * (2 * k - 1) / (2 * k)
    return math.sin(theta) * total


def replicate_interval(center: float, replicates: np.ndarray, alpha: float) -> Interval:
    """``center +- t_{B-1}(1 - alpha/2) * sd(replicates)`` over the finite replicates (module
    doc); NaN bounds with fewer than two finite replicates or a non-finite center."""
    values = np.asarray(replicates, np.float64)
    values = values[np.isfinite(values)]
    if len(values) < 2 or not math.isfinite(center):
        return Interval(float("nan"), float("nan"))
    half = student_t_quantile(1.0 - alpha / 2.0, len(values) - 1) * float(np.std(values, ddof=1))
    return Interval(center - half, center + half)


def hull(a: Interval, b: Interval) -> Interval:
    """The smallest interval containing both (a NaN bound yields to the other's)."""
    return Interval(float(np.fmin(a.low, b.low)), float(np.fmax(a.high, b.high)))

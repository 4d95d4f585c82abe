"""Sequential estimators: per-decision importance sampling, doubly robust, MAGIC.

Notation (Thomas & Brunskill 2016; Jiang & Li 2016): episode ``i``, step ``t``,
``w_it = prod_{k<=t} pi(a_ik|s_ik) / mu(a_ik|s_ik)`` the cumulative importance weight
(``w_i,-1 = 1``), ``W_t = sum_i w_it``, ``q_it = Q(s_it, a_it)`` and
``v_it = sum_a pi(a|s_it) Q(s_it, a)`` from a Q-model of the *target* policy (FQE):

==================  ==========================================================================
per-decision IS     1/n sum_i sum_t g^t w_it r_it
weighted PDIS       sum_t g^t sum_i w_it r_it / W_t
sequential DR       1/n sum_i sum_t g^t [ w_it (r_it - q_it) + w_i,t-1 v_it ]
weighted DR         sum_t g^t [ sum_i w_it (r_it - q_it) / W_t + sum_i w_i,t-1 v_it / W_t-1 ]
                    (W_-1 = n)
MAGIC               the convex blend of the partial-horizon weighted DR estimates g^(j)
                    (importance sampling up to step j, the model after) that minimizes
                    variance + squared bias (Thomas & Brunskill 2016, algorithm 1)
==================  ==========================================================================

Episodes of different lengths are padded with the absorbing-state convention of
:mod:`learner.cpe.inputs` (reward 0, ratio 1 after the end), so ``W_t`` counts every episode at
every step. The value estimated is the expected discounted return over the episode *as
logged*: a truncated episode counts the rewards it logged.

The DR family and MAGIC inherit the Q-model's uncertainty: with a bagged FQE model their
point estimate uses the members' mean Q, and their interval also spans the estimator recomputed
on each member's own episode resample with that member's Q (``uses_q_model``, see
:mod:`learner.cpe.base`). When the importance weights carry little information the DR estimate
is mostly its model's, and so is its interval's width: a fixed model would hide that.
"""

from __future__ import annotations

import numpy as np

from learner.cpe.base import Estimator
from learner.cpe.bootstrap import percentile_interval
from learner.cpe.estimate import Estimate
from learner.cpe.inputs import SequentialInput

__all__ = [
    "MAGIC",
    "PerDecisionIS",
    "SequentialDoublyRobust",
    "WeightedDoublyRobust",
    "WeightedPerDecisionIS",
    "project_to_simplex",
]


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den where a zero total weight (so a zero numerator) contributes nothing."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den == 0.0, 0.0, num / den)


class PerDecisionIS(Estimator[SequentialInput]):
    """Per-decision importance sampling: each reward weighted by the ratios up to its step."""

    name = "pdis"
    label = "per-decision IS"
    kind = "sequential"

    def columns(self, data: SequentialInput) -> np.ndarray:
        terms = data.cumulative_weights * np.where(data.valid, data.rewards, 0.0)
        out: np.ndarray = (terms * data.discounts).sum(axis=1)[:, None]
        return out

    def combine(self, totals: np.ndarray, data: SequentialInput) -> np.ndarray:
        return totals[:, 0] / data.n


class WeightedPerDecisionIS(Estimator[SequentialInput]):
    """Weighted (self-normalized) PDIS: each step's weights normalized across episodes."""

    name = "wpdis"
    label = "weighted per-decision IS"
    kind = "sequential"

    def columns(self, data: SequentialInput) -> np.ndarray:
        w = data.cumulative_weights
        return np.concatenate([w * np.where(data.valid, data.rewards, 0.0), w], axis=1)

    def combine(self, totals: np.ndarray, data: SequentialInput) -> np.ndarray:
        t = data.horizon
        out: np.ndarray = (_ratio(totals[:, :t], totals[:, t:]) * data.discounts).sum(axis=1)
        return out


def _dr_parts(data: SequentialInput) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(w_t (r_t - q_t), w_{t-1} v_t, w_t), each (E, T), zero reward/model terms on padding."""
    w = data.cumulative_weights
    residual = np.where(data.valid, data.rewards - data.q_hat_taken, 0.0)
    return w * residual, data.previous_weights * data.v_hat, w


def _weighted_steps(
    totals: np.ndarray, data: SequentialInput
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per step, from totals (B, 3T): gamma^t (A_t / W_t + B_t / W_{t-1}), B_t and W_t (B, T)."""
    t = data.horizon
    a, b, w = totals[:, :t], totals[:, t : 2 * t], totals[:, 2 * t :]
    w_prev = np.concatenate([np.full((len(totals), 1), float(data.n)), w[:, :-1]], axis=1)
    steps = (_ratio(a, w) + _ratio(b, w_prev)) * data.discounts
    return steps, b, w


class SequentialDoublyRobust(Estimator[SequentialInput]):
    """Sequential DR (Jiang & Li 2016): PDIS with the Q-model as a control variate."""

    name = "seq_dr"
    label = "sequential DR"
    kind = "sequential"
    uses_q_model = True

    def columns(self, data: SequentialInput) -> np.ndarray:
        a, b, _ = _dr_parts(data)
        out: np.ndarray = ((a + b) * data.discounts).sum(axis=1)[:, None]
        return out

    def combine(self, totals: np.ndarray, data: SequentialInput) -> np.ndarray:
        return totals[:, 0] / data.n


class WeightedDoublyRobust(Estimator[SequentialInput]):
    """Weighted DR (Thomas & Brunskill 2016): sequential DR with self-normalized weights."""

    name = "wdr"
    label = "weighted DR"
    kind = "sequential"
    uses_q_model = True

    def columns(self, data: SequentialInput) -> np.ndarray:
        return np.concatenate(_dr_parts(data), axis=1)

    def combine(self, totals: np.ndarray, data: SequentialInput) -> np.ndarray:
        steps, _, _ = _weighted_steps(totals, data)
        out: np.ndarray = steps.sum(axis=1)
        return out


def project_to_simplex(v: np.ndarray) -> np.ndarray:
    """Euclidean projection onto {x >= 0, sum x = 1} (Duchi et al. 2008)."""
    u = np.sort(v)[::-1]
    css = np.cumsum(u) - 1.0
    k = np.arange(1, len(v) + 1)
    rho = np.flatnonzero(u - css / k > 0)[-1]
    out: np.ndarray = np.maximum(v - css[rho] / (rho + 1), 0.0)
    return out


def _min_quadratic_on_simplex(m: np.ndarray, iterations: int = 2000) -> np.ndarray:
    """argmin_x x' M x over the simplex, by projected gradient (M is small and PSD)."""
    j = len(m)
    scale = float(np.max(np.abs(m)))
    if not np.isfinite(scale) or scale == 0.0:
        x = np.zeros(j)
        x[-1] = 1.0  # nothing to trade off: trust the full-horizon (weighted DR) estimate
        return x
    m = m / scale
    step = 1.0 / (2.0 * max(float(np.linalg.eigvalsh(m).max()), 1e-12))
    x = np.full(j, 1.0 / j)
    for _ in range(iterations):
        x = project_to_simplex(x - step * 2.0 * (m @ x))
    return x


class MAGIC(Estimator[SequentialInput]):
    """MAGIC (Thomas & Brunskill 2016): blend partial-horizon weighted DR estimates.

    ``g^(j)`` uses importance sampling for steps up to ``j`` and the Q-model's value after
    (``g^(-1)`` is the model alone, the full horizon is weighted DR). The blend ``x`` minimizes
    ``x' (Omega + b b') x`` where ``Omega`` is the covariance of the ``g^(j)`` and ``b_j`` their
    distance to the bootstrap interval of weighted DR (the bias estimate of the paper; that
    interval holds the model fixed, as in the paper). The interval is the bootstrap of the
    blend with ``x`` held fixed, with a bagged model's members as replicates (module doc).
    ``last_blend`` keeps the horizons and weights of the latest call, for the report.
    """

    name = "magic"
    label = "MAGIC"
    kind = "sequential"
    uses_q_model = True

    def __init__(self, *, warn_min_ess: float = 100.0) -> None:
        super().__init__(warn_min_ess=warn_min_ess)
        self.last_blend: dict[int, float] = {}
        self._horizons: np.ndarray = np.array([-1])
        self._x: np.ndarray = np.array([1.0])

    @staticmethod
    def horizons(horizon: int) -> np.ndarray:
        """j in {-1, 0, 1, 3, 7, ...} and T-1: geometric, so long episodes stay cheap."""
        js = {-1, horizon - 1}
        k = 1
        while k - 1 < horizon - 1:
            js.add(k - 1)
            k *= 2
        return np.array(sorted(js))

    def columns(self, data: SequentialInput) -> np.ndarray:
        return np.concatenate(_dr_parts(data), axis=1)

    def _partials(self, totals: np.ndarray, data: SequentialInput) -> np.ndarray:
        """g^(j) for each row of totals and each horizon j: (B, J)."""
        steps, b, w = _weighted_steps(totals, data)
        cum = np.cumsum(steps, axis=1)
        t = data.horizon
        out = np.empty((len(totals), len(self._horizons)))
        for k, j in enumerate(self._horizons):
            if j < 0:
                out[:, k] = b[:, 0] / data.n
            elif j == t - 1:
                out[:, k] = cum[:, j]
            else:
                out[:, k] = cum[:, j] + data.gamma ** (j + 1) * _ratio(b[:, j + 1], w[:, j])
        return out

    def combine(self, totals: np.ndarray, data: SequentialInput) -> np.ndarray:
        out: np.ndarray = self._partials(totals, data) @ self._x
        return out

    def _blend(self, data: SequentialInput, n_bootstrap: int, alpha: float, seed: int) -> None:
        self._horizons = self.horizons(data.horizon)
        columns = self.columns(data)
        n, t = data.n, data.horizon
        totals = columns.sum(axis=0)[None, :]
        g = self._partials(totals, data)[0]
        # Per-episode contributions c_i^(j) with the full-data normalizers, mean_i c = g.
        w_full = totals[0, 2 * t :]
        w_prev = np.concatenate([[float(n)], w_full[:-1]])
        a, b = columns[:, :t], columns[:, t : 2 * t]
        steps = n * (_ratio(a, w_full) + _ratio(b, w_prev)) * data.discounts
        cum = np.cumsum(steps, axis=1)
        contrib = np.empty((n, len(self._horizons)))
        for k, j in enumerate(self._horizons):
            if j < 0:
                contrib[:, k] = b[:, 0]
            elif j == t - 1:
                contrib[:, k] = cum[:, j]
            else:
                tail = n * data.gamma ** (j + 1) * _ratio(b[:, j + 1], w_full[j])
                contrib[:, k] = cum[:, j] + tail
        omega = np.cov(contrib, rowvar=False) / n if n > 1 else np.zeros((len(g), len(g)))
        omega = np.atleast_2d(omega)
        wdr = WeightedDoublyRobust()
        low, high, _ = percentile_interval(
            lambda tot: wdr.combine(tot, data), columns, max(n_bootstrap, 50), alpha, seed
        )
        bias = np.maximum(0.0, np.maximum(low - g, g - high))
        if not (np.all(np.isfinite(omega)) and np.all(np.isfinite(bias))):
            self._x = np.full(len(g), np.nan)
        else:
            self._x = _min_quadratic_on_simplex(omega + np.outer(bias, bias))
        self.last_blend = {int(j): float(x) for j, x in zip(self._horizons, self._x, strict=True)}

    def estimate(
        self,
        data: SequentialInput,
        *,
        n_bootstrap: int = 300,
        alpha: float = 0.05,
        seed: int = 0,
    ) -> Estimate:
        self.check_input(data)
        self._blend(data, n_bootstrap, alpha, seed)
        return super().estimate(data, n_bootstrap=n_bootstrap, alpha=alpha, seed=seed)

"""One-step (contextual bandit) estimators, after Open Bandit Pipeline's definitions.

With ``w_i = pi(a_i|x_i) / mu(a_i|x_i)`` the importance weight of the logged action,
``q(x, a)`` a reward model and ``q(x, pi) = sum_a pi(a|x) q(x, a)``:

============  ===============================================================================
IPS           mean_i  w_i r_i
SNIPS         sum_i w_i r_i / sum_i w_i
DM            mean_i  q(x_i, pi)
DR            mean_i  q(x_i, pi) + w_i (r_i - q(x_i, a_i))
SNDR          mean_i  q(x_i, pi) + sum_i w_i (r_i - q(x_i, a_i)) / sum_i w_i
Switch-DR     mean_i  q(x_i, pi) + w_i 1[w_i <= tau] (r_i - q(x_i, a_i))
============  ===============================================================================

IPS and DR are unbiased when the propensities are right and the candidate's actions are
supported; SNIPS and SNDR trade a small bias for lower variance; DM is only as good as its
model; Switch-DR falls back on the model where a weight would explode (above ``tau``).
"""

from __future__ import annotations

import numpy as np

from learner.cpe.base import Estimator
from learner.cpe.inputs import BanditInput

__all__ = [
    "DirectMethod",
    "DoublyRobust",
    "InverseProbabilityScoring",
    "SelfNormalizedDoublyRobust",
    "SelfNormalizedIPS",
    "SwitchDoublyRobust",
]


class InverseProbabilityScoring(Estimator[BanditInput]):
    """IPS: reweight each logged reward by how much more likely the candidate takes it."""

    name = "ips"
    label = "IPS"
    kind = "one_step"

    def columns(self, data: BanditInput) -> np.ndarray:
        out: np.ndarray = (data.weights * data.rewards)[:, None]
        return out

    def combine(self, totals: np.ndarray, data: BanditInput) -> np.ndarray:
        return totals[:, 0] / data.n


class SelfNormalizedIPS(Estimator[BanditInput]):
    """SNIPS: IPS divided by the mean weight, which should be 1 (lower variance, small bias)."""

    name = "snips"
    label = "SNIPS"
    kind = "one_step"

    def columns(self, data: BanditInput) -> np.ndarray:
        return np.stack([data.weights * data.rewards, data.weights], axis=1)

    def combine(self, totals: np.ndarray, data: BanditInput) -> np.ndarray:
        out: np.ndarray = totals[:, 0] / totals[:, 1]
        return out


class DirectMethod(Estimator[BanditInput]):
    """DM: the reward model's value of the candidate; no weights, biased if the model is."""

    name = "dm"
    label = "DM"
    kind = "one_step"
    uses_weights = False

    def columns(self, data: BanditInput) -> np.ndarray:
        return data.model_value[:, None]

    def combine(self, totals: np.ndarray, data: BanditInput) -> np.ndarray:
        return totals[:, 0] / data.n


class DoublyRobust(Estimator[BanditInput]):
    """DR: DM plus an importance-weighted correction of the model's error on logged actions."""

    name = "dr"
    label = "DR"
    kind = "one_step"

    def columns(self, data: BanditInput) -> np.ndarray:
        residual = data.rewards - data.reward_hat_taken
        out: np.ndarray = (data.model_value + data.weights * residual)[:, None]
        return out

    def combine(self, totals: np.ndarray, data: BanditInput) -> np.ndarray:
        return totals[:, 0] / data.n


class SelfNormalizedDoublyRobust(Estimator[BanditInput]):
    """SNDR: DR with the correction term's weights self-normalized."""

    name = "sndr"
    label = "SNDR"
    kind = "one_step"

    def columns(self, data: BanditInput) -> np.ndarray:
        residual = data.rewards - data.reward_hat_taken
        return np.stack([data.model_value, data.weights * residual, data.weights], axis=1)

    def combine(self, totals: np.ndarray, data: BanditInput) -> np.ndarray:
        out: np.ndarray = totals[:, 0] / data.n + totals[:, 1] / totals[:, 2]
        return out


class SwitchDoublyRobust(Estimator[BanditInput]):
    """Switch-DR: DR where the weight is at most ``tau``, the model alone where it is larger."""

    name = "switch_dr"
    label = "Switch-DR"
    kind = "one_step"

    def __init__(self, tau: float = 20.0, *, warn_min_ess: float = 100.0) -> None:
        super().__init__(warn_min_ess=warn_min_ess)
        if not tau > 0:
            raise ValueError(f"tau: must be > 0, got {tau}")
        self.tau = tau

    def columns(self, data: BanditInput) -> np.ndarray:
        residual = data.rewards - data.reward_hat_taken
        kept = np.where(data.weights <= self.tau, data.weights, 0.0)
        # A NaN weight must stay NaN (a broken candidate), not be switched off.
        kept = np.where(np.isnan(data.weights), np.nan, kept)
        out: np.ndarray = (data.model_value + kept * residual)[:, None]
        return out

    def combine(self, totals: np.ndarray, data: BanditInput) -> np.ndarray:
        return totals[:, 0] / data.n

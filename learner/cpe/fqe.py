"""FQE as an estimator: the bagged mean over episodes of V(s_0) = sum_a pi(a|s_0) Q(s_0, a).

The Q-model is fitted by :func:`learner.cpe.fqe_fit.fit_fqe` (bagged: ``FqeSettings.members``
networks, each on an episode bootstrap resample). The estimate is the mean over episodes of the
members' mean V(s_0). Its interval includes the model's own uncertainty: member ``b``'s V(s_0)
averaged over its *own* resample's start states is one bootstrap replicate of resample, refit
and estimate (Hao et al. 2021), and the interval is the t interval over those replicates, joined
with the percentile interval of the start states (the fixed-model bootstrap, which is all a
single member's interval has; :mod:`learner.cpe.model_replicates`).
"""

from __future__ import annotations

import numpy as np

from learner.cpe.base import Estimator
from learner.cpe.config import FqeSettings
from learner.cpe.estimate import Estimate
from learner.cpe.fqe_fit import backups_needed, fit_fqe
from learner.cpe.fqe_model import FqeModel
from learner.cpe.inputs import SequentialInput

__all__ = ["FittedQEvaluation"]


class FittedQEvaluation(Estimator[SequentialInput]):
    """FQE as an estimator (see module doc).

    Give ``model`` to reuse an FQE fit on the same data (the DR family uses the same Q-model);
    otherwise ``estimate`` fits one on the data it evaluates and keeps it in ``self.model``.
    """

    name = "fqe"
    label = "FQE"
    kind = "sequential"
    uses_weights = False
    uses_q_model = True

    def __init__(
        self,
        settings: FqeSettings | None = None,
        *,
        model: FqeModel | None = None,
        seed: int = 0,
        progress: bool = False,
        warn_min_ess: float = 100.0,
    ) -> None:
        super().__init__(warn_min_ess=warn_min_ess)
        self.settings = settings or FqeSettings()
        self.model = model
        self.seed = seed
        self.progress = progress

    def prepare(self, data: SequentialInput) -> SequentialInput:
        if self.model is None:
            self.model = fit_fqe(data, self.settings, seed=self.seed, progress=self.progress)
        return self.model.attach(data)

    def columns(self, data: SequentialInput) -> np.ndarray:
        return data.v_hat[:, :1]

    def combine(self, totals: np.ndarray, data: SequentialInput) -> np.ndarray:
        return totals[:, 0] / data.n

    def estimate(
        self,
        data: SequentialInput,
        *,
        n_bootstrap: int = 300,
        alpha: float = 0.05,
        seed: int = 0,
    ) -> Estimate:
        result = super().estimate(data, n_bootstrap=n_bootstrap, alpha=alpha, seed=seed)
        if self.model is not None and self.model.diverged:
            result.warnings.insert(
                0,
                f"FQE stopped: {self.model.divergence_reason}; its Q-model cannot be used.",
            )
        backups = self.settings.n_steps // self.settings.target_update_every
        horizon = backups_needed(data.gamma, int(data.lengths.max()))
        if backups < horizon:
            result.warnings.append(
                f"FQE made only {backups} Bellman backups but rewards still weigh 5% or more "
                f"{horizon} steps ahead: value has not propagated back to the start states, so "
                "FQE underestimates long episodes (raise fqe.n_steps or lower "
                "fqe.target_update_every)."
            )
        return result

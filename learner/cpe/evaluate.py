"""Evaluate one policy on logged data with every configured estimator, in one call.

The learner run's single entry point into CPE: it picks the problem shape from the data (one-step
when every episode has one decision), fits the model the model-based estimators need once
(a cross-fitted reward model, or bagged FQE for the target policy) and shares it between DM/FQE
and the doubly robust family (with FQE's members, so that their intervals carry its
uncertainty), then runs the estimators, the diagnostics and the logged value with
the same bootstrap seed so that their intervals are comparable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from learner.cpe.base import Estimator
from learner.cpe.catalog import estimator_by_name
from learner.cpe.config import CpeSettings
from learner.cpe.diagnostics import Diagnostics, diagnose
from learner.cpe.estimate import Estimate
from learner.cpe.fqe import FittedQEvaluation
from learner.cpe.fqe_fit import fit_fqe
from learner.cpe.fqe_model import FqeModel
from learner.cpe.inputs import BanditInput, SequentialInput
from learner.cpe.logged_value import logged_policy_value
from learner.cpe.one_step import SwitchDoublyRobust
from learner.cpe.reward_model import cross_fitted_reward_hat

if TYPE_CHECKING:
    from learner.data import LoggedData

__all__ = ["CpeResult", "build_estimators", "evaluate_policy"]


@dataclass
class CpeResult:
    """Everything CPE says about one policy: estimates by estimator name, diagnostics, the
    logged policy's value, and the input (with its model predictions) for plots."""

    kind: Literal["one_step", "sequential"]
    estimates: dict[str, Estimate]
    diagnostics: Diagnostics
    logged_value: Estimate
    input: BanditInput | SequentialInput
    fqe_model: FqeModel | None = None
    magic_blend: dict[int, float] = field(default_factory=dict)

    @property
    def importance_weights(self) -> np.ndarray:
        """Per decision (one-step) or per episode (sequential), for the weight histogram."""
        if isinstance(self.input, BanditInput):
            return self.input.weights
        return self.input.final_weights


def build_estimators(
    settings: CpeSettings,
    kind: Literal["one_step", "sequential"],
    *,
    fqe_model: FqeModel | None = None,
    progress: bool = False,
) -> list[Estimator[Any]]:
    """The estimators the settings name for this kind, configured from the settings."""
    names = settings.one_step_estimators if kind == "one_step" else settings.sequential_estimators
    out: list[Estimator[Any]] = []
    for name in names:
        cls = estimator_by_name(name)
        if cls is SwitchDoublyRobust:
            out.append(SwitchDoublyRobust(settings.switch_tau, warn_min_ess=settings.warn_min_ess))
        elif cls is FittedQEvaluation:
            out.append(
                FittedQEvaluation(
                    settings.fqe,
                    model=fqe_model,
                    seed=settings.seed,
                    progress=progress,
                    warn_min_ess=settings.warn_min_ess,
                )
            )
        else:
            out.append(cls(warn_min_ess=settings.warn_min_ess))
    return out


def evaluate_policy(
    data: LoggedData,
    target_probs: np.ndarray,
    settings: CpeSettings | None = None,
    *,
    reward_hat: np.ndarray | None = None,
    progress: bool = False,
) -> CpeResult:
    """Estimate the value of the policy whose per-decision probabilities are ``target_probs``.

    ``target_probs`` is ``(n, A)`` aligned with ``data``'s rows and action space. For one-step
    data ``reward_hat`` may pass a reward model's predictions computed before (the reward model
    does not depend on the policy, so the candidate and the incumbent can share one).
    """
    settings = settings or CpeSettings()
    target_probs = np.asarray(target_probs, np.float64)
    if target_probs.shape != (len(data.rewards), data.n_actions):
        raise ValueError(
            f"target_probs: shape {target_probs.shape}, expected "
            f"({len(data.rewards)}, {data.n_actions}) (decisions x actions)"
        )
    fqe_model = None
    if data.is_one_step:
        kind: Literal["one_step", "sequential"] = "one_step"
        if reward_hat is None:
            reward_hat = cross_fitted_reward_hat(
                data.states,
                data.actions,
                data.rewards,
                data.n_actions,
                settings.reward_model,
                settings.seed,
            )
        cpe_input: BanditInput | SequentialInput = BanditInput.from_logged(
            data, target_probs, reward_hat
        )
    else:
        kind = "sequential"
        seq = SequentialInput.from_logged(
            data, target_probs, settings.gamma, weight_clip=settings.weight_clip
        )
        fqe_model = fit_fqe(seq, settings.fqe, seed=settings.seed, progress=progress)
        cpe_input = fqe_model.attach(seq)
    estimates: dict[str, Estimate] = {}
    magic_blend: dict[int, float] = {}
    for estimator in build_estimators(settings, kind, fqe_model=fqe_model, progress=progress):
        estimates[estimator.name] = estimator.estimate(
            cpe_input, n_bootstrap=settings.n_bootstrap, alpha=settings.alpha, seed=settings.seed
        )
        magic_blend = getattr(estimator, "last_blend", magic_blend)
    return CpeResult(
        kind=kind,
        estimates=estimates,
        diagnostics=diagnose(cpe_input, settings),
        logged_value=logged_policy_value(
            cpe_input, n_bootstrap=settings.n_bootstrap, alpha=settings.alpha, seed=settings.seed
        ),
        input=cpe_input,
        fqe_model=fqe_model,
        magic_blend=magic_blend,
    )

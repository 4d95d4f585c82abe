"""Counterfactual policy evaluation: how good would a policy have been on the logged data?

One class per estimator behind one interface (:class:`Estimator`), Open Bandit Pipeline style:
one-step IPS, SNIPS, DM, DR, SNDR, Switch-DR; sequential per-decision IS, weighted PDIS,
sequential DR, weighted DR, MAGIC and FQE. Each returns an :class:`Estimate` (value, bootstrap
interval, value normalized by the logged policy's). :func:`diagnose` says whether the
importance weights can be trusted; :func:`evaluate_policy` runs everything the settings ask for.
"""

from learner.cpe.base import Estimator, EstimatorKind
from learner.cpe.config import CpeSettings, FqeSettings, RewardModelSettings
from learner.cpe.diagnostics import Diagnostics, diagnose, effective_sample_size
from learner.cpe.estimate import Estimate
from learner.cpe.evaluate import CpeResult, build_estimators, evaluate_policy
from learner.cpe.fqe import FittedQEvaluation, FqeModel, fit_fqe
from learner.cpe.inputs import BanditInput, SequentialInput
from learner.cpe.logged_value import LOGGED, logged_policy_value
from learner.cpe.one_step import (
    DirectMethod,
    DoublyRobust,
    InverseProbabilityScoring,
    SelfNormalizedDoublyRobust,
    SelfNormalizedIPS,
    SwitchDoublyRobust,
)
from learner.cpe.registry import ESTIMATORS, estimator_label
from learner.cpe.reward_model import RewardModel, cross_fitted_reward_hat, fit_reward_model
from learner.cpe.sequential import (
    MAGIC,
    PerDecisionIS,
    SequentialDoublyRobust,
    WeightedDoublyRobust,
    WeightedPerDecisionIS,
)

__all__ = [
    "ESTIMATORS",
    "LOGGED",
    "MAGIC",
    "BanditInput",
    "CpeResult",
    "CpeSettings",
    "Diagnostics",
    "DirectMethod",
    "DoublyRobust",
    "Estimate",
    "Estimator",
    "EstimatorKind",
    "FittedQEvaluation",
    "FqeModel",
    "FqeSettings",
    "InverseProbabilityScoring",
    "PerDecisionIS",
    "RewardModel",
    "RewardModelSettings",
    "SelfNormalizedDoublyRobust",
    "SelfNormalizedIPS",
    "SequentialDoublyRobust",
    "SequentialInput",
    "SwitchDoublyRobust",
    "WeightedDoublyRobust",
    "WeightedPerDecisionIS",
    "build_estimators",
    "cross_fitted_reward_hat",
    "diagnose",
    "effective_sample_size",
    "estimator_label",
    "evaluate_policy",
    "fit_fqe",
    "fit_reward_model",
    "logged_policy_value",
]

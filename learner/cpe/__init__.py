"""Counterfactual policy evaluation: how good would a policy have been on the logged data?

One class per estimator behind one interface (:class:`Estimator`), Open Bandit Pipeline style:
one-step IPS, SNIPS, DM, DR, SNDR, Switch-DR; sequential per-decision IS, weighted PDIS,
sequential DR, weighted DR, MAGIC and FQE. Each returns an :class:`Estimate` (value, bootstrap
interval, value normalized by the logged policy's). :func:`diagnose` says whether the
importance weights can be trusted; :func:`evaluate_policy` runs everything the settings ask for.

Names are imported on first use (see ``services.lazy_exports``): the config sections are
imported by ``services.settings`` and must not pull torch into every CLI command.
"""

from services.lazy_exports import lazy_exports

_WHERE = {
    "BanditInput": "learner.cpe.inputs",
    "CpeResult": "learner.cpe.evaluate",
    "CpeSettings": "learner.cpe.config",
    "Diagnostics": "learner.cpe.diagnostics",
    "DirectMethod": "learner.cpe.one_step",
    "DoublyRobust": "learner.cpe.one_step",
    "ESTIMATORS": "learner.cpe.registry",
    "Estimate": "learner.cpe.estimate",
    "Estimator": "learner.cpe.base",
    "EstimatorKind": "learner.cpe.base",
    "FittedQEvaluation": "learner.cpe.fqe",
    "FqeModel": "learner.cpe.fqe",
    "FqeSettings": "learner.cpe.config",
    "InverseProbabilityScoring": "learner.cpe.one_step",
    "LOGGED": "learner.cpe.logged_value",
    "MAGIC": "learner.cpe.sequential",
    "PerDecisionIS": "learner.cpe.sequential",
    "RewardModel": "learner.cpe.reward_model",
    "RewardModelSettings": "learner.cpe.config",
    "SelfNormalizedDoublyRobust": "learner.cpe.one_step",
    "SelfNormalizedIPS": "learner.cpe.one_step",
    "SequentialDoublyRobust": "learner.cpe.sequential",
    "SequentialInput": "learner.cpe.inputs",
    "SwitchDoublyRobust": "learner.cpe.one_step",
    "WeightedDoublyRobust": "learner.cpe.sequential",
    "WeightedPerDecisionIS": "learner.cpe.sequential",
    "build_estimators": "learner.cpe.evaluate",
    "cross_fitted_reward_hat": "learner.cpe.reward_model",
    "diagnose": "learner.cpe.diagnostics",
    "effective_sample_size": "learner.cpe.diagnostics",
    "estimator_label": "learner.cpe.registry",
    "evaluate_policy": "learner.cpe.evaluate",
    "fit_fqe": "learner.cpe.fqe",
    "fit_reward_model": "learner.cpe.reward_model",
    "logged_policy_value": "learner.cpe.logged_value",
}

__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)

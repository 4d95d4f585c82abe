"""Configuration of counterfactual policy evaluation (CPE).

The algorithm settings (which estimators, how many bootstrap resamples, the discount) are kept
apart from the settings of the models some estimators fit (the reward model of DM/DR, the
Q-model of FQE), d3rlpy-style, so that a deployment can change one without touching the other.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

__all__ = [
    "DEFAULT_ONE_STEP_ESTIMATORS",
    "DEFAULT_SEQUENTIAL_ESTIMATORS",
    "CpeSettings",
    "FqeSettings",
    "RewardModelSettings",
]

DEFAULT_ONE_STEP_ESTIMATORS = ["ips", "snips", "dm", "dr", "sndr", "switch_dr"]
DEFAULT_SEQUENTIAL_ESTIMATORS = ["pdis", "wpdis", "seq_dr", "wdr", "magic", "fqe"]


class RewardModelSettings(BaseModel):
    """The reward model q(x, a) of the one-step DM / DR family.

    ``linear`` is a ridge regression per action on standardized features: closed form, exact
    and fast; ``mlp`` is a small torch network with one output per action for rewards that
    are not linear in the features. Predictions are cross-fitted (each decision is predicted
    by a model that did not see it) so that DR's correction term is not fitted to its own noise.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["linear", "mlp"] = "linear"
    ridge: float = Field(default=1.0, ge=0, description="L2 penalty of the linear model.")
    hidden_sizes: list[int] = Field(default_factory=lambda: [64, 64])
    epochs: int = Field(default=30, ge=1)
    batch_size: int = Field(default=256, ge=1)
    learning_rate: float = Field(default=1e-3, gt=0)
    cross_fit_folds: int = Field(default=2, ge=1, description="1 = fit and predict on all data.")


class FqeSettings(BaseModel):
    """Fitted Q evaluation: a torch Q-network regressed on r + gamma * E_pi[Q_target(s', .)].

    The target network is copied every ``target_update_every`` steps, so ``n_steps /
    target_update_every`` is the number of Bellman backups: it must exceed the effective
    horizon of the episodes for the value to propagate from their ends to their starts.

    ``members`` Q-networks are fitted side by side, each on its own episode bootstrap resample
    (bagged FQE): the spread between them is the model's uncertainty, which the intervals of
    FQE and the DR family include (:mod:`learner.cpe.model_replicates`).
    """

    model_config = ConfigDict(extra="forbid")

    hidden_sizes: list[int] = Field(default_factory=lambda: [64, 64])
    members: int = Field(
        default=10,
        ge=1,
        description="Bagged Q-networks, each fitted on an episode bootstrap resample; their "
        "spread is the model's uncertainty in the intervals (t interval with members - 1 degrees "
        "of freedom). 10: the t quantile is 2.26 (1.96 with infinitely many), 5 would give 2.78 "
        "and noisy widths, 20 gives 2.09 at twice the cost. 1 fits one model on all the data "
        "and its intervals ignore the model's uncertainty.",
    )
    n_steps: int = Field(default=9000, ge=1)
    target_update_every: int = Field(
        default=30,
        ge=1,
        description="Steps between Bellman backups. The default 9000 / 30 = 300 backups "
        "propagates rewards ~3 effective horizons (3 / (1 - 0.99)) back to the start states.",
    )
    batch_size: int = Field(default=256, ge=1)
    learning_rate: float = Field(default=1e-3, gt=0)
    grad_clip: float = Field(default=10.0, gt=0)
    clip_targets: bool = Field(
        default=True,
        description="Clip Bellman targets to the values the logged reward range allows "
        "([min(0, r_min), max(0, r_max)] / (1 - gamma)): with frequent backups an unclipped "
        "fit can run away far beyond any possible return.",
    )
    detect_time_limit: bool = Field(
        default=True,
        description="When several episodes are cut at exactly the longest logged length (a "
        "time limit), estimate the value up to that limit: the step's position becomes an "
        "input and the limit ends the episode (learner.cpe.horizon). Off: every cut is a log "
        "cut and the value is the one without a limit.",
    )


class CpeSettings(BaseModel):
    """Which estimators run, their bootstrap, and when their diagnostics warn."""

    model_config = ConfigDict(extra="forbid")

    gamma: float = Field(
        default=0.99, ge=0, le=1, description="Discount of the evaluated (sequential) value."
    )
    n_bootstrap: int = Field(default=300, ge=0, description="Resamples for the intervals.")
    alpha: float = Field(default=0.05, gt=0, lt=1, description="1 - confidence level.")
    seed: int = 0
    one_step_estimators: list[str] = Field(
        default_factory=lambda: list(DEFAULT_ONE_STEP_ESTIMATORS)
    )
    sequential_estimators: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SEQUENTIAL_ESTIMATORS)
    )
    weight_clip: float | None = Field(
        default=None,
        gt=0,
        description="Sequential data: clip every per-decision cumulative importance weight at "
        "this value (None: no clipping). Clipped estimates carry a warning saying so.",
    )
    switch_tau: float = Field(
        default=20.0, gt=0, description="Switch-DR: weights above this use the model only."
    )
    support_tolerance: float = Field(
        default=1e-6, ge=0, description="Probability mass below this counts as none."
    )
    warn_min_ess: float = Field(default=100.0, ge=0)
    warn_min_ess_fraction: float = Field(default=0.01, ge=0, le=1)
    warn_max_weight_share: float = Field(default=0.1, gt=0, le=1)
    warn_unsupported_share: float = Field(default=0.01, ge=0, le=1)
    reward_model: RewardModelSettings = Field(default_factory=RewardModelSettings)
    fqe: FqeSettings = Field(default_factory=FqeSettings)

    @field_validator("one_step_estimators", "sequential_estimators")
    @classmethod
    def _known_estimators(cls, names: list[str], info: ValidationInfo) -> list[str]:
        # Imported here: the estimator catalog imports this module (and torch).
        from learner.cpe.catalog import estimator_by_name

        kind = "one_step" if info.field_name == "one_step_estimators" else "sequential"
        for name in names:
            estimator_by_name(name, kind, field=str(info.field_name))
        return names

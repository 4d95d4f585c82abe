"""Trainer settings: which algorithm, its hyper-parameters, and how the served policy explores.

Algorithm configuration is kept apart from the implementation (as in d3rlpy), so a run's
settings can be logged, diffed and replayed without importing torch.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ExplorationSettings", "TrainerSettings"]


class ExplorationSettings(BaseModel):
    """How the served policy stays stochastic, so that future CPE has support.

    Probabilities are ``(1 - e) * softmax(Q / temperature) + e * uniform`` over the possible
    actions, where ``e = max(epsilon, min_propensity * n_possible)``: every possible action gets
    at least ``min_propensity``.
    """

    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(default=0.05, gt=0, description="Softmax temperature on Q.")
    epsilon: float = Field(default=0.02, ge=0, le=1, description="Uniform share of the mass.")
    min_propensity: float = Field(
        default=0.005, ge=0, lt=1, description="Floor of every possible action's probability."
    )


class TrainerSettings(BaseModel):
    """Hyper-parameters of the one-step (bandit) and sequential (Double DQN) trainers."""

    model_config = ConfigDict(extra="forbid")

    algorithm: Literal["auto", "bandit", "dqn", "cql", "bcq"] = Field(
        default="auto",
        description="A name in learner.trainers.algorithms.ALGORITHMS, or auto: bandit when "
        "every episode has one decision, else cql.",
    )
    hidden_sizes: list[int] = Field(default_factory=lambda: [256, 256], min_length=1)
    ensemble_size: int = Field(
        default=3,
        ge=1,
        description="Q-networks trained side by side, each on its own mini-batches and with "
        "its own target network; the policy acts on the mean of their Q-values. Offline "
        "CartPole-v1 from 2,000 uniform-random episodes, fresh data seeds 10-19: greedy "
        "return >= 195 on 9 of 10 with 3 (mean 426, 6 of 10 at >= 475), 9 of 10 with 1 "
        "(mean 298); 3 costs about 2.5x the training time of 1.",
    )
    batch_size: int = Field(default=256, ge=1)
    steps: int = Field(
        default=12_000,
        ge=1,
        description="Gradient steps. 12,000 x 256 with cql_alpha 0.3 and the learning rate "
        "decayed to 10%: greedy return >= 195 on 4 of 5 fresh data seeds (min 187, mean 336) "
        "on offline CartPole-v1 from 2,000 uniform-random episodes, ~36 s on 1 thread; "
        "8,000 steps, alpha 1, constant lr gave 2 of 5 (min 75).",
    )
    learning_rate: float = Field(default=1e-3, gt=0)
    final_lr_fraction: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="The learning rate decays linearly to this share of learning_rate by the "
        "last step (1 = constant): a settling last iterate instead of one caught mid-swing. "
        "0.1 with 12,000 steps and cql_alpha 0.3 was the most seed-robust CartPole setting "
        "(see steps).",
    )
    gamma: float = Field(default=0.99, ge=0, lt=1)
    target_update: Literal["soft", "hard"] = "hard"
    tau: float = Field(default=0.005, gt=0, le=1, description="Soft target update rate.")
    target_update_interval: int = Field(
        default=50,
        ge=1,
        description="Hard update period (steps / interval = Bellman backups: 160 by default).",
    )
    huber_delta: float = Field(default=1.0, gt=0)
    grad_clip_norm: float = Field(default=10.0, gt=0)
    cql_alpha: float = Field(
        default=0.3,
        ge=0,
        description="Weight of the CQL regularizer. It pulls Q toward the logged (behaviour) "
        "policy's values: at 1.0 on uniform-random CartPole logs Q stayed near the random "
        "policy's (~25) and greedy return was >= 195 on 2 of 5 data seeds; 0.3 lets Q reach "
        "~85 and gave 3 of 5 alone, 4 of 5 with 12,000 decayed steps.",
    )
    bcq_threshold: float = Field(
        default=0.3,
        gt=0,
        le=1,
        description="Actions below this share of the most likely "
        "logged action's probability are not considered (discrete BCQ).",
    )
    seed: int = 0
    deterministic: bool = Field(default=True, description="torch deterministic algorithms.")
    num_threads: int | None = Field(
        default=1,
        ge=1,
        description="torch intra-op threads while training; None keeps torch's default. One by "
        "default: these MLPs on mini-batches of a few hundred rows gain little from more, and "
        "on a busy machine spinning OpenMP threads cost a lot (measured on the 2-core dev "
        "machine at load 4: 88,000 samples/s on 1 thread, 1,100 on torch's default 2).",
    )
    log_every: int = Field(default=100, ge=1, description="Steps between history entries.")
    q_limit_factor: float = Field(
        default=10.0,
        gt=1,
        description="Diverged when max |Q| exceeds this many times the "
        "largest value the rewards allow (max |r| / (1 - gamma)).",
    )
    clip_targets: bool = Field(
        default=True,
        description="Clip Bellman targets to the returns the logged rewards allow "
        "([min(0, r_min), max(0, r_max)] / (1 - gamma)); extrapolated Q-values beyond "
        "any possible return are then not bootstrapped on.",
    )
    warm_start: bool = Field(default=True, description="Start from the incumbent's weights.")
    exploration: ExplorationSettings = Field(default_factory=ExplorationSettings)

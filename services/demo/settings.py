"""What the closed-loop demo runs: environment, traffic sizes, rollout plan, time budget.

Defaults are per environment (:func:`demo_settings`): CartPole needs few but long episodes and
a return target (195, the classic "solved" bar); the recommendation bandit needs many one-step
episodes and is judged by its exact true policy value.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from schemas.names import POLICY_NAME_PATTERN
from services.simulator.recommendation_env import ENV_ID as BANDIT_ENV_ID

__all__ = ["BANDIT_ENV_ID", "CARTPOLE_ENV_ID", "DemoSettings", "demo_settings"]

CARTPOLE_ENV_ID = "CartPole-v1"


class DemoSettings(BaseModel):
    """One closed-loop demo run."""

    model_config = ConfigDict(extra="forbid")

    env_id: str = CARTPOLE_ENV_ID
    policy_name: str = Field(default="cartpole", pattern=POLICY_NAME_PATTERN)
    seed: int = 0
    cold_start_episodes: int = Field(default=1_000, ge=1, description="Uniform-policy episodes.")
    batch_episodes: int = Field(
        default=200, ge=1, description="Episodes of traffic between two rollout ticks."
    )
    max_rounds: int = Field(
        default=2,
        ge=1,
        description="learn → gate → rollout rounds; the second one must beat the first's winner.",
    )
    max_batches_per_rollout: int = Field(default=12, ge=1)
    rollout_steps: list[int] = Field(default_factory=lambda: [5, 25, 50, 100])
    min_episodes: int = Field(
        default=30, ge=1, description="Episodes per side before a rollout step may advance."
    )
    target_return: float | None = Field(
        default=195.0,
        description="The served policy's true mean return the demo must reach (exit 1 if not).",
    )
    time_budget_s: float = Field(
        default=480.0, gt=0, description="No new round starts after this much wall time."
    )
    learner: dict[str, Any] = Field(
        default_factory=dict,
        description="Overrides of the learner settings for the demo's runs, e.g. "
        "{'trainer': {'steps': 2000}}; validated as LearnerSettings.",
    )


def demo_settings(env_id: str, **overrides: object) -> DemoSettings:
    """The defaults that suit ``env_id``, with ``overrides`` on top."""
    if env_id == BANDIT_ENV_ID:
        base: dict[str, object] = {
            "env_id": env_id,
            "policy_name": "recommendation",
            "cold_start_episodes": 20_000,
            "batch_episodes": 4_000,
            "min_episodes": 500,
            "target_return": None,
            # A reward model on a few thousand rows converges long before the default steps.
            "learner": {"trainer": {"steps": 2_000}},
        }
    elif env_id == CARTPOLE_ENV_ID:
        base = {"env_id": env_id}
    else:
        raise ValueError(f"env={env_id!r}: the demo runs {CARTPOLE_ENV_ID} or {BANDIT_ENV_ID}")
    base.update({k: v for k, v in overrides.items() if v is not None})
    return DemoSettings.model_validate(base)

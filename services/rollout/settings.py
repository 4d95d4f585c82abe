"""Settings of the staged rollout (``[rollout]`` in the config, ``POLICYLOOP_ROLLOUT__*``).

The timeline it judges is the shared ``[tables]`` section (:mod:`services.storage_settings`),
and the registry and policy name are the learner's section: the command line passes them to
the controller, so that the rollout always looks at the same data and registry as the learner.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.rollout.plan import parse_steps

__all__ = ["RolloutSettings"]


class RolloutSettings(BaseModel):
    """How the controller moves traffic and what evidence it asks for."""

    model_config = ConfigDict(extra="forbid")

    rollout_log_uri: str = Field(
        default=".policyloop/tables/rollout_log",
        description="Delta table with one row per rollout decision and its evidence.",
    )
    steps: list[float] = Field(
        default_factory=lambda: [5.0, 25.0, 50.0, 100.0],
        description="Percent of episodes routed to the candidate at each step; reaching 100 "
        "promotes it.",
    )
    min_episodes: int = Field(
        default=200,
        ge=1,
        description="Complete episodes each side needs within a step before it may advance.",
    )
    alpha: float = Field(
        default=0.05, gt=0, lt=1, description="Level of the one-sided 'candidate is worse' test."
    )
    tolerance: float = Field(
        default=0.0,
        ge=0,
        description="Relative margin: the candidate counts as worse only when its mean return "
        "is significantly below (1 - tolerance) x the incumbent's (for positive means).",
    )
    min_test_episodes: int = Field(
        default=30,
        ge=2,
        description="Complete episodes each side needs before a rollback can be decided (the "
        "test uses the normal approximation, sound from about 30 episodes per side).",
    )
    every_s: float = Field(default=60.0, gt=0, description="Tick interval of 'rollout watch'.")

    @field_validator("steps")
    @classmethod
    def _valid_steps(cls, steps: list[float]) -> list[float]:
        parse_steps(steps)
        return steps

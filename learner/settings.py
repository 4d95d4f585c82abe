"""Settings of the learner: data window, trainer, CPE and the gate."""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = ["LearnerSettings"]


class LearnerSettings(BaseModel):
    """What the scheduled learner reads, trains and requires before publishing."""

    timeline_uri: str = ".policyloop/tables/timeline"
    gate_log_uri: str = ".policyloop/tables/gate_log"
    registry_uri: str = ".policyloop/registry"
    policy_name: str = "default"
    reports_dir: str = ".policyloop/reports"
    seed: int = 0
    window_days: int | None = Field(default=None, ge=1)
    window_rows: int | None = Field(default=None, ge=1)
    eval_fraction: float = Field(default=0.3, gt=0, lt=1)

"""Settings of the learner: where its registry and outputs live, and each part's section.

The sections belong to the parts that use them (d3rlpy-style: algorithm configuration apart
from implementation) and are only composed here: ``preprocessing`` (feature identification and
normalization), ``trainer`` (algorithm, hyper-parameters, exploration of the served policy),
``selection`` (variants of the trainer trained side by side and chosen by held-out CPE),
``cpe`` (estimators, bootstrap, diagnostics thresholds) and ``gate`` (the publish rule). In the
TOML file they are ``[learner.trainer]``, ``[learner.cpe]``, ...; in the environment e.g.
``POLICYLOOP_LEARNER__TRAINER__STEPS=2000``. The timeline it reads is not here: the sessionizer
writes it, so its location is the shared ``[tables]`` section (:mod:`services.storage_settings`),
given to a run as an argument.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from learner.cpe.config import CpeSettings
from learner.data.limits import (
    DEFAULT_MAX_ACTIONS,
    DEFAULT_MAX_STATE_FEATURES,
    DEFAULT_READ_BATCH_ROWS,
)
from learner.gate_settings import GateSettings
from learner.preprocessing.config import PreprocessingSettings
from learner.selection import SelectionSettings
from learner.trainers.config import TrainerSettings
from schemas.names import POLICY_NAME_PATTERN

__all__ = ["LearnerSettings"]


class LearnerSettings(BaseModel):
    """What the scheduled learner reads, trains and requires before publishing."""

    model_config = ConfigDict(extra="forbid")

    gate_log_uri: str = ".policyloop/tables/gate_log"
    registry_uri: str = ".policyloop/registry"
    policy_name: str = Field(default="default", pattern=POLICY_NAME_PATTERN)
    reports_dir: str = ".policyloop/reports"
    seed: int = Field(default=0, description="Seed of the train/eval split.")
    window_days: int | None = Field(default=None, ge=1)
    window_rows: int | None = Field(default=None, ge=1)
    max_state_features: int = Field(
        default=DEFAULT_MAX_STATE_FEATURES,
        ge=1,
        description="Most distinct state keys densified (each is a float32 column of every "
        "row); more fails the run, naming the table and the count, before allocating.",
    )
    max_actions: int = Field(
        default=DEFAULT_MAX_ACTIONS,
        ge=1,
        description="Most distinct possible_actions; more fails the run before allocating.",
    )
    read_batch_rows: int = Field(
        default=DEFAULT_READ_BATCH_ROWS,
        ge=1,
        description="Timeline rows decoded at a time (fewer when the state maps are wide).",
    )
    eval_fraction: float = Field(default=0.3, gt=0, lt=1)
    min_eval_episodes: int = Field(
        default=10, ge=1, description="Fewer eval episodes than this: reject without CPE."
    )
    pushgateway: str | None = Field(
        default=None, description="Pushgateway URL; None writes a textfile into reports_dir."
    )
    announce: bool = Field(
        default=True, description="Announce published versions on <prefix>.policy-updates."
    )
    promote: bool = Field(
        default=True,
        description="Swap CURRENT to a version the gate publishes. False stores, announces "
        "(promoted: false) and logs it but leaves CURRENT, for a staged `rollout start`.",
    )
    announce_timeout_s: float = Field(default=10.0, gt=0)
    progress: bool = Field(default=True, description="Progress bars and stage lines on stderr.")
    preprocessing: PreprocessingSettings = Field(default_factory=PreprocessingSettings)
    trainer: TrainerSettings = Field(default_factory=TrainerSettings)
    selection: SelectionSettings = Field(default_factory=SelectionSettings)
    cpe: CpeSettings = Field(default_factory=CpeSettings)
    gate: GateSettings = Field(default_factory=GateSettings)

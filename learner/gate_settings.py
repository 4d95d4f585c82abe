"""What a candidate must prove before it is published: the gate's settings, apart from the rule.

Why a module of its own: the settings are part of what every command line loads
(``learner.settings``), the rule (:mod:`learner.gate`) only what a learner run executes; and,
as in d3rlpy, an algorithm's configuration reads best apart from its implementation. The
checks each setting drives are described in :mod:`learner.gate`'s module doc.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

__all__ = ["MODEL_OF", "GateSettings"]

#: The model estimate each doubly robust estimator corrects: when importance weights carry
#: no information (few effective samples) the decision rests on this model's estimate.
MODEL_OF = {
    "dr": "dm",
    "sndr": "dm",
    "switch_dr": "dm",
    "seq_dr": "fqe",
    "wdr": "fqe",
    "magic": "fqe",
}


class GateSettings(BaseModel):
    """What a candidate must prove before it is published (see module doc)."""

    model_config = ConfigDict(extra="forbid")

    one_step_estimator: str = Field(default="dr", description="Gates one-step (bandit) runs.")
    sequential_estimator: str = Field(default="wdr", description="Gates sequential runs.")
    margin: float = Field(
        default=0.02, ge=0, description="How much the lower bound must exceed each baseline."
    )
    margin_kind: Literal["relative", "absolute"] = Field(
        default="relative",
        description="relative: margin x |baseline| (0.02 = 2%); absolute: in reward units.",
    )
    beat_incumbent: bool = Field(
        default=True, description="Also require beating the incumbent's estimate."
    )
    min_effective_sample_size: float = Field(
        default=100.0,
        ge=0,
        description="Below this, importance-weighted estimates are uninformative: they neither "
        "veto nor support, and the decision rests on the model estimate (see model_fallback).",
    )
    max_unsupported_share: float = Field(
        default=0.05, ge=0, le=1, description="Share of decisions with mass off the log's support."
    )
    max_importance_weight: float | None = Field(
        default=None,
        gt=0,
        description="Reject when any importance weight exceeds this (while the decision rests "
        "on importance weights).",
    )
    model_fallback: bool = Field(
        default=True,
        description="With too few effective samples, let the model estimate a doubly robust "
        "gate estimator corrects (DM / FQE) decide alone when it is trusted (finite, no "
        "doubts); False rejects on too few effective samples.",
    )

    @model_validator(mode="before")
    @classmethod
    def _removed(cls, values: Any) -> Any:
        """``max_model_disagreement`` bounded how far the model could lie from a weighted
        estimate with too few effective samples; such weights no longer veto, so it is gone.
        Settings that still name it load, with a warning."""
        if isinstance(values, dict) and "max_model_disagreement" in values:
            warnings.warn(
                "gate.max_model_disagreement is no longer used (uninformative importance "
                "weights no longer veto the model); remove it from the settings",
                FutureWarning,
                stacklevel=2,
            )
            values = {k: v for k, v in values.items() if k != "max_model_disagreement"}
        return values

    @field_validator("one_step_estimator", "sequential_estimator")
    @classmethod
    def _known(cls, name: str, info: ValidationInfo) -> str:
        from learner.cpe.catalog import estimator_by_name

        kind = "one_step" if info.field_name == "one_step_estimator" else "sequential"
        estimator_by_name(name, kind, field=str(info.field_name))
        return name

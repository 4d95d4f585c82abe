"""Settings of feature identification and normalization (ReAgent-style)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["FEATURE_TYPES", "FeatureType", "PreprocessingSettings"]

#: ``binary`` → 0/1; ``probability`` → logit; ``enum`` → one-hot over the seen values;
#: ``continuous`` → standardized; ``boxcox`` → Box-Cox then standardized; ``quantile`` →
#: empirical CDF mapped to [-1, 1]; ``identity`` → passed through (missing → default).
FeatureType = Literal[
    "binary", "probability", "enum", "continuous", "boxcox", "quantile", "identity"
]
FEATURE_TYPES: tuple[str, ...] = (
    "binary",
    "probability",
    "enum",
    "continuous",
    "boxcox",
    "quantile",
    "identity",
)


class PreprocessingSettings(BaseModel):
    """How raw state features are typed and scaled before they reach a network."""

    model_config = ConfigDict(extra="forbid")

    sample_size: int = Field(
        default=100_000, ge=10, description="Rows sampled to identify types and fit parameters."
    )
    max_enum_values: int = Field(
        default=10, ge=2, description="Integer features with at most this many values are enums."
    )
    skew_threshold: float = Field(
        default=2.0, gt=0, description="|skewness| above which a continuous feature is reshaped."
    )
    skewed_transform: Literal["boxcox", "quantile"] = Field(
        default="boxcox",
        description="Reshaping for skewed features; Box-Cox falls back to quantile when it "
        "cannot bring the skew under the threshold.",
    )
    quantiles: int = Field(default=20, ge=2, le=1000, description="Quantile boundaries.")
    clamp: float = Field(
        default=6.0, gt=0, description="Normalized values are clamped to [-clamp, clamp]."
    )
    seed: int = 0
    overrides: dict[str, FeatureType] = Field(
        default_factory=dict, description="Feature name → type, bypassing identification."
    )
    defaults: dict[str, float] = Field(
        default_factory=dict,
        description="Feature name → raw value used when the feature is missing (default: the "
        "median, or the most frequent value for binary and enum features).",
    )

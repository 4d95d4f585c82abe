"""Feature identification and normalization (fitted in training, embedded in serving)."""

from learner.preprocessing.config import FEATURE_TYPES, FeatureType, PreprocessingSettings
from learner.preprocessing.normalizer import (
    FeatureSpec,
    Normalizer,
    NormalizerModule,
    fit_normalizer,
    identify_type,
)

__all__ = [
    "FEATURE_TYPES",
    "FeatureSpec",
    "FeatureType",
    "Normalizer",
    "NormalizerModule",
    "PreprocessingSettings",
    "fit_normalizer",
    "identify_type",
]

"""Feature identification and normalization (fitted in training, embedded in serving).

Names are imported on first use (see ``services.lazy_exports``): the config sections are
imported by ``services.settings`` and must not pull torch into every CLI command.
"""

from services.lazy_exports import lazy_exports

_WHERE = {
    "FEATURE_TYPES": "learner.preprocessing.config",
    "FeatureSpec": "learner.preprocessing.normalizer",
    "FeatureType": "learner.preprocessing.config",
    "Normalizer": "learner.preprocessing.normalizer",
    "NormalizerModule": "learner.preprocessing.normalizer",
    "PreprocessingSettings": "learner.preprocessing.config",
    "fit_normalizer": "learner.preprocessing.normalizer",
    "identify_type": "learner.preprocessing.normalizer",
}

__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)

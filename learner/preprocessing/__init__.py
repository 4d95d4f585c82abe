"""Feature identification and normalization (fitted in training, embedded in serving).

``normalizer`` fits and applies them (``fit_normalizer``, ``Normalizer``, ``NormalizerModule``,
``FeatureSpec``, ``identify_type``); ``config`` holds ``PreprocessingSettings`` and the feature
types.

Import from the modules: this file stays empty so that the command line, which composes the
learner's settings from ``config``, does not import torch.
"""

__all__: list[str] = []

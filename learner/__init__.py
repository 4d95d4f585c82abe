"""The scheduled learner: read the timeline, train, prove the candidate with CPE, gate, publish.

Subpackages: ``data`` (pinned timeline snapshot, dense arrays, split), ``preprocessing``
(feature identification and normalization), ``trainers`` (bandit reward model, offline Double
DQN with CQL/BCQ), ``serving`` (TorchScript ``policy.pt``), ``cpe`` (estimators and
diagnostics), ``gate`` (the publish rule), ``registry`` (versions, CURRENT/ROLLOUT),
``gate_log``, ``metrics``, ``report`` and ``pipeline`` (one run end to end; ``run_once``).
Nothing is imported here, so importing the settings does not import torch through this file.
"""

__all__: list[str] = []

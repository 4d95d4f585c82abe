"""The scheduled learner: read the timeline, train, prove the candidate with CPE, gate, publish.

Subpackages: ``data`` (pinned timeline snapshot, dense arrays, split), ``preprocessing``
(feature identification and normalization), ``trainers`` (bandit reward model, offline Double
DQN with CQL/BCQ as algorithm classes), ``serving`` (export to TorchScript ``policy.pt``),
``cpe`` (estimators and diagnostics), ``gate`` (the publish rule), ``gate_log``, ``metrics``,
``report`` and ``run`` (one run end to end, stage by stage; ``run_once``). The policy registry
is a part of its own (``services/registry``).
Nothing is imported here, so importing the settings does not import torch through this file.
"""

__all__: list[str] = []

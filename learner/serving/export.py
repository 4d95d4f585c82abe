"""``policy.pt``: exporting the served policy as TorchScript, preprocessing included.

Serving must not need the learner's Python code, and must compute exactly what CPE evaluated.
The exported module wraps the trainer's own :class:`~learner.trainers.policy.PolicyModule`
(normalizer + Q-network + exploration) and adds the raw-state-map entry point the SDK calls:

* ``forward(state: Dict[str, float], possible: List[bool]) -> List[float]`` — one decision;
  features missing from ``state`` take the normalizer's default, unknown keys are ignored;
* ``probs_dense(states (n, F) float32, mask (n, A) bool) -> (n, A)`` — batches, for CPE;
* ``q_values(states (n, F)) -> (n, A)``; attributes ``feature_names`` and ``actions``.

Loading the bytes back is the registry's job, in one place for every reader:
:func:`services.registry.load_policy` (no pickle of Python objects; the registry checks the
sha256 against the manifest before it loads a stored version).
"""

import io
import json

import torch
from torch import nn

from learner.preprocessing.normalizer import Normalizer
from learner.trainers.policy import PolicyModule, StochasticPolicy
from services.registry.loader import torchscript_is_the_contract

__all__ = ["EXTRA_FILE", "ServedPolicy", "export_policy"]

#: Name of the JSON description stored next to the TorchScript code inside ``policy.pt``.
EXTRA_FILE = "policyloop.json"


class ServedPolicy(nn.Module):
    """Raw state map → probabilities over ``actions`` (see module doc)."""

    # Class-body annotations (evaluated: this module has no ``from __future__ import
    # annotations``) type the lists for TorchScript even when empty.
    feature_names: list[str]
    actions: list[str]

    def __init__(self, policy: PolicyModule, feature_names: list[str], actions: list[str]) -> None:
        super().__init__()
        self.policy = policy
        self.feature_names = list(feature_names)
        self.actions = list(actions)
        self.n_features = len(feature_names)
        self.n_actions = len(actions)

    def forward(self, state: dict[str, float], possible: list[bool]) -> list[float]:
        if len(possible) != self.n_actions:
            raise ValueError(
                "possible: needs one flag per action of the manifest (" + str(self.n_actions) + ")"
            )
        values: list[float] = []
        for name in self.feature_names:
            values.append(state.get(name, float("nan")))
        x = torch.tensor(values, dtype=torch.float32).reshape(1, self.n_features)
        mask = torch.tensor(possible, dtype=torch.bool).reshape(1, self.n_actions)
        # Module.__call__ is typed Any, a list[float] here (TorchScript: the ignore ends the line)
        return self.policy(x, mask)[0].tolist()  # type: ignore[no-any-return]

    @torch.jit.export
    def probs_dense(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # Module.__call__ is typed Any, a Tensor here (TorchScript wants the ignore to end the line)
        return self.policy(states.to(torch.float32), mask.to(torch.bool))  # type: ignore[no-any-return]

    @torch.jit.export
    def q_values(self, states: torch.Tensor) -> torch.Tensor:
        return self.policy.q_values(states.to(torch.float32))


def export_policy(
    policy: StochasticPolicy,
    normalizer: Normalizer,
    feature_names: list[str],
    actions: list[str],
) -> bytes:
    """The TorchScript bytes of ``policy`` (write them to ``policy.pt``)."""
    if list(feature_names) != policy.feature_names:
        raise ValueError("feature_names: differ from the names the policy was trained on")
    if list(feature_names) != normalizer.feature_names:
        raise ValueError("feature_names: differ from the normalizer's features")
    if list(actions) != policy.actions:
        raise ValueError("actions: differ from the actions the policy was trained on")
    served = ServedPolicy(policy.module, feature_names, actions).eval()
    with torchscript_is_the_contract():
        scripted = torch.jit.script(served)
    extra = json.dumps(
        {
            "feature_names": list(feature_names),
            "actions": list(actions),
            "normalization": normalizer.to_manifest(),
            "exploration": policy.exploration,
        },
        sort_keys=True,
    )
    buffer = io.BytesIO()
    with torchscript_is_the_contract():
        torch.jit.save(scripted, buffer, _extra_files={EXTRA_FILE: extra})
    return buffer.getvalue()

"""A tiny TorchScript policy of our own with the served interface, and a manifest for it.

The registry must not depend on how the trainers build policies, so its tests use a minimal
module with the served interface (raw state map → probabilities; dense batch → probabilities).
"""

from __future__ import annotations

import io
from typing import Any

import torch
from torch import nn

FEATURES = ["x", "y"]
ACTIONS = ["0", "1"]


class TinyPolicy(nn.Module):
    """softmax(W · state) over allowed actions; ``bias`` makes two policies distinguishable."""

    def __init__(self, bias: float = 0.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.tensor([[1.0, -1.0], [-1.0, 1.0]]))
        self.bias = nn.Parameter(torch.tensor([bias, -bias]))
        self.feature_names = torch.jit.Attribute(list(FEATURES), list[str])

    @torch.jit.export
    def probs_dense(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        logits = states @ self.weight.T + self.bias
        logits = logits.masked_fill(~mask, -1e9)
        return torch.softmax(logits, dim=1)

    def forward(self, state: dict[str, float], possible: list[bool]) -> list[float]:
        values: list[float] = []
        for name in self.feature_names:
            values.append(state.get(name, 0.0))
        dense = torch.tensor([values])
        mask = torch.tensor([possible])
        return self.probs_dense(dense, mask)[0].tolist()


def policy_bytes(bias: float = 0.0) -> bytes:
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(TinyPolicy(bias)), buffer)
    return buffer.getvalue()


def manifest(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "feature_names": list(FEATURES),
        "normalization": {},
        "actions": list(ACTIONS),
        "exploration": {"temperature": 1.0, "epsilon": 0.05, "min_propensity": 0.01},
        "algorithm": "tiny",
        "trained_on": {"table_uri": "mem://t", "table_version": 1, "rows": 10, "episodes": 2},
        "cpe": {},
        "gate": {"decision": "publish", "reasons": ["test"]},
    }
    base.update(overrides)
    return base

"""The networks the trainers fit: a plain MLP, and a constant stand-in for "no imitator"."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MLP", "UniformLogits"]


class MLP(nn.Module):
    """``in_features → hidden... → out_features`` with ReLU; the Q-network and the imitator."""

    def __init__(self, in_features: int, out_features: int, hidden_sizes: list[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden_sizes:
            # in place: one activation buffer less to allocate per layer and step
            layers += [nn.Linear(width, size), nn.ReLU(inplace=True)]
            width = size
        layers.append(nn.Linear(width, out_features))
        self.net = nn.Sequential(*layers)
        self.in_features = in_features
        self.out_features = out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class UniformLogits(nn.Module):
    """Zero logits for every action: the imitator of a policy that filters no action."""

    def __init__(self, n_actions: int) -> None:
        super().__init__()
        self.n_actions = n_actions

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(x.shape[0], self.n_actions, dtype=x.dtype, device=x.device)

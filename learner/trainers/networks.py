"""The networks the trainers fit: a plain MLP, an ensemble of them, and a constant stand-in for
"no imitator"."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MLP", "EnsembleMLP", "UniformLogits", "q_network_template"]


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
        # Module.__call__ is typed Any, a Tensor here (TorchScript wants the ignore to end the line)
        return self.net(x)  # type: ignore[no-any-return]


class UniformLogits(nn.Module):
    """Zero logits for every action: the imitator of a policy that filters no action."""

    def __init__(self, n_actions: int) -> None:
        super().__init__()
        self.n_actions = n_actions

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(x.shape[0], self.n_actions, dtype=x.dtype, device=x.device)


class EnsembleMLP(nn.Module):
    """The mean of several same-shaped MLPs' outputs: an ensemble's Q-values.

    Averaging independently trained Q-networks cancels much of each one's extrapolation error
    on states the logs cover thinly, which is what decides a greedy policy offline.
    """

    def __init__(self, members: list[MLP]) -> None:
        super().__init__()
        if not members:
            raise ValueError("members: an ensemble needs at least one network")
        self.members = nn.ModuleList(members)
        self.in_features = members[0].in_features
        self.out_features = members[0].out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(x.shape[0], self.out_features, dtype=x.dtype, device=x.device)
        for member in self.members:
            total = total + member(x)
        return total / len(self.members)


def q_network_template(
    in_features: int, out_features: int, hidden_sizes: list[int], members: int
) -> nn.Module:
    """An untrained network of the shape a trainer returns: an :class:`MLP` for one member,
    an :class:`EnsembleMLP` of ``members`` MLPs otherwise."""
    if members == 1:
        return MLP(in_features, out_features, hidden_sizes)
    return EnsembleMLP([MLP(in_features, out_features, hidden_sizes) for _ in range(members)])

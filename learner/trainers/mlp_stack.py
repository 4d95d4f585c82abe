"""K same-shaped MLPs in one flat buffer, with a hand-written backward pass.

Why not autograd: the trainer's networks are small (a few hidden layers of a few hundred units)
and its mini-batches a few hundred rows, so on a CPU most of an autograd step is bookkeeping
(graph nodes, ``.grad`` tensors per parameter, a norm per parameter for clipping, ...), not
arithmetic. A ReLU MLP's gradient is three lines per layer, and with every parameter in one
``(K, P)`` buffer, clipping is one norm per member and Adam one fused call. The gradients are
tested against autograd (``tests/learner/trainers/test_mlp_stack.py``).

``K > 1`` trains an ensemble in lock step: member ``k`` is ``params[k]``, and each layer is one
batched matmul over the members (``torch.baddbmm``). Members never share gradients.
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import nn

from learner.trainers.networks import MLP, EnsembleMLP, q_network_template

__all__ = ["MLPStack"]


class MLPStack:
    """``members`` MLPs ``in_features → hidden_sizes... → out_features`` (ReLU between layers).

    ``params`` and ``grads`` are ``(members, P)`` float32 tensors; ``weights[i]`` and
    ``biases[i]`` are views of ``params`` shaped ``(members, out, in)`` and ``(members, 1, out)``.
    Inputs and outputs carry the member as their first dimension: ``(members, batch, features)``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden_sizes: list[int],
        members: int = 1,
        generator: torch.Generator | None = None,
        initialize: bool = True,
    ) -> None:
        """``initialize``: draw the weights as ``nn.Linear`` does (from ``generator``); False
        leaves them uninitialized, for a stack that is about to be overwritten."""
        if members < 1:
            raise ValueError(f"members: {members}, must be >= 1")
        self.in_features = in_features
        self.out_features = out_features
        self.hidden_sizes = list(hidden_sizes)
        self.members = members
        sizes = [in_features, *hidden_sizes, out_features]
        self._shapes = list(zip(sizes[1:], sizes[:-1], strict=True))  # (out, in) per layer
        total = sum(o * i + o for o, i in self._shapes)
        self.params = torch.empty(members, total)
        self.grads = torch.zeros(members, total)
        self.weights, self.biases = self._views(self.params)
        self.weight_grads, self.bias_grads = self._views(self.grads)
        if initialize:
            self._initialize(generator)
        self._inputs: list[torch.Tensor] = []

    def _initialize(self, generator: torch.Generator | None) -> None:
        """``nn.Linear``'s default: weights and biases from U(-1/sqrt(in), 1/sqrt(in))."""
        for w, b in zip(self.weights, self.biases, strict=True):
            bound = 1.0 / math.sqrt(w.shape[2])
            w.uniform_(-bound, bound, generator=generator)
            b.uniform_(-bound, bound, generator=generator)

    def _views(self, flat: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        weights, biases, offset = [], [], 0
        for out, inp in self._shapes:
            weights.append(flat[:, offset : offset + out * inp].view(self.members, out, inp))
            offset += out * inp
            biases.append(flat[:, offset : offset + out].view(self.members, 1, out))
            offset += out
        return weights, biases

    def forward(self, x: torch.Tensor, keep: bool = False) -> torch.Tensor:
        """``(members, batch, in)`` → ``(members, batch, out)``. ``keep`` saves each layer's
        input for :meth:`backward`."""
        inputs = []
        h = x
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            if keep:
                inputs.append(h)
            h = torch.baddbmm(b, h, w.transpose(1, 2))
            if i < last:
                h.relu_()
        if keep:
            self._inputs = inputs
        return h

    def backward(self, d_out: torch.Tensor) -> None:
        """Write into ``grads`` the gradient of a loss whose gradient with respect to the last
        ``forward(..., keep=True)`` output is ``d_out``."""
        if not self._inputs:
            raise RuntimeError("backward: call forward(x, keep=True) first")
        d = d_out
        for i in range(len(self.weights) - 1, -1, -1):
            a = self._inputs[i]
            torch.bmm(d.transpose(1, 2), a, out=self.weight_grads[i])
            torch.sum(d, dim=1, keepdim=True, out=self.bias_grads[i])
            if i > 0:  # the input of layer i is a ReLU output: gradient flows where it is > 0
                # (threshold_backward is ReLU's backward as autograd runs it: one kernel
                # instead of a comparison, a cast and a product)
                d = torch.ops.aten.threshold_backward(torch.bmm(d, self.weights[i]), a, 0.0)
        self._inputs = []

    def copy_from(self, other: MLPStack) -> None:
        """Take ``other``'s parameters (the hard target-network update)."""
        self.params.copy_(other.params)

    def clone(self) -> MLPStack:
        """A stack of the same shape with a copy of these parameters (a target network)."""
        other = MLPStack(
            self.in_features,
            self.out_features,
            self.hidden_sizes,
            self.members,
            initialize=False,
        )
        other.copy_from(self)
        return other

    def load_module(self, module: nn.Module) -> None:
        """Parameters from an :class:`MLP` (one member) or an :class:`EnsembleMLP` of the same
        shape (see :meth:`module_template`)."""
        pairs = _linear_layers(module)
        if len(pairs) != self.members * len(self.weights):
            raise ValueError(
                f"module: {len(pairs)} linear layers, expected {self.members} members of "
                f"{len(self.weights)}"
            )
        with torch.no_grad():
            for (k, i), layer in pairs.items():
                self.weights[i][k].copy_(layer.weight)
                self.biases[i][k, 0].copy_(layer.bias)

    def module_template(self) -> nn.Module:
        """An untrained module of the shape :meth:`to_module` returns."""
        return q_network_template(
            self.in_features, self.out_features, self.hidden_sizes, self.members
        )

    def to_module(self) -> nn.Module:
        """The trained network as a plain (TorchScript-able) module: an :class:`MLP` for one
        member, an :class:`EnsembleMLP` (mean of the members' outputs) for several."""
        module = self.module_template()
        with torch.no_grad():
            for (k, i), layer in _linear_layers(module).items():
                layer.weight.copy_(self.weights[i][k])
                layer.bias.copy_(self.biases[i][k, 0])
        return module.eval()


def _linear_layers(module: nn.Module) -> dict[tuple[int, int], nn.Linear]:
    """``(member, layer) → nn.Linear`` of an :class:`MLP` (member 0) or an :class:`EnsembleMLP`."""
    members = [module] if isinstance(module, MLP) else list(cast(EnsembleMLP, module).members)
    return {
        (k, i): layer
        for k, member in enumerate(members)
        for i, layer in enumerate(m for m in cast(MLP, member).net if isinstance(m, nn.Linear))
    }

"""Adam on flat parameter buffers, with the learning rate given at each step.

Why not ``torch.optim.Adam``: with every network in one flat buffer (:class:`MLPStack`) the
update itself is six element-wise calls, but ``Optimizer.step`` spends about 70 us per call on
bookkeeping (grouping tensors by device and dtype, step counters as tensors, hooks), and an
``LRScheduler`` adds its own: at a batch of 32 that was a sixth of a training step. The update
is Kingma & Ba's (2015) algorithm 1 in its efficient form (bias corrections folded into the
step size and epsilon), checked against ``torch.optim.Adam`` in
``tests/learner/trainers/test_flat_adam.py``.
"""

from __future__ import annotations

import math

import torch

__all__ = ["FlatAdam"]


class FlatAdam:
    """Adam (no weight decay, no AMSGrad) for ``params`` updated from ``grads`` in place."""

    def __init__(
        self,
        pairs: list[tuple[torch.Tensor, torch.Tensor]],
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        """``pairs``: ``(parameter buffer, gradient buffer)`` of the same shape each."""
        for params, grads in pairs:
            if params.shape != grads.shape:
                raise ValueError(f"pairs: parameter shape {params.shape} != {grads.shape}")
        self.pairs = pairs
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.steps = 0
        self._moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p, _ in pairs]

    def step(self, lr: float) -> None:
        """One update with learning rate ``lr`` from the gradients now in the buffers."""
        self.steps += 1
        correction1 = 1.0 - self.beta1**self.steps
        root2 = math.sqrt(1.0 - self.beta2**self.steps)
        step_size = lr * root2 / correction1
        for (params, grads), (mean, square) in zip(self.pairs, self._moments, strict=True):
            mean.lerp_(grads, 1.0 - self.beta1)
            square.mul_(self.beta2).addcmul_(grads, grads, value=1.0 - self.beta2)
            params.addcdiv_(mean, square.sqrt().add_(self.eps * root2), value=-step_size)

"""FlatAdam makes the updates torch.optim.Adam makes, at any learning rate per step."""

from __future__ import annotations

import pytest
import torch

from learner.trainers.flat_adam import FlatAdam


def test_updates_equal_torch_adam_over_many_steps_with_a_changing_learning_rate():
    generator = torch.Generator().manual_seed(0)
    ours = torch.randn(3, 50, generator=generator)
    grads = torch.zeros_like(ours)
    reference = ours.clone().requires_grad_(True)
    adam = FlatAdam([(ours, grads)])
    torch_adam = torch.optim.Adam([reference], lr=1e-2)
    for step in range(200):
        g = torch.randn(3, 50, generator=generator) * (1 + step % 7)
        lr = 1e-2 * (1 - step / 400)
        grads.copy_(g)
        adam.step(lr)
        reference.grad = g.clone()
        for group in torch_adam.param_groups:
            group["lr"] = lr
        torch_adam.step()
    torch.testing.assert_close(ours, reference.detach(), rtol=1e-5, atol=1e-6)


def test_buffers_of_different_shapes_are_refused():
    with pytest.raises(ValueError, match="shape"):
        FlatAdam([(torch.zeros(2, 3), torch.zeros(3, 2))])

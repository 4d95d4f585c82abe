"""The hand-written gradients (MLPStack.backward and the closed-form losses) equal autograd's."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from learner.trainers.mlp_stack import MLPStack
from learner.trainers.networks import MLP, EnsembleMLP
from learner.trainers.objectives import huber_td, softmax_cross_entropy, squared_error

MEMBERS, BATCH, IN, OUT = 3, 7, 5, 4


def _stack(members: int = MEMBERS, hidden: list[int] | None = None) -> MLPStack:
    return MLPStack(IN, OUT, hidden or [8, 6], members, torch.Generator().manual_seed(0))


def _autograd_copy(stack: MLPStack) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [
        (w.clone().requires_grad_(True), b.clone().requires_grad_(True))
        for w, b in zip(stack.weights, stack.biases, strict=True)
    ]


def _autograd_forward(layers, x: torch.Tensor) -> torch.Tensor:
    h = x
    for i, (w, b) in enumerate(layers):
        h = torch.baddbmm(b, h, w.transpose(1, 2))
        if i < len(layers) - 1:
            h = torch.relu(h)
    return h


@pytest.mark.parametrize("members", [1, MEMBERS])
def test_backward_equals_autograd_for_every_member_and_layer(members):
    stack = _stack(members)
    x = torch.randn(members, BATCH, IN, generator=torch.Generator().manual_seed(1))
    d_out = torch.randn(members, BATCH, OUT, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = stack.forward(x, keep=True)
        stack.backward(d_out)
    layers = _autograd_copy(stack)
    reference = _autograd_forward(layers, x)
    (reference * d_out).sum().backward()
    torch.testing.assert_close(out, reference.detach())
    for i, (w, b) in enumerate(layers):
        torch.testing.assert_close(stack.weight_grads[i], w.grad)
        torch.testing.assert_close(stack.bias_grads[i], b.grad)


def test_backward_without_a_kept_forward_is_refused():
    with pytest.raises(RuntimeError, match="forward"):
        _stack().backward(torch.zeros(MEMBERS, BATCH, OUT))


def test_one_member_becomes_a_plain_mlp_with_the_same_outputs():
    stack = _stack(1)
    x = torch.randn(BATCH, IN)
    module = stack.to_module()
    assert isinstance(module, MLP)
    with torch.no_grad():
        torch.testing.assert_close(module(x), stack.forward(x[None])[0])


def test_several_members_become_an_ensemble_of_their_mean():
    stack = _stack()
    x = torch.randn(BATCH, IN)
    module = stack.to_module()
    assert isinstance(module, EnsembleMLP) and len(module.members) == MEMBERS
    with torch.no_grad():
        expected = stack.forward(x.expand(MEMBERS, BATCH, IN)).mean(0)
        torch.testing.assert_close(module(x), expected)
    torch.jit.script(module)  # served inside policy.pt


def test_load_module_restores_the_parameters_to_module_wrote():
    source = _stack()
    target = MLPStack(IN, OUT, [8, 6], MEMBERS, torch.Generator().manual_seed(9))
    target.load_module(source.to_module())
    assert torch.equal(target.params, source.params)


def test_load_module_of_another_shape_is_refused():
    with pytest.raises(ValueError, match="members"):
        _stack(MEMBERS).load_module(_stack(1).to_module())


def _outputs(seed: int) -> torch.Tensor:
    return torch.randn(MEMBERS, BATCH, OUT, generator=torch.Generator().manual_seed(seed))


def _actions() -> torch.Tensor:
    return torch.randint(OUT, (MEMBERS, BATCH, 1), generator=torch.Generator().manual_seed(3))


def _check(loss_fn, reference_fn, outputs: torch.Tensor) -> None:
    grad = torch.zeros_like(outputs)
    loss = loss_fn(outputs, grad)
    leaf = outputs.clone().requires_grad_(True)
    expected = reference_fn(leaf)
    expected.backward()
    torch.testing.assert_close(loss, expected.detach())
    torch.testing.assert_close(grad, leaf.grad)


def test_huber_td_equals_autograd_on_small_and_large_errors():
    a, targets = _actions(), 3 * torch.randn(MEMBERS, BATCH)

    def reference(q):
        chosen = q.gather(2, a).squeeze(2)
        return sum(F.huber_loss(chosen[k], targets[k], delta=1.0) for k in range(MEMBERS))

    _check(lambda q, g: huber_td(q, a, targets, 1.0, g), reference, _outputs(4))


def test_squared_error_equals_autograd():
    a, targets = _actions(), torch.randn(MEMBERS, BATCH)

    def reference(q):
        chosen = q.gather(2, a).squeeze(2)
        return sum(F.mse_loss(chosen[k], targets[k]) for k in range(MEMBERS))

    _check(lambda q, g: squared_error(q, a, targets, g), reference, _outputs(5))


def test_softmax_cross_entropy_equals_autograd_with_impossible_actions():
    a = _actions()
    impossible = torch.zeros(MEMBERS, BATCH, OUT, dtype=torch.bool)
    impossible[..., (int(a.max()) + 1) % OUT] = True
    impossible.scatter_(2, a, False)  # the logged action is always possible

    def masked(q):
        return q.masked_fill(impossible, float("-inf"))

    def reference(q):
        logits = masked(q)
        return 0.3 * sum(F.cross_entropy(logits[k], a[k, :, 0]) for k in range(MEMBERS))

    _check(lambda q, g: softmax_cross_entropy(masked(q), a, 0.3, g), reference, _outputs(6))

"""The trainers' losses, each with its gradient in closed form (for :class:`MLPStack.backward`).

All take network outputs shaped ``(members, batch, actions)`` and logged actions shaped
``(members, batch, 1)``; each loss is a mean over the batch, summed over the members (so every
member gets exactly its own gradient). Each function *adds* its gradient with respect to the
outputs into ``grad`` and returns the loss as a 0-d tensor (read only when logged).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["huber_td", "softmax_cross_entropy", "squared_error"]


def huber_td(
    outputs: torch.Tensor,
    actions: torch.Tensor,
    targets: torch.Tensor,
    delta: float,
    grad: torch.Tensor,
) -> torch.Tensor:
    """Huber loss of the logged action's value against ``targets`` ``(members, batch)``.

    The gradient of Huber is the error clipped to ``[-delta, delta]``: large TD errors (early
    training, rare transitions) cannot dominate a step.
    """
    chosen = outputs.gather(2, actions).squeeze(2)
    n = chosen.shape[1]
    loss = F.huber_loss(chosen, targets, reduction="sum", delta=delta) / n
    g = (chosen - targets).clamp_(-delta, delta).div_(n)
    grad.scatter_add_(2, actions, g.unsqueeze(2))
    return loss


def squared_error(
    outputs: torch.Tensor, actions: torch.Tensor, targets: torch.Tensor, grad: torch.Tensor
) -> torch.Tensor:
    """Squared error of the logged action's output against ``targets`` (the bandit's reward
    model: the conditional mean reward is what the policy must rank actions by)."""
    diff = outputs.gather(2, actions).squeeze(2) - targets
    n = diff.shape[1]
    loss = diff.square().sum() / n
    grad.scatter_add_(2, actions, diff.mul_(2.0 / n).unsqueeze(2))
    return loss


def softmax_cross_entropy(
    logits: torch.Tensor, actions: torch.Tensor, weight: float, grad: torch.Tensor
) -> torch.Tensor:
    """``weight`` times the cross-entropy of ``softmax(logits)`` against the logged actions.

    Two uses: BCQ's imitation model of the logger (``weight`` 1), and discrete CQL's
    regularizer, which is exactly this with the Q-values as logits: ``logsumexp_a Q(s, a) -
    Q(s, a_logged)`` pushes down the values of actions the logger did not take. Impossible
    actions carry ``-inf`` logits and get no probability and no gradient.
    """
    log_p = torch.log_softmax(logits, dim=2)
    scale = weight / logits.shape[1]
    loss = log_p.gather(2, actions).sum() * -scale
    grad.add_(log_p.exp_(), alpha=scale)  # softmax
    grad.scatter_add_(2, actions, log_p.new_full(actions.shape, -scale))
    return loss

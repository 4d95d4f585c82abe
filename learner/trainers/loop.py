"""The training loop every algorithm shares (:mod:`learner.trainers.algorithms` says what differs).

Offline RL must not trust Q-values of actions the logger rarely took (extrapolation error), hence
the selectable algorithms: discrete CQL pushes down ``logsumexp Q`` against the logged action's
Q; discrete BCQ only lets the target and the policy pick actions an imitation model of the
logger finds plausible. Both run on Double DQN (online argmax, target evaluation) with a Huber
loss, gradient clipping and a target network; the bandit trainer is a reward model.

The loop is written for speed on CPU: the whole data set is normalized once into tensors,
minibatches are index gathers, gradients are written by hand (:mod:`learner.trainers.mlp_stack`
and :mod:`learner.trainers.objectives`, tested against autograd) into one flat buffer per
network, so a step is a few dozen tensor calls; statistics are read back only every
``log_every`` steps. ``ensemble_size`` > 1 trains several Q-networks in the same calls.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from learner.data.logged import LoggedData
from learner.preprocessing.normalizer import Normalizer
from learner.trainers.algorithms import Algorithm
from learner.trainers.batches import A, MinibatchSource, R, training_tensors
from learner.trainers.config import TrainerSettings
from learner.trainers.flat_adam import FlatAdam
from learner.trainers.mlp_stack import MLPStack
from learner.trainers.runtime import DivergenceMonitor, progress_bar

__all__ = ["FitOutcome", "fit"]

_INDEX_CHUNK_ROWS = 1 << 20  # indices drawn ahead: at most this many (8 MiB of int64)


@dataclass
class FitOutcome:
    """The fitted networks, and how the fit went. ``batch_size``: rows in each member's
    mini-batch (samples = steps x batch_size x members)."""

    q_network: nn.Module
    imitator: nn.Module
    bcq_threshold: float
    history: list[dict[str, float]]
    diverged: bool
    divergence_reason: str | None
    steps: int
    seconds: float
    batch_size: int


def fit(
    data: LoggedData,
    normalizer: Normalizer,
    settings: TrainerSettings,
    algorithm: Algorithm,
    q_init: dict[str, torch.Tensor] | None = None,
    progress: bool = True,
) -> FitOutcome:
    """Fit ``algorithm`` on ``data``.

    ``settings.ensemble_size`` networks are trained side by side, each on its own mini-batches
    and with its own target network; the policy acts on the mean of their outputs.
    ``q_init`` (the state dict of a network shaped like the result) warm-starts the Q-network.
    """
    t = training_tensors(data, normalizer, algorithm.usable_rows(data), algorithm.discount)
    n = t.s.shape[0]
    if n == 0:
        raise ValueError("train data: no usable rows (empty, or only truncated episode ends)")
    n_actions = data.n_actions
    members = settings.ensemble_size
    generator = torch.Generator().manual_seed(settings.seed)
    q = MLPStack(
        normalizer.out_features, n_actions, settings.hidden_sizes, members, generator=generator
    )
    if q_init is not None:
        template = q.module_template()
        template.load_state_dict(q_init)
        q.load_module(template)
    packed = MinibatchSource.of(t)
    stacks = [q, *algorithm.prepare(q, packed, generator)]
    optimizer = FlatAdam([(stack.params, stack.grads) for stack in stacks])
    # linear decay to final_lr_fraction of the learning rate by the last step
    lr_decay = (1.0 - settings.final_lr_fraction) / max(settings.steps, 1)
    r_max = float(t.r.abs().max())
    monitor = DivergenceMonitor(settings.q_limit_factor * (r_max * algorithm.horizon + 1.0))

    batch = algorithm.batch_size(n)
    history: list[dict[str, float]] = []
    loss_sum = torch.zeros(())
    reg_sum = torch.zeros(())
    steps_done = 0
    start = time.perf_counter()
    chunk = max(1, min(settings.steps, _INDEX_CHUNK_ROWS // max(batch * members, 1)))
    indices = torch.empty(0, members, batch, dtype=torch.int64)
    with (
        torch.no_grad(),
        progress_bar(f"training {algorithm.name}", settings.steps, progress) as bar,
    ):
        for step in range(1, settings.steps + 1):
            k = (step - 1) % chunk
            if k == 0:  # minibatch indices drawn for many steps at once: one call, not `chunk`
                indices = torch.randint(n, (chunk, members, batch), generator=generator)
            idx = indices[k]  # (members, batch): every member its own mini-batch
            # three gathers per step: states, next states (by the algorithm), the small columns
            s = packed.s[idx]
            rows = packed.small[idx]
            a = rows[..., A : A + 1].long()
            y = algorithm.targets(q, idx, rows, rows[..., R])
            q_all = q.forward(s, keep=True)
            d_q = torch.zeros_like(q_all)
            loss = algorithm.value_loss(q_all, a, y, d_q)
            reg = algorithm.regularizer(q_all, s, a, rows, d_q)
            q.backward(d_q)
            grad_norm = _clip_per_member(stacks, settings.grad_clip_norm)
            optimizer.step(settings.learning_rate * (1.0 - lr_decay * (step - 1)))
            algorithm.after_step(step, q)
            loss_sum += loss + reg
            reg_sum += reg
            steps_done = step
            if step % settings.log_every == 0 or step == settings.steps:
                count = (step - (history[-1]["step"] if history else 0)) * members
                entry = {
                    "step": float(step),
                    "loss": float(loss_sum) / count,
                    "regularizer": float(reg_sum) / count,
                    "q_mean": float(q_all.gather(2, a).mean()),
                    "q_max": float(q_all.max()),
                    "q_min": float(q_all.min()),
                    "grad_norm": float(grad_norm),
                    "elapsed_s": time.perf_counter() - start,
                }
                history.append(entry)
                loss_sum.zero_()
                reg_sum.zero_()
                if bar is not None:
                    bar.update(
                        bar.task_ids[0],
                        completed=step,
                        status=f"loss {entry['loss']:.4g} Q {entry['q_mean']:.3g}",
                    )
                q_abs = max(abs(entry["q_max"]), abs(entry["q_min"]))
                if monitor.check(step, entry["loss"], q_abs):
                    break
    seconds = time.perf_counter() - start
    imitator, threshold = algorithm.served_imitator(n_actions)
    return FitOutcome(
        q_network=q.to_module(),
        imitator=imitator,
        bcq_threshold=threshold,
        history=history,
        diverged=monitor.reason is not None,
        divergence_reason=monitor.reason,
        steps=steps_done,
        seconds=seconds,
        batch_size=batch,
    )


def _clip_per_member(stacks: list[MLPStack], max_norm: float) -> torch.Tensor:
    """Scale each member's gradient (over all its networks) to norm <= ``max_norm``, as
    ``clip_grad_norm_`` does for one network; returns the norm before clipping (all members)."""
    norms = torch.linalg.vector_norm(stacks[0].grads, dim=1)
    if len(stacks) > 1:
        others = [torch.linalg.vector_norm(stack.grads, dim=1) for stack in stacks[1:]]
        norms = torch.linalg.vector_norm(torch.stack([norms, *others]), dim=0)
    scale = (max_norm / (norms + 1e-6)).clamp_(max=1.0).unsqueeze(1)
    for stack in stacks:
        stack.grads.mul_(scale)
    total: torch.Tensor = norms.square().sum().sqrt()
    return total

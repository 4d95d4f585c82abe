"""The training loops: one-step reward model, and offline Double DQN with CQL or BCQ.

Offline RL must not trust Q-values of actions the logger rarely took (extrapolation error),
hence the selectable regularizers: discrete CQL pushes down ``logsumexp Q`` against the logged
action's Q; discrete BCQ only lets the target and the policy pick actions an imitation model
of the logger finds plausible. Both run on Double DQN (online argmax, target evaluation) with a
Huber loss, gradient clipping and a target network.

The loop is written for speed on CPU: the whole data set is normalized once into tensors,
minibatches are index gathers, gradients are written by hand (:mod:`learner.trainers.mlp_stack`
and :mod:`learner.trainers.objectives`, tested against autograd) into one flat buffer per
network, so a step is a few dozen tensor calls; statistics are read back only every
``log_every`` steps. ``ensemble_size`` > 1 trains several Q-networks in the same calls.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from learner.data.logged import LoggedData
from learner.preprocessing.normalizer import Normalizer
from learner.trainers.config import TrainerSettings
from learner.trainers.flat_adam import FlatAdam
from learner.trainers.mlp_stack import MLPStack
from learner.trainers.networks import UniformLogits
from learner.trainers.objectives import huber_td, softmax_cross_entropy, squared_error
from learner.trainers.runtime import DivergenceMonitor, progress_bar

__all__ = ["FitOutcome", "fit_offline"]

_INDEX_CHUNK_ROWS = 1 << 20  # indices drawn ahead: at most this many (8 MiB of int64)


@dataclass
class FitOutcome:
    q_network: nn.Module
    imitator: nn.Module
    bcq_threshold: float
    history: list[dict[str, float]]
    diverged: bool
    divergence_reason: str | None
    steps: int
    seconds: float


@dataclass
class _Tensors:
    s: torch.Tensor
    a: torch.Tensor
    r: torch.Tensor
    s2: torch.Tensor
    disc: torch.Tensor
    possible_inf: torch.Tensor
    next_possible: torch.Tensor


_R, _DISC, _A = 0, 1, 2  # columns of _Packed.small; then possible_inf, then next_possible


@dataclass
class _Packed:
    """The sequential trainer's minibatch source: per step one gather of states, one of next
    states and one of a float table ``[r, disc, a, possible_inf..., next_possible...]``
    instead of seven. ``all_possible``: every action is possible everywhere, so the masks are
    no-ops and are skipped."""

    s: torch.Tensor
    s2: torch.Tensor
    small: torch.Tensor
    inf_cols: slice
    next_cols: slice
    all_possible: bool

    @classmethod
    def of(cls, t: _Tensors) -> _Packed:
        n_actions = t.possible_inf.shape[1]
        small = torch.cat(
            [
                t.r[:, None],
                t.disc[:, None],
                t.a[:, None].float(),
                t.possible_inf,
                t.next_possible.float(),
            ],
            dim=1,
        ).contiguous()
        # rows without a next decision (disc 0) ignore the next-action mask
        has_next = t.disc > 0
        all_possible = bool((t.possible_inf == 0).all()) and bool(t.next_possible[has_next].all())
        return cls(
            t.s,
            t.s2,
            small,
            slice(3, 3 + n_actions),
            slice(3 + n_actions, 3 + 2 * n_actions),
            all_possible,
        )


def _tensors(data: LoggedData, normalizer: Normalizer, gamma: float, one_step: bool) -> _Tensors:
    """The usable rows as float32 tensors. Rows of a truncated episode's end (no next state,
    not terminal) have no known target and are left out of sequential training."""
    if one_step:
        rows = np.arange(len(data))
    else:
        has_next = data.has_next & data.next_possible_mask.any(axis=1)
        rows = np.flatnonzero(data.terminals | has_next)
    s = torch.from_numpy(normalizer.transform(data.states[rows]))
    s2 = torch.from_numpy(normalizer.transform(data.next_states[rows]))
    pm = torch.from_numpy(data.possible_mask[rows])
    has = torch.from_numpy((data.has_next[rows] & ~data.terminals[rows]).astype(np.float32))
    return _Tensors(
        s=s.contiguous(),
        a=torch.from_numpy(data.actions[rows]).long(),
        r=torch.from_numpy(data.rewards[rows].astype(np.float32)),
        s2=s2.contiguous(),
        disc=(0.0 if one_step else gamma) * has,
        possible_inf=torch.zeros(pm.shape).masked_fill(~pm, float("-inf")),
        next_possible=torch.from_numpy(data.next_possible_mask[rows]),
    )


def fit_offline(
    data: LoggedData,
    normalizer: Normalizer,
    settings: TrainerSettings,
    algorithm: str,
    q_init: dict[str, torch.Tensor] | None = None,
    progress: bool = True,
) -> FitOutcome:
    """Fit ``algorithm`` (``bandit``, ``dqn``, ``cql`` or ``bcq``) on ``data``.

    ``bandit`` is a reward model with one output per action, fitted by squared error on the
    logged action's reward (the mean reward is what a bandit policy must rank by).
    ``settings.ensemble_size`` networks are trained side by side, each on its own mini-batches
    and with its own target network; the policy acts on the mean of their outputs.
    ``q_init`` (the state dict of a network shaped like the result) warm-starts the Q-network.
    """
    one_step = algorithm == "bandit"
    t = _tensors(data, normalizer, settings.gamma, one_step)
    n = t.s.shape[0]
    if n == 0:
        raise ValueError("train data: no usable rows (empty, or only truncated episode ends)")
    n_actions = data.n_actions
    members = settings.ensemble_size
    generator = torch.Generator().manual_seed(settings.seed)
    shape = (normalizer.out_features, n_actions, settings.hidden_sizes, members)
    q = MLPStack(*shape, generator=generator)
    if q_init is not None:
        template = q.module_template()
        template.load_state_dict(q_init)
        q.load_module(template)
    use_bcq = algorithm == "bcq"
    imitator = MLPStack(*shape, generator=generator) if use_bcq else None
    target = None if one_step else q.clone()  # the Double DQN target network
    stacks = [q] if imitator is None else [q, imitator]
    optimizer = FlatAdam([(stack.params, stack.grads) for stack in stacks])
    # linear decay to final_lr_fraction of the learning rate by the last step
    lr_decay = (1.0 - settings.final_lr_fraction) / max(settings.steps, 1)
    r_max = float(t.r.abs().max())
    horizon = 1.0 if one_step else 1.0 / (1.0 - settings.gamma)
    monitor = DivergenceMonitor(settings.q_limit_factor * (r_max * horizon + 1.0))
    y_low = min(0.0, float(t.r.min())) * horizon
    y_high = max(0.0, float(t.r.max())) * horizon
    clip_y = settings.clip_targets and not one_step

    batch = min(settings.batch_size, n) if one_step else settings.batch_size
    alpha_cql = settings.cql_alpha if algorithm == "cql" else 0.0
    threshold = settings.bcq_threshold
    soft = settings.target_update == "soft"
    history: list[dict[str, float]] = []
    loss_sum = torch.zeros(())
    reg_sum = torch.zeros(())
    steps_done = 0
    start = time.perf_counter()
    packed = _Packed.of(t)
    mask_all = packed.all_possible
    chunk = max(1, min(settings.steps, _INDEX_CHUNK_ROWS // max(batch * members, 1)))
    indices = torch.empty(0, members, batch, dtype=torch.int64)
    with torch.no_grad(), progress_bar(f"training {algorithm}", settings.steps, progress) as bar:
        for step in range(1, settings.steps + 1):
            k = (step - 1) % chunk
            if k == 0:  # minibatch indices drawn for many steps at once: one call, not `chunk`
                indices = torch.randint(n, (chunk, members, batch), generator=generator)
            idx = indices[k]  # (members, batch): every member its own mini-batch
            # three gathers per step: states, next states, and the packed small columns
            s = packed.s[idx]
            rows = packed.small[idx]
            a = rows[..., _A : _A + 1].long()
            r = rows[..., _R]
            if one_step:
                y = r
            else:
                s2 = packed.s2[idx]
                q2 = q.forward(s2)
                allowed2 = None if mask_all else rows[..., packed.next_cols] > 0.5
                if use_bcq:
                    logits2 = imitator.forward(s2)
                    if allowed2 is not None:
                        logits2 = logits2.masked_fill(~allowed2, float("-inf"))
                    p2 = torch.softmax(logits2, 2)
                    keep = p2 >= threshold * p2.max(2, keepdim=True).values
                    allowed2 = keep if allowed2 is None else allowed2 & keep
                if allowed2 is not None:
                    q2 = q2.masked_fill(~allowed2, float("-inf"))
                a2 = q2.argmax(2, keepdim=True)  # Double DQN: online argmax, target value
                y = r + rows[..., _DISC] * target.forward(s2).gather(2, a2).squeeze(2)
                if clip_y:
                    y = y.clamp_(y_low, y_high)
            q_all = q.forward(s, keep=True)
            d_q = torch.zeros_like(q_all)
            if one_step:
                loss = squared_error(q_all, a, y, d_q)
            else:
                loss = huber_td(q_all, a, y, settings.huber_delta, d_q)
            if alpha_cql > 0.0:
                masked = q_all if mask_all else q_all + rows[..., packed.inf_cols]
                reg = softmax_cross_entropy(masked, a, alpha_cql, d_q)
            elif use_bcq:
                logits = imitator.forward(s, keep=True)
                if not mask_all:
                    logits = logits + rows[..., packed.inf_cols]
                d_logits = torch.zeros_like(logits)
                reg = softmax_cross_entropy(logits, a, 1.0, d_logits)
                imitator.backward(d_logits)
            else:
                reg = torch.zeros(())
            q.backward(d_q)
            grad_norm = _clip_per_member(stacks, settings.grad_clip_norm)
            optimizer.step(settings.learning_rate * (1.0 - lr_decay * (step - 1)))
            if not one_step:
                if soft:
                    target.params.lerp_(q.params, settings.tau)
                elif step % settings.target_update_interval == 0:
                    target.copy_from(q)
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
    return FitOutcome(
        q_network=q.to_module(),
        imitator=imitator.to_module() if imitator is not None else UniformLogits(n_actions),
        bcq_threshold=threshold if use_bcq else 0.0,
        history=history,
        diverged=monitor.reason is not None,
        divergence_reason=monitor.reason,
        steps=steps_done,
        seconds=seconds,
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
    return norms.square().sum().sqrt()

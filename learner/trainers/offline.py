"""The training loops: one-step reward model, and offline Double DQN with CQL or BCQ.

Offline RL must not trust Q-values of actions the logger rarely took (extrapolation error),
hence the selectable regularizers: discrete CQL pushes down ``logsumexp Q`` against the logged
action's Q; discrete BCQ only lets the target and the policy pick actions an imitation model
of the logger finds plausible. Both run on Double DQN (online argmax, target evaluation) with a
Huber loss, gradient clipping and a target network.

The loop is written for speed on CPU: the whole data set is normalized once into tensors,
minibatches are index gathers, and Python work per step is a handful of calls; statistics are
read back only every ``log_every`` steps.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from learner.data.logged import LoggedData
from learner.preprocessing.normalizer import Normalizer
from learner.trainers.config import TrainerSettings
from learner.trainers.networks import MLP, UniformLogits
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
    """
    one_step = algorithm == "bandit"
    t = _tensors(data, normalizer, settings.gamma, one_step)
    n = t.s.shape[0]
    if n == 0:
        raise ValueError("train data: no usable rows (empty, or only truncated episode ends)")
    n_actions = data.n_actions
    q = MLP(normalizer.out_features, n_actions, settings.hidden_sizes)
    if q_init is not None:
        q.load_state_dict(q_init)
    use_bcq = algorithm == "bcq"
    imitator: nn.Module = (
        MLP(normalizer.out_features, n_actions, settings.hidden_sizes)
        if use_bcq
        else UniformLogits(n_actions)
    )
    target = copy.deepcopy(q).requires_grad_(False)
    params = list(q.parameters()) + list(imitator.parameters())
    # fused: one kernel for all parameters instead of ~30 small foreach ops per step
    optimizer = torch.optim.Adam(params, lr=settings.learning_rate, fused=True)
    schedule = None
    if settings.final_lr_fraction < 1.0:
        final, total = settings.final_lr_fraction, max(settings.steps, 1)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda k: 1.0 - (1.0 - final) * min(k / total, 1.0)
        )
    generator = torch.Generator().manual_seed(settings.seed)
    r_max = float(t.r.abs().max())
    horizon = 1.0 if one_step else 1.0 / (1.0 - settings.gamma)
    monitor = DivergenceMonitor(settings.q_limit_factor * (r_max * horizon + 1.0))
    y_low = min(0.0, float(t.r.min())) * horizon
    y_high = max(0.0, float(t.r.max())) * horizon
    clip_y = settings.clip_targets and not one_step

    batch = min(settings.batch_size, n) if one_step else settings.batch_size
    gamma_cql = settings.cql_alpha if algorithm == "cql" else 0.0
    threshold = settings.bcq_threshold
    soft = settings.target_update == "soft"
    history: list[dict[str, float]] = []
    loss_sum = torch.zeros(())
    reg_sum = torch.zeros(())
    steps_done = 0
    start = time.perf_counter()
    packed = None if one_step else _Packed.of(t)
    chunk = max(1, min(settings.steps, _INDEX_CHUNK_ROWS // max(batch, 1)))
    indices = torch.empty(0, batch, dtype=torch.int64)
    with progress_bar(f"training {algorithm}", settings.steps, progress) as bar:
        for step in range(1, settings.steps + 1):
            k = (step - 1) % chunk
            if k == 0:  # minibatch indices drawn for many steps at once: one call, not `chunk`
                indices = torch.randint(n, (chunk, batch), generator=generator)
            idx = indices[k]
            if one_step:
                s = t.s[idx]
                a = t.a[idx].unsqueeze(1)
                r = t.r[idx]
                q_all = q(s)
                q_a = q_all.gather(1, a).squeeze(1)
                loss = F.mse_loss(q_a, r)
                reg = torch.zeros(())
            else:
                # three gathers per step: states, next states, and the packed small columns
                s = packed.s[idx]
                s2 = packed.s2[idx]
                rows = packed.small[idx]
                a = rows[:, _A : _A + 1].long()
                r = rows[:, _R]
                with torch.no_grad():
                    q2 = q(s2)
                    allowed2 = None if packed.all_possible else rows[:, packed.next_cols] > 0.5
                    if use_bcq:
                        logits2 = imitator(s2)
                        if allowed2 is not None:
                            logits2 = logits2.masked_fill(~allowed2, float("-inf"))
                        p2 = torch.softmax(logits2, 1)
                        keep = p2 >= threshold * p2.max(1, keepdim=True).values
                        allowed2 = keep if allowed2 is None else allowed2 & keep
                    if allowed2 is not None:
                        q2 = q2.masked_fill(~allowed2, float("-inf"))
                    a2 = q2.argmax(1, keepdim=True)
                    y = r + rows[:, _DISC] * target(s2).gather(1, a2).squeeze(1)
                    if clip_y:
                        y = y.clamp_(y_low, y_high)
                q_all = q(s)
                q_a = q_all.gather(1, a).squeeze(1)
                loss = F.huber_loss(q_a, y, delta=settings.huber_delta)
                masked = q_all if packed.all_possible else q_all + rows[:, packed.inf_cols]
                if gamma_cql > 0.0:
                    if n_actions == 2:  # one kernel instead of logsumexp's five
                        lse = torch.logaddexp(masked[:, 0], masked[:, 1])
                    else:
                        lse = torch.logsumexp(masked, dim=1)
                    reg = gamma_cql * (lse - q_a).mean()
                elif use_bcq:
                    logits = imitator(s)
                    if not packed.all_possible:
                        logits = logits + rows[:, packed.inf_cols]
                    reg = F.cross_entropy(logits, a.squeeze(1))
                else:
                    reg = torch.zeros(())
                loss = loss + reg
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(params, settings.grad_clip_norm)
            optimizer.step()
            if schedule is not None:
                schedule.step()
            if not one_step:
                if soft:
                    with torch.no_grad():
                        torch._foreach_lerp_(
                            list(target.parameters()), list(q.parameters()), settings.tau
                        )
                elif step % settings.target_update_interval == 0:
                    target.load_state_dict(q.state_dict())
            loss_sum += loss.detach()
            reg_sum += reg.detach()
            steps_done = step
            if step % settings.log_every == 0 or step == settings.steps:
                count = step - (history[-1]["step"] if history else 0)
                qd = q_all.detach()
                entry = {
                    "step": float(step),
                    "loss": float(loss_sum) / count,
                    "regularizer": float(reg_sum) / count,
                    "q_mean": float(q_a.detach().mean()),
                    "q_max": float(qd.max()),
                    "q_min": float(qd.min()),
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
    q.eval()
    imitator.eval()
    return FitOutcome(
        q_network=q,
        imitator=imitator,
        bcq_threshold=threshold if use_bcq else 0.0,
        history=history,
        diverged=monitor.reason is not None,
        divergence_reason=monitor.reason,
        steps=steps_done,
        seconds=seconds,
    )

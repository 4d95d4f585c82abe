"""Fitting bagged FQE (Le, Voloshin & Yue 2019): the target policy's Q-function from logs.

Repeated regression on the Bellman target of the *target* policy::

    y = r_t + gamma * sum_a' pi(a'|s_{t+1}) Q_target(s_{t+1}, a')   (a next decision exists)
    y = r_t                                                         (the env ended the episode)

Truncated episodes (cut by the log, not ended by the environment) are *not* terminal: their last
step has no known next state, so it is left out of the regression and its Q comes from similar
states -- treating a cut as an ending would teach the model that the world stops there. Unless
the logs show a time limit (:mod:`learner.cpe.horizon`): then the step's position is an input,
an episode cut at the limit ends there, as it does for every policy deployed, and the networks
have two heads, Q = U - gamma^(L - t) W (:func:`regression_loss`). The
targets come from a frozen copy of the networks, refreshed every ``target_update_every`` steps
(one Bellman backup) and evaluated on each mini-batch's rows (the same targets as recomputing
every row at each backup, without the cost of rows no mini-batch draws before the next one);
the regression is mini-batch MSE with gradient clipping and a learning rate decaying linearly to
5%. Fixed seed, fixed result.
A loss or Q-value that explodes stops the fit and is reported: its predictions are then NaN,
so every estimate built on them is NaN too.

**Bagging.** ``FqeSettings.members`` networks are trained side by side in one
:class:`MLPStack` (one batched matmul per layer for all of them), member ``b`` on its own
episode bootstrap resample: its mini-batches are drawn uniformly from the transitions of the
episodes its resample drew, each as often as it was drawn -- exactly a fit on the resampled
logs. Each member also starts from its own random weights, so the spread between members is
the model's whole uncertainty, data and optimization (:mod:`learner.cpe.model_replicates`).
One member is fitted on the logs as they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from learner.cpe.config import FqeSettings
from learner.cpe.fqe_model import FqeModel, time_limited_q
from learner.cpe.horizon import detect_time_limit, remaining_discount, with_step_position
from learner.cpe.inputs import SequentialInput
from learner.cpe.model_replicates import episode_resample_counts
from learner.cpe.standardize import Standardizer
from learner.cpe.torch_threads import torch_threads
from learner.trainers.flat_adam import FlatAdam
from learner.trainers.mlp_stack import MLPStack
from learner.trainers.objectives import squared_error

__all__ = [
    "Transitions",
    "backups_needed",
    "fit_fqe",
    "regression_loss",
    "transitions",
    "value_range",
]

_Q_LIMIT = 1e6


@dataclass(frozen=True)
class Transitions:
    """The rows that enter the regression, with their next step (if any).

    ``bootstrap`` is true where a next decision exists (its value enters the target);
    ``next_probs`` the target policy's probabilities there (zero on impossible actions);
    ``next_probs_finite`` false where those are NaN or infinite; ``episode`` the row's episode
    (what the members' resamples draw); ``step`` and ``next_step`` the positions of the row and
    of its next step in their episode.
    """

    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    bootstrap: np.ndarray
    next_states: np.ndarray
    next_probs: np.ndarray
    next_probs_finite: np.ndarray
    episode: np.ndarray
    step: np.ndarray
    next_step: np.ndarray


def transitions(data: SequentialInput, time_limit: int | None = None) -> Transitions:
    """The regression's rows of ``data`` (module doc: a truncated episode's last step is left
    out, unless it is cut at ``time_limit``, which then also puts each step's position into
    the states). ValueError when there is none."""
    if data.states is None:
        raise ValueError("states: FQE needs the episodes' states")
    valid = data.valid
    t = valid.shape[1]
    has_next = np.zeros_like(valid)
    has_next[:, :-1] = valid[:, 1:]
    terminal = data.terminal if data.terminal is not None else np.zeros_like(valid)
    last = valid & ~has_next
    # Without a terminal flag an episode's end is taken as the environment's end.
    ends = (last & terminal) if data.terminal is not None else last
    if time_limit is not None:
        at_limit = np.zeros_like(valid)
        at_limit[:, time_limit - 1 :] = True
        ends |= last & at_limit
    used = valid & (has_next | ends)
    if not used.any():
        raise ValueError(
            "terminal: every episode is truncated after one step, FQE has nothing to learn from"
        )
    ei, ti = np.nonzero(used)
    tn = np.minimum(ti + 1, t - 1)
    states, next_states = data.states[ei, ti], data.states[ei, tn]
    if time_limit is not None:
        states = with_step_position(states, ti, time_limit)
        next_states = with_step_position(next_states, tn, time_limit)
    return Transitions(
        states=states,
        actions=data.actions[ei, ti],
        rewards=data.rewards[ei, ti],
        bootstrap=has_next[ei, ti],
        next_states=next_states,
        next_probs=np.where(
            data.possible_mask[ei, tn], np.nan_to_num(data.target_probs[ei, tn]), 0.0
        ),
        next_probs_finite=np.isfinite(data.target_probs[ei, tn]).all(axis=1) | ~has_next[ei, ti],
        episode=ei,
        step=ti,
        next_step=tn,
    )


def value_range(rewards: np.ndarray, gamma: float) -> tuple[float | None, float | None]:
    """The values a discounted return can take when every reward lies in the logged range:
    ``[min(0, r_min), max(0, r_max)] / (1 - gamma)``; ``(None, None)`` when ``gamma == 1``
    (no bound without a horizon)."""
    if gamma >= 1.0 or len(rewards) == 0:
        return None, None
    r = np.asarray(rewards, np.float64)
    return min(0.0, float(r.min())) / (1.0 - gamma), max(0.0, float(r.max())) / (1.0 - gamma)


def backups_needed(gamma: float, longest_episode: int) -> int:
    """Bellman backups after which the value left out is below 5%: ``gamma^k <= 0.05``
    (k = 299 for gamma = 0.99). Without discounting, the longest logged episode.

    Not capped by the logged episodes' lengths: a better candidate's episodes run longer than
    the logger's, and its value must propagate that far back to the start states.
    """
    if gamma >= 1.0:
        return max(1, longest_episode)
    if gamma <= 0.0:
        return 1
    return max(1, math.ceil(math.log(0.05) / math.log(gamma)))


def fit_fqe(
    data: SequentialInput,
    settings: FqeSettings | None = None,
    *,
    seed: int = 0,
    progress: bool = False,
) -> FqeModel:
    """Fit the target policy's (bagged) Q-function on ``data``'s transitions (module doc)."""
    with torch_threads(1):
        return _fit(data, settings or FqeSettings(), seed, progress)


def _resample_tables(episode: np.ndarray, counts: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Per member, the transition rows of its resample, each repeated as often as its episode
    was drawn: ``(members, longest)`` row indices (padded) and ``(members,)`` lengths. A member
    whose resample holds no usable transition (tiny data) takes every row."""
    tables = []
    for member_counts in counts:
        rows = np.repeat(np.arange(len(episode)), member_counts[episode])
        tables.append(rows if len(rows) else np.arange(len(episode)))
    sizes = torch.as_tensor([len(rows) for rows in tables], dtype=torch.float32)
    table = torch.zeros(len(tables), int(sizes.max()), dtype=torch.int64)
    for b, rows in enumerate(tables):
        table[b, : len(rows)] = torch.as_tensor(rows)
    return table, sizes


def _fit(data: SequentialInput, settings: FqeSettings, seed: int, progress: bool) -> FqeModel:
    limit = detect_time_limit(data.valid, data.terminal) if settings.detect_time_limit else None
    tr = transitions(data, limit)
    assert data.states is not None  # transitions() raised otherwise
    flat_states = data.states[data.valid]
    if limit is not None:
        flat_states = with_step_position(flat_states, np.nonzero(data.valid)[1], limit)
    standardizer = Standardizer.fit(flat_states)
    counts = episode_resample_counts(data.n, settings.members, seed)
    members = len(counts)
    generator = torch.Generator().manual_seed(seed)
    heads = 1 if limit is None else 2  # U and W of learner.cpe.horizon
    n_out = data.n_actions * heads
    stack = MLPStack(
        flat_states.shape[1], n_out, settings.hidden_sizes, members, generator=generator
    )
    gamma = float(data.gamma)
    model = FqeModel(stack, standardizer, data.n_actions, counts, time_limit=limit, gamma=gamma)
    if not tr.next_probs_finite.all():
        model.diverged = True
        model.divergence_reason = "the target policy's probabilities are NaN or infinite"
        return model

    s = torch.as_tensor(standardizer.transform(tr.states), dtype=torch.float32)
    s_next = torch.as_tensor(standardizer.transform(tr.next_states), dtype=torch.float32)
    a = torch.as_tensor(tr.actions, dtype=torch.int64)
    r = torch.as_tensor(tr.rewards, dtype=torch.float32)
    boot = torch.as_tensor(tr.bootstrap, dtype=torch.float32)
    pi_next = torch.as_tensor(tr.next_probs, dtype=torch.float32)
    rem = rem_next = None
    if limit is not None:
        rem = torch.as_tensor(remaining_discount(tr.step, limit, gamma))
        rem_next = torch.as_tensor(remaining_discount(tr.next_step, limit, gamma))
    low, high = value_range(tr.rewards, gamma) if settings.clip_targets else (None, None)
    table, sizes = _resample_tables(tr.episode, counts)
    last = (sizes.long() - 1)[:, None]
    batch = min(settings.batch_size, len(r))
    optimizer = FlatAdam([(stack.params, stack.grads)])
    target = stack.clone()
    every = settings.target_update_every

    bar = None
    if progress:
        from rich.progress import Progress

        bar = Progress(transient=True)
        bar.start()
        task = bar.add_task(f"FQE ({members} members)", total=settings.n_steps)
    try:
        running, v_sum, v_max = torch.zeros(()), torch.zeros(()), torch.zeros(())
        with torch.no_grad():
            for step in range(settings.n_steps):
                if step % every == 0:
                    target.copy_from(stack)  # one Bellman backup
                # Every member its own mini-batch, drawn from its own resample's rows. The
                # targets come from the frozen networks on the mini-batch's rows only: the
                # same numbers as recomputing every row at each backup, at a fraction of the
                # cost once there are more rows than one backup's mini-batches draw.
                u = torch.rand(members, batch, generator=generator)
                rows = table.gather(1, torch.minimum((u * sizes[:, None]).long(), last))
                q_next = target.forward(s_next[rows])
                if rem_next is not None:
                    q_next = time_limited_q(q_next, rem_next[rows], data.n_actions)
                v_next = (q_next * pi_next[rows]).sum(dim=2)
                y = r[rows] + gamma * boot[rows] * v_next
                if low is not None:
                    y = y.clamp_(low, high)
                out = stack.forward(s[rows], keep=True)
                remaining = None if rem is None else rem[rows]
                loss, grad = regression_loss(out, a[rows], y, remaining, data.n_actions)
                stack.backward(grad)
                _clip_per_member(stack.grads, settings.grad_clip)
                # The learning rate decays linearly to 5% so the last iterate settles instead
                # of jittering around the fixed point (with a constant rate V(s) wandered by
                # +-3% between runs).
                optimizer.step(settings.learning_rate * max(0.05, 1.0 - step / settings.n_steps))
                running += loss
                v_sum += v_next.mean()
                v_max = torch.maximum(v_max, v_next.abs().max())
                if (step + 1) % every == 0 or step + 1 == settings.n_steps:
                    reason = _divergence(float(running), float(v_max), step + 1)
                    if reason is not None:
                        model.diverged, model.divergence_reason = True, reason
                        break
                    steps = step + 1 - (model.history[-1]["step"] if model.history else 0)
                    model.history.append(
                        {
                            "step": step + 1,
                            "loss": float(running) / (steps * members),
                            "v_next_mean": float(v_sum) / steps,
                        }
                    )
                    for total in (running, v_sum, v_max):
                        total.zero_()
                if bar is not None:
                    bar.advance(task)
    finally:
        if bar is not None:
            bar.stop()
    return model


def regression_loss(
    out: torch.Tensor,
    actions: torch.Tensor,
    targets: torch.Tensor,
    remaining: torch.Tensor | None,
    n_actions: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The squared error of the logged actions' Q ``(members, batch)`` against ``targets``, and
    its gradient with respect to the networks' outputs ``out``. With a time limit
    (``remaining`` = gamma^(L - t) per row) the outputs are the two heads of
    :func:`~learner.cpe.fqe_model.time_limited_q`, and W's gradient is -remaining times Q's."""
    if remaining is None:
        grad = torch.zeros_like(out)
        return squared_error(out, actions.unsqueeze(2), targets, grad), grad
    q = time_limited_q(out, remaining, n_actions)
    grad_q = torch.zeros_like(q)
    loss = squared_error(q, actions.unsqueeze(2), targets, grad_q)
    return loss, torch.cat([grad_q, -remaining.unsqueeze(2) * grad_q], dim=2)


def _divergence(loss_sum: float, v_max: float, step: int) -> str | None:
    """Why the fit must stop (a loss or a next-state value that is not a number or exploded
    over the last backup's steps), or None."""
    if not math.isfinite(loss_sum):
        return f"the loss became {loss_sum} by step {step}"
    if not math.isfinite(v_max) or v_max > _Q_LIMIT:
        return f"Q-values exploded (|V| = {v_max:.3g})"
    return None


def _clip_per_member(grads: torch.Tensor, max_norm: float) -> None:
    """Scale each member's gradient ``(members, P)`` to norm <= ``max_norm`` (what
    ``clip_grad_norm_`` does for one network)."""
    norms = torch.linalg.vector_norm(grads, dim=1, keepdim=True)
    grads.mul_((max_norm / (norms + 1e-6)).clamp_(max=1.0))

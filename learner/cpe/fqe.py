"""Fitted Q evaluation (Le, Voloshin & Yue 2019): the target policy's Q-function from logs.

Repeated regression on the Bellman target of the *target* policy::

    y = r_t + gamma * sum_a' pi(a'|s_{t+1}) Q_target(s_{t+1}, a')   (a next decision exists)
    y = r_t                                                         (the env ended the episode)

Truncated episodes (cut by the log, not ended by the environment) are *not* terminal: their last
step has no known next state, so it is left out of the regression and its Q comes from similar
states -- treating a cut as an ending would teach the model that the world stops there. The
targets of all rows are recomputed with a frozen copy of the network every
``target_update_every`` steps (one Bellman backup), the regression in between is mini-batch MSE
with gradient clipping and a learning rate decaying linearly to 5%. Fixed seed, fixed result.
A loss or Q-value that explodes stops the fit and is reported: its predictions are then NaN,
so every estimate built on them is NaN too.

The FQE estimate of the value is the mean over episodes of V(s_0) = sum_a pi(a|s_0) Q(s_0, a).
Its bootstrap interval resamples episodes with the model held fixed: it shows the spread of the
start states, not the model's own uncertainty.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from learner.cpe.base import Estimator
from learner.cpe.config import FqeSettings
from learner.cpe.estimate import Estimate
from learner.cpe.inputs import SequentialInput
from learner.cpe.standardize import Standardizer
from learner.cpe.torch_threads import torch_threads

__all__ = ["FittedQEvaluation", "FqeModel", "backups_needed", "fit_fqe", "value_range"]

_Q_LIMIT = 1e6


@dataclass
class FqeModel:
    """A fitted Q-function of the target policy, with its training history."""

    network: nn.Module
    standardizer: Standardizer
    n_actions: int
    history: list[dict[str, float]] = field(default_factory=list)
    diverged: bool = False
    divergence_reason: str | None = None

    def q_values(self, states: np.ndarray) -> np.ndarray:
        """Q(s, .) for raw states ``(n, F)`` -> ``(n, A)`` (all NaN if the fit diverged)."""
        if self.diverged:
            return np.full((len(states), self.n_actions), np.nan)
        z = torch.as_tensor(self.standardizer.transform(states), dtype=torch.float32)
        with torch.no_grad():
            q: np.ndarray = self.network(z).double().numpy()
        return q

    def q_hat(self, data: SequentialInput) -> np.ndarray:
        """Q on every step of ``data``'s episodes ``(E, T, A)``, zero on padding."""
        if data.states is None:
            raise ValueError("states: FQE needs the episodes' states")
        out = np.zeros((*data.valid.shape, self.n_actions))
        out[data.valid] = self.q_values(data.states[data.valid])
        return out


def _network(n_features: int, n_actions: int, hidden: list[int]) -> nn.Module:
    layers: list[nn.Module] = []
    width = n_features
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, n_actions))
    return nn.Sequential(*layers)


def _transitions(data: SequentialInput) -> dict[str, np.ndarray]:
    """Rows that enter the regression, with their next step (if any) and bootstrap flag."""
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
    used = valid & (has_next | ends)
    if not used.any():
        raise ValueError(
            "terminal: every episode is truncated after one step, FQE has nothing to learn from"
        )
    ei, ti = np.nonzero(used)
    tn = np.minimum(ti + 1, t - 1)
    return {
        "states": data.states[ei, ti],
        "actions": data.actions[ei, ti],
        "rewards": data.rewards[ei, ti],
        "bootstrap": has_next[ei, ti],
        "next_states": data.states[ei, tn],
        "next_probs": np.where(
            data.possible_mask[ei, tn], np.nan_to_num(data.target_probs[ei, tn]), 0.0
        ),
        "next_possible": data.possible_mask[ei, tn],
        "next_probs_finite": np.isfinite(data.target_probs[ei, tn]).all(axis=1) | ~has_next[ei, ti],
    }


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
    """Fit the target policy's Q-function on ``data``'s transitions (see module doc)."""
    with torch_threads(1):
        return _fit_fqe(data, settings or FqeSettings(), seed, progress)


def _fit_fqe(data: SequentialInput, settings: FqeSettings, seed: int, progress: bool) -> FqeModel:
    tr = _transitions(data)
    assert data.states is not None  # _transitions raised otherwise
    flat_states = data.states[data.valid]
    standardizer = Standardizer.fit(flat_states)
    n_actions = data.n_actions
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = _network(flat_states.shape[1], n_actions, settings.hidden_sizes)
    model = FqeModel(net, standardizer, n_actions)
    if not tr["next_probs_finite"].all():
        model.diverged = True
        model.divergence_reason = "the target policy's probabilities are NaN or infinite"
        return model

    s = torch.as_tensor(standardizer.transform(tr["states"]), dtype=torch.float32)
    s_next = torch.as_tensor(standardizer.transform(tr["next_states"]), dtype=torch.float32)
    a = torch.as_tensor(tr["actions"], dtype=torch.int64)
    r = torch.as_tensor(tr["rewards"], dtype=torch.float32)
    boot = torch.as_tensor(tr["bootstrap"], dtype=torch.float32)
    pi_next = torch.as_tensor(tr["next_probs"], dtype=torch.float32)
    gamma = float(data.gamma)
    n = len(r)
    low, high = value_range(tr["rewards"], gamma) if settings.clip_targets else (None, None)
    opt = torch.optim.Adam(net.parameters(), lr=settings.learning_rate)
    # The learning rate decays linearly to 5% so the last iterate settles instead of jittering
    # around the fixed point (with a constant rate V(s) wandered by +-3% between runs).
    schedule = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: max(0.05, 1.0 - k / max(settings.n_steps, 1))
    )
    gen = torch.Generator().manual_seed(seed)
    target_net = copy.deepcopy(net)
    y = r.clone()

    bar = None
    if progress:
        from rich.progress import Progress

        bar = Progress(transient=True)
        bar.start()
        task = bar.add_task("FQE", total=settings.n_steps)
    try:
        running = 0.0
        for step in range(settings.n_steps):
            if step % settings.target_update_every == 0:
                target_net.load_state_dict(net.state_dict())
                with torch.no_grad():
                    v_next = (target_net(s_next) * pi_next).sum(dim=1)
                    y = r + gamma * boot * v_next
                    if low is not None:
                        y = y.clamp(low, high)
                    q_max = float(v_next.abs().max()) if n else 0.0
                if not np.isfinite(q_max) or q_max > _Q_LIMIT:
                    model.diverged = True
                    model.divergence_reason = f"Q-values exploded (|V| = {q_max:.3g})"
                    break
            idx = torch.randint(0, n, (min(settings.batch_size, n),), generator=gen)
            pred = net(s[idx]).gather(1, a[idx, None]).squeeze(1)
            loss = torch.mean((pred - y[idx]) ** 2)
            if not torch.isfinite(loss):
                model.diverged = True
                model.divergence_reason = f"the loss became {float(loss)} at step {step}"
                break
            opt.zero_grad()
            torch.autograd.backward(loss)  # loss.backward(), which torch leaves untyped
            nn.utils.clip_grad_norm_(net.parameters(), settings.grad_clip)
            opt.step()
            schedule.step()
            running += loss.item()
            if (step + 1) % settings.target_update_every == 0:
                model.history.append(
                    {
                        "step": step + 1,
                        "loss": running / settings.target_update_every,
                        "v_next_mean": float(v_next.mean()) if n else 0.0,
                    }
                )
                running = 0.0
            if bar is not None:
                bar.advance(task)
    finally:
        if bar is not None:
            bar.stop()
    net.eval()
    return model


class FittedQEvaluation(Estimator[SequentialInput]):
    """FQE as an estimator: mean over episodes of the fitted V(s_0) (see module doc).

    Give ``model`` to reuse an FQE fit (the DR family uses the same Q-model); otherwise
    ``estimate`` fits one on the data it evaluates and keeps it in ``self.model``.
    """

    name = "fqe"
    label = "FQE"
    kind = "sequential"
    uses_weights = False

    def __init__(
        self,
        settings: FqeSettings | None = None,
        *,
        model: FqeModel | None = None,
        seed: int = 0,
        progress: bool = False,
        warn_min_ess: float = 100.0,
    ) -> None:
        super().__init__(warn_min_ess=warn_min_ess)
        self.settings = settings or FqeSettings()
        self.model = model
        self.seed = seed
        self.progress = progress

    def prepare(self, data: SequentialInput) -> SequentialInput:
        if self.model is None:
            self.model = fit_fqe(data, self.settings, seed=self.seed, progress=self.progress)
        return data.with_q_hat(self.model.q_hat(data))

    def columns(self, data: SequentialInput) -> np.ndarray:
        return data.v_hat[:, :1]

    def combine(self, totals: np.ndarray, data: SequentialInput) -> np.ndarray:
        return totals[:, 0] / data.n

    def estimate(
        self,
        data: SequentialInput,
        *,
        n_bootstrap: int = 300,
        alpha: float = 0.05,
        seed: int = 0,
    ) -> Estimate:
        result = super().estimate(data, n_bootstrap=n_bootstrap, alpha=alpha, seed=seed)
        if self.model is not None and self.model.diverged:
            result.warnings.insert(
                0,
                f"FQE stopped: {self.model.divergence_reason}; its Q-model cannot be used.",
            )
        backups = self.settings.n_steps // self.settings.target_update_every
        horizon = backups_needed(data.gamma, int(data.lengths.max()))
        if backups < horizon:
            result.warnings.append(
                f"FQE made only {backups} Bellman backups but rewards still weigh 5% or more "
                f"{horizon} steps ahead: value has not propagated back to the start states, so "
                "FQE underestimates long episodes (raise fqe.n_steps or lower "
                "fqe.target_update_every)."
            )
        return result

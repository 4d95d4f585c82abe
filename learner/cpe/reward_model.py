"""Reward models for the one-step DM / DR family: q(x, a) = E[r | x, a].

Fitted on the evaluation decisions themselves, *cross-fitted*: the data is cut into folds and
each decision's prediction comes from a model fitted on the other folds, so DR's correction
term ``r - q(x, a)`` is an honest out-of-sample residual (no overfitting of the model to the
rewards it corrects).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from learner.cpe.config import RewardModelSettings
from learner.cpe.standardize import Standardizer
from learner.cpe.torch_threads import torch_threads

__all__ = ["RewardModel", "cross_fitted_reward_hat", "fit_reward_model"]


@dataclass
class RewardModel:
    """A fitted q(x, a): ``predict(states (n, F)) -> (n, A)``."""

    standardizer: Standardizer
    n_actions: int
    coef: np.ndarray | None = None  # linear: (A, F + 1), intercept first
    network: nn.Module | None = None  # mlp

    def predict(self, states: np.ndarray) -> np.ndarray:
        z = self.standardizer.transform(states)
        if self.coef is not None:
            design = np.concatenate([np.ones((len(z), 1)), z], axis=1)
            linear: np.ndarray = design @ self.coef.T
            return linear
        assert self.network is not None
        with torch.no_grad():
            mlp: np.ndarray = self.network(torch.as_tensor(z, dtype=torch.float32)).double().numpy()
        return mlp


def _check(states: np.ndarray, actions: np.ndarray, rewards: np.ndarray, n_actions: int) -> None:
    n = len(rewards)
    if states.ndim != 2 or len(states) != n:
        raise ValueError(f"states: shape {states.shape}, expected ({n}, F)")
    if actions.shape != (n,):
        raise ValueError(f"actions: shape {actions.shape}, expected ({n},)")
    if n and (actions.min() < 0 or actions.max() >= n_actions):
        raise ValueError(f"actions: indices must be in [0, {n_actions})")
    if not np.all(np.isfinite(rewards)):
        raise ValueError("rewards: must be finite to fit a reward model")


def _fit_linear(
    z: np.ndarray, actions: np.ndarray, rewards: np.ndarray, n_actions: int, ridge: float
) -> np.ndarray:
    f = z.shape[1]
    coef = np.zeros((n_actions, f + 1))
    overall = float(rewards.mean()) if len(rewards) else 0.0
    penalty = ridge * np.eye(f + 1)
    penalty[0, 0] = 0.0  # the intercept is not shrunk
    for a in range(n_actions):
        rows = actions == a
        if not rows.any():
            coef[a, 0] = overall  # never logged: the only honest guess is the overall mean
            continue
        x = np.concatenate([np.ones((rows.sum(), 1)), z[rows]], axis=1)
        coef[a] = np.linalg.lstsq(x.T @ x + penalty, x.T @ rewards[rows], rcond=None)[0]
    return coef


def _fit_mlp(
    z: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    n_actions: int,
    settings: RewardModelSettings,
    seed: int,
) -> nn.Sequential:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        layers: list[nn.Module] = []
        width = z.shape[1]
        for h in settings.hidden_sizes:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        last = nn.Linear(width, n_actions)
        layers.append(last)
        net = nn.Sequential(*layers)
        with torch.no_grad():
            last.bias.fill_(float(rewards.mean()))
        opt = torch.optim.Adam(net.parameters(), lr=settings.learning_rate)
        x = torch.as_tensor(z, dtype=torch.float32)
        a = torch.as_tensor(actions, dtype=torch.int64)
        y = torch.as_tensor(rewards, dtype=torch.float32)
        gen = torch.Generator().manual_seed(seed)
        n = len(y)
        for _ in range(settings.epochs):
            order = torch.randperm(n, generator=gen)
            for start in range(0, n, settings.batch_size):
                idx = order[start : start + settings.batch_size]
                pred = net(x[idx]).gather(1, a[idx, None]).squeeze(1)
                loss = torch.mean((pred - y[idx]) ** 2)
                opt.zero_grad()
                torch.autograd.backward(loss)  # loss.backward(), which torch leaves untyped
                opt.step()
        net.eval()
    return net


def fit_reward_model(
    states: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    n_actions: int,
    settings: RewardModelSettings | None = None,
    seed: int = 0,
) -> RewardModel:
    """Fit q(x, a) on logged (state, action, reward); the settings choose linear or MLP."""
    settings = settings or RewardModelSettings()
    states = np.asarray(states, np.float64)
    actions = np.asarray(actions, np.int64)
    rewards = np.asarray(rewards, np.float64)
    _check(states, actions, rewards, n_actions)
    standardizer = Standardizer.fit(states)
    z = standardizer.transform(states)
    if settings.kind == "linear":
        coef = _fit_linear(z, actions, rewards, n_actions, settings.ridge)
        return RewardModel(standardizer, n_actions, coef=coef)
    with torch_threads(1):
        net = _fit_mlp(z, actions, rewards, n_actions, settings, seed)
    return RewardModel(standardizer, n_actions, network=net)


def cross_fitted_reward_hat(
    states: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    n_actions: int,
    settings: RewardModelSettings | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Out-of-fold predictions ``(n, A)``: each row predicted by a model that never saw it."""
    settings = settings or RewardModelSettings()
    n = len(rewards)
    folds = min(settings.cross_fit_folds, n)
    if folds <= 1:
        return fit_reward_model(states, actions, rewards, n_actions, settings, seed).predict(states)
    states = np.asarray(states, np.float64)
    actions = np.asarray(actions, np.int64)
    rewards = np.asarray(rewards, np.float64)
    fold = np.random.default_rng(seed).permutation(n) % folds
    out = np.empty((n, n_actions))
    for k in range(folds):
        held = fold == k
        model = fit_reward_model(
            states[~held], actions[~held], rewards[~held], n_actions, settings, seed + k
        )
        out[held] = model.predict(states[held])
    return out

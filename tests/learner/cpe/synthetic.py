"""Synthetic logged data whose true policy values are known exactly.

* :class:`Bandit` -- a contextual bandit over a finite set of contexts with known probabilities,
  so the true value of any policy is a finite sum, not a Monte Carlo guess.
* :class:`ChainMdp` -- a small MDP with one-hot states and a per-step end probability, so the
  true discounted value solves a linear system.

Both log with a stochastic logger and can hand out a :class:`learner.data.LoggedData` for the
end-to-end CPE and gate tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from learner.data import LoggedData

__all__ = ["Bandit", "ChainMdp", "logged_data", "softmax"]


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def logged_data(
    episode: np.ndarray,
    states: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    propensities: np.ndarray,
    terminals: np.ndarray,
    n_actions: int,
    logged_probs: np.ndarray | None = None,
) -> LoggedData:
    """LoggedData for rows already sorted by (episode, step)."""
    n = len(rewards)
    ids = np.array([f"e{e:06d}" for e in episode], dtype=object)
    starts = np.r_[True, episode[1:] != episode[:-1]]
    step = np.arange(n) - np.maximum.accumulate(np.where(starts, np.arange(n), 0))
    has_next = np.r_[episode[1:] == episode[:-1], False]
    next_states = np.zeros_like(states)
    next_states[:-1][has_next[:-1]] = states[1:][has_next[:-1]]
    mask = np.ones((n, n_actions), bool)
    return LoggedData(
        episode_ids=ids,
        steps=step.astype(np.int64),
        decision_ids=np.array([f"d{i}" for i in range(n)], dtype=object),
        states=states.astype(np.float32),
        next_states=next_states.astype(np.float32),
        actions=actions.astype(np.int64),
        rewards=rewards.astype(np.float64),
        terminals=terminals.astype(bool),
        has_next=has_next,
        possible_mask=mask,
        next_possible_mask=mask & has_next[:, None],
        propensities=propensities.astype(np.float64),
        logged_probs=(np.full((n, n_actions), np.nan) if logged_probs is None else logged_probs),
        feature_names=[f"x{i}" for i in range(states.shape[1])],
        actions_space=[str(a) for a in range(n_actions)],
        policy_versions=np.array(["v0"] * n, dtype=object),
    )


@dataclass
class Bandit:
    """K contexts x in R^d, A actions, mean reward ``q[k, a]`` (linear or not in x)."""

    contexts: np.ndarray  # (K, d)
    context_probs: np.ndarray  # (K,)
    q: np.ndarray  # (K, A) true mean rewards
    logger: np.ndarray  # (K, A) logging probabilities
    noise: float = 0.5

    @classmethod
    def make(cls, seed: int = 0, k: int = 20, d: int = 3, a: int = 3, linear: bool = True):
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(k, d))
        theta = rng.normal(size=(d, a))
        q = x @ theta if linear else np.sin(3 * x @ theta) + (x[:, :1] ** 2) * np.arange(a)
        logger = softmax(0.5 * x @ rng.normal(size=(d, a)))
        probs = rng.dirichlet(np.full(k, 5.0))
        return cls(x, probs, q, logger)

    def value(self, policy: np.ndarray) -> float:
        """Exact value of a policy given as (K, A) probabilities."""
        return float(self.context_probs @ (policy * self.q).sum(axis=1))

    def policy_toward(self, scores: np.ndarray, temperature: float) -> np.ndarray:
        return softmax(scores / temperature)

    def sample(self, n: int, seed: int):
        """(context index, action, reward, propensity) of n logged decisions."""
        rng = np.random.default_rng(seed)
        ctx = rng.choice(len(self.contexts), size=n, p=self.context_probs)
        u = rng.random(n)[:, None]
        act = (u > np.cumsum(self.logger[ctx], axis=1)).sum(axis=1)
        act = np.minimum(act, self.q.shape[1] - 1)
        rew = self.q[ctx, act] + self.noise * rng.normal(size=n)
        return ctx, act, rew, self.logger[ctx, act]

    def logged(self, n: int, seed: int, with_logged_probs: bool = False):
        ctx, act, rew, prop = self.sample(n, seed)
        lp = self.logger[ctx] if with_logged_probs else None
        data = logged_data(
            np.arange(n),
            self.contexts[ctx],
            act,
            rew,
            prop,
            np.ones(n, bool),
            self.q.shape[1],
            lp,
        )
        return data, ctx


@dataclass
class ChainMdp:
    """S one-hot states, A actions, rewards r[s, a], transitions P[s, a, s'], and at every
    step the episode ends (terminal) with probability ``p_end``."""

    r: np.ndarray
    p: np.ndarray
    start: np.ndarray
    p_end: float
    logger: np.ndarray  # (S, A)

    @classmethod
    def make(cls, seed: int = 0, s: int = 4, a: int = 2, p_end: float = 0.25):
        rng = np.random.default_rng(seed)
        r = rng.uniform(0, 1, size=(s, a))
        p = rng.dirichlet(np.ones(s), size=(s, a))
        start = rng.dirichlet(np.ones(s))
        logger = np.full((s, a), 1.0 / a)
        return cls(r, p, start, p_end, logger)

    def value(self, policy: np.ndarray, gamma: float) -> float:
        """Exact expected discounted return: V = r_pi + gamma (1 - p_end) P_pi V."""
        r_pi = (policy * self.r).sum(axis=1)
        p_pi = np.einsum("sa,sat->st", policy, self.p)
        n = len(r_pi)
        v = np.linalg.solve(np.eye(n) - gamma * (1 - self.p_end) * p_pi, r_pi)
        return float(self.start @ v)

    def logged(self, n_episodes: int, seed: int, noise: float = 0.1):
        """LoggedData of n episodes played by the logger; also the state index per row."""
        rng = np.random.default_rng(seed)
        s_n, a_n = self.r.shape
        rows: list[tuple[int, int, int, float, float, bool]] = []
        for e in range(n_episodes):
            s = rng.choice(s_n, p=self.start)
            while True:
                a = rng.choice(a_n, p=self.logger[s])
                rew = self.r[s, a] + noise * rng.normal()
                end = rng.random() < self.p_end
                rows.append((e, s, a, rew, self.logger[s, a], end))
                if end:
                    break
                s = rng.choice(s_n, p=self.p[s, a])
        arr = np.array(rows, dtype=np.float64)
        episode = arr[:, 0].astype(np.int64)
        state = arr[:, 1].astype(np.int64)
        data = logged_data(
            episode,
            np.eye(s_n)[state],
            arr[:, 2].astype(np.int64),
            arr[:, 3],
            arr[:, 4],
            arr[:, 5].astype(bool),
            a_n,
        )
        return data, state

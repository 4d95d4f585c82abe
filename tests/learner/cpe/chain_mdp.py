"""A chain MDP whose discounted values are solved exactly, for interval coverage and gate tests.

Six states in a line, two actions (0 = left, 1 = right), river-swim style: going right is
hard (the current pushes back), the reward waits at the right end, a small one at the left end.
Every step the episode ends with probability ``p_end`` (the environment ends it: terminal), so
a policy's expected discounted return solves the linear Bellman system
``V = r_pi + gamma (1 - p_end) P_pi V`` exactly. Episodes start in one of the three leftmost
states, so the start-state spread alone (what a fixed-model bootstrap sees) is small but not
zero. States are one-hot features, rewards carry Gaussian noise.

With ``time_limit`` L, an episode still running after L steps is cut there (truncated, not
terminal), as gymnasium's ``TimeLimit`` does, and the exact value is the finite-horizon one
(L backward Bellman steps).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from learner.data import LoggedData
from tests.learner.cpe.synthetic import logged_data

__all__ = ["RiverChain"]

LEFT, RIGHT = 0, 1


@dataclass(frozen=True)
class RiverChain:
    """``r[s, a]`` mean rewards, ``p[s, a, s']`` transitions, ``start`` distribution,
    per-step end probability ``p_end``, logging policy ``logger[s, a]``, reward noise."""

    r: np.ndarray
    p: np.ndarray
    start: np.ndarray
    p_end: float
    logger: np.ndarray
    noise: float
    time_limit: int | None = None

    @classmethod
    def make(
        cls,
        n_states: int = 6,
        p_end: float = 0.1,
        noise: float = 0.5,
        p_right: float = 0.5,
        time_limit: int | None = None,
    ) -> RiverChain:
        """The chain logged by a policy that goes right with probability ``p_right``."""
        s = n_states
        p = np.zeros((s, 2, s))
        for i in range(s):
            p[i, LEFT, max(i - 1, 0)] += 0.9
            p[i, LEFT, i] += 0.1
            p[i, RIGHT, min(i + 1, s - 1)] += 0.6
            p[i, RIGHT, i] += 0.3
            p[i, RIGHT, max(i - 1, 0)] += 0.1
        r = np.zeros((s, 2))
        r[0, LEFT] = 0.2
        r[s - 1, RIGHT] = 1.0
        start = np.zeros(s)
        start[:3] = [0.4, 0.3, 0.3]
        return cls(r, p, start, p_end, cls.going_right(s, p_right), noise, time_limit)

    @staticmethod
    def going_right(n_states: int, p_right: float) -> np.ndarray:
        """The policy that goes right with probability ``p_right`` in every state ``(S, 2)``."""
        return np.tile([1.0 - p_right, p_right], (n_states, 1))

    @property
    def n_states(self) -> int:
        return int(self.r.shape[0])

    def value(self, policy: np.ndarray, gamma: float) -> float:
        """Exact expected discounted return of ``policy`` ``(S, 2)`` from the start states
        (up to the time limit, if any)."""
        r_pi = (policy * self.r).sum(axis=1)
        p_pi = np.einsum("sa,sat->st", policy, self.p)
        step = gamma * (1 - self.p_end) * p_pi
        if self.time_limit is None:
            v = np.linalg.solve(np.eye(self.n_states) - step, r_pi)
        else:
            v = np.zeros(self.n_states)
            for _ in range(self.time_limit):
                v = r_pi + step @ v
        return float(self.start @ v)

    def logged(self, n_episodes: int, seed: int) -> tuple[LoggedData, np.ndarray]:
        """``n_episodes`` played by the logger, and the state index of every row."""
        rng = np.random.default_rng(seed)
        rows: list[tuple[int, int, int, float, float, bool]] = []
        for e in range(n_episodes):
            s = int(rng.choice(self.n_states, p=self.start))
            for t in range(1, (self.time_limit or np.iinfo(np.int64).max) + 1):
                a = int(rng.random() < self.logger[s, RIGHT])
                reward = self.r[s, a] + self.noise * rng.normal()
                end = bool(rng.random() < self.p_end)
                rows.append((e, s, a, reward, self.logger[s, a], end))
                if end or t == self.time_limit:
                    break
                s = int(rng.choice(self.n_states, p=self.p[s, a]))
        arr = np.array(rows, dtype=np.float64)
        state = arr[:, 1].astype(np.int64)
        data = logged_data(
            arr[:, 0].astype(np.int64),
            np.eye(self.n_states)[state],
            arr[:, 2].astype(np.int64),
            arr[:, 3],
            arr[:, 4],
            arr[:, 5].astype(bool),
            2,
        )
        return data, state

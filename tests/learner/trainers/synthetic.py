"""Small synthetic data sets with a known best action, built directly as LoggedData."""

from __future__ import annotations

import numpy as np

from learner.data import LoggedData

__all__ = ["bandit_data", "chain_mdp_data", "logged_data"]


def logged_data(
    episode_ids, steps, states, next_states, actions, rewards, terminals, has_next,
    possible_mask, next_possible_mask, feature_names, actions_space,
) -> LoggedData:  # fmt: skip
    n = len(actions)
    k = np.maximum(possible_mask.sum(axis=1), 1)
    probs = possible_mask / k[:, None]
    return LoggedData(
        episode_ids=np.asarray(episode_ids, dtype=object),
        steps=np.asarray(steps, dtype=np.int64),
        decision_ids=np.asarray(
            [f"{e}/{s}" for e, s in zip(episode_ids, steps, strict=True)], dtype=object
        ),
        states=np.asarray(states, dtype=np.float32),
        next_states=np.asarray(next_states, dtype=np.float32),
        actions=np.asarray(actions, dtype=np.int64),
        rewards=np.asarray(rewards, dtype=np.float64),
        terminals=np.asarray(terminals, dtype=bool),
        has_next=np.asarray(has_next, dtype=bool),
        possible_mask=possible_mask,
        next_possible_mask=next_possible_mask,
        propensities=probs[np.arange(n), actions],
        logged_probs=probs,
        feature_names=list(feature_names),
        actions_space=list(actions_space),
        policy_versions=np.asarray(["logger"] * n, dtype=object),
    )


def bandit_data(n: int = 3000, seed: int = 0) -> LoggedData:
    """3 actions; action 1 pays 0.9 when x0 > 0 else 0.1, action 2 pays 0.5, action 0 pays 0.2
    (plus noise). Action 1 is impossible on a fifth of the rows. Uniform logging."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)).astype(np.float32)
    possible = np.ones((n, 3), dtype=bool)
    possible[rng.random(n) < 0.2, 1] = False
    actions = np.array([rng.choice(np.flatnonzero(row)) for row in possible])
    means = np.column_stack([np.full(n, 0.2), np.where(x[:, 0] > 0, 0.9, 0.1), np.full(n, 0.5)])
    rewards = means[np.arange(n), actions] + rng.normal(0, 0.05, n)
    return logged_data(
        [f"b{i}" for i in range(n)], np.zeros(n), x, np.zeros_like(x), actions, rewards,
        np.ones(n, bool), np.zeros(n, bool), possible, np.zeros((n, 3), bool), ["x0", "x1"],
        ["0", "1", "2"],
    )  # fmt: skip


def chain_mdp_data(n_episodes: int = 600, seed: int = 0) -> LoggedData:
    """Start state s0=[0]: action 0 pays 0.5 and ends; action 1 pays 0 and moves to s1=[1],
    where either action pays 1 and ends. With gamma 0.9 the best first action is 1 (0.9 > 0.5)
    although a myopic learner would pick 0. Uniform logging."""
    rng = np.random.default_rng(seed)
    rows = {k: [] for k in ("e", "t", "s", "s2", "a", "r", "term", "has")}

    def add(e, t, s, s2, a, r, term, has):
        for key, value in zip(rows, (e, t, s, s2, a, r, term, has), strict=True):
            rows[key].append(value)

    for i in range(n_episodes):
        a0 = int(rng.integers(2))
        if a0 == 0:
            add(f"m{i}", 0, [0.0], [0.0], 0, 0.5, True, False)
        else:
            add(f"m{i}", 0, [0.0], [1.0], 1, 0.0, False, True)
            add(f"m{i}", 1, [1.0], [0.0], int(rng.integers(2)), 1.0, True, False)
    n = len(rows["a"])
    has = np.array(rows["has"])
    possible = np.ones((n, 2), dtype=bool)
    return logged_data(
        rows["e"], rows["t"], rows["s"], rows["s2"], rows["a"], rows["r"], rows["term"], has,
        possible, possible & has[:, None], ["position"], ["0", "1"],
    )  # fmt: skip

"""The true discounted value of a policy as served, the yardstick of the coverage benchmark.

In a gymnasium environment it is measured: episodes played with actions *sampled* from the
policy's probabilities (what a served policy does), states and possible actions made by the
fleet's own adapter (:func:`services.simulator.environments.open_environment`), the discounted
return averaged, and its Monte Carlo standard error kept so that a miss by less than the
measurement's own error can be told apart. The environments run in lockstep so that one batched
call of the policy serves all of them (:class:`ServedSimulator`): one TorchScript call per episode
step would cost minutes per candidate. On the chain MDP the value is solved exactly (no error).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from learner.cpe.torch_threads import torch_threads
from services.simulator.environments import AdaptedEnv, EnvAdapter, open_environment
from tests.benchmarks.cpe_coverage_policies import PolicyProbs
from tests.learner.cpe.chain_mdp import RiverChain

__all__ = ["ServedSimulator", "TrueValue", "chain_value"]

_LOCKSTEP = 250  # environments played side by side (memory: one state row each)


@dataclass(frozen=True)
class TrueValue:
    """The expected discounted return from the start states; ``se`` its Monte Carlo standard
    error (0 when ``exact``), ``mean_return`` the undiscounted mean return (nan where
    it is not computed: the chain)."""

    value: float
    se: float
    episodes: int
    exact: bool
    mean_return: float = float("nan")


def chain_value(chain: RiverChain, policy: PolicyProbs, gamma: float) -> TrueValue:
    """Exact value on the chain: the policy's probabilities in each one-hot state, then the
    Bellman linear system (:meth:`RiverChain.value`)."""
    s = chain.n_states
    probs = policy(np.eye(s, dtype=np.float32), np.ones((s, 2), bool))
    return TrueValue(chain.value(probs, gamma), 0.0, 0, exact=True)


class ServedSimulator:
    """Plays a policy as served in ``env_id``, many episodes in lockstep.

    ``env_kwargs`` go to ``gym.make`` (e.g. ``max_episode_steps``). The opened environments
    are kept between calls (``Taxi-v4`` takes ~30 ms to construct) and
    reset with each episode's seed. A discrete observation's features are computed once per
    observed value (the adapter's encoding depends on the value only), which keeps 500 one-hot
    features per Taxi step from dominating the run.
    """

    def __init__(
        self, env_id: str, env_kwargs: dict[str, Any] | None = None, lockstep: int = _LOCKSTEP
    ) -> None:
        self.env_id = env_id
        self.env_kwargs = dict(env_kwargs or {})
        self.lockstep = lockstep
        self._opened: list[AdaptedEnv] = []
        self._features: dict[tuple[str, ...], dict[int, np.ndarray]] = {}

    def close(self) -> None:
        for e in self._opened:
            e.close()
        self._opened = []

    def value(
        self,
        policy: PolicyProbs,
        feature_names: list[str],
        actions: list[str],
        *,
        episodes: int,
        gamma: float,
        seed: int,
    ) -> TrueValue:
        """Play ``episodes`` episodes with ``policy`` (states laid out in ``feature_names``
        order, probabilities over ``actions``, as in the learner's data), sampling every
        action; episode ``n`` is reset with seed ``seed + n``."""
        rng = np.random.default_rng(seed)
        discounted: list[float] = []
        returns: list[float] = []
        with torch_threads(1):  # tiny batches: a second thread only spins (see torch_threads)
            for first in range(0, episodes, self.lockstep):
                count = min(self.lockstep, episodes - first)
                d, r = self._play(policy, feature_names, actions, count, gamma, seed + first, rng)
                discounted += d
                returns += r
        values = np.asarray(discounted)
        se = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan
        return TrueValue(float(values.mean()), se, len(values), False, float(np.mean(returns)))

    def _envs(self, count: int) -> list[AdaptedEnv]:
        while len(self._opened) < count:
            self._opened.append(open_environment(self.env_id, self.env_kwargs))
        return self._opened[:count]

    def _state_row(self, adapter: EnvAdapter, obs: object, feature_names: list[str]) -> np.ndarray:
        """The observation's features in ``feature_names`` order (NaN: unknown to the data,
        as the served module's ``forward`` treats a missing feature)."""
        key = int(obs) if isinstance(obs, int | np.integer) else None
        cache = self._features.setdefault(tuple(feature_names), {})
        if key is not None and key in cache:
            return cache[key]
        state = adapter.state(obs)
        row = np.array([state.get(name, math.nan) for name in feature_names], np.float32)
        if key is not None:
            cache[key] = row
        return row

    def _play(
        self,
        policy: PolicyProbs,
        feature_names: list[str],
        actions: list[str],
        count: int,
        gamma: float,
        first_seed: int,
        rng: np.random.Generator,
    ) -> tuple[list[float], list[float]]:
        """``count`` episodes in lockstep: one policy call per step for every running one."""
        action_index = {a: i for i, a in enumerate(actions)}
        opened = self._envs(count)
        resets = [e.env.reset(seed=first_seed + i) for i, e in enumerate(opened)]
        obs = [o for o, _ in resets]
        infos = [info for _, info in resets]
        discounted = np.zeros(count)
        returns = np.zeros(count)
        discount = np.ones(count)
        running = list(range(count))
        while running:
            states = np.empty((len(running), len(feature_names)), np.float32)
            mask = np.zeros((len(running), len(actions)), bool)
            for row, i in enumerate(running):
                adapter = opened[i].adapter
                states[row] = self._state_row(adapter, obs[i], feature_names)
                for a in adapter.possible_actions(infos[i]):
                    if str(a) in action_index:
                        mask[row, action_index[str(a)]] = True
            chosen = _sample(policy(states, mask), mask, rng)
            still = []
            for row, i in enumerate(running):
                step = opened[i].env.step(int(actions[chosen[row]]))
                obs[i], reward, terminated, truncated, infos[i] = step
                discounted[i] += discount[i] * float(reward)
                returns[i] += float(reward)
                discount[i] *= gamma
                if not (terminated or truncated):
                    still.append(i)
            running = still
        return discounted.tolist(), returns.tolist()


def _sample(probs: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One action index per row drawn from ``probs`` (a float edge falls back to the most
    probable possible action)."""
    cumulative = np.cumsum(probs, axis=1)
    u = rng.random(len(probs)) * cumulative[:, -1]
    chosen: np.ndarray = np.minimum((cumulative <= u[:, None]).sum(axis=1), probs.shape[1] - 1)
    bad = ~mask[np.arange(len(chosen)), chosen]
    if bad.any():
        chosen[bad] = np.argmax(np.where(mask[bad], probs[bad], -1.0), axis=1)
    return chosen

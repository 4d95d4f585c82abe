"""Exact true values in gymnasium's tabular environments, so that the yardstick has no noise.

A simulated truth carries a Monte Carlo error: with 500 episodes, Taxi's values have standard
errors of 0.2-1.5, the same size as the gap by which some intervals missed them, so a "miss"
there could be the yardstick's. gymnasium's toy-text environments (``Taxi``, ``FrozenLake``,
``CliffWalking``) publish their model: ``P[s][a]`` lists ``(probability, next state, reward,
terminated)``, ``initial_state_distrib`` the start states. With it the value of a policy as
served up to the time limit ``L`` is a finite sum, solved by backward induction::

    V_L = 0,   Q_t(s, a) = R(s, a) + gamma * sum_s' P(s'|s, a) (1 - done) V_t+1(s'),
    V_t(s) = sum_a pi(a|s) Q_t(s, a),   value = sum_s p0(s) V_0(s)

``pi`` is what :func:`tests.benchmarks.cpe_coverage_truth._sample` draws: the policy's
probabilities on the state's features (the fleet's adapter, as in the logs) normalized, with
any mass on an impossible action moved to the most probable possible one.

An environment whose model does not describe its steps is refused (:func:`tabular_model`
returns None and the benchmark simulates): Taxi with ``fickle_passenger``, whose passenger
changes destination outside ``P``, and any environment without ``P``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from services.simulator.environments import open_environment
from tests.benchmarks.cpe_coverage_policies import PolicyProbs
from tests.benchmarks.cpe_coverage_truth import TrueValue

__all__ = ["TabularModel", "tabular_model"]


@dataclass(frozen=True, eq=False)
class TabularModel:
    """An environment's published model, as flat transition arrays.

    Transition ``k`` leaves state ``source[k]`` by action ``action[k]`` (an index into the
    environment's actions) with ``probability[k]`` to ``target[k]``, earning ``reward[k]``,
    ending the episode when ``terminated[k]``. ``states[s]`` is state ``s``'s feature
    mapping as the fleet logs it, ``possible[s]`` its possible actions.
    """

    env_id: str
    horizon: int
    start: np.ndarray
    states: list[dict[str, float]]
    possible: list[list[int]]
    source: np.ndarray
    action: np.ndarray
    probability: np.ndarray
    target: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray

    @property
    def n_states(self) -> int:
        return len(self.states)

    def served_probs(
        self, policy: PolicyProbs, feature_names: list[str], actions: list[str]
    ) -> np.ndarray:
        """``(states, env actions)``: the probability of each action as served (module doc)."""
        index = {a: i for i, a in enumerate(actions)}
        rows = np.array(
            [[state.get(name, math.nan) for name in feature_names] for state in self.states],
            np.float32,
        )
        mask = np.zeros((self.n_states, len(actions)), bool)
        for s, possible in enumerate(self.possible):
            for a in possible:
                if str(a) in index:
                    mask[s, index[str(a)]] = True
        probs = np.asarray(policy(rows, mask), np.float64)
        probs = probs / probs.sum(axis=1, keepdims=True)
        stray = np.where(mask, 0.0, probs).sum(axis=1)
        probs = np.where(mask, probs, 0.0)
        best = np.argmax(np.where(mask, probs, -1.0), axis=1)
        probs[np.arange(self.n_states), best] += stray
        n_env_actions = int(self.action.max()) + 1
        served = np.zeros((self.n_states, n_env_actions))
        for j, name in enumerate(actions):
            served[:, int(name)] = probs[:, j]
        return served

    def value(self, served: np.ndarray, gamma: float, horizon: int | None = None) -> float:
        """The expected discounted return of ``served`` (:meth:`served_probs`) from the start
        states, episodes cut after ``horizon`` steps (the registered time limit by default)."""
        steps = self.horizon if horizon is None else horizon
        n_actions = served.shape[1]
        pair = self.source * n_actions + self.action
        size = self.n_states * n_actions
        immediate = np.bincount(pair, self.probability * self.reward, minlength=size)
        go_on = self.probability * ~self.terminated
        v = np.zeros(self.n_states)
        for _ in range(steps):
            later = np.bincount(pair, go_on * v[self.target], minlength=size)
            q = (immediate + gamma * later).reshape(self.n_states, n_actions)
            v = (served * q).sum(axis=1)
        return float(self.start @ v)

    def true_value(
        self,
        policy: PolicyProbs,
        feature_names: list[str],
        actions: list[str],
        *,
        gamma: float,
        horizon: int | None = None,
    ) -> TrueValue:
        """The policy's exact :class:`TrueValue` (no error), its undiscounted return too."""
        served = self.served_probs(policy, feature_names, actions)
        value = self.value(served, gamma, horizon)
        return TrueValue(value, 0.0, 0, exact=True, mean_return=self.value(served, 1.0, horizon))


def tabular_model(env_id: str, env_kwargs: dict[str, Any] | None = None) -> TabularModel | None:
    """``env_id``'s published model, or None when it has none that describes its steps."""
    with open_environment(env_id, env_kwargs) as opened:
        env = opened.env
        inner: Any = env.unwrapped
        model = getattr(inner, "P", None)
        start = getattr(inner, "initial_state_distrib", None)
        if model is None or start is None or getattr(inner, "fickle_passenger", False):
            return None
        horizon = _time_limit(env)
        if horizon is None:
            return None
        n_states = len(start)
        states = [opened.adapter.state(s) for s in range(n_states)]
        masks = [_info(inner, s) for s in range(n_states)]
        possible = [opened.adapter.possible_actions(info) for info in masks]
        rows = [
            (s, a, p, s2, r, done)
            for s in range(n_states)
            for a, outcomes in model[s].items()
            for p, s2, r, done in outcomes
        ]
    columns = list(zip(*rows, strict=True))
    return TabularModel(
        env_id,
        horizon,
        np.asarray(start, np.float64),
        states,
        possible,
        np.asarray(columns[0], np.int64),
        np.asarray(columns[1], np.int64),
        np.asarray(columns[2], np.float64),
        np.asarray(columns[3], np.int64),
        np.asarray(columns[4], np.float64),
        np.asarray(columns[5], bool),
    )


def _time_limit(env: gym.Env[Any, Any]) -> int | None:
    spec = env.spec
    steps = None if spec is None else spec.max_episode_steps
    return int(steps) if steps else None


def _info(inner: Any, state: int) -> dict[str, Any]:
    """The step info the adapter reads the possible actions from (Taxi's ``action_mask``)."""
    mask = getattr(inner, "action_mask", None)
    return {} if mask is None else {"action_mask": mask(state)}

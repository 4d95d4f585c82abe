"""The fleet: gymnasium environments playing production traffic through the SDK.

Each episode is played by an *acting policy* (anything with ``act(episode_id, state,
possible_actions) -> Decision``: the built-in uniform policy, or the SDK's ``PolicyClient``
serving a registry version) and, when a ``DecisionLogger`` is given, every decision is logged with
the propensity the policy really used, every reward with its step, and the episode's end with
``terminal`` (the environment ended it) or not (cut by the time limit).

A policy that has ``reward`` and ``end_episode`` methods (``PolicyClient``) is told about both as
well: it counts reward per policy version in its metrics, forgets the episode's routing at its
end, and — when it has a ``DecisionLogger`` attached — logs the episode itself. Give the fleet a
``logger`` *or* attach one to the client, not both, or every event is logged twice.

Any gymnasium environment with a ``Discrete`` action space can be played: registered ids,
``module:Class`` and ``module:function`` (:mod:`services.simulator.environments` makes and adapts
it: how an observation becomes the state map, and which actions are possible at each step).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from schemas.names import UNIFORM_VERSION
from services.simulator.environments import open_environment

__all__ = [
    "Acted",
    "ActingPolicy",
    "Decision",
    "EpisodeStats",
    "UniformPolicy",
    "play_episodes",
]


@dataclass(frozen=True)
class Decision:
    """What an acting policy chose, with the distribution it sampled from."""

    action: int | str
    propensity: float
    action_probs: list[float]
    policy_version: str


class Acted(Protocol):
    """What ``act`` returns: :class:`Decision`, or anything with its attributes (the SDK's
    ``PolicyAct``)."""

    @property
    def action(self) -> int | str: ...
    @property
    def propensity(self) -> float: ...
    @property
    def action_probs(self) -> list[float]: ...
    @property
    def policy_version(self) -> str: ...


class ActingPolicy(Protocol):
    def act(
        self, episode_id: str, state: dict[str, float], possible_actions: Sequence[int | str]
    ) -> Acted: ...


class UniformPolicy:
    """Chooses uniformly among the possible actions (the logging policy of a cold start)."""

    version = UNIFORM_VERSION

    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(seed)

    def act(
        self, episode_id: str, state: dict[str, float], possible_actions: Sequence[int | str]
    ) -> Decision:
        n = len(possible_actions)
        index = self._rng.randrange(n)
        return Decision(possible_actions[index], 1.0 / n, [1.0 / n] * n, self.version)


@dataclass
class EpisodeStats:
    """Per-episode returns and who played them."""

    returns: list[float] = field(default_factory=list)
    discounted_returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)

    def extend(self, other: EpisodeStats) -> None:
        self.returns += other.returns
        self.discounted_returns += other.discounted_returns
        self.lengths += other.lengths
        self.versions += other.versions

    def mean_return(self, version: str | None = None) -> float:
        picked = [
            r for r, v in zip(self.returns, self.versions, strict=True) if version in (None, v)
        ]
        return float(np.mean(picked)) if picked else float("nan")

    def summary(self, version: str) -> tuple[float | None, float | None, int]:
        """Mean return, mean discounted return and episode count of ``version``'s episodes
        (the means are ``None`` when it played none)."""
        picked = [i for i, v in enumerate(self.versions) if v == version]
        if not picked:
            return None, None, 0
        return (
            float(np.mean([self.returns[i] for i in picked])),
            float(np.mean([self.discounted_returns[i] for i in picked])),
            len(picked),
        )


def play_episodes(
    env_id: str,
    episodes: int,
    policy: ActingPolicy,
    logger: Any | None = None,
    seed: int = 0,
    episode_prefix: str = "ep",
    gamma: float = 0.99,
    on_episode: Callable[[], None] | None = None,
    *,
    env_kwargs: Mapping[str, Any] | None = None,
) -> EpisodeStats:
    """Play ``episodes`` episodes of ``env_id`` with ``policy``, logging through ``logger``.

    ``env_id`` is any env spec :func:`~services.simulator.environments.make_env` takes, made
    with ``env_kwargs``; one it cannot play raises ``EnvironmentRefused`` (a ``ValueError``).
    Episode ``n`` is reset with seed ``seed + n`` and named ``f"{episode_prefix}-{n}"``, so a
    run is reproducible and its episode ids are unique per prefix.
    """
    policy_reward = getattr(policy, "reward", None)
    policy_end = getattr(policy, "end_episode", None)
    opened = open_environment(env_id, env_kwargs)
    env, adapter = opened.env, opened.adapter
    env.action_space.seed(seed)
    stats = EpisodeStats()
    try:
        for n in range(episodes):
            episode_id = f"{episode_prefix}-{n}"
            observation, info = env.reset(seed=seed + n)
            total, discounted, discount, step, version = 0.0, 0.0, 1.0, 0, ""
            while True:
                state = adapter.state(observation)
                possible = adapter.possible_actions(info)
                decision = policy.act(episode_id, state, possible)
                version = decision.policy_version
                observation, step_reward, terminated, truncated, info = env.step(decision.action)
                reward = float(step_reward)
                if policy_reward is not None:
                    policy_reward(episode_id, reward, step=step)
                if logger is not None:
                    logger.decision(
                        episode_id,
                        step,
                        state,
                        decision.action,
                        list(possible),
                        decision.propensity,
                        decision.policy_version,
                        action_probs=decision.action_probs,
                    )
                    logger.reward(episode_id, step, reward)
                total += reward
                discounted += discount * reward
                discount *= gamma
                if terminated or truncated:
                    if logger is not None:
                        logger.end_episode(episode_id, terminal=bool(terminated), last_step=step)
                    if policy_end is not None:
                        policy_end(episode_id, terminal=bool(terminated))
                    break
                step += 1
            stats.returns.append(total)
            stats.discounted_returns.append(discounted)
            stats.lengths.append(step + 1)
            stats.versions.append(version)
            if on_episode is not None:
                on_episode()
    finally:
        env.close()
    return stats

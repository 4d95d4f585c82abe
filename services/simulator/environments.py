"""Any gymnasium environment with a discrete action space, adapted to the fleet.

Why this module exists: the fleet logs decisions in one contract (a flat state map, a list of
possible actions, an action chosen from it), while environments come in many shapes. This module
makes an environment from what a user types after ``--env`` and decides, once and before any
worker starts, whether policyloop can play it; then it turns each observation into the state map
(:mod:`services.simulator.observations`) and each step's ``info`` into the possible actions.

An env spec is one of

* a registered gymnasium id, made with ``gym.make(id, **env_kwargs)`` (``CartPole-v1``,
  ``Taxi-v4``, ``policyloop/Recommendation-v0``, ...; ``max_episode_steps`` is one kwarg);
* ``module:Class`` — a ``gymnasium.Env`` subclass — or ``module:function`` returning a
  ``gymnasium.Env``, both called with ``env_kwargs`` (and made through ``gym.make`` so the same
  checks and ``max_episode_steps`` apply);
* ``module:EnvId`` — gymnasium's own form: importing ``module`` registers ``EnvId``.

Possible actions: every value of the ``Discrete(n, start)`` action space, narrowed by the step's
``info["possible_actions"]`` (the recommendation bandit's available items) and by
``info["action_mask"]`` (0/1 per action, e.g. Taxi). Other action spaces are refused in one line.
"""

from __future__ import annotations

import importlib
import inspect
import json
import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import EnvSpec

from schemas.events import LIMITS
from services.simulator import recommendation_env
from services.simulator.observations import ObservationEncoder, provided_feature_names

__all__ = [
    "AdaptedEnv",
    "DiscreteActions",
    "EnvAdapter",
    "EnvironmentRefused",
    "check_environment",
    "make_env",
    "open_environment",
    "parse_env_kwargs",
]

#: Registered with gymnasium when this module is imported (workers import it too).
BANDIT_ENV_ID = recommendation_env.ENV_ID

_HOW_TO = (
    "give a registered gymnasium id (e.g. CartPole-v1, Taxi-v4, "
    f"{BANDIT_ENV_ID}) or your own environment as 'module:Class' or 'module:function'"
)


class EnvironmentRefused(ValueError):
    """The env spec cannot be made or played; the message is one line naming the spec."""


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def parse_env_kwargs(text: str | None) -> dict[str, Any]:
    """The kwargs of ``--env-kwargs``: a JSON object (empty or ``None`` gives ``{}``)."""
    if text is None or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ValueError(f"must be a JSON object of keyword arguments, got {type(value).__name__}")
    return value


def _make_registered(env_id: str, kwargs: dict[str, Any]) -> gym.Env:
    try:
        return gym.make(env_id, **kwargs)
    except gym.error.UnregisteredEnv as exc:
        raise EnvironmentRefused(
            f"env {env_id!r} is not registered with gymnasium ({' '.join(str(exc).split())}); "
            f"{_HOW_TO}"
        ) from None
    except gym.error.DeprecatedEnv as exc:
        raise EnvironmentRefused(f"env {env_id!r}: {' '.join(str(exc).split())}") from None


def _make_own(env_id: str, kwargs: dict[str, Any]) -> gym.Env:
    module_name, _, attr = env_id.partition(":")
    if not module_name or not attr:
        raise EnvironmentRefused(f"env {env_id!r}: expected 'module:Class'; {_HOW_TO}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise EnvironmentRefused(
            f"env {env_id!r}: cannot import module {module_name!r} ({_one_line(exc)})"
        ) from None
    target = getattr(module, attr, None)
    if target is None:
        if attr in gym.registry:
            return _make_registered(attr, kwargs)
        raise EnvironmentRefused(
            f"env {env_id!r}: module {module_name!r} has no attribute {attr!r} and registers no "
            f"environment of that id; {_HOW_TO}"
        )
    if inspect.isclass(target) and not issubclass(target, gym.Env):
        raise EnvironmentRefused(f"env {env_id!r}: {attr} is a class but not a gymnasium.Env")
    if not callable(target):
        raise EnvironmentRefused(
            f"env {env_id!r}: {attr} is neither a gymnasium.Env subclass nor a function"
        )
    try:
        spec = EnvSpec(id=env_id, entry_point=target)
    except gym.error.Error:  # an id gymnasium cannot parse; the name is only a label
        spec = EnvSpec(id=attr, entry_point=target)
    return gym.make(spec, **kwargs)


def make_env(env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> gym.Env:
    """Make the environment ``env_id`` names (see the module) with ``env_kwargs``.

    Raises :class:`EnvironmentRefused` with one line for an unknown id, a module that does not
    import, or an environment that fails to construct (e.g. a kwarg it does not take).
    """
    kwargs = dict(env_kwargs or {})
    try:
        env = _make_own(env_id, kwargs) if ":" in env_id else _make_registered(env_id, kwargs)
    except EnvironmentRefused:
        raise
    except Exception as exc:
        shown = f" with kwargs {json.dumps(kwargs)}" if kwargs else ""
        raise EnvironmentRefused(
            f"env {env_id!r} could not be made{shown}: {_one_line(exc)}"
        ) from exc
    if not isinstance(env, gym.Env):
        raise EnvironmentRefused(f"env {env_id!r}: got a {type(env).__name__}, not a gymnasium.Env")
    return env


@dataclass(frozen=True)
class DiscreteActions:
    """The actions of a ``Discrete(n, start)`` space, narrowed per step by ``info``."""

    env_id: str
    actions: tuple[int, ...]

    @classmethod
    def for_space(cls, env_id: str, space: spaces.Space[Any]) -> DiscreteActions:
        if not isinstance(space, spaces.Discrete):
            raise EnvironmentRefused(
                f"env {env_id!r}: action space {space} is not supported; policyloop simulates "
                "environments with a Discrete action space"
            )
        start, n = int(space.start), int(space.n)
        if n > LIMITS["possible_actions"]:
            raise EnvironmentRefused(
                f"env {env_id!r}: action space {space} has {n} actions; a logged decision "
                f"lists at most {LIMITS['possible_actions']}"
            )
        return cls(env_id, tuple(range(start, start + n)))

    def possible(self, info: Mapping[str, Any]) -> list[int]:
        """The actions possible at this step (in ``possible_actions``' order when given)."""
        chosen = list(self.actions)
        if "possible_actions" in info:
            try:
                listed = [operator.index(a) for a in info["possible_actions"]]
            except TypeError:
                raise ValueError(
                    f"env {self.env_id!r}: info['possible_actions'] must list integer actions, "
                    f"got {info['possible_actions']!r}"
                ) from None
            unknown = sorted(set(listed) - set(self.actions))
            if unknown:
                raise ValueError(
                    f"env {self.env_id!r}: info['possible_actions'] has {unknown}, outside the "
                    "action space"
                )
            chosen = list(dict.fromkeys(listed))
        if "action_mask" in info:
            mask = np.asarray(info["action_mask"]).reshape(-1)
            if len(mask) != len(self.actions):
                raise ValueError(
                    f"env {self.env_id!r}: info['action_mask'] has {len(mask)} entries for "
                    f"{len(self.actions)} actions"
                )
            allowed = {a for a, ok in zip(self.actions, mask.tolist(), strict=True) if ok}
            chosen = [a for a in chosen if a in allowed]
        if not chosen:
            raise ValueError(f"env {self.env_id!r}: no action is possible at this step")
        return chosen


@dataclass(frozen=True)
class EnvAdapter:
    """How the fleet talks to one environment: its state map and its possible actions."""

    env_id: str
    observations: ObservationEncoder
    actions: DiscreteActions

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.observations.feature_names

    @classmethod
    def for_env(cls, env_id: str, env: gym.Env) -> EnvAdapter:
        """Check ``env``'s spaces; :class:`EnvironmentRefused` says in one line what is not
        supported."""
        actions = DiscreteActions.for_space(env_id, env.action_space)
        try:
            observations = ObservationEncoder.for_space(
                env_id,
                env.observation_space,
                provided_feature_names(env),
                max_features=LIMITS["state_features"],
            )
        except ValueError as exc:
            raise EnvironmentRefused(str(exc)) from None
        return cls(env_id, observations, actions)

    def state(self, observation: Any) -> dict[str, float]:
        return self.observations.state(observation)

    def possible_actions(self, info: Mapping[str, Any]) -> list[int]:
        return self.actions.possible(info)


@dataclass
class AdaptedEnv:
    """A made environment and its adapter; close it when done (or use ``with``)."""

    env: gym.Env
    adapter: EnvAdapter

    def close(self) -> None:
        self.env.close()

    def __enter__(self) -> AdaptedEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_environment(env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> AdaptedEnv:
    """Make ``env_id`` and adapt it; :class:`EnvironmentRefused` if it cannot be played."""
    env = make_env(env_id, env_kwargs)
    try:
        return AdaptedEnv(env, EnvAdapter.for_env(env_id, env))
    except BaseException:
        env.close()
        raise


def check_environment(env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> EnvAdapter:
    """Make ``env_id`` once, check that policyloop can play it, close it: call this before
    starting workers so that a refusal is one line, not one traceback per worker."""
    with open_environment(env_id, env_kwargs) as opened:
        return opened.adapter

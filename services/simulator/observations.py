"""Observations as the flat state map that every logged decision carries.

Why this module exists: the event contract's ``state`` is a flat ``name -> finite number`` map
and the learner learns from those names, so any gymnasium observation space must flatten to the
*same* names at every step of every run, and names an environment already has (CartPole's
``pole_angle``) should survive so that logged data stays readable and comparable across runs.

Naming rules (``obs`` is the root name):

* ``Box``, ``MultiBinary``, ``MultiDiscrete``: one feature per element, in C order, named
  ``<name>_<i>`` for a vector (``obs_0``, ``obs_1``, ...), ``<name>_<i>_<j>`` for a matrix (the
  element's multi-index joined by ``_``), and ``<name>`` alone for a scalar. ``MultiBinary``
  values are 0/1 and ``MultiDiscrete`` values are the numbers themselves.
* ``Discrete(n, start=s)``: one-hot, one feature per value, named ``<name>=<value>``
  (``obs=0`` ... ``obs=499`` for Taxi); the observed value's feature is 1, the others 0.
* ``Dict``: each entry under its key, ``<key>`` at the root and ``<name>.<key>`` below it.
* ``Tuple``: each component under its index, ``<name>.<i>`` (``obs.0``, ``obs.1``, ...).

Names the environment provides replace the generated ones at the top level, one per *slot*: an
element of a top-level ``Box``/``MultiBinary``/``MultiDiscrete``, a component of a top-level
``Tuple``, an entry of a top-level ``Dict`` (in the space's order), or the single top-level
``Discrete``. They come from a ``feature_names`` attribute of the unwrapped environment, else
from :data:`KNOWN_FEATURE_NAMES` for gymnasium's own environments (keyed by the id's name, any
version), and apply only when no wrapper changed the observation space.

A state value that is not finite (NaN, infinity) is refused with the feature named: the contract
carries finite numbers only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["KNOWN_FEATURE_NAMES", "ObservationEncoder", "provided_feature_names"]

ROOT = "obs"

#: State names of gymnasium's own environments, keyed by the id's name (version left out).
KNOWN_FEATURE_NAMES: dict[str, tuple[str, ...]] = {
    "CartPole": ("cart_position", "cart_velocity", "pole_angle", "pole_angular_velocity"),
    "MountainCar": ("position", "velocity"),
    "MountainCarContinuous": ("position", "velocity"),
    "Acrobot": (
        "cos_theta1",
        "sin_theta1",
        "cos_theta2",
        "sin_theta2",
        "theta1_angular_velocity",
        "theta2_angular_velocity",
    ),
    "Pendulum": ("x", "y", "angular_velocity"),
    "LunarLander": (
        "x",
        "y",
        "x_velocity",
        "y_velocity",
        "angle",
        "angular_velocity",
        "left_leg_contact",
        "right_leg_contact",
    ),
    "Blackjack": ("player_sum", "dealer_card", "usable_ace"),
}


@dataclass(frozen=True)
class _Leaf:
    """One part of the observation that becomes features: where it is, and how it is named."""

    path: tuple[str | int, ...]
    names: tuple[str, ...]
    one_hot_start: int | None = None  # set for a Discrete: the value of the first name


def provided_feature_names(env: gym.Env) -> list[str] | None:
    """The names ``env`` provides for its top-level slots, or ``None`` when it provides none
    (or a wrapper changed the observation space, so its own names no longer apply)."""
    unwrapped = env.unwrapped
    if env.observation_space != unwrapped.observation_space:
        return None
    names = getattr(unwrapped, "feature_names", None)
    if names is None and env.spec is not None and env.spec.namespace is None:
        names = KNOWN_FEATURE_NAMES.get(env.spec.name)
    if names is None or callable(names):
        return None
    return [str(name) for name in names]


def _slots(space: spaces.Space[Any]) -> int:
    if isinstance(space, spaces.Discrete):
        return 1
    if isinstance(space, spaces.Dict | spaces.Tuple):
        return len(space.spaces)
    return math.prod(space.shape or ())


def _element_names(name: str, shape: tuple[int, ...]) -> tuple[str, ...]:
    if not shape:
        return (name,)
    return tuple(f"{name}_{'_'.join(map(str, index))}" for index in np.ndindex(*shape))


def _leaves(
    env_id: str,
    space: spaces.Space[Any],
    path: tuple[str | int, ...],
    name: str,
    slot_names: Sequence[str] | None,
) -> list[_Leaf]:
    if isinstance(space, spaces.Discrete):
        start, n = int(space.start), int(space.n)
        base = slot_names[0] if slot_names else name
        return [_Leaf(path, tuple(f"{base}={v}" for v in range(start, start + n)), start)]
    if isinstance(space, spaces.Box | spaces.MultiBinary | spaces.MultiDiscrete):
        shape = tuple(space.shape or ())
        return [_Leaf(path, tuple(slot_names) if slot_names else _element_names(name, shape))]
    if isinstance(space, spaces.Dict):
        leaves = []
        for i, (key, sub) in enumerate(space.spaces.items()):
            child = slot_names[i] if slot_names else (key if not path else f"{name}.{key}")
            leaves += _leaves(env_id, sub, (*path, key), child, None)
        return leaves
    if isinstance(space, spaces.Tuple):
        leaves = []
        for i, sub in enumerate(space.spaces):
            child = slot_names[i] if slot_names else f"{name}.{i}"
            leaves += _leaves(env_id, sub, (*path, i), child, None)
        return leaves
    raise ValueError(
        f"env {env_id!r}: observation space {space} is not supported; policyloop flattens Box, "
        "Discrete, MultiBinary, MultiDiscrete, Dict and Tuple observations"
    )


@dataclass(frozen=True)
class ObservationEncoder:
    """Turns one environment's observations into its state map (see the module's naming rules)."""

    env_id: str
    feature_names: tuple[str, ...]
    leaves: tuple[_Leaf, ...]

    @classmethod
    def for_space(
        cls,
        env_id: str,
        space: spaces.Space[Any],
        provided: Sequence[str] | None = None,
        max_features: int | None = None,
    ) -> ObservationEncoder:
        """The encoder of ``space``; ``provided`` names the top-level slots (see the module).

        Raises ``ValueError`` (one line, naming ``env_id``) for an unsupported space, provided
        names that do not fit it, repeated names, or more than ``max_features`` features.
        """
        if provided is not None and len(provided) != _slots(space):
            raise ValueError(
                f"env {env_id!r}: it names {len(provided)} features but its observation space "
                f"{space} has {_slots(space)}"
            )
        leaves = tuple(_leaves(env_id, space, (), ROOT, provided))
        names = tuple(name for leaf in leaves for name in leaf.names)
        if len(set(names)) != len(names):
            repeated = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"env {env_id!r}: feature names repeat: {repeated[:5]}")
        if max_features is not None and len(names) > max_features:
            raise ValueError(
                f"env {env_id!r}: observation space {space} flattens to {len(names)} features; "
                f"a logged state holds at most {max_features}"
            )
        return cls(env_id, names, leaves)

    def state(self, observation: Any) -> dict[str, float]:
        """The state map of one observation; ``ValueError`` names a feature that is not finite
        or a value outside its space."""
        state: dict[str, float] = {}
        for leaf in self.leaves:
            value = observation
            for key in leaf.path:
                value = value[key]
            if leaf.one_hot_start is not None:
                index = int(value) - leaf.one_hot_start
                if not 0 <= index < len(leaf.names):
                    raise ValueError(
                        f"env {self.env_id!r}: observation {int(value)} is outside "
                        f"{leaf.names[0]}..{leaf.names[-1]}"
                    )
                for i, name in enumerate(leaf.names):
                    state[name] = 1.0 if i == index else 0.0
                continue
            values = np.asarray(value, dtype=np.float64).reshape(-1)
            if len(values) != len(leaf.names):
                raise ValueError(
                    f"env {self.env_id!r}: observation has {len(values)} values where its space "
                    f"has {len(leaf.names)} ({leaf.names[0]}...)"
                )
            for name, number in zip(leaf.names, values.tolist(), strict=True):
                if not math.isfinite(number):
                    raise ValueError(
                        f"env {self.env_id!r}: state feature {name!r} is {number}; "
                        "state values must be finite"
                    )
                state[name] = number
        return state

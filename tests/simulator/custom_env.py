"""Small environments of a user's own, played through ``module:Class`` and ``module:function``.

They exist for the simulator's tests: a discrete-action walk with a ``Dict`` observation (and a
``Discrete`` action space that does not start at 0), one with a ``MultiDiscrete`` action space
that the fleet must refuse, and one whose observation is not finite.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["MultiDiscreteActionEnv", "NanObservationEnv", "TinyEnv", "make_tiny_env"]


class TinyEnv(gym.Env):
    """A walk on a line of ``size`` cells: step -1, 0 or +1 until the cell ``goal`` is reached.

    Observation: ``{"position": Box(shape=(2,)), "goal": Discrete(size)}`` (the position and the
    distance left); actions ``Discrete(3, start=-1)``; reward -1 per step; the walk is cut after
    ``limit`` steps.
    """

    metadata = {"render_modes": []}

    def __init__(self, size: int = 5, limit: int = 20) -> None:
        self.size = size
        self.limit = limit
        self.observation_space = spaces.Dict(
            {
                "position": spaces.Box(-size, size, shape=(2,), dtype=np.float32),
                "goal": spaces.Discrete(size),
            }
        )
        self.action_space = spaces.Discrete(3, start=-1)
        self._position = 0
        self._goal = 0
        self._steps = 0

    def _observation(self) -> dict[str, Any]:
        position = np.array([self._position, self._goal - self._position], dtype=np.float32)
        return {"position": position, "goal": self._goal}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        self._position = 0
        self._goal = int(self.np_random.integers(1, self.size))
        self._steps = 0
        return self._observation(), {}

    def step(self, action: int) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        if action not in (-1, 0, 1):
            raise ValueError(f"action={action}: must be -1, 0 or 1")
        self._position = int(np.clip(self._position + action, 0, self.size - 1))
        self._steps += 1
        terminated = self._position == self._goal
        truncated = not terminated and self._steps >= self.limit
        return self._observation(), -1.0, terminated, truncated, {}


def make_tiny_env(**kwargs: Any) -> TinyEnv:
    """``TinyEnv`` made by a function, as a user's factory would."""
    return TinyEnv(**kwargs)


class MultiDiscreteActionEnv(gym.Env):
    """Two choices per step at once: an action space policyloop does not play."""

    metadata = {"render_modes": []}

    def __init__(self) -> None:
        self.observation_space = spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)
        self.action_space = spaces.MultiDiscrete([2, 3])

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        return np.zeros(1, dtype=np.float32), {}

    def step(self, action: Any):
        return np.zeros(1, dtype=np.float32), 0.0, True, False, {}


class NanObservationEnv(gym.Env):
    """Observes NaN in its second feature."""

    metadata = {"render_modes": []}

    def __init__(self) -> None:
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float64)
        self.action_space = spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        return np.array([0.0, np.nan]), {}

    def step(self, action: int):
        return np.array([0.0, np.nan]), 0.0, True, False, {}

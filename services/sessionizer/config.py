"""The parameters of the sessionization rules, in milliseconds and counts.

Apart from the settings (``settings.py``, seconds, environment and flags) because the pure rules
take exactly these and nothing else; ``worker.session_config`` converts one into the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["SessionConfig"]


@dataclass(frozen=True)
class SessionConfig:
    """Windows, timeouts and state caps of one partition's sessionizer.

    ``max_future_skew_ms``: an event stamped further ahead of its arrival is a dead letter
    (``invalid:ts``); nearer ones move the watermark only to their arrival (``watermark.py``).
    ``max_open_episodes``, ``max_episode_events``, ``max_episode_event_ids``: the state caps
    (``state_limits.py``).
    """

    reward_window_ms: int = 60_000
    aggregation: Literal["sum", "first"] = "sum"
    default_reward: float = 0.0
    episode_timeout_ms: int = 600_000
    closed_memory_episodes: int = 100_000
    max_future_skew_ms: int = 300_000
    max_open_episodes: int = 100_000
    max_episode_events: int = 10_000
    max_episode_event_ids: int = 20_000

    def __post_init__(self) -> None:
        if self.aggregation not in ("sum", "first"):
            raise ValueError(f"aggregation={self.aggregation!r}: must be 'sum' or 'first'")
        if self.reward_window_ms < 0:
            raise ValueError(f"reward_window_ms={self.reward_window_ms}: must be >= 0")
        if self.episode_timeout_ms <= 0:
            raise ValueError(f"episode_timeout_ms={self.episode_timeout_ms}: must be > 0")
        if self.max_future_skew_ms < 0:
            raise ValueError(f"max_future_skew_ms={self.max_future_skew_ms}: must be >= 0")
        for name in ("max_open_episodes", "max_episode_events", "max_episode_event_ids"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: must be >= 1")

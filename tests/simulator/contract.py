"""A logger double that checks every event against the contract, for the simulator's tests."""

from __future__ import annotations

import itertools

from schemas.events import EpisodeStepTracker, validate_event

__all__ = ["ContractRecorder"]


class ContractRecorder:
    """Builds each logged event as the SDK would and validates it against schemas/."""

    def __init__(self):
        self.events = []
        self._ids = itertools.count()
        self._tracker = EpisodeStepTracker()

    def _add(self, event):
        event["event_id"] = f"e{next(self._ids)}"
        event["ts"] = 0
        validate_event(event)
        self._tracker.check(event)
        self.events.append(event)

    def decision(self, episode_id, step, state, action, possible, propensity, version, **kw):
        self._add(
            {
                "type": "decision",
                "episode_id": episode_id,
                "step": step,
                "state": state,
                "action": action,
                "possible_actions": possible,
                "propensity": propensity,
                "policy_version": version,
                **kw,
            }
        )

    def reward(self, episode_id, step, reward):
        self._add({"type": "reward", "episode_id": episode_id, "step": step, "reward": reward})

    def end_episode(self, episode_id, terminal, last_step):
        self._add(
            {
                "type": "episode_end",
                "episode_id": episode_id,
                "terminal": terminal,
                "last_step": last_step,
            }
        )

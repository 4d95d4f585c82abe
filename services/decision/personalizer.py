"""The Azure Personalizer v1.0 mapping onto policyloop decisions, without HTTP.

A team moving off the retired service changes its base URL; what each call becomes:

* **Rank** is a one-step episode whose id is the ``eventId`` (the service makes one when none is
  given): ``contextFeatures`` are flattened into the state (:func:`flatten_context`), the action
  ids minus ``excludedActions`` are the possible actions, the policy samples one
  (``rewardActionId``) and the episode ends at once (terminal). ``ranking`` lists the possible
  actions by probability, highest first, then the excluded ones with probability 0.
* **Reward** ``{value}`` is the reward of step 0 of that episode.
* **deferActivation**: the decision (and any reward sent meanwhile) is held in the worker's
  memory and logged only on **Activate**. An event never activated within ``defer_ttl_s`` is
  dropped unlogged, like Personalizer, which learns nothing from an event never activated;
  the drops are counted.
* **Action features** (``actions[].features``) are flattened like the context
  (:func:`action_features`) and logged with the decision in its ``action_features`` (event
  contract version 2), which the timeline carries, so that a learner over action features can
  use them later. They are not used yet: the policy decides by action id (the registry
  policy's actions must be the ids, or the uniform fallback serves).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from schemas.events import EventValidationError
from services.decision.service import Decision

__all__ = ["DeferredEvents", "HeldEvent", "action_features", "flatten_context", "ranking"]


def flatten_context(features: list[Any] | None, field: str = "contextFeatures") -> dict[str, float]:
    """``contextFeatures`` as a state map: numbers by dotted path (``user.age``), booleans as
    1/0, strings one-hot (``user.tier=gold`` = 1), list items by index; nulls are left out.
    ``field`` names the features in errors."""
    state: dict[str, float] = {}
    for i, item in enumerate(features or []):
        if not isinstance(item, dict):
            raise EventValidationError(
                f"{field}[{i}]", item, "must be an object of features", "rank"
            )
        _flatten("", item, state)
    return state


def action_features(
    actions: list[tuple[str, list[Any] | None]], possible: list[int | str]
) -> dict[str, dict[str, float]] | None:
    """The ``action_features`` of a rank: each possible action's ``features`` flattened as
    :func:`flatten_context` flattens the context, for the actions that have ``features``
    (excluded actions are not possible ones and are left out); ``None`` when none has any, so
    such a decision stays an event of contract version 1."""
    kept = set(possible)
    out = {
        action_id: flatten_context(features, f"actions[{i}].features")
        for i, (action_id, features) in enumerate(actions)
        if features is not None and action_id in kept
    }
    return out or None


def _flatten(prefix: str, value: Any, out: dict[str, float]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), item, out)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _flatten(f"{prefix}.{i}", item, out)
    elif isinstance(value, bool):
        out[prefix] = 1.0 if value else 0.0
    elif isinstance(value, int | float):
        out[prefix] = value  # the contract's rules (finite, 64-bit) apply to the state
    elif isinstance(value, str):
        out[f"{prefix}={value}"] = 1.0
    # None: the feature is absent


def ranking(decision: Decision, possible: list[str], excluded: list[str]) -> list[dict[str, Any]]:
    """Possible actions by probability (highest first, ties in request order), then excluded."""
    order = sorted(range(len(possible)), key=lambda i: -decision.action_probs[i])
    ranked: list[dict[str, Any]] = [
        {"id": possible[i], "probability": decision.action_probs[i]} for i in order
    ]
    ranked.extend({"id": action, "probability": 0.0} for action in excluded)
    return ranked


@dataclass
class HeldEvent:
    """A ranked event waiting for Activate: what to log then, and rewards sent meanwhile."""

    decision: Decision
    state: dict[str, float]
    possible_actions: list[int | str]
    held_at: float
    rewards: list[tuple[float, int]] = field(default_factory=list)  # (value, ts)
    action_features: dict[str, dict[str, float]] | None = None


class DeferredEvents:
    """Held events by event id, oldest first, bounded in time (``ttl_s``) and count.

    ``expired`` and ``evicted`` count the events dropped unlogged (for the metrics).
    """

    def __init__(self, ttl_s: float, max_events: int) -> None:
        self.ttl_s = ttl_s
        self.max_events = max_events
        self._held: OrderedDict[str, HeldEvent] = OrderedDict()
        self.expired = 0
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, event: HeldEvent) -> None:
        self._expire()
        while len(self._held) >= self.max_events:
            self._held.popitem(last=False)
            self.evicted += 1
        self._held[event.decision.episode_id] = event

    def get(self, event_id: str) -> HeldEvent | None:
        self._expire()
        return self._held.get(event_id)

    def take(self, event_id: str) -> HeldEvent | None:
        self._expire()
        return self._held.pop(event_id, None)

    def _expire(self) -> None:
        cutoff = time.monotonic() - self.ttl_s
        held = self._held
        while held:
            first = next(iter(held.values()))
            if first.held_at > cutoff:
                break
            held.popitem(last=False)
            self.expired += 1

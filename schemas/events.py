"""The event contract, versions 1 and 2: ``decision``, ``reward`` and ``episode_end``.

Events are plain ``dict`` objects (the form they have on the wire) with a ``type`` field. This
module is the only place that says what a valid event is; the SDK validates before enqueueing,
the sessionizer validates what it consumes, and the tests generate events from here.
``schemas.event_builders`` builds them.

Every rule violation raises :class:`EventValidationError`, which names the field, the value and
the rule, and carries a machine-readable ``reason`` for the dead-letter topic.

Validation is on the SDK caller's hot path (target p99 ≤ 50 µs for a whole ``decision`` call),
so it is written as straight-line type checks rather than through a schema library.

Versions: version 2 adds one optional field, the decision's ``action_features``
(``schemas.action_features``). An event says which version it uses in ``schema_version``
(absent: 1) and a field of version 2 needs ``schema_version: 2``. The version is checked before
the fields, so a reader refuses an event of a version it does not speak as
``unsupported_schema_version`` (upgrade the reader), not for a field it does not know. Readers
of version 1 checked the fields first: they dead-letter a version-2 event as
``invalid:action_features``, its bytes kept for a replay once upgraded. Every version-1 event is
a valid version-2 event.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from schemas.action_features import (
    FIELD_VERSION,
    MAX_ENTRIES,
    MAX_FEATURES_PER_ACTION,
    action_features_problem,
)

__all__ = [
    "ACTION_PROBS_TOLERANCE",
    "EVENT_TYPES",
    "LIMITS",
    "MIN_PROPENSITY",
    "SCHEMA_VERSION",
    "SCHEMA_VERSIONS",
    "EpisodeStepTracker",
    "EventValidationError",
    "validate_event",
]

#: The version of an event without ``schema_version``, and of the batch envelope (``wire.py``).
SCHEMA_VERSION = 1
#: The event versions this reader speaks.
SCHEMA_VERSIONS = (1, 2)
EVENT_TYPES = ("decision", "reward", "episode_end")

#: Size limits. They keep one record under Kafka's default 1 MB message size and one episode's
#: state bounded in the sessionizer.
LIMITS = {
    "id_chars": 256,
    "name_chars": 256,
    "state_features": 4096,
    "metrics": 256,
    "context_entries": 64,
    "context_value_chars": 1024,
    "possible_actions": 1024,
    "action_features_per_action": MAX_FEATURES_PER_ACTION,
    "action_features": MAX_ENTRIES,
    "step_max": 2**53,
    "ts_max_ms": 253_402_300_799_999,  # 9999-12-31T23:59:59.999Z
    "int_abs_max": 2**63 - 1,  # integers must fit a signed 64-bit value on the wire
}

#: How far ``sum(action_probs)`` may be from 1, and ``propensity`` from the chosen action's
#: entry of ``action_probs``. Loose enough for float32 softmax outputs.
ACTION_PROBS_TOLERANCE = 1e-4

#: The smallest ``propensity`` (and chosen ``action_probs`` entry) the contract admits. An
#: importance weight of 1/1e-6 = 1e6 already dominates any off-policy estimate; a smaller one is
#: a logging bug (e.g. 5e-324 from an underflowed softmax), and its row would poison every later
#: learner run. ``validate_event(..., min_propensity=...)`` checks against another floor.
MIN_PROPENSITY = 1e-6

_REQUIRED = {
    "decision": (
        "event_id",
        "episode_id",
        "step",
        "ts",
        "state",
        "action",
        "possible_actions",
        "propensity",
        "policy_version",
    ),
    "reward": ("event_id", "episode_id", "step", "ts", "reward"),
    "episode_end": ("event_id", "episode_id", "ts", "terminal"),
}
_OPTIONAL = {
    "decision": ("action_probs", "context", "action_features", "schema_version"),
    "reward": ("metrics", "schema_version"),
    "episode_end": ("last_step", "schema_version"),
}
_ALLOWED = {t: frozenset(("type", *_REQUIRED[t], *_OPTIONAL[t])) for t in EVENT_TYPES}

_isfinite = math.isfinite


class EventValidationError(ValueError):
    """An event broke a rule of the contract.

    ``field`` is the offending field (dotted for nested values, e.g. ``state.x``), ``value`` the
    value found, ``rule`` the rule in words, and ``reason`` a stable machine-readable code
    (``invalid:<field>``; ``unsupported_schema_version`` for a version we do not speak).
    """

    def __init__(self, field: str, value: Any, rule: str, event_type: str | None = None) -> None:
        self.field = field
        self.value = value
        self.rule = rule
        self.event_type = event_type
        shown = repr(value)
        if len(shown) > 120:
            shown = shown[:117] + "..."
        where = f"{event_type}.{field}" if event_type else field
        super().__init__(f"{where}={shown}: {rule}")

    @property
    def reason(self) -> str:
        if self.field == "schema_version":
            return "unsupported_schema_version"
        top = self.field.split(".", 1)[0].split("[", 1)[0]
        return f"invalid:{top}"


def _fail(event_type: str, field: str, value: Any, rule: str) -> EventValidationError:
    return EventValidationError(field, value, rule, event_type)


def _check_id(t: str, event: Mapping[str, Any], field: str) -> None:
    value = event[field]
    if type(value) is not str or not value:
        raise _fail(t, field, value, "must be a non-empty string")
    if len(value) > LIMITS["id_chars"]:
        raise _fail(t, field, value, f"must be at most {LIMITS['id_chars']} characters")


def _check_int(t: str, field: str, value: Any, upper: int) -> None:
    if type(value) is not int:
        raise _fail(t, field, value, "must be an integer")
    if value < 0 or value > upper:
        raise _fail(t, field, value, f"must be between 0 and {upper}")


def _check_int64(t: str, field: str, value: int) -> None:
    if not -LIMITS["int_abs_max"] <= value <= LIMITS["int_abs_max"]:
        raise _fail(t, field, value, "integers must fit in a signed 64-bit value")


def _check_float(t: str, field: str, value: Any) -> None:
    if type(value) is not float:
        if type(value) is not int:
            raise _fail(t, field, value, "must be a number")
        _check_int64(t, field, value)
    elif not _isfinite(value):
        raise _fail(t, field, value, "must be finite (no NaN or infinity)")


def _check_float_map(t: str, field: str, value: Any, max_entries: int) -> None:
    if type(value) is not dict:
        raise _fail(t, field, value, "must be a map of name to number")
    if len(value) > max_entries:
        raise _fail(t, field, len(value), f"must have at most {max_entries} entries")
    name_chars = LIMITS["name_chars"]
    for name, number in value.items():
        if type(name) is not str or not name or len(name) > name_chars:
            raise _fail(t, f"{field}[{name!r}]", name, f"names must be 1-{name_chars} characters")
        if type(number) is not float:
            if type(number) is not int:
                raise _fail(t, f"{field}.{name}", number, "must be a number")
            _check_int64(t, f"{field}.{name}", number)
        elif not _isfinite(number):
            raise _fail(t, f"{field}.{name}", number, "must be finite (no NaN or infinity)")


def _check_action(t: str, field: str, value: Any) -> None:
    kind = type(value)
    if kind is str:
        if not value or len(value) > LIMITS["id_chars"]:
            raise _fail(t, field, value, f"must be 1-{LIMITS['id_chars']} characters")
    elif kind is int:
        _check_int64(t, field, value)
    else:
        raise _fail(t, field, value, "must be a string or an integer")


def _check_schema_version(t: str, event: Mapping[str, Any]) -> None:
    version = event.get("schema_version", SCHEMA_VERSION)
    if version not in SCHEMA_VERSIONS or type(version) is not int:
        raise _fail(t, "schema_version", version, "unsupported; this reader speaks 1 and 2")


def _check_fields(t: str, event: Mapping[str, Any]) -> None:
    if "schema_version" in event:  # first: the fields of a newer version are not unknown ones
        _check_schema_version(t, event)
    for field in _REQUIRED[t]:
        if field not in event:
            raise _fail(t, field, None, "is required")
    if len(event) > len(_REQUIRED[t]) + 1:
        allowed = _ALLOWED[t]
        for field in event:
            if field not in allowed:
                raise _fail(t, field, event[field], "is not a field of this event type")


def _validate_decision(event: Mapping[str, Any], min_propensity: float) -> None:
    t = "decision"
    _check_fields(t, event)
    _check_id(t, event, "event_id")
    _check_id(t, event, "episode_id")
    _check_id(t, event, "policy_version")
    _check_int(t, "step", event["step"], LIMITS["step_max"])
    _check_int(t, "ts", event["ts"], LIMITS["ts_max_ms"])
    _check_float_map(t, "state", event["state"], LIMITS["state_features"])
    action = event["action"]
    _check_action(t, "action", action)
    possible = event["possible_actions"]
    if type(possible) is not list or not possible:
        raise _fail(t, "possible_actions", possible, "must be a non-empty list")
    if len(possible) > LIMITS["possible_actions"]:
        raise _fail(
            t, "possible_actions", len(possible), f"must have at most {LIMITS['possible_actions']}"
        )
    for i, candidate in enumerate(possible):
        _check_action(t, f"possible_actions[{i}]", candidate)
    if len(set(possible)) != len(possible):
        raise _fail(t, "possible_actions", possible, "must not repeat an action")
    if len(set(map(type, possible))) > 1 and len(set(map(str, possible))) != len(possible):
        # only a mix of ints and strings can collide once written as table text (1 and "1")
        raise _fail(t, "possible_actions", possible, "must be distinct as table text (1 and '1')")
    if action not in possible:
        raise _fail(t, "action", action, "must be one of possible_actions")
    propensity = event["propensity"]
    _check_float(t, "propensity", propensity)
    if not 0.0 < propensity <= 1.0:
        raise _fail(t, "propensity", propensity, "must satisfy 0 < propensity <= 1")
    if propensity < min_propensity:
        raise _fail(t, "propensity", propensity, f"must be at least {min_propensity}")
    if "action_probs" in event:
        probs = event["action_probs"]
        if type(probs) is not list or len(probs) != len(possible):
            raise _fail(
                t,
                "action_probs",
                probs,
                "must be a list aligned with possible_actions (same length)",
            )
        total = 0.0
        for i, p in enumerate(probs):
            _check_float(t, f"action_probs[{i}]", p)
            if p < 0.0 or p > 1.0:
                raise _fail(t, f"action_probs[{i}]", p, "must be between 0 and 1")
            total += p
        if abs(total - 1.0) > ACTION_PROBS_TOLERANCE:
            raise _fail(t, "action_probs", total, "must sum to 1 (this is the sum)")
        index = possible.index(action)
        chosen = probs[index]
        if chosen < min_propensity:
            raise _fail(t, f"action_probs[{index}]", chosen, f"must be at least {min_propensity}")
        if abs(chosen - propensity) > ACTION_PROBS_TOLERANCE:
            raise _fail(
                t, "propensity", propensity, f"must equal action_probs of the action ({chosen})"
            )
    if "context" in event:
        context = event["context"]
        if type(context) is not dict or len(context) > LIMITS["context_entries"]:
            raise _fail(
                t, "context", context, f"must be a map of at most {LIMITS['context_entries']} ids"
            )
        for key, value in context.items():
            if type(key) is not str or not key or len(key) > LIMITS["name_chars"]:
                raise _fail(t, f"context[{key!r}]", key, "keys must be non-empty strings")
            if type(value) is not str or len(value) > LIMITS["context_value_chars"]:
                raise _fail(t, f"context.{key}", value, "values must be strings of at most 1024")
    if "action_features" in event:
        if event.get("schema_version") != FIELD_VERSION:
            rule = f"needs schema_version {FIELD_VERSION} (a field of contract version 2)"
            raise _fail(t, "action_features", event["action_features"], rule)
        problem = action_features_problem(event["action_features"], set(map(str, possible)))
        if problem is not None:
            raise _fail(t, *problem)


def _validate_reward(event: Mapping[str, Any], _floor: float) -> None:
    t = "reward"
    _check_fields(t, event)
    _check_id(t, event, "event_id")
    _check_id(t, event, "episode_id")
    _check_int(t, "step", event["step"], LIMITS["step_max"])
    _check_int(t, "ts", event["ts"], LIMITS["ts_max_ms"])
    _check_float(t, "reward", event["reward"])
    if "metrics" in event:
        _check_float_map(t, "metrics", event["metrics"], LIMITS["metrics"])


def _validate_episode_end(event: Mapping[str, Any], _floor: float) -> None:
    t = "episode_end"
    _check_fields(t, event)
    _check_id(t, event, "event_id")
    _check_id(t, event, "episode_id")
    _check_int(t, "ts", event["ts"], LIMITS["ts_max_ms"])
    if type(event["terminal"]) is not bool:
        raise _fail(t, "terminal", event["terminal"], "must be true or false")
    if "last_step" in event:
        _check_int(t, "last_step", event["last_step"], LIMITS["step_max"])


_VALIDATORS = {
    "decision": _validate_decision,
    "reward": _validate_reward,
    "episode_end": _validate_episode_end,
}


def validate_event(event: Any, min_propensity: float = MIN_PROPENSITY) -> None:
    """Raise :class:`EventValidationError` unless ``event`` is a valid event (version 1 or 2).

    ``min_propensity``: the propensity floor (default :data:`MIN_PROPENSITY`, the contract).

    Stateless: it checks one event on its own. Ordering rules across events of an episode are
    :class:`EpisodeStepTracker`'s job.
    """
    if type(event) is not dict:
        raise EventValidationError("event", event, "must be a map with a 'type' field")
    event_type = event.get("type")
    validator = _VALIDATORS.get(event_type) if type(event_type) is str else None
    if validator is None:
        raise EventValidationError("type", event_type, f"must be one of {', '.join(EVENT_TYPES)}")
    validator(event, min_propensity)


class EpisodeStepTracker:
    """Enforces "step is increasing within an episode" for decisions, at the producer.

    Remembers the last decision step of each open episode; ``episode_end`` forgets it. Memory is
    bounded by ``max_open_episodes``: the oldest episode is forgotten first (its ordering is then
    checked again from its next decision on), so a caller that never ends episodes cannot make
    the tracker grow without bound.
    """

    def __init__(self, max_open_episodes: int = 1_000_000) -> None:
        self._last: dict[str, int] = {}
        self._max = max_open_episodes

    def check(self, event: Mapping[str, Any]) -> None:
        """Raise if ``event`` (already validated) breaks the ordering; else record it."""
        event_type = event["type"]
        if event_type == "decision":
            episode, step = event["episode_id"], event["step"]
            last = self._last.get(episode)
            if last is not None and step <= last:
                raise EventValidationError(
                    "step",
                    step,
                    f"must increase within an episode (last step was {last})",
                    "decision",
                )
            if last is None and len(self._last) >= self._max:
                del self._last[next(iter(self._last))]
            self._last[episode] = step
        elif event_type == "episode_end":
            self._last.pop(event["episode_id"], None)

    def __len__(self) -> int:
        return len(self._last)

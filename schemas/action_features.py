"""The decision's optional ``action_features`` (event contract version 2): its rules.

Why a field of its own: a policy that decides by action id cannot generalize to an action it
has not seen, and Personalizer's actions carry features (``actions[].features``). Keeping them
with the decision, in the timeline, lets a learner over action features use the logged data
later; until then the policy decides by action id and the features are only carried along.

Form on the wire: a map *action* -> *features*, where *action* is an action of
``possible_actions`` written as table text (``schemas.tables.action_text``: the integer action
``1`` is the key ``"1"``, since MessagePack map keys are strings) and *features* a map name ->
number with ``state``'s rules (names 1-256 characters, finite numbers, integers within 64
bits). Actions without features may be left out. Strings and nested objects are the
producer's to encode as numbers; the decision service flattens Personalizer's features like
its context (dotted paths, strings one-hot as ``name=value`` = 1).

The field belongs to contract version 2 (:data:`FIELD_VERSION`): an event that carries it must
say ``schema_version: 2`` (``schemas.event_builders.decision_event`` sets it when given
features), so that readers can tell an event of a newer version from a broken one; an event
without it stays version 1, which every reader takes. A reader of version 1 dead-letters an
event with the field (as ``invalid:action_features``: it checked fields before the version),
keeping its bytes for a replay once upgraded; upgrade the sessionizers before the producers.

The rules return a :class:`Problem` instead of raising so that ``schemas.events`` (which owns
the error type and its wording) stays the one place that raises contract errors.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any, NamedTuple

__all__ = [
    "FIELD",
    "FIELD_VERSION",
    "MAX_ENTRIES",
    "MAX_FEATURES_PER_ACTION",
    "Problem",
    "action_features_problem",
]

FIELD = "action_features"
#: The contract version that introduced the field.
FIELD_VERSION = 2
#: Features of one action: as many as a ``state`` may hold.
MAX_FEATURES_PER_ACTION = 4096
#: Features over all actions of one decision (about 1 MB of MessagePack at most: a record's size).
MAX_ENTRIES = 65_536

_NAME_CHARS = 256
_INT_ABS_MAX = 2**63 - 1
_isfinite = math.isfinite


class Problem(NamedTuple):
    """A broken rule: the field (dotted, as contract errors name it), the value, the rule."""

    field: str
    value: Any
    rule: str


def action_features_problem(value: Any, action_texts: Collection[str]) -> Problem | None:
    """The first rule ``value`` breaks as a decision's ``action_features``, or ``None``.

    ``action_texts``: the decision's possible actions as table text.
    """
    if type(value) is not dict:
        return Problem(FIELD, value, "must be a map of action to a map of feature name to number")
    total = 0
    for action, features in value.items():
        if type(action) is not str or action not in action_texts:
            return Problem(
                f"{FIELD}[{action!r}]",
                action,
                "keys must be among possible_actions, as text (the action 1 is '1')",
            )
        where = f"{FIELD}.{action}"
        if type(features) is not dict:
            return Problem(where, features, "must be a map of feature name to number")
        if len(features) > MAX_FEATURES_PER_ACTION:
            return Problem(
                where, len(features), f"must have at most {MAX_FEATURES_PER_ACTION} entries"
            )
        total += len(features)
        if total > MAX_ENTRIES:
            return Problem(FIELD, total, f"must have at most {MAX_ENTRIES} entries in all")
        for name, number in features.items():
            if type(name) is not str or not name or len(name) > _NAME_CHARS:
                return Problem(
                    f"{where}[{name!r}]", name, f"names must be 1-{_NAME_CHARS} characters"
                )
            kind = type(number)
            if kind is float:
                if not _isfinite(number):
                    return Problem(f"{where}.{name}", number, "must be finite (no NaN or infinity)")
            elif kind is not int:
                return Problem(f"{where}.{name}", number, "must be a number")
            elif not -_INT_ABS_MAX <= number <= _INT_ABS_MAX:
                return Problem(
                    f"{where}.{name}", number, "integers must fit in a signed 64-bit value"
                )
    return None

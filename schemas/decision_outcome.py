"""A fast check of the fields a policy fills into a decision, for callers that validated the rest.

Why: the decision service validates what its caller sent (``validate_event`` on the request,
before the policy runs), then logs the decision the policy made. Validating the whole event a
second time cost about 10 µs a decision in the worker. :func:`outcome_valid` checks only the
fields the policy filled in (``event_id``, ``step``, ``action``, ``propensity``,
``policy_version``, ``action_probs``) and answers "certainly valid" or "not sure"; on "not
sure" the caller runs :func:`schemas.events.validate_event`, so a refused event gets the
contract's own error. It lives beside the contract so that a change of a rule is made here too;
``tests/sdk/test_intake.py`` checks that it never accepts what ``validate_event`` refuses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas.events import ACTION_PROBS_TOLERANCE, LIMITS, MIN_PROPENSITY

__all__ = ["outcome_valid"]

_ID_CHARS = LIMITS["id_chars"]
_STEP_MAX = LIMITS["step_max"]


def outcome_valid(event: Mapping[str, Any], min_propensity: float = MIN_PROPENSITY) -> bool:
    """True when a decision's ``event_id``, ``step``, ``action``, ``propensity``,
    ``policy_version`` and ``action_probs`` certainly pass the contract, given that the rest
    of the event passed it already; False when unsure (run ``validate_event``)."""
    event_id = event["event_id"]
    version = event["policy_version"]
    step = event["step"]
    propensity = event["propensity"]
    action = event["action"]
    possible = event["possible_actions"]
    kind = type(action)
    if (
        type(event_id) is not str
        or not 0 < len(event_id) <= _ID_CHARS
        or type(version) is not str
        or not 0 < len(version) <= _ID_CHARS
        or type(step) is not int
        or not 0 <= step <= _STEP_MAX
        or type(propensity) is not float
        or not (0.0 < propensity <= 1.0 and propensity >= min_propensity)
        or (kind is not int and kind is not str)
        or action not in possible
    ):
        return False
    probs = event.get("action_probs")
    if probs is None:
        return "action_probs" not in event
    if type(probs) is not list or len(probs) != len(possible):
        return False
    total = 0.0
    for p in probs:
        if type(p) is not float or not 0.0 <= p <= 1.0:
            return False
        total += p
    chosen = probs[possible.index(action)]
    return (
        abs(total - 1.0) <= ACTION_PROBS_TOLERANCE
        and chosen >= min_propensity
        and abs(chosen - propensity) <= ACTION_PROBS_TOLERANCE
    )

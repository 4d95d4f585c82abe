"""``/personalizer/v1.0``: Azure Personalizer's Rank, Reward and Activate, on policyloop.

The mapping is :mod:`services.decision.personalizer`'s (and the README's): a rank is a one-step
episode named by ``eventId``, a reward is its step's reward, ``deferActivation`` holds the
decision until Activate. Replies keep Personalizer's shapes and codes: 201 with the ranking,
204 for reward and activate.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request, Response

from services.decision.context import WorkerState, json_reply, worker
from services.decision.models import ErrorReply, PersonalizerReward, RankReply, RankRequest
from services.decision.personalizer import HeldEvent, action_features, flatten_context, ranking
from services.decision.service import RequestError

__all__ = ["router"]

router = APIRouter(prefix="/personalizer/v1.0", tags=["personalizer"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorReply, "description": "Invalid request: the field and the rule."},
    401: {"model": ErrorReply, "description": "Missing or wrong key."},
    503: {"model": ErrorReply, "description": "No policy yet, logger full, or disk too slow."},
}


@router.post("/rank", status_code=201, response_model=RankReply, responses=_ERRORS)
async def rank(body: RankRequest, request: Request) -> Response:
    """Rank ``actions`` for ``contextFeatures``; ``rewardActionId`` is the action sampled (and
    logged, unless ``deferActivation``) with its true probability."""
    state = worker(request)
    event_id = body.eventId
    if event_id is None:
        event_id = state.ring.new_episode_id()
    else:
        forwarded = await state.forwarded(request, event_id)
        if forwarded is not None:
            return forwarded
    ids = [action.id for action in body.actions]
    excluded = list(dict.fromkeys(body.excludedActions or []))
    unknown = [a for a in excluded if a not in ids]
    if unknown:
        raise RequestError("excludedActions", f"{unknown!r} are not ids of actions")
    possible: list[int | str] = [a for a in ids if a not in excluded]
    if ids and not possible:
        raise RequestError("excludedActions", "must leave at least one action to rank")
    service = state.service
    defer = bool(body.deferActivation)
    context = flatten_context(body.contextFeatures)
    features = action_features([(a.id, a.features) for a in body.actions], possible)
    checked = service.check(event_id, context, possible, log=not defer, action_features=features)
    decision = await state.batcher.decide(checked)
    if defer:
        service.forget(event_id)
        held = HeldEvent(decision, context, possible, time.monotonic(), action_features=features)
        state.deferred.hold(held)
        state.held_gauges()
    else:
        service.end(event_id, True)
        await state.settle()
    return json_reply(
        {
            "ranking": ranking(decision, [str(a) for a in possible], excluded),
            "eventId": event_id,
            "rewardActionId": str(decision.action),
        },
        201,
    )


@router.post("/events/{eventId}/reward", status_code=204, responses=_ERRORS)
async def reward(eventId: str, body: PersonalizerReward, request: Request) -> Response:
    """The reward of the event's action (Personalizer recommends values in [-1, 1]). For a
    held event it is kept and logged on Activate."""
    state = worker(request)
    forwarded = await state.forwarded(request, eventId)
    if forwarded is not None:
        return forwarded
    held = state.deferred.get(eventId)
    if held is not None:
        from schemas.event_builders import reward_event
        from schemas.events import validate_event

        ts = time.time_ns() // 1_000_000
        validate_event(reward_event("-", eventId, 0, ts, body.value))
        held.rewards.append((body.value, ts))
        return Response(status_code=204)
    state.service.reward(eventId, 0, body.value)
    await state.settle()
    return Response(status_code=204)


@router.post("/events/{eventId}/activate", status_code=204, responses=_ERRORS)
async def activate(eventId: str, request: Request) -> Response:
    """Log a held event (ranked with ``deferActivation``) now, with the rewards it got
    meanwhile. An event that is not held (never deferred, activated, or expired) is a no-op."""
    state = worker(request)
    forwarded = await state.forwarded(request, eventId)
    if forwarded is not None:
        return forwarded
    held = state.deferred.take(eventId)
    state.held_gauges()
    if held is not None:
        _log_held(state, held)
        await state.settle()
    return Response(status_code=204)


def _log_held(state: WorkerState, held: HeldEvent) -> None:
    service = state.service
    decision = held.decision
    service.log_decision(decision, held.state, held.possible_actions, None, held.action_features)
    service.logger.end_episode(decision.episode_id, True, last_step=0, ts=decision.ts)
    for value, ts in held.rewards:
        service.reward(decision.episode_id, 0, value, ts=ts)

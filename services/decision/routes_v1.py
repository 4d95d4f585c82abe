"""``/v1``: decisions, rewards and episode ends, one JSON call each.

Each route checks the request (shape by the model, contract rules by the core), serves it in the
worker that owns the episode (forwarding otherwise), logs through the worker's logger and, in
durable mode, replies only once the logged events are on disk.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from services.decision.context import body_schema, json_reply, parse_body, worker
from services.decision.models import (
    DecisionReply,
    DecisionRequest,
    EndReply,
    EndRequest,
    ErrorReply,
    RewardReply,
    RewardRequest,
)
from services.decision.service import RequestError, parse_decision_id

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["decisions"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorReply, "description": "Invalid request: the field and the rule."},
    401: {"model": ErrorReply, "description": "Missing or wrong API key."},
    413: {"model": ErrorReply, "description": "Body over serve.max_body_bytes."},
    429: {"model": ErrorReply, "description": "Rate limit reached (see Retry-After)."},
    503: {"model": ErrorReply, "description": "No policy yet, logger full, or disk too slow."},
}


@router.post(
    "/decisions",
    response_model=DecisionReply,
    responses=_ERRORS,
    openapi_extra=body_schema(DecisionRequest),
)
async def decide(request: Request) -> Response:
    """Sample the episode's next action from the served policy and log the decision with its
    true propensity. Without ``episode_id`` a new episode starts (its id is in the reply)."""
    body = await parse_body(request, DecisionRequest)
    state = worker(request)
    episode_id = body.episode_id
    if episode_id is None:
        episode_id = state.ring.new_episode_id()
    else:
        forwarded = await state.forwarded(request, episode_id)
        if forwarded is not None:
            return forwarded
    checked = state.service.check(
        episode_id,
        body.state,
        body.possible_actions,
        body.context,
        action_features=body.action_features,
    )
    decision = await state.batcher.decide(checked)
    await state.settle()
    return json_reply(
        {
            "decision_id": decision.decision_id,
            "episode_id": decision.episode_id,
            "step": decision.step,
            "action": decision.action,
            "propensity": decision.propensity,
            "action_probs": decision.action_probs,
            "policy_version": decision.policy_version,
        }
    )


@router.post(
    "/rewards",
    response_model=RewardReply,
    responses=_ERRORS,
    openapi_extra=body_schema(RewardRequest),
)
async def reward(request: Request) -> Response:
    """Log the reward of one decision, named by ``decision_id`` or by ``episode_id`` + ``step``."""
    body = await parse_body(request, RewardRequest)
    state = worker(request)
    if body.decision_id is not None:
        if body.episode_id is not None or body.step is not None:
            raise RequestError("decision_id", "give decision_id, or episode_id and step, not both")
        ref = parse_decision_id(body.decision_id)
        episode_id, step = ref.episode_id, ref.step
    elif body.episode_id is None or body.step is None:
        raise RequestError("decision_id", "is required (or episode_id and step)")
    else:
        episode_id, step = body.episode_id, body.step
    forwarded = await state.forwarded(request, episode_id)
    if forwarded is not None:
        return forwarded
    state.service.reward(episode_id, step, body.reward, body.metrics)
    await state.settle()
    return json_reply({"episode_id": episode_id, "step": step})


@router.post("/episodes/{episode_id}/end", response_model=EndReply, responses=_ERRORS)
async def end_episode(episode_id: str, body: EndRequest, request: Request) -> Response:
    """End an open episode: ``terminal`` true when the environment ended it, false when cut.
    The episode's version no longer sticks; later rewards for its steps are still accepted."""
    state = worker(request)
    forwarded = await state.forwarded(request, episode_id)
    if forwarded is not None:
        return forwarded
    last_step = state.service.end(episode_id, body.terminal)
    await state.settle()
    return json_reply({"episode_id": episode_id, "last_step": last_step})

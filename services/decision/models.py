"""Request and reply bodies of both surfaces, for parsing and for the OpenAPI page (``/docs``).

The models check shapes only (which fields, which JSON types, strict: ``"1"`` is not a number);
the event contract's rules (finite numbers, lengths, distinct actions, ...) are checked by the
core with the SDK's own messages, so the two never disagree about what is valid.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ActivateReply",
    "DecisionReply",
    "DecisionRequest",
    "EndReply",
    "EndRequest",
    "ErrorReply",
    "PersonalizerReward",
    "RankReply",
    "RankRequest",
    "RankableAction",
    "RankedAction",
    "RewardReply",
    "RewardRequest",
]

_STRICT = ConfigDict(strict=True, extra="forbid")


class DecisionRequest(BaseModel):
    """``POST /v1/decisions``: the next decision of an episode (a new one without an id)."""

    model_config = _STRICT
    episode_id: str | None = Field(default=None, description="Omit to start a new episode.")
    state: dict[str, float] = Field(description="Feature name → number.")
    possible_actions: list[int | str] = Field(description="The actions allowed at this step.")
    context: dict[str, str] | None = Field(
        default=None, description="Ids kept with the event (validated, not in the timeline)."
    )
    action_features: dict[str, dict[str, float]] | None = Field(
        default=None,
        description="Per possible action (as text), feature name → number: kept with the "
        "decision in the timeline's action_features; the policy decides by action.",
    )


class DecisionReply(BaseModel):
    decision_id: str
    episode_id: str
    step: int
    action: int | str
    propensity: float = Field(description="The probability the action was drawn with.")
    action_probs: list[float] = Field(description="Aligned with possible_actions.")
    policy_version: str


class RewardRequest(BaseModel):
    """``POST /v1/rewards``: by ``decision_id``, or by ``episode_id`` and ``step``."""

    model_config = _STRICT
    decision_id: str | None = None
    episode_id: str | None = None
    step: int | None = None
    reward: float
    metrics: dict[str, float] | None = None


class RewardReply(BaseModel):
    episode_id: str
    step: int


class EndRequest(BaseModel):
    """``POST /v1/episodes/{episode_id}/end``."""

    model_config = _STRICT
    terminal: bool = Field(description="true: the environment ended it; false: cut short.")


class EndReply(BaseModel):
    episode_id: str
    last_step: int


class RankableAction(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")
    id: str
    features: list[dict[str, Any]] | None = None


class RankRequest(BaseModel):
    """Personalizer v1.0 ``POST /personalizer/v1.0/rank``."""

    model_config = ConfigDict(strict=True, extra="allow")
    contextFeatures: list[Any] | None = None
    actions: list[RankableAction]
    excludedActions: list[str] | None = None
    eventId: str | None = None
    deferActivation: bool | None = None


class RankedAction(BaseModel):
    id: str
    probability: float


class RankReply(BaseModel):
    ranking: list[RankedAction]
    eventId: str
    rewardActionId: str


class PersonalizerReward(BaseModel):
    """Personalizer v1.0 ``POST /personalizer/v1.0/events/{eventId}/reward``."""

    model_config = ConfigDict(strict=True, extra="allow")
    value: float


class ActivateReply(BaseModel):
    pass


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None
    rule: str | None = None


class ErrorReply(BaseModel):
    """Every refusal: what is wrong (``field``) and the rule it breaks."""

    error: ErrorDetail

"""The decision service's core, without HTTP: one worker's decisions, rewards and episode ends.

Why a core of its own: both surfaces (``/v1`` and the Personalizer-compatible one) make the same
decisions and log the same events, and the rules live in one place:

* **Nothing invalid is logged, nothing invalid changes state.** A request is checked against the
  event contract (``schemas.events.validate_event``, the SDK's own rules and messages) *before*
  :meth:`PolicyClient.act` advances the episode; an invalid one raises
  :class:`~schemas.events.EventValidationError` naming the field and the rule.
* **The policy is the SDK's.** Decisions come from :class:`~services.sdk.PolicyClient` (hot
  reload, staged rollout, episodes keep their version) and are logged through the worker's
  :class:`~services.sdk.DecisionLogger` with exactly what ``act`` returned: the true
  propensity and ``action_probs``. The client has no logger attached because the service logs
  itself: a Personalizer event with ``deferActivation`` is logged only when activated.
* **Decision ids name their decision**: ``<worker tag>.<step>.<episode_id>``. A reward by
  ``decision_id`` needs no lookup table, and any worker can route it to the episode's owner.
  The tag (random per process) keeps a step decided again after a restart from reusing an id.
* **Checked one by one, decided together.** :meth:`DecisionService.check` refuses a request on
  its own (at once, in its handler); :meth:`DecisionService.decide_many` makes the checked
  requests that arrived together with one model call per version
  (``PolicyClient.act_many``; ``batching.py`` says why and when) and logs each, so a refusal
  by the policy or the logger is one request's error, never its neighbours'.
* **Validated once.** What the caller sent is checked against the contract by ``check``; the
  batch's events then go to :meth:`DecisionLogger.checked_decisions`, which checks only what
  the policy filled in (action, step, propensities, ids) and takes the logger's lock once per
  batch. ``decision()`` validated the whole event again, about 10 µs a decision in the worker.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from schemas.event_builders import decision_event, reward_event
from schemas.events import EventValidationError, validate_event

if TYPE_CHECKING:
    from services.sdk.logger import DecisionLogger
    from services.sdk.policy_client import PolicyClient

__all__ = [
    "MAX_EPISODE_ID_CHARS",
    "CheckedDecision",
    "Decision",
    "DecisionRef",
    "DecisionService",
    "RequestError",
    "ServiceUnavailable",
    "parse_decision_id",
]

#: Episode ids the service accepts: the contract's 256 characters less what a decision id adds.
MAX_EPISODE_ID_CHARS = 224
_DECISION_ID = re.compile(r"([0-9a-f]{8})\.(0|[1-9][0-9]{0,15})\.(.+)", re.DOTALL)


class RequestError(ValueError):
    """A request the service refuses: ``field`` and ``rule`` in words, and the HTTP status."""

    def __init__(self, field: str, rule: str, status: int = 400) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule
        self.status = status


class ServiceUnavailable(RuntimeError):
    """No policy to serve yet (``fallback = "none"``), or the logger cannot take events now."""


@dataclass(frozen=True, slots=True)
class Decision:
    """One decision as the service replies it (``ts``: when it was made, for a deferred log)."""

    decision_id: str
    episode_id: str
    step: int
    action: int | str
    propensity: float
    action_probs: list[float]
    policy_version: str
    ts: int


@dataclass(frozen=True, slots=True)
class CheckedDecision:
    """A decision request that passed :meth:`DecisionService.check`, waiting for the policy."""

    episode_id: str
    state: dict[str, float]
    possible_actions: list[int | str]
    context: dict[str, str] | None
    ts: int  # its arrival: the logged decision's time
    log: bool  # False: held (Personalizer deferActivation), logged on activation
    action_features: dict[str, dict[str, float]] | None = None  # logged, not used by the policy


@dataclass(frozen=True, slots=True)
class DecisionRef:
    """The decision a ``decision_id`` names."""

    episode_id: str
    step: int


def parse_decision_id(decision_id: Any) -> DecisionRef:
    """The episode and step of a decision id made by :meth:`DecisionService.decide_many`."""
    match = _DECISION_ID.fullmatch(decision_id) if isinstance(decision_id, str) else None
    if match is None:
        raise RequestError("decision_id", "must be a decision_id returned by a decision")
    return DecisionRef(match.group(3), int(match.group(2)))


def check_episode_id(episode_id: Any) -> None:
    """The contract's id rule plus the service's shorter limit (decision ids embed the id)."""
    if type(episode_id) is not str or not episode_id:
        raise EventValidationError("episode_id", episode_id, "must be a non-empty string")
    if len(episode_id) > MAX_EPISODE_ID_CHARS:
        raise EventValidationError(
            "episode_id",
            episode_id,
            f"must be at most {MAX_EPISODE_ID_CHARS} characters (decision ids embed it)",
        )


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class DecisionService:
    """One worker's decisions (see the module doc). Not thread-safe: the event loop calls it."""

    def __init__(self, logger: DecisionLogger, tag: str) -> None:
        self.logger = logger
        self.tag = tag
        self.client: PolicyClient | None = None  # set once a policy (or the fallback) loads
        self.unavailable_reason = "the policy is not loaded yet"

    def _client(self) -> PolicyClient:
        if self.client is None:
            raise ServiceUnavailable(self.unavailable_reason)
        return self.client

    def check(
        self,
        episode_id: str,
        state: dict[str, float],
        possible_actions: list[int | str],
        context: dict[str, str] | None = None,
        *,
        log: bool = True,
        action_features: dict[str, dict[str, float]] | None = None,
    ) -> CheckedDecision:
        """Everything that refuses a decision before the policy runs (it raises); the request,
        stamped with its arrival time, for :meth:`decide_many`."""
        self._client()
        check_episode_id(episode_id)
        ts = _now_ms()
        _check_decision(episode_id, ts, state, possible_actions, context, action_features)
        return CheckedDecision(
            episode_id, state, possible_actions, context, ts, log, action_features
        )

    def decide_many(self, checked: Sequence[CheckedDecision]) -> list[Decision | Exception]:
        """Sample each checked request's next action with one model call per version
        (``PolicyClient.act_many``) and log each (unless its ``log`` is False: held events)
        with one :meth:`DecisionLogger.checked_decisions` call. A request the policy or the
        logger refuses gets its exception in its place."""
        from services.sdk.policy_client import ActRequest
        from services.sdk.policy_model import UnknownActionError

        client = self._client()
        acts = client.act_many(
            [ActRequest(c.episode_id, c.state, c.possible_actions) for c in checked]
        )
        made: list[Decision | Exception] = []
        logged: list[int] = []  # indices in made of the decisions to log
        events: list[dict[str, Any]] = []
        for request, act in zip(checked, acts, strict=True):
            if isinstance(act, UnknownActionError):
                made.append(
                    EventValidationError(
                        "possible_actions", request.possible_actions, str(act), "decision"
                    )
                )
                continue
            if isinstance(act, Exception):
                made.append(act)
                continue
            decision = Decision(
                f"{self.tag}.{act.step}.{request.episode_id}",
                request.episode_id,
                act.step,
                act.action,
                act.propensity,
                act.action_probs,
                act.policy_version,
                request.ts,
            )
            if request.log:
                logged.append(len(made))
                events.append(
                    _decision_event(
                        decision,
                        request.state,
                        request.possible_actions,
                        request.context,
                        request.action_features,
                    )
                )
            made.append(decision)
        if events:
            # Validated once: check() ran the contract on what the caller sent, the logger
            # checks what the policy filled in; one hand-over for the batch.
            refusals = self.logger.checked_decisions(events)
            for i, refusal in zip(logged, refusals, strict=True):
                if refusal is not None:  # the logger's refusal (full, closed) is this request's
                    made[i] = refusal
        return made

    def log_decision(
        self,
        decision: Decision,
        state: dict[str, float],
        possible_actions: list[int | str],
        context: dict[str, str] | None,
        action_features: dict[str, dict[str, float]] | None = None,
    ) -> None:
        """Log ``decision`` exactly as ``PolicyClient.act`` would have, at its own time (a held
        Personalizer event on Activate: what the caller sent was checked by :meth:`check` at
        rank time, so it goes the batch path's way, raising what the logger refuses)."""
        event = _decision_event(decision, state, possible_actions, context, action_features)
        refusal = self.logger.checked_decisions([event])[0]
        if refusal is not None:
            raise refusal

    def reward(
        self,
        episode_id: str,
        step: int,
        reward: float,
        metrics: dict[str, float] | None = None,
        *,
        ts: int | None = None,
    ) -> None:
        """Log the reward of the decision at ``step`` (checked in full before anything moves)."""
        client = self._client()
        ts = _now_ms() if ts is None else ts
        validate_event(reward_event("-", episode_id, step, ts, reward, metrics))
        client.reward(episode_id, reward, step=step)  # the per-version reward metric
        self.logger.reward(episode_id, step, reward, metrics=metrics, ts=ts)

    def end(self, episode_id: str, terminal: bool) -> int:
        """End an open episode: the client forgets it and its end is logged; its last step."""
        client = self._client()
        last_step = client.episode_step(episode_id)
        if last_step is None:
            raise RequestError(
                "episode_id",
                "no open episode with this id in this service (never started, already ended, "
                "or forgotten after a restart)",
                status=404,
            )
        client.end_episode(episode_id, terminal)
        self.logger.end_episode(episode_id, terminal, last_step=last_step)
        return last_step

    def forget(self, episode_id: str) -> None:
        """Close a one-step episode in the client without logging its end (held events)."""
        self._client().end_episode(episode_id, True)


def _decision_event(
    decision: Decision,
    state: dict[str, float],
    possible_actions: list[int | str],
    context: dict[str, str] | None,
    action_features: dict[str, dict[str, float]] | None,
) -> dict[str, Any]:
    """The event :meth:`DecisionService.log_decision` logs for ``decision``."""
    return decision_event(
        decision.decision_id,
        decision.episode_id,
        decision.step,
        decision.ts,
        state,
        decision.action,
        possible_actions,
        decision.propensity,
        decision.policy_version,
        decision.action_probs,
        context,
        action_features,
    )


def _check_decision(
    episode_id: str,
    ts: int,
    state: Any,
    possible_actions: Any,
    context: Any,
    action_features: Any = None,
) -> None:
    """The contract's rules for what the caller sent, before the policy runs."""
    if type(possible_actions) is not list or not possible_actions:
        raise EventValidationError(
            "possible_actions", possible_actions, "must be a non-empty list", "decision"
        )
    event = decision_event(
        "-",
        episode_id,
        0,
        ts,
        state,
        possible_actions[0],
        possible_actions,
        1.0,
        "-",
        None,
        context,
        action_features,
    )
    try:
        validate_event(event)
    except EventValidationError as exc:
        if exc.field != "action":
            raise
        # the placeholder action is the first possible one: its fault is that entry's
        raise EventValidationError("possible_actions[0]", exc.value, exc.rule, "decision") from None

"""Several decisions with one model call per version: the grouping behind
:meth:`~services.sdk.policy_client.PolicyClient.act_many`.

Why: at a batch of one, a TorchScript call's cost is mostly fixed, and in a busy server (an HTTP
worker between requests) the interpreter and dispatcher code it runs is cold in the CPU caches:
a CartPole-sized forward measured ~20 µs in a loop but 120 to 250 µs between requests. A service
that gathers the decisions arriving together pays that once per batch. Rows are grouped by the
model that serves them and by their possible actions (one mask per call); a group whose batched
call fails is retried row by row, so that only the faulty rows get an exception, the one
``act`` would raise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from services.sdk.policy_model import ServedModel, UniformModel

__all__ = ["ActRequest", "batched_probs"]


@dataclass(frozen=True, slots=True)
class ActRequest:
    """One decision to make (the arguments of ``PolicyClient.act``)."""

    episode_id: str
    state: dict[str, float]
    possible_actions: Sequence[int | str]
    action_features: dict[str, dict[str, float]] | None = None


def batched_probs(
    models: Sequence[ServedModel | UniformModel], requests: Sequence[ActRequest]
) -> list[list[float] | Exception]:
    """The probabilities of each request under its model (``models[i]`` serves
    ``requests[i]``), or the exception that model's ``probs`` raises for it."""
    probs: list[list[float] | Exception | None] = [None] * len(requests)
    groups: dict[tuple[int, tuple[Any, ...]], list[int]] = {}
    for i, request in enumerate(requests):
        try:
            key = (id(models[i]), tuple(request.possible_actions))
            groups.setdefault(key, []).append(i)
        except TypeError as exc:  # an unhashable action: probs' mask lookup raises it too
            probs[i] = exc
    for indices in groups.values():
        model, possible = models[indices[0]], requests[indices[0]].possible_actions
        rows: list[list[float] | Exception]
        try:
            rows = list(model.probs_many([requests[i].state for i in indices], possible))
        except Exception:  # row by row, so that only the faulty rows fail
            rows = []
            for i in indices:
                try:
                    rows.append(model.probs(requests[i].state, possible))
                except Exception as exc:
                    rows.append(exc)
        for i, row in zip(indices, rows, strict=True):
            probs[i] = row
    served: list[list[float] | Exception] = []
    for got in probs:
        assert got is not None  # each request is in a group, or failed to make its key
        served.append(got)
    return served

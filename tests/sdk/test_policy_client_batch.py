"""``PolicyClient.act_many``: the same decisions as ``act`` one by one, fewer model calls.

A service gathers concurrent decisions and makes them with one call per version
(``services/decision/batching.py``); what it serves and logs must not depend on that.
"""

from __future__ import annotations

import random

import pytest
import torch
from prometheus_client import CollectorRegistry

from services.registry import Registry
from services.sdk.policy_batch import ActRequest
from services.sdk.policy_compile import batch_agrees
from services.sdk.policy_model import UnknownActionError
from tests.rollout.factory import CARTPOLE_FEATURES, publish
from tests.sdk.policy_client_setup import open_client, sample


@pytest.fixture
def registry(tmp_path) -> Registry:
    return Registry(str(tmp_path / "registry"), "cartpole")


def _requests(n: int, seed: int = 0) -> list[ActRequest]:
    rng = random.Random(seed)
    requests = []
    for i in range(n):
        state = {name: rng.gauss(0.0, 1.0) for name in CARTPOLE_FEATURES}
        if i % 7 == 0:
            del state["pole_angle"]  # a missing feature: the default applies
        possible: list[int | str] = [0, 1] if i % 5 else ([1] if i % 2 else ["0"])
        requests.append(ActRequest(f"episode-{i % 23}", state, possible))  # repeats: steps
    return requests


def test_act_many_decides_exactly_what_act_decides_one_by_one(registry):
    publish(registry, promote=True, seed=3, hidden_sizes=(64, 64))
    requests = _requests(120)
    with open_client(registry, CollectorRegistry(), seed=11) as one:
        singly = [one.act(r.episode_id, r.state, r.possible_actions) for r in requests]
    metrics = CollectorRegistry()
    with open_client(registry, metrics, seed=11) as many:
        assert many.serving.current_version != "uniform"
        together = many.act_many(requests)
        version = many.serving.current_version
        counted = sample(
            metrics, "policyloop_policy_decisions_total", policy="cartpole", policy_version=version
        )
    assert counted == len(requests)
    for request, want, got in zip(requests, singly, together, strict=True):
        assert not isinstance(got, Exception), got
        assert (got.action, got.step, got.policy_version) == (
            want.action,
            want.step,
            want.policy_version,
        )
        assert got.action_probs == pytest.approx(want.action_probs, abs=1e-6)
        chosen = list(request.possible_actions).index(got.action)
        assert got.propensity == got.action_probs[chosen]


def test_a_refused_request_gets_the_error_act_raises_and_the_others_are_served(registry):
    publish(registry, promote=True, seed=3)
    requests = [
        ActRequest("ok-1", {"cart_position": 0.1}, [0, 1]),
        ActRequest("bad-action", {"cart_position": 0.1}, [0, 5]),
        ActRequest("bad-state", {"cart_position": "x"}, [0, 1]),  # type: ignore[dict-item]
        ActRequest("unhashable", {"cart_position": 0.1}, [[0], 1]),  # type: ignore[list-item]
        ActRequest("ok-2", {"cart_position": 0.2}, [0, 1]),
    ]
    with open_client(registry, CollectorRegistry(), seed=1) as client:
        made = client.act_many(requests)
        for request, got in zip(requests, made, strict=True):
            if request.episode_id.startswith("ok"):
                assert not isinstance(got, Exception), got
                assert client.episode_step(request.episode_id) == 0
            else:
                assert isinstance(got, Exception)
                assert client.episode_step(request.episode_id) is None  # nothing advanced
        assert isinstance(made[1], UnknownActionError)
        with pytest.raises(type(made[2])):
            client.act("bad-state", {"cart_position": "x"}, [0, 1])  # type: ignore[dict-item]


def test_a_batch_is_one_model_call_per_version_and_possible_actions(registry, monkeypatch):
    publish(registry, promote=True, seed=3, hidden_sizes=(16,))
    with open_client(registry, CollectorRegistry(), seed=1) as client:
        model = client._serving.incumbent
        assert model.batches  # verified equal to one row at a time when it was loaded
        calls: list[int] = []
        forward = model.probs_many

        def counted(states, possible):
            calls.append(len(states))
            return forward(states, possible)

        monkeypatch.setattr(model, "probs_many", counted)
        client.act_many(_requests(40))
    assert sorted(calls) == sorted([32, 4, 4])  # [0, 1] / [1] / ["0"]


def test_batch_agrees_refuses_a_forward_that_depends_on_the_batch():
    names = ["a", "b"]

    def one_row_only(rows: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(rows.nan_to_num(0.0) * rows.shape[0], dim=1)
        return probs * mask

    def per_row(rows: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.softmax(rows.nan_to_num(0.0), dim=1) * mask

    assert not batch_agrees(one_row_only, names, 2, None)
    assert batch_agrees(per_row, names, 2, None)

"""End to end over real HTTP: what the service acknowledges arrives in the Delta timeline once,
with the propensity it replied; invalid requests are refused naming field and rule and log
nothing. One server, one traffic scenario and one sessionizer run for the module; each test
checks one behaviour of the result."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from services.kafka_settings import KafkaSettings
from tests.decision.conftest import STATE, Served, sessionize
from tests.sdk.conftest import read_events

pytestmark = [pytest.mark.integration, pytest.mark.slow]

JSON = {"content-type": "application/json"}
BAD = [  # (body, field, rule fragment): each refused, none logged
    ({"episode_id": "bad-nan", "state": {"x": math.nan}, "possible_actions": [0, 1]},
     "state.x", "must be finite"),
    ({"episode_id": "bad-type", "state": {"x": "1"}, "possible_actions": [0, 1]},
     "state.x", "valid number"),
    ({"episode_id": "bad-action", "state": STATE, "possible_actions": [0, 5]},
     "possible_actions", "not an action of policy version v1"),
    ({"episode_id": "bad-repeat", "state": STATE, "possible_actions": [1, 1]},
     "possible_actions", "must not repeat an action"),
    ({"episode_id": "bad-empty", "state": STATE, "possible_actions": []},
     "possible_actions", "must be a non-empty list"),
    ({"episode_id": "bad-extra", "state": STATE, "possible_actions": [0, 1], "colour": "red"},
     "colour", "Extra inputs are not permitted"),
    ({"episode_id": "b" * 300, "state": STATE, "possible_actions": [0, 1]},
     "episode_id", "at most 224 characters"),
    ({"episode_id": "bad-features", "state": STATE, "possible_actions": [0, 1],
      "action_features": {"2": {"x": 1.0}}},
     "action_features['2']", "among possible_actions"),
    ({"episode_id": "bad-feature", "state": STATE, "possible_actions": [0, 1],
      "action_features": {"0": {"x": math.inf}}},
     "action_features.0.x", "must be finite"),
]  # fmt: skip
#: A Personalizer rank's actions: features nested, strings and booleans (flattened like the
#: context), and an action without features.
RANK_ACTIONS = [{"id": "0", "features": [{"kind": "left", "size": {"w": 2}}, {"new": True}]},
                {"id": "1"}]  # fmt: skip
#: What the timeline holds for them: aligned with possible_actions ["0", "1"].
RANK_FEATURES = [{"kind=left": 1.0, "size.w": 2.0, "new": 1.0}, {}]
V1_FEATURES = {"1": {"price": 3.5}}


@dataclass
class Scenario:
    decisions: list[dict[str, Any]] = field(default_factory=list)  # /v1 replies
    rewards: dict[tuple[str, int], float] = field(default_factory=dict)
    metrics: dict[tuple[str, int], dict[str, float]] = field(default_factory=dict)
    ends: dict[str, bool] = field(default_factory=dict)
    ranks: list[dict[str, Any]] = field(default_factory=list)
    rank_rewards: dict[str, float] = field(default_factory=dict)
    featured: list[dict[str, Any]] = field(default_factory=list)  # /v1 with action_features
    refusals: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)


def _play(server: Served) -> Scenario:
    scenario = Scenario()
    with server.client() as http:
        episodes = [None, "v1-trunc", "v1-term"]
        for n, episode in enumerate(episodes):
            for step in range(3):
                body = {"state": {**STATE, "pole_angle": 0.01 * step}, "possible_actions": [0, 1]}
                if episode is not None:
                    body["episode_id"] = episode
                reply = http.post("/v1/decisions", json=body)
                assert reply.status_code == 200, reply.text
                decision = reply.json()
                episode = decision["episode_id"]
                scenario.decisions.append(decision)
                value = float(10 * n + step)
                if step == 1:  # by episode and step, with metrics
                    reward = {"episode_id": episode, "step": 1, "reward": value,
                              "metrics": {"clicks": 2.0}}  # fmt: skip
                    scenario.metrics[(episode, 1)] = {"clicks": 2.0}
                else:
                    reward = {"decision_id": decision["decision_id"], "reward": value}
                assert http.post("/v1/rewards", json=reward).status_code == 200
                scenario.rewards[(episode, step)] = value
            terminal = episode != "v1-trunc"
            end = http.post(f"/v1/episodes/{episode}/end", json={"terminal": terminal})
            assert end.json() == {"episode_id": episode, "last_step": 2}
            scenario.ends[episode] = terminal
        body = {"state": STATE, "possible_actions": [0, 1], "action_features": V1_FEATURES}
        featured = http.post("/v1/decisions", json=body)
        assert featured.status_code == 200, featured.text
        scenario.featured.append(featured.json())
        actions = RANK_ACTIONS
        context = [{"cart": {"position": 0.1, "velocity": -0.2}}, {"pole_angle": 0.03}]
        for event_id, defer, value in (("p-1", False, 0.5), (None, False, 1.0),
                                       ("p-d1", True, 0.7), ("p-d2", True, -1.0)):  # fmt: skip
            body = {"contextFeatures": context, "actions": actions}
            if event_id is not None:
                body["eventId"] = event_id
            if defer:
                body["deferActivation"] = True
            rank = http.post("/personalizer/v1.0/rank", json=body)
            assert rank.status_code == 201, rank.text
            ranked = rank.json() | {"deferred": defer}
            scenario.ranks.append(ranked)
            reward = http.post(f"/personalizer/v1.0/events/{ranked['eventId']}/reward",
                               json={"value": value})  # fmt: skip
            assert reward.status_code == 204, reward.text
            scenario.rank_rewards[ranked["eventId"]] = value
        assert http.post("/personalizer/v1.0/events/p-d1/activate").status_code == 204
        for body, _, _ in BAD:  # json.dumps writes NaN and Infinity as JavaScript does
            reply = http.post("/v1/decisions", content=json.dumps(body), headers=JSON)
            scenario.refusals.append((reply.status_code, reply.json()))
        bad = {"episode_id": "bad-r", "step": 0, "reward": math.inf}
        bad_reward = http.post("/v1/rewards", content=json.dumps(bad), headers=JSON)
        scenario.refusals.append((bad_reward.status_code, bad_reward.json()))
    return scenario


@pytest.fixture(scope="module")
def scenario(server: Served, module_kafka: KafkaSettings, module_tmp: Path) -> Scenario:
    played = _play(server)
    assert server.stop() == 0, server.log_tail()  # loggers flush at close
    played.rows = sessionize(module_kafka, module_tmp / "timeline")
    return played


def _rows_by_key(scenario: Scenario) -> dict[tuple[str, int], dict[str, Any]]:
    keys = [(r["episode_id"], r["step"]) for r in scenario.rows]
    assert len(keys) == len(set(keys)), "a decision was written twice"
    return dict(zip(keys, scenario.rows, strict=True))


def test_each_acknowledged_decision_is_one_row_with_the_replied_propensity(scenario):
    rows = _rows_by_key(scenario)
    for decision in scenario.decisions:
        row = rows[(decision["episode_id"], decision["step"])]
        assert row["decision_id"] == decision["decision_id"]
        assert row["action"] == str(decision["action"])
        assert row["propensity"] == decision["propensity"]
        assert row["action_probs"] == pytest.approx(decision["action_probs"], abs=0)
        assert row["policy_version"] == decision["policy_version"] == "v1"
        assert row["possible_actions"] == ["0", "1"]


def test_rewards_by_decision_id_or_episode_and_step_join_their_rows(scenario):
    rows = _rows_by_key(scenario)
    for key, value in scenario.rewards.items():
        assert rows[key]["reward"] == value and rows[key]["reward_count"] == 1
    for key, metrics in scenario.metrics.items():
        assert rows[key]["metrics"] == list(metrics.items())


def test_ended_episodes_mark_their_last_row_terminal_or_truncated(scenario):
    rows = _rows_by_key(scenario)
    for episode, terminal in scenario.ends.items():
        assert (rows[(episode, 2)]["terminal"], rows[(episode, 2)]["truncated"]) == (
            terminal,
            not terminal,
        )
        assert not rows[(episode, 0)]["terminal"] and not rows[(episode, 0)]["truncated"]


def test_a_personalizer_rank_and_its_reward_become_one_terminal_row(scenario):
    rows = _rows_by_key(scenario)
    for ranked in (r for r in scenario.ranks if not r["deferred"]):
        row = rows[(ranked["eventId"], 0)]
        probabilities = {a["id"]: a["probability"] for a in ranked["ranking"]}
        assert row["action"] == ranked["rewardActionId"]
        assert row["propensity"] == probabilities[ranked["rewardActionId"]]
        assert row["reward"] == scenario.rank_rewards[ranked["eventId"]]
        assert row["terminal"] and row["state"] is not None
        assert dict(row["state"]) == {"cart.position": 0.1, "cart.velocity": -0.2,
                                      "pole_angle": 0.03}  # fmt: skip


def test_a_personalizer_ranking_lists_actions_by_probability_descending(scenario):
    for ranked in scenario.ranks:
        probabilities = [a["probability"] for a in ranked["ranking"]]
        assert probabilities == sorted(probabilities, reverse=True)
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)


def test_a_deferred_event_is_logged_only_once_activated_with_its_reward(scenario):
    rows = _rows_by_key(scenario)
    assert rows[("p-d1", 0)]["reward"] == 0.7
    assert ("p-d2", 0) not in rows


def test_invalid_requests_get_400_naming_the_field_and_the_rule(scenario):
    expected = [(f, rule) for _, f, rule in BAD] + [("reward", "must be finite")]
    for (status, reply), (field_name, rule) in zip(scenario.refusals, expected, strict=True):
        assert status == 400, reply
        assert reply["error"]["field"] == field_name, reply
        assert rule in reply["error"]["rule"], reply


def test_invalid_requests_log_nothing(scenario, module_kafka):
    logged = {event["episode_id"] for _, event in read_events(module_kafka, expected=10**6,
                                                                timeout_s=3)}  # fmt: skip
    assert logged, "the events topic should hold the scenario's events"
    refused = {body["episode_id"] for body, _, _ in BAD} | {"bad-r"}
    assert not logged & refused
    assert not {r["episode_id"] for r in scenario.rows} & refused


def _features(row: dict[str, Any]) -> list[dict[str, float]] | None:
    value = row["action_features"]
    return None if value is None else [dict(m) for m in value]


def test_a_personalizer_rank_keeps_its_actions_features_flattened_in_its_row(scenario):
    rows = _rows_by_key(scenario)
    ranked = [r["eventId"] for r in scenario.ranks if not r["deferred"]] + ["p-d1"]
    for event_id in ranked:
        assert rows[(event_id, 0)]["possible_actions"] == ["0", "1"]
        assert _features(rows[(event_id, 0)]) == RANK_FEATURES


def test_a_v1_decision_keeps_its_action_features_and_others_have_none(scenario):
    rows = _rows_by_key(scenario)
    (featured,) = scenario.featured
    assert _features(rows[(featured["episode_id"], 0)]) == [{}, {"price": 3.5}]
    for decision in scenario.decisions:
        assert rows[(decision["episode_id"], decision["step"])]["action_features"] is None

"""The fleet plays any gymnasium environment with a Discrete action space, and refuses the rest
in one line."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from click.testing import CliRunner
from gymnasium import spaces

from services.cli.main import cli
from services.simulator.environments import (
    EnvironmentRefused,
    check_environment,
    parse_env_kwargs,
)
from services.simulator.fleet import UniformPolicy, play_episodes
from services.simulator.observations import ObservationEncoder
from services.simulator.recommendation_env import ENV_ID as BANDIT
from tests.simulator.contract import ContractRecorder

TINY_CLASS = "tests.simulator.custom_env:TinyEnv"
TINY_FUNCTION = "tests.simulator.custom_env:make_tiny_env"
CONTINUOUS_REFUSAL = (
    "env 'Pendulum-v1': action space Box(-2.0, 2.0, (1,), float32) is not supported; "
    "policyloop simulates environments with a Discrete action space"
)


def _play(env_id, episodes=3, seed=0, **kwargs):
    recorder = ContractRecorder()
    stats = play_episodes(
        env_id, episodes, UniformPolicy(seed=seed), logger=recorder, seed=seed, **kwargs
    )
    return stats, recorder.events


def _decisions(events):
    return [e for e in events if e["type"] == "decision"]


@pytest.mark.parametrize(
    "env_id",
    ["CartPole-v1", "Taxi-v4", "MountainCar-v0", "Acrobot-v1", BANDIT, TINY_CLASS, TINY_FUNCTION],
)
def test_every_logged_event_obeys_the_contract(env_id):
    stats, events = _play(env_id, episodes=2)
    assert len(_decisions(events)) == sum(stats.lengths)
    assert sum(e["type"] == "episode_end" for e in events) == 2


def test_cartpole_state_keeps_its_named_features():
    _, events = _play("CartPole-v1", episodes=1)
    assert list(_decisions(events)[0]["state"]) == [
        "cart_position",
        "cart_velocity",
        "pole_angle",
        "pole_angular_velocity",
    ]


def test_mountain_car_state_is_named_position_and_velocity():
    _, events = _play("MountainCar-v0", episodes=1)
    assert list(_decisions(events)[0]["state"]) == ["position", "velocity"]


def test_bandit_state_is_named_user_features_and_its_actions_are_the_available_items():
    _, events = _play(BANDIT, episodes=1, seed=4)
    decision = _decisions(events)[0]
    env = gym.make(BANDIT)
    _, info = env.reset(seed=4)
    assert list(decision["state"]) == ["user_0", "user_1", "user_2", "user_3"]
    assert decision["possible_actions"] == info["possible_actions"]


def test_taxi_state_is_one_hot_over_its_500_values():
    _, events = _play("Taxi-v4", episodes=1)
    state = _decisions(events)[0]["state"]
    assert list(state) == [f"obs={v}" for v in range(500)]
    assert sorted(state.values()) == [0.0] * 499 + [1.0]


def test_taxi_possible_actions_are_its_action_mask_at_every_step():
    _, events = _play("Taxi-v4", episodes=2, seed=11)
    env = gym.make("Taxi-v4")
    checked = 0
    for n in range(2):
        _, info = env.reset(seed=11 + n)
        for decision in [d for d in _decisions(events) if d["episode_id"] == f"ep-{n}"]:
            allowed = np.flatnonzero(info["action_mask"]).tolist()
            assert decision["possible_actions"] == allowed
            assert decision["action"] in allowed
            *_, info = env.step(decision["action"])
            checked += 1
    assert checked == len(_decisions(events))


def test_same_seed_replays_the_same_taxi_episodes():
    _, first = _play("Taxi-v4", episodes=3, seed=21)
    _, second = _play("Taxi-v4", episodes=3, seed=21)
    assert [(e["type"], e.get("action"), e.get("reward")) for e in first] == [
        (e["type"], e.get("action"), e.get("reward")) for e in second
    ]


def test_blackjack_tuple_state_uses_its_component_names():
    _, events = _play("Blackjack-v1", episodes=1)
    names = list(_decisions(events)[0]["state"])
    assert names[:2] == ["player_sum=0", "player_sum=1"]
    assert names[-2:] == ["usable_ace=0", "usable_ace=1"]
    assert len(names) == 32 + 11 + 2


def test_own_class_dict_observation_is_flattened_under_its_keys():
    _, events = _play(TINY_CLASS, episodes=1, env_kwargs={"size": 4})
    state = _decisions(events)[0]["state"]
    assert list(state) == ["goal=0", "goal=1", "goal=2", "goal=3", "position_0", "position_1"]


def test_own_class_discrete_actions_keep_the_space_start():
    _, events = _play(TINY_CLASS, episodes=1)
    assert _decisions(events)[0]["possible_actions"] == [-1, 0, 1]


def test_own_function_plays_the_same_episodes_as_the_class():
    by_class, _ = _play(TINY_CLASS, episodes=5, seed=3)
    by_function, _ = _play(TINY_FUNCTION, episodes=5, seed=3)
    assert by_function.returns == by_class.returns


def test_nested_spaces_are_named_by_key_index_and_element():
    space = spaces.Tuple(
        (
            spaces.Dict({"grid": spaces.Box(0, 1, shape=(2, 2))}),
            spaces.MultiBinary(2),
            spaces.MultiDiscrete([3, 4]),
            spaces.Discrete(2, start=5),
        )
    )
    encoder = ObservationEncoder.for_space("nested", space)
    assert encoder.feature_names == (
        "obs.0.grid_0_0",
        "obs.0.grid_0_1",
        "obs.0.grid_1_0",
        "obs.0.grid_1_1",
        "obs.1_0",
        "obs.1_1",
        "obs.2_0",
        "obs.2_1",
        "obs.3=5",
        "obs.3=6",
    )
    state = encoder.state(({"grid": np.eye(2)}, np.array([1, 0]), np.array([2, 3]), 6))
    assert list(state.values()) == [1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 2.0, 3.0, 0.0, 1.0]


@pytest.mark.filterwarnings("ignore:.*not within the observation space")
def test_non_finite_observation_is_refused_naming_the_feature():
    with pytest.raises(ValueError, match=r"state feature 'obs_1' is nan"):
        play_episodes("tests.simulator.custom_env:NanObservationEnv", 1, UniformPolicy())


def test_continuous_action_env_is_refused_in_one_line():
    with pytest.raises(EnvironmentRefused) as refused:
        check_environment("Pendulum-v1")
    assert str(refused.value) == CONTINUOUS_REFUSAL


def test_multidiscrete_action_env_is_refused_naming_the_supported_space():
    with pytest.raises(EnvironmentRefused, match=r"MultiDiscrete\(\[2 3\]\) is not supported.*"):
        check_environment("tests.simulator.custom_env:MultiDiscreteActionEnv")


def test_unknown_id_is_refused_saying_it_is_not_registered_and_how_to_give_ones_own():
    with pytest.raises(EnvironmentRefused) as refused:
        check_environment("Nope-v0")
    message = str(refused.value)
    assert "'Nope-v0' is not registered" in message and "'module:Class'" in message
    assert "\n" not in message


def test_own_environment_from_a_missing_module_is_refused_naming_it():
    with pytest.raises(EnvironmentRefused, match=r"cannot import module 'no_such_module'"):
        check_environment("no_such_module:Env")


def test_env_kwargs_reach_the_environment_constructor():
    stats, _ = _play("CartPole-v1", episodes=5, env_kwargs={"sutton_barto_reward": True})
    assert stats.returns == [-1.0] * 5


def test_max_episode_steps_kwarg_cuts_episodes():
    stats, events = _play("CartPole-v1", episodes=5, env_kwargs={"max_episode_steps": 5})
    assert max(stats.lengths) == 5
    assert any(e["type"] == "episode_end" and not e["terminal"] for e in events)


def test_kwarg_the_environment_does_not_take_is_refused_in_one_line():
    with pytest.raises(EnvironmentRefused, match=r"^env 'CartPole-v1' could not be made with"):
        check_environment("CartPole-v1", {"no_such_kwarg": 1})


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '"a"'])
def test_env_kwargs_must_be_a_json_object(text):
    with pytest.raises(ValueError, match="JSON"):
        parse_env_kwargs(text)


def test_simulate_refuses_a_continuous_action_env_before_contacting_any_broker(monkeypatch):
    def no_fleet(*args, **kwargs):
        raise AssertionError("the fleet must not start")

    monkeypatch.setattr("services.simulator.traffic.run_fleet", no_fleet)
    env = {"POLICYLOOP_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    result = CliRunner().invoke(
        cli, ["simulate", "--env", "Pendulum-v1", "--episodes", "1"], env=env
    )

    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == (
        f"Error: Invalid value for '--env': {CONTINUOUS_REFUSAL}"
    )


def test_simulate_refuses_bad_env_kwargs_json_naming_the_flag():
    result = CliRunner().invoke(cli, ["simulate", "--env-kwargs", "{oops", "--episodes", "1"])

    assert result.exit_code == 2
    assert "Invalid value for '--env-kwargs': not valid JSON" in result.output

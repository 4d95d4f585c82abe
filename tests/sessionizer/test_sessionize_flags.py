"""``policyloop sessionize`` flags whose effect shows in the table, through the real command.

The golden tests pin the rules behind these flags on the pure sessionizer; these check that the
command line reaches them: each run is the real command (a subprocess) against the real broker
and a real Delta table, with short windows and few episodes.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest

from services.sdk import DecisionLogger
from services.sdk.settings import SdkSettings
from tests.sessionizer.workload import (
    DEFAULT_REWARD,
    Episode,
    expected_rows,
    log_episodes,
    log_unended_episode,
    make_episodes,
    run_batch,
    table_rows,
)

pytestmark = pytest.mark.integration


def _run(kafka, table_uri, *flags: str) -> subprocess.CompletedProcess:
    done = run_batch(kafka, table_uri, *flags, timeout_s=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _with_rewards(episodes: list[Episode], reward_of: Callable[[list[float]], float]) -> dict:
    """The workload's expected rows, each reward computed by ``reward_of`` from its rewards."""
    rows = expected_rows(episodes)
    for ep in episodes:
        for step in range(ep.steps):
            key = (ep.episode_id, step)
            rows[key] = (reward_of(ep.rewards.get(step, [])), *rows[key][1:])
    return rows


def test_reward_aggregation_first_writes_the_first_reward_of_each_step(kafka, tmp_path):
    episodes = make_episodes(40, seed=21)
    several = [rs for ep in episodes for rs in ep.rewards.values() if len(rs) > 1]
    assert any(rs[0] != sum(rs) for rs in several)  # first and sum differ somewhere
    log_episodes(kafka, episodes, tmp_path / "spool")
    _run(kafka, tmp_path / "timeline", "--reward-aggregation", "first")
    first = _with_rewards(episodes, lambda rs: rs[0] if rs else DEFAULT_REWARD)
    assert table_rows(tmp_path / "timeline") == first


def test_default_reward_is_the_reward_of_steps_without_reward_events(kafka, tmp_path):
    episodes = make_episodes(40, seed=22)
    assert any(not rs for ep in episodes for rs in ep.rewards.values())
    log_episodes(kafka, episodes, tmp_path / "spool")
    _run(kafka, tmp_path / "timeline", "--default-reward", "7.5")  # overrides the workload's -1
    assert table_rows(tmp_path / "timeline") == _with_rewards(
        episodes, lambda rs: sum(rs) if rs else 7.5
    )


def test_episode_timeout_closes_a_silent_episode_as_truncated(kafka, tmp_path):
    log_unended_episode(kafka, tmp_path / "spool", "silent", 3)
    done = _run(kafka, tmp_path / "timeline", "--episode-timeout", "1")
    assert "have not ended" not in done.stdout
    silent = Episode("silent", 3, {}, terminal=False)
    assert table_rows(tmp_path / "timeline") == expected_rows([silent])


def test_state_uri_holds_the_checkpoints_that_a_later_run_resumes_from(kafka, tmp_path):
    table, state = tmp_path / "timeline", tmp_path / "elsewhere"
    log_unended_episode(kafka, tmp_path / "spool", "open", 3)
    first = _run(kafka, table, "--state-uri", str(state))
    assert "1 episodes have not ended" in first.stdout
    assert list((state / "g" / kafka.events_topic).glob("*/*.msgpack"))
    assert not (tmp_path / "timeline.state").exists()  # not the default next to the table

    with DecisionLogger(
        kafka=kafka, settings=SdkSettings(spool_dir=str(tmp_path / "spool"))
    ) as logger:
        logger.end_episode("open", False)
        logger.flush(30)
    second = _run(kafka, table, "--state-uri", str(state))
    assert "no state checkpoint" not in second.stderr
    assert table_rows(table) == expected_rows([Episode("open", 3, {}, terminal=False)])

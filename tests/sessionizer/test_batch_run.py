"""``policyloop sessionize --until-idle``: a batch job that writes every row it can before exiting.

Each run is the real command against the real broker and a real Delta table; the rows expected
come from the workload's own description (``tests/sessionizer/workload.py``).
"""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from datetime import datetime

import pytest

from services.kafka_settings import KafkaSettings
from services.kafka_topics import ensure_topics
from services.sdk import DecisionLogger
from services.sdk.settings import SdkSettings
from tests.sessionizer.workload import (
    Episode,
    expected_rows,
    log_episodes,
    log_unended_episode,
    make_episodes,
    run_batch,
    table_rows,
    worker_command,
)

pytestmark = pytest.mark.integration

_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ", re.M)


def _logged_at(stderr: str, text: str) -> float:
    """The time of the worker's first log line containing ``text``."""
    for line in stderr.splitlines():
        if text in line:
            stamp = _STAMP.match(line)
            assert stamp, line
            return datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
    raise AssertionError(f"no line with {text!r} in:\n{stderr[-3000:]}")


WINDOW_S, SLACK_S = 20.0, 0.2  # slack: worker_command's --idle-clock-slack


@pytest.fixture(scope="module")
def waited_run(broker, tmp_path_factory):
    """One batch run over ended episodes with a 20 s reward window: long enough that the worker
    is up and idle (a few seconds on a loaded machine) while the windows are still open."""
    tmp = tmp_path_factory.mktemp("waited")
    kafka = KafkaSettings(
        bootstrap_servers=broker.bootstrap_servers,
        topic_prefix=f"t{uuid.uuid4().hex[:12]}",
        partitions=4,
    )
    ensure_topics(kafka)
    episodes = make_episodes(100, seed=11)
    log_episodes(kafka, episodes, tmp / "spool")
    done = run_batch(kafka, tmp / "timeline", "--reward-window", str(WINDOW_S))
    return done, episodes, tmp / "timeline"


def test_ended_episodes_wait_out_their_reward_window_and_every_row_is_written(waited_run):
    done, episodes, table = waited_run
    assert done.returncode == 0, done.stderr[-3000:]
    assert table_rows(table) == expected_rows(episodes)
    wait = re.search(r"waiting (\d+) s for the reward windows of (\d+) rows", done.stderr)
    assert wait, done.stderr[-3000:]
    assert int(wait.group(2)) > 0


def test_the_wait_is_bounded_by_the_reward_window(waited_run):
    done, _, _ = waited_run
    assert done.returncode == 0, done.stderr[-3000:]
    announced = int(re.search(r"waiting (\d+) s", done.stderr).group(1))
    assert 0 < announced <= WINDOW_S + SLACK_S
    waited = _logged_at(done.stderr, "idle for") - _logged_at(done.stderr, "waiting")
    assert waited <= WINDOW_S + SLACK_S + 1.0


def test_historical_events_close_at_once_without_waiting(kafka, tmp_path):
    old = int(time.time() * 1000) - 30 * 86_400_000
    with DecisionLogger(kafka=kafka, settings=SdkSettings(spool_dir=str(tmp_path))) as logger:
        for e in range(20):
            for s in range(3):
                logger.decision(f"h{e}", s, {"x": 1.0}, 0, [0, 1], 0.5, "v1", ts=old + s)
            logger.end_episode(f"h{e}", True, ts=old + 3)
        logger.flush(30)
    done = run_batch(kafka, tmp_path / "timeline", "--reward-window", "60")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "waiting" not in done.stderr
    assert "60 rows written" in done.stdout


def test_an_episode_still_open_at_exit_is_reported_and_a_later_run_writes_it(kafka, tmp_path):
    episodes = make_episodes(30, seed=13)
    log_episodes(kafka, episodes, tmp_path / "spool")
    log_unended_episode(kafka, tmp_path / "spool", "open-1", 3, end=False)
    table = tmp_path / "timeline"
    first = run_batch(kafka, table)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "1 episodes have not ended: kept in the checkpoint" in first.stdout
    rows = table_rows(table)
    assert ("open-1", 2) not in rows  # its last row waits for the episode's end

    with DecisionLogger(
        kafka=kafka, settings=SdkSettings(spool_dir=str(tmp_path / "spool"))
    ) as logger:
        logger.end_episode("open-1", False)
        logger.flush(30)
    second = run_batch(kafka, table)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "have not ended" not in second.stdout
    expected = expected_rows([*episodes, Episode("open-1", 3, {}, terminal=False)])
    assert table_rows(table) == expected


def test_close_open_episodes_writes_them_as_truncated_at_exit(kafka, tmp_path):
    log_unended_episode(kafka, tmp_path / "spool", "never-ends", 4, end=False)
    table = tmp_path / "timeline"
    done = run_batch(kafka, table, "--close-open-episodes")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "have not ended" not in done.stdout
    assert table_rows(table) == expected_rows([Episode("never-ends", 4, {}, terminal=False)])


def test_close_open_episodes_needs_a_batch_run(kafka, tmp_path):
    cmd = worker_command(kafka, tmp_path / "timeline", extra=["--close-open-episodes"])
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--close-open-episodes: only with --until-idle" in done.stderr

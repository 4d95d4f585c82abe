"""``policyloop rollout``: flag errors name the flag and the rule; start, status, tick, abort."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from services.cli.main import cli


def _run(env, *args):
    return CliRunner().invoke(cli, ["rollout", *args], env=env)


@pytest.mark.parametrize(
    ("args", "flag", "rule"),
    [
        (["start", "v2", "--steps", "5,3,100"], "--steps", "strictly increasing"),
        (["start", "v2", "--steps", "5,25,50"], "--steps", "must end in 100"),
        (["start", "v2", "--steps", "5,abc"], "--steps", "comma-separated percentages"),
        (["start", "v2", "--min-episodes", "0"], "--min-episodes", "whole number >= 1"),
        (["start", "v2", "--min-episodes", "ten"], "--min-episodes", "whole number >= 1"),
        (["watch", "--every", "-3"], "--every", "positive number of seconds"),
        (["watch", "--metrics-port", "70000"], "--metrics-port", "port number"),
        (["watch", "--metrics-port", "9000", "--pushgateway", "http://x"], "--pushgateway",
         "at most one"),
    ],
)  # fmt: skip
def test_a_bad_flag_is_one_line_naming_the_flag_and_the_rule(env, args, flag, rule):
    result = _run(env, *args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0] and rule in lines[0], result.output


@pytest.mark.integration
def test_start_status_tick_and_abort(env, registry):
    started = _run(env, "start", "v2", "--steps", "10,50,100", "--min-episodes", "20")
    assert started.exit_code == 0, started.output
    assert started.output.startswith("start v2 vs v1: 0% -> 10%")
    assert registry.rollout()["plan"]["steps"] == [0.1, 0.5, 1.0]
    status = _run(env, "status")
    assert status.exit_code == 0 and "rollout of v2 (incumbent v1)" in status.output
    tick = _run(env, "tick")
    assert tick.exit_code == 0 and tick.output.startswith("hold v2 vs v1")
    assert len(tick.output.strip().splitlines()) == 1
    again = _run(env, "start", "v2")
    assert again.exit_code == 1 and "already running" in again.output
    aborted = _run(env, "abort", "--reason", "testing")
    assert aborted.exit_code == 0 and "testing" in aborted.output
    assert registry.rollout() is None
    assert "no staged rollout running" in _run(env, "status").output


@pytest.mark.integration
def test_watch_rolls_a_worse_candidate_back_and_stops_when_done(env, registry, tmp_path):
    import datetime as dt

    import numpy as np

    from tests.rollout.timeline import episode_rows, write_timeline

    started = _run(env, "start", "v2", "--steps", "10,100", "--min-episodes", "500")
    assert started.exit_code == 0, started.output
    first = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    rng = np.random.default_rng(0)
    rows = []
    for version, mean in (("v2", 5.0), ("v1", 20.0)):
        for i, total in enumerate(rng.normal(mean, 2.0, 40)):
            rows += episode_rows(f"w-{version}-{i}", version, [total], first)
    write_timeline(env["POLICYLOOP_TABLES__TIMELINE_URI"], rows)
    watched = _run(env, "watch", "--every", "0.1", "--until-done")
    assert watched.exit_code == 0, watched.output
    assert "rollback v2 vs v1: 10% -> 0%" in watched.output
    assert registry.rollout() is None and registry.current() == "v1"

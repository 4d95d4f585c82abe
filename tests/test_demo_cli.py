"""`policyloop demo` through the command line: its options reach the loop, and it exits 1 when
the served policy misses the environment's target (here: ten gradient steps cannot balance
CartPole)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def short_demo(tmp_path_factory) -> tuple[subprocess.CompletedProcess, object]:
    cwd = tmp_path_factory.mktemp("demo-cli")
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLICYLOOP_")}
    command = [
        sys.executable, "-m", "services.cli", "demo",
        "--rounds", "1", "--cold-start-episodes", "60", "--batch-episodes", "30",
        "--min-episodes", "10", "--trainer-steps", "10", "--seed", "3",
    ]  # fmt: skip
    done = subprocess.run(
        command,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return done, cwd


def test_the_demo_exits_1_and_says_so_when_the_target_is_missed(short_demo):
    done, _ = short_demo
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert "(target 195: NOT reached)" in done.stdout


def test_the_demo_options_set_the_rounds_and_the_cold_start(short_demo):
    done, _ = short_demo
    rounds = re.findall(r"^round (\d+) ", done.stdout, re.M)
    assert rounds == ["0", "1"], done.stdout
    assert re.search(r"^round 0 .*\(discounted [\d.]+, 60 episodes\)", done.stdout, re.M)


def test_the_demo_stops_what_it_started_and_writes_its_report(short_demo):
    done, cwd = short_demo
    assert "sessionizer and broker stopped" in done.stdout
    assert (cwd / ".policyloop" / "demo" / "reports" / "demo.html").is_file()

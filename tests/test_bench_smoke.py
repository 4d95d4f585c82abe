"""Every benchmark starts and runs to the end at tiny sizes (`python -m tests.benchmarks --smoke`).

So that a benchmark that can no longer start (a dependency ``make bench`` does not install, an
API that moved) fails CI instead of surprising the next person who measures. The figures of a
smoke run mean nothing; the targets are judged by ``make bench`` only.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmarks.__main__ import available

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]


def test_every_benchmark_module_is_found():
    assert set(available()) >= {
        "cpe_coverage",
        "interop",
        "learner_memory",
        "learner_quality",
        "learner_suite",
        "policy_client",
        "sdk",
        "serve",
        "sessionizer",
        "trainer_speed",
    }


@pytest.mark.parametrize("name", available())
def test_the_benchmark_runs_to_the_end_in_smoke_mode(name):
    done = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks", "--smoke", name],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "smoke run: tiny sizes, the target is not judged" in output
    assert "command:" in output  # it printed its figures and the command that reproduces them

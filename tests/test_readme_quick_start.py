"""The README's quick start, run as written: it must publish a policy that the fleet then serves.

The shell block under "## Quick start" is extracted from README.md and run by bash, line by line
as a user would paste it, in an empty directory (so the embedded defaults under
``./.policyloop/`` are this test's own) with the project's ``.venv/bin`` first on the ``PATH``.
The only setting changed is the broker's port (a free one, through ``POLICYLOOP_*`` variables,
as a user whose 9092 is taken would do), so the test cannot collide with a broker already
running. When the README changes, this test follows it; when the behaviour breaks, it fails.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from services.broker.embedded import find_free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]


def quick_start_block(readme: str) -> str:
    """The first ```sh block after the "## Quick start" heading."""
    section = readme.split("\n## Quick start\n", 1)
    assert len(section) == 2, "README.md has no '## Quick start' section"
    block = re.search(r"```sh\n(.*?)```", section[1], re.S)
    assert block, "the quick start has no ```sh block"
    return block.group(1)


@pytest.fixture(scope="module")
def quick_start(tmp_path_factory) -> str:
    """Run the block; returns everything it printed (stdout and stderr)."""
    block = quick_start_block((REPO / "README.md").read_text())
    cwd = tmp_path_factory.mktemp("new-user")
    port = find_free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLICYLOOP_") and k != "CI"}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        POLICYLOOP_BROKER__PORT=str(port),
        POLICYLOOP_KAFKA__BOOTSTRAP_SERVERS=f"127.0.0.1:{port}",
        PYTHONUNBUFFERED="1",
    )
    try:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
    finally:
        subprocess.run(
            ["policyloop", "broker", "down"], cwd=cwd, env=env, capture_output=True, timeout=60
        )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    return done.stdout


def test_the_quick_start_writes_a_row_for_every_logged_decision(quick_start):
    logged = re.search(r"played \d+ episodes \((\d+) decisions\)", quick_start)
    written = re.search(r"sessionizer done: \d+ events, (\d+) rows written", quick_start)
    assert logged and written, quick_start
    assert int(written.group(1)) == int(logged.group(1)) > 0


def test_the_quick_start_publishes_a_version(quick_start):
    assert re.search(r"^Published v1: ", quick_start, re.M), quick_start
    assert re.search(r"│ v1 +│ CURRENT ", quick_start), quick_start


def test_the_published_policy_is_served_and_beats_the_uniform_one(quick_start):
    means = dict(
        re.findall(r"policy_version=(\S+): \d+ episodes, mean return ([\d.-]+)", quick_start)
    )
    assert set(means) == {"uniform", "v1"}, quick_start
    assert float(means["v1"]) > 2 * float(means["uniform"])

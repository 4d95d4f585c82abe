"""The README's JavaScript client, run as written by Node against a live server: a language
other than Python gets a decision, rewards it and ends its episode. Skipped (with the reason)
where no ``node`` is installed; a skip is not a pass."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from tests.decision.conftest import REPO, Served

pytestmark = pytest.mark.integration


def _readme_js() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Decision service over HTTP", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```js\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 1, "the README's decision-service section has one js block"
    return blocks[0]


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed on this machine")
def test_the_readme_javascript_client_decides_rewards_and_ends_an_episode(server: Served, tmp_path):
    script = tmp_path / "client.mjs"
    script.write_text(_readme_js())
    done = subprocess.run(
        ["node", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, POLICYLOOP_URL=server.url),
    )
    assert done.returncode == 0, done.stderr
    decision = json.loads(done.stdout.strip().splitlines()[-1])
    assert decision["policy_version"] == "v1" and decision["action"] in (0, 1)
    with server.client() as http:  # the client's end went through: the episode is closed
        again = http.post(f"/v1/episodes/{decision['episode_id']}/end", json={"terminal": True})
    assert again.status_code == 404

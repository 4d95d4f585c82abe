"""`policyloop demo`: a short closed loop publishes a version, serves it, and cleans up."""

from __future__ import annotations

import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest
from rich.console import Console

from services.broker.embedded import broker_status
from services.cli.settings import Settings
from services.delta_tables import open_table
from services.demo import demo_settings, run_demo
from services.simulator.recommendation_env import ENV_ID

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def short_loop(tmp_path_factory):
    home = tmp_path_factory.mktemp("demo") / "home"
    demo = demo_settings(
        ENV_ID,
        cold_start_episodes=3_000,
        batch_episodes=1_500,
        min_episodes=100,
        max_rounds=1,
        learner={
            "trainer": {"steps": 300, "hidden_sizes": [32]},
            "cpe": {"n_bootstrap": 50, "reward_model": {"epochs": 5}},
        },
    )
    result = run_demo(Settings(home=str(home)), demo, console=Console(quiet=True))
    return home / "demo", result


def test_short_loop_publishes_a_version_that_the_fleet_then_serves(short_loop):
    _, result = short_loop
    assert [r.decision for r in result.rounds] == ["cold start", "publish"]
    version = result.rounds[1].version
    served = {v for batch in result.traffic[1:] for v in batch.episodes_by_version}
    assert version in served


def test_the_published_versions_decisions_reach_the_timeline(short_loop):
    root, result = short_loop
    version = result.rounds[1].version
    table = open_table(root / "tables" / "timeline")
    versions = ds.dataset(table.file_uris(), format="parquet").to_table(columns=["policy_version"])
    counts = pc.value_counts(versions.column("policy_version")).to_pylist()
    by_version = {c["values"]: c["counts"] for c in counts}
    assert by_version.get(version, 0) > 0
    assert by_version["uniform"] >= 3_000


def test_demo_stops_every_process_and_writes_its_report(short_loop):
    root, result = short_loop
    handle, _ = broker_status(root / "broker")
    assert handle is None
    assert result.sessionizer_exit_code == 0
    report = (root / "reports" / "demo.html").read_text()
    assert "<h2>Rounds</h2>" in report and report.count("<img") == 2

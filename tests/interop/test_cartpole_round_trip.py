"""A CartPole log from ``policyloop simulate``, sessionized, exported to RLlib JSON and imported
into a fresh table, gives the same table but for processing times."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from services.cli.main import cli
from tests.interop.conftest import run_import, table_rows
from tests.sessionizer.workload import run_batch

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_sessionized_cartpole_log_exported_and_imported_gives_the_same_table(
    kafka, tmp_path, rejects
):
    env = {
        "POLICYLOOP_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "POLICYLOOP_KAFKA__TOPIC_PREFIX": kafka.topic_prefix,
        "POLICYLOOP_SDK__SPOOL_DIR": str(tmp_path / "spool"),
        "POLICYLOOP_LEARNER__REGISTRY_URI": str(tmp_path / "registry"),
    }
    played = CliRunner().invoke(
        cli, ["simulate", "--env", "CartPole-v1", "--episodes", "15", "--seed", "4"], env=env
    )
    assert played.exit_code == 0, played.output
    live = tmp_path / "live"
    done = run_batch(kafka, live)
    assert done.returncode == 0, done.stderr[-3000:]
    exported = tmp_path / "cartpole.json"
    result = CliRunner().invoke(
        cli, ["export", "rllib-json", "--table-uri", str(live), "--output", str(exported)]
    )
    assert result.exit_code == 0, result.output

    imported = tmp_path / "imported"
    again = run_import("rllib-json", imported, rejects, str(exported))

    assert again.exit_code == 0, again.output
    original = table_rows(live)
    assert len({r["episode_id"] for r in original}) == 15
    assert sum(r["terminal"] for r in original) == 15  # CartPole's poles fell: real episodes
    assert table_rows(imported) == original

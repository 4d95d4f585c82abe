"""`policyloop table compact|vacuum` keep the stream's small files from piling up."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from deltalake import DeltaTable, write_deltalake

from schemas.tables import TIMELINE_PARTITION_BY, TIMELINE_SCHEMA, rows_to_table
from services.cli.main import cli
from services.delta_tables import read_table
from tests.learner.data.timeline_rows import episode_rows

pytestmark = pytest.mark.integration


@pytest.fixture
def small_files_table(tmp_path: Path) -> str:
    """A timeline written as five one-episode commits, as a stream's batches leave it."""
    uri = str(tmp_path / "timeline")
    for n in range(5):
        rows = episode_rows(f"ep{n}", [{"x": float(n)}] * 3, ["0", "1", "0"], [1.0, 0.0, 1.0])
        write_deltalake(uri, rows_to_table(rows), partition_by=TIMELINE_PARTITION_BY, mode="append")
    return uri


def _keys(uri: str) -> list[tuple[str, int]]:
    table = read_table(DeltaTable(uri), TIMELINE_SCHEMA, columns=["episode_id", "step"])
    return sorted(zip(table["episode_id"].to_pylist(), table["step"].to_pylist(), strict=True))


def _invoke(*args: str):
    return CliRunner().invoke(cli, ["table", *args], catch_exceptions=False)


def test_compact_rewrites_small_files_into_one_and_keeps_every_row(small_files_table):
    before = _keys(small_files_table)
    assert len(DeltaTable(small_files_table).file_uris()) == 5
    result = _invoke("compact", "--table-uri", small_files_table)
    assert result.exit_code == 0, result.output
    assert "5 files removed, 1 added" in result.output
    assert len(DeltaTable(small_files_table).file_uris()) == 1
    assert _keys(small_files_table) == before


def test_vacuum_deletes_only_files_no_version_needs(small_files_table):
    _invoke("compact", "--table-uri", small_files_table)
    before = _keys(small_files_table)
    dry = _invoke(
        "vacuum",
        "--table-uri",
        small_files_table,
        "--retention-hours",
        "0",
        "--no-enforce-retention",
    )
    assert "would delete 5 files" in dry.output
    real = _invoke(
        "vacuum",
        "--table-uri",
        small_files_table,
        "--retention-hours",
        "0",
        "--no-enforce-retention",
        "--no-dry-run",
    )
    assert real.exit_code == 0 and "deleted 5 files" in real.output
    parquet = list(Path(small_files_table).rglob("*.parquet"))
    assert len(parquet) == 1
    assert _keys(small_files_table) == before


def test_vacuum_refuses_a_retention_below_the_tables_minimum(small_files_table):
    result = _invoke(
        "vacuum", "--table-uri", small_files_table, "--retention-hours", "0", "--no-dry-run"
    )
    assert result.exit_code == 1
    assert "vacuum refused" in result.output
    assert len(list(Path(small_files_table).rglob("*.parquet"))) == 5


def test_upkeep_of_a_missing_table_says_there_is_none(tmp_path):
    result = _invoke("compact", "--table-uri", str(tmp_path / "nothing"))
    assert result.exit_code == 1 and "no Delta table at" in result.output

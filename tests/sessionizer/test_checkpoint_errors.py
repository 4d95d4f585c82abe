"""A checkpoint that cannot be read is an error, never "no checkpoint" (issue 13, case 6).

Only a missing file means there is none; any other read error is retried and then stops the
worker with :class:`CheckpointUnreadableError`, as does a checkpoint that does not decode.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from services.sessionizer import checkpoint as checkpoint_mod
from services.sessionizer.checkpoint import CheckpointStore, CheckpointUnreadableError
from tests.sessionizer.workload import (
    expected_rows,
    log_episodes,
    make_episodes,
    table_rows,
    worker_command,
)

STATE = {"open": {"ep-1": [1, 2, 3]}, "clock": 12.5}


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checkpoint_mod, "READ_RETRY_BACKOFF_S", 0.0)


def _store(tmp_path: Path) -> CheckpointStore:
    return CheckpointStore(str(tmp_path / "state"), "g", "events")


def _path(tmp_path: Path, partition: int, number: int) -> Path:
    return tmp_path / "state" / "g" / "events" / str(partition) / f"{number:020d}.msgpack"


class _CountingFs:
    """Delegates to a pyarrow filesystem; counts reads and fails the first ``fail`` of them."""

    def __init__(self, inner: Any, fail: int = 0) -> None:
        self._inner, self._fail, self.reads = inner, fail, 0

    def open_input_stream(self, path: str) -> Any:
        self.reads += 1
        if self.reads <= self._fail:
            raise OSError("object store read timed out")
        return self._inner.open_input_stream(path)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_missing_checkpoint_is_none(tmp_path: Path) -> None:
    store = _store(tmp_path)
    assert store.load(0, 7) is None
    store.save(0, 1, STATE)
    assert store.load(0, 2) is None
    assert store.load(0, 1) == STATE


def test_directory_in_place_of_checkpoint_raises_after_retries(tmp_path: Path) -> None:
    store = _store(tmp_path)
    path = _path(tmp_path, 2, 5)
    path.mkdir(parents=True)
    counting = store._fs = _CountingFs(store._fs)
    with pytest.raises(CheckpointUnreadableError) as raised:
        store.load(2, 5)
    assert counting.reads == checkpoint_mod.READ_ATTEMPTS > 1
    message = str(raised.value)
    assert str(path) in message
    assert "partition 2" in message and "checkpoint 5" in message
    assert "is a directory" in message  # the cause
    assert isinstance(raised.value.__cause__, OSError)


def test_transient_read_error_is_retried(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.save(1, 3, STATE)
    counting = store._fs = _CountingFs(store._fs, fail=checkpoint_mod.READ_ATTEMPTS - 1)
    assert store.load(1, 3) == STATE
    assert counting.reads == checkpoint_mod.READ_ATTEMPTS


@pytest.mark.parametrize(
    "data", [b"not a checkpoint", b"\xc1\xff\x00", b"", b"\x93\x01", b"\x05"], ids=repr
)
def test_undecodable_checkpoint_is_an_error_not_none(tmp_path: Path, data: bytes) -> None:
    store = _store(tmp_path)
    path = _path(tmp_path, 0, 4)
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    with pytest.raises(CheckpointUnreadableError, match=re.escape(str(path))) as raised:
        store.load(0, 4)
    assert "partition 0" in str(raised.value) and "checkpoint 4" in str(raised.value)


def _latest_checkpoints(state_dir: Path) -> list[Path]:
    """The newest checkpoint file of each partition that has one."""
    out = []
    for part in sorted(p for p in state_dir.glob("*/*/*") if p.is_dir()):
        files = sorted(part.glob("*.msgpack"))
        if files:
            out.append(files[-1])
    return out


@pytest.mark.integration
def test_worker_with_a_corrupt_checkpoint_exits_1_and_leaves_the_table(kafka, tmp_path):
    # Episodes left open (not terminal at the end) keep state in the checkpoint.
    episodes = make_episodes(200, seed=11)
    table_uri = tmp_path / "timeline"
    log_episodes(kafka, episodes, tmp_path / "spool")
    first = subprocess.run(
        worker_command(kafka, table_uri, until_idle=3),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert first.returncode == 0, first.stderr[-3000:]
    assert table_rows(table_uri) == expected_rows(episodes)
    before = table_rows(table_uri)
    latest = _latest_checkpoints(Path(f"{table_uri}.state"))
    assert latest, "the first run wrote no checkpoint"
    latest[0].write_bytes(b"\xc1 garbage, not msgpack")

    log_episodes(kafka, make_episodes(20, seed=12, prefix="later"), tmp_path / "spool2")
    second = subprocess.run(
        worker_command(kafka, table_uri, until_idle=3),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert second.returncode == 1, second.stderr[-3000:]
    assert "CheckpointUnreadableError" in second.stderr, second.stderr[-3000:]
    assert str(latest[0]) in second.stderr
    assert "no state checkpoint" not in second.stderr  # never resumed with empty state
    assert table_rows(table_uri) == before

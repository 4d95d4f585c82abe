"""Fencing a zombie writer, on a real Delta table and checkpoint directory (no broker).

Two :class:`DeltaSink` objects (or two workers without Kafka, ``WorkerRig``) on one table play
two workers of one group: the first claimed a partition, then the group gave it to the second.
The end-to-end case (a worker cut off from the broker) is ``test_zombie_writer.py``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

from schemas.tables import TIMELINE_PARTITION_BY, TIMELINE_SCHEMA
from schemas.wire import encode_batch
from services.delta_tables import ensure_table, read_table
from services.sessionizer.checkpoint import CheckpointStore, CheckpointTakenError
from services.sessionizer.fencing import Committed, Fenced
from services.sessionizer.sessionize import PartitionSessionizer, SessionConfig
from services.sessionizer.settings import SessionizerSettings
from services.sessionizer.sink import DeltaSink, PartitionBatch
from tests.sessionizer.factory import T0, decision, end
from tests.sessionizer.test_incremental_checkpoint_rig import GROUP as RIG_GROUP
from tests.sessionizer.test_incremental_checkpoint_rig import WorkerRig

GROUP, TOPIC = "g", "t.events"
STATE = {"open": {"ep-1": [1, 2]}, "clock": 3.5}


def _rows(episode: str) -> list[dict]:
    """The two timeline rows of a finished two-step episode."""
    sess = PartitionSessionizer(SessionConfig(reward_window_ms=0))
    events = [decision(episode, 0), decision(episode, 1), end(episode, True, ts=T0 + 2000)]
    sess.process_record(encode_batch(events), 0, T0 + 10_000)
    sess.advance(T0 + 10_000)
    rows = sess.take_output().rows
    assert len(rows) == 2
    return rows


def _sink(tmp_path: Path, writer: str) -> DeltaSink:
    return DeltaSink(str(tmp_path / "timeline"), GROUP, TOPIC, writer=writer)


def _episodes_in(tmp_path: Path) -> set[str]:
    table = DeltaTable(str(tmp_path / "timeline"))
    return set(read_table(table, TIMELINE_SCHEMA, columns=["episode_id"])["episode_id"].to_pylist())


def test_a_writer_whose_partition_was_claimed_since_writes_none_of_its_rows(tmp_path):
    zombie, successor = _sink(tmp_path, "zombie"), _sink(tmp_path, "successor")
    zombie.claim([0])
    successor.claim([0])

    assert zombie.fenced([0]) == [Fenced(0, held=1, recorded=2)]
    outcome = zombie.commit([PartitionBatch(0, 5, 1, _rows("late"))])

    assert outcome.rows == 0 and _episodes_in(tmp_path) == set()
    assert zombie.generation(0) is None  # released: nothing more is written for it


def test_a_claim_between_the_ownership_check_and_the_commit_makes_the_commit_fail_safe(tmp_path):
    zombie, successor = _sink(tmp_path, "zombie"), _sink(tmp_path, "successor")
    zombie.claim([0, 1])
    assert zombie.fenced([0, 1]) == []  # still the owner here: it saves its checkpoints...
    successor.claim([0])  # ...and the group's new owner of partition 0 claims it meanwhile

    outcome = zombie.commit(
        [PartitionBatch(0, 5, 1, _rows("taken")), PartitionBatch(1, 9, 1, _rows("kept"))]
    )

    assert outcome.fenced == [Fenced(0, held=1, recorded=2)]
    assert outcome.rows == 2 and _episodes_in(tmp_path) == {"kept"}


def test_a_claim_resumes_from_the_previous_owners_last_commit(tmp_path):
    first, second = _sink(tmp_path, "first"), _sink(tmp_path, "second")
    assert first.claim([3]) == {3: Committed(None, None, None, generation=1)}
    first.commit([PartitionBatch(3, 41, 7, _rows("a"))])

    resumed = second.claim([3])

    assert resumed == {3: Committed(41, 7, checkpoint_generation=1, generation=2)}


def test_every_commit_names_its_writer_and_generations_in_the_table_history(tmp_path):
    sink = _sink(tmp_path, "worker-7")
    sink.claim([2])
    sink.commit([PartitionBatch(2, 0, 1, _rows("a"))])

    history = DeltaTable(str(tmp_path / "timeline")).history(2)

    assert [h["policyloop.operation"] for h in history] == ["append", "claim"]
    assert all(h["policyloop.writer"] == "worker-7" for h in history)
    assert all(h["policyloop.generations"] == {"2": 1} for h in history)


def test_two_writers_numbering_the_same_checkpoint_never_share_its_file(tmp_path):
    store = CheckpointStore(str(tmp_path / "state"), GROUP, TOPIC)
    store.save(0, 5, {"writer": "zombie"}, generation=1)
    store.save(0, 5, {"writer": "successor"}, generation=2)

    assert store.load(0, 5, generation=1) == {"writer": "zombie"}
    assert store.load(0, 5, generation=2) == {"writer": "successor"}


def test_a_checkpoint_is_created_only_if_absent(tmp_path):
    store = CheckpointStore(str(tmp_path / "state"), GROUP, TOPIC)
    store.save(1, 2, STATE, generation=4)

    with pytest.raises(CheckpointTakenError, match="partition 1"):
        store.save(1, 2, {"other": True}, generation=4)
    assert store.load(1, 2, generation=4) == STATE


def test_a_table_written_before_generations_resumes_from_its_checkpoint(tmp_path):
    uri = str(tmp_path / "timeline")
    table = ensure_table(uri, TIMELINE_SCHEMA, TIMELINE_PARTITION_BY)
    old_txns = [
        Transaction(f"{GROUP}:{TOPIC}:0", 12),
        Transaction(f"{GROUP}:{TOPIC}:0:checkpoint", 3),
    ]
    write_deltalake(
        table,
        TIMELINE_SCHEMA.empty_table(),
        mode="append",
        partition_by=TIMELINE_PARTITION_BY,
        commit_properties=CommitProperties(app_transactions=old_txns),
    )
    store = CheckpointStore(f"{uri}.state", GROUP, TOPIC)
    store.save(0, 3, STATE)  # the name without a generation

    resumed = _sink(tmp_path, "new").claim([0])

    assert resumed == {0: Committed(12, 3, checkpoint_generation=None, generation=1)}
    assert store.load(0, 3, resumed[0].checkpoint_generation) == STATE


def test_a_worker_that_finds_its_partition_claimed_counts_it_as_fenced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = SessionizerSettings(reward_window_s=0)
    zombie = WorkerRig(tmp_path, settings, "zombie", partitions=[0, 1]).claim()
    WorkerRig(tmp_path, settings, "successor", partitions=[0]).claim().close()
    for p in (0, 1):
        zombie.feed([decision("a", 0), decision("a", 1), end("a", True, ts=T0 + 2000)], T0, p)

    with caplog.at_level(logging.WARNING, logger="policyloop.sessionizer"):
        zombie.commit()
    zombie.close()

    fenced = zombie.metrics.registry.get_sample_value(
        "policyloop_sessionizer_fenced_partitions_total", {"group": RIG_GROUP}
    )
    assert fenced == 1
    assert "lost ownership of partition 0" in caplog.text

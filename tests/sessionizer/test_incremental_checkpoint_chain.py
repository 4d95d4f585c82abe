"""When a checkpoint is written in full, and how a chain of checkpoints is read back
(``services/sessionizer/checkpoint_chain.py``, ``checkpoint_load.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.wire import encode_event
from services.sessionizer.checkpoint import CheckpointStore, CheckpointUnreadableError
from services.sessionizer.checkpoint_chain import ChainPolicy, CheckpointChain, CheckpointRecord
from services.sessionizer.checkpoint_load import load_state
from services.sessionizer.episode_state import restore_state
from services.sessionizer.sessionize import PartitionSessionizer, SessionConfig
from tests.sessionizer.factory import T0, decision

GENERATION = 3


def _sessionizer(episodes: int) -> PartitionSessionizer:
    sess = PartitionSessionizer(SessionConfig(reward_window_ms=600_000))
    for i in range(episodes):
        sess.process_record(encode_event(decision(f"e{i}", 0, ts=T0 + i)), i, T0 + i)
    return sess


def _kinds(chain: CheckpointChain, policy: ChainPolicy, commits: int, nbytes: int) -> str:
    """``B`` (base) or ``c`` (changes) for each of ``commits`` checkpoints, each changes record
    taken as ``nbytes`` on disk and each base as 1,000."""
    sess, kinds = _sessionizer(3), ""
    for number in range(1, commits + 1):
        record = chain.record(number, sess, sess.take_changes(), policy)
        chain.committed(record, 1_000 if record.is_base else nbytes)
        kinds += "B" if record.is_base else "c"
    return kinds


def test_a_new_writer_bases_its_first_checkpoint_then_every_base_every_commits() -> None:
    policy = ChainPolicy(base_every=4, chain_share=100.0)

    assert _kinds(CheckpointChain(), policy, 10, nbytes=10) == "BcccBcccBc"


def test_a_base_is_written_once_the_changes_add_up_to_their_share_of_it() -> None:
    policy = ChainPolicy(base_every=100, chain_share=0.5)

    # each changes record is 200 bytes against a base of 1,000: the third reaches 600 >= 500
    assert _kinds(CheckpointChain(), policy, 9, nbytes=200) == "BcccBcccB"


def test_a_share_of_zero_writes_every_checkpoint_in_full() -> None:
    assert _kinds(CheckpointChain(), ChainPolicy(50, 0.0), 4, nbytes=10) == "BBBB"


def _save_chain(store: CheckpointStore, sess: PartitionSessionizer, links: int) -> None:
    """Checkpoints 1 (a base) to ``1 + links`` of partition 0, one new episode per link."""
    chain, policy = CheckpointChain(), ChainPolicy(base_every=100, chain_share=100.0)
    for number in range(1, links + 2):
        if number > 1:
            event = decision(f"new{number}", 0, ts=T0 + 1_000 + number)
            sess.process_record(encode_event(event), 1_000 + number, T0 + 1_000 + number)
        record = chain.record(number, sess, sess.take_changes(), policy)
        chain.committed(record, store.save(0, number, record.data, GENERATION))


def test_a_chain_reads_back_as_the_full_state_of_its_last_link(tmp_path: Path) -> None:
    store, sess = CheckpointStore(str(tmp_path), "g", "t"), _sessionizer(5)
    _save_chain(store, sess, links=3)

    full = sess.snapshot()
    store.save(0, 99, full, GENERATION)  # what a full checkpoint 4 would have held
    assert load_state(store, 0, 4, GENERATION) == store.load(0, 99, GENERATION)


def test_a_chain_missing_a_link_is_unreadable_not_empty(tmp_path: Path) -> None:
    store = CheckpointStore(str(tmp_path), "g", "t")
    _save_chain(store, _sessionizer(5), links=3)
    Path(store.path(0, 3, GENERATION)).unlink()

    with pytest.raises(CheckpointUnreadableError, match="a link of the chain from 1 is missing"):
        load_state(store, 0, 4, GENERATION)


def test_a_chain_missing_its_base_is_unreadable_not_empty(tmp_path: Path) -> None:
    store = CheckpointStore(str(tmp_path), "g", "t")
    _save_chain(store, _sessionizer(5), links=2)
    store.prune(0, keep_from=2)

    with pytest.raises(CheckpointUnreadableError, match="the base of 3 is missing"):
        load_state(store, 0, 3, GENERATION)


def test_a_reader_that_knows_only_full_checkpoints_refuses_a_changes_record() -> None:
    sess = _sessionizer(2)
    chain, policy = CheckpointChain(), ChainPolicy(50, 1.0)
    chain.committed(chain.record(1, sess, sess.take_changes(), policy), 1_000)
    changes: CheckpointRecord = chain.record(2, sess, sess.take_changes(), policy)
    assert not changes.is_base

    with pytest.raises(ValueError, match="snapshot version"):
        restore_state(changes.data)

"""What exactly-once leans on when two imports of one file race: Delta refuses the second
commit of the same import transaction id made on the same snapshot (delta-rs's conflict
checker), and the importer then finds the id recorded and reports the file as imported."""

from __future__ import annotations

import pytest
from deltalake import CommitProperties, DeltaTable, Transaction
from deltalake.exceptions import CommitFailedError

from schemas.tables import TIMELINE_PARTITION_BY, TIMELINE_SCHEMA
from services.delta_tables import ensure_table
from services.interop.importer import import_txn_id


def test_a_second_commit_of_one_import_on_the_same_snapshot_fails_as_concurrent(table):
    ensure_table(str(table), TIMELINE_SCHEMA, TIMELINE_PARTITION_BY)
    first, second = DeltaTable(str(table)), DeltaTable(str(table))  # both saw no import
    txn = import_txn_id("ab" * 32)
    commit = CommitProperties(app_transactions=[Transaction(txn, 1)])
    first.create_write_transaction([], "append", TIMELINE_SCHEMA, TIMELINE_PARTITION_BY,
                                   commit_properties=commit)  # fmt: skip

    with pytest.raises(CommitFailedError):
        second.create_write_transaction([], "append", TIMELINE_SCHEMA, TIMELINE_PARTITION_BY,
                                        commit_properties=commit)  # fmt: skip
    second.update_incremental()
    assert second.transaction_version(txn) == 1
    assert second.version() == 1

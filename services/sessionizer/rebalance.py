"""Partitions coming and going: flush before they go, resume from the table when they come.

* **Revoke.** Before Faust hands partitions to another worker, everything pending is committed
  (and acknowledged), so the next owner starts exactly where this one stopped.
* **Assign.** The new partitions are first *claimed* in one Delta commit that raises their
  owner generation (``fencing.py``): from then on a worker that held them before, cut off from
  the broker and unaware, can commit nothing more for them. The claim reads how far each got
  (last offset ``V``, checkpoint number and its writer's generation, ``sink.py``); exactly that
  checkpoint is loaded (with the chain it ends, ``checkpoint_load.py``) and ``V + 1`` committed
  as the group's offset, so Faust's seek, which follows right after its
  ``on_rebalance_complete`` hook, lands on ``V + 1``. Records at or below ``V`` are skipped
  anyway (``worker.py``). A partition's first checkpoint after its claim is written in full
  (``checkpoint_chain.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from faust.types import TP

from services.sessionizer.batching import PartitionWork, PendingBatch
from services.sessionizer.checkpoint_load import load_state
from services.sessionizer.committer import Committer
from services.sessionizer.sessionize import PartitionSessionizer, SessionConfig

__all__ = ["PartitionAssigner", "commit_group_offsets"]

log = logging.getLogger("policyloop.sessionizer")


async def commit_group_offsets(consumer: Any, positions: dict[TP, int]) -> None:
    """Commit *given* offsets as the consumer group's positions (Faust's private call).

    Why private: Faust has no public call for it. ``consumer.commit()`` commits only offsets
    of acknowledged events, and Faust has no hook after its own seek to committed offsets, so
    to make that seek land where the Delta table says, the offsets are committed in
    ``on_rebalance_complete`` through the transport-level ``Consumer._commit`` (faust-streaming
    0.15.3). This is the only use of it; if Faust changes it, this function is what to fix.
    """
    await consumer._commit(positions)


class PartitionAssigner:
    """Keeps :attr:`PendingBatch.parts` equal to the partitions this worker owns."""

    def __init__(
        self,
        topic: str,
        config: SessionConfig,
        batch: PendingBatch,
        committer: Committer,
        state_uri: str,
    ) -> None:
        self._topic = topic
        self._config = config
        self._batch = batch
        self._committer = committer
        self._state_uri = state_uri  # named in the log when a checkpoint is missing
        #: Partitions were assigned at least once, and when last (monotonic seconds).
        self.assigned_once = False
        self.assigned_at = 0.0

    async def revoke(self, revoked: set[Any], flush: bool) -> None:
        """Commit everything pending (``flush``: unless the worker already failed), then drop
        the revoked partitions of our topic."""
        mine = [tp.partition for tp in revoked if tp.topic == self._topic]
        if mine and flush:
            await self._committer.flush()
        for p in mine:
            self._batch.parts.pop(p, None)
        if self._committer.sink is not None:
            self._committer.sink.forget(mine)

    async def assign(self, consumer: Any) -> None:
        """Match the consumer's assignment: resume each new partition where the table says."""
        sink, store = self._committer.sink, self._committer.store
        assert sink is not None and store is not None
        parts = self._batch.parts
        mine = sorted(tp.partition for tp in consumer.assignment() if tp.topic == self._topic)
        gone = [p for p in parts if p not in mine]
        for p in gone:
            parts.pop(p, None)
        sink.forget(gone)
        new = [p for p in mine if p not in parts]
        found = await asyncio.to_thread(sink.claim, new)
        positions = {}
        for p in new:
            rec = found[p]
            sess = PartitionSessionizer(self._config)
            if rec.offset is None:
                parts[p] = PartitionWork(sess, -1, -1, rec.checkpoint or 0, -1)
                positions[TP(self._topic, p)] = 0
                continue
            snap = None
            if rec.checkpoint is not None:
                snap = await asyncio.to_thread(
                    load_state, store, p, rec.checkpoint, rec.checkpoint_generation
                )
            if snap is None:
                log.error(
                    "no state checkpoint %s for partition %d in %s: resuming after offset "
                    "%d with empty episode state (open episodes lose their earlier events)",
                    rec.checkpoint,
                    p,
                    self._state_uri,
                    rec.offset,
                )
            else:
                sess.restore(snap)
            parts[p] = PartitionWork(sess, rec.offset, rec.offset, rec.checkpoint or 0, rec.offset)
            positions[TP(self._topic, p)] = rec.offset + 1
        if positions:
            # Faust seeks to the group's committed offsets right after this hook: make them
            # the table's.
            try:
                await commit_group_offsets(consumer, positions)
            except Exception as exc:  # records at or below the table's offsets are skipped
                log.warning("could not align group offsets with the table: %r", exc)
        log.info(
            "assigned partitions %s (resuming after %s)",
            mine,
            {p: found[p].offset for p in new},
        )
        if new:
            log.info(
                "claimed partitions as writer %s, generations %s",
                sink.writer,
                {p: found[p].generation for p in new},
            )
        self.assigned_once = True
        self.assigned_at = time.monotonic()

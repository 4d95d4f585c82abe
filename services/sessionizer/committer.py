"""Committing sealed batches, in the order that makes the timeline exactly once.

For each sealed batch (``batching.py``), in this order (``worker.py``'s docstring and
docs/architecture.md section 5 say why):

1. dead letters sent to ``<prefix>.dlq`` and flushed;
2. each advanced partition's state checkpoint saved (``checkpoint.py``): its full state or
   the changes since its previous one (``checkpoint_chain.py``), once the table says this
   worker still owns the partition (``fencing.py``);
3. one Delta append holding the rows and, per partition, its last offset, checkpoint number
   and owner generation as transaction versions (``sink.py``);
4. only then the Faust events acknowledged and the acknowledged offsets committed to Kafka;
   once a new base is committed, the checkpoints before it pruned (none that the committed
   checkpoint's chain needs).

At most one commit is in flight and commits happen in order, so sessionizing the next batch
overlaps the Delta write of the previous one. A partition found *fenced* (another worker
claimed it: this one was cut off from the broker and did not know) is dropped with its
uncommitted work; its records are not acknowledged, and its new owner resumes from the table.
It is logged and counted (``policyloop_sessionizer_fenced_partitions_total``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

from services.kafka_settings import KafkaSettings
from services.sessionizer.batching import PendingBatch, SealedBatch
from services.sessionizer.checkpoint import CheckpointStore
from services.sessionizer.dlq import dlq_record
from services.sessionizer.metrics import SessionizerMetrics
from services.sessionizer.sink import CommitOutcome, DeltaSink

__all__ = ["Committer"]

log = logging.getLogger("policyloop.sessionizer")


class Committer:
    """Seals the pending batch and commits it in the background, one commit at a time.

    The Faust app, the sink and the checkpoint store exist only once the worker runs:
    :meth:`attach` them before the first commit.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        group: str,
        batch: PendingBatch,
        metrics: SessionizerMetrics,
        wall_clock: Callable[[], float],
    ) -> None:
        self._dlq_topic = kafka.dlq_topic
        self._topic = kafka.events_topic
        self._group = group
        self._batch = batch
        self._metrics = metrics
        self._wall = wall_clock
        self._app: Any = None
        self.sink: DeltaSink | None = None
        self.store: CheckpointStore | None = None
        self._inflight: asyncio.Future[None] | None = None
        self._pruned: dict[int, int] = {}  # partition -> base its checkpoints were pruned to
        #: Rows committed to the table so far.
        self.rows_written = 0

    def attach(self, app: Any, sink: DeltaSink, store: CheckpointStore) -> None:
        """The Faust app (its producer sends dead letters, its consumer commits offsets), the
        Delta sink and the checkpoint store."""
        self._app, self.sink, self.store = app, sink, store

    async def seal_and_start(self) -> None:
        """Wait for the commit in flight, then hand the pending work to a new one."""
        await self.wait()
        sealed = self._batch.seal()
        if sealed is not None:
            self._inflight = asyncio.ensure_future(self._commit(sealed))

    async def flush(self) -> None:
        """Commit everything pending and wait for it."""
        await self.seal_and_start()
        await self.wait()

    async def wait(self) -> None:
        """Wait for the commit in flight, if any (its failure is raised here)."""
        if self._inflight is not None:
            inflight, self._inflight = self._inflight, None
            await inflight

    async def _commit(self, sealed: SealedBatch) -> None:
        """DLQ, checkpoints, Delta (with offsets), then acks and Kafka offsets."""
        app = self._app
        assert self.sink is not None and self.store is not None
        started = time.perf_counter()
        if sealed.letters:
            futures = []
            for p, letter in sealed.letters:
                key, value, headers = dlq_record(letter, self._topic, p)
                futures.append(
                    await app.producer.send(self._dlq_topic, key, value, None, None, headers)
                )
                self._metrics.dlq(self._group, letter.reason).inc()
            await asyncio.gather(*futures)
        processed_at = int(self._wall() * 1_000_000)
        for b in sealed.batches:
            for row in b.rows:
                row["processed_at"] = processed_at
        store, sink, checkpoints = self.store, self.sink, sealed.checkpoints
        batches = sealed.batches
        saved: dict[int, int] = {}  # partition -> bytes of its checkpoint file

        def write() -> CommitOutcome:
            # Ownership first: a fenced writer saves no checkpoint and commits no row.
            fenced = sink.fenced(b.partition for b in batches)
            lost = {f.partition for f in fenced}
            owned = [b for b in batches if b.partition not in lost]
            for b in owned:
                p = b.partition
                record = checkpoints[p]
                saved[p] = store.save(p, record.number, record.data, sink.generation(p))
            outcome = sink.commit(owned)
            return dataclasses.replace(outcome, fenced=fenced + outcome.fenced)

        outcome = await asyncio.to_thread(write)
        lost = {f.partition for f in outcome.fenced}
        done = self._wall()
        self._metrics.commit_seconds.observe(time.perf_counter() - started)
        done_ms = done * 1000.0
        self._metrics.observe_latencies(
            [
                max(0.0, done_ms - row["_last_event_ts"]) / 1000.0
                for b in batches
                if b.partition not in lost
                for row in b.rows
            ]
        )
        self._metrics.rows.inc(outcome.rows)
        self.rows_written += outcome.rows
        if outcome.fenced:
            self._metrics.fenced_partitions.inc(len(outcome.fenced))
        for f in outcome.fenced:
            log.warning(
                "lost ownership of partition %d: the table records generation %s, this "
                "worker holds %s (another worker took it over); dropping its uncommitted "
                "work and writing nothing more for it",
                f.partition,
                f.recorded,
                f.held,
            )
        committed, prune = 0, {}
        parts = self._batch.parts
        for b in batches:
            p = b.partition
            part = sealed.parts[p]
            if p in lost:
                if parts.get(p) is part:
                    del parts[p]
                self._pruned.pop(p, None)
                continue
            committed += 1
            part.committed = b.last_offset
            record = checkpoints[p]
            part.chain.committed(record, saved[p])
            for event in sealed.acks[p]:
                event.ack()
            if self._pruned.get(p) != record.base:
                prune[p] = record.base
        if committed:
            try:
                await app.consumer.commit()
            except Exception as exc:  # the table stays the truth
                log.warning("Kafka offset commit failed (%r); the Delta table has them", exc)
        if prune:
            await asyncio.to_thread(self._prune, prune)

    def _prune(self, keep: dict[int, int]) -> None:
        """Delete each partition's checkpoints numbered before the base of its committed chain
        (the files the committed checkpoint depends on start there); once per base."""
        assert self.store is not None
        for p, base in keep.items():
            self.store.prune(p, base)
            self._pruned[p] = base

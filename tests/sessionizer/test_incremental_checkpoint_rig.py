"""Not tests: a sessionizer worker without Kafka, for the checkpoint and fencing tests.

Why: what a commit writes (which checkpoint files, how big, chained to what) and what a restart
reads back are decided by the worker's own parts together: the pending batch seals a
checkpoint, the committer saves it and commits it to Delta, the assigner claims a partition and
loads the chain the table names. :class:`WorkerRig` wires exactly those parts (real
``PendingBatch``, ``Committer``, ``PartitionAssigner``, ``DeltaSink`` on a real table and
``CheckpointStore`` on a real directory) and stands in only for Faust: records are fed by hand,
the consumer and producer are stubs. A "restart" is a new rig on the same table and directory.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Coroutine, Iterable
from pathlib import Path
from typing import Any, NamedTuple

import msgpack
from deltalake import DeltaTable
from faust.types import TP

from schemas.wire import encode_event
from services.kafka_settings import KafkaSettings
from services.sessionizer.batching import PendingBatch
from services.sessionizer.checkpoint import CheckpointStore
from services.sessionizer.committer import Committer
from services.sessionizer.fencing import PartitionTxnIds
from services.sessionizer.metrics import SessionizerMetrics
from services.sessionizer.rebalance import PartitionAssigner
from services.sessionizer.sessionize import PartitionSessionizer
from services.sessionizer.settings import SessionizerSettings
from services.sessionizer.sink import DeltaSink
from services.sessionizer.worker import session_config

__all__ = ["GROUP", "CheckpointFile", "WorkerRig", "on_disk"]

GROUP = "g"
_KAFKA = KafkaSettings(topic_prefix="rig")
_NAME = re.compile(r"^(\d{20})(?:\.g(\d+))?\.msgpack$")


class CheckpointFile(NamedTuple):
    """One checkpoint file in a partition's directory."""

    number: int
    generation: int | None
    nbytes: int
    path: Path

    def read(self) -> dict[str, Any]:
        data: dict[str, Any] = msgpack.unpackb(
            self.path.read_bytes(), raw=False, strict_map_key=False
        )
        return data


def on_disk(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` as a checkpoint file would give it back (tuples become lists)."""
    data: dict[str, Any] = msgpack.unpackb(msgpack.packb(state, use_bin_type=True), raw=False)
    return data


class _Consumer:
    """Faust's consumer, as far as the assigner and the committer use it."""

    def __init__(self, partitions: Iterable[int]) -> None:
        self._assigned = {TP(_KAFKA.events_topic, p) for p in partitions}
        self.positions: dict[TP, int] = {}

    def assignment(self) -> set[TP]:
        return self._assigned

    async def _commit(self, positions: dict[TP, int]) -> None:
        self.positions = positions

    async def commit(self) -> bool:
        return True


class _Producer:
    """Faust's producer: keeps the dead letters it is given."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send(self, topic: str, key: Any, value: bytes, *_: Any) -> asyncio.Future[None]:
        self.sent.append(value)
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class _App:
    def __init__(self, partitions: Iterable[int]) -> None:
        self.consumer = _Consumer(partitions)
        self.producer = _Producer()


class WorkerRig:
    """One worker of group :data:`GROUP` over ``partitions``, writing under ``root``."""

    def __init__(
        self,
        root: Path,
        settings: SessionizerSettings,
        writer: str,
        partitions: Iterable[int] = (0,),
    ) -> None:
        self.table_uri = str(root / "timeline")
        self.state_uri = settings.resolved_state_uri(self.table_uri)
        self.topic = _KAFKA.events_topic
        self.metrics = SessionizerMetrics(GROUP)
        self.batch = PendingBatch(settings, self.metrics, GROUP)
        self.committer = Committer(_KAFKA, GROUP, self.batch, self.metrics, lambda: 1.0e9)
        self.sink = DeltaSink(self.table_uri, GROUP, self.topic, writer=writer)
        self.store = CheckpointStore(self.state_uri, GROUP, self.topic)
        self.app = _App(partitions)
        self.committer.attach(self.app, self.sink, self.store)
        self._assigner = PartitionAssigner(
            self.topic, session_config(settings), self.batch, self.committer, self.state_uri
        )
        self._loop = asyncio.new_event_loop()

    def _run(self, step: Coroutine[Any, Any, None]) -> None:
        self._loop.run_until_complete(step)

    def claim(self) -> WorkerRig:
        """Take the partitions (a Delta claim) and resume each where the table says."""
        self._run(self._assigner.assign(self.app.consumer))
        return self

    def sessionizer(self, partition: int = 0) -> PartitionSessionizer:
        return self.batch.parts[partition].sessionizer

    def feed(self, events: Iterable[dict[str, Any]], now_ms: int, partition: int = 0) -> None:
        """Each event as one record at the partition's next offset, read at ``now_ms``."""
        part = self.batch.parts[partition]
        for event in events:
            offset = part.last_offset + 1
            part.sessionizer.process_record(encode_event(event), offset, now_ms)
            part.last_offset = offset
            self.batch.collect(part)

    def expire(self, idle_now_ms: int | None, partition: int = 0) -> None:
        """What the worker does after each fetch: close what the watermark made due."""
        part = self.batch.parts[partition]
        part.sessionizer.expire(idle_now_ms)
        self.batch.collect(part)

    def commit(self) -> None:
        """Seal what is pending and commit it (dead letters, checkpoints, Delta, offsets)."""
        self._run(self.committer.flush())

    def files(self, partition: int = 0) -> list[CheckpointFile]:
        """The partition's checkpoint files, by number."""
        folder = Path(self.state_uri) / GROUP / self.topic / str(partition)
        found = []
        for path in folder.iterdir() if folder.exists() else []:
            match = _NAME.match(path.name)
            if match:
                generation = None if match[2] is None else int(match[2])
                found.append(CheckpointFile(int(match[1]), generation, path.stat().st_size, path))
        return sorted(found)

    def committed_file(self, partition: int = 0) -> CheckpointFile:
        """The checkpoint file the table names for the partition."""
        recorded = self.recorded_checkpoint(partition)
        named = [f for f in self.files(partition) if (f.number, f.generation) == recorded]
        assert named, f"no file for the checkpoint the table names, {recorded}"
        return named[0]

    def recorded_checkpoint(self, partition: int = 0) -> tuple[int | None, int | None]:
        """(checkpoint number, its writer's generation) that the table records."""
        table = DeltaTable(self.table_uri)
        ids = PartitionTxnIds.of(GROUP, self.topic, partition)
        return (
            table.transaction_version(ids.checkpoint),
            table.transaction_version(ids.checkpoint_generation),
        )

    def close(self) -> None:
        self._loop.close()

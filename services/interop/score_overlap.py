"""Writing one batch while the next is scored: the parquet writer (encoding, compression, file
writes) runs in Arrow's C++ code without the GIL, so a helper thread hides it behind the model.

At most one batch is in flight: memory stays at two batches, and a failed write surfaces at the
next batch or at the end, before anything is committed.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import pyarrow as pa

__all__ = ["WriteBehind"]


class WriteBehind:
    """``write`` called in a helper thread, one batch at a time, in order."""

    def __init__(self, write: Callable[[pa.RecordBatch], None]) -> None:
        self._write = write
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="score-write")
        self._pending: Future[None] | None = None

    def write(self, batch: pa.RecordBatch) -> None:
        """Queue ``batch`` once the previous one is written (raising what that write raised)."""
        self.wait()
        self._pending = self._pool.submit(self._write, batch)

    def wait(self) -> None:
        """Wait until every queued batch is written; raise what a write raised."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        """Wait for the last write, then stop the thread (also after a failure: the caller
        discards the output only once nothing writes to it)."""
        try:
            self.wait()
        finally:
            self._pool.shutdown(wait=True)

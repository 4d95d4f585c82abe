"""Keeping the model's thread on the model: the batches are read and made into arrays in one
helper thread (:class:`ReadAhead`) and written in another (:class:`WriteBehind`), so the caller
only runs the policy and draws the actions. Reading parquet, the numpy passes that densify a
batch, and the parquet writer (encoding, compression, file writes) run mostly in C without the
GIL, so on a second core they hide behind the model, which takes one core.

Both are bounded: a few batches ahead, one behind, so memory stays at a handful of batches. An
error in either thread is raised in the caller, with its message, at the next batch or at the
end, before anything is committed; closing stops both threads, also after a failure, so the
caller discards the output only once nothing reads or writes for it any more.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

__all__ = ["ReadAhead", "WriteBehind"]

T = TypeVar("T")


class ReadAhead(Generic[T]):
    """``items`` iterated in a helper thread, at most ``depth`` items ahead of the caller.

    The caller iterates this object as it would ``items``: the same items in the same order,
    and what producing an item raised is raised instead of it (the items before it come first).
    """

    def __init__(self, items: Iterator[T], depth: int = 2) -> None:
        self._queue: queue.Queue[tuple[bool, T | BaseException | None]] = queue.Queue(depth)
        self._stop = threading.Event()
        self._finished = False
        self._thread = threading.Thread(
            target=self._run, args=(items,), name="score-prepare", daemon=True
        )
        self._thread.start()

    def _run(self, items: Iterator[T]) -> None:
        try:
            for item in items:
                if not self._put((True, item)):
                    return  # closed: the caller wants no more
        except BaseException as error:  # handed to the caller, who raises it
            self._put((False, error))
            return
        self._put((False, None))

    def _put(self, entry: tuple[bool, T | BaseException | None]) -> bool:
        """Queue ``entry`` when there is room; False once closed (nobody would take it)."""
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=0.05)
            except queue.Full:
                continue
            return True
        return False

    def __iter__(self) -> ReadAhead[T]:
        return self

    def __next__(self) -> T:
        if self._finished:
            raise StopIteration
        is_item, value = self._queue.get()
        if is_item:
            return value  # type: ignore[return-value]
        self._finished = True
        if value is None:
            raise StopIteration
        assert isinstance(value, BaseException)
        raise value

    def close(self) -> None:
        """Stop the helper thread (it finishes the item it is making) and wait for it."""
        self._stop.set()
        self._finished = True
        while self._thread.is_alive():
            try:  # make room, so a thread blocked on a full queue sees the stop
                self._queue.get(timeout=0.05)
            except queue.Empty:
                pass
        self._thread.join()


class WriteBehind(Generic[T]):
    """``write`` called in a helper thread, one item at a time, in order."""

    def __init__(self, write: Callable[[T], None]) -> None:
        self._write = write
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="score-write")
        self._pending: Future[None] | None = None

    def write(self, item: T) -> None:
        """Queue ``item`` once the previous one is written (raising what that write raised)."""
        self.wait()
        self._pending = self._pool.submit(self._write, item)

    def wait(self) -> None:
        """Wait until every queued item is written; raise what a write raised."""
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

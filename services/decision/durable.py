"""Durable replies: wait, without blocking the event loop, until the logger's events are on disk.

With ``serve.durability = "durable"`` the logger runs with ``sdk.spool_write_through`` and
counts how many accepted events are synced to the spool (``DecisionLogger.durable_events``). A
reply waits until that count passes the event it logged. One poller task serves every waiting
request: it wakes the sender (so a batch is cut now, not after ``linger_ms``) and releases the
waiters whose events are on disk, about every millisecond, and only while someone waits.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.sdk.logger import DecisionLogger

__all__ = ["DurableTimeout", "DurableWaiter"]


class DurableTimeout(TimeoutError):
    """The event did not reach the disk within ``durable_timeout_s`` (it may still)."""


class DurableWaiter:
    """Releases each waiter once ``logger.durable_events()`` reaches its mark."""

    def __init__(self, logger: DecisionLogger, timeout_s: float, poll_s: float = 0.001) -> None:
        self.logger = logger
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._task: asyncio.Task[None] | None = None

    async def wait(self, mark: int) -> float:
        """Return once the first ``mark`` accepted events are on disk; the seconds waited."""
        started = time.perf_counter()
        if self.logger.durable_events(wake=True) >= mark:
            return time.perf_counter() - started
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (mark, next(self._order), future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._poll())
        try:
            await asyncio.wait_for(future, self.timeout_s)
        except TimeoutError:
            raise DurableTimeout(
                f"the event was accepted but did not reach the disk spool within "
                f"{self.timeout_s:g} s (serve.durable_timeout_s); it may still be delivered"
            ) from None
        return time.perf_counter() - started

    async def _poll(self) -> None:
        waiters = self._waiters
        while waiters:
            await asyncio.sleep(self.poll_s)
            durable = self.logger.durable_events(wake=True)
            while waiters and waiters[0][0] <= durable:
                future = heapq.heappop(waiters)[2]
                if not future.done():
                    future.set_result(None)
            while waiters and waiters[0][2].done():  # timed out or cancelled
                heapq.heappop(waiters)

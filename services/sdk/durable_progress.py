"""How far the accepted events reached the disk, for ``sdk.spool_write_through``.

Why: a caller that must not acknowledge an event before it survives ``kill -9`` (the decision
service's durable mode) needs to know when *its* event is safe. ``flush()`` cannot say: it
counts acknowledgements, and under concurrent load events accepted later, on another partition,
can be acknowledged first. With write-through every drained batch is appended to the spool in
the order it was accepted, so a simple rule is exact: once the spool has synced every record of
the drains up to one that ends at accepted event ``n``, the first ``n`` accepted events are on
disk. ``events`` only moves at drain boundaries, because within a drain records are cut per
partition, not in accepted order.
"""

from __future__ import annotations

from collections import deque

__all__ = ["DurableProgress"]


class DurableProgress:
    """The sender thread's count of accepted events known to be on disk (monotonic)."""

    def __init__(self) -> None:
        self._drain_ends: deque[int] = deque()
        self._drained = 0
        #: The first ``events`` accepted events are in the spool (written and synced).
        self.events = 0

    def drained(self, count: int) -> None:
        """The sender took the next ``count`` accepted events from the queue, as one drain."""
        if count:
            self._drained += count
            self._drain_ends.append(self._drained)

    def synced(self, appended_events: int) -> None:
        """The spool holds, synced, the first ``appended_events`` drained events."""
        ends = self._drain_ends
        while ends and ends[0] <= appended_events:
            self.events = ends.popleft()

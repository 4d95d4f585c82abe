"""A partition's notion of time: its watermark, and when to look at an episode again.

Why a definition of its own: the sessionizer judges lateness, reward windows and episode
timeouts against "the time now", and which time that is decides whether a producer outage or
one badly set producer clock damages other episodes. The rules (docs/architecture.md, "Clock"):

* **Watermark** (per partition, event time, never decreasing): the newest ``ts`` accepted so
  far, except that an event counts at most up to the wall time it arrived at (the ``now_ms``
  handed with its record). An event stamped ahead of its arrival is accepted as it is (its own
  row keeps its ``ts``) but moves the watermark only to its arrival time, so one producer clock
  minutes ahead closes no other episode's window and times out no other episode. An event more
  than ``max_future_skew_ms`` ahead of its arrival is a dead letter (``invalid:ts``).
* **Reward windows and episode timeouts close on the watermark.** A replay after an outage
  (old event times arriving late on the wall clock) moves the watermark through the replayed
  event times, so its episodes are judged on event time: not cut, not ``late``.
* **Quiet time** (:func:`quiet_mark`): once a caught-up partition has received no record for
  the worker's slack, the rows whose successor or end is already known close their windows on
  wall time minus that slack, so rows are written when traffic stops. Quiet time never times out
  an episode and never moves the watermark: a producer outage looks exactly like quiet, and an
  episode open before it must still be open when the producer's spool arrives.
* **End of input** (``PartitionSessionizer.advance``: a batch run's end, ``--close-open-episodes``):
  windows and timeouts close as of the given wall time, the watermark is left on event time.

Residual risk, by construction: a reward held back by an outage for a row whose successor was
already read before the outage is ``late`` if quiet time closed that row meanwhile.

:class:`DeadlineQueue` is the schedule: each decision's window end (``ts + reward_window``),
popped once a mark passes it; an episode popped while its earliest row still waits for its
successor is *parked* and queued again when its next decision or end arrives (quiet time does
not persist, so nothing else would look at it again).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

__all__ = ["DeadlineQueue", "quiet_mark"]


def quiet_mark(watermark: int, idle_now_ms: int | None, last_arrival_ms: int) -> int:
    """The mark that quiet time lets complete rows close on: ``idle_now_ms`` (wall time minus
    the slack, given only while the partition is caught up) once no record arrived after it,
    else the watermark."""
    if idle_now_ms is None or idle_now_ms < last_arrival_ms or idle_now_ms <= watermark:
        return watermark
    return idle_now_ms


class DeadlineQueue:
    """Window ends of pending decisions, earliest first, and the parked episodes."""

    __slots__ = ("_heap", "_seq", "parked")

    def __init__(self) -> None:
        # (window end, sequence number, episode id): the number keeps equal ends in order.
        self._heap: list[tuple[int, int, str]] = []
        #: Parked episodes -> their earliest due window end. The same dict for the queue's
        #: life, so a caller may test it for emptiness before calling :meth:`unpark`.
        self.parked: dict[str, int] = {}
        self._seq = 0

    def push(self, due_ms: int, episode_id: str) -> None:
        """Look at ``episode_id`` again once a mark reaches ``due_ms``."""
        self._seq += 1
        heapq.heappush(self._heap, (due_ms, self._seq, episode_id))

    def pop_due(self, mark: int) -> Iterator[tuple[int, str]]:
        """``(due_ms, episode_id)`` of every entry at or before ``mark``, earliest first."""
        heap = self._heap
        while heap and heap[0][0] <= mark:
            due, _, episode_id = heapq.heappop(heap)
            yield due, episode_id

    def park(self, episode_id: str, due_ms: int) -> None:
        """The episode's earliest row waits for its successor or end: remember its window end."""
        parked = self.parked.get(episode_id)
        if parked is None or due_ms < parked:
            self.parked[episode_id] = due_ms

    def unpark(self, episode_id: str) -> None:
        """A decision or end arrived: queue the parked window end again (no-op if none)."""
        if self.parked:
            due = self.parked.pop(episode_id, None)
            if due is not None:
                self.push(due, episode_id)

    def forget(self, episode_id: str) -> None:
        """The episode closed (its heap entries become no-ops when popped)."""
        if self.parked:
            self.parked.pop(episode_id, None)

    def reset(self, entries: Iterator[tuple[int, str]]) -> None:
        """Start over from ``(due_ms, episode_id)`` pairs (a restored checkpoint)."""
        self.parked.clear()
        heap = []
        for due, episode_id in entries:
            self._seq += 1
            heap.append((due, self._seq, episode_id))
        heapq.heapify(heap)
        self._heap = heap

"""Decisions that arrive together are made together: one model call per event-loop turn.

Why: in a worker between requests, the policy's TorchScript call finds the interpreter and
dispatcher code cold in the CPU caches. A CartPole-sized forward measured ~20 µs in a tight
loop but 120 to 250 µs in the HTTP worker: most of a decision's CPU, and nearly all of it fixed
per call, whatever the number of rows (``services/sdk/policy_batch.py``). Under load many
requests are read in the same turn of the event loop, so they can share one call.

How: :meth:`DecisionBatcher.decide` takes a request that already passed
:meth:`DecisionService.check` (an invalid one is refused before it waits), queues it and, if it
is the first of the batch, schedules a flush two turns of the event loop ahead (a ``call_soon``
that calls ``call_soon``). asyncio (and uvloop) run the callbacks scheduled during a turn in the
next one, after polling for I/O: requests read by that poll run up to their ``await`` in the
turn after it, so with two hops they join the batch too. With one hop they started the next
batch, and batches were about two thirds of what was in flight (5.5 decisions a model call at 8
in flight, 10 at 16; 7.5 and 14.7 with two): a model call costs 200 to 250 µs of mostly fixed
CPU in the worker, so that was 10 to 15 µs a decision. The flush then decides every queued
request with :meth:`DecisionService.decide_many` and wakes each with its decision or its
refusal. No timer is involved: a lone request waits two turns (microseconds), so light traffic
sees no added latency, and under load a batch is what arrived together (at most
:data:`MAX_BATCH`). The order of
decisions, hence of a seeded sampler's draws and of an episode's steps, is the order of arrival.
A request whose handler is cancelled before the flush is dropped from the batch unanswered and
undecided.
"""

from __future__ import annotations

import asyncio

from services.decision.metrics import ServeMetrics
from services.decision.service import CheckedDecision, Decision, DecisionService

__all__ = ["MAX_BATCH", "DecisionBatcher"]

#: A batch is flushed at once when it reaches this many requests (the rest start the next).
MAX_BATCH = 256


class DecisionBatcher:
    """One worker's queue of checked decisions (see the module doc); event-loop only."""

    def __init__(
        self, service: DecisionService, metrics: ServeMetrics, max_batch: int = MAX_BATCH
    ) -> None:
        self.service = service
        self.sizes = metrics.decision_batch
        self.max_batch = max_batch
        self._pending: list[tuple[CheckedDecision, asyncio.Future[Decision]]] = []

    async def decide(self, checked: CheckedDecision) -> Decision:
        """The decision for ``checked``, made with the others of this turn."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Decision] = loop.create_future()
        pending = self._pending
        pending.append((checked, future))
        if len(pending) == 1:
            loop.call_soon(loop.call_soon, self._flush)  # two turns: see the module doc
        elif len(pending) >= self.max_batch:
            self._flush()
        return await future

    def _flush(self) -> None:
        pending = [(c, f) for c, f in self._pending if not f.done()]  # done: cancelled
        self._pending = []
        if not pending:
            return
        made: list[Decision | Exception]
        try:
            made = self.service.decide_many([checked for checked, _ in pending])
        except Exception as exc:  # no policy loaded: every request of the batch gets it
            made = [exc] * len(pending)
        self.sizes.observe(len(pending))
        for (_, future), result in zip(pending, made, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

"""``DecisionBatcher`` without HTTP: what one event-loop turn gathers, the size bound, refusals
and requests that went away (the service's core is replaced by a recorder)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from prometheus_client import CollectorRegistry

from services.decision.batching import DecisionBatcher
from services.decision.metrics import ServeMetrics
from services.decision.service import (
    CheckedDecision,
    Decision,
    DecisionService,
    ServiceUnavailable,
)


class _Recorder(DecisionService):
    """Decides every request (action = its index in the batch) and records the batches."""

    def __init__(self, refuse: str | None = None, down: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.refuse = refuse
        self.down = down

    def decide_many(self, checked: Sequence[CheckedDecision]) -> list[Decision | Exception]:
        if self.down:
            raise ServiceUnavailable("no policy yet")
        self.batches.append([c.episode_id for c in checked])
        return [
            ValueError(f"refused {c.episode_id}")
            if c.episode_id == self.refuse
            else Decision(f"t.0.{c.episode_id}", c.episode_id, 0, i, 1.0, [1.0], "v1", c.ts)
            for i, c in enumerate(checked)
        ]


def _checked(episode_id: str) -> CheckedDecision:
    return CheckedDecision(episode_id, {"x": 1.0}, [0], None, 1, True)


def _batcher(service: DecisionService, max_batch: int = 256) -> DecisionBatcher:
    return DecisionBatcher(service, ServeMetrics(CollectorRegistry()), max_batch)


def test_requests_queued_in_one_turn_are_decided_in_one_call_in_arrival_order():
    service = _Recorder()
    batcher = _batcher(service)

    async def main() -> list[Decision]:
        return await asyncio.gather(*(batcher.decide(_checked(f"e{i}")) for i in range(5)))

    decisions = asyncio.run(main())
    assert service.batches == [[f"e{i}" for i in range(5)]]
    assert [d.episode_id for d in decisions] == [f"e{i}" for i in range(5)]
    assert [d.action for d in decisions] == [0, 1, 2, 3, 4]  # each got its own decision
    assert batcher.sizes.collect()[0].samples  # the histogram saw the batch


def test_a_batch_is_cut_at_its_bound_and_the_rest_start_the_next():
    service = _Recorder()
    batcher = _batcher(service, max_batch=4)

    async def main() -> None:
        await asyncio.gather(*(batcher.decide(_checked(f"e{i}")) for i in range(10)))

    asyncio.run(main())
    assert [len(b) for b in service.batches] == [4, 4, 2]


def test_one_refusal_is_its_request_s_and_a_failed_call_is_every_request_s():
    service = _Recorder(refuse="e1")
    batcher = _batcher(service)

    async def main() -> list[Decision | BaseException]:
        jobs = (batcher.decide(_checked(f"e{i}")) for i in range(3))
        return await asyncio.gather(*jobs, return_exceptions=True)

    results = asyncio.run(main())
    assert isinstance(results[1], ValueError)
    assert [r.episode_id for r in (results[0], results[2])] == ["e0", "e2"]  # type: ignore[union-attr]

    down = _batcher(_Recorder(down=True))

    async def unavailable() -> None:
        await asyncio.gather(*(down.decide(_checked(f"e{i}")) for i in range(2)))

    with pytest.raises(ServiceUnavailable):
        asyncio.run(unavailable())


def test_a_request_cancelled_before_the_flush_is_not_decided():
    service = _Recorder()
    batcher = _batcher(service)

    async def main() -> Decision:
        gone = asyncio.ensure_future(batcher.decide(_checked("gone")))
        kept = asyncio.ensure_future(batcher.decide(_checked("kept")))
        await asyncio.sleep(0)  # both queued; the flush is scheduled for the next turn
        gone.cancel()
        return await kept

    assert asyncio.run(main()).episode_id == "kept"
    assert service.batches == [["kept"]]

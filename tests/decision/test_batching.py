"""Decisions that arrive together share one model call, and each still gets its own reply.

A burst of requests written at once on many keep-alive connections reaches the worker in the
same event-loop turns, so ``services/decision/batching.py`` makes them in few model calls
(``policyloop_serve_decision_batch_size``). Every valid request gets its own decision; an
invalid one in the same burst gets its own 400 and does not disturb the others.
"""

from __future__ import annotations

import asyncio
import json
import math
from urllib.parse import urlsplit

import httpx
import pytest

from tests.decision.conftest import STATE, Served

pytestmark = pytest.mark.integration

NAN = {"state": {"x": math.nan}, "possible_actions": [0, 1]}  # refused before the policy runs
UNKNOWN = {"state": STATE, "possible_actions": [0, 5]}  # refused by the served version


async def _burst(server: Served, bodies: list[dict]) -> list[tuple[int, dict]]:
    """Write every request at once, one connection each, then read every reply."""
    address = urlsplit(server.url)
    streams = [
        await asyncio.open_connection(address.hostname, address.port) for _ in range(len(bodies))
    ]
    for (_, writer), body in zip(streams, bodies, strict=True):
        payload = json.dumps(body).encode()
        writer.write(
            b"POST /v1/decisions HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(payload), payload)
        )
    replies = []
    for reader, writer in streams:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        replies.append((int(head[9:12]), json.loads(await reader.readexactly(length))))
        writer.close()
    return replies


def _batches(server: Served) -> tuple[float, float]:
    """(model calls, decisions made by them) so far, from the worker's metrics."""
    text = httpx.get(f"{server.url}/metrics").text
    values = {}
    for line in text.splitlines():
        if line.startswith("policyloop_serve_decision_batch_size_"):
            name, value = line.rsplit(" ", 1)
            values[name.removeprefix("policyloop_serve_decision_batch_size_")] = float(value)
    return values.get("count", 0.0), values.get("sum", 0.0)


def _body(i: int) -> tuple[str, dict]:
    """Request ``i`` of a burst and its kind: most valid, some refused before or by the policy."""
    if i % 10 == 3:
        return "nan", NAN
    if i % 10 == 7:
        return "unknown", UNKNOWN
    return "valid", {"state": {**STATE, "pole_angle": 0.001 * i}, "possible_actions": [0, 1]}


def test_a_burst_is_decided_in_fewer_model_calls_each_request_with_its_own_reply(server):
    kinds, bodies = zip(*(_body(i) for i in range(40)), strict=True)
    calls_before, made_before = _batches(server)
    decided: list[dict] = []
    bursts = 0
    while bursts < 5:  # a burst may be read over several turns; one shared call will do
        bursts += 1
        replies = asyncio.run(_burst(server, list(bodies)))
        for kind, (status, reply) in zip(kinds, replies, strict=True):
            if kind == "valid":
                assert status == 200, reply
                assert reply["step"] == 0
                assert reply["propensity"] == reply["action_probs"][reply["action"]]
                decided.append(reply)
            else:
                assert status == 400, reply
                assert reply["error"]["field"] == (
                    "state.x" if kind == "nan" else "possible_actions"
                )
        calls, made = _batches(server)
        if made - made_before > calls - calls_before:
            break
    else:
        pytest.fail("no model call served more than one decision in 5 bursts")
    assert len({d["decision_id"] for d in decided}) == len(decided) == 32 * bursts
    assert len({d["episode_id"] for d in decided}) == len(decided)
    # each request that reached the policy was counted once: the valid and the unknown actions
    assert made - made_before == bursts * (32 + 4)

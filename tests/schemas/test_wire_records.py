"""Records assembled from pre-packed events are exactly what the wire codec writes."""

from __future__ import annotations

import pytest

from schemas.wire import assemble_record, decode_record, encode_batch, pack_event


@pytest.mark.parametrize("n", [1, 15, 16, 65_535, 65_536])
def test_assembled_record_equals_encode_batch_for_every_array_header_size(n: int) -> None:
    events = [
        {
            "type": "reward",
            "event_id": f"r{i}",
            "episode_id": "e",
            "step": i,
            "ts": 1,
            "reward": 0.5,
        }
        for i in range(n)
    ]
    record = assemble_record([pack_event(e) for e in events])
    assert record == encode_batch(events)


def test_assembled_record_decodes_to_the_events() -> None:
    events = [
        {"type": "episode_end", "event_id": f"x{i}", "episode_id": "e", "ts": 2, "terminal": True}
        for i in range(20)
    ]
    assert decode_record(assemble_record([pack_event(e) for e in events])) == events

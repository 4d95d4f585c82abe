"""Any valid event survives encoding and decoding unchanged, alone or in a batch."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.events import validate_event
from schemas.wire import RecordDecodeError, decode_record, encode_batch, encode_event, split_valid
from tests.schemas.strategies import events


@given(events)
def test_generated_events_are_valid(event):
    validate_event(event)


def typed(value: Any) -> Any:
    """``value`` with the type of every leaf beside it, so that ``1`` and ``1.0`` differ."""
    if type(value) is dict:
        return {key: typed(item) for key, item in value.items()}
    if type(value) is list:
        return [typed(item) for item in value]
    return (type(value).__name__, value)


def test_typed_comparison_tells_an_integer_from_its_float():
    assert {"state": {"x": 1}} == {"state": {"x": 1.0}}  # what plain equality cannot see
    assert typed({"state": {"x": 1}}) != typed({"state": {"x": 1.0}})
    assert typed({"a": [1, "b"]}) == typed({"a": [1, "b"]})


@given(events)
def test_single_event_round_trips_to_itself_types_included(event):
    assert typed(decode_record(encode_event(event))) == typed([event])


@settings(max_examples=50)
@given(st.lists(events, min_size=0, max_size=50))
def test_batch_round_trips_to_itself_in_order_types_included(batch):
    decoded = decode_record(encode_batch(batch))
    assert typed(decoded) == typed(batch)
    valid, invalid = split_valid(decoded)
    assert valid == batch and invalid == []


MIXED_NUMBERS = {"count": 1, "ratio": 1.0}
DECISION = {"type": "decision", "event_id": "d", "episode_id": "e", "step": 0, "ts": 1,
            "state": MIXED_NUMBERS, "action": 0, "possible_actions": [0, 1], "propensity": 0.5,
            "policy_version": "v1"}  # fmt: skip
REWARD = {"type": "reward", "event_id": "r", "episode_id": "e", "step": 0, "ts": 1, "reward": 2,
          "metrics": MIXED_NUMBERS}  # fmt: skip


@pytest.mark.parametrize(("event", "field"), [(DECISION, "state"), (REWARD, "metrics")])
@pytest.mark.parametrize(
    "encode", [encode_event, lambda event: encode_batch([event])], ids=["alone", "in-a-batch"]
)
def test_an_integer_inside_a_number_map_stays_an_integer(event, field, encode):
    validate_event(event)
    (decoded,) = decode_record(encode(event))
    assert type(decoded[field]["count"]) is int
    assert type(decoded[field]["ratio"]) is float


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"\xc1\xff garbage", "malformed"),
        (None, "malformed"),
        (msgpack.packb([1, 2, 3]), "malformed"),
        (msgpack.packb({"schema_version": 2, "events": []}), "unsupported_schema_version"),
        (msgpack.packb({"schema_version": 1, "events": {}}), "malformed"),
        (msgpack.packb({"schema_version": 1, "events": [], "extra": 1}), "malformed"),
        (msgpack.packb({1: "non-string key"}), "malformed"),
        (msgpack.packb(msgpack.ExtType(5, b"x")), "malformed"),
        (b"\x00" * 1_000_001, "too_large"),
    ],
    ids=[
        "garbage-bytes",
        "no-value",
        "top-level-list",
        "unknown-batch-version",
        "events-not-a-list",
        "unknown-batch-field",
        "non-string-map-key",
        "extension-type",
        "over-size-limit",
    ],
)
def test_undecodable_records_raise_with_a_machine_readable_reason(value, reason):
    with pytest.raises(RecordDecodeError) as info:
        decode_record(value)
    assert info.value.reason == reason

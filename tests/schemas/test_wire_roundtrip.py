"""Any valid event survives encoding and decoding unchanged, alone or in a batch."""

from __future__ import annotations

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


@given(events)
def test_single_event_round_trips_to_itself(event):
    assert decode_record(encode_event(event)) == [event]


@settings(max_examples=50)
@given(st.lists(events, min_size=0, max_size=50))
def test_batch_round_trips_to_itself_in_order(batch):
    decoded = decode_record(encode_batch(batch))
    assert decoded == batch
    valid, invalid = split_valid(decoded)
    assert valid == batch and invalid == []


@given(events)
def test_integer_and_float_values_keep_their_types(event):
    (decoded,) = decode_record(encode_event(event))
    for key, value in event.items():
        assert type(decoded[key]) is type(value)


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

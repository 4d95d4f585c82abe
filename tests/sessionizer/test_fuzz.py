"""Fuzz: garbage among valid events goes to the DLQ with a reason; valid events are unaffected."""

from __future__ import annotations

import math
import subprocess

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka import KafkaConsumer, KafkaProducer

from schemas.events import LIMITS
from schemas.wire import MAX_BATCH_EVENTS, MAX_RECORD_BYTES, encode_batch, encode_event
from services.sessionizer.sessionize import PartitionSessionizer, SessionConfig
from tests.sessionizer.factory import T0, decision, end, reward
from tests.sessionizer.workload import (
    expected_rows,
    log_episodes,
    make_episodes,
    table_rows,
    worker_command,
)

NOW = T0 + 3_600_000
CONFIG = SessionConfig(reward_window_ms=5_000)

_bad_values = st.one_of(
    st.just(math.nan),
    st.just(math.inf),
    st.just(-math.inf),
    st.none(),
    st.text(max_size=5),
    st.lists(st.integers(min_value=-(2**63), max_value=2**64 - 1), max_size=3),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.binary(max_size=5),
)
_DECISION_FIELDS = [
    "event_id",
    "episode_id",
    "step",
    "ts",
    "state",
    "action",
    "possible_actions",
    "propensity",
    "policy_version",
]


def _accepted(field: str, value) -> bool:
    """Whether the contract accepts ``value`` as ``field`` of ``decision("junk", 0)``."""
    number = type(value) in (int, float)
    if field == "step":
        return type(value) is int and 0 <= value <= LIMITS["step_max"]
    if field == "ts":
        return type(value) is int and 0 <= value <= NOW + CONFIG.max_future_skew_ms
    if field == "action":
        return type(value) is int and value in (0, 1)
    if field == "propensity":
        return number and 0 < value <= 1
    return False  # state and type: none of the bad values is a map or an event type


def _corrupt(event: dict, field: str, value) -> dict:
    bad = dict(event)
    bad[field] = value
    return bad


def _without(event: dict, field: str) -> dict:
    return {k: v for k, v in event.items() if k != field}


def _oversized_batch() -> bytes:
    """A batch of valid decisions whose record is just over the size limit."""
    value = encode_batch([decision("big", i) for i in range(MAX_RECORD_BYTES // 160)])
    assert MAX_RECORD_BYTES < len(value) < 1.1 * MAX_RECORD_BYTES
    return value


OVERSIZED_BATCH = _oversized_batch()
TOO_MANY_EVENTS = msgpack.packb({"schema_version": 1, "events": [0] * (MAX_BATCH_EVENTS + 1)})
_not_a_version = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1).filter(lambda v: v != 1),
    st.sampled_from(["1", 1.0, True, None]),
)
_scalars = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    st.text(max_size=20),
    st.booleans(),
    st.none(),
)
_not_a_map = st.one_of(_scalars, st.lists(st.integers(min_value=0, max_value=9), max_size=5))


class Junk:
    """A record value and the dead-letter reason it deserves (docs/architecture.md, "Dead letters").

    A reason of ``RecordDecodeError`` for the whole record, or of ``EventValidationError`` for
    its one event.
    """

    def __init__(self, reason: str, value: bytes) -> None:
        self.reason, self.value = reason, value

    def __repr__(self) -> str:  # short: some values are a megabyte
        return f"Junk({self.reason!r}, {len(self.value)} bytes: {self.value[:24]!r})"


junk_records = st.one_of(
    # malformed: not MessagePack (0xc1 is never used), not a map, bad shapes
    st.binary(max_size=200).map(lambda b: Junk("malformed", b"\xc1" + b)),
    _not_a_map.map(lambda v: Junk("malformed", msgpack.packb(v))),
    st.binary(max_size=8).map(lambda b: Junk("malformed", msgpack.packb(msgpack.ExtType(5, b)))),
    st.just(Junk("malformed", msgpack.packb({1: "integer keys"}))),
    _scalars.map(lambda v: Junk("malformed", msgpack.packb({"schema_version": 1, "events": v}))),
    st.just(Junk("malformed", msgpack.packb({"schema_version": 1, "events": [], "more": 1}))),
    # too_large: over the size limit (even when valid inside), or too many events in a batch
    st.just(Junk("too_large", b"\x00" * (MAX_RECORD_BYTES + 1))),
    st.just(Junk("too_large", OVERSIZED_BATCH)),
    st.just(Junk("too_large", TOO_MANY_EVENTS)),
    # unsupported_schema_version: a batch or an event of another version
    _not_a_version.map(
        lambda v: Junk(
            "unsupported_schema_version",
            msgpack.packb({"schema_version": v, "events": [decision("junk", 1)]}),
        )
    ),
    _not_a_version.filter(lambda v: v != 2).map(  # events speak versions 1 and 2
        lambda v: Junk(
            "unsupported_schema_version",
            encode_event({**decision("junk", 0), "schema_version": v}),
        )
    ),
    # invalid:<field>: the first field of the event that breaks its rule
    st.tuples(st.sampled_from(["step", "ts", "state", "propensity", "action", "type"]), _bad_values)
    .filter(lambda fv: not _accepted(*fv))
    .map(lambda fv: Junk(f"invalid:{fv[0]}", encode_event(_corrupt(decision("junk", 0), *fv)))),
    st.sampled_from(_DECISION_FIELDS).map(
        lambda f: Junk(f"invalid:{f}", encode_event(_without(decision("junk", 0), f)))
    ),
    st.just(Junk("invalid:colour", encode_event({**decision("junk", 0), "colour": "red"}))),
    _not_a_map.map(
        lambda v: Junk("invalid:event", msgpack.packb({"schema_version": 1, "events": [v]}))
    ),
)


def _valid_records() -> list[bytes]:
    d0, d1 = decision("good", 0), decision("good", 1)
    return [
        encode_event(d0),
        encode_event(reward("good", 0, 1.5)),
        encode_batch([d1, end("good", True, ts=d1["ts"] + 1)]),
    ]


def _sessionize(records: list[bytes]):
    sess = PartitionSessionizer(CONFIG)
    for offset, value in enumerate(records):
        sess.process_record(value, offset, NOW)
    sess.advance(NOW)
    return sess.take_output()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(junk=st.lists(junk_records, min_size=1, max_size=6), positions=st.data())
def test_each_junk_record_is_dead_lettered_with_the_reason_it_deserves_and_rows_are_unchanged(
    junk, positions
):
    valid = _valid_records()
    clean = _sessionize(valid)
    mixed = [Junk("", value) for value in valid]  # valid records deserve no reason
    for record in junk:
        mixed.insert(positions.draw(st.integers(0, len(mixed))), record)
    out = _sessionize([record.value for record in mixed])
    assert out.rows == clean.rows
    assert len(out.dead_letters) == len(junk)
    reasons = {dl.offset: dl.reason for dl in out.dead_letters}
    assert reasons == {offset: r.reason for offset, r in enumerate(mixed) if r.reason}
    assert all(dl.value == mixed[dl.offset].value for dl in out.dead_letters)


#: What the integration test puts on the topic: name -> (record value, the reason it deserves).
GARBAGE = {
    "not msgpack": (b"\xff\xfe not msgpack", "malformed"),
    "nan propensity": (
        encode_event({**decision("x", 0), "propensity": math.nan}),
        "invalid:propensity",
    ),
    "version 7": (
        encode_event({**decision("x", 0), "schema_version": 7}),
        "unsupported_schema_version",
    ),
    "text step": (encode_event({**decision("x", 0), "step": "three"}), "invalid:step"),
    "zeros at the limit": (b"\x00" * MAX_RECORD_BYTES, "malformed"),
    "zeros over the limit": (b"\x00" * (MAX_RECORD_BYTES + 1), "too_large"),
    "valid batch over the limit": (OVERSIZED_BATCH, "too_large"),
}


@pytest.mark.integration
def test_worker_dead_letters_garbage_on_the_topic_with_the_reason_each_record_deserves(
    kafka, tmp_path
):
    """Through the real broker, records over the size limit included (the broker takes them)."""
    episodes = make_episodes(100, seed=5)
    garbage = [value for value, _ in GARBAGE.values()]
    producer = KafkaProducer(
        bootstrap_servers=kafka.bootstrap_servers, max_request_size=2 * MAX_RECORD_BYTES
    )
    for i, value in enumerate(garbage):
        producer.send(kafka.events_topic, value=value, partition=i % kafka.partitions).get(30)
    log_episodes(kafka, episodes, tmp_path / "spool")
    for i, value in enumerate(garbage):
        producer.send(kafka.events_topic, value=value, partition=(i + 1) % kafka.partitions)
    producer.close()
    table_uri = tmp_path / "timeline"
    done = subprocess.run(
        worker_command(kafka, table_uri, until_idle=2), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert table_rows(table_uri) == expected_rows(episodes)
    consumer = KafkaConsumer(
        kafka.dlq_topic,
        bootstrap_servers=kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
        fetch_max_bytes=8 * MAX_RECORD_BYTES,
        max_partition_fetch_bytes=4 * MAX_RECORD_BYTES,
    )
    letters = list(consumer)
    consumer.close()
    name_of = {value: name for name, (value, _) in GARBAGE.items()}
    got = sorted(
        (name_of.get(m.value, f"unexpected {m.value[:40]!r}"), dict(m.headers)["reason"].decode())
        for m in letters
    )
    assert got == sorted([(name, reason) for name, (_, reason) in GARBAGE.items()] * 2)

"""Fuzz: garbage among valid events goes to the DLQ with a reason; valid events are unaffected."""

from __future__ import annotations

import math
import subprocess

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka import KafkaConsumer, KafkaProducer

from schemas.wire import MAX_RECORD_BYTES, encode_batch, encode_event
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


def _corrupt(event: dict, field: str, value) -> dict:
    bad = dict(event)
    bad[field] = value
    return bad


junk_records = st.one_of(
    st.binary(max_size=200).map(lambda b: ("bytes", b)),
    st.tuples(st.sampled_from(["step", "ts", "state", "propensity", "action", "type"]), _bad_values)
    .filter(lambda fv: not (fv[0] == "step" and type(fv[1]) is int and 0 <= fv[1] < 2**53))
    .filter(lambda fv: not (fv[0] == "ts" and type(fv[1]) is int and 0 <= fv[1] <= NOW))
    .filter(lambda fv: not (fv[0] == "action" and type(fv[1]) is int and fv[1] in (0, 1)))
    .map(lambda fv: ("event", encode_event(_corrupt(decision("junk", 0), *fv)))),
    st.integers(min_value=2, max_value=99).map(
        lambda v: ("event", encode_event({**decision("junk", 0), "schema_version": v}))
    ),
    st.integers(min_value=2, max_value=99).map(
        lambda v: ("event", msgpack.packb({"schema_version": v, "events": [decision("junk", 1)]}))
    ),
    st.just(None).map(lambda _: ("huge", b"\x00" * (MAX_RECORD_BYTES + 1))),
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
def test_junk_records_are_dead_lettered_with_a_reason_and_valid_rows_are_unchanged(junk, positions):
    valid = _valid_records()
    clean = _sessionize(valid)
    mixed = list(valid)
    for _, value in junk:
        mixed.insert(positions.draw(st.integers(0, len(mixed))), value)
    out = _sessionize(mixed)
    assert out.rows == clean.rows
    assert len(out.dead_letters) == len(junk)
    junk_values = sorted(value for _, value in junk)
    assert sorted(dl.value for dl in out.dead_letters) == junk_values
    for dl in out.dead_letters:
        assert dl.reason and (
            dl.reason in ("malformed", "too_large", "unsupported_schema_version")
            or dl.reason.startswith("invalid:")
        ), dl


@pytest.mark.integration
def test_worker_survives_garbage_on_the_topic_and_dead_letters_it_with_headers(kafka, tmp_path):
    episodes = make_episodes(100, seed=5)
    garbage = [
        b"\xff\xfe not msgpack",
        encode_event({**decision("x", 0), "propensity": math.nan}),
        encode_event({**decision("x", 0), "schema_version": 7}),
        encode_event({**decision("x", 0), "step": "three"}),
        b"\x00" * (MAX_RECORD_BYTES - 100),
    ]
    producer = KafkaProducer(
        bootstrap_servers=kafka.bootstrap_servers, max_request_size=2 * MAX_RECORD_BYTES
    )
    for i, value in enumerate(garbage):
        producer.send(kafka.events_topic, value=value, partition=i % kafka.partitions)
    producer.flush()
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
    assert sorted(m.value for m in letters) == sorted(garbage * 2)
    reasons = sorted(dict(m.headers)["reason"].decode() for m in letters)
    assert reasons == sorted(
        [
            "malformed",
            "invalid:propensity",
            "unsupported_schema_version",
            "invalid:step",
            "malformed",
        ]
        * 2
    )

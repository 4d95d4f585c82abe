"""The SDK's murmur2 is kafka-python's (hence Kafka's default partitioner's) on any key."""

from __future__ import annotations

import random

from kafka.partitioner.default import murmur2 as kafka_murmur2

from services.sdk.partitioning import kafka_default_partition, murmur2


def test_murmur2_equals_kafka_pythons_on_every_length_up_to_300_bytes() -> None:
    rnd = random.Random(15)
    for length in range(301):
        for _ in range(20):
            key = rnd.randbytes(length)
            assert murmur2(key) == kafka_murmur2(key), key


def test_episode_ids_go_where_kafka_would_put_them() -> None:
    for i in range(2000):
        key = f"a1b2c3d4e5f6-{i:x}".encode()
        for partitions in (1, 4, 7, 64):
            assert kafka_default_partition(key, partitions) == (
                (kafka_murmur2(key) & 0x7FFFFFFF) % partitions
            )

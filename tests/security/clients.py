"""What the security tests do with each client: read a topic, run the sessionizer command."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from services.kafka_settings import KafkaSettings
from tests.sessionizer.workload import REPO, worker_command

__all__ = ["read_values", "run_sessionizer", "security_env"]


def read_values(kafka: KafkaSettings, topic: str, timeout_s: float = 20.0) -> list[bytes]:
    """Every record value of ``topic``, from the beginning to its end offsets now."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers,
        enable_auto_commit=False,
        **kafka.client_options(),
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        values: list[bytes] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(p) < ends[p] for p in partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: not read to its end offsets {ends} in {timeout_s} s")
            for batch in consumer.poll(timeout_ms=500).values():
                values.extend(r.value for r in batch)
        return values
    finally:
        consumer.close()


def security_env(kafka: KafkaSettings) -> dict[str, str]:
    """The ``POLICYLOOP_KAFKA__*`` environment that gives a command ``kafka``'s security."""
    env = {"POLICYLOOP_KAFKA__SECURITY_PROTOCOL": kafka.security_protocol}
    for name in ("sasl_mechanism", "sasl_plain_username", "ssl_cafile"):
        value = getattr(kafka, name)
        if value is not None:
            env[f"POLICYLOOP_KAFKA__{name.upper()}"] = str(value)
    password = kafka.sasl_plain_password
    if password is not None:
        secret = password if isinstance(password, str) else password.get_secret_value()
        env["POLICYLOOP_KAFKA__SASL_PLAIN_PASSWORD"] = secret
    return env


def run_sessionizer(
    kafka: KafkaSettings, table: Path, *, timeout_s: float
) -> tuple[subprocess.CompletedProcess[str], float]:
    """``policyloop sessionize --until-idle 1`` with ``kafka``'s security from the environment;
    the finished process and how many seconds it ran."""
    cmd = worker_command(kafka, table, until_idle=1.0)
    env = dict(os.environ, PYTHONUNBUFFERED="1", **security_env(kafka))
    started = time.monotonic()
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout_s)
    return done, time.monotonic() - started

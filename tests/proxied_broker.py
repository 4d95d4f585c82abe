"""A private Tansu broker that advertises a cuttable proxy's address, so every client's
connection goes through the proxy: a network outage (or one process cut off) with the broker
alive, which keeps its data in memory only."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from services.broker.embedded import find_free_port, metadata_ready, resolve_binary
from services.kafka_settings import KafkaSettings
from services.kafka_topics import ensure_topics
from tests.sdk.tcp_proxy import TcpProxy

__all__ = ["broker_behind"]


@contextlib.contextmanager
def broker_behind(
    make_proxy: type[TcpProxy], log_path: Path, topic_prefix: str, partitions: int = 4
) -> Iterator[tuple[TcpProxy, KafkaSettings]]:
    """Start Tansu on a free port behind ``make_proxy((host, port))``; yield the proxy and the
    settings of a topic set created through it; stop both at exit."""
    port = find_free_port()
    proxy = make_proxy(("127.0.0.1", port))
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [
                resolve_binary(),
                "broker",
                "--listener-url",
                f"tcp://127.0.0.1:{port}",
                "--advertised-listener-url",
                f"tcp://127.0.0.1:{proxy.port}",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 15
            while not metadata_ready("127.0.0.1", port, timeout=0.5):
                assert time.monotonic() < deadline, "the private broker did not start"
                time.sleep(0.05)
            kafka = KafkaSettings(
                bootstrap_servers=f"127.0.0.1:{proxy.port}",
                topic_prefix=topic_prefix,
                partitions=partitions,
            )
            ensure_topics(kafka)
            yield proxy, kafka
        finally:
            proxy.close()
            proc.terminate()
            proc.wait(10)

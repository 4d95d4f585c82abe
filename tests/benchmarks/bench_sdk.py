"""Benchmark of the logging SDK: sustained events/s and the caller's per-call latency.

Run: ``make bench BENCH=sdk`` (or ``.venv/bin/python -m tests.benchmarks sdk``).

Against a fresh embedded broker, 1,000,000 realistic decision events (6 float features, 3
actions, action_probs, 10,000 interleaved episodes) go through ``DecisionLogger``:

* throughput = events / (time from the first call until ``flush()`` returns, i.e. until the
  broker acknowledged everything with acks=all);
* latency = ``perf_counter_ns`` around each ``decision(...)`` call on the caller's thread.

In the same run, the baseline: raw kafka-python sending one msgpack record per event (key =
episode_id, acks=all, lz4, same topic layout) for 100,000 events. Targets: >= 100,000 events/s
and p99 <= 50 us; the exit code is 0 only if both are met.
"""

from __future__ import annotations

import array
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import msgpack
from prometheus_client import CollectorRegistry
from rich.console import Console
from rich.progress import Progress

from services.broker.embedded import start_broker, stop_broker
from services.kafka_settings import KafkaSettings
from services.kafka_topics import ensure_topics
from services.sdk import DecisionLogger, SdkSettings
from tests.benchmarks.smoke import exit_code, sized

COMMAND = "make bench BENCH=sdk  (.venv/bin/python -m tests.benchmarks sdk)"
SDK_EVENTS = sized(1_000_000, 5_000)
RAW_EVENTS = sized(100_000, 1_000)
EPISODES = sized(10_000, 100)
TARGET_EVENTS_PER_S = 100_000
TARGET_P99_US = 50.0
#: Lowering the GIL switch interval is a documented SdkSettings option (process-global).
SWITCH_INTERVAL_S: float | None = None

console = Console()


def _workload(n_variants: int = 1_000, seed: int = 7) -> list[tuple[dict, int, list, float]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n_variants):
        state = {f"f{i}": rng.uniform(-3, 3) for i in range(6)}
        logits = [rng.random() + 0.1 for _ in range(3)]
        total = sum(logits)
        probs = [p / total for p in logits]
        probs[-1] = 1.0 - probs[0] - probs[1]
        action = rng.randrange(3)
        out.append((state, action, probs, probs[action]))
    return out


def _bench_sdk(kafka: KafkaSettings, spool_dir: str) -> tuple[float, float, float, float]:
    settings = SdkSettings(spool_dir=spool_dir, switch_interval_s=SWITCH_INTERVAL_S)
    work = _workload()
    episodes = [f"episode-{i:06d}" for i in range(EPISODES)]
    actions = [0, 1, 2]
    latencies = array.array("q", bytes(8 * SDK_EVENTS))
    registry = CollectorRegistry()
    logger = DecisionLogger(kafka=kafka, settings=settings, registry=registry)
    logger.flush(timeout=30)  # connected before the clock starts
    clock = time.perf_counter_ns
    decision = logger.decision
    n_work = len(work)
    chunk = 100_000
    with Progress(console=console, auto_refresh=False, transient=True) as progress:
        task = progress.add_task("SDK: decision() calls", total=SDK_EVENTS)
        started = time.perf_counter()
        for base in range(0, SDK_EVENTS, chunk):
            for i in range(base, min(base + chunk, SDK_EVENTS)):
                state, action, probs, propensity = work[i % n_work]
                t0 = clock()
                decision(
                    episodes[i % EPISODES],
                    i // EPISODES,
                    state,
                    action,
                    actions,
                    propensity,
                    "v1",
                    action_probs=probs,
                )
                latencies[i] = clock() - t0
            progress.update(task, completed=min(base + chunk, SDK_EVENTS))
            progress.refresh()
        accepted_at = time.perf_counter()
        logger.flush(timeout=300)
        acked_at = time.perf_counter()
    logger.close()
    sent = registry.get_sample_value("policyloop_sdk_events_sent_total")
    if sent != SDK_EVENTS:
        raise RuntimeError(f"the broker acknowledged {sent} events, expected {SDK_EVENTS}")
    ordered = sorted(latencies)
    p50 = ordered[len(ordered) // 2] / 1000
    p99 = ordered[int(len(ordered) * 0.99)] / 1000
    return (
        SDK_EVENTS / (acked_at - started),
        SDK_EVENTS / (accepted_at - started),
        p50,
        p99,
    )


def _bench_raw(kafka: KafkaSettings) -> float:
    from kafka import KafkaProducer

    work = _workload()
    producer = KafkaProducer(
        bootstrap_servers=kafka.bootstrap_servers,
        acks="all",
        compression_type="lz4",
        linger_ms=5,
        **kafka.client_options(),
    )
    producer.partitions_for(kafka.events_topic)
    topic = kafka.events_topic
    packb = msgpack.packb
    with Progress(console=console, auto_refresh=False, transient=True) as progress:
        task = progress.add_task("raw kafka-python: one record per event", total=RAW_EVENTS)
        started = time.perf_counter()
        for i in range(RAW_EVENTS):
            state, action, probs, propensity = work[i % len(work)]
            episode = f"episode-{i % EPISODES:06d}"
            event = {
                "type": "decision",
                "event_id": f"raw-{i}",
                "episode_id": episode,
                "step": i // EPISODES,
                "ts": time.time_ns() // 1_000_000,
                "state": state,
                "action": action,
                "possible_actions": [0, 1, 2],
                "propensity": propensity,
                "policy_version": "v1",
                "action_probs": probs,
            }
            producer.send(topic, value=packb(event, use_bin_type=True), key=episode.encode())
            if i % 20_000 == 0:
                progress.update(task, completed=i)
                progress.refresh()
        producer.flush()
        elapsed = time.perf_counter() - started
    producer.close()
    return RAW_EVENTS / elapsed


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="bench-sdk-"))
    try:
        handle = start_broker(home / "broker", port=0)
        try:
            sdk_kafka = KafkaSettings(
                bootstrap_servers=handle.bootstrap_servers, topic_prefix="bench", partitions=4
            )
            raw_kafka = sdk_kafka.model_copy(update={"topic_prefix": "benchraw"})
            ensure_topics(sdk_kafka)
            ensure_topics(raw_kafka)
            eps, accept_eps, p50, p99 = _bench_sdk(sdk_kafka, str(home / "spool"))
            raw_eps = _bench_raw(raw_kafka)
        finally:
            stop_broker(home / "broker")
    finally:
        shutil.rmtree(home, ignore_errors=True)

    ok_rate = eps >= TARGET_EVENTS_PER_S
    ok_p99 = p99 <= TARGET_P99_US
    print(f"command: {COMMAND}")
    print(f"python {sys.version.split()[0]}, switch interval {sys.getswitchinterval() * 1e6:g} us")
    print(
        f"SDK: {SDK_EVENTS:,} decision events, {EPISODES:,} episodes, 4 partitions, acks=all"
        f"\n  sustained (accepted -> all acked): {eps:,.0f} events/s "
        f"(target >= {TARGET_EVENTS_PER_S:,}) {'OK' if ok_rate else 'MISSED'}"
        f"\n  accepted by the caller's thread:  {accept_eps:,.0f} events/s"
        f"\n  decision() latency: p50 {p50:.1f} us, p99 {p99:.1f} us "
        f"(target p99 <= {TARGET_P99_US:g} us) {'OK' if ok_p99 else 'MISSED'}"
    )
    print(f"raw kafka-python, one record per event: {RAW_EVENTS:,} events, {raw_eps:,.0f} events/s")
    print(f"ratio SDK / raw: {eps / raw_eps:.1f}x")
    print("(the machine is shared: figures are indicative)")
    return exit_code(ok_rate and ok_p99)


if __name__ == "__main__":
    sys.exit(main())

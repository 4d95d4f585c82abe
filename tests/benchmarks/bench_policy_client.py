"""Benchmark of serving: ``PolicyClient.act`` calls/s and per-call latency, batch of one.

Run: ``make bench BENCH=policy_client`` (or ``.venv/bin/python -m tests.benchmarks
policy_client``).

A CartPole-shaped served policy (4 features, 2 actions, MLP with two hidden layers of 64, made
by ``tests.rollout.factory`` through the learner's ``export_policy``) is published in a fresh
registry and served by one ``PolicyClient`` in this process; episodes of 20 steps, a new episode
id every 20 calls (with ``end_episode``). Latency is ``perf_counter_ns`` around each ``act``.

In the same run, the comparison: the raw TorchScript call the module offers
(``module(state, possible)``, what ``Registry.load`` returns) on the same state, and the
trainer's default network size (256, 256) for reference. Then, if the embedded broker starts,
the same ``act`` loop with a ``DecisionLogger`` attached (every act logged to Kafka).

Target (issue 5): >= 20,000 act/s and p99 <= 1 ms without a logger; the exit code is 0 only if
both are met. The machine is shared: figures are indicative.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path

from prometheus_client import CollectorRegistry
from rich.console import Console
from rich.progress import Progress

from services.registry import Registry
from services.sdk import PolicyClient
from tests.benchmarks.smoke import exit_code, sized
from tests.rollout.factory import publish

COMMAND = "make bench BENCH=policy_client  (.venv/bin/python -m tests.benchmarks policy_client)"
CALLS = sized(100_000, 2_000)
LOGGED_CALLS = sized(50_000, 1_000)
RAW_CALLS = sized(20_000, 200)
EPISODE_STEPS = 20
TARGET_CALLS_PER_S = 20_000
TARGET_P99_MS = 1.0

console = Console()

STATES = [
    {"cart_position": 0.01 * i, "cart_velocity": -0.02 * i, "pole_angle": 0.001 * i,
     "pole_angular_velocity": 0.03 * (i % 7)}
    for i in range(64)
]  # fmt: skip


def _act_loop(client: PolicyClient, calls: int, label: str) -> tuple[float, list[int]]:
    """calls/s over the whole loop and each call's latency in ns."""
    latencies = [0] * calls
    act, end, clock = client.act, client.end_episode, time.perf_counter_ns
    n_states = len(STATES)
    possible = [0, 1]
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(label, total=calls)
        started = time.perf_counter()
        episode = "ep-0"
        for i in range(calls):
            if i % EPISODE_STEPS == 0:
                if i:
                    end(episode, True)
                episode = f"ep-{i // EPISODE_STEPS}"
            state = STATES[i % n_states]
            t0 = clock()
            act(episode, state, possible)
            latencies[i] = clock() - t0
            if i % 10_000 == 9_999:
                progress.update(task, completed=i + 1)
        elapsed = time.perf_counter() - started
    return calls / elapsed, latencies


def _percentile(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e3  # microseconds


def _raw_rate(module, calls: int) -> float:
    possible = [True, True]
    for i in range(500):
        module(STATES[i % len(STATES)], possible)
    started = time.perf_counter()
    for i in range(calls):
        module(STATES[i % len(STATES)], possible)
    return calls / (time.perf_counter() - started)


def _report(label: str, rate: float, latencies: list[int]) -> tuple[float, float]:
    p50, p99 = _percentile(latencies, 0.50), _percentile(latencies, 0.99)
    console.print(
        f"{label}: {rate:,.0f} act/s · p50 {p50:.1f} µs · p99 {p99:.1f} µs · "
        f"mean {statistics.fmean(latencies) / 1e3:.1f} µs"
    )
    return p50, p99


def _with_logger(registry: Registry, home: Path) -> None:
    from services.broker.embedded import start_broker, stop_broker
    from services.kafka_settings import KafkaSettings
    from services.kafka_topics import ensure_topics
    from services.sdk import DecisionLogger, SdkSettings

    try:
        handle = start_broker(home / "broker", port=0)
    except Exception as exc:  # the comparison is optional; say why it is missing
        console.print(f"with DecisionLogger: skipped (embedded broker did not start: {exc})")
        return
    try:
        kafka = KafkaSettings(bootstrap_servers=handle.bootstrap_servers, topic_prefix="bench")
        ensure_topics(kafka)
        settings = SdkSettings(spool_dir=str(home / "spool"))
        with DecisionLogger(kafka=kafka, settings=settings, registry=CollectorRegistry()) as logger:
            with PolicyClient(registry.uri, registry.policy_name, seed=1, logger=logger,
                              metrics_registry=CollectorRegistry()) as client:  # fmt: skip
                rate, latencies = _act_loop(client, LOGGED_CALLS, "act + DecisionLogger")
            logger.flush(timeout=120)
        _report("PolicyClient.act with DecisionLogger attached", rate, latencies)
    finally:
        stop_broker(home / "broker")


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="bench-policy-client-"))
    try:
        registry = Registry(str(home / "registry"), "cartpole")
        version = publish(registry, promote=True, seed=1, hidden_sizes=(64, 64), epsilon=0.05)
        big = Registry(str(home / "registry"), "cartpole-256")
        publish(big, promote=True, seed=1, hidden_sizes=(256, 256), epsilon=0.05)
        module, _ = registry.load(version)
        raw = _raw_rate(module, RAW_CALLS)

        with PolicyClient(registry.uri, "cartpole", seed=1,
                          metrics_registry=CollectorRegistry()) as client:  # fmt: skip
            how = client._serving.incumbent.compiled
            _act_loop(client, 5_000, "warm-up")
            rate, latencies = _act_loop(client, CALLS, "act")
        console.print(f"policy {version}: MLP 4→64→64→2, served module path: {how}")
        _p50, p99 = _report("PolicyClient.act (no logger)", rate, latencies)
        console.print(
            f"raw TorchScript module(state, possible): {raw:,.0f} calls/s · "
            f"act / raw = {rate / raw:.2f}x"
        )
        with PolicyClient(big.uri, "cartpole-256", seed=1,
                          metrics_registry=CollectorRegistry()) as client:  # fmt: skip
            _act_loop(client, 2_000, "warm-up 256")
            rate_256, lat_256 = _act_loop(client, CALLS // 4, "act 256x256")
        _report("PolicyClient.act, trainer-default MLP 4→256→256→2", rate_256, lat_256)

        _with_logger(registry, home)

        ok = rate >= TARGET_CALLS_PER_S and p99 / 1e3 <= TARGET_P99_MS
        console.print(
            f"target: >= {TARGET_CALLS_PER_S:,} act/s and p99 <= {TARGET_P99_MS:g} ms "
            f"(no logger, 64x64 MLP): {'met' if ok else 'MISSED'}"
        )
        console.print(f"command: {COMMAND}")
        return exit_code(ok)
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())

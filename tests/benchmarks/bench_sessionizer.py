"""Sessionizer throughput and event-to-row latency, one worker, embedded broker, real Delta.

Command: ``.venv/bin/python -m tests.benchmarks sessionizer`` (``make bench``).
Target: >= 50,000 events/s sustained and p99 event-to-row latency <= 5 s.

Phase 1 (throughput): >= 1,000,000 events are logged with the SDK first, then one worker
(``policyloop sessionize`` subprocess) sessionizes the backlog into Delta; events/s = events /
(time from the worker's partition assignment to the last row committed). For the ratio, the
same run measures a raw aiokafka consumer of the same topic twice: fetching only, and fetching
plus ``schemas.wire.decode_record`` of every record (MessagePack to event dicts, the least any
consumer of these events must do); the ratio is against the second. The load average is
printed before and after: on a shared machine the figures are only indicative.
Phase 2 (latency): with the worker caught up, events are logged live at a steady rate and the
worker's ``policyloop_sessionizer_event_to_row_seconds`` histogram (newest event of a row to
the Delta commit holding it) gives p50/p99, interpolated within buckets as Prometheus does.
``BENCH_SESSIONIZER_EPISODES`` shrinks the run for a quick check.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from services.broker.embedded import find_free_port, start_broker, stop_broker
from services.kafka_settings import KafkaSettings
from services.kafka_topics import ensure_topics
from services.sdk import DecisionLogger
from services.sdk.settings import SdkSettings
from tests.benchmarks.smoke import exit_code, sized

TARGET_EVENTS_PER_S = 50_000
TARGET_P99_S = 5.0
STEPS = 4  # per episode: 4 decisions + 4 rewards + 1 end = 9 events
EVENTS_PER_EPISODE = 2 * STEPS + 1
REPO = Path(__file__).resolve().parents[2]
console = Console()


def _log(kafka: KafkaSettings, spool: Path, start: int, episodes: int, rate: float | None):
    settings = SdkSettings(spool_dir=str(spool), linger_ms=20, queue_max_events=500_000)
    began = time.perf_counter()
    with DecisionLogger(kafka=kafka, settings=settings) as logger, Progress(console=console) as bar:
        task = bar.add_task("logging events with the SDK", total=episodes * EVENTS_PER_EPISODE)
        for i in range(start, start + episodes):
            eid = f"ep{i}"
            for s in range(STEPS):
                logger.decision(eid, s, {"a": 1.0, "b": float(s)}, s % 2, [0, 1], 0.5, "v1")
                logger.reward(eid, s, 1.0)
            logger.end_episode(eid, True)
            if i % 500 == 0:
                bar.update(task, completed=(i - start + 1) * EVENTS_PER_EPISODE)
                if rate:
                    ahead = (i - start + 1) * EVENTS_PER_EPISODE / rate - (
                        time.perf_counter() - began
                    )
                    if ahead > 0:
                        time.sleep(ahead)
        logger.flush(300)
    return time.perf_counter() - began


async def _raw_consume(
    kafka: KafkaSettings, records_expected: int, *, decode: bool
) -> tuple[int, int, float]:
    """(records, events decoded, seconds) for one raw aiokafka pass over the topic."""
    from aiokafka import AIOKafkaConsumer

    from schemas.wire import decode_record

    consumer = AIOKafkaConsumer(
        kafka.events_topic,
        bootstrap_servers=kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    await consumer.start()
    n = events = 0
    began = time.perf_counter()
    try:
        while n < records_expected:
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                n += len(records)
                if decode:
                    for record in records:
                        events += len(decode_record(record.value))
    finally:
        await consumer.stop()
    return n, events, time.perf_counter() - began


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux ``/proc``; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read().decode()


def _metric(text: str, name: str) -> float:
    total = 0.0
    for m in re.finditer(rf"^{name}(?:\{{[^}}]*\}})? ([0-9.e+-]+)$", text, re.M):
        total += float(m.group(1))
    return total


def _buckets(text: str) -> list[tuple[float, float]]:
    name = "policyloop_sessionizer_event_to_row_seconds_bucket"
    out = []
    for m in re.finditer(rf'^{name}\{{.*le="([^"]+)".*\}} ([0-9.e+-]+)$', text, re.M):
        out.append((float(m.group(1)), float(m.group(2))))
    return sorted(out)


def _quantile(q: float, before: list, after: list) -> float:
    counts = [(le, a - b) for (le, a), (_, b) in zip(after, before, strict=True)]
    total = counts[-1][1]
    if total <= 0:
        return float("nan")
    rank = q * total
    prev_le, prev_c = 0.0, 0.0
    for le, c in counts:
        if c >= rank:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_c) / max(c - prev_c, 1e-9)
        prev_le, prev_c = le, c
    return prev_le


def main() -> int:
    # 112,000 episodes = 1,008,000 events
    episodes = int(os.environ.get("BENCH_SESSIONIZER_EPISODES", sized("112000", "2000")))
    events = episodes * EVENTS_PER_EPISODE
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="bench-sessionizer-"))
    handle = start_broker(work / "broker", port=0)
    worker = None
    try:
        kafka = KafkaSettings(
            bootstrap_servers=handle.bootstrap_servers, topic_prefix="bench", partitions=4
        )
        ensure_topics(kafka)
        secs = _log(kafka, work / "spool", 0, episodes, None)
        console.print(f"logged {events:,} events in {secs:.1f}s ({events / secs:,.0f}/s, SDK)")
        from kafka import KafkaConsumer, TopicPartition

        probe = KafkaConsumer(bootstrap_servers=kafka.bootstrap_servers)
        tps = [TopicPartition(kafka.events_topic, p) for p in range(4)]
        records = sum(probe.end_offsets(tps).values())
        probe.close()
        n, _, fetch_secs = asyncio.run(_raw_consume(kafka, records, decode=False))
        fetch_rate = events / fetch_secs
        console.print(f"raw aiokafka consume (fetch only): {n:,} records in {fetch_secs:.2f}s")
        n, decoded, raw_secs = asyncio.run(_raw_consume(kafka, records, decode=True))
        raw_rate = decoded / raw_secs
        console.print(
            f"raw aiokafka consume + decode: {n:,} records, {decoded:,} events in {raw_secs:.2f}s"
        )

        metrics_port = find_free_port()
        cmd = [
            sys.executable, "-m", "services.cli", "sessionize",
            "--bootstrap-servers", kafka.bootstrap_servers, "--topic-prefix", "bench",
            "--table-uri", str(work / "timeline"), "--group", "bench",
            "--reward-window", "1", "--batch-max-seconds", "1",
            "--rebalance-timeout", "2", "--session-timeout", "6",
            "--idle-clock-slack", "0.5", "--metrics-port", str(metrics_port),
        ]  # fmt: skip
        log = open(work / "worker.log", "wb")  # noqa: SIM115
        worker = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        rows_expected = episodes * STEPS
        began = None
        with Progress(console=console) as bar:
            task = bar.add_task("sessionizing the backlog (rows)", total=rows_expected)
            while True:
                time.sleep(0.2)
                if worker.poll() is not None:
                    raise RuntimeError(f"worker exited: see {work / 'worker.log'}")
                try:
                    text = _scrape(metrics_port)
                except OSError:
                    continue
                if (
                    began is None
                    and "sessionizer: assigned partitions" in (work / "worker.log").read_text()
                ):
                    began = time.perf_counter()
                    cpu_began = _cpu_seconds(worker.pid)
                rows = _metric(text, "policyloop_sessionizer_rows_written_total")
                bar.update(task, completed=rows)
                if rows >= rows_expected:
                    break
        rate = events / (time.perf_counter() - began)
        cpu = _cpu_seconds(worker.pid) - cpu_began

        before = _buckets(_scrape(metrics_port))
        live_episodes = max(episodes // 10, 1000)
        live_rate = 20_000
        _log(kafka, work / "spool2", episodes, live_episodes, live_rate)
        deadline = time.monotonic() + 120
        want = (episodes + live_episodes) * STEPS
        while time.monotonic() < deadline:
            text = _scrape(metrics_port)
            if _metric(text, "policyloop_sessionizer_rows_written_total") >= want:
                break
            time.sleep(0.5)
        after = _buckets(text)
        p50, p99 = _quantile(0.5, before, after), _quantile(0.99, before, after)

        ok = rate >= TARGET_EVENTS_PER_S and p99 <= TARGET_P99_S
        console.print(
            f"sessionizer, one worker: {rate:,.0f} events/s sustained (backlog of "
            f"{events:,} events -> {rows_expected:,} rows in Delta)"
        )
        if cpu > 0:
            console.print(
                f"worker CPU time for the backlog: {cpu:.1f}s user+system = "
                f"{events / cpu:,.0f} events per CPU-second (less sensitive to other load)"
            )
        console.print(
            f"raw aiokafka of the same topic: fetch only {fetch_rate:,.0f} events/s; "
            f"fetch + decode {raw_rate:,.0f} events/s; ratio worker/(fetch + decode) = "
            f"{rate / raw_rate:.2f}"
        )
        console.print(
            f"event-to-row latency at {live_rate:,} events/s live: p50 {p50:.2f}s, p99 {p99:.2f}s"
        )
        console.print(
            f"target: >= {TARGET_EVENTS_PER_S:,} events/s and p99 <= {TARGET_P99_S}s: "
            f"{'MET' if ok else 'MISSED'} (shared noisy 2-core machine: indicative)"
        )
        load_after = os.getloadavg()
        console.print(
            "load average (1/5/15 min) before: "
            + "/".join(f"{x:.2f}" for x in load_before)
            + ", after: "
            + "/".join(f"{x:.2f}" for x in load_after)
            + f" on {os.cpu_count()} CPUs"
        )
        console.print("command: .venv/bin/python -m tests.benchmarks sessionizer")
        return exit_code(ok)
    finally:
        if worker is not None and worker.poll() is None:
            worker.terminate()
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
        stop_broker(work / "broker")
        shutil.rmtree(work, ignore_errors=True)

"""Benchmark of the decision service: decisions/s and latency over real HTTP, logging on.

Run: ``make bench BENCH=serve`` (or ``.venv/bin/python -m tests.benchmarks serve``).

A CartPole-sized served policy (4 features, 2 actions, MLP 64x64, made by
``tests.rollout.factory`` through the learner's ``export_policy``) is published in a fresh
registry; the embedded broker takes the logged events. ``policyloop serve`` runs as its own
process (1 worker, then 2); a load generator in another process keeps ``CONCURRENCY`` requests
in flight (one keep-alive connection per slot) posting decisions of one-step episodes (no
``episode_id``: each a new episode, as Personalizer's rank) for ``SECONDS`` and times each
request. In the same run and with the same generator: ``GET /healthz``, the same framework's
trivial endpoint (same app and middleware), for the ratio; one worker at each of
``LOW_CONCURRENCIES`` too (latency when fewer requests wait), the trivial endpoint beside each;
and the durable mode (replies wait for the disk spool) with one worker, for its cost.

Why a generator of its own (HTTP/1.1 on asyncio streams with uvloop, a prebuilt request, the
reply read by its ``content-length``) rather than an HTTP client library: the machine has 2
cores shared by the server, the generator and the broker, so the generator's CPU is taken from
the server. aiohttp spent 95 to 125 µs of CPU a request here, about half of what the server
spends on a decision; this one spends 15 to 30 µs. Each line reports both CPUs per request (the
server's: every process of ``policyloop serve``, from ``/proc``) and the load average, so that a
reader can tell a busy machine from a slow server; decision lines add the mean number of
decisions per model call (``policyloop_serve_decision_batch_size``).

Targets (issue 15): >= 3,000 decisions/s and p99 <= 10 ms with one worker at a fixed
concurrency, and >= 0.5 of the trivial endpoint's rate at that concurrency. The issue does not
fix the concurrency, and latency depends on it: with a fixed number of requests in flight the
mean latency is concurrency / rate (Little's law), so at 32 in flight a p99 of 10 ms needs well
over 3,200 decisions/s from a server that shares 2 cores with its load generator. The targets
are therefore judged, and printed, at each concurrency of the sweep (``LOW_CONCURRENCIES`` and
``CONCURRENCY``) on its own; the exit code is 0 when all three hold together at one of them
(the line says which).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import httpx

from tests.benchmarks.smoke import exit_code, sized

COMMAND = "make bench BENCH=serve  (.venv/bin/python -m tests.benchmarks serve)"
SECONDS = sized(10.0, 0.5)
CONCURRENCY = 32
#: One worker is also measured at these (trivial endpoint and decisions), for the sweep.
LOW_CONCURRENCIES = (8, 16)
TARGET_RATE = 3_000
TARGET_P99_MS = 10.0
TARGET_RATIO = 0.5
REPO = Path(__file__).resolve().parents[2]
STATE = {"cart_position": 0.1, "cart_velocity": -0.2, "pole_angle": 0.03,
         "pole_angular_velocity": 0.4}  # fmt: skip
_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Measured:
    """One load run: requests answered 2xx per second, failures, latency percentiles, the CPU
    each side spent per answered request, and the 1-minute load average at the end."""

    rate: float
    failed: int
    p50_ms: float
    p99_ms: float
    server_cpu_us: float
    client_cpu_us: float
    load: float

    def line(self, what: str) -> str:
        return (
            f"{what:<44} {self.rate:>7,.0f}/s  p50 {self.p50_ms:6.2f} ms  p99 {self.p99_ms:6.2f} ms"
            f"  failed {self.failed}  cpu/req server {self.server_cpu_us:4.0f} µs, generator "
            f"{self.client_cpu_us:3.0f} µs  load {self.load:.1f}"
        )


@dataclass(frozen=True)
class Target:
    """Where the generator sends its load: the server's address and the processes to meter."""

    host: str
    port: int
    pid: int  # policyloop serve (with several workers, the supervisor; its children count too)


def _cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` and of its descendants still running (Linux ``/proc``)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / _TICK
    return own + sum(_cpu_seconds(int(child)) for child in children)


def _request(target: Target, path: str, post: bool) -> bytes:
    import orjson

    head = f"{'POST' if post else 'GET'} {path} HTTP/1.1\r\nhost: {target.host}\r\n"
    if not post:
        return f"{head}\r\n".encode()
    body = orjson.dumps({"state": STATE, "possible_actions": [0, 1]})
    head += f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    return head.encode() + body


def _generate(target: Target, path: str, post: bool, concurrency: int, seconds: float) -> Measured:
    """The load generator (runs in its own process; see the module doc)."""
    import uvloop

    request = _request(target, path, post)
    latencies: list[float] = []
    failed = 0

    async def slot(until: float) -> None:
        nonlocal failed
        reader, writer = await asyncio.open_connection(target.host, target.port)
        clock = time.perf_counter
        try:
            while clock() < until:
                started = clock()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                at = head.lower().find(b"\r\ncontent-length:")
                if at < 0:
                    raise RuntimeError(f"a reply without content-length: {head!r}")
                await reader.readexactly(int(head[at + 17 : head.index(b"\r\n", at + 2)]))
                if head[9:10] == b"2":  # "HTTP/1.1 2xx"
                    latencies.append(clock() - started)
                else:
                    failed += 1
        finally:
            writer.close()

    async def run() -> tuple[float, float, float]:
        warm = time.perf_counter() + min(1.0, seconds / 2)
        await asyncio.gather(*(slot(warm) for _ in range(concurrency)))
        latencies.clear()
        server, client, started = _cpu_seconds(target.pid), time.process_time(), time.perf_counter()
        await asyncio.gather(*(slot(started + seconds) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        return elapsed, _cpu_seconds(target.pid) - server, time.process_time() - client

    elapsed, server_cpu, client_cpu = uvloop.run(run())
    ordered = sorted(latencies) or [0.0]
    answered = max(1, len(latencies))
    return Measured(
        len(latencies) / elapsed,
        failed,
        ordered[len(ordered) // 2] * 1000,
        ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        server_cpu / answered * 1e6,
        client_cpu / answered * 1e6,
        os.getloadavg()[0],
    )


def _serve(home: Path, kafka: object, registry_uri: str, workers: int, durability: str):
    from services.broker.embedded import find_free_port

    port = find_free_port()
    log = open(home / f"serve-{workers}-{durability}.log", "ab")  # noqa: SIM115 - the child's
    env = dict(os.environ, POLICYLOOP_SERVE__RUN_DIR=str(home / "run"))
    process = subprocess.Popen(
        [
            sys.executable, "-m", "services.cli", "serve", "--port", str(port),
            "--workers", str(workers), "--durability", durability,
            "--bootstrap-servers", kafka.bootstrap_servers,  # type: ignore[attr-defined]
            "--topic-prefix", kafka.topic_prefix,  # type: ignore[attr-defined]
            "--registry", registry_uri, "--policy", "cartpole",
            "--spool-dir", str(home / f"spool-{workers}-{durability}"),
            "--poll-interval", "5",
        ],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"policyloop serve exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return process, Target("127.0.0.1", port, process.pid)
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("policyloop serve was not ready in 120 s")


def _mean_batch(target: Target) -> float:
    """Decisions per model call since the server started (every worker's, from /metrics)."""
    text = httpx.get(f"http://{target.host}:{target.port}/metrics", timeout=10).text
    sums = counts = 0.0
    for line in text.splitlines():
        if line.startswith("policyloop_serve_decision_batch_size_sum"):
            sums += float(line.rsplit(" ", 1)[1])
        elif line.startswith("policyloop_serve_decision_batch_size_count"):
            counts += float(line.rsplit(" ", 1)[1])
    return sums / counts if counts else 0.0


def _targets_met(results: dict[str, Measured], concurrency: int, failed: int) -> bool:
    """Print the issue's three targets for one worker at ``concurrency`` (each line: the
    figure, the target, whether it holds) and say whether all hold with no failed request."""
    suffix = "" if concurrency == CONCURRENCY else f", {concurrency} in flight"
    one = results.get(f"decisions 1 worker(s), queued{suffix}")
    trivial = results.get(f"trivial 1 worker(s), queued{suffix}")
    if one is None or trivial is None:
        return False
    ratio = one.rate / trivial.rate
    checks = (
        (one.rate >= TARGET_RATE, f"{one.rate:,.0f}/s (>= {TARGET_RATE:,})"),
        (one.p99_ms <= TARGET_P99_MS, f"p99 {one.p99_ms:.2f} ms (<= {TARGET_P99_MS:g})"),
        (ratio >= TARGET_RATIO, f"{ratio:.2f} of the trivial endpoint (>= {TARGET_RATIO})"),
    )
    words = "; ".join(f"{text} {'yes' if ok else 'NO'}" for ok, text in checks)
    print(f"1 worker at {concurrency} in flight: {words}")
    return all(ok for ok, _ in checks) and failed == 0


def main() -> int:
    from services.broker.embedded import start_broker, stop_broker
    from services.kafka_settings import KafkaSettings
    from services.kafka_topics import ensure_topics
    from services.registry import Registry
    from tests.rollout.factory import publish

    home = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    handle = start_broker(home / "broker", port=0)
    pool = ProcessPoolExecutor(1, mp_context=get_context("spawn"))
    results: dict[str, Measured] = {}
    batches: dict[str, float] = {}
    load_before = os.getloadavg()
    try:
        kafka = KafkaSettings(
            bootstrap_servers=handle.bootstrap_servers, topic_prefix="bench", partitions=4
        )
        ensure_topics(kafka)
        registry = Registry(str(home / "registry"), "cartpole")
        publish(registry, promote=True, hidden_sizes=(64, 64), seed=1)
        runs = [(1, "queued"), (2, "queued"), (1, "durable")]
        for workers, durability in sized(runs, runs[:1]):
            process, target = _serve(home, kafka, registry.uri, workers, durability)
            label = f"{workers} worker(s), {durability}"
            loads = [("/v1/decisions", True, CONCURRENCY, f"decisions {label}")]
            if durability == "queued":
                loads.insert(0, ("/healthz", False, CONCURRENCY, f"trivial {label}"))
            if (workers, durability) == (1, "queued"):
                for low in LOW_CONCURRENCIES:
                    where = f"{label}, {low} in flight"
                    loads.append(("/healthz", False, low, f"trivial {where}"))
                    loads.append(("/v1/decisions", True, low, f"decisions {where}"))
            try:
                for path, post, concurrency, what in loads:
                    results[what] = pool.submit(
                        _generate, target, path, post, concurrency, SECONDS
                    ).result()
                batches[label] = _mean_batch(target)
            finally:
                process.terminate()
                process.wait(60)
    finally:
        pool.shutdown()
        stop_broker(home / "broker")
        shutil.rmtree(home, ignore_errors=True)
    print(
        f"decision service, {CONCURRENCY} requests in flight unless said, {SECONDS:g} s a run, "
        f"logging on; load average before {load_before[0]:.1f} (1 min), {load_before[1]:.1f} "
        f"(5 min) on {os.cpu_count()} cores"
    )
    for what, measured in results.items():
        print(measured.line(what))
    for label, mean in batches.items():
        print(f"decisions per model call, {label}: {mean:.1f} on average")
    one = results["decisions 1 worker(s), queued"]
    if "decisions 1 worker(s), durable" in results:
        durable = results["decisions 1 worker(s), durable"]
        print(f"durable / queued, 1 worker: {durable.rate / one.rate:.2f} of the rate")
    failed = sum(m.failed for m in results.values())
    sweep = (*LOW_CONCURRENCIES, CONCURRENCY)
    met_at = [c for c in sweep if _targets_met(results, c, failed)]
    met = bool(met_at)
    where = f"met at {', '.join(map(str, met_at))} in flight" if met else "NOT met"
    print(f"targets (all three at one concurrency, no failed request): {where}")
    print(f"command: {COMMAND}")
    return exit_code(met)


if __name__ == "__main__":
    sys.exit(main())

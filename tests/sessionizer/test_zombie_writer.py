"""A zombie writer: a worker cut off from the broker keeps running after its partitions moved.

Workers A and B share the partitions when the network in front of the broker is cut for A alone
(B and the test's logger stay connected). A holds rows that are complete (their episodes
ended) but still inside their reward window. Past A's session timeout the group gives A's
partitions to B, which resumes from the table. A does not know: on quiet time (no record
arrives, and it believes it is caught up) its rows' windows close, and it tries to commit them
(its Delta table is local, so nothing stops the write but the sessionizer itself). A finds it
lost the partitions and writes nothing; B writes the rows; A comes back and claims partitions
anew; the table must hold exactly one correct row per logged decision.

Quiet time never times an episode out (``watermark.py``), so the rows A writes as a zombie are
rows of ended episodes, closed by their reward window: one longer than the takeover.

The cut goes through :class:`tests.sdk.tcp_proxy.TcpProxy`, narrowed to one process: a Kafka
client reconnects to the address the broker advertises, so every worker talks through the same
proxy port, and only the connections of A's process are closed and refused.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError
from kafka import KafkaConsumer, TopicPartition

from services.kafka_settings import KafkaSettings
from services.sdk import DecisionLogger
from services.sdk.settings import SdkSettings
from services.sessionizer.fencing import txn_app_id
from tests.proxied_broker import broker_behind
from tests.sdk.tcp_proxy import TcpProxy
from tests.sessionizer.workload import (
    Episode,
    expected_rows,
    log_step,
    start_worker,
    table_rows,
    worker_command,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: Reward window of both workers in the zombie case: longer than it takes B to take A's
#: partitions after the events were logged (about 10 s: A's offsets committed after 3 s, then
#: the session timeout of 4 s and a rebalance after the cut), short enough for a quick test.
ZOMBIE_REWARD_WINDOW_S = 20.0
#: Seconds of that window left at the takeover, at least, for the run to test a zombie.
TAKEOVER_MARGIN_S = 3.0
ALL_PARTITIONS = {0, 1, 2, 3}


def _socket_ports(pid: int) -> set[int]:
    """Local ports of the TCP sockets that process ``pid`` holds (Linux ``/proc``)."""
    inodes = set()
    fd_dir = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(fd_dir)
    except OSError:  # the process is gone
        return set()
    for fd in fds:
        try:
            link = os.readlink(f"{fd_dir}/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[len("socket:[") : -1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


class _RefusingListener:
    """A listening socket whose ``accept`` closes the connections that ``refuse`` names."""

    def __init__(self, listener: socket.socket, refuse: Callable[[int], bool]) -> None:
        self._listener = listener
        self._refuse = refuse

    def accept(self) -> tuple[socket.socket, Any]:
        while True:
            client, peer = self._listener.accept()
            if not self._refuse(peer[1]):
                return client, peer
            client.close()

    def close(self) -> None:
        self._listener.close()


class ProcessCutProxy(TcpProxy):
    """A :class:`TcpProxy` that cuts one process off while every other client stays connected."""

    def __init__(self, target: tuple[str, int]) -> None:
        self._cut_pids: set[int] = set()
        super().__init__(target)

    def _accept(self) -> None:
        self._listener = _RefusingListener(self._listener, self._from_cut_process)  # type: ignore[assignment]
        super()._accept()

    def _from_cut_process(self, port: int) -> bool:
        return any(port in _socket_ports(pid) for pid in set(self._cut_pids))

    def cut_process(self, pid: int) -> None:
        """Close ``pid``'s connections through the proxy and refuse its new ones."""
        with self._lock:
            self._cut_pids.add(pid)
            ports = _socket_ports(pid)
            for sock in list(self._sockets):
                try:
                    peer_port = sock.getpeername()[1]
                except OSError:
                    continue
                if peer_port in ports:
                    sock.shutdown(socket.SHUT_RDWR)

    def restore_process(self, pid: int) -> None:
        with self._lock:
            self._cut_pids.discard(pid)


@pytest.fixture
def cuttable_broker(tmp_path: Path) -> Iterator[tuple[ProcessCutProxy, KafkaSettings]]:
    """A private Tansu that advertises the proxy's address, so every client goes through it."""
    with broker_behind(ProcessCutProxy, tmp_path / "tansu.log", "zombie") as (proxy, kafka):
        assert isinstance(proxy, ProcessCutProxy)
        yield proxy, kafka


def _episodes(n: int, steps: int = 3) -> list[Episode]:
    """Episodes of ``steps`` steps (three: each can be split across the cut, steps 0-1 | 2),
    each step with one reward, two thirds of them terminal."""
    return [
        Episode(f"z{i}", steps, {s: [float((i + s) % 5 - 2)] for s in range(steps)}, i % 3 != 0)
        for i in range(n)
    ]


def _log_steps(
    kafka: KafkaSettings, episodes: list[Episode], steps: range, spool: Path, *, end: bool
) -> None:
    """Log ``steps`` of every episode (as ``workload.log_episodes`` logs them, each decision
    with its rewards), then with ``end`` the episodes' ends."""
    with DecisionLogger(kafka=kafka, settings=SdkSettings(spool_dir=str(spool))) as logger:
        for i, ep in enumerate(episodes):
            for s in steps:
                log_step(logger, ep, i, s)
            if end:
                logger.end_episode(ep.episode_id, ep.terminal)
        logger.flush(60)


def _assignments(log_path: Path) -> list[set[int]]:
    """Every partition assignment the worker logging to ``log_path`` reported, in order."""
    text = log_path.read_text() if log_path.exists() else ""
    found = re.findall(r"sessionizer: assigned partitions \[([\d, ]*)\]", text)
    return [{int(p) for p in f.split(",") if p.strip()} for f in found]


def _wait_until(
    condition: Callable[[], bool],
    what: str,
    workers: tuple[subprocess.Popen, ...],
    timeout: float = 60.0,
) -> None:
    """Wait for ``condition``; fail at once if one of ``workers`` exits meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        assert all(w.poll() is None for w in workers), f"a worker exited before: {what}"
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout}s: {what}")


def _rows_in(table_uri: Path) -> int:
    try:
        return len(table_rows(table_uri))
    except AssertionError:  # no table yet
        return 0


def _wait_for_rows(table_uri: Path, rows: int, timeout: float) -> None:
    """Wait until the table holds ``rows`` rows, or ``timeout`` passed (the caller compares)."""
    deadline = time.monotonic() + timeout
    while _rows_in(table_uri) < rows and time.monotonic() < deadline:
        time.sleep(0.2)


def _stop(proc: subprocess.Popen, grace_s: float = 30.0) -> int:
    """SIGTERM, then SIGKILL if the process has not exited within ``grace_s``."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout=30)


def _split(a_log: Path, b_log: Path) -> bool:
    """Both workers' latest assignments divide the partitions between them."""
    a, b = _assignments(a_log)[-1:], _assignments(b_log)[-1:]
    return bool(a and b and a[0] and b[0]) and a[0] | b[0] == ALL_PARTITIONS and not a[0] & b[0]


def _cut_off_once_step_0_is_written(
    proxy: ProcessCutProxy,
    kafka: KafkaSettings,
    episodes: list[Episode],
    tmp_path: Path,
    a: subprocess.Popen,
    b: subprocess.Popen,
) -> float:
    """A and B share the partitions; steps 0 and 1 are logged and the rows of step 0 written
    (step 1 waits for its successor); then A is cut off until B owns every partition. Returns
    when the steps were logged (monotonic seconds)."""
    a_log, b_log = tmp_path / "a.log", tmp_path / "b.log"
    _wait_until(lambda: _split(a_log, b_log), "A and B share the partitions", (a, b))
    _log_steps(kafka, episodes, range(2), tmp_path / "spool", end=False)
    logged_at = time.monotonic()
    table_uri = tmp_path / "timeline"
    _wait_until(lambda: _rows_in(table_uri) == len(episodes), "the rows of step 0", (a, b))
    proxy.cut_process(a.pid)
    _wait_until(lambda: _assignments(b_log)[-1] == ALL_PARTITIONS, "B took A's partitions", (a, b))
    return logged_at


def _end_offsets(kafka: KafkaSettings) -> dict[int, int]:
    """Per partition of the events topic, the offset of its last record (-1: none)."""
    probe = KafkaConsumer(bootstrap_servers=kafka.bootstrap_servers)
    try:
        tps = [TopicPartition(kafka.events_topic, p) for p in sorted(ALL_PARTITIONS)]
        return {tp.partition: end - 1 for tp, end in probe.end_offsets(tps).items()}
    finally:
        probe.close()


def _recorded_offsets(table_uri: Path, kafka: KafkaSettings) -> dict[int, int]:
    """Per partition, the last offset the table records as processed (-1: none)."""
    try:
        table = DeltaTable(str(table_uri))
    except TableNotFoundError:
        return {p: -1 for p in ALL_PARTITIONS}
    found = {
        p: table.transaction_version(txn_app_id("g", kafka.events_topic, p)) for p in ALL_PARTITIONS
    }
    return {p: -1 if offset is None else offset for p, offset in found.items()}


def _fenced_while_cut_off(log_path: Path) -> bool:
    return "lost ownership of partition" in log_path.read_text()


def test_a_worker_cut_off_while_its_rows_wait_out_their_reward_window_is_fenced_when_it_writes(
    cuttable_broker: tuple[ProcessCutProxy, KafkaSettings], tmp_path: Path
) -> None:
    proxy, kafka = cuttable_broker
    episodes = _episodes(80, steps=2)
    table_uri = tmp_path / "timeline"
    a_log, b_log = tmp_path / "a.log", tmp_path / "b.log"
    window = ["--reward-window", str(ZOMBIE_REWARD_WINDOW_S)]
    a = start_worker(worker_command(kafka, table_uri, extra=window), a_log)
    b = start_worker(worker_command(kafka, table_uri, extra=window), b_log)
    try:
        _wait_until(lambda: _split(a_log, b_log), "A and B share the partitions", (a, b))
        _log_steps(kafka, episodes, range(2), tmp_path / "spool", end=True)
        logged_at = time.monotonic()
        last = _end_offsets(kafka)
        _wait_until(
            lambda: _recorded_offsets(table_uri, kafka) == last,
            "A and B committed the offsets of every event (their rows wait in the checkpoints)",
            (a, b),
        )
        assert _rows_in(table_uri) == 0, "rows were written before their reward window closed"
        proxy.cut_process(a.pid)
        _wait_until(
            lambda: _assignments(b_log)[-1] == ALL_PARTITIONS, "B took A's partitions", (a, b)
        )
        took_over_in = time.monotonic() - logged_at
        assert took_over_in < ZOMBIE_REWARD_WINDOW_S - TAKEOVER_MARGIN_S, (
            f"B took over {took_over_in:.1f}s after the events: A's reward windows may have "
            "closed while A still owned the partitions, so this run does not test a zombie"
        )

        # Quiet time closes the windows of A's rows: A, a zombie by now, tries to commit them.
        _wait_until(
            lambda: _fenced_while_cut_off(a_log),
            "A tried to write the rows of partitions B took, and was fenced",
            (a, b),
            timeout=ZOMBIE_REWARD_WINDOW_S + 15,
        )
        _wait_for_rows(table_uri, 2 * len(episodes), timeout=15.0)
        cut_off_assignments = len(_assignments(a_log))
        proxy.restore_process(a.pid)
        _wait_until(
            lambda: len(_assignments(a_log)) > cut_off_assignments and _split(a_log, b_log),
            "A rejoined the group and claimed partitions again",
            (a, b),
            timeout=90,
        )
    finally:
        for proc in (a, b):
            _stop(proc)

    assert table_rows(table_uri) == expected_rows(episodes)


def test_a_worker_stopped_while_cut_off_flushes_nothing_over_its_successor(
    cuttable_broker, tmp_path
):
    proxy, kafka = cuttable_broker
    episodes = _episodes(80)
    table_uri = tmp_path / "timeline"
    a_log = tmp_path / "a.log"
    # At exit A closes its open episodes as truncated and commits them: its last write.
    closing_flags = ["--until-idle", "3600", "--close-open-episodes"]
    a = start_worker(worker_command(kafka, table_uri, extra=closing_flags), a_log)
    b = start_worker(worker_command(kafka, table_uri), tmp_path / "b.log")
    try:
        _cut_off_once_step_0_is_written(proxy, kafka, episodes, tmp_path, a, b)
        # A flushes at once; then its Faust shutdown waits for the broker it cannot reach.
        _stop(a, grace_s=5.0)
        _log_steps(kafka, episodes, range(2, 3), tmp_path / "spool", end=True)
        _wait_for_rows(table_uri, 3 * len(episodes), timeout=20.0)
    finally:
        for proc in (a, b):
            _stop(proc)

    assert table_rows(table_uri) == expected_rows(episodes)
    zombie = a_log.read_text()
    assert "lost ownership" in zombie, "A never tried to write after B took its partitions"

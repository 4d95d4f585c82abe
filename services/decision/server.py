"""Running the service: the bind rule, the socket, and K worker processes under a supervisor.

Why a supervisor of our own rather than uvicorn's ``--workers``: each worker must know its
index (the episodes it owns, ``workers.py``) and listen on a private Unix socket besides the
shared TCP one, and a worker that dies (``kill -9``) must come back *with the same index*, so
that the episodes hashed to it have an owner again. The parent binds the TCP socket once,
forks the workers (the parent runs no thread and has imported neither torch nor a Kafka client,
so a fork copies nothing that a worker must not share; the socket is inherited), and restarts
any that exit until it is told to stop (SIGTERM or SIGINT: it stops every worker, which close
their loggers: what is not acknowledged goes to the spool). A new worker's logger adopts the
spool directory of the one it replaces (``services/sdk/spool_owner.py``) and sends what it left
first.
"""

from __future__ import annotations

import ipaddress
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from functools import partial
from pathlib import Path

from services.decision.app import ServiceConfig

__all__ = ["ServeRefused", "check_binding", "serve"]

log = logging.getLogger("policyloop.serve")


class ServeRefused(RuntimeError):
    """The configuration would expose the service in a way the settings do not allow."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def check_binding(config: ServiceConfig) -> None:
    """No API keys and not ``allow_unauthenticated``: only a loopback address may be bound."""
    settings = config.serve
    if config.keys or settings.allow_unauthenticated or _is_loopback(settings.host):
        return
    raise ServeRefused(
        f"refusing to serve on {settings.host} without API keys: set serve.api_keys_file or "
        "serve.api_keys_env (--api-keys-file, --api-keys-env), or pass --allow-unauthenticated "
        "if something in front of the service authenticates"
    )


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _worker_main(index: int, config: ServiceConfig, sock: socket.socket) -> None:
    """One worker process: its app on the shared socket and, with several, its own socket."""
    import uvicorn

    from services.decision.app import create_app

    settings = config.serve
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)
    import torch

    # One decision is a batch of one: a second intra-op thread only waits for a core that the
    # other workers, the event loop and the logger's sender need.
    torch.set_num_threads(1)
    sockets = [sock]
    if config.socket_dir is not None:
        path = Path(config.socket_dir) / f"worker-{index}.sock"
        path.unlink(missing_ok=True)
        private = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        private.bind(str(path))
        os.chmod(path, 0o600)
        private.listen(1024)
        sockets.append(private)
    password = settings.ssl_keyfile_password
    uv_config = uvicorn.Config(
        partial(create_app, config, index),
        factory=True,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        server_header=False,
        log_level=settings.log_level,
        ssl_certfile=settings.ssl_certfile,
        ssl_keyfile=settings.ssl_keyfile,
        ssl_keyfile_password=None if password is None else password.get_secret_value(),
        timeout_graceful_shutdown=10,
    )
    # uvicorn re-raises the SIGTERM or SIGINT it stopped on once it is done: after a graceful
    # stop, that is a normal exit (0), not death by a signal.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stopped)
    uvicorn.Server(uv_config).run(sockets=sockets)


def _stopped(signum: int, frame: object) -> None:
    raise SystemExit(0)


def serve(config: ServiceConfig) -> None:
    """Bind, then run one worker in this process or K under the supervisor, until stopped."""
    check_binding(config)
    settings = config.serve
    sock = _bind(settings.host, settings.port)
    scheme = "https" if settings.ssl_certfile else "http"
    log.info(
        "policyloop serve: %s://%s:%d, %d worker(s), durability %s, %s",
        scheme,
        settings.host,
        settings.port,
        settings.workers,
        settings.durability,
        "API keys required" if config.keys else "no API keys",
    )
    if settings.workers == 1:
        _worker_main(0, config, sock)
        return
    _Supervisor(config, sock).run()


class _Supervisor:
    """Keeps K workers alive, each with its index (see the module doc)."""

    def __init__(self, config: ServiceConfig, sock: socket.socket) -> None:
        self.config = config
        self.sock = sock
        self.stop = threading.Event()
        self.context = multiprocessing.get_context("fork")
        self.workers: dict[int, multiprocessing.process.BaseProcess] = {}

    def _start(self, index: int) -> None:
        process = self.context.Process(
            target=_worker_main,
            args=(index, self.config, self.sock),
            name=f"policyloop-serve-{index}",
        )
        process.start()
        self.workers[index] = process

    def run(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop.set())
        for index in range(self.config.serve.workers):
            self._start(index)
        while not self.stop.wait(0.2):
            for index, process in list(self.workers.items()):
                if not process.is_alive():
                    log.error(
                        "worker %d (pid %s) exited with %s; starting it again",
                        index,
                        process.pid,
                        process.exitcode,
                    )
                    self._start(index)
        for process in self.workers.values():
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for process in self.workers.values():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()

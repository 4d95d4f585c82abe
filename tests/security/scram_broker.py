"""A stand-in broker that knows one SCRAM user, for the login the real Tansu cannot show.

Why: the embedded Tansu cannot hold a user (``conftest.py``), so against it every login is
refused; that the right password gets in, and that a broker whose answers do not verify is
refused, can only be shown against a stand-in. It answers SaslHandshake, SaslAuthenticate and
Metadata with kafka-python's message classes; its side of SCRAM (RFC 5802) is written here
with ``hashlib``, apart from the client it tests (kafka-python's, through the check).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import secrets
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kafka.protocol.metadata import MetadataRequest, MetadataResponse
from kafka.protocol.sasl import (
    SaslAuthenticateRequest,
    SaslAuthenticateResponse,
    SaslHandshakeRequest,
    SaslHandshakeResponse,
)

__all__ = ["ScramBroker", "running_scram_broker"]

_APIS: dict[int, tuple[Any, Any]] = {
    SaslHandshakeRequest.API_KEY: (SaslHandshakeRequest, SaslHandshakeResponse),
    SaslAuthenticateRequest.API_KEY: (SaslAuthenticateRequest, SaslAuthenticateResponse),
    MetadataRequest.API_KEY: (MetadataRequest, MetadataResponse),
}
_SASL_AUTHENTICATION_FAILED = 58  # Kafka's error code
_ITERATIONS = 4096


@dataclass
class ScramBroker:
    """How the stand-in behaves: its user's password, and optionally how it misbehaves.

    ``server_final`` replaces the broker's last SCRAM message (its signature); ``foreign_nonce``
    makes its first message continue another client's nonce.
    """

    mechanism: str
    password: str
    server_final: bytes | None = None
    foreign_nonce: bool = False
    _salt: bytes = field(default_factory=lambda: secrets.token_bytes(16))

    def serve(self, conn: socket.socket) -> None:
        """Answer one client's requests until it hangs up."""
        exchange: dict[str, str] = {}
        with conn:
            while (head := _read(conn, 4)) is not None:
                body = _read(conn, struct.unpack(">i", head)[0])
                if body is None:
                    return
                api_key, version = struct.unpack_from(">hh", body)
                request_class, response_class = _APIS[api_key]
                request = request_class.decode(body, version=version, header=True)
                answer = self._answer(request, response_class[version], exchange)
                answer.with_header(correlation_id=request.header.correlation_id)
                conn.sendall(answer.encode(framed=True, header=True))

    def _answer(self, request: Any, response_class: Any, exchange: dict[str, str]) -> Any:
        if isinstance(request, SaslHandshakeRequest):
            return response_class(error_code=0, mechanisms=[self.mechanism])
        if isinstance(request, MetadataRequest):
            return response_class(brokers=[], controller_id=-1, topics=[])
        message = bytes(request.auth_bytes).decode()
        if not exchange:
            return self._server_first(response_class, message, exchange)
        return self._server_final(response_class, message, exchange)

    def _server_first(self, response_class: Any, message: str, exchange: dict[str, str]) -> Any:
        exchange["client_first_bare"] = message.removeprefix("n,,")
        client_nonce = dict(p.split("=", 1) for p in exchange["client_first_bare"].split(","))["r"]
        nonce = ("someone-else" if self.foreign_nonce else client_nonce) + secrets.token_hex(8)
        salt = base64.b64encode(self._salt).decode()
        exchange["server_first"] = f"r={nonce},s={salt},i={_ITERATIONS}"
        return _sasl_answer(response_class, exchange["server_first"].encode())

    def _server_final(self, response_class: Any, message: str, exchange: dict[str, str]) -> Any:
        without_proof, _, proof = message.rpartition(",p=")
        auth_message = ",".join(
            [exchange["client_first_bare"], exchange["server_first"], without_proof]
        ).encode()
        salted = hashlib.pbkdf2_hmac(self._hash, self.password.encode(), self._salt, _ITERATIONS)
        client_key = self._hmac(salted, b"Client Key")
        stored_key = hashlib.new(self._hash, client_key).digest()
        signature = self._hmac(stored_key, auth_message)
        claimed_key = bytes(a ^ b for a, b in zip(base64.b64decode(proof), signature, strict=True))
        if hashlib.new(self._hash, claimed_key).digest() != stored_key:
            return response_class(
                error_code=_SASL_AUTHENTICATION_FAILED,
                error_message=f"Authentication failed due to invalid credentials with SASL "
                f"mechanism {self.mechanism}",
                auth_bytes=b"",
            )
        server_signature = self._hmac(self._hmac(salted, b"Server Key"), auth_message)
        final = self.server_final
        if final is None:
            final = b"v=" + base64.b64encode(server_signature)
        return _sasl_answer(response_class, final)

    @property
    def _hash(self) -> str:
        return {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}[self.mechanism]

    def _hmac(self, key: bytes, message: bytes) -> bytes:
        return hmac.new(key, message, self._hash).digest()


def _sasl_answer(response_class: Any, auth_bytes: bytes) -> Any:
    return response_class(error_code=0, error_message=None, auth_bytes=auth_bytes)


def _read(conn: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


@contextlib.contextmanager
def running_scram_broker(broker: ScramBroker) -> Iterator[str]:
    """``host:port`` of ``broker`` listening on loopback until the block ends."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)  # so that the loop sees the block end
    ended = threading.Event()

    def accept() -> None:
        while not ended.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.settimeout(10)
            with contextlib.suppress(OSError):  # the client hung up or gave up
                broker.serve(conn)

    thread = threading.Thread(target=accept, name="scram-broker", daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}"
    finally:
        ended.set()
        thread.join(timeout=5)
        server.close()

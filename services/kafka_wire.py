"""The few Kafka requests the credential check sends, framed by hand.

Why by hand: the check must see each step's own outcome (TLS handshake, SASL handshake, each
SASL round, the first request after it) within one deadline, where a client library only
reports "unable to bootstrap" after its own retries. Only fixed, non-flexible versions are used,
which every broker since Kafka 1.0 answers: SaslHandshake v1, SaslAuthenticate v1, Metadata v1.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

__all__ = [
    "KafkaWire",
    "SaslAuthenticateAnswer",
    "WireError",
]

_SASL_HANDSHAKE, _SASL_AUTHENTICATE, _METADATA = 17, 36, 3
_MAX_RESPONSE = 16 << 20


class WireError(ConnectionError):
    """The broker closed the connection, or answered something that is not a Kafka answer."""


@dataclass(frozen=True)
class SaslAuthenticateAnswer:
    error_code: int
    error_message: str | None
    auth_bytes: bytes


def _string(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack(">h", len(data)) + data


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data, self._at = data, 0

    def take(self, fmt: str) -> int:
        try:
            (value,) = struct.unpack_from(fmt, self._data, self._at)
        except struct.error:
            raise WireError("the broker's answer is cut short") from None
        self._at += struct.calcsize(fmt)
        return int(value)

    def string(self) -> str | None:
        size = self.take(">h")
        if size < 0:
            return None
        text = self._data[self._at : self._at + size].decode("utf-8", "replace")
        self._at += size
        return text

    def blob(self) -> bytes:
        size = max(self.take(">i"), 0)
        data = self._data[self._at : self._at + size]
        self._at += size
        return data


class KafkaWire:
    """Requests and responses over one connected (and, for TLS, wrapped) socket."""

    def __init__(self, sock: socket.socket, client_id: str = "policyloop-check") -> None:
        self._sock = sock
        self._client_id = _string(client_id)
        self._correlation = 0

    def sasl_handshake(self, mechanism: str) -> tuple[int, list[str]]:
        """The broker's error code and the mechanisms it offers."""
        reader = self._call(_SASL_HANDSHAKE, 1, _string(mechanism))
        error_code = reader.take(">h")
        offered = [reader.string() or "" for _ in range(max(reader.take(">i"), 0))]
        return error_code, offered

    def sasl_authenticate(self, auth_bytes: bytes) -> SaslAuthenticateAnswer:
        reader = self._call(_SASL_AUTHENTICATE, 1, struct.pack(">i", len(auth_bytes)) + auth_bytes)
        error_code = reader.take(">h")
        return SaslAuthenticateAnswer(error_code, reader.string(), reader.blob())

    def metadata(self) -> None:
        """Ask for the brokers (no topics): proof that the session is usable."""
        self._call(_METADATA, 1, struct.pack(">i", 0))

    def _call(self, api_key: int, version: int, body: bytes) -> _Reader:
        self._correlation += 1
        header = struct.pack(">hhi", api_key, version, self._correlation) + self._client_id
        request = header + body
        self._sock.sendall(struct.pack(">i", len(request)) + request)
        size = struct.unpack(">i", self._receive(4))[0]
        if not 4 <= size <= _MAX_RESPONSE:
            raise WireError(f"the answer has an impossible size ({size} bytes)")
        data = self._receive(size)
        if struct.unpack_from(">i", data)[0] != self._correlation:
            raise WireError("the answer is not to our request")
        return _Reader(data[4:])

    def _receive(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self._sock.recv(n - len(data))
            if not chunk:
                raise WireError("the broker closed the connection")
            data += chunk
        return data

"""kafka-python's request and response messages, carried over one blocking socket.

Why this module: the credential check (:mod:`services.kafka_access`) must see each step's own
outcome (TLS handshake, SASL handshake, each SASL round, the first request after it) within one
deadline, where a client library only reports "unable to bootstrap" after its own retries. The
messages themselves are kafka-python's (``kafka.protocol``, generated from Apache Kafka's
message schemas): they encode the request with its header and size prefix, and decode the
answer and its header. This module only moves those bytes over a socket the check has already
connected (and, for TLS, wrapped), and checks that each answer is to the request just sent.

Why not kafka-python's own ``KafkaProtocol`` for that: it logs every request's repr at DEBUG,
and a ``SaslAuthenticateRequest``'s repr holds a PLAIN password. Only fixed, non-flexible
versions are sent, which every broker since Kafka 1.0 answers: SaslHandshake v1,
SaslAuthenticate v1, Metadata v1.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import Any

from kafka.protocol.metadata import MetadataRequest, MetadataResponse
from kafka.protocol.sasl import (
    SaslAuthenticateRequest,
    SaslAuthenticateResponse,
    SaslHandshakeRequest,
    SaslHandshakeResponse,
)

__all__ = ["KafkaWire", "SaslAuthenticateAnswer", "WireError"]

_VERSION = 1  # of each request sent here; see the module's docstring
_SIZE_BYTES = 4  # every Kafka answer starts with its size, a big-endian int32
_MAX_RESPONSE = 16 << 20


class WireError(ConnectionError):
    """The broker closed the connection, or answered something that is not a Kafka answer."""


@dataclass(frozen=True)
class SaslAuthenticateAnswer:
    """One SASL round's answer: Kafka's error code and message, and the mechanism's bytes."""

    error_code: int
    error_message: str | None
    auth_bytes: bytes


class KafkaWire:
    """Requests and their answers, one at a time, over one connected socket."""

    def __init__(self, sock: socket.socket, client_id: str = "policyloop-check") -> None:
        self._sock = sock
        self._client_id = client_id
        self._correlation = 0

    def sasl_handshake(self, mechanism: str) -> tuple[int, list[str]]:
        """The broker's error code and the mechanisms it offers."""
        request = SaslHandshakeRequest[_VERSION](mechanism=mechanism)
        answer = self._call(request, SaslHandshakeResponse)
        return int(answer.error_code), [str(m) for m in answer.mechanisms or []]

    def sasl_authenticate(self, auth_bytes: bytes) -> SaslAuthenticateAnswer:
        """One round of the SASL exchange: our mechanism's bytes out, the broker's back."""
        request = SaslAuthenticateRequest[_VERSION](auth_bytes=auth_bytes)
        answer = self._call(request, SaslAuthenticateResponse)
        return SaslAuthenticateAnswer(
            int(answer.error_code), answer.error_message, bytes(answer.auth_bytes or b"")
        )

    def metadata(self) -> None:
        """Ask for the brokers (no topics): proof that the session is usable."""
        self._call(MetadataRequest[_VERSION](topics=[]), MetadataResponse)

    def _call(self, request: Any, response_class: Any) -> Any:
        self._correlation += 1
        request.with_header(correlation_id=self._correlation, client_id=self._client_id)
        self._sock.sendall(request.encode(framed=True, header=True))
        (size,) = struct.unpack(">i", self._receive(_SIZE_BYTES))
        if not _SIZE_BYTES <= size <= _MAX_RESPONSE:
            raise WireError(f"the answer has an impossible size ({size} bytes)")
        data = self._receive(size)
        try:
            answer = response_class.decode(data, version=_VERSION, header=True)
        except (ValueError, struct.error, IndexError):  # what kafka-python's own parser catches
            raise WireError("the broker's answer is not a Kafka answer") from None
        if answer.header.correlation_id != self._correlation:
            raise WireError("the answer is not to our request")
        return answer

    def _receive(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self._sock.recv(n - len(data))
            if not chunk:
                raise WireError("the broker closed the connection")
            data += chunk
        return data

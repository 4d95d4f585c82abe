"""The client side of a SASL SCRAM exchange (RFC 5802; SCRAM-SHA-256/512 as Kafka uses them).

Why our own: the credential check (:mod:`services.kafka_access`) must tell "the broker refused
this password" apart from "the broker is away", which the client libraries do not; it runs the
exchange itself, and this module holds the arithmetic. Channel binding is not used (``n,,``),
as in every Kafka client.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

__all__ = ["ScramClient", "ScramError"]

_HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
_MAX_ITERATIONS = 1_000_000  # a broker asking for more is broken or hostile


class ScramError(ValueError):
    """The broker's SCRAM messages are malformed, refuse us, or fail verification."""


def _escape(name: str) -> str:
    return name.replace("=", "=3D").replace(",", "=2C")


def _b64(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ScramError("the broker's SCRAM message holds malformed base64") from None


def _fields(message: bytes) -> dict[str, str]:
    try:
        text = message.decode("utf-8")
    except UnicodeDecodeError:
        raise ScramError("the broker's SCRAM message is not UTF-8") from None
    return dict(part.split("=", 1) for part in text.split(",") if "=" in part)


class ScramClient:
    """One exchange: :meth:`first`, then :meth:`final` with the broker's first message, then
    :meth:`verify` with its final message (which proves the broker knows the password too)."""

    def __init__(self, mechanism: str, user: str, password: str, nonce: str | None = None) -> None:
        if mechanism not in _HASHES:
            raise ValueError(f"{mechanism}: not a SCRAM mechanism ({', '.join(_HASHES)})")
        self._hash = _HASHES[mechanism]
        self._password = password.encode("utf-8")
        self._nonce = nonce or secrets.token_urlsafe(24)
        self._first_bare = f"n={_escape(user)},r={self._nonce}"
        self._server_signature = b""

    def first(self) -> bytes:
        """The client-first message."""
        return f"n,,{self._first_bare}".encode()

    def final(self, server_first: bytes) -> bytes:
        """The client-final message (with the proof) for the broker's first message."""
        fields = _fields(server_first)
        if "e" in fields:
            raise ScramError(f"the broker refused the login: {fields['e']}")
        nonce, salt, iterations = fields.get("r", ""), fields.get("s"), fields.get("i", "")
        if not nonce.startswith(self._nonce) or salt is None or not iterations.isdigit():
            raise ScramError("the broker's first SCRAM message is malformed")
        if not 0 < int(iterations) <= _MAX_ITERATIONS:
            raise ScramError(f"the broker asks for {iterations} SCRAM iterations")
        salted = hashlib.pbkdf2_hmac(self._hash, self._password, _b64(salt), int(iterations))
        without_proof = f"c=biws,r={nonce}"
        auth_message = f"{self._first_bare},{server_first.decode()},{without_proof}".encode()
        client_key = self._hmac(salted, b"Client Key")
        signature = self._hmac(hashlib.new(self._hash, client_key).digest(), auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        self._server_signature = self._hmac(self._hmac(salted, b"Server Key"), auth_message)
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify(self, server_final: bytes) -> None:
        """Raise :class:`ScramError` unless the broker's final message carries its signature."""
        fields = _fields(server_final)
        if "e" in fields:
            raise ScramError(f"the broker refused the login: {fields['e']}")
        if "v" not in fields:
            raise ScramError("the broker ended the SCRAM exchange without its signature")
        if not hmac.compare_digest(_b64(fields["v"]), self._server_signature):
            raise ScramError("the broker's SCRAM signature does not match this password")

    def _hmac(self, key: bytes, message: bytes) -> bytes:
        return hmac.new(key, message, self._hash).digest()

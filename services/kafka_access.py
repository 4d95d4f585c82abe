"""A bounded check, before a client starts, that the broker accepts our TLS and SASL settings.

Why: kafka-python, aiokafka and Faust treat an untrusted certificate or a refused password like
a broker that is away. kafka-python retries until its bootstrap timeout and then says "unable
to bootstrap"; Faust retries forever; neither says which setting is wrong. A wrong password is
a configuration error, so every part runs :func:`check_credentials` first: it connects to the
first broker that answers, does the TLS handshake and the SASL login itself, within one
deadline, and raises a :class:`~services.kafka_errors.KafkaAccessError` naming the broker and
the setting to fix. Messages never contain the password.

What it does not judge: a broker that does not answer at all is an outage, not a credentials
problem; the check returns and leaves it to the client's own timeouts (and the SDK's spool).
``PLAINTEXT`` has nothing to check: the call returns at once without connecting.

How, and why with kafka-python's pieces but not its connection: the login is kafka-python's own
SASL mechanism (``kafka.net.sasl``: the PLAIN and SCRAM code its clients log in with, so the
check passes exactly what they will pass) and its request classes (:mod:`services.kafka_wire`);
the TLS handshake is Python's, with the context the clients get (:mod:`services.kafka_tls`).
kafka-python's ``KafkaConnection`` runs only inside its connection manager's event loop, whose
bootstrap logs each failed attempt and retries until its timeout: the very behaviour this check
exists to avoid.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from typing import NoReturn

from kafka.net.sasl import get_sasl_mechanism

from services.kafka_errors import KafkaAccessError, KafkaAuthenticationError, KafkaTlsError
from services.kafka_settings import KafkaSettings
from services.kafka_tls import client_ssl_context
from services.kafka_wire import KafkaWire, WireError

__all__ = ["check_credentials"]

_UNSUPPORTED_SASL_MECHANISM = 33  # Kafka's error code
_MAX_SASL_ROUNDS = 4  # PLAIN takes one, SCRAM two: more is a broker that never finishes
_SCRAM_SERVER_ERROR = b"e="  # RFC 5802: a refusal inside the SCRAM exchange
_CAFILE_HINT = "kafka.ssl_cafile (POLICYLOOP_KAFKA__SSL_CAFILE)"
_LOGIN_HINT = (
    "Check kafka.sasl_plain_username, kafka.sasl_plain_password and kafka.sasl_mechanism "
    "(POLICYLOOP_KAFKA__SASL_PLAIN_USERNAME, POLICYLOOP_KAFKA__SASL_PLAIN_PASSWORD, "
    "POLICYLOOP_KAFKA__SASL_MECHANISM)"
)


def check_credentials(kafka: KafkaSettings, timeout_s: float = 10.0) -> None:
    """Raise :class:`KafkaTlsError` or :class:`KafkaAuthenticationError` if the first broker of
    ``kafka.bootstrap_servers`` that accepts a connection refuses our TLS or SASL settings.

    Bounded by ``timeout_s`` in all; raises :class:`KafkaAccessError` if that broker stops
    answering half-way through.
    """
    if kafka.security_protocol == "PLAINTEXT":
        return
    deadline = time.monotonic() + timeout_s
    for address in (s.strip() for s in kafka.bootstrap_servers.split(",")):
        host, _, port = address.rpartition(":")
        host = host.strip("[]")
        try:
            sock = socket.create_connection((host, int(port)), timeout=_left(deadline))
        except (OSError, ValueError):
            continue  # away (or not an address): the next one, else the client's own waiting
        with contextlib.closing(sock):
            _Check(kafka, address, host, deadline).run(sock)
        return


def _left(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.01)


class _Check:
    """One broker: TLS handshake, SASL login, one request; each failure named by its step."""

    def __init__(self, kafka: KafkaSettings, address: str, host: str, deadline: float) -> None:
        self.kafka, self.address, self.host, self.deadline = kafka, address, host, deadline
        secret = kafka.sasl_plain_password
        self._password = "" if secret is None else secret.get_secret_value()

    def run(self, sock: socket.socket) -> None:
        sock.settimeout(_left(self.deadline))
        if self.kafka.security_protocol in ("SSL", "SASL_SSL"):
            sock = self._tls(sock)  # the TLS socket takes over the connection
        with contextlib.closing(sock):
            self._converse(KafkaWire(sock))

    def _converse(self, wire: KafkaWire) -> None:
        if self.kafka.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
            self._login(wire)
        try:
            wire.metadata()
        except WireError:
            raise KafkaAuthenticationError(
                self.address,
                f"the broker at {self.address} closed the connection at the first request "
                f"after connecting with security_protocol={self.kafka.security_protocol}: it "
                "requires another protocol (SASL?) or refuses this client. Set "
                "kafka.security_protocol (POLICYLOOP_KAFKA__SECURITY_PROTOCOL)",
            ) from None
        except OSError as exc:
            raise self._stalled("the first request", exc) from None

    def _tls(self, sock: socket.socket) -> ssl.SSLSocket:
        try:
            context = client_ssl_context(self.kafka)
        except (OSError, ssl.SSLError) as exc:
            k = self.kafka
            raise KafkaTlsError(
                self.address,
                f"cannot read the TLS files for the broker at {self.address} ({exc}; "
                f"ssl_cafile={k.ssl_cafile}, ssl_certfile={k.ssl_certfile}, "
                f"ssl_keyfile={k.ssl_keyfile}): fix {_CAFILE_HINT}, kafka.ssl_certfile and "
                "kafka.ssl_keyfile",
            ) from None
        assert context is not None  # SSL or SASL_SSL
        try:
            return context.wrap_socket(sock, server_hostname=self.host)
        except ssl.SSLCertVerificationError as exc:
            raise KafkaTlsError(
                self.address,
                f"TLS verification of the broker at {self.address} failed: certificate verify "
                f"failed: {exc.verify_message}. This client does not trust the broker's "
                f"certificate (or it names another host than {self.host}): set {_CAFILE_HINT} "
                "to the CA certificate that signed it",
            ) from None
        except (ssl.SSLError, OSError) as exc:
            raise KafkaTlsError(
                self.address,
                f"the TLS handshake with the broker at {self.address} failed "
                f"({type(exc).__name__}: {exc}): does it listen with TLS there? Check "
                "kafka.security_protocol (POLICYLOOP_KAFKA__SECURITY_PROTOCOL)",
            ) from None

    def _login(self, wire: KafkaWire) -> None:
        mechanism = self.kafka.sasl_mechanism or "PLAIN"
        try:
            error_code, offered = wire.sasl_handshake(mechanism)
            if error_code == _UNSUPPORTED_SASL_MECHANISM:
                others = [m for m in offered if m != mechanism]  # some brokers echo ours
                listed = f"; it offers {', '.join(others)}" if others else ""
                self._refused(f"it does not offer {mechanism} here{listed}")
            if error_code:
                self._refused(f"its SASL handshake answered Kafka error code {error_code}")
            self._authenticate(wire, mechanism)
        except WireError as exc:
            self._refused(f"{exc} during the login")
        except OSError as exc:
            raise self._stalled("the SASL login", exc) from None

    def _authenticate(self, wire: KafkaWire, mechanism: str) -> None:
        """The SASL rounds, made by kafka-python's own mechanism: the one its clients use.

        Its SCRAM client raises ``KeyError`` for a field missing from the broker's message
        (``'v'``: a final message without the broker's signature) and ``ValueError`` for a
        message that does not verify (a foreign nonce, a wrong signature). It does not read
        RFC 5802's server-error (``e=<reason>``, how a broker may refuse in SCRAM's own terms):
        it would say "no 'v'", so the reason is read here first.
        """
        login = get_sasl_mechanism(mechanism)(
            host=self.host,
            sasl_mechanism=mechanism,
            sasl_plain_username=self.kafka.sasl_plain_username or "",
            sasl_plain_password=self._password,
        )
        for _ in range(_MAX_SASL_ROUNDS):
            if login.is_done():
                break
            answer = wire.sasl_authenticate(login.auth_bytes())
            if answer.error_code:
                self._refused(answer.error_message or f"error code {answer.error_code}")
            if answer.auth_bytes.startswith(_SCRAM_SERVER_ERROR):  # e.g. Tansu's unknown-user
                reason = answer.auth_bytes.removeprefix(_SCRAM_SERVER_ERROR)
                self._refused(f"the broker refused the login: {reason.decode(errors='replace')}")
            try:
                login.receive(answer.auth_bytes)
            except KeyError as exc:
                self._refused(f"the broker's {mechanism} message lacks its '{exc.args[0]}' field")
            except ValueError as exc:  # UnicodeDecodeError and binascii.Error are ValueErrors
                self._refused(f"the broker's {mechanism} message does not verify: {exc}")
        if not login.is_authenticated():
            self._refused(f"the broker did not complete the {mechanism} exchange")

    def _refused(self, detail: str) -> NoReturn:
        user = self.kafka.sasl_plain_username
        mechanism = self.kafka.sasl_mechanism or "PLAIN"
        if self._password:
            detail = detail.replace(self._password, "***")
        raise KafkaAuthenticationError(
            self.address,
            f"SASL authentication failed at the broker {self.address}: it refused user "
            f"'{user}' with {mechanism} ({detail}). {_LOGIN_HINT}",
        ) from None  # the cause is in the message; a chained traceback adds only noise

    def _stalled(self, step: str, exc: OSError) -> KafkaAccessError:
        return KafkaAccessError(
            self.address,
            f"the broker at {self.address} stopped answering during {step} "
            f"({type(exc).__name__}: {exc})",
        )

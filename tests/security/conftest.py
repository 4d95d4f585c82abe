"""Brokers for the security tests: real Tansu behind a TLS front, and Tansu requiring SASL.

* ``tls_broker``: clients speak TLS (certificate signed by the throwaway CA of ``certs``) to a
  TLS front that hands the bytes to a real Tansu, which advertises the front's address. Why a
  front: see ``tests/security/tls_front.py``.
* ``sasl_brokers``: Tansu started with ``--authentication`` (SCRAM-SHA-256/512), once as is
  (``SASL_PLAINTEXT``) and once behind a TLS front (``SASL_SSL``). This Tansu build keeps users
  in memory and creates them only over an authenticated connection, so no user can ever exist:
  every login is refused, which is what the refusal tests need (see
  ``tests/broker/test_tansu_security_support.py``).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.broker.embedded import find_free_port
from services.kafka_settings import KafkaSettings
from services.kafka_topics import ensure_topics
from tests.security.certs import TestCertificates, make_certificates
from tests.security.tansu import running_tansu
from tests.security.tls_front import TlsFront

#: Far longer than a local refusal takes, far shorter than a client's own retry timeouts.
REFUSED_WITHIN_S = 15.0
#: The same for a whole command: starting the interpreter and importing Faust come on top.
COMMAND_REFUSED_WITHIN_S = 60.0
#: A password that must never show up in a log line, an error, a repr or a metric.
SECRET = "s3cr3t-Hunter2-do-not-log"


@dataclass(frozen=True)
class SaslBrokers:
    """Addresses of the broker requiring SASL: without TLS, and behind a TLS front."""

    plaintext: str
    tls: str


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> TestCertificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@contextlib.contextmanager
def _tansu_behind_tls(
    certs: TestCertificates, log: Path, *, authentication: bool = False
) -> Iterator[str]:
    front_port = find_free_port()
    with running_tansu(log, advertised_port=front_port, authentication=authentication) as port:
        front = TlsFront(certs.server_cert, certs.server_key, ("127.0.0.1", port), front_port)
        front.start()
        try:
            yield front.address
        finally:
            front.close()


@pytest.fixture(scope="session")
def tls_broker(certs: TestCertificates, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a real broker reachable only through TLS."""
    log = tmp_path_factory.mktemp("tls-broker") / "tansu.log"
    with _tansu_behind_tls(certs, log) as address:
        yield address


@pytest.fixture(scope="session")
def sasl_brokers(
    certs: TestCertificates, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SaslBrokers]:
    home = tmp_path_factory.mktemp("sasl-brokers")
    with (
        running_tansu(home / "plain.log", authentication=True) as port,
        _tansu_behind_tls(certs, home / "tls.log", authentication=True) as tls_address,
    ):
        yield SaslBrokers(plaintext=f"127.0.0.1:{port}", tls=tls_address)


@pytest.fixture
def tls_kafka(tls_broker: str, certs: TestCertificates) -> KafkaSettings:
    """Settings of a client that trusts the broker's CA; its topics exist already."""
    kafka = KafkaSettings(
        bootstrap_servers=tls_broker,
        topic_prefix=f"t{uuid.uuid4().hex[:12]}",
        partitions=2,
        security_protocol="SSL",
        ssl_cafile=str(certs.ca),
    )
    ensure_topics(kafka)
    return kafka


@pytest.fixture
def untrusting_kafka(tls_kafka: KafkaSettings, certs: TestCertificates) -> KafkaSettings:
    """The same broker and topics, from a client that trusts another CA only."""
    return tls_kafka.model_copy(update={"ssl_cafile": str(certs.other_ca)})


def sasl_settings(address: str, *, tls: bool, certs: TestCertificates) -> KafkaSettings:
    """Settings of a client that logs in with SCRAM-SHA-512 and the wrong password ``SECRET``."""
    options: dict[str, object] = {
        "bootstrap_servers": address,
        "topic_prefix": f"t{uuid.uuid4().hex[:12]}",
        "security_protocol": "SASL_SSL" if tls else "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "policyloop",
        "sasl_plain_password": SECRET,
    }
    if tls:
        options["ssl_cafile"] = str(certs.ca)
    return KafkaSettings.model_validate(options)


@pytest.fixture(params=["SASL_PLAINTEXT", "SASL_SSL"])
def wrong_password_kafka(
    request: pytest.FixtureRequest, sasl_brokers: SaslBrokers, certs: TestCertificates
) -> KafkaSettings:
    """A client with the wrong password (SCRAM-SHA-512), without and with TLS."""
    tls = request.param == "SASL_SSL"
    return sasl_settings(sasl_brokers.tls if tls else sasl_brokers.plaintext, tls=tls, certs=certs)

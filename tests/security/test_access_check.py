"""``check_credentials``: the bounded check every part runs before its Kafka client starts.

It answers one question quickly and precisely: does the first broker that answers accept this
client's TLS and SASL settings? Refusals name the broker, the step and the setting to fix, never
the password; a broker that is simply away is left to the client (an outage, not a
configuration error). The SCRAM login (kafka-python's, as its clients make it) is shown passing
and refusing against a stand-in broker (``scram_broker.py``), since the embedded broker cannot
hold a user to log in with (``conftest.py``).
"""

from __future__ import annotations

import time

import pytest

from services.broker.embedded import find_free_port
from services.kafka_access import check_credentials
from services.kafka_errors import KafkaAuthenticationError, KafkaTlsError
from services.kafka_settings import KafkaSettings
from tests.security.conftest import REFUSED_WITHIN_S, SECRET, sasl_settings
from tests.security.scram_broker import ScramBroker, running_scram_broker


def _scram_login(address: str, mechanism: str, password: str) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=address,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism=mechanism,
        sasl_plain_username="policyloop",
        sasl_plain_password=password,
    )


def _check_against(broker: ScramBroker, password: str = SECRET) -> None:
    with running_scram_broker(broker) as address:
        check_credentials(_scram_login(address, broker.mechanism, password), timeout_s=5)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_the_right_scram_password_passes(mechanism):
    _check_against(ScramBroker(mechanism, password=SECRET))


def test_a_wrong_scram_password_is_refused_naming_the_user_and_mechanism():
    with pytest.raises(KafkaAuthenticationError) as refused:
        _check_against(ScramBroker("SCRAM-SHA-256", password="another"), password=SECRET)
    assert "user 'policyloop' with SCRAM-SHA-256" in str(refused.value)
    assert "invalid credentials" in str(refused.value)
    assert SECRET not in str(refused.value)


@pytest.mark.parametrize(
    ("server_final", "detail"),
    [
        (b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "does not verify"),
        (b"e=invalid-proof", "the broker refused the login: invalid-proof"),
        (b"", "does not verify"),
    ],
)
def test_a_broker_that_does_not_prove_the_password_is_refused(server_final, detail):
    impostor = ScramBroker("SCRAM-SHA-256", password=SECRET, server_final=server_final)
    with pytest.raises(KafkaAuthenticationError) as refused:
        _check_against(impostor)
    assert detail in str(refused.value)


def test_a_server_nonce_that_is_not_ours_is_refused():
    impostor = ScramBroker("SCRAM-SHA-256", password=SECRET, foreign_nonce=True)
    with pytest.raises(KafkaAuthenticationError) as refused:
        _check_against(impostor)
    assert "does not verify" in str(refused.value)


def test_plaintext_has_nothing_to_check():
    nowhere = KafkaSettings(bootstrap_servers=f"127.0.0.1:{find_free_port()}")
    check_credentials(nowhere)


def test_a_broker_that_is_away_is_left_to_the_client():
    away = KafkaSettings(bootstrap_servers=f"127.0.0.1:{find_free_port()}", security_protocol="SSL")
    started = time.monotonic()
    check_credentials(away)
    assert time.monotonic() - started < REFUSED_WITHIN_S


@pytest.mark.integration
def test_a_trusted_certificate_passes(tls_kafka):
    check_credentials(tls_kafka)


@pytest.mark.integration
def test_an_untrusted_certificate_is_refused_naming_the_broker_and_the_setting(untrusting_kafka):
    started = time.monotonic()
    with pytest.raises(KafkaTlsError) as refused:
        check_credentials(untrusting_kafka)
    assert time.monotonic() - started < REFUSED_WITHIN_S
    message = str(refused.value)
    assert refused.value.broker == untrusting_kafka.bootstrap_servers
    assert f"TLS verification of the broker at {untrusting_kafka.bootstrap_servers}" in message
    assert "unable to get local issuer certificate" in message
    assert "POLICYLOOP_KAFKA__SSL_CAFILE" in message


@pytest.mark.integration
def test_a_wrong_password_is_refused_naming_the_broker_user_and_mechanism(wrong_password_kafka):
    started = time.monotonic()
    with pytest.raises(KafkaAuthenticationError) as refused:
        check_credentials(wrong_password_kafka)
    assert time.monotonic() - started < REFUSED_WITHIN_S
    message = str(refused.value)
    assert f"failed at the broker {wrong_password_kafka.bootstrap_servers}" in message
    assert "user 'policyloop' with SCRAM-SHA-512" in message
    assert "the broker refused the login: unknown-user" in message  # Tansu's SCRAM reason
    assert SECRET not in message and SECRET not in repr(refused.value)


@pytest.mark.integration
def test_a_mechanism_the_broker_does_not_offer_is_refused(sasl_brokers, certs):
    plain = sasl_settings(sasl_brokers.plaintext, tls=False, certs=certs)
    with pytest.raises(KafkaAuthenticationError) as refused:
        check_credentials(plain.model_copy(update={"sasl_mechanism": "PLAIN"}))
    assert "with PLAIN" in str(refused.value)


@pytest.mark.integration
def test_tls_without_sasl_at_a_broker_that_requires_sasl_is_refused(sasl_brokers, certs):
    tls_only = KafkaSettings(
        bootstrap_servers=sasl_brokers.tls, security_protocol="SSL", ssl_cafile=str(certs.ca)
    )
    with pytest.raises(KafkaAuthenticationError) as refused:
        check_credentials(tls_only)
    assert "POLICYLOOP_KAFKA__SECURITY_PROTOCOL" in str(refused.value)


@pytest.mark.integration
def test_sasl_at_a_broker_that_does_not_take_sasl_is_refused(tls_kafka):
    sasl = KafkaSettings.model_validate(
        {
            **tls_kafka.model_dump(),
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-256",
            "sasl_plain_username": "policyloop",
            "sasl_plain_password": SECRET,
        }
    )
    with pytest.raises(KafkaAuthenticationError) as refused:
        check_credentials(sasl)
    assert "SCRAM-SHA-256" in str(refused.value)


@pytest.mark.integration
def test_tls_at_a_broker_without_tls_is_refused_within_the_deadline(sasl_brokers, certs):
    tls_to_plain = sasl_settings(sasl_brokers.plaintext, tls=True, certs=certs)
    started = time.monotonic()
    with pytest.raises(KafkaTlsError) as refused:
        check_credentials(tls_to_plain, timeout_s=3)
    assert time.monotonic() - started < REFUSED_WITHIN_S
    assert "does it listen with TLS there?" in str(refused.value)

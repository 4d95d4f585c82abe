"""The Kafka password is a secret: it reaches the client libraries and nothing else.

Not its repr, not the settings printed or logged, not their JSON form; and settings that cannot
log in at all (a SASL protocol without a user or password) are refused when they are read,
naming the setting, instead of failing later at the broker.
"""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from services.cli.settings import load_settings
from services.kafka_settings import KafkaSettings
from services.sessionizer.faust_app import broker_credentials
from tests.security.conftest import SECRET


def _sasl(**extra: object) -> KafkaSettings:
    options: dict[str, object] = {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "policyloop",
        "sasl_plain_password": SECRET,
    }
    return KafkaSettings.model_validate({**options, **extra})


def test_the_password_is_not_in_the_settings_repr_str_or_json():
    kafka = _sasl()
    for text in (repr(kafka), str(kafka), kafka.model_dump_json(), f"{kafka!r}"):
        assert SECRET not in text


def test_the_password_is_not_in_a_log_line_that_prints_the_settings(caplog):
    caplog.set_level(logging.INFO)
    logging.getLogger("policyloop.test").info("kafka settings: %s / %r", _sasl(), _sasl())
    assert "kafka settings" in caplog.text
    assert SECRET not in caplog.text


def test_the_password_from_the_environment_is_not_in_the_whole_settings_repr(monkeypatch):
    monkeypatch.setenv("POLICYLOOP_KAFKA__SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("POLICYLOOP_KAFKA__SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("POLICYLOOP_KAFKA__SASL_PLAIN_USERNAME", "policyloop")
    monkeypatch.setenv("POLICYLOOP_KAFKA__SASL_PLAIN_PASSWORD", SECRET)
    settings = load_settings()
    assert SECRET not in repr(settings)
    assert SECRET not in settings.model_dump_json()
    assert settings.kafka.client_options()["sasl_plain_password"] == SECRET


def test_the_client_libraries_get_the_password_itself():
    options = _sasl().client_options()
    assert options["sasl_plain_password"] == SECRET
    assert options["sasl_plain_username"] == "policyloop"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert broker_credentials(_sasl(ssl_cafile=None)).password == SECRET


@pytest.mark.parametrize("missing", ["sasl_plain_username", "sasl_plain_password"])
def test_a_sasl_protocol_without_a_user_or_password_is_refused_naming_the_setting(missing):
    with pytest.raises(ValidationError) as refused:
        _sasl(**{missing: None})
    assert missing in str(refused.value)
    assert f"POLICYLOOP_KAFKA__{missing.upper()}" in str(refused.value)


def test_an_unknown_sasl_mechanism_is_refused():
    with pytest.raises(ValidationError) as refused:
        _sasl(sasl_mechanism="SCRAM-SHA-1")
    assert "sasl_mechanism" in str(refused.value)


def test_kafka_pythons_debug_dump_of_the_admin_options_is_not_logged(caplog):
    import services.kafka_topics  # noqa: F401 - installs the filter on kafka-python's logger

    caplog.set_level(logging.DEBUG)
    options = {"bootstrap_servers": "b:9093", "sasl_plain_password": SECRET}
    logging.getLogger("kafka.admin.client").debug(
        "Starting KafkaAdminClient with configuration: %s", options
    )
    assert SECRET not in caplog.text

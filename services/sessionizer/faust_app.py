"""The Faust app that hosts a sessionizer worker: its configuration, nothing else.

Why these settings (each departs from a Faust default for the exactly-once design of
``worker.py``):

* ``value_serializer="raw"`` / ``key_serializer="raw"``: records are MessagePack event batches
  that the pure sessionizer decodes and validates itself, so a bad record becomes a dead letter
  with a reason instead of a Faust decode error.
* ``table_standby_replicas=0`` and no Faust tables: episode state lives in msgpack checkpoints
  recorded in the same Delta commit as the rows (``checkpoint.py``); a changelog topic could
  not be made atomic with that commit. With no tables and no standbys Faust uses aiokafka's
  round-robin assignor and needs no internal topics.
* ``topic_disable_leader=True`` / ``topic_allow_declare=False``: no ``__assignor-__leader``
  topic; ``<prefix>.events`` and ``<prefix>.dlq`` are created by ``policyloop broker`` or the
  deployment, never by a worker.
* ``stream_wait_empty=False``: on revocation Faust would otherwise wait for every delivered
  event to be acknowledged *before* calling our revocation hook, but events are acknowledged
  only after their Delta commit, which that hook performs (deadlock otherwise).
* ``datadir`` in the system temp directory: Faust creates it even without tables, and its
  default (``<app_id>-data`` in the working directory) litters wherever the worker starts.
* ``producer_max_request_size``: a dead letter may carry a whole record of up to
  ``MAX_RECORD_BYTES`` plus its headers, just over Faust's 1,000,000-byte default.
* Small ``broker_*`` timeouts come from :class:`SessionizerSettings` (the embedded broker
  completes a group join only after the rebalance timeout).
* :func:`build_app` first checks the TLS and SASL settings against the broker
  (:func:`services.kafka_access.check_credentials`): aiokafka treats a refused login or an
  untrusted certificate like a broker that is away and Faust retries it forever, so a wrong
  password would otherwise make the worker hang without a word about why.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import faust

from schemas.wire import MAX_RECORD_BYTES
from services.kafka_access import check_credentials
from services.kafka_settings import KafkaSettings
from services.kafka_tls import client_ssl_context
from services.sessionizer.settings import SessionizerSettings

__all__ = ["broker_credentials", "build_app"]


def broker_credentials(kafka: KafkaSettings) -> Any:
    """Faust credentials for the TLS/SASL settings (``None`` for PLAINTEXT)."""
    protocol = kafka.security_protocol
    context = client_ssl_context(kafka)
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        secret = kafka.sasl_plain_password
        return faust.SASLCredentials(
            username=kafka.sasl_plain_username,
            password=None if secret is None else secret.get_secret_value(),
            mechanism=kafka.sasl_mechanism or "PLAIN",
            ssl_context=context,
        )
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    return None


def build_app(kafka: KafkaSettings, settings: SessionizerSettings) -> faust.App:
    """A Faust app for consumer group ``settings.app_id`` on the given broker.

    Raises :class:`~services.kafka_errors.KafkaAccessError` at once if the broker refuses the
    TLS or SASL settings (see the module's docstring).
    """
    check_credentials(kafka)
    servers = [f"kafka://{s.strip()}" for s in kafka.bootstrap_servers.split(",") if s.strip()]
    session = settings.session_timeout_s
    datadir = os.path.join(tempfile.gettempdir(), "policyloop-faust")
    os.makedirs(datadir, exist_ok=True)  # Faust makes only the last level
    return faust.App(
        settings.app_id,
        broker=";".join(servers),
        broker_credentials=broker_credentials(kafka),
        value_serializer="raw",
        key_serializer="raw",
        store="memory://",
        # Faust creates its data directory (for tables we do not have) at start-up; by
        # default '<app_id>-data' in the working directory.
        datadir=os.path.join(datadir, settings.app_id),
        table_standby_replicas=0,
        topic_disable_leader=True,
        topic_allow_declare=False,
        stream_wait_empty=False,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        consumer_max_fetch_size=16 * 1024 * 1024,
        broker_max_poll_records=None,
        broker_rebalance_timeout=settings.rebalance_timeout_s,
        broker_session_timeout=session,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        broker_request_timeout=max(30.0, session * 2),
        broker_commit_interval=settings.batch_max_seconds,
        broker_client_id=f"{settings.app_id}-worker",
        producer_acks=-1,
        # A dead letter carries a whole record (up to MAX_RECORD_BYTES) plus headers.
        producer_max_request_size=2 * MAX_RECORD_BYTES,
        # Records queued for the agent; a record holds up to MAX_RECORD_BYTES of events, so
        # Faust's 4096 could buffer gigabytes in a backlog.
        stream_buffer_maxsize=1024,
    )

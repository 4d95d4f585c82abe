"""The issue's reproduction at full scale: several processes on one default spool, for minutes.

``make soak`` runs these (marker ``soak``); ``make test`` runs the same behaviours at a tenth of
the size in ``tests/sdk/test_spool_ownership.py``. Each event carries its own id, so the check
is exact: none lost, none sent twice, none unexpected.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from services.kafka_settings import KafkaSettings
from tests.sdk.test_spool_ownership import (
    _assert_exactly_once,
    _config,
    _nowhere,
    _run_together,
    _start,
    _wait_ready,
)

pytestmark = [pytest.mark.integration, pytest.mark.soak]


def test_two_offline_then_two_online_processes_send_every_event_exactly_once(
    kafka: KafkaSettings, tmp_path: Path
) -> None:
    """Issue 13's reproduction as written: 2 x 20,000 spooled offline, then 2 x 5,000 online."""
    spool = tmp_path / "spool"
    nowhere = _nowhere(kafka)
    _run_together([_config(nowhere, spool, f"off{k}", 20_000, close_timeout=0.5) for k in (1, 2)])
    _run_together([_config(kafka, spool, f"on{k}", 5_000) for k in (1, 2)])

    expected = {f"off{k}-{i}" for k in (1, 2) for i in range(20_000)}
    expected |= {f"on{k}-{i}" for k in (1, 2) for i in range(5_000)}
    _assert_exactly_once(kafka, expected)


def test_four_processes_with_killed_owners_send_every_event_exactly_once(
    kafka: KafkaSettings, tmp_path: Path
) -> None:
    """Two owners die with full spools while two others log live; four heirs then drain all."""
    spool = tmp_path / "spool"
    nowhere = _nowhere(kafka)
    victims = [_start(_config(nowhere, spool, f"killed{k}", 10_000, hold=True)) for k in (1, 2)]
    try:
        for victim in victims:
            _wait_ready(victim)
    finally:
        for victim in victims:
            os.kill(victim.pid, signal.SIGKILL)
            victim.communicate(timeout=30)
    _run_together([_config(kafka, spool, f"live{k}", 5_000) for k in range(1, 5)])

    expected = {f"killed{k}-{i}" for k in (1, 2) for i in range(10_000)}
    expected |= {f"live{k}-{i}" for k in range(1, 5) for i in range(5_000)}
    _assert_exactly_once(kafka, expected)
    leftovers = [p for p in spool.rglob("seg-*")]
    assert not leftovers, f"spool segments left after every event was sent: {leftovers}"

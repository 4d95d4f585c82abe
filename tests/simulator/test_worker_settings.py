"""`policyloop simulate --workers K`: every worker logs in with the parent's credentials.

The SASL password is a ``SecretStr``, which JSON writes as ``**********``; a worker handed its
settings as JSON would log in with the mask. Workers here are the fleet's own ``_play`` with the
logger and the episodes replaced by recorders; the pool pickles each worker's plan the way a
spawned pool does (``ForkingPickler``), so what a worker gets is what crossed the pipe.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from multiprocessing.reduction import ForkingPickler
from typing import Any

import pytest

from services.kafka_settings import KafkaSettings
from services.simulator import traffic
from services.simulator.fleet import EpisodeStats
from services.simulator.traffic import FleetConnections, run_fleet

SECRET = "s3cr3t-Hunter2-do-not-log"


class _RecordingLogger:
    """Stands for the SDK's DecisionLogger: records the Kafka settings a worker built it with."""

    seen: list[KafkaSettings] = []

    def __init__(self, *, kafka: KafkaSettings, settings: object) -> None:
        _RecordingLogger.seen.append(kafka)

    def __enter__(self) -> _RecordingLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class _PicklingPool:
    """Stands for the spawned pool: each task's argument crosses as the pool's pickle."""

    handed: list[Any] = []

    def __init__(self, workers: int) -> None:
        pass

    def __enter__(self) -> _PicklingPool:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def map(self, function: Callable[[Any], Any], tasks: Iterable[Any]) -> list[Any]:
        _PicklingPool.handed = list(tasks)
        return [function(ForkingPickler.loads(ForkingPickler.dumps(t))) for t in self.handed]


class _SpawnContext:
    def Pool(self, workers: int) -> _PicklingPool:  # multiprocessing's name
        return _PicklingPool(workers)


@pytest.fixture
def workers(monkeypatch: pytest.MonkeyPatch) -> list[KafkaSettings]:
    """The Kafka settings each worker built its logger with, in order."""
    _RecordingLogger.seen = []
    monkeypatch.setattr("services.sdk.DecisionLogger", _RecordingLogger)
    monkeypatch.setattr(traffic, "play_episodes", lambda *args, **kwargs: EpisodeStats())
    monkeypatch.setattr(traffic.multiprocessing, "get_context", lambda method: _SpawnContext())
    return _RecordingLogger.seen


def _sasl_fleet(tmp_path: Any) -> FleetConnections:
    kafka = KafkaSettings(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username="policyloop",
        sasl_plain_password=SECRET,
    )
    return FleetConnections(kafka=kafka, registry_uri=str(tmp_path / "registry"))


def test_spawned_workers_log_in_with_the_parents_password(workers, tmp_path):
    run_fleet(_sasl_fleet(tmp_path), "CartPole-v1", 4, workers=2)

    assert len(workers) == 2
    assert [w.sasl_plain_password.get_secret_value() for w in workers] == [SECRET, SECRET]


def test_a_single_worker_logs_in_with_the_parents_password(workers, tmp_path):
    run_fleet(_sasl_fleet(tmp_path), "CartPole-v1", 1, workers=1)

    [worker] = workers
    assert worker.sasl_plain_password.get_secret_value() == SECRET


def test_what_the_pool_is_handed_shows_no_password(workers, tmp_path):
    run_fleet(_sasl_fleet(tmp_path), "CartPole-v1", 4, workers=2)

    assert len(_PicklingPool.handed) == 2
    assert all(SECRET not in repr(plan) for plan in _PicklingPool.handed)

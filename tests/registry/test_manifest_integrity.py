"""A lying manifest is refused: its feature names and actions must match what policy.pt carries.

The sha256 in the manifest covers ``policy.pt`` but not the manifest itself, so a manifest
edited on disk (features or actions permuted, JSON still valid) would otherwise be served with
the features fed in the wrong order. Every load through the registry compares the module's own
``feature_names`` and ``actions`` with the manifest's and refuses any difference.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from services.registry import ManifestMismatchError, Registry, RegistryError
from services.sdk import PolicyClient
from tests.rollout.factory import CARTPOLE_ACTIONS, CARTPOLE_FEATURES, publish

STATE = {"cart_position": 0.3, "cart_velocity": -0.5, "pole_angle": 0.05,
         "pole_angular_velocity": 0.7}  # fmt: skip
FAILURES = "policyloop_policy_load_failures_total"
LOGGER = "services.sdk.policy_client"

LIES = {
    "feature_names": list(reversed(CARTPOLE_FEATURES)),
    "actions": list(reversed(CARTPOLE_ACTIONS)),
}


@pytest.fixture
def registry(tmp_path) -> Registry:
    return Registry(str(tmp_path / "registry"), "cartpole")


def _lie(registry: Registry, version: str, field: str) -> None:
    """Permute ``field`` in the stored manifest of ``version``, keeping the JSON valid."""
    path = Path(registry.uri) / registry.policy_name / version / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest[field] = LIES[field]
    path.write_text(json.dumps(manifest))


def test_an_honest_manifest_loads(registry):
    version = publish(registry, promote=True)
    module, manifest = registry.load(version)
    assert list(module.feature_names) == manifest["feature_names"] == CARTPOLE_FEATURES
    assert list(module.actions) == manifest["actions"] == CARTPOLE_ACTIONS


@pytest.mark.parametrize("field", list(LIES))
def test_a_permuted_manifest_is_refused_naming_the_field(registry, field):
    version = publish(registry, promote=True)
    _lie(registry, version, field)
    with pytest.raises(ManifestMismatchError) as caught:
        registry.load(version)
    assert isinstance(caught.value, RegistryError)
    message = str(caught.value)
    assert field in message and version in message
    assert str(LIES[field]) in message  # the manifest's value ...
    truth = CARTPOLE_FEATURES if field == "feature_names" else CARTPOLE_ACTIONS
    assert str(truth) in message  # ... and the module's


@pytest.mark.parametrize("field", list(LIES))
def test_a_policy_client_never_serves_a_lying_manifest(registry, caplog, field):
    good = publish(registry, promote=True, logits=[0.0, 0.0])
    liar = publish(registry, promote=False, logits=[3.0, 0.0])
    _lie(registry, liar, field)
    metrics = CollectorRegistry()
    caplog.set_level(logging.WARNING, logger=LOGGER)
    with PolicyClient(
        registry.uri, registry.policy_name, metrics_registry=metrics, poll_interval_s=3600.0
    ) as client:
        assert client.serving.current_version == good
        registry.promote(liar)
        client.refresh()
        act = client.act("ep", STATE, [0, 1])
        assert client.serving.current_version == good
        failures = metrics.get_sample_value(
            FAILURES, {"policy": "cartpole", "policy_version": liar}
        )
    assert act.policy_version == good
    assert failures == 1
    assert any(liar in r.getMessage() and field in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("field", list(LIES))
def test_a_lying_current_at_start_is_served_as_uniform(registry, field):
    version = publish(registry, promote=True, logits=[3.0, 0.0])
    _lie(registry, version, field)
    with PolicyClient(
        registry.uri,
        registry.policy_name,
        metrics_registry=CollectorRegistry(),
        poll_interval_s=3600.0,
    ) as client:
        act = client.act("ep", STATE, [0, 1])
    assert act.policy_version == "uniform"

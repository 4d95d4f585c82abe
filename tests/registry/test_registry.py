"""The policy registry: versions, verification, CURRENT/ROLLOUT pointers, rollback."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import pytest
import torch

from schemas.manifest import sha256_hex
from services.registry import (
    ManifestError,
    Registry,
    RegistryError,
    TamperedPolicyError,
    VersionNotFoundError,
)
from tests.registry.tiny_policy import manifest


@pytest.fixture
def registry(tmp_path) -> Registry:
    return Registry(str(tmp_path / "registry"), "ranker")


def test_publish_stores_files_in_the_layout_and_makes_the_version_current(registry, tiny_bytes):
    version = registry.publish(tiny_bytes, manifest())
    base = Path(registry.uri) / "ranker"
    assert version == "v1"
    assert (base / "v1" / "policy.pt").read_bytes() == tiny_bytes
    stored = json.loads((base / "v1" / "manifest.json").read_text())
    assert stored["sha256"] == sha256_hex(tiny_bytes)
    assert stored["version"] == "v1" and stored["policy_name"] == "ranker"
    assert (base / "CURRENT").read_text().strip() == "v1"
    assert registry.current() == "v1"


def test_versions_are_numbered_monotonically(registry, tiny_bytes, other_bytes):
    names = [registry.publish(b, manifest()) for b in (tiny_bytes, other_bytes, tiny_bytes)]
    assert names == ["v1", "v2", "v3"]
    assert registry.versions() == ["v1", "v2", "v3"]
    assert registry.current() == "v3"


def test_version_ten_sorts_after_version_nine(registry, tiny_bytes):
    for _ in range(10):
        registry.publish(tiny_bytes, manifest())
    assert registry.versions()[-2:] == ["v9", "v10"]
    assert registry.current() == "v10"


def test_loaded_module_gives_the_published_modules_probabilities(registry, other_bytes):
    version = registry.publish(other_bytes, manifest())
    module, loaded_manifest = registry.load(version)
    original = torch.jit.load(io.BytesIO(other_bytes))
    states = torch.tensor([[0.5, -1.0], [2.0, 0.0]])
    mask = torch.tensor([[True, True], [True, False]])
    assert torch.equal(module.probs_dense(states, mask), original.probs_dense(states, mask))
    assert module({"x": 0.5, "y": -1.0}, [True, True]) == original(
        {"x": 0.5, "y": -1.0}, [True, True]
    )
    assert loaded_manifest["actions"] == ["0", "1"]


def test_load_without_version_loads_current(registry, tiny_bytes, other_bytes):
    registry.publish(tiny_bytes, manifest())
    registry.publish(other_bytes, manifest())
    _, loaded = registry.load()
    assert loaded["version"] == "v2"


def test_tampered_policy_file_is_refused(registry, tiny_bytes, other_bytes):
    version = registry.publish(tiny_bytes, manifest())
    path = f"{registry.uri}/ranker/{version}/policy.pt"
    with open(path, "wb") as fh:
        fh.write(other_bytes)  # a valid TorchScript file, but not the one that was published
    with pytest.raises(TamperedPolicyError, match="sha256"):
        registry.load(version)


def test_promote_refuses_a_tampered_version(registry, tiny_bytes):
    registry.publish(tiny_bytes, manifest())
    registry.publish(tiny_bytes, manifest())
    with open(f"{registry.uri}/ranker/v1/policy.pt", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(TamperedPolicyError):
        registry.promote("v1")
    assert registry.current() == "v2"


def test_manifest_missing_a_required_key_is_rejected_naming_the_key(registry, tiny_bytes):
    incomplete = manifest()
    del incomplete["actions"]
    with pytest.raises(ManifestError, match="actions"):
        registry.publish(tiny_bytes, incomplete)
    assert registry.versions() == []


def test_manifest_exploration_must_name_min_propensity(registry, tiny_bytes):
    with pytest.raises(ManifestError, match="min_propensity"):
        registry.publish(tiny_bytes, manifest(exploration={"temperature": 1.0, "epsilon": 0.1}))


def test_unknown_version_raises_a_clear_error(registry, tiny_bytes):
    registry.publish(tiny_bytes, manifest())
    with pytest.raises(VersionNotFoundError, match="v7"):
        registry.load("v7")


def test_malformed_version_name_names_the_rule(registry):
    with pytest.raises(RegistryError, match="v<N>"):
        registry.manifest("latest")


def test_object_store_uri_is_refused_until_a_backend_exists(tmp_path):
    with pytest.raises(ValueError, match="registry_uri"):
        Registry("s3://bucket/registry", "ranker")


def test_publish_without_promote_leaves_current_alone(registry, tiny_bytes):
    registry.publish(tiny_bytes, manifest())
    version = registry.publish(tiny_bytes, manifest(), promote=False)
    assert version == "v2"
    assert registry.current() == "v1"


def test_rollback_walks_back_through_promoted_versions(registry, tiny_bytes):
    for _ in range(3):
        registry.publish(tiny_bytes, manifest())
    assert registry.rollback() == "v2"
    assert registry.rollback() == "v1"
    with pytest.raises(RegistryError, match="no earlier promoted version"):
        registry.rollback()
    registry.promote("v3")
    assert registry.rollback() == "v1"
    events = [entry["event"] for entry in registry.history()]
    assert events == [
        "publish",
        "publish",
        "publish",
        "rollback",
        "rollback",
        "promote",
        "rollback",
    ]


def test_rollout_records_candidate_and_fraction(registry, tiny_bytes):
    registry.publish(tiny_bytes, manifest())
    registry.publish(tiny_bytes, manifest(), promote=False)
    state = registry.set_rollout("v2", 0.1)
    assert registry.rollout() == state
    assert state["version"] == "v2" and state["fraction"] == 0.1 and state["started_at"]
    info = {row.version: row for row in registry.list_versions()}
    assert info["v2"].in_rollout and info["v1"].is_current


def test_rollout_fraction_outside_zero_one_names_the_rule(registry, tiny_bytes):
    registry.publish(tiny_bytes, manifest())
    with pytest.raises(RegistryError, match="between 0 and 1"):
        registry.set_rollout("v1", 1.5)


def test_promoting_the_rollout_candidate_ends_the_rollout(registry, tiny_bytes):
    registry.publish(tiny_bytes, manifest())
    registry.publish(tiny_bytes, manifest(), promote=False)
    registry.set_rollout("v2", 0.5)
    assert registry.promote("v2") == "v1"
    assert registry.current() == "v2"
    assert registry.rollout() is None


def test_list_versions_with_verify_flags_a_tampered_version(registry, tiny_bytes):
    registry.publish(tiny_bytes, manifest())
    registry.publish(tiny_bytes, manifest())
    with open(f"{registry.uri}/ranker/v1/policy.pt", "ab") as fh:
        fh.write(b"x")
    rows = {row.version: row for row in registry.list_versions(verify=True)}
    assert rows["v1"].verified is False and rows["v2"].verified is True
    assert "altered" in registry.show("v1")["integrity"]


def test_concurrent_publishers_never_share_a_version(tmp_path, tiny_bytes):
    uri = str(tmp_path / "registry")
    published: list[str] = []
    lock = threading.Lock()

    def publisher() -> None:
        registry = Registry(uri, "ranker")
        for _ in range(5):
            version = registry.publish(tiny_bytes, manifest())
            with lock:
                published.append(version)

    threads = [threading.Thread(target=publisher) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    registry = Registry(uri, "ranker")
    assert sorted(published, key=lambda v: int(v[1:])) == [f"v{i}" for i in range(1, 21)]
    assert all(registry.verify(v)["version"] == v for v in published)
    assert registry.current() in published


def test_discard_removes_a_version_that_was_never_promoted(registry, tiny_bytes):
    registry.publish(tiny_bytes, manifest())
    stored = registry.publish(tiny_bytes, manifest(), promote=False)
    registry.discard(stored)
    assert registry.versions() == ["v1"]
    assert registry.publish(tiny_bytes, manifest()) == "v2"  # the number was freed, not skipped


def test_discard_refuses_a_version_that_was_ever_current(registry, tiny_bytes):
    registry.publish(tiny_bytes, manifest())
    registry.publish(tiny_bytes, manifest())
    with pytest.raises(RegistryError, match="CURRENT"):
        registry.discard("v2")
    with pytest.raises(RegistryError, match="promoted before"):
        registry.discard("v1")

"""``policyloop score``: a registry version over a table of states, as PolicyClient serves it."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry

from schemas.tables import TIMELINE_SCHEMA
from services.cli.main import cli
from services.delta_tables import open_table, read_table
from services.registry import Registry
from services.sdk.policy_client import PolicyClient
from tests.rollout.factory import CARTPOLE_FEATURES, publish

pytestmark = pytest.mark.integration

N = 100_000
CHOICES = [["0", "1"], ["1"], ["1", "0"], ["0"]]


def _states(path, n: int = N, seed: int = 0):
    """``n`` timeline-like rows: a state map (one feature absent in every tenth row) and
    possible actions in several orders."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(n, 4)).tolist()
    states = []
    for i, row in enumerate(values):
        state = dict(zip(CARTPOLE_FEATURES, row, strict=True))
        if i % 10 == 3:
            del state["pole_angle"]
        states.append(state)
    possible = [CHOICES[i % 7 % 4] for i in range(n)]
    table = pa.table(
        {
            "episode_id": [f"e{i // 50}" for i in range(n)],
            "step": [i % 50 for i in range(n)],
            "state": pa.array(states, TIMELINE_SCHEMA.field("state").type),
            "possible_actions": possible,
        }
    )
    pq.write_table(table, path)
    return states, possible


def _score(registry: Registry, source, output, *args: str):
    argv = ["score", "--policy", "v1", "--input", str(source), "--output", str(output),
            "--registry", registry.uri, "--policy-name", registry.policy_name, *args]  # fmt: skip
    return CliRunner().invoke(cli, argv, catch_exceptions=False)


@pytest.fixture
def registry(tmp_path) -> Registry:
    registry = Registry(str(tmp_path / "registry"), "cartpole")
    publish(registry, promote=True, seed=3, hidden_sizes=(64, 64), temperature=0.5, epsilon=0.05)
    return registry


def test_scores_of_100000_states_equal_policy_client_probabilities_row_by_row(tmp_path, registry):
    source = tmp_path / "states.parquet"
    states, possible = _states(source)
    result = _score(registry, source, tmp_path / "scored")
    assert result.exit_code == 0, result.output

    delta = open_table(str(tmp_path / "scored"))
    assert delta is not None  # a Delta table others can read
    scored = read_table(delta, pa.schema(delta.schema().to_arrow())).sort_by("row").to_pydict()
    assert scored["row"] == list(range(N))
    assert scored["possible_actions"] == possible
    client = PolicyClient(registry.uri, "cartpole", poll_interval_s=3600.0,
                          metrics_registry=CollectorRegistry())  # fmt: skip
    try:
        pairs = zip(states, possible, strict=True)
        served = [client.act("one-episode", s, p).action_probs for s, p in pairs]
    finally:
        client.close()
    got = np.array([p for row in scored["action_probs"] for p in row])
    want = np.array([p for row in served for p in row])
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-6
    chosen = [row.index(a) for row, a in zip(possible, scored["action"], strict=True)]
    propensities = [probs[i] for probs, i in zip(scored["action_probs"], chosen, strict=True)]
    assert scored["propensity"] == propensities


def test_sampled_actions_follow_the_probabilities(tmp_path, registry):
    source = tmp_path / "states.parquet"
    _states(source, n=20_000)
    result = _score(registry, source, tmp_path / "scored.parquet", "--seed", "5")
    assert result.exit_code == 0, result.output
    scored = pq.read_table(tmp_path / "scored.parquet").to_pydict()
    both = [i for i, p in enumerate(scored["possible_actions"]) if p == ["0", "1"]]
    expected = sum(scored["action_probs"][i][1] for i in both)
    drawn = sum(scored["action"][i] == "1" for i in both)
    assert abs(drawn - expected) < 4 * np.sqrt(len(both) * 0.25)
    assert all(a in p for a, p in zip(scored["action"], scored["possible_actions"], strict=True))


def test_a_tampered_policy_is_refused_before_it_is_loaded(tmp_path, registry):
    source = tmp_path / "states.parquet"
    _states(source, n=100)
    policy = tmp_path / "registry" / "cartpole" / "v1" / "policy.pt"
    policy.write_bytes(policy.read_bytes() + b"\0")
    result = _score(registry, source, tmp_path / "scored")
    assert result.exit_code == 1
    assert "sha256" in result.output
    assert open_table(str(tmp_path / "scored")) is None

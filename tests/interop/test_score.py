"""``policyloop score``: a registry version over a table of states, as PolicyClient serves it."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result
from prometheus_client import CollectorRegistry

from schemas.tables import TIMELINE_SCHEMA
from services.cli.main import cli
from services.delta_tables import open_table, read_table
from services.interop.score_choice import choose
from services.interop.score_input import ScoreInputError, dense_states
from services.interop.score_overlap import ReadAhead, WriteBehind
from services.registry import Registry
from services.sdk.policy_client import PolicyClient
from tests.rollout.factory import CARTPOLE_FEATURES, publish

pytestmark = pytest.mark.integration

N = 100_000
CHOICES = [["0", "1"], ["1"], ["1", "0"], ["0"]]


def _states(
    path: Path, n: int = N, seed: int = 0
) -> tuple[list[dict[str, float]], list[list[str]]]:
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


def _score(registry: Registry, source: Path, output: Path, *args: str) -> Result:
    argv = ["score", "--policy", "v1", "--input", str(source), "--output", str(output),
            "--registry", registry.uri, "--policy-name", registry.policy_name, *args]  # fmt: skip
    return CliRunner().invoke(cli, argv, catch_exceptions=False)


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    registry = Registry(str(tmp_path / "registry"), "cartpole")
    publish(registry, promote=True, seed=3, hidden_sizes=(64, 64), temperature=0.5, epsilon=0.05)
    return registry


def test_scores_of_100000_states_equal_policy_client_probabilities_row_by_row(
    tmp_path: Path, registry: Registry
) -> None:
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


def test_sampled_actions_follow_the_probabilities(tmp_path: Path, registry: Registry) -> None:
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


def test_a_tampered_policy_is_refused_before_it_is_loaded(
    tmp_path: Path, registry: Registry
) -> None:
    source = tmp_path / "states.parquet"
    _states(source, n=100)
    policy = tmp_path / "registry" / "cartpole" / "v1" / "policy.pt"
    policy.write_bytes(policy.read_bytes() + b"\0")
    result = _score(registry, source, tmp_path / "scored")
    assert result.exit_code == 1
    assert "sha256" in result.output
    assert open_table(str(tmp_path / "scored")) is None


def _plain_states(path: Path, n: int, seed: int = 0) -> list[dict[str, float]]:
    """``n`` rows whose maps list every feature in one order, without ``possible_actions``
    (what a table written by one producer holds)."""
    values = np.random.default_rng(seed).normal(size=(n, 4))
    states = [dict(zip(CARTPOLE_FEATURES, row, strict=True)) for row in values.tolist()]
    table = pa.table({"step": np.arange(n), "state": pa.array(states, STATE)})
    pq.write_table(table, path)
    return states


STATE = TIMELINE_SCHEMA.field("state").type


def test_rows_without_possible_actions_get_every_action_in_the_policys_order(
    tmp_path: Path, registry: Registry
) -> None:
    source = tmp_path / "states.parquet"
    states = _plain_states(source, 3000)
    result = _score(registry, source, tmp_path / "scored.parquet", "--mode", "greedy")
    assert result.exit_code == 0, result.output

    scored = pq.read_table(tmp_path / "scored.parquet").to_pydict()
    assert scored["possible_actions"] == [["0", "1"]] * len(states)
    client = PolicyClient(registry.uri, "cartpole", poll_interval_s=3600.0,
                          metrics_registry=CollectorRegistry())  # fmt: skip
    try:
        served = [client.act("one-episode", s, ["0", "1"]).action_probs for s in states]
    finally:
        client.close()
    assert np.abs(np.array(scored["action_probs"]) - np.array(served)).max() <= 1e-6
    best = [str(int(np.argmax(p))) for p in scored["action_probs"]]
    assert scored["action"] == best


def test_the_same_seed_draws_the_same_actions_whatever_the_batch_size(
    tmp_path: Path, registry: Registry
) -> None:
    source = tmp_path / "states.parquet"
    _states(source, n=5000)
    runs = []
    for name, rows in (("one", "5000"), ("many", "333")):
        output = tmp_path / f"{name}.parquet"
        result = _score(registry, source, output, "--seed", "9", "--batch-rows", rows)
        assert result.exit_code == 0, result.output
        runs.append(pq.read_table(output))
    assert runs[0].column("action").equals(runs[1].column("action"))
    # the model's slices differ, so its float sums may differ in the last bit
    one, many = (np.array(run.column("propensity")) for run in runs)
    assert np.abs(one - many).max() <= 1e-6


def test_a_kept_state_column_is_written_as_it_was_read(tmp_path: Path, registry: Registry) -> None:
    source = tmp_path / "states.parquet"
    states = _plain_states(source, 100)
    result = _score(registry, source, tmp_path / "scored.parquet", "--keep", "state")
    assert result.exit_code == 0, result.output

    scored = pq.read_table(tmp_path / "scored.parquet")
    assert scored.schema.field("state").type == STATE
    assert [dict(m) for m in scored.column("state").to_pylist()] == states


def test_a_table_input_is_scored_as_the_same_rows_in_a_parquet_file(
    tmp_path: Path, registry: Registry
) -> None:
    from deltalake import write_deltalake

    source = tmp_path / "states.parquet"
    _states(source, n=2000)
    write_deltalake(str(tmp_path / "states"), pq.read_table(source))
    for name in ("states.parquet", "states"):
        result = _score(registry, tmp_path / name, tmp_path / f"scored-{name}.parquet")
        assert result.exit_code == 0, result.output
    from_file = pq.read_table(tmp_path / "scored-states.parquet.parquet")
    assert pq.read_table(tmp_path / "scored-states.parquet").equals(from_file)


def _maps(rows: list[Any], dictionary: bool) -> pa.Array:
    """A ``state`` map column of ``rows`` (None: a null map), keys as text or as a dictionary
    (as score reads them from parquet)."""
    array = pa.array(rows, STATE)
    if not dictionary:
        return array
    keys = array.keys.dictionary_encode()
    kind = pa.map_(pa.field("key", keys.type, nullable=False), STATE.item_field)
    null = np.append(~array.is_valid().to_numpy(zero_copy_only=False), False)
    offsets = pa.array(array.offsets.to_numpy(), mask=null)
    return pa.MapArray.from_arrays(offsets, keys, array.items, type=kind)


@pytest.mark.parametrize("dictionary", [False, True])
def test_state_maps_are_placed_by_feature_name_whatever_their_keys(dictionary: bool) -> None:
    rows = [[("a", 1.0), ("b", 2.0)], [("b", 3.0), ("a", 4.0)], [("zz", 5.0), ("a", 6.0)],
            None, [], [("b", None)]]  # fmt: skip
    batch = pa.record_batch({"state": _maps(rows, dictionary)})

    got = dense_states(batch, ["a", "b"])
    nan = np.nan
    want = [[1, 2], [4, 3], [6, nan], [nan, nan], [nan, nan], [nan, nan]]
    np.testing.assert_array_equal(got, np.array(want, dtype=np.float32))


@pytest.mark.parametrize("dictionary", [False, True])
def test_maps_listing_the_same_keys_in_one_order_give_the_same_states(dictionary: bool) -> None:
    rows = [[("b", float(i)), ("zz", -1.0), ("a", float(10 * i))] for i in range(1, 7)]
    column = _maps(rows, dictionary).slice(2, 3)  # a slice starts inside the entries

    got = dense_states(pa.record_batch({"state": column}), ["a", "b", "c"])
    want = [[10 * i, i, np.nan] for i in range(3, 6)]
    np.testing.assert_array_equal(got, np.array(want, dtype=np.float32))


def test_drawn_actions_follow_the_probabilities_and_never_take_an_impossible_one() -> None:
    probs = np.tile(np.array([0.2, 0.0, 0.5, 0.3], dtype=np.float32), (200_000, 1))

    chosen = choose(probs, "sample", np.random.default_rng(1))
    counts = np.bincount(chosen, minlength=4)
    assert counts[1] == 0
    for action in (0, 2, 3):
        p = float(probs[0, action])
        assert abs(counts[action] - len(probs) * p) < 4 * np.sqrt(len(probs) * p * (1 - p))


def test_a_seed_draws_the_same_actions_in_one_batch_or_in_several() -> None:
    probs = np.random.default_rng(2).dirichlet(np.ones(3), size=10_000).astype(np.float32)

    whole = choose(probs, "sample", np.random.default_rng(7))
    rng = np.random.default_rng(7)
    parts = np.concatenate(
        [choose(probs[:3001], "sample", rng), choose(probs[3001:], "sample", rng)]
    )
    np.testing.assert_array_equal(whole, parts)
    np.testing.assert_array_equal(whole, choose(probs, "sample", np.random.default_rng(7)))


@pytest.mark.parametrize("output", ["scored", "scored.parquet"])
def test_a_run_that_fails_midway_leaves_no_table_and_no_files(
    tmp_path: Path, registry: Registry, output: str
) -> None:
    source = tmp_path / "states.parquet"
    _states(source, n=3000)
    table = pq.read_table(source)
    possible = table.column("possible_actions").to_pylist()
    possible[2500] = ["0", "7"]
    column = table.schema.get_field_index("possible_actions")
    pq.write_table(table.set_column(column, "possible_actions", pa.array(possible)), source)

    # the bad row is found in the read-ahead thread, after five batches were scored and written
    result = _score(registry, source, tmp_path / output, "--batch-rows", "500")
    assert result.exit_code == 1
    assert "row 2500: possible action '7' is not an action of the policy" in result.output
    assert open_table(str(tmp_path / "scored")) is None
    files = [p for p in tmp_path.glob("scored*") if p.is_file()]
    assert files + list(tmp_path.glob("scored*/**/*.parquet")) == []
    assert not [t for t in threading.enumerate() if t.name.startswith("score-")]


def test_an_error_preparing_a_batch_is_raised_after_the_batches_before_it() -> None:
    def batches() -> Iterator[int]:
        yield 1
        yield 2
        raise ScoreInputError("row 3: no such action")

    ahead = ReadAhead(batches())
    got: list[int] = []
    with pytest.raises(ScoreInputError, match="row 3: no such action"):
        got.extend(ahead)
    assert got == [1, 2]
    assert list(ahead) == []  # finished: iterating again gives nothing, and does not hang
    ahead.close()


def test_closing_a_read_ahead_midway_stops_its_thread() -> None:
    made: list[int] = []

    def endless() -> Iterator[int]:
        for i in itertools.count():
            made.append(i)
            yield i

    ahead = ReadAhead(endless(), depth=2)
    assert next(ahead) == 0
    ahead.close()  # the caller failed: the thread must not keep reading
    count = len(made)
    assert not [t for t in threading.enumerate() if t.name == "score-prepare"]
    assert count <= 5  # the one taken, two queued, one being made, one blocked
    assert len(made) == count


def test_a_failed_background_write_is_raised_before_the_output_is_finished() -> None:
    def failing(batch: pa.RecordBatch) -> None:
        raise OSError("disk full")

    behind = WriteBehind(failing)
    behind.write(pa.record_batch({"row": [1]}))
    with pytest.raises(OSError, match="disk full"):
        behind.close()


def test_a_parquet_file_written_by_delta_rs_is_scored_like_one_written_by_arrow(
    tmp_path: Path, registry: Registry
) -> None:
    from deltalake import write_deltalake

    source = tmp_path / "arrow.parquet"
    _plain_states(source, 500)
    write_deltalake(str(tmp_path / "table"), pq.read_table(source))  # maps as "entries" groups
    (written,) = (tmp_path / "table").glob("*.parquet")
    written.rename(tmp_path / "delta-rs.parquet")
    for name in ("arrow", "delta-rs"):
        result = _score(registry, tmp_path / f"{name}.parquet", tmp_path / f"scored-{name}.parquet")
        assert result.exit_code == 0, result.output
    arrow = pq.read_table(tmp_path / "scored-arrow.parquet")
    assert pq.read_table(tmp_path / "scored-delta-rs.parquet").equals(arrow)

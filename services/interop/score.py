"""``policyloop score``: a registry version over a table of states, in batches (batch transform).

What SageMaker's batch transform does for a deployed model, for a policyloop policy: read states
from a Delta table or parquet file batch by batch, run the served module's batch entry point
(``probs_dense``, the same TorchScript that ``PolicyClient`` serves one state at a time), and
write per row the action chosen, its propensity and the probabilities of the possible actions.
The policy is loaded only through the registry's read side, which checks ``policy.pt`` against
its manifest's sha256 before TorchScript sees a byte.

Input: a ``state`` map column (the timeline's), or one numeric column per feature of the
policy; a ``possible_actions`` list column when rows allow fewer than all actions. A feature
absent from a row is NaN, which the module replaces with its default, as ``PolicyClient`` does.
``mode="sample"`` draws the action from the probabilities (seeded: a run is repeatable), which
makes the output a log CPE can use; ``"greedy"`` takes the most probable.

Output: ``row`` (the input's row number), the identifying columns kept (``ds``, ``episode_id``,
``step``, ``decision_id`` when present, and ``keep``), ``action``, ``propensity``,
``possible_actions``, ``action_probs`` (aligned with ``possible_actions``) and
``policy_version``, as a new Delta table (written file by file, one commit) or, for a URI
ending in ``.parquet``, a parquet file.

The model is the cost that must remain: everything around it (``score_input``, ``score_choice``,
``score_output``, ``score_sink``) works on whole batches with numpy and Arrow kernels, and runs
beside the model rather than between its calls (``score_overlap``): one helper thread reads the
next batch and densifies it, another draws the actions, builds the output rows and writes them,
so the calling thread runs the policy only (on one torch thread, as ``make bench BENCH=interop``
measures it, the model is about three quarters of score's CPU time: the rest, mostly the parquet
writer, fits on a second core). Before the batch rewrite, the work around the model cost as
much as the model (score was 10x ``PolicyClient.act``'s rate where the model alone was 20x).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa

from schemas.manifest import serving_interface
from services.interop.score_choice import Mode, choose
from services.interop.score_input import (
    PossibleActions,
    ScoreInputError,
    dense_states,
    open_input,
    possible_actions,
)
from services.interop.score_output import Scored, output_batch
from services.interop.score_overlap import ReadAhead, WriteBehind
from services.interop.score_sink import ScoreSink
from services.registry.reader import RegistryReader

__all__ = ["MODEL_ROWS", "ScoreInputError", "ScoreResult", "score_states"]

_KEYS = ("ds", "episode_id", "step", "decision_id")
#: Rows per call of the policy: activations of a 256-wide network for 4,096 rows fit in cache;
#: on this machine 4,096-row calls ran 2.5x faster than 50,000-row ones (785k vs 290k rows/s
#: on one thread), and faster than 2,048 or 8,192 (650k vs 620k and 460-600k rows/s).
MODEL_ROWS = 4096


@dataclass(frozen=True)
class ScoreResult:
    """A scoring run: rows written, where, by which verified version, how fast."""

    rows: int
    output: str
    policy_name: str
    version: str
    seconds: float


class _Model:
    """The policy's ``probs_dense`` in slices of :data:`MODEL_ROWS` rows; rows without a mask
    (every action possible) share one all-true mask made once."""

    def __init__(self, module: Any, actions: int) -> None:
        import torch

        self._torch = torch
        self._module = module
        self._everything = torch.ones((MODEL_ROWS, actions), dtype=torch.bool)

    def probs(self, states: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        torch = self._torch
        rows, width = states.shape[0], self._everything.shape[1]
        out = np.empty((rows, width), dtype=np.float32)
        tensor = torch.from_numpy(states)
        masks = None if mask is None else torch.from_numpy(mask)
        for start in range(0, rows, MODEL_ROWS):
            stop = min(start + MODEL_ROWS, rows)
            allowed = self._everything[: stop - start] if masks is None else masks[start:stop]
            out[start:stop] = self._module.probs_dense(tensor[start:stop], allowed).numpy()
        return out


class _Prepared(NamedTuple):
    """An input batch (its first row's number) with what the model takes of it."""

    batch: pa.RecordBatch
    first_row: int
    possible: PossibleActions
    states: np.ndarray


def _prepared(
    batches: Iterator[pa.RecordBatch], features: list[str], actions: list[str]
) -> Iterator[_Prepared]:
    """Each batch with its possible actions and dense states (run in the read-ahead thread:
    reading and densifying a batch then overlap the model's calls on the one before)."""
    first_row = 0
    for batch in batches:
        possible = possible_actions(batch, actions, first_row)
        yield _Prepared(batch, first_row, possible, dense_states(batch, features))
        first_row += batch.num_rows


def _kept(names: list[str], keep: list[str] | None) -> list[str]:
    kept = [c for c in _KEYS if c in names]
    for column in keep or []:
        if column not in names:
            raise ScoreInputError(f"--keep {column}: the input has no such column")
        if column not in kept:
            kept.append(column)
    return kept


def score_states(
    registry_uri: str,
    policy_name: str,
    version: str | None,
    input_uri: str,
    output_uri: str,
    *,
    batch_rows: int,
    mode: Mode = "sample",
    seed: int = 0,
    keep: list[str] | None = None,
    overwrite: bool = False,
    threads: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> ScoreResult:
    """Score every row of ``input_uri`` with ``version`` (default CURRENT) of ``policy_name``."""
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    started = time.perf_counter()
    reader = RegistryReader(registry_uri, policy_name)
    version = version or reader.current()
    module, manifest = reader.load(version)  # sha256 checked before torch.jit.load
    assert version is not None
    features, actions = serving_interface(manifest)
    model = _Model(module, len(actions))
    schema, batches, _ = open_input(input_uri, batch_rows, list(keep or []))
    kept = _kept(schema.names, keep)
    rng = np.random.default_rng(seed)
    sink = ScoreSink(output_uri, overwrite)

    def write(done: tuple[_Prepared, np.ndarray]) -> None:
        # the writer's one thread takes the batches in order: the draws are the same as in-line
        (batch, first_row, possible, _), probs = done
        scored = Scored(first_row, possible, probs, choose(probs, mode, rng))
        sink.write(output_batch(batch, kept, scored, actions, version))

    behind: WriteBehind[tuple[_Prepared, np.ndarray]] = WriteBehind(write)
    ahead = ReadAhead(_prepared(batches, features, actions))
    written = 0
    try:
        with torch.inference_mode():
            for prepared in ahead:  # this thread runs the model only
                behind.write((prepared, model.probs(prepared.states, prepared.possible.mask)))
                written += prepared.batch.num_rows
                if progress is not None:
                    progress(prepared.batch.num_rows)
        ahead.close()
        behind.close()
        sink.close()
    except BaseException:
        with suppress(Exception):  # the error being raised is the one to report
            ahead.close()
        with suppress(Exception):
            behind.close()
        sink.discard()
        raise
    return ScoreResult(written, output_uri, policy_name, version, time.perf_counter() - started)

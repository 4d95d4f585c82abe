"""RLlib's offline JSON: one ``SampleBatch`` per line, as RLlib's ``JsonWriter`` writes it.

Columns read (each a list, one entry per step): ``obs`` (arrays, flattened into state names
``obs_0``, ``obs_1``, ... or ``--obs-names``), ``actions``, ``rewards``, ``eps_id``, ``t``,
``terminateds`` / ``truncateds`` (or the older ``dones``, with ``infos[i]["TimeLimit.truncated"]``
telling a time limit), ``action_prob`` or ``action_logp`` (the propensity, or its log).
``new_obs`` is not read: the timeline's next state is the episode's next row's state, as live;
the observation after an episode's last step has no place in the timeline.
``infos[i]["policyloop"]``, written by ``policyloop export rllib-json``, carries what the
timeline holds beyond RLlib's columns (time, ids, possible actions and probabilities, metrics,
the features absent from a state, the obs names), so an exported table imports back to the
same rows.

Lines are parsed one at a time with orjson (Python's json for lines with ``NaN``, which RLlib's
writer emits and strict JSON parsers refuse), so a bad line is rejected with its line number and
memory holds one line. pyarrow's JSON reader is faster per byte but fails a whole block on one
bad line and cannot say which.

Security: RLlib can write columns compressed (``output_compress_columns``: base64 of an LZ4
compressed pickle). Unpickling runs code chosen by whoever wrote the file, so such a column is
refused, naming it, and nothing of the file is imported.
"""

from __future__ import annotations

import json
import math
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import orjson

from services.interop.source import ImportFormatError, ImportOptions, Reject, SourceItem, Where
from services.interop.steps import StepMaker, missing_propensities, obs_names_for

__all__ = [
    "DEFAULT_END",
    "CheckedBatch",
    "Line",
    "check_batch",
    "lines",
    "read",
    "read_batch",
    "steps",
]

#: An episode cut by the end of the file (RLlib splits episodes into fragments) is truncated.
DEFAULT_END = "truncated"

_FORMAT = "rllib-json"
_COLUMNS = ("obs", "actions", "rewards", "eps_id", "t")
_OPTIONAL = ("terminateds", "truncateds", "dones", "infos", "action_prob", "action_logp")


def _load(line: bytes) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return json.loads(line)  # NaN and Infinity, which RLlib's json.dumps writes


def read(path: Path, sha256: str, options: ImportOptions) -> Iterator[SourceItem]:
    """The steps of every batch in ``path``, in file order (see module doc)."""
    maker = StepMaker(sha256, options)
    names: list[str] | None = None
    for line in lines(path, maker):
        if type(line) is Reject:
            yield line
        else:
            assert isinstance(line, Line)
            names = yield from read_batch(line.batch, line.number, str(path), options, maker, names)


class Line(NamedTuple):
    """One parsed line: its 1-based number and its SampleBatch (a JSON object)."""

    number: int
    batch: dict[str, Any]


def lines(path: Path, maker: StepMaker) -> Iterator[Line | Reject]:
    """The file's lines parsed one at a time (blank ones skipped; a line that is not a JSON
    object is a reject, from the worker that owns whole lines)."""
    with path.open("rb") as fh:
        for number, text in enumerate(fh, 1):
            if not text.strip():
                continue
            try:
                batch = _load(text)
            except ValueError as exc:
                if maker.owns_lines:
                    yield Reject(Where("line", number), "malformed", f"not JSON: {exc}")
                continue
            if type(batch) is not dict:
                if maker.owns_lines:
                    yield Reject(Where("line", number), "malformed", "must be a JSON object")
                continue
            yield Line(number, batch)


def _packed(batch: dict[str, Any], column: str, path: str, number: int) -> ImportFormatError:
    return ImportFormatError(
        f"{_FORMAT}: {path} line {number}: column {column!r} holds a compressed (base64, "
        "pickled) value; policyloop never unpickles input, since unpickling runs code chosen by "
        "whoever wrote the file. Write the batches without compression "
        "(RLlib: output_compress_columns=[]) and import again"
    )


def read_batch(
    batch: dict[str, Any],
    number: int,
    path: str,
    options: ImportOptions,
    maker: StepMaker,
    names: list[str] | None,
) -> Generator[SourceItem, None, list[str] | None]:
    """The steps of one SampleBatch (line ``number``); returns the state names in use."""
    checked = check_batch(batch, number, path, options, maker, names)
    if type(checked) is Reject:
        if maker.owns_lines:
            yield checked
        return names
    assert isinstance(checked, CheckedBatch)
    yield from steps(batch, number, checked, options, maker, range(checked.n))
    return checked.names


class CheckedBatch(NamedTuple):
    """A SampleBatch whose columns are lists of ``n`` entries: its observations as one
    ``n`` x width array and the state names they take."""

    n: int
    obs: np.ndarray
    names: list[str]


def check_batch(
    batch: dict[str, Any],
    number: int,
    path: str,
    options: ImportOptions,
    maker: StepMaker,
    names: list[str] | None,
) -> CheckedBatch | Reject:
    """The batch's shape checked (a reject of the whole line, or an error for the file)."""
    if batch.get("type") == "MultiAgentBatch" or "policy_batches" in batch:
        raise ImportFormatError(
            f"{_FORMAT}: {path} line {number}: a MultiAgentBatch; import single-agent batches "
            "(one policy's SampleBatch per line)"
        )
    for column, value in batch.items():
        if type(value) is str and column not in ("type",):
            raise _packed(batch, column, path, number)
    where = Where("line", number)
    missing = [c for c in _COLUMNS if c not in batch]
    if missing:
        raise ImportFormatError(f"{_FORMAT}: {path} line {number}: no column {missing[0]!r}")
    if "action_prob" not in batch and "action_logp" not in batch and options.logger is None:
        raise missing_propensities(_FORMAT, f"{path} line {number}", "action_prob, action_logp")
    n = len(batch["actions"]) if type(batch["actions"]) is list else -1
    for column in (*_COLUMNS, *_OPTIONAL):
        value = batch.get(column)
        if value is not None and (type(value) is not list or len(value) != n):
            shown = len(value) if type(value) is list else type(value).__name__
            return Reject(
                where,
                "malformed",
                f"column {column!r} has {shown} entries but actions has {n}: a batch's "
                "columns must be lists of one entry per step",
            )
    try:
        obs = np.asarray(batch["obs"], dtype=np.float64).reshape(n, -1)
    except (ValueError, TypeError) as exc:
        return Reject(
            where, "malformed", f"column 'obs': not arrays of numbers of one shape ({exc})"
        )
    described = _described_names(batch, obs.shape[1]) if options.obs_names is None else None
    if described is not None:
        names = described
    elif names is None or len(names) != obs.shape[1]:
        names = obs_names_for(obs.shape[1], options, f"{path} line {number}")
    return CheckedBatch(n, obs, names)


def _present(state: dict[str, float], absent: Any) -> dict[str, float]:
    """The state without the features ``policyloop export`` marked absent (NaN in ``obs``)."""
    if type(absent) is not list:
        return state
    drop = set(absent)
    return {k: v for k, v in state.items() if k not in drop}


def _described_names(batch: dict[str, Any], width: int) -> list[str] | None:
    """The obs names ``policyloop export`` wrote in the line's first info, if any."""
    infos = batch.get("infos")
    first = infos[0] if type(infos) is list and infos and type(infos[0]) is dict else None
    extra = first.get("policyloop") if first is not None else None
    names = extra.get("obs_names") if type(extra) is dict else None
    if type(names) is list and len(names) == width and all(type(n) is str for n in names):
        return names
    return None


def steps(
    batch: dict[str, Any],
    number: int,
    checked: CheckedBatch,
    options: ImportOptions,
    maker: StepMaker,
    rows: Iterable[int],
) -> Iterator[SourceItem]:
    """The row path: the items of the batch's ``rows`` (indices, ascending), one by one."""
    names, obs = checked.names, checked.obs
    actions, rewards = batch["actions"], batch["rewards"]
    eps, t = batch["eps_id"], batch["t"]
    ts_default = options.ts_ms
    terminateds = batch.get("terminateds")
    truncateds = batch.get("truncateds")
    dones = batch.get("dones") if terminateds is None else None
    infos = batch.get("infos")
    probs = batch.get("action_prob")
    logps = batch.get("action_logp") if probs is None else None
    possible = maker.possible(None)
    keep = None if options.shard is None else {e: maker.mine(e) for e in set(map(str, eps))}
    for i in rows:
        if keep is not None and not keep[str(eps[i])]:
            continue  # another worker's episode
        where = Where("line", number, i)
        extra = infos[i].get("policyloop") if infos and type(infos[i]) is dict else None
        if type(extra) is not dict:
            extra = {}
        end: bool | None = None
        if terminateds is not None and terminateds[i]:
            end = True
        elif truncateds is not None and truncateds[i]:
            end = False
        elif dones is not None and dones[i]:
            info = infos[i] if infos and type(infos[i]) is dict else {}
            end = not info.get("TimeLimit.truncated", False)
        propensity = probs[i] if probs is not None else None
        if logps is not None and type(logps[i]) in (int, float):
            propensity = math.exp(logps[i])
        yield maker.make(
            where,
            eps[i],
            t[i],
            extra.get("ts", ts_default),
            _present(dict(zip(names, obs[i].tolist(), strict=True)), extra.get("absent")),
            actions[i],
            maker.possible(extra["possible_actions"]) if "possible_actions" in extra else possible,
            propensity,
            rewards[i],
            end,
            action_probs=extra.get("action_probs"),
            policy_version=extra.get("policy_version"),
            decision_id=extra.get("decision_id"),
            metrics=extra.get("metrics"),
            reward_count=extra.get("reward_count"),
        )

"""Train/eval split by a stable hash of ``episode_id``.

Counterfactual evaluation is only honest on episodes the candidate never trained on, and the
same episode must land on the same side in every run (re-runs, larger windows, other readers),
so the side is a pure function of ``(seed, episode_id)``: independent of row order, table
version and of which other episodes were read.

The split costs no memory when the rows already have the train episodes first and the eval
episodes last (what :func:`learner.data.read_logged` gives with ``eval_last``): both sides are
then views of the data's arrays. In any other order they are copies.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from learner.data.logged import LoggedData

__all__ = ["SplitRule", "eval_share_of", "split_by_episode"]


@dataclass(frozen=True)
class SplitRule:
    """Which episodes are eval episodes: those whose share is below ``eval_fraction``."""

    eval_fraction: float
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.eval_fraction < 1.0:
            raise ValueError(
                f"eval_fraction={self.eval_fraction}: must be strictly between 0 and 1"
            )


def eval_share_of(episode_id: str, seed: int) -> float:
    """A uniform number in [0, 1) fixed by ``(seed, episode_id)``; below the eval fraction
    means the episode is an eval episode."""
    digest = hashlib.blake2b(f"{seed}\x1f{episode_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def split_by_episode(
    data: LoggedData, eval_fraction: float, seed: int = 0
) -> tuple[LoggedData, LoggedData]:
    """``(train, eval)``: every row of an episode goes to the same side (see module doc).

    Either side may be empty for very small data; callers decide whether that is enough.
    """
    rule = SplitRule(eval_fraction, seed)
    if len(data) == 0:
        return data, data
    is_eval = _eval_rows(data, rule)
    first_eval = int(np.argmax(is_eval)) if is_eval.any() else len(data)
    if is_eval[first_eval:].all():
        return data.subset(slice(0, first_eval)), data.subset(slice(first_eval, len(data)))
    return data.subset(~is_eval), data.subset(is_eval)


def _eval_rows(data: LoggedData, rule: SplitRule) -> np.ndarray:
    """Per row, whether its episode is an eval episode: one hash per run of rows of the same
    episode (a run per episode, since an episode's rows are contiguous)."""
    ids = data.episode_ids
    starts = np.concatenate(([0], np.flatnonzero(ids[1:] != ids[:-1]) + 1))
    run_is_eval = np.fromiter(
        (eval_share_of(str(e), rule.seed) < rule.eval_fraction for e in ids[starts]),
        dtype=bool,
        count=len(starts),
    )
    return np.repeat(run_is_eval, np.diff(np.append(starts, len(ids))))

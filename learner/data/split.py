"""Train/eval split by a stable hash of ``episode_id``.

Counterfactual evaluation is only honest on episodes the candidate never trained on, and the
same episode must land on the same side in every run (re-runs, larger windows, other readers),
so the side is a pure function of ``(seed, episode_id)``: independent of row order, table
version and of which other episodes were read.
"""

from __future__ import annotations

import hashlib

import numpy as np

from learner.data.logged import LoggedData

__all__ = ["eval_share_of", "split_by_episode"]


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
    if not 0.0 < eval_fraction < 1.0:
        raise ValueError(f"eval_fraction={eval_fraction}: must be strictly between 0 and 1")
    if len(data) == 0:
        return data, data
    unique, inverse = np.unique(data.episode_ids.astype(str), return_inverse=True)
    shares = np.fromiter((eval_share_of(e, seed) for e in unique), dtype=np.float64)
    is_eval = (shares < eval_fraction)[inverse]
    return data.subset(~is_eval), data.subset(is_eval)

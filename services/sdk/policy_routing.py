"""Which episodes a rollout candidate serves: a stable hash of ``episode_id``.

The bucket of an episode is the first 8 bytes of its blake2b digest read as an integer and
scaled to [0, 1). It is the same in every process, on every machine and across restarts (no
Python ``hash`` salt), so a fleet of clients agrees on each episode without talking to each
other, and raising the fraction only adds episodes to the candidate's share (an episode whose
bucket is below 5 % is also below 25 %).
"""

from __future__ import annotations

import hashlib

__all__ = ["episode_bucket", "routes_to_candidate"]

_SCALE = float(1 << 64)


def episode_bucket(episode_id: str) -> float:
    """The episode's position in [0, 1), uniform over episode ids."""
    digest = hashlib.blake2b(episode_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def routes_to_candidate(episode_id: str, fraction: float) -> bool:
    """True iff the episode belongs to the candidate at this rollout ``fraction``."""
    return fraction > 0.0 and episode_bucket(episode_id) < fraction

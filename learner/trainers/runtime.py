"""What every trainer loop shares: seeded/deterministic torch, progress, divergence checks.

Kept apart from the algorithms so the loops themselves stay a few tensor operations per step
(the speed target is several times d3rlpy's samples/s).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

__all__ = ["DivergenceMonitor", "progress_bar", "torch_session"]


@contextlib.contextmanager
def torch_session(seed: int, deterministic: bool, num_threads: int | None) -> Iterator[None]:
    """Seed torch, and set determinism and thread count for the duration only."""
    old_det = torch.are_deterministic_algorithms_enabled()
    old_threads = torch.get_num_threads()
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(deterministic)
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old_det)
        if num_threads is not None:
            torch.set_num_threads(old_threads)


@contextlib.contextmanager
def progress_bar(description: str, total: int, enabled: bool) -> Iterator[Progress | None]:
    """A rich progress bar of gradient steps (or nothing when disabled)."""
    if not enabled:
        yield None
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps"),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns) as bar:
        bar.add_task(description, total=total, status="")
        yield bar


class DivergenceMonitor:
    """Decides that training diverged: a non-finite loss, or Q-values beyond what the rewards
    allow (``q_limit``), which on offline data means extrapolation error feeding on itself."""

    def __init__(self, q_limit: float) -> None:
        self.q_limit = q_limit
        self.reason: str | None = None

    def check(self, step: int, loss: float, q_abs_max: float) -> bool:
        """Record the reason and return True when training should stop."""
        if not math.isfinite(loss):
            self.reason = f"loss became {loss} at step {step}"
        elif not math.isfinite(q_abs_max):
            self.reason = f"Q-values became {q_abs_max} at step {step}"
        elif q_abs_max > self.q_limit:
            self.reason = (
                f"Q-values exploded at step {step}: max |Q| = {q_abs_max:.4g} exceeds the "
                f"limit {self.q_limit:.4g} that the rewards allow"
            )
        return self.reason is not None

"""Run small torch models on one CPU thread.

CPE's models are tiny MLPs on mini-batches of a few hundred rows: intra-op parallelism costs
more in synchronization than it gains (measured 17x slower with 2 threads than with 1 on the
shared 2-core dev machine). The previous thread count is restored afterwards, so the caller's
own torch work (the trainer) is unaffected.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["torch_threads"]


@contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)

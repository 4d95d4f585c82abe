"""Smoke mode: every benchmark at tiny sizes, so that ``make test`` proves each one still starts.

A benchmark that cannot start (a missing dependency, an API that moved) should fail CI, not
surprise the next person who measures. ``python -m tests.benchmarks --smoke`` sets
:data:`SMOKE_VAR` for the benchmark processes; each benchmark picks its sizes with
:func:`sized` and its exit code with :func:`exit_code`. A smoke run's figures mean nothing and
its targets are not judged: it passes when the benchmark ran to the end.
"""

from __future__ import annotations

import os
from typing import TypeVar

__all__ = ["SMOKE", "SMOKE_VAR", "exit_code", "sized"]

SMOKE_VAR = "POLICYLOOP_BENCH_SMOKE"
SMOKE = os.environ.get(SMOKE_VAR) == "1"

T = TypeVar("T")


def sized(full: T, tiny: T) -> T:
    """``full`` for a real measurement, ``tiny`` in smoke mode."""
    return tiny if SMOKE else full


def exit_code(met: bool) -> int:
    """0 when the target was met; in smoke mode 0 whenever the benchmark got this far."""
    if SMOKE:
        print("smoke run: tiny sizes, the target is not judged")
        return 0
    return 0 if met else 1

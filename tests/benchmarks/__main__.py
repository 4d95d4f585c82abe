"""Run the benchmarks: ``python -m tests.benchmarks [--smoke] [NAME ...]`` (``make bench``).

Each ``tests/benchmarks/bench_<name>.py`` module exposes ``main() -> int``; it prints its
figures, the comparison measured in the same run, and the command that reproduces it. They run
one after another in separate processes so that one benchmark's threads do not skew the next.
``--smoke`` runs them at tiny sizes without judging targets (``tests/benchmarks/smoke.py``):
``make test`` does, so that a benchmark that can no longer start fails CI.
"""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
from pathlib import Path

from tests.benchmarks.smoke import SMOKE_VAR


def available() -> list[str]:
    here = Path(__file__).parent
    return sorted(
        m.name.removeprefix("bench_")
        for m in pkgutil.iter_modules([str(here)])
        if m.name.startswith("bench_")
    )


def main(argv: list[str]) -> int:
    env = dict(os.environ)
    if "--smoke" in argv:
        argv = [a for a in argv if a != "--smoke"]
        env[SMOKE_VAR] = "1"
    names = argv or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        print(f"unknown benchmark(s) {unknown}; available: {available()}", file=sys.stderr)
        return 2
    failed = []
    for name in names:
        print(f"\n=== benchmark {name}: python -m tests.benchmarks {name}", flush=True)
        code = subprocess.call(
            [
                sys.executable,
                "-c",
                f"import sys, tests.benchmarks.bench_{name} as b; sys.exit(b.main())",
            ],
            env=env,
        )
        if code:
            failed.append(name)
    if failed:
        print(f"benchmarks that missed their target or failed: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

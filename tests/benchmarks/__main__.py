"""Run the benchmarks: ``python -m tests.benchmarks [NAME ...]`` (``make bench``).

Each ``tests/benchmarks/bench_<name>.py`` module exposes ``main() -> int``; it prints its
figures, the comparison measured in the same run, and the command that reproduces it. They run
one after another in separate processes so that one benchmark's threads do not skew the next.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path


def available() -> list[str]:
    here = Path(__file__).parent
    return sorted(
        m.name.removeprefix("bench_")
        for m in pkgutil.iter_modules([str(here)])
        if m.name.startswith("bench_")
    )


def main(argv: list[str]) -> int:
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
            ]
        )
        if code:
            failed.append(name)
    if failed:
        print(f"benchmarks that missed their target or failed: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

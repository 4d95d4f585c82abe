"""The reject file of one imported source: every refused row, one JSON line each.

Bad rows are never silent: each line names the source file, where in it (``line`` or ``row``,
1-based, and ``index`` within an RLlib batch), the sessionizer's reason code (``invalid:<field>``,
``duplicate_step``, ``late``, ``after_episode_end``, ``malformed``) and the rule in words.
The file is written completely (and fsynced) before the rows' Delta commit, under a name of the
source's content hash, so a re-run after a crash rewrites the same file and a committed import
always has its rejects on disk.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import IO

from services.interop.source import Reject

__all__ = ["RejectFile"]

_DETAIL_MAX = 1000


class RejectFile:
    """Writes rejects of ``source`` to ``<dir>/<name>.<sha256[:12]>.rejects.jsonl`` (created on
    the first reject only) and counts them by reason."""

    def __init__(
        self,
        rejects_dir: str | os.PathLike[str],
        source: str,
        sha256: str,
        part: int | None = None,
    ) -> None:
        self.source = source
        name = f"{Path(source).name}.{sha256[:12]}.rejects"
        if part is not None:  # one import worker's share, merged by the importer (absorb)
            name += f".part{part}"
        self.path = Path(rejects_dir) / f"{name}.jsonl"
        self.by_reason: Counter[str] = Counter()
        self._fh: IO[str] | None = None
        self._tmp = self.path.with_name(self.path.name + ".tmp")

    def _open(self) -> IO[str]:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self._tmp.open("w", encoding="utf-8")
        return self._fh

    def absorb(self, part: Path, by_reason: dict[str, int]) -> None:
        """Append an import worker's sealed reject part (then deleted) and its counts."""
        fh = self._open()
        with part.open(encoding="utf-8") as lines:
            for line in lines:
                fh.write(line)
        part.unlink()
        self.by_reason.update(by_reason)

    def __call__(self, reject: Reject) -> None:
        fh = self._open()
        record = {
            "source": self.source,
            **reject.where.as_dict(),
            "reason": reject.reason,
            "detail": reject.detail[:_DETAIL_MAX],
        }
        fh.write(json.dumps(record) + "\n")
        self.by_reason[reject.reason] += 1

    @property
    def count(self) -> int:
        return sum(self.by_reason.values())

    def seal(self) -> Path | None:
        """Flush, fsync and move the file into place (before the commit); None: no reject."""
        if self._fh is None:
            return None
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        self._fh = None
        os.replace(self._tmp, self.path)
        return self.path

    def discard(self) -> None:
        """The import failed: leave no partial reject file behind."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        self._tmp.unlink(missing_ok=True)

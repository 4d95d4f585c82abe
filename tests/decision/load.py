"""A small bounded load generator for the decision tests: threads posting decisions to a local
server, recording every reply (and every failure) with its time."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.decision.conftest import STATE

__all__ = ["Load", "Reply"]


@dataclass(frozen=True)
class Reply:
    """One request: when it was sent and answered, and the decision (None if it failed)."""

    sent: float
    answered: float
    status: int  # 0: no HTTP reply (connection refused or reset)
    decision: dict[str, Any] | None
    episode_start: bool


@dataclass
class Load:
    """``threads`` clients playing episodes of ``steps`` decisions (and an end unless
    ``end`` is False) against ``url`` until :meth:`stop`; at most ``max_s`` seconds."""

    url: str
    threads: int = 4
    steps: int = 1
    end: bool = True
    max_s: float = 60.0
    replies: list[Reply] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)  # statuses of the ends
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Load:
        deadline = time.monotonic() + self.max_s
        for _ in range(self.threads):
            thread = threading.Thread(target=self._run, args=(deadline,), daemon=True)
            thread.start()
            self._workers.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._workers:
            thread.join(30)

    def _run(self, deadline: float) -> None:
        with httpx.Client(base_url=self.url, timeout=10.0) as http:
            while not self._stop.is_set() and time.monotonic() < deadline:
                episode = None
                for step in range(self.steps):
                    body: dict[str, Any] = {"state": STATE, "possible_actions": [0, 1]}
                    if episode is not None:
                        body["episode_id"] = episode
                    sent = time.monotonic()
                    try:
                        reply = http.post("/v1/decisions", json=body)
                        status = reply.status_code
                        decision = reply.json() if status == 200 else None
                    except httpx.TransportError:
                        status, decision = 0, None
                    # list.append is atomic: the threads share the lists without a lock
                    self.replies.append(Reply(sent, time.monotonic(), status, decision, step == 0))
                    if decision is None:
                        break
                    episode = decision["episode_id"]
                if self.end and episode is not None:
                    try:
                        status = http.post(
                            f"/v1/episodes/{episode}/end", json={"terminal": True}
                        ).status_code
                    except httpx.TransportError:
                        status = 0
                    self.ends.append(status)

    def acknowledged(self) -> list[Reply]:
        return [r for r in self.replies if r.decision is not None]

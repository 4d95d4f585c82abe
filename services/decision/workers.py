"""Which worker owns an episode, and forwarding a request to it.

Why: an episode's state (its next step, the version it sticks to, a held Personalizer event)
lives in one ``PolicyClient``, in one process. With ``--workers K`` the kernel spreads
connections over the K workers, so a request can reach a worker that does not own its episode.
The owner is a stable hash of the episode id; a new episode's id is drawn so that the worker
that made it owns it, and any other worker forwards the request's bytes unchanged to the owner
over the owner's private Unix socket (``<run_dir>/<port>/worker-<k>.sock``, in a 0700 folder).
The owner answers; the reply is passed back as it is. Requests that arrive on that socket are
never forwarded again and skip the API key and rate checks (the first worker made them).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

__all__ = ["ForwardedReply", "WorkerRing", "socket_dir"]


def socket_dir(run_dir: str, port: int) -> Path:
    """The folder of one service's worker sockets (private to this user)."""
    path = Path(run_dir) / f"port-{port}"
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


@dataclass(frozen=True, slots=True)
class ForwardedReply:
    """The owner's reply, passed back unchanged."""

    status: int
    body: bytes
    content_type: str


class WorkerRing:
    """Worker ``index`` of ``count``: who owns what, and the way to the others."""

    def __init__(self, index: int, count: int, sockets: Path | None, tls: bool) -> None:
        self.index = index
        self.count = count
        self.sockets = sockets
        self._scheme = "https" if tls else "http"
        self._clients: dict[int, httpx.AsyncClient] = {}
        # new ids: a random prefix per process and a counter (a random draw per id costs a
        # system call, which is most of a decision's cost in some sandboxes)
        self._id_prefix = secrets.token_hex(8)
        self._ids = itertools.count()

    def socket_path(self, index: int) -> str:
        assert self.sockets is not None
        return str(self.sockets / f"worker-{index}.sock")

    def owner(self, episode_id: str) -> int:
        """The worker that serves ``episode_id`` (0 with one worker)."""
        if self.count == 1:
            return 0
        digest = hashlib.blake2b(episode_id.encode("utf-8", "surrogatepass"), digest_size=8)
        return int.from_bytes(digest.digest(), "big") % self.count

    def new_episode_id(self) -> str:
        """A fresh episode id that this worker owns."""
        while True:
            episode_id = f"{self._id_prefix}{next(self._ids):x}"
            if self.owner(episode_id) == self.index:
                return episode_id

    async def forward(
        self, index: int, method: str, path: str, body: bytes, content_type: str | None
    ) -> ForwardedReply:
        """Send the request to worker ``index`` and return its reply (raises ``httpx`` errors
        when that worker is down, e.g. restarting)."""
        client = self._clients.get(index)
        if client is None:
            import httpx

            transport = httpx.AsyncHTTPTransport(uds=self.socket_path(index), verify=False)
            client = self._clients[index] = httpx.AsyncClient(
                transport=transport, base_url=f"{self._scheme}://worker-{index}", timeout=30.0
            )
        headers = {"content-type": content_type} if content_type else {}
        reply = await client.request(method, path, content=body, headers=headers)
        return ForwardedReply(
            reply.status_code, reply.content, reply.headers.get("content-type", "")
        )

    async def close(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

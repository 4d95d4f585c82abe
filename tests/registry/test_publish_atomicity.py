"""Publishing is atomic: a publisher dying before CURRENT moves leaves CURRENT intact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from services.registry import Registry
from tests.registry.tiny_policy import manifest

REPO_ROOT = Path(__file__).resolve().parents[2]


class _Crash(RuntimeError):
    pass


def test_exception_between_writing_files_and_swapping_current_keeps_current(
    tmp_path, tiny_bytes, other_bytes, monkeypatch
):
    registry = Registry(str(tmp_path / "registry"), "ranker")
    registry.publish(tiny_bytes, manifest())

    def crash(self, version, *, event):
        raise _Crash(f"crash before CURRENT -> {version}")

    monkeypatch.setattr(Registry, "_swap_current", crash)
    with pytest.raises(_Crash):
        registry.publish(other_bytes, manifest())
    monkeypatch.undo()

    assert registry.current() == "v1"
    module, loaded = registry.load()  # verifies the sha256 of what CURRENT points at
    assert loaded["version"] == "v1"
    assert module is not None
    # the orphan version is complete and verified too, it is simply not promoted
    assert registry.verify("v2")["sha256"] != loaded["sha256"]


_KILLED_PUBLISHER = textwrap.dedent(
    """
    import os, signal, sys
    from services.registry import Registry
    from tests.registry.tiny_policy import manifest, policy_bytes

    def die(self, version, *, event):
        os.kill(os.getpid(), signal.SIGKILL)

    Registry._swap_current = die
    Registry(sys.argv[1], "ranker").publish(policy_bytes(2.0), manifest())
    """
)


def test_publisher_killed_with_sigkill_before_swapping_current_keeps_current(tmp_path, tiny_bytes):
    uri = str(tmp_path / "registry")
    registry = Registry(uri, "ranker")
    registry.publish(tiny_bytes, manifest())

    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_PUBLISHER, uri],
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()

    assert registry.current() == "v1"
    _, loaded = registry.load()
    assert loaded["version"] == "v1"
    leftovers = [n for n in os.listdir(f"{uri}/ranker") if n.startswith(".tmp-")]
    assert leftovers == []  # the version dir was renamed into place before the kill
    assert registry.publish(tiny_bytes, manifest()) == "v3"  # v2 is never reused


def test_crash_while_writing_the_version_directory_leaves_no_version(
    tmp_path, tiny_bytes, monkeypatch
):
    registry = Registry(str(tmp_path / "registry"), "ranker")
    registry.publish(tiny_bytes, manifest())

    def fail_rename(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "rename", fail_rename)
    with pytest.raises(OSError, match="No space"):
        registry.publish(tiny_bytes, manifest())
    monkeypatch.undo()

    assert registry.versions() == ["v1"]
    assert registry.current() == "v1"
    assert not [n for n in os.listdir(f"{registry.uri}/ranker") if n.startswith(".tmp-")]

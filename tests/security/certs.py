"""Throwaway certificate authorities and a server certificate for the TLS tests.

Made with the ``openssl`` command line because the ``cryptography`` package is not a dependency
of the project. A machine without ``openssl`` fails these tests with a message saying so; they
are never skipped.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TestCertificates", "make_certificates"]


@dataclass(frozen=True)
class TestCertificates:
    """Paths of the PEM files: the CA that signed the server's certificate, and one that did not."""

    ca: Path
    server_cert: Path
    server_key: Path
    other_ca: Path

    __test__ = False  # a data holder, not a pytest test class


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{done.stderr}")


def _make_ca(name: str, cwd: Path) -> None:
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", f"{name}.key", "-out", f"{name}.pem", "-subj", f"/CN=policyloop test {name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=cwd,
    )  # fmt: skip


def make_certificates(directory: Path) -> TestCertificates:
    """A CA, a server certificate it signed for ``127.0.0.1``/``localhost``, and a second CA."""
    if shutil.which("openssl") is None:
        raise RuntimeError(
            "the TLS tests need the openssl command line to make throwaway certificates: "
            "install it (apt-get install openssl)"
        )
    directory.mkdir(parents=True, exist_ok=True)
    _make_ca("ca", directory)
    _make_ca("other-ca", directory)
    (directory / "server.ext").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
        "basicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
    )
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=localhost",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext",
        cwd=directory,
    )  # fmt: skip
    return TestCertificates(
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        other_ca=directory / "other-ca.pem",
    )

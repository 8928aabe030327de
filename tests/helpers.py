"""Small helpers shared by tests (import as ``from helpers import ...``)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def require_peer(name: str) -> str:
    """The path of command ``name`` (openssl, gnutls-cli, tshark, curl, ...).

    Missing: fail on CI (CI=true, where the peers must be installed), skip elsewhere.
    """
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (make peers installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def require_netns() -> None:
    """Check that a private network namespace can be made (``unshare -n`` with loopback
    up): peers that bind every interface (gnutls-serv, selfserv) run only inside one.
    Fail on CI, skip elsewhere."""
    require_peer("ip")
    unshare = require_peer("unshare")
    try:
        probe = subprocess.run([unshare, "-n", "ip", "link", "set", "lo", "up"],
                               capture_output=True, timeout=10, check=False)
        problem = probe.stderr.decode(errors="replace") if probe.returncode else ""
    except (OSError, subprocess.TimeoutExpired) as exc:
        problem = repr(exc)
    if problem:
        message = f"cannot make a private network namespace (unshare -n): {problem}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@dataclass(frozen=True)
class CertFiles:
    """Files of one dev-CA-issued localhost certificate (see the ``certs`` fixture)."""

    key_type: str
    cert_path: Path  # the leaf alone
    key_path: Path  # PKCS#8 PEM, unencrypted
    chain_path: Path  # leaf + CA
    ca_path: Path  # the CA certificate to trust

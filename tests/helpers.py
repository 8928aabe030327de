"""Small helpers shared by tests (import as ``from helpers import ...``)."""

from __future__ import annotations

import os
import shutil
import socket
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


@dataclass(frozen=True)
class CertFiles:
    """Files of one dev-CA-issued localhost certificate (see the ``certs`` fixture)."""

    key_type: str
    cert_path: Path  # the leaf alone
    key_path: Path  # PKCS#8 PEM, unencrypted
    chain_path: Path  # leaf + CA
    ca_path: Path  # the CA certificate to trust

"""Shared fixtures. Keep this file small and generic; helpers live in helpers.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import CertFiles
from helpers import require_peer as _require_peer
from tlsmith.x509.devca import DevCA

#: Key types the ``certs`` fixture provides.
CERT_KEY_TYPES = ("rsa-2048", "ecdsa-p256", "ecdsa-p384", "ed25519")


@pytest.fixture(scope="session")
def devca(tmp_path_factory: pytest.TempPathFactory) -> DevCA:
    """A development CA saved in a session temp dir (ca.pem, ca.key)."""
    return DevCA.load_or_create(tmp_path_factory.mktemp("devca"))


@pytest.fixture(scope="session")
def certs(devca: DevCA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, CertFiles]:
    """key_type -> localhost/127.0.0.1/::1 server certificate files issued by ``devca``."""
    directory = tmp_path_factory.mktemp("certs")
    assert devca.ca_path is not None
    result: dict[str, CertFiles] = {}
    for key_type in CERT_KEY_TYPES:
        issued = devca.issue(key_type=key_type).write(directory, f"localhost-{key_type}")
        assert issued.cert_path and issued.key_path and issued.chain_path
        result[key_type] = CertFiles(
            key_type=key_type,
            cert_path=issued.cert_path,
            key_path=issued.key_path,
            chain_path=issued.chain_path,
            ca_path=Path(devca.ca_path),
        )
    return result


@pytest.fixture
def require_peer() -> Callable[[str], str]:
    """``require_peer("openssl")`` -> its path; skips (fails when CI=true) if missing."""
    return _require_peer


@pytest.fixture
def serve_factory(certs: dict[str, CertFiles], tmp_path: Path) -> Iterator[Any]:
    """``start(*args)``: a ``tlsmith serve`` subprocess with the ECDSA P-256 certificate
    and ``args`` (see peers.start_tlsmith_serve_cli); every one is stopped afterwards."""
    from peers import PeerProcess, start_tlsmith_serve_cli

    started: list[PeerProcess] = []

    def start(*args: str) -> PeerProcess:
        serve = start_tlsmith_serve_cli(certs["ecdsa-p256"], *args, log_dir=tmp_path)
        started.append(serve)
        return serve

    yield start
    for serve in started:
        serve.stop()

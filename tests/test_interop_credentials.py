"""Client credential selection and unchecked OCSP against ``openssl s_server`` on
127.0.0.1, both versions: of two client certificates ours sends the one whose key fits
the server's ``-client_sigalgs`` (RFC 8446 §4.4.2.2, RFC 5246 §7.4.4) or whose issuer its
CA list names (``-CAfile``; RFC 8446 §4.2.4), and a non-verifying client with
``ocsp_unchecked`` hands over what ``-status_file`` stapled (RFC 6066 §8)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import CertFiles, require_peer
from peers import PeerProcess, start_s_server
from tlsmith.codec.enums import ProtocolVersion
from tlsmith.config import CertifiedKey, ClientConfig
from tlsmith.io.blocking import connect
from tlsmith.x509.devca import DevCA
from tlsmith.x509.verify import TrustStore

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

TIMEOUT = 10.0
VERSIONS = {"tls13": ProtocolVersion.TLS13, "tls12": ProtocolVersion.TLS12}
OPENSSL_FLAG = {"tls13": "-tls1_3", "tls12": "-tls1_2"}


def _issue(ca: DevCA, name: str, key_type: str, directory: Path, *,
           must_match: bool = False) -> CertifiedKey:
    issued = ca.issue((name,), key_type=key_type, client=True).write(directory, name)
    assert issued.chain_path and issued.key_path
    key = CertifiedKey.from_files(issued.chain_path, issued.key_path)
    return CertifiedKey(key.chain, key.private_key, key.names, must_match_issuer=must_match)


@pytest.fixture(scope="module")
def creds(devca: DevCA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, CertifiedKey]:
    directory = tmp_path_factory.mktemp("creds")
    other = DevCA.create("tlsmith interop: a CA s_server does not name")
    return {
        "rsa": _issue(devca, "rsa.alice.example", "rsa-2048", directory),
        "ecdsa": _issue(devca, "ecdsa.alice.example", "ecdsa-p256", directory),
        "other-pinned": _issue(other, "other.alice.example", "ecdsa-p256", directory,
                               must_match=True),
        "pinned": _issue(devca, "pinned.alice.example", "ecdsa-p256", directory,
                         must_match=True),
    }


@pytest.fixture
def s_server(certs: dict[str, CertFiles], tmp_path: Path) -> Iterator[
        list[PeerProcess]]:
    require_peer("openssl")
    started: list[PeerProcess] = []
    yield started
    for peer in started:
        peer.stop()


def _start(started: list[PeerProcess], cert: CertFiles, version: str, *extra: str,
           log_dir: Path) -> PeerProcess:
    peer = start_s_server(cert, OPENSSL_FLAG[version], *extra, log_dir=log_dir,
                          tls13_only=False, line_buffered=True)
    started.append(peer)
    return peer


def _client(cert: CertFiles, version: str, **kw: object) -> ClientConfig:
    v = VERSIONS[version]
    kw.setdefault("trust", TrustStore.from_pem_file(cert.ca_path))
    return ClientConfig(server_name="localhost", min_version=v, max_version=v,
                        **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("sigalgs", "expected"), [
    ("ECDSA+SHA256", "ecdsa.alice.example"),
    ("rsa_pss_rsae_sha256", "rsa.alice.example"),
])
@pytest.mark.parametrize("version", VERSIONS)
def test_s_server_client_sigalgs_pick_our_credential(
        certs: dict[str, CertFiles], creds: dict[str, CertifiedKey],
        s_server: list[PeerProcess], tmp_path: Path, version: str, sigalgs: str,
        expected: str) -> None:
    cert = certs["ecdsa-p256"]
    assert cert.ca_path is not None
    peer = _start(s_server, cert, version, "-Verify", "1", "-CAfile", str(cert.ca_path),
                  "-client_sigalgs", sigalgs, log_dir=tmp_path)
    config = _client(cert, version, certificates=(creds["rsa"], creds["ecdsa"]))
    tls = connect("127.0.0.1", peer.port, config, timeout=TIMEOUT)
    try:
        assert tls.info.client_certificate_sent
        tls.sendall(b"hello-creds\n")
        out = peer.wait_for("hello-creds", timeout=TIMEOUT)
    finally:
        tls.close()
    assert f"subject=CN = {expected}" in out, out
    assert "verify error" not in out, out


@pytest.mark.parametrize("version", VERSIONS)
def test_s_server_ca_list_picks_the_must_match_issuer_credential(
        certs: dict[str, CertFiles], creds: dict[str, CertifiedKey],
        s_server: list[PeerProcess], tmp_path: Path, version: str) -> None:
    """s_server names the -CAfile subjects in its CertificateRequest."""
    cert = certs["ecdsa-p256"]
    assert cert.ca_path is not None
    peer = _start(s_server, cert, version, "-Verify", "1", "-CAfile", str(cert.ca_path),
                  log_dir=tmp_path)
    config = _client(cert, version, certificates=(creds["other-pinned"], creds["pinned"]),
                     fail_without_matching_certificate=True)
    tls = connect("127.0.0.1", peer.port, config, timeout=TIMEOUT)
    try:
        tls.sendall(b"hello-pinned\n")
        out = peer.wait_for("hello-pinned", timeout=TIMEOUT)
    finally:
        tls.close()
    assert "subject=CN = pinned.alice.example" in out, out


@pytest.mark.parametrize("version", VERSIONS)
def test_unchecked_staple_from_s_server(certs: dict[str, CertFiles],
                                        s_server: list[PeerProcess], tmp_path: Path,
                                        version: str) -> None:
    """Not even DER: a client that verifies nothing and checks nothing hands it over."""
    staple = tmp_path / "staple.der"
    staple.write_bytes(b"\x30\x03\x0a\x01\x06")  # OCSPResponse{unauthorized}, unsigned
    cert = certs["ecdsa-p256"]
    peer = _start(s_server, cert, version, "-status_file", str(staple), log_dir=tmp_path)
    config = _client(cert, version, trust=None, verify_certificates=False,
                     ocsp_unchecked=True)
    tls = connect("127.0.0.1", peer.port, config, timeout=TIMEOUT)
    try:
        assert tls.info.ocsp_response == staple.read_bytes()
        assert tls.info.revocation_state == "not_checked"
        assert tls.info.revocation is not None
        assert "not checked" in tls.info.revocation
    finally:
        tls.close()

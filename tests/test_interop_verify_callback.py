"""The application's verify callback against OpenSSL 3.0 on 127.0.0.1, both versions:

* our client pins a self-signed ``openssl s_server`` certificate with its callback (no
  trust store): accepted, and reported as accepted by the callback, not verified; a
  refusing callback sends certificate_unknown;
* our server (no client_trust) accepts any ``openssl s_client -cert`` certificate with
  its callback, and says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import CertFiles, require_peer
from peers import PeerProcess, run_s_client, start_s_server, tlsmith_server
from tlsmith.codec.enums import ProtocolVersion
from tlsmith.config import CertifiedKey, ClientConfig, ServerConfig
from tlsmith.errors import CertificateUnknown
from tlsmith.io.blocking import connect
from tlsmith.x509.callback import PeerCertificates, Verdict, accept, refuse

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

TIMEOUT = 10.0
VERSIONS = {"tls13": ProtocolVersion.TLS13, "tls12": ProtocolVersion.TLS12}
OPENSSL_FLAG = {"tls13": "-tls1_3", "tls12": "-tls1_2"}


def self_signed(directory: Path, name: str) -> CertFiles:
    """A self-signed P-256 certificate for CN=name made by ``openssl req -x509``."""
    key, cert = directory / f"{name}.key", directory / f"{name}.pem"
    subprocess.run(
        [require_peer("openssl"), "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}"],
        check=True, capture_output=True, timeout=30)
    return CertFiles("ecdsa-p256", cert, key, cert, cert)


def pin(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


@contextlib.contextmanager
def s_server(cert: CertFiles, version: str, log_dir: Path) -> Iterator[PeerProcess]:
    server = start_s_server(cert, OPENSSL_FLAG[version], log_dir=log_dir, tls13_only=False,
                            line_buffered=True)
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("version", ["tls13", "tls12"])
def test_our_client_pins_a_self_signed_s_server(tmp_path: Path, version: str) -> None:
    files = self_signed(tmp_path, "localhost")
    wanted = pin(CertifiedKey.from_files(files.chain_path, files.key_path).chain[0])
    seen: list[PeerCertificates] = []

    def pinned(peer: PeerCertificates) -> Verdict:
        seen.append(peer)
        return accept("pinned") if pin(peer.chain[0]) == wanted else refuse("not pinned")

    config = ClientConfig(server_name="localhost", verify_certificates=False,
                          verify_callback=pinned, min_version=VERSIONS[version],
                          max_version=VERSIONS[version])
    with s_server(files, version, tmp_path) as server:
        tls = connect("127.0.0.1", server.port, config, timeout=TIMEOUT)
        try:
            info = tls.info
            tls.sendall(b"hello-pinned\n")
            server.wait_for("hello-pinned", timeout=TIMEOUT)
        finally:
            tls.close()
    assert info.version == VERSIONS[version]
    assert info.certificate_accepted_by_callback and not info.certificate_verified
    assert len(seen) == 1 and seen[0].verified is None


@pytest.mark.parametrize("version", ["tls13", "tls12"])
def test_our_client_refuses_an_unpinned_s_server(tmp_path: Path, version: str) -> None:
    files = self_signed(tmp_path, "localhost")
    config = ClientConfig(server_name="localhost", verify_certificates=False,
                          verify_callback=lambda peer: refuse("not pinned"),
                          min_version=VERSIONS[version], max_version=VERSIONS[version])
    with s_server(files, version, tmp_path) as server:
        with pytest.raises(CertificateUnknown) as caught:
            connect("127.0.0.1", server.port, config, timeout=TIMEOUT).close()
        out = server.wait_for("certificate unknown", timeout=TIMEOUT)
    assert caught.value.check == "verify_callback_refused"
    assert "alert certificate unknown" in out, out


@pytest.mark.parametrize("version", ["tls13", "tls12"])
def test_our_server_accepts_any_s_client_certificate(certs: dict[str, CertFiles],
                                                     tmp_path: Path, version: str) -> None:
    client = self_signed(tmp_path, "alice.example")
    seen: list[PeerCertificates] = []

    def any_client(peer: PeerCertificates) -> Verdict:
        seen.append(peer)
        return accept("any client certificate")

    server_cert = certs["ecdsa-p256"]
    config = ServerConfig(certificates=(CertifiedKey.from_files(server_cert.chain_path,
                                                                server_cert.key_path),),
                          client_auth="require", verify_callback=any_client)
    with tlsmith_server(config) as srv:
        done = run_s_client(srv.port, OPENSSL_FLAG[version], "-CAfile",
                            str(server_cert.ca_path), "-verify_return_error",
                            "-servername", "localhost", "-cert", str(client.cert_path),
                            "-key", str(client.key_path), "-ign_eof",
                            stdin=b"GET / HTTP/1.0\r\n\r\n", timeout=TIMEOUT)
        served = srv.wait_served(0)
    assert served.error is None, served.error
    assert done.returncode == 0, done.text
    assert served.info is not None and served.info.version == VERSIONS[version]
    assert served.info.client_certificate_accepted_by_callback
    assert not served.info.client_certificate_verified
    assert len(seen) == 1 and seen[0].peer == "client" and seen[0].verified is None

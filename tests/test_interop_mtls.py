"""Mutual TLS against OpenSSL 3.0, both versions, on 127.0.0.1 (RFC 8446 §4.3.2,
§4.4.2; RFC 5246 §7.4.4, §7.4.6, §7.4.8):

* our client (library and ``tlsmith connect --cert/--key``) against
  ``openssl s_server -Verify 1 -CAfile ca.pem``;
* ``openssl s_client -cert/-key`` against our server (library and
  ``tlsmith serve --client-ca --require-client-cert``);
* the refusals: no client certificate where one is required.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import CertFiles, free_port, require_peer
from peers import PeerProcess, run_s_client, start_s_server, tlsmith_server, wait_until
from tlsmith.codec.enums import AlertDescription, ProtocolVersion
from tlsmith.config import CertifiedKey, ClientConfig, ServerConfig
from tlsmith.errors import AlertReceived, CertificateRequired, HandshakeFailure
from tlsmith.io.blocking import TLSSocket, connect
from tlsmith.x509.devca import DevCA
from tlsmith.x509.leaf import parse_der
from tlsmith.x509.verify import TrustStore

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

TIMEOUT = 10.0
VERSIONS = {"tls13": ProtocolVersion.TLS13, "tls12": ProtocolVersion.TLS12}
OPENSSL_FLAG = {"tls13": "-tls1_3", "tls12": "-tls1_2"}
GET = b"GET / HTTP/1.0\r\n\r\n"


@pytest.fixture(scope="module")
def alice(devca: DevCA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, CertFiles]:
    """Client certificates (clientAuth) for CN=alice.example, by key type."""
    directory = tmp_path_factory.mktemp("alice")
    assert devca.ca_path is not None
    out = {}
    for key_type in ("ecdsa-p256", "rsa-2048"):
        issued = devca.issue(("alice.example",), key_type=key_type, client=True).write(
            directory, f"alice-{key_type}")
        assert issued.cert_path and issued.key_path and issued.chain_path
        out[key_type] = CertFiles(key_type, issued.cert_path, issued.key_path,
                                  issued.chain_path, Path(devca.ca_path))
    return out


def client_config(server: CertFiles, version: ProtocolVersion,
                  client: CertFiles | None) -> ClientConfig:
    return ClientConfig(
        server_name="localhost", trust=TrustStore.from_pem_file(server.ca_path),
        min_version=version, max_version=version,
        certificate=(CertifiedKey.from_files(client.chain_path, client.key_path)
                     if client is not None else None))


def server_config(cert: CertFiles, client_auth: str) -> ServerConfig:
    return ServerConfig(certificates=(CertifiedKey.from_files(cert.chain_path,
                                                              cert.key_path),),
                        client_auth=client_auth,
                        client_trust=TrustStore.from_pem_file(cert.ca_path))


@contextlib.contextmanager
def s_server(cert: CertFiles, version: str, log_dir: Path) -> Iterator[PeerProcess]:
    server = start_s_server(cert, OPENSSL_FLAG[version], "-Verify", "1", "-CAfile",
                            str(cert.ca_path), log_dir=log_dir, tls13_only=False,
                            line_buffered=True)
    try:
        yield server
    finally:
        server.stop()


def subject(der: bytes) -> str:
    return parse_der(der).subject.rfc4514_string()


# -------------------------------------------------------------- our client, s_server


@pytest.mark.parametrize("key_type", ["ecdsa-p256", "rsa-2048"])
@pytest.mark.parametrize("version", ["tls13", "tls12"])
def test_our_client_certificate_accepted_by_s_server(
        certs: dict[str, CertFiles], alice: dict[str, CertFiles], tmp_path: Path,
        version: str, key_type: str) -> None:
    require_peer("openssl")
    server_cert = certs["ecdsa-p256"]
    with s_server(server_cert, version, tmp_path) as server:
        config = client_config(server_cert, VERSIONS[version], alice[key_type])
        tls = connect("127.0.0.1", server.port, config, timeout=TIMEOUT)
        try:
            info = tls.info
            assert info.version == VERSIONS[version]
            assert info.client_certificate_requested and info.client_certificate_sent
            tls.sendall(b"hello-from-alice\n")
            out = server.wait_for("hello-from-alice", timeout=TIMEOUT)
        finally:
            tls.close()
    # s_server verified our chain (depth 1 = the dev CA, depth 0 = our leaf) and shows it.
    assert "depth=0 CN = alice.example" in out, out
    assert "verify return:1" in out and "verify error" not in out, out
    assert "subject=CN = alice.example" in out, out


@pytest.mark.parametrize("version", ["tls13", "tls12"])
def test_tlsmith_connect_cli_with_client_certificate(
        certs: dict[str, CertFiles], alice: dict[str, CertFiles], tmp_path: Path,
        version: str) -> None:
    require_peer("openssl")
    server_cert, client = certs["ecdsa-p256"], alice["ecdsa-p256"]
    with s_server(server_cert, version, tmp_path) as server:
        done = subprocess.run(
            [sys.executable, "-m", "tlsmith.cli.main", "connect", f"127.0.0.1:{server.port}",
             "--servername", "localhost", "--cafile", str(server_cert.ca_path),
             "--cert", str(client.chain_path), "--key", str(client.key_path),
             "--send", "hello-cli"],
            capture_output=True, text=True, timeout=30, check=False)
        out = server.wait_for("hello-cli", timeout=TIMEOUT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "subject=CN = alice.example" in out, out


def test_cli_cert_needs_key(certs: dict[str, CertFiles]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tlsmith.cli.main", "connect", "127.0.0.1:1",
         "--cert", str(certs["ecdsa-p256"].chain_path)],
        capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode != 0
    assert "--key" in done.stdout + done.stderr


def test_our_client_without_certificate_tls13_certificate_required(
        certs: dict[str, CertFiles], tmp_path: Path) -> None:
    """TLS 1.3: the client's handshake is complete when it sends Finished; the server's
    certificate_required alert (RFC 8446 §4.4.2.4) comes after it and surfaces on the
    next read."""
    require_peer("openssl")
    server_cert = certs["ecdsa-p256"]
    with s_server(server_cert, "tls13", tmp_path) as server:
        config = client_config(server_cert, ProtocolVersion.TLS13, None)
        with pytest.raises(AlertReceived) as caught, contextlib.ExitStack() as stack:
            tls: TLSSocket = connect("127.0.0.1", server.port, config, timeout=TIMEOUT)
            stack.callback(tls.close)
            assert tls.info.client_certificate_requested
            assert not tls.info.client_certificate_sent
            tls.sendall(b"hello\n")
            tls.recv()
        server.wait_for("peer did not return a certificate", timeout=TIMEOUT)
    assert caught.value.description == AlertDescription.CERTIFICATE_REQUIRED


def test_our_client_without_certificate_tls12_handshake_failure(
        certs: dict[str, CertFiles], tmp_path: Path) -> None:
    """TLS 1.2: OpenSSL refuses the empty Certificate with handshake_failure during the
    handshake (RFC 5246 §7.4.6)."""
    require_peer("openssl")
    server_cert = certs["ecdsa-p256"]
    with s_server(server_cert, "tls12", tmp_path) as server:
        config = client_config(server_cert, ProtocolVersion.TLS12, None)
        with pytest.raises(AlertReceived) as caught:
            connect("127.0.0.1", server.port, config, timeout=TIMEOUT).close()
    assert caught.value.description == AlertDescription.HANDSHAKE_FAILURE


# -------------------------------------------------------------- s_client, our server


@pytest.mark.parametrize("key_type", ["ecdsa-p256", "rsa-2048"])
@pytest.mark.parametrize("version", ["tls13", "tls12"])
def test_s_client_certificate_accepted_by_our_server(
        certs: dict[str, CertFiles], alice: dict[str, CertFiles], version: str,
        key_type: str) -> None:
    require_peer("openssl")
    server_cert, client = certs["ecdsa-p256"], alice[key_type]
    with tlsmith_server(server_config(server_cert, "require")) as srv:
        done = run_s_client(srv.port, OPENSSL_FLAG[version], "-CAfile",
                            str(server_cert.ca_path), "-verify_return_error",
                            "-servername", "localhost", "-cert", str(client.cert_path),
                            "-key", str(client.key_path), "-ign_eof", stdin=GET,
                            timeout=TIMEOUT)
        served = srv.wait_served(0)
    assert served.error is None, served.error
    assert done.returncode == 0, done.text
    assert "tlsmith-info version=" in done.stdout
    assert served.info is not None
    assert served.info.version == VERSIONS[version]
    assert served.info.client_certificate_verified
    assert subject(served.info.client_certificates[0]) == "CN=alice.example"


@pytest.mark.parametrize(("version", "error", "alert_text"), [
    ("tls13", CertificateRequired, "certificate required"),
    ("tls12", HandshakeFailure, "handshake failure"),
])
def test_s_client_without_certificate_refused_by_our_server(
        certs: dict[str, CertFiles], version: str, error: type[Exception],
        alert_text: str) -> None:
    require_peer("openssl")
    server_cert = certs["ecdsa-p256"]
    with tlsmith_server(server_config(server_cert, "require")) as srv:
        done = run_s_client(srv.port, OPENSSL_FLAG[version], "-CAfile",
                            str(server_cert.ca_path), "-servername", "localhost",
                            "-ign_eof", stdin=GET, timeout=TIMEOUT)
        served = srv.wait_served(0)
    assert isinstance(served.error, error), served.error
    assert alert_text in done.text.lower(), done.text


def test_s_client_without_certificate_when_only_requested(certs: dict[str, CertFiles]
                                                          ) -> None:
    require_peer("openssl")
    server_cert = certs["ecdsa-p256"]
    with tlsmith_server(server_config(server_cert, "request")) as srv:
        done = run_s_client(srv.port, "-tls1_3", "-CAfile", str(server_cert.ca_path),
                            "-servername", "localhost", "-ign_eof", stdin=GET,
                            timeout=TIMEOUT)
        served = srv.wait_served(0)
    assert served.error is None and done.returncode == 0, done.text
    assert served.info is not None and served.info.client_certificates == ()


def test_tlsmith_serve_cli_requires_and_shows_client(
        certs: dict[str, CertFiles], alice: dict[str, CertFiles], tmp_path: Path) -> None:
    require_peer("openssl")
    server_cert, client = certs["ecdsa-p256"], alice["ecdsa-p256"]
    port = free_port()
    args = [sys.executable, "-m", "tlsmith.cli.main", "serve", "--port", str(port),
            "--cert", str(server_cert.chain_path), "--key", str(server_cert.key_path),
            "--client-ca", str(server_cert.ca_path), "--require-client-cert",
            "--max-connections", "2"]
    with PeerProcess(args, tmp_path / "serve.log", port=port) as serve:
        serve.wait_for("tlsmith serving", timeout=TIMEOUT)
        good = run_s_client(port, "-tls1_3", "-CAfile", str(server_cert.ca_path),
                            "-servername", "localhost", "-cert", str(client.cert_path),
                            "-key", str(client.key_path), "-ign_eof", stdin=GET,
                            timeout=TIMEOUT)
        bad = run_s_client(port, "-tls1_2", "-CAfile", str(server_cert.ca_path),
                           "-servername", "localhost", "-ign_eof", stdin=GET,
                           timeout=TIMEOUT)
        assert wait_until(lambda: serve.proc.poll() is not None, TIMEOUT), serve.output()
        log = serve.output()
    assert "Client certificate" in good.stdout and "CN=alice.example" in good.stdout
    assert "client=CN=alice.example (verified)" in log, log
    assert "failed" in log, log
    assert "handshake failure" in bad.text.lower(), bad.text

"""Never a false success: a client is "connected" only once the server has had its say.

In TLS 1.3 the server judges our certificate (or its absence) after our Finished
(RFC 8446 §4.4.2.4), so ``tlsmith connect`` and ``TLSSocket.server_verdict()`` wait for the
server's first post-handshake record; in TLS 1.2 the server's Finished already carries it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import CertFiles
from peers import start_s_server, tlsmith_server
from tlsmith.codec.enums import AlertDescription, ProtocolVersion
from tlsmith.config import CertifiedKey, ClientConfig, ServerConfig
from tlsmith.connection import TLSConnection
from tlsmith.errors import AlertReceived
from tlsmith.io.blocking import TLSSocket
from tlsmith.x509.verify import TrustStore

pytestmark = pytest.mark.interop
TIMEOUT = 20.0


def connect_json(port: int, cert: CertFiles, *args: str) -> tuple[int, dict[str, object]]:
    done = subprocess.run(
        [sys.executable, "-m", "tlsmith.cli.main", "connect", f"localhost:{port}",
         "--cafile", str(cert.ca_path), "--json", "--timeout", "5", *args],
        capture_output=True, text=True, timeout=TIMEOUT, env=dict(os.environ))
    return done.returncode, json.loads(done.stdout)


@pytest.mark.parametrize("version", ["-tls1_3", "-tls1_2"])
def test_connect_without_certificate_to_a_server_that_requires_one(
        certs: dict[str, CertFiles], tmp_path: Path, version: str) -> None:
    """`openssl s_server -Verify 1`: no certificate from us -> not "connected", exit 1,
    and the explanation says what to pass."""
    cert = certs["ecdsa-p256"]
    server = start_s_server(cert, "-www", version, "-Verify", "1", "-CAfile",
                            str(cert.ca_path), log_dir=tmp_path, tls13_only=False)
    try:
        code, out = connect_json(server.port, cert)
    finally:
        server.stop()
    assert code == 1
    assert out["ok"] is False
    assert out["error"] == "AlertReceived"
    assert "client certificate" in str(out["explanation"])
    if version == "-tls1_2":
        assert "--cert/--key" in str(out["explanation"])


def test_connect_reports_the_server_accepted_us(certs: dict[str, CertFiles],
                                                tmp_path: Path) -> None:
    """OpenSSL sends session tickets right after our Finished: that is its verdict."""
    cert = certs["ecdsa-p256"]
    server = start_s_server(cert, "-www", log_dir=tmp_path)
    try:
        code, out = connect_json(server.port, cert)
    finally:
        server.stop()
    assert code == 0 and out["ok"] is True
    assert out["version"] == "TLSv1.3"
    assert out["server_verdict"] == "accepted"


def test_a_silent_server_is_not_confirmed(certs: dict[str, CertFiles]) -> None:
    """A TLS 1.3 server that sends nothing after the handshake (tlsmith's with tickets=0):
    the JSON says the verdict was not confirmed; with --http the reply confirms it. With
    its default session tickets, the first ticket confirms it."""
    cert = certs["ecdsa-p256"]
    key = CertifiedKey.from_files(cert.chain_path, cert.key_path)
    with tlsmith_server(ServerConfig(certificates=(key,), tickets=0), "http") as server:
        code, out = connect_json(server.port, cert)
        assert code == 0 and out["server_verdict"] == "silent"
        code, out = connect_json(server.port, cert, "--http")
        assert code == 0 and out["server_verdict"] == "accepted"
    with tlsmith_server(ServerConfig(certificates=(key,)), "http") as server:
        code, out = connect_json(server.port, cert)
        assert code == 0 and out["server_verdict"] == "accepted"


def test_api_server_verdict_raises_the_refusal(certs: dict[str, CertFiles],
                                               tmp_path: Path) -> None:
    cert = certs["ecdsa-p256"]
    server = start_s_server(cert, "-www", "-Verify", "1", "-CAfile", str(cert.ca_path),
                            log_dir=tmp_path)
    try:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
        config = ClientConfig(server_name="localhost",
                              trust=TrustStore.from_pem_file(cert.ca_path))
        tls = TLSSocket(sock, TLSConnection(config))
        try:
            info = tls.do_handshake()  # our side of the handshake completes...
            assert info.version == ProtocolVersion.TLS13
            with pytest.raises(AlertReceived) as caught:  # ...but the server refuses us
                tls.server_verdict()
            assert caught.value.description == AlertDescription.CERTIFICATE_REQUIRED
        finally:
            tls.close()
    finally:
        server.stop()

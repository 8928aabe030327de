"""NPN and TLS 1.2 False Start against OpenSSL 3.0 (``s_server -nextprotoneg``,
``s_client -nextprotoneg``), both roles; each check reads what OpenSSL reports (its
-trace of the NextProto message, s_client's "Next protocol" line)."""

from __future__ import annotations

import socket
from pathlib import Path

from helpers import CertFiles
from peers import (
    IO_TIMEOUT,
    read_until_closed,
    run_s_client,
    start_s_server,
    tlsmith_server,
)
from tlsmith.codec.enums import CipherSuite, ProtocolVersion
from tlsmith.config import CertifiedKey, ClientConfig, ServerConfig
from tlsmith.connection import TLSConnection
from tlsmith.events import (
    NEED_DATA,
    ApplicationData,
    ConnectionClosed,
    FalseStart,
    HandshakeComplete,
)
from tlsmith.io.blocking import connect
from tlsmith.x509.verify import TrustStore

GET = b"GET / HTTP/1.0\r\n\r\n"
ECDHE_GCM = CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256


def _client(cert: CertFiles, **kw: object) -> ClientConfig:
    return ClientConfig(server_name="localhost", trust=TrustStore.from_pem_file(cert.ca_path),
                        max_version=ProtocolVersion.TLS12, **kw)  # type: ignore[arg-type]


def test_client_npn_with_s_server(certs: dict[str, CertFiles], tmp_path: Path) -> None:
    cert = certs["ecdsa-p256"]
    with start_s_server(cert, "-tls1_2", "-www", "-trace", "-nextprotoneg",
                        "spdy/3,http/1.1", log_dir=tmp_path, tls13_only=False,
                        line_buffered=True) as server:
        config = _client(cert, next_protocols=("http/1.1", "h2"))
        with connect("127.0.0.1", server.port, config, timeout=IO_TIMEOUT) as tls:
            assert tls.info.next_protocol == "http/1.1"
            tls.sendall(GET)
            page = read_until_closed(tls).data.decode("utf-8", "replace")
        assert page.startswith("HTTP/1.0 200 ok")
        out = server.wait_for("NextProto, Length=32")
    # OpenSSL's trace of our NextProtocol: the protocol, then the padding to 32 bytes.
    assert "08 68 74 74 70 2f 31 2e-31 16 00" in out, out[-3000:]


def test_server_npn_with_s_client(certs: dict[str, CertFiles]) -> None:
    cert = certs["ecdsa-p256"]
    config = ServerConfig(certificates=(CertifiedKey.from_files(cert.chain_path,
                                                                cert.key_path),),
                          next_protocols=("h2", "http/1.1"))
    with tlsmith_server(config) as server:
        done = run_s_client(server.port, "-CAfile", str(cert.ca_path), "-servername",
                            "localhost", "-tls1_2", "-ign_eof", "-nextprotoneg", "http/1.1",
                            stdin=GET)
        served = server.wait_served(0)
    assert done.returncode == 0, done.text
    assert "Protocols advertised by server: h2, http/1.1" in done.stdout
    assert "Next protocol: (1) http/1.1" in done.stdout
    assert served.info is not None and served.info.next_protocol == "http/1.1"


def test_false_start_with_s_server(certs: dict[str, CertFiles], tmp_path: Path) -> None:
    """The request goes out with our Finished, before s_server's Finished has arrived
    (the core still says the handshake is not complete); s_server answers it."""
    cert = certs["ecdsa-p256"]
    with start_s_server(cert, "-tls1_2", "-www", "-alpn", "http/1.1", log_dir=tmp_path,
                        tls13_only=False) as server:
        config = _client(cert, alpn_protocols=("http/1.1",), false_start=True,
                         cipher_suites=(ECDHE_GCM,))
        conn = TLSConnection(config)
        sent_early: bool | None = None
        completed = False
        page = b""
        with socket.create_connection(("127.0.0.1", server.port), timeout=IO_TIMEOUT) as sock:
            sock.sendall(conn.data_to_send())
            while True:
                ev = conn.next_event()
                if ev is NEED_DATA:
                    data = sock.recv(65536)
                    if not data:
                        break
                    conn.receive_data(data)
                    continue
                if isinstance(ev, FalseStart):
                    sent_early = not conn.handshake_complete
                    conn.send_data(GET)
                elif isinstance(ev, HandshakeComplete):
                    completed = True
                    assert ev.info.alpn == "http/1.1"
                elif isinstance(ev, ApplicationData):
                    page += ev.data
                elif isinstance(ev, ConnectionClosed):
                    break
                out = conn.data_to_send()
                if out:
                    sock.sendall(out)
    assert sent_early is True
    assert completed  # the server's Finished was checked afterwards
    assert page.startswith(b"HTTP/1.0 200 ok"), page[:200]

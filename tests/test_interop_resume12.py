"""TLS 1.2 session resumption against real peers, on 127.0.0.1 (RFC 5246 §7.3 session IDs,
RFC 5077 tickets).

* tlsmith client -> ``openssl s_server -tls1_2 -www``: with ``-no_ticket`` (session-ID
  cache) and with tickets; the second connection must be abbreviated on our side
  (HandshakeInfo.resumed) and on OpenSSL's (its ``-www`` page says "Reused, TLSv1.2").
* ``openssl s_client -tls1_2 -sess_out`` then ``-sess_in`` -> a tlsmith server: s_client
  prints "Reused, TLSv1.2", for session IDs (``-no_ticket``) and for tickets.
* ``gnutls-cli --resume`` (TLS 1.2 only) -> a tlsmith server: "This is a resumed session".
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from helpers import CertFiles, require_peer
from peers import (
    TlsmithServerHandle,
    read_until_closed,
    run_s_client,
    start_s_server,
    tlsmith_server,
)
from test_interop_gnutls import run_gnutls_cli
from tlsmith.codec.enums import ProtocolVersion
from tlsmith.config import CertifiedKey, ClientConfig, ServerConfig
from tlsmith.connection import TLSConnection
from tlsmith.events import NEED_DATA, Event, HandshakeInfo, SessionTicketReceived
from tlsmith.io.blocking import TLSSocket
from tlsmith.session import Session12
from tlsmith.x509.verify import TrustStore

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

TIMEOUT = 10.0
TLS12 = ProtocolVersion.TLS12
GET = b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n"
TLS12_ONLY = "NORMAL:-VERS-ALL:+VERS-TLS1.2"


def client_config(cert: CertFiles) -> ClientConfig:
    return ClientConfig(server_name="localhost", trust=TrustStore.from_pem_file(cert.ca_path),
                        max_version=TLS12)


def get_page(port: int, config: ClientConfig, session: Session12 | None = None
             ) -> tuple[HandshakeInfo, Session12 | None, bytes]:
    """One tlsmith client connection: GET / and read to the close; returns our handshake
    info, the session the connection left us (if any) and the page."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    tls = TLSSocket(sock, TLSConnection(config, session=session))
    with tls:
        info = tls.do_handshake()
        # TLS 1.2: the session event is queued with HandshakeComplete; do_handshake stops
        # at the latter, so collect what is already queued (no socket read).
        events: list[Event] = list(tls.tickets)
        while (event := tls.conn.next_event()) is not NEED_DATA:
            events.append(event)
        tls.sendall(GET)
        page = read_until_closed(tls).data
    sessions = [e.session for e in events if isinstance(e, SessionTicketReceived)
                and isinstance(e.session, Session12)]
    return info, (sessions[-1] if sessions else None), page


# -- tlsmith client -> openssl s_server -----------------------------------------------------
@pytest.mark.parametrize("tickets", [False, True], ids=["session-id", "ticket"])
def test_client_resumes_with_openssl_s_server(certs: dict[str, CertFiles], tmp_path: Path,
                                              tickets: bool) -> None:
    cert = certs["ecdsa-p256"]
    extra = () if tickets else ("-no_ticket",)
    config = client_config(cert)
    with start_s_server(cert, "-tls1_2", "-www", *extra, tls13_only=False,
                        log_dir=tmp_path) as server:
        first, session, page = get_page(server.port, config)
        assert not first.resumed and b"New, TLSv1.2" in page, page[-800:]
        assert session is not None
        assert bool(session.ticket) == tickets
        if not tickets:
            assert session.session_id
        second, again, page = get_page(server.port, config, session)
        assert second.resumed, page[-800:]
        assert second.resumed_with == ("ticket" if tickets else "session_id")
        assert second.cipher_suite == first.cipher_suite
        assert second.peer_certificates == first.peer_certificates
        # OpenSSL's own view of the second connection.
        assert b"Reused, TLSv1.2" in page, page[-800:]
        # And the session chains: a third connection resumes again.
        assert again is not None
        third, _, page = get_page(server.port, config, again)
        assert third.resumed and b"Reused, TLSv1.2" in page


# -- openssl s_client -> tlsmith server -----------------------------------------------------
def server_config(cert: CertFiles, **kw: object) -> ServerConfig:
    return ServerConfig(certificates=(CertifiedKey.from_files(cert.chain_path,
                                                              cert.key_path),),
                        max_version=TLS12, **kw)  # type: ignore[arg-type]


def s_client(port: int, cert: CertFiles, *extra: str) -> str:
    done = run_s_client(port, "-CAfile", str(cert.ca_path), "-verify_return_error",
                        "-servername", "localhost", "-tls1_2", "-ign_eof", *extra,
                        stdin=GET, timeout=TIMEOUT)
    assert done.returncode == 0, done.text[-3000:]
    return done.stdout


@pytest.mark.parametrize("tickets", [False, True], ids=["session-id", "ticket"])
def test_openssl_s_client_resumes_with_tlsmith(certs: dict[str, CertFiles], tmp_path: Path,
                                               tickets: bool) -> None:
    require_peer("openssl")
    cert = certs["ecdsa-p256"]
    sess = tmp_path / "sess.pem"
    extra = () if tickets else ("-no_ticket",)
    with tlsmith_server(server_config(cert)) as handle:
        out = s_client(handle.port, cert, "-sess_out", str(sess), *extra)
        assert "New, TLSv1.2" in out, out[-2000:]
        assert sess.exists()
        out = s_client(handle.port, cert, "-sess_in", str(sess), *extra)
        assert "Reused, TLSv1.2" in out, out[-2000:]
        _served_resumed(handle, 1, "ticket" if tickets else "session_id")


def test_openssl_s_client_full_handshake_when_server_forgot(certs: dict[str, CertFiles],
                                                             tmp_path: Path) -> None:
    """A session from another tlsmith server (another store, other ticket keys): a full
    handshake, which OpenSSL accepts."""
    require_peer("openssl")
    cert = certs["ecdsa-p256"]
    sess = tmp_path / "sess.pem"
    with tlsmith_server(server_config(cert)) as handle:
        s_client(handle.port, cert, "-sess_out", str(sess))
    with tlsmith_server(server_config(cert)) as handle:
        out = s_client(handle.port, cert, "-sess_in", str(sess))
        assert "New, TLSv1.2" in out and "Reused, " not in out, out[-2000:]
        served = handle.wait_served(0)
        assert served.error is None and served.info is not None
        assert not served.info.resumed


def _served_resumed(handle: TlsmithServerHandle, index: int, how: str) -> None:
    served = handle.wait_served(index)
    assert served.error is None, served.error
    assert served.info is not None and served.info.resumed
    assert served.info.resumed_with == how


# -- gnutls-cli -> tlsmith server -----------------------------------------------------------
@pytest.mark.parametrize("tickets", [False, True], ids=["session-id", "ticket"])
def test_gnutls_cli_resumes_with_tlsmith(certs: dict[str, CertFiles], tickets: bool
                                         ) -> None:
    require_peer("gnutls-cli")
    cert = certs["ecdsa-p256"]
    priority = TLS12_ONLY if tickets else TLS12_ONLY + ":%NO_TICKETS"
    with tlsmith_server(server_config(cert)) as handle:
        result = run_gnutls_cli(handle.port, cert, "--resume", "--priority", priority)
        assert result.returncode == 0, result.text[-3000:]
        assert "This is a resumed session" in result.text, result.text[-3000:]
        _served_resumed(handle, 1, "ticket" if tickets else "session_id")


@pytest.mark.parametrize("tickets", [False, True], ids=["session-id", "ticket"])
def test_openssl_s_client_reconnect_resumes(certs: dict[str, CertFiles], tickets: bool
                                            ) -> None:
    """``s_client -reconnect``: one full handshake, then five resumptions."""
    require_peer("openssl")
    cert = certs["ecdsa-p256"]
    extra = () if tickets else ("-no_ticket",)
    with tlsmith_server(server_config(cert)) as handle:
        out = s_client(handle.port, cert, "-reconnect", *extra)
        assert out.count("New, TLSv1.2") == 1, out[-3000:]
        assert out.count("Reused, TLSv1.2") == 5, out[-3000:]
        for i in range(1, 6):
            _served_resumed(handle, i, "ticket" if tickets else "session_id")

"""TLS 1.3 session resumption, PSKs and 0-RTT against real peers, on 127.0.0.1
(RFC 8446 §2.2, §2.3, §4.2.9-§4.2.11, §4.6.1).

* tlsmith client -> ``openssl s_server -tls1_3 -www``: tickets from a full handshake,
  then a resumed one (our ``info.resumed``, its page's "Reused, TLSv1.3", its ``-msg``
  log without a Certificate), per suite hash (SHA-256, SHA-384), after a
  HelloRetryRequest, and with our psk_ke offer (OpenSSL still picks psk_dhe_ke while we
  send a key share; ``s_client -allow_no_dhe_kex`` -> our server gives psk_ke).
* tlsmith client 0-RTT -> ``openssl s_server -early_data`` (console mode): accepted and
  printed; without ``-early_data``: rejected, the handshake completes, the data is resent.
* ``openssl s_client -sess_out`` / ``-sess_in`` (and ``-early_data FILE``) -> a tlsmith
  server: "Reused, TLSv1.3"; 0-RTT accepted or rejected as the server is configured.
* Python's ``ssl`` (``session=``) and ``gnutls-cli --resume`` (``--earlydata``) -> a
  tlsmith server.
* External PSKs both ways with ``openssl -psk``, and ``gnutls-cli --pskkey``.
* tlsmith client -> ``gnutls-serv`` (in ``unshare -n``): resumption and accepted 0-RTT.

The tlsmith side is driven here through ``TLSConnection`` over a plain socket (the
blocking adapter folds away the early flag of ``ApplicationData``).
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from helpers import CertFiles, free_port, require_netns, require_peer
from peers import (
    PeerProcess,
    run_process_group,
    run_s_client,
    start_s_server,
    wait_until,
)
from test_interop_gnutls import run_gnutls_cli
from tlsmith.codec.enums import AlertDescription, CipherSuite, NamedGroup
from tlsmith.config import CertifiedKey, ClientConfig, ServerConfig
from tlsmith.connection import TLSConnection
from tlsmith.errors import AlertReceived, TLSError
from tlsmith.events import (
    NEED_DATA,
    ApplicationData,
    ConnectionClosed,
    Event,
    HandshakeInfo,
    SessionTicketReceived,
)
from tlsmith.session import ExternalPsk, Session13
from tlsmith.stores import MemoryStore
from tlsmith.x509.verify import TrustStore

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

TIMEOUT = 10.0
GET = b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n"
PSK_KEY = bytes(range(1, 33))
PSK_ID = "tlsmith-client"


# -- driving a tlsmith TLSConnection over a socket ----------------------------------------
class Driver:
    """A ``TLSConnection`` over a connected socket: every event is kept in ``events``."""

    def __init__(self, sock: socket.socket, conn: TLSConnection) -> None:
        self.sock = sock
        self.conn = conn
        self.events: list[Event] = []
        self.eof = False
        sock.settimeout(TIMEOUT)

    def flush(self) -> None:
        out = self.conn.data_to_send()
        if out:
            self.sock.sendall(out)

    def step(self) -> Event | None:
        """One event (None at the end of the stream), reading when the core needs data."""
        while True:
            try:
                event = self.conn.next_event()
            finally:
                with contextlib.suppress(OSError):
                    self.flush()
            if event is not NEED_DATA:
                self.events.append(event)
                return event
            if self.eof:
                return None
            chunk = self.sock.recv(65536)
            self.conn.receive_data(chunk)
            self.eof = not chunk

    def until(self, done: Callable[[Driver], bool], timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not done(self):
            assert time.monotonic() < deadline, f"timed out; events: {self.events}"
            if self.step() is None:
                return

    def handshake(self) -> HandshakeInfo:
        self.flush()
        self.until(lambda d: d.conn.handshake_complete)
        assert self.conn.info is not None, f"no handshake; events: {self.events}"
        return self.conn.info

    def read_to_close(self) -> None:
        self.until(lambda d: any(isinstance(e, ConnectionClosed) for e in d.events))

    @property
    def data(self) -> bytes:
        return b"".join(e.data for e in self.events if isinstance(e, ApplicationData))

    @property
    def early(self) -> bytes:
        return b"".join(e.data for e in self.events
                        if isinstance(e, ApplicationData) and e.early)

    @property
    def sessions(self) -> list[Session13]:
        return [e.session for e in self.events if isinstance(e, SessionTicketReceived)
                and isinstance(e.session, Session13)]

    def close(self) -> None:
        with contextlib.suppress(TLSError, OSError):
            self.conn.close()
            self.flush()
        self.sock.close()


def connect(port: int, config: ClientConfig, *, session: Session13 | None = None,
            early_data: bytes | None = None) -> Driver:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    return Driver(sock, TLSConnection(config, session=session, early_data=early_data))


def client_config(cert: CertFiles, **kw: Any) -> ClientConfig:
    return ClientConfig(server_name="localhost", trust=TrustStore.from_pem_file(cert.ca_path),
                        **kw)


def server_config(cert: CertFiles, **kw: Any) -> ServerConfig:
    kw.setdefault("session_store", MemoryStore())
    return ServerConfig(certificates=(CertifiedKey.from_files(cert.chain_path,
                                                              cert.key_path),), **kw)


# -- a tlsmith server that keeps every event ---------------------------------------------
@dataclass
class Conn:
    info: HandshakeInfo | None = None
    events: list[Event] = field(default_factory=list)
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def early(self) -> bytes:
        return b"".join(e.data for e in self.events
                        if isinstance(e, ApplicationData) and e.early)

    @property
    def data(self) -> bytes:
        return b"".join(e.data for e in self.events if isinstance(e, ApplicationData))


@dataclass
class Server:
    port: int
    conns: list[Conn]

    def conn(self, index: int) -> Conn:
        assert wait_until(lambda: len(self.conns) > index, TIMEOUT), \
            f"connection #{index} never came"
        conn = self.conns[index]
        assert conn.done.wait(TIMEOUT), f"connection #{index} never finished"
        return conn


@contextlib.contextmanager
def tlsmith_server(config: ServerConfig, *, later: ServerConfig | None = None
                   ) -> Iterator[Server]:
    """HTTP-ish: once the request's blank line arrived (0-RTT or not) and the handshake is
    complete, answer one line describing the handshake, then close_notify. ``later``:
    the config of every connection after the first."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    stop = threading.Event()
    conns: list[Conn] = []

    def serve(sock: socket.socket) -> None:
        record = Conn()
        conns.append(record)
        driver = Driver(sock, TLSConnection(config if len(conns) == 1 or later is None
                                            else later))
        try:
            driver.until(lambda d: d.conn.handshake_complete
                         and b"\r\n\r\n" in d.data)
            record.info = driver.conn.info
            info = driver.conn.info
            assert info is not None
            driver.conn.send_data(
                f"HTTP/1.0 200 OK\r\n\r\ntlsmith resumed={info.resumed} "
                f"with={info.resumed_with} early={info.early_data_accepted}\n".encode())
            driver.conn.close()
            driver.flush()
            with contextlib.suppress(OSError, TLSError, AssertionError):
                driver.read_to_close()
        except BaseException as exc:
            record.error = exc
        finally:
            record.info = record.info or driver.conn.info
            record.events = driver.events
            sock.close()
            record.done.set()

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve, args=(sock,), daemon=True).start()

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    try:
        yield Server(listener.getsockname()[1], conns)
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


# -- tlsmith client -> openssl s_server -------------------------------------------------------
def www_get(port: int, config: ClientConfig, session: Session13 | None = None
            ) -> tuple[HandshakeInfo, list[Session13], str]:
    driver = connect(port, config, session=session)
    try:
        info = driver.handshake()
        driver.conn.send_data(GET)
        driver.flush()
        driver.read_to_close()
        return info, driver.sessions, driver.data.decode("utf-8", "replace")
    finally:
        driver.close()


def certificates_sent(server: PeerProcess) -> int:
    return server.output().count("], Certificate\n")


@pytest.mark.parametrize("suite", [CipherSuite.TLS_AES_128_GCM_SHA256,
                                   CipherSuite.TLS_AES_256_GCM_SHA384],
                         ids=["sha256", "sha384"])
def test_client_resumes_with_openssl_s_server(certs: dict[str, CertFiles], tmp_path: Path,
                                              suite: CipherSuite) -> None:
    cert = certs["ecdsa-p256"]
    config = client_config(cert, cipher_suites=(suite,))
    with start_s_server(cert, "-www", "-msg", "-ciphersuites", suite.name, log_dir=tmp_path,
                        line_buffered=True) as server:
        first, sessions, page = www_get(server.port, config)
        assert not first.resumed and "New, TLSv1.3" in page, page[-2000:]
        assert len(sessions) == 2  # OpenSSL's default -num_tickets
        assert all(s.cipher_suite == suite for s in sessions)
        assert wait_until(lambda: certificates_sent(server) == 1, TIMEOUT)
        info, again, page = www_get(server.port, config, sessions[0])
        assert info.resumed and info.resumed_with == "psk_dhe_ke"
        assert info.cipher_suite == suite and info.signature_scheme is None
        assert f"Reused, TLSv1.3, Cipher is {suite.name}" in page, page[-2000:]
        assert again, "a resumed connection gets new tickets too"
        # s_server's -msg: no second Certificate went out.
        time.sleep(0.3)
        assert certificates_sent(server) == 1, server.output()[-3000:]
        # The second ticket works as well, and the new one.
        info, _, page = www_get(server.port, config, again[-1])
        assert info.resumed and "Reused, TLSv1.3" in page


def test_client_resumes_after_openssl_hello_retry_request(certs: dict[str, CertFiles],
                                                         tmp_path: Path) -> None:
    """s_server wants P-256, we send an X25519 share: a HelloRetryRequest, and the
    second ClientHello's binder covers message_hash + HRR (RFC 8446 §4.2.11.2)."""
    cert = certs["ecdsa-p256"]
    config = client_config(cert)
    with start_s_server(cert, "-www", "-groups", "P-256", log_dir=tmp_path) as server:
        _, sessions, _ = www_get(server.port, config)
        info, _, page = www_get(server.port, config, sessions[0])
        assert info.hello_retry_request and info.resumed
        assert "Reused, TLSv1.3" in page, page[-2000:]


def test_client_offering_psk_ke_to_openssl_s_server(certs: dict[str, CertFiles],
                                                    tmp_path: Path) -> None:
    """OpenSSL (even with ``-allow_no_dhe_kex``) uses psk_ke only when the client sends no
    usable key share and does not offer psk_dhe_ke; tlsmith always offers psk_dhe_ke with a
    share, so the resumption is psk_dhe_ke -- and our psk_ke offer does not disturb it."""
    cert = certs["ecdsa-p256"]
    config = client_config(cert, offer_psk_ke=True)
    for extra in (("-allow_no_dhe_kex",), ()):
        with start_s_server(cert, "-www", *extra, log_dir=tmp_path) as server:
            _, sessions, _ = www_get(server.port, config)
            info, _, page = www_get(server.port, config, sessions[0])
            assert info.resumed and info.resumed_with == "psk_dhe_ke"
            assert info.group is not None
            assert "Reused, TLSv1.3" in page, page[-2000:]


def test_openssl_s_client_psk_ke_with_tlsmith(certs: dict[str, CertFiles], tmp_path: Path
                                              ) -> None:
    """``s_client -allow_no_dhe_kex`` offers psk_ke too: a tlsmith server with
    allow_psk_ke resumes without (EC)DHE; one without it, with psk_dhe_ke."""
    require_peer("openssl")
    cert = certs["ecdsa-p256"]
    sess = tmp_path / "sess.pem"
    store = MemoryStore()
    for allow, how in ((True, "psk_ke"), (False, "psk_dhe_ke")):
        with tlsmith_server(server_config(cert, session_store=store,
                                          allow_psk_ke=allow)) as server:
            s_client(server.port, cert, "-allow_no_dhe_kex", "-sess_out", str(sess))
            out = s_client(server.port, cert, "-allow_no_dhe_kex", "-sess_in", str(sess))
            assert "Reused, TLSv1.3" in out, out[-2000:]
            assert f"tlsmith resumed=True with={how} " in out, out[-2000:]
            second = server.conn(1)
            assert second.info is not None and second.info.resumed_with == how
            assert (second.info.group is None) == allow


def console_session(port: int, config: ClientConfig) -> Session13:
    """A full handshake with a console-mode s_server: wait for its tickets, then close."""
    driver = connect(port, config)
    try:
        driver.handshake()
        driver.until(lambda d: len(d.sessions) >= 2)
        return driver.sessions[0]
    finally:
        driver.close()


def test_client_early_data_accepted_by_openssl(certs: dict[str, CertFiles], tmp_path: Path
                                               ) -> None:
    cert = certs["ecdsa-p256"]
    config = client_config(cert)
    early = b"tlsmith-early-data-0123456789\n"
    with start_s_server(cert, "-early_data", log_dir=tmp_path) as server:
        session = console_session(server.port, config)
        assert session.max_early_data == 16384  # s_server's default -max_early_data
        mark = server.mark()
        driver = connect(server.port, config, session=session, early_data=early)
        try:
            info = driver.handshake()
            assert info.resumed and info.early_data_accepted is True
            assert driver.conn.early_data_accepted is True
            out = server.wait_for("End of early data", since=mark)
            # (s_server writes the data and its "Early data received" frame through two
            # streams, so their order in the log is not fixed.)
            server.wait_for(early.decode().strip(), since=mark)
            assert out.count(early.decode().strip()) == 1, out  # not resent
            driver.conn.send_data(b"after-the-handshake\n")
            driver.flush()
            server.wait_for("after-the-handshake", since=mark)
        finally:
            driver.close()


def test_client_early_data_rejected_by_openssl(certs: dict[str, CertFiles], tmp_path: Path
                                               ) -> None:
    cert = certs["ecdsa-p256"]
    config = client_config(cert)
    early = b"resend-me-please\n"
    # The ticket allows early data (-max_early_data), but this s_server does not read it
    # (no -early_data): it rejects 0-RTT, skips the records and completes the handshake.
    with start_s_server(cert, "-max_early_data", "1024", log_dir=tmp_path) as server:
        session = console_session(server.port, config)
        assert session.max_early_data == 1024
        mark = server.mark()
        driver = connect(server.port, config, session=session, early_data=early)
        try:
            info = driver.handshake()
            assert info.resumed and info.early_data_accepted is False
            out = server.wait_for("resend-me-please", since=mark)  # resent as 1-RTT data
            assert "Early data received" not in out
            assert out.count("resend-me-please") == 1, out
        finally:
            driver.close()


def test_client_early_data_after_openssl_hello_retry_request(
        certs: dict[str, CertFiles], tmp_path: Path) -> None:
    """An s_server that wants P-256 (we send an X25519 share) answers with a
    HelloRetryRequest: our 0-RTT is rejected, the second ClientHello resumes with a
    fresh binder, and the data is sent again after the handshake."""
    cert = certs["ecdsa-p256"]
    config = client_config(cert)
    early = b"retried-early-data\n"
    # (-no_anti_replay: with it on, OpenSSL's tickets are single-use entries of its
    # session cache, and the lookup for the first ClientHello already uses the ticket
    # up -- the second ClientHello then gets a full handshake. Seen with OpenSSL 3.0.)
    with start_s_server(cert, "-max_early_data", "1024", "-no_anti_replay", "-groups",
                        "P-256", log_dir=tmp_path) as server:
        session = console_session(server.port, config)
        mark = server.mark()
        driver = connect(server.port, config, session=session, early_data=early)
        try:
            info = driver.handshake()
            assert info.hello_retry_request and info.resumed
            assert info.early_data_accepted is False
            out = server.wait_for("retried-early-data", since=mark)
            assert out.count("retried-early-data") == 1, out
            assert "Early data received" not in out
        finally:
            driver.close()


def test_client_early_data_replayed_ticket_rejected_by_openssl(
        certs: dict[str, CertFiles], tmp_path: Path) -> None:
    """OpenSSL's anti-replay: the same ticket's 0-RTT a second time is refused (the
    handshake is a full one then: OpenSSL tickets are single-use in TLS 1.3)."""
    cert = certs["ecdsa-p256"]
    config = client_config(cert)
    with start_s_server(cert, "-early_data", log_dir=tmp_path) as server:
        session = console_session(server.port, config)
        for attempt, expected in ((b"first\n", True), (b"second\n", False)):
            mark = server.mark()
            driver = connect(server.port, config, session=session, early_data=attempt)
            try:
                info = driver.handshake()
                assert info.early_data_accepted is expected
                server.wait_for(attempt.decode().strip(), since=mark)
            finally:
                driver.close()
            server.wait_for("CONNECTION CLOSED", since=mark)


# -- openssl s_client -> tlsmith server -------------------------------------------------------
def s_client(port: int, cert: CertFiles, *extra: str) -> str:
    done = run_s_client(port, "-CAfile", str(cert.ca_path), "-verify_return_error",
                        "-servername", "localhost", "-tls1_3", "-ign_eof", *extra,
                        stdin=GET, timeout=TIMEOUT)
    assert done.returncode == 0, done.text[-3000:]
    return done.stdout + done.stderr


@pytest.mark.parametrize("suite", ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384"])
def test_openssl_s_client_resumes_with_tlsmith(certs: dict[str, CertFiles], tmp_path: Path,
                                               suite: str) -> None:
    require_peer("openssl")
    cert = certs["ecdsa-p256"]
    sess = tmp_path / "sess.pem"
    with tlsmith_server(server_config(cert)) as server:
        out = s_client(server.port, cert, "-ciphersuites", suite, "-sess_out", str(sess))
        assert "New, TLSv1.3" in out, out[-2000:]
        assert sess.exists()
        out = s_client(server.port, cert, "-ciphersuites", suite, "-sess_in", str(sess))
        assert f"Reused, TLSv1.3, Cipher is {suite}" in out, out[-2000:]
        assert "tlsmith resumed=True with=psk_dhe_ke" in out, out[-2000:]
        second = server.conn(1)
        assert second.error is None, second.error
        assert second.info is not None and second.info.resumed


@pytest.mark.parametrize("case", ["accepting", "never", "hello-retry"])
def test_openssl_s_client_early_data_to_tlsmith(certs: dict[str, CertFiles], tmp_path: Path,
                                                case: str) -> None:
    """``s_client -sess_in F -early_data FILE``: accepted (the server reads it as
    ``ApplicationData(early=True)``); rejected by a server that never accepts it, or
    that needs a HelloRetryRequest (it wants P-256, s_client's share is X25519) -- the
    records are skipped and the handshake completes."""
    require_peer("openssl")
    cert = certs["ecdsa-p256"]
    sess = tmp_path / "sess.pem"
    early_file = tmp_path / "early.txt"
    early_file.write_bytes(GET)
    # The ticket of a server that allows early data, so s_client sends it; the second
    # server shares the store (ticket keys) but may be configured to reject it.
    store = MemoryStore()
    first = server_config(cert, session_store=store, max_early_data=4096)
    with tlsmith_server(first) as server:
        s_client(server.port, cert, "-sess_out", str(sess))
    second_cfg = {"accepting": first, "never": replace(first, max_early_data=0),
                  "hello-retry": replace(first, groups=(NamedGroup.SECP256R1,))}[case]
    accepted = case == "accepting"
    with tlsmith_server(second_cfg) as server:
        done = run_s_client(server.port, "-CAfile", str(cert.ca_path),
                            "-verify_return_error", "-servername", "localhost", "-tls1_3",
                            "-ign_eof", "-sess_in", str(sess), "-early_data",
                            str(early_file), stdin=b"" if accepted else GET,
                            timeout=TIMEOUT)
        out = done.stdout + done.stderr
        assert "Reused, TLSv1.3" in out, out[-3000:]
        conn = server.conn(0)
        assert conn.error is None, conn.error
        assert conn.info is not None and conn.info.resumed
        if accepted:
            assert "Early data was accepted" in out, out[-3000:]
            assert conn.info.early_data_accepted is True
            assert conn.early == GET
        else:
            assert "Early data was rejected" in out, out[-3000:]
            # (after a HelloRetryRequest the second ClientHello offers no early data)
            assert conn.info.early_data_accepted is (None if case == "hello-retry"
                                                     else False)
            assert conn.info.hello_retry_request is (case == "hello-retry")
            assert conn.early == b"" and conn.data == GET  # s_client resent it (stdin)
        assert "tlsmith resumed=True" in out


# -- Python's ssl -> tlsmith server -----------------------------------------------------------
def test_python_ssl_client_resumes_with_tlsmith(certs: dict[str, CertFiles]) -> None:
    cert = certs["ecdsa-p256"]
    ctx = ssl.create_default_context(cafile=str(cert.ca_path))
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3

    def get(session: ssl.SSLSession | None) -> tuple[ssl.SSLSession | None, bool, bytes]:
        with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as raw, \
                ctx.wrap_socket(raw, server_hostname="localhost", session=session) as tls:
            tls.sendall(GET)
            page = b""
            while chunk := tls.recv(4096):  # the tickets arrive before the answer
                page += chunk
            return tls.session, bool(tls.session_reused), page

    with tlsmith_server(server_config(cert)) as server:
        session, reused, page = get(None)
        assert not reused and session is not None and session.has_ticket
        _, reused, page = get(session)
        assert reused, page
        assert b"tlsmith resumed=True with=psk_dhe_ke" in page


# -- gnutls-cli -> tlsmith server -------------------------------------------------------------
def test_gnutls_cli_resumes_with_tlsmith(certs: dict[str, CertFiles]) -> None:
    require_peer("gnutls-cli")
    cert = certs["ecdsa-p256"]
    with tlsmith_server(server_config(cert)) as server:
        result = run_gnutls_cli(server.port, cert, "--resume", "--priority",
                                "NORMAL:-VERS-ALL:+VERS-TLS1.3")
        assert result.returncode == 0, result.text[-3000:]
        assert "This is a resumed session" in result.text, result.text[-3000:]
        second = server.conn(1)
        assert second.error is None and second.info is not None
        assert second.info.resumed and second.info.resumed_with == "psk_dhe_ke"


@pytest.mark.parametrize("max_early", [4096, 0], ids=["accepting", "never"])
def test_gnutls_cli_early_data_to_tlsmith(certs: dict[str, CertFiles], tmp_path: Path,
                                          max_early: int) -> None:
    """``gnutls-cli --resume --earlydata FILE``: the resumed connection carries the file
    as 0-RTT data (read as ``ApplicationData(early=True)``); a server that never accepts
    it skips the records and completes the handshake."""
    require_peer("gnutls-cli")
    cert = certs["ecdsa-p256"]
    early_file = tmp_path / "early.txt"
    early_file.write_bytes(GET)
    store = MemoryStore()
    first = server_config(cert, session_store=store, max_early_data=4096)
    with tlsmith_server(first, later=replace(first, max_early_data=max_early)) as server:
        result = run_gnutls_cli(server.port, cert, "--resume", "--earlydata",
                                str(early_file), "--priority",
                                "NORMAL:-VERS-ALL:+VERS-TLS1.3")
        assert result.returncode == 0, result.text[-3000:]
        assert "This is a resumed session" in result.text, result.text[-3000:]
        second = server.conn(1)
        assert second.error is None and second.info is not None and second.info.resumed
        assert second.info.early_data_accepted is bool(max_early)
        assert second.early == (GET if max_early else b"")
        assert f"early={bool(max_early)}" in result.text, result.text[-2000:]


def test_gnutls_cli_external_psk_with_tlsmith(certs: dict[str, CertFiles]) -> None:
    require_peer("gnutls-cli")
    cert = certs["ecdsa-p256"]
    psk = ExternalPsk(PSK_ID.encode(), PSK_KEY)
    with tlsmith_server(server_config(cert, external_psks=(psk,))) as server:
        result = run_gnutls_cli(server.port, cert, "--pskusername", PSK_ID, "--pskkey",
                                PSK_KEY.hex(), "--priority",
                                "NORMAL:-VERS-ALL:+VERS-TLS1.3:+PSK:+DHE-PSK:+ECDHE-PSK")
        assert result.returncode == 0, result.text[-3000:]
        assert f"PSK authentication. Connected as '{PSK_ID}'" in result.text
        assert "tlsmith resumed=True with=external_psk" in result.text
        conn = server.conn(0)
        assert conn.error is None and conn.info is not None
        assert conn.info.resumed_with == "external_psk"


# -- external PSKs ----------------------------------------------------------------------------
def test_client_external_psk_with_openssl_s_server(certs: dict[str, CertFiles],
                                                   tmp_path: Path) -> None:
    cert = certs["ecdsa-p256"]
    psk = ExternalPsk(PSK_ID.encode(), PSK_KEY)
    config = client_config(cert, external_psks=(psk,),
                           cipher_suites=(CipherSuite.TLS_AES_128_GCM_SHA256,))
    with start_s_server(cert, "-www", "-nocert", "-psk", PSK_KEY.hex(), "-psk_identity",
                        PSK_ID, "-ciphersuites", "TLS_AES_128_GCM_SHA256",
                        log_dir=tmp_path) as server:
        info, _, page = www_get(server.port, config)
        assert info.resumed and info.resumed_with == "external_psk"
        assert info.peer_certificates == ()
        assert "Cipher is TLS_AES_128_GCM_SHA256" in page, page[-2000:]
    # The wrong key: OpenSSL's binder check fails ("binder does not verify"), no
    # handshake. (RFC 8446 §4.2.11.2 says decrypt_error; OpenSSL 3.0 sends
    # illegal_parameter.)
    wrong = ExternalPsk(PSK_ID.encode(), bytes(32))
    with start_s_server(cert, "-www", "-nocert", "-psk", PSK_KEY.hex(), "-psk_identity",
                        PSK_ID, log_dir=tmp_path) as server:
        driver = connect(server.port, client_config(cert, external_psks=(wrong,)))
        try:
            with pytest.raises(AlertReceived) as caught:
                driver.handshake()
            assert caught.value.description in (AlertDescription.DECRYPT_ERROR,
                                                 AlertDescription.ILLEGAL_PARAMETER)
        finally:
            driver.close()


def test_openssl_s_client_external_psk_with_tlsmith(certs: dict[str, CertFiles]) -> None:
    require_peer("openssl")
    cert = certs["ecdsa-p256"]
    psk = ExternalPsk(PSK_ID.encode(), PSK_KEY)
    with tlsmith_server(server_config(cert, external_psks=(psk,))) as server:
        done = run_s_client(server.port, "-tls1_3", "-ign_eof", "-psk", PSK_KEY.hex(),
                            "-psk_identity", PSK_ID, "-ciphersuites",
                            "TLS_AES_128_GCM_SHA256", stdin=GET, timeout=TIMEOUT)
        out = done.stdout + done.stderr
        assert done.returncode == 0, out[-3000:]
        assert "tlsmith resumed=True with=external_psk" in out, out[-3000:]
        conn = server.conn(0)
        assert conn.error is None and conn.info is not None
        assert conn.info.resumed_with == "external_psk"
        assert conn.info.cipher_suite == CipherSuite.TLS_AES_128_GCM_SHA256


# -- tlsmith client -> gnutls-serv (in a private network namespace) ----------------------------
# gnutls-serv binds 0.0.0.0/::, so (as in test_interop12_gnutls.py) it runs under
# ``unshare -n`` together with our client: this file runs itself as a script there
# (``netns_main``) and prints one JSON object.
NETNS_TIMEOUT = 30.0


@pytest.fixture(scope="module")
def netns() -> None:
    require_peer("gnutls-serv")
    require_netns()


def run_in_netns(cert: CertFiles, tmp_path: Path, serv_args: list[str], early: str | None
                 ) -> dict[str, Any]:
    params = {"cert": str(cert.chain_path), "key": str(cert.key_path),
              "ca": str(cert.ca_path), "serv_args": serv_args, "early": early,
              "log": str(tmp_path / f"gnutls-serv-{time.monotonic_ns()}.log")}
    cmd = [require_peer("unshare"), "-n", sys.executable, str(Path(__file__).resolve()),
           "--netns-resume13", json.dumps(params)]
    done = run_process_group(cmd, timeout=NETNS_TIMEOUT, what="the namespace script")
    assert done.returncode == 0 and done.stdout.strip(), (
        f"the namespace script failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("case", ["resume", "early-accepted"])
def test_client_resumes_with_gnutls_serv(netns: None, certs: dict[str, CertFiles],
                                         tmp_path: Path, case: str) -> None:
    """GnuTLS (an independent TLS 1.3 stack) as the server: tickets, resumption and
    0-RTT (``--earlydata``: accepted; the request follows the handshake). (gnutls-serv
    without ``--earlydata`` issues tickets without early_data, so it cannot be made to
    reject 0-RTT a ticket allowed.)"""
    serv_args = {"resume": [],
                 "early-accepted": ["--earlydata", "--maxearlydata", "4096"]}[case]
    early = None if case == "resume" else "tlsmith-0rtt-payload\n"
    result = run_in_netns(certs["ecdsa-p256"], tmp_path, serv_args, early)
    assert result["ok"], f"{result.get('error')}\n{result.get('serv_log', '')[-3000:]}"
    first, second = result["first"], result["second"]
    assert not first["resumed"] and first["tickets"] >= 1
    assert second["resumed"] and second["resumed_with"] == "psk_dhe_ke"
    assert "HTTP/1.0 200 OK" in second["page"], second["page"][:500]
    assert "Session ID" in second["page"] or "TLS1.3" in second["page"]
    if case == "resume":
        assert second["early_data_accepted"] is None
    else:
        assert second["max_early_data"] == 4096
        # GnuTLS put early_data in its EncryptedExtensions, read our 0-RTT record and
        # EndOfEarlyData (our Finished covers it) and served the page.
        assert second["early_data_accepted"] is True, result["serv_log"][-3000:]
        assert "This is a resumed session" in result["serv_log"]


def _netns_connect(params: dict[str, Any], port: int, session: Session13 | None,
                   early: bytes | None) -> tuple[dict[str, Any], list[Session13]]:
    config = ClientConfig(server_name="localhost",
                          trust=TrustStore.from_pem_file(params["ca"]))
    driver = connect(port, config, session=session, early_data=early)
    try:
        info = driver.handshake()
        # (gnutls-serv --http does not take its request from the early data)
        driver.conn.send_data(GET)
        driver.flush()
        driver.read_to_close()
        return ({"resumed": info.resumed, "resumed_with": info.resumed_with,
                 "early_data_accepted": info.early_data_accepted,
                 "tickets": len(driver.sessions),
                 "max_early_data": session.max_early_data if session else None,
                 "page": driver.data.decode("utf-8", "replace")}, driver.sessions)
    finally:
        driver.close()


def netns_main(params: dict[str, Any]) -> dict[str, Any]:
    """Inside ``unshare -n``: lo up, gnutls-serv --http, two tlsmith connections."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, timeout=5)
    port = free_port()
    cmd = ["gnutls-serv", "--http", "--x509certfile", params["cert"], "--x509keyfile",
           params["key"], "-p", str(port), "--priority", "NORMAL:-VERS-ALL:+VERS-TLS1.3",
           "--disable-client-cert", *params["serv_args"]]
    with open(params["log"], "wb") as log:
        server = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                  stderr=subprocess.STDOUT)
    result: dict[str, Any]
    try:
        if not wait_until(lambda: server.poll() is not None or _port_accepts(port), 5.0):
            result = {"ok": False, "error": "gnutls-serv did not start"}
        else:
            try:
                first, sessions = _netns_connect(params, port, None, None)
                early = params["early"].encode() if params["early"] else None
                second, _ = _netns_connect(params, port, sessions[0], early)
                result = {"ok": True, "first": first, "second": second}
            except Exception as exc:
                result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        server.terminate()
        try:
            server.wait(timeout=3)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=3)
    result["serv_log"] = Path(params["log"]).read_text(errors="replace")[-4000:]
    return result


def _port_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


if __name__ == "__main__" and sys.argv[1:2] == ["--netns-resume13"]:
    print(json.dumps(netns_main(json.loads(sys.argv[2]))), flush=True)

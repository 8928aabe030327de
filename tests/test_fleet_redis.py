"""A fleet: two ``tlsmith serve`` processes sharing one real redis-server
(``--store redis://...``). A ticket issued by one resumes on the other; a 0-RTT
ClientHello replayed verbatim to the other has its early data rejected while the
handshake still completes; with Redis gone both fall back to full handshakes and never
accept early data."""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from helpers import CertFiles
from peers import PeerProcess, start_tlsmith_serve_cli, wait_until
from redis_server import RedisServer, redis_server
from tlsmith.config import ClientConfig
from tlsmith.connection import TLSConnection
from tlsmith.io.blocking import TLSSocket
from tlsmith.session import Session13
from tlsmith.x509.verify import TrustStore

pytestmark = pytest.mark.timeout(120)

TIMEOUT = 10.0
REQUEST = b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n"


def seeded_random(seed: bytes) -> Callable[[int], bytes]:
    """Deterministic randomness: two clients built with the same seed send the same
    bytes -- the second one *is* a verbatim replay of the first, and can still finish."""
    counter = 0

    def random(n: int) -> bytes:
        nonlocal counter
        out = b""
        while len(out) < n:
            counter += 1
            out += hashlib.sha256(seed + counter.to_bytes(8, "big")).digest()
        return out[:n]

    return random


@pytest.fixture
def fleet(certs: dict[str, CertFiles], tmp_path: Path
          ) -> Iterator[tuple[RedisServer, PeerProcess, PeerProcess, CertFiles]]:
    cert = certs["ecdsa-p256"]
    with redis_server() as redis:
        args = ("--store", redis.url, "--early-data")
        a = start_tlsmith_serve_cli(cert, *args, log_dir=tmp_path)
        try:
            b = start_tlsmith_serve_cli(cert, *args, log_dir=tmp_path)
            try:
                yield redis, a, b, cert
            finally:
                b.stop()
        finally:
            a.stop()


def client_config(cert: CertFiles, **kw: object) -> ClientConfig:
    return ClientConfig(server_name="localhost", trust=TrustStore.from_pem_file(cert.ca_path),
                        alpn_protocols=("http/1.1",), **kw)  # type: ignore[arg-type]


def open_tls(port: int, conn: TLSConnection) -> TLSSocket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    sock.settimeout(TIMEOUT)
    return TLSSocket(sock, conn)


def get(tls: TLSSocket, *, send: bool = True) -> bytes:
    """Finish the handshake, send the request unless it already went (as 0-RTT or
    resent by the core), and read the reply to the end."""
    tls.do_handshake()
    if send:
        tls.sendall(REQUEST)
    reply = b""
    while chunk := tls.recv(65536):
        reply += chunk
    tls.close()
    return reply


def first_session(port: int, cert: CertFiles) -> Session13:
    tls = open_tls(port, TLSConnection(client_config(cert)))
    reply = get(tls)
    assert reply.startswith(b"HTTP/1.")
    sessions = [t.session for t in tls.tickets if isinstance(t.session, Session13)]
    assert sessions, "the server sent no TLS 1.3 ticket"
    assert sessions[0].max_early_data > 0
    return sessions[0]


def test_a_ticket_from_one_server_resumes_on_the_other(fleet: tuple[
        RedisServer, PeerProcess, PeerProcess, CertFiles]) -> None:
    _, a, b, cert = fleet
    session = first_session(a.port, cert)
    tls = open_tls(b.port, TLSConnection(client_config(cert), session=session))
    assert get(tls).startswith(b"HTTP/1.")
    assert tls.conn.info is not None and tls.conn.info.resumed
    assert tls.conn.info.resumed_with == "psk_dhe_ke"


def test_a_replayed_0rtt_hello_is_refused_by_the_other_server(fleet: tuple[
        RedisServer, PeerProcess, PeerProcess, CertFiles]) -> None:
    _, a, b, cert = fleet
    session = first_session(a.port, cert)
    base = client_config(cert)
    clock_now = session.received_at + 1
    cfg = replace(base, random=seeded_random(b"replay"), clock=lambda: clock_now)
    original = TLSConnection(cfg, session=session, early_data=REQUEST)
    cfg2 = replace(base, random=seeded_random(b"replay"), clock=lambda: clock_now)
    replay = TLSConnection(cfg2, session=session, early_data=REQUEST)
    flight = original.data_to_send()
    assert flight == replay.data_to_send()  # byte for byte: ClientHello + 0-RTT data

    tls = open_tls(a.port, original)
    tls.sock.sendall(flight)
    assert get(tls, send=False).startswith(b"HTTP/1.")
    assert original.info is not None and original.info.early_data_accepted is True

    tls = open_tls(b.port, replay)
    tls.sock.sendall(flight)
    # The other server already saw this ticket's 0-RTT (single use in Redis): early
    # data rejected, the handshake completes in 1-RTT and the client resends.
    assert get(tls, send=False).startswith(b"HTTP/1.")
    assert replay.info is not None and replay.info.resumed
    assert replay.info.early_data_accepted is False


def test_redis_gone_means_full_handshakes_and_no_early_data(fleet: tuple[
        RedisServer, PeerProcess, PeerProcess, CertFiles]) -> None:
    redis, a, b, cert = fleet
    session = first_session(a.port, cert)
    redis.stop()
    time.sleep(1.2)  # past RedisStore's 1 s ticket-key cache: every lookup now fails
    for server in (a, b):
        conn = TLSConnection(client_config(cert), session=session, early_data=REQUEST)
        tls = open_tls(server.port, conn)
        assert get(tls, send=False).startswith(b"HTTP/1.")
        assert conn.info is not None and not conn.info.resumed
        assert conn.info.early_data_accepted is False
        assert server.proc.poll() is None  # still serving
    assert wait_until(lambda: "unavailable" in a.output().lower(), 5.0), a.output()

"""ServedSocket (TLSServer's accepted sockets on Linux): a blocking socket whose
timeout the kernel keeps, that behaves as a socket with a timeout."""

from __future__ import annotations

import socket
import struct
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import tlsmith
from helpers import CertFiles
from tlsmith.config import CertifiedKey, ClientConfig, ServerConfig
from tlsmith.io.blocking import TLSServer, TLSSocket
from tlsmith.io.served import ServedSocket, _timeval
from tlsmith.x509.verify import TrustStore

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="TLSServer uses ServedSocket on Linux only")


@pytest.fixture
def pair() -> Iterator[tuple[ServedSocket, socket.socket]]:
    a, b = socket.socketpair()
    served = ServedSocket(a.family, a.type, a.proto, a.detach())
    try:
        yield served, b
    finally:
        served.close()
        b.close()


def test_timeval() -> None:
    assert _timeval(None) == struct.pack("@ll", 0, 0)  # no timeout
    assert _timeval(2.5) == struct.pack("@ll", 2, 500_001)  # (rounded up)
    assert _timeval(1e-9) == struct.pack("@ll", 0, 1)  # never (0, 0) for a timeout
    assert _timeval(0.9999999) == struct.pack("@ll", 1, 0)
    assert _timeval(1e30) == _timeval(1e9)


def test_blocking_underneath_with_the_timeout_set(pair: tuple[ServedSocket, socket.socket]
                                                  ) -> None:
    served, _ = pair
    assert served.gettimeout() is None and served.getblocking()
    served.settimeout(2)
    assert served.gettimeout() == 2.0 and served.getblocking()
    assert socket.socket.gettimeout(served) is None  # the kernel keeps it
    with pytest.raises(ValueError, match="out of range"):
        served.settimeout(-1)


def test_recv_times_out_as_a_socket_with_a_timeout(pair: tuple[ServedSocket, socket.socket]
                                                   ) -> None:
    served, peer = pair
    served.settimeout(0.2)
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="timed out"):
        served.recv(100)
    assert 0.15 < time.monotonic() - start < 2
    peer.sendall(b"hello")
    assert served.recv(100) == b"hello"
    buf = bytearray(10)
    with pytest.raises(TimeoutError, match="timed out"):
        served.recv_into(buf)
    peer.sendall(b"abc")
    assert served.recv_into(buf) == 3 and buf[:3] == b"abc"


def test_no_timeout_blocks_until_data(pair: tuple[ServedSocket, socket.socket]) -> None:
    served, peer = pair
    served.settimeout(0.1)
    with pytest.raises(TimeoutError):
        served.recv(10)
    served.settimeout(None)  # the SO_RCVTIMEO set for 0.1 s must go
    timer = threading.Timer(0.4, peer.sendall, (b"late",))
    timer.start()
    try:
        assert served.recv(10) == b"late"
    finally:
        timer.cancel()


def test_non_blocking_really(pair: tuple[ServedSocket, socket.socket]) -> None:
    served, peer = pair
    served.setblocking(False)
    assert served.gettimeout() == 0.0 and not served.getblocking()
    with pytest.raises(BlockingIOError):
        served.recv(10)
    served.settimeout(0.2)  # back to blocking, with a timeout
    with pytest.raises(TimeoutError):
        served.recv(10)
    peer.sendall(b"x")
    assert served.recv(10) == b"x"


def test_sendall_waits_for_a_full_window_then_times_out(
        pair: tuple[ServedSocket, socket.socket]) -> None:
    served, peer = pair
    served.settimeout(0.3)
    served.sendall(b"small")  # (fits: sent at once)
    assert peer.recv(10) == b"small"
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="timed out"):
        served.sendall(b"\0" * (16 << 20))  # the peer reads none of it
    assert 0.25 < time.monotonic() - start < 5
    assert served.gettimeout() == 0.3 and socket.socket.gettimeout(served) is None


def test_sendall_waits_for_a_reader(pair: tuple[ServedSocket, socket.socket]) -> None:
    served, peer = pair
    served.settimeout(5)
    data = bytes(range(256)) * 8192  # 2 MiB: more than the socket buffers hold
    got = bytearray()

    def read() -> None:
        while len(got) < len(data):
            chunk = peer.recv(65536)
            if not chunk:
                break
            got.extend(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    served.sendall(data)
    reader.join(5)
    assert bytes(got) == data
    assert served.send(b"more") == 4 and peer.recv(10) == b"more"


def test_a_default_timeout_is_kept_by_the_kernel_too() -> None:
    a, b = socket.socketpair()
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(0.2)
    try:
        served = ServedSocket(a.family, a.type, a.proto, a.detach())
    finally:
        socket.setdefaulttimeout(previous)
    with served, b:
        assert served.gettimeout() == 0.2 and socket.socket.gettimeout(served) is None
        with pytest.raises(TimeoutError):
            served.recv(1)


def test_tlsserver_serves_on_served_sockets(certs: dict[str, CertFiles]) -> None:
    cert = certs["ecdsa-p256"]
    seen: list[tuple[bool, float | None]] = []

    def handler(tls: TLSSocket, peer: tuple[Any, ...]) -> None:
        seen.append((isinstance(tls.sock, ServedSocket), tls.sock.gettimeout()))
        tls.sendall(tls.recv())

    config = ServerConfig(certificates=(CertifiedKey.from_files(cert.chain_path,
                                                                cert.key_path),))
    with TLSServer(config, ("127.0.0.1", 0), handler, idle_timeout=7.0).start() as server:
        client = ClientConfig(server_name="localhost",
                              trust=TrustStore.from_pem_file(cert.ca_path))
        with tlsmith.connect("127.0.0.1", server.server_address[1], client) as tls:
            tls.sendall(b"ping")
            assert tls.recv_exactly(4) == b"ping"
    assert seen == [(True, 7.0)]

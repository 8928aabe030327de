"""The servers' limits: an overall handshake deadline (slowloris, silent or trickling), a
cap on concurrent connections (no thread per connection beyond it), an idle timeout
after the handshake -- for TLSServer, aio.start_server and ``tlsmith serve``.

Bounded: every wait has a timeout and the whole file runs in a few seconds; the long
run (hundreds of connections for a minute) is scripts/soak.py."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import tlsmith
from helpers import CertFiles
from peers import PeerProcess
from tlsmith import aio
from tlsmith.config import CertifiedKey, ClientConfig, ServerConfig
from tlsmith.connection import TLSConnection
from tlsmith.errors import UsageError
from tlsmith.io.blocking import DEFAULT_MAX_CONCURRENT, TLSServer, TLSSocket
from tlsmith.x509.verify import TrustStore

pytestmark = pytest.mark.timeout(60)

DEADLINE = 1.0
SLACK = 2.0  # scheduling on a loaded 2-core CI machine


@pytest.fixture
def cert(certs: dict[str, CertFiles]) -> CertFiles:
    return certs["ecdsa-p256"]


def client_config(cert: CertFiles) -> ClientConfig:
    return ClientConfig(server_name="localhost", trust=TrustStore.from_pem_file(cert.ca_path))


def server_config(cert: CertFiles) -> ServerConfig:
    return ServerConfig(certificates=(CertifiedKey.from_files(cert.chain_path,
                                                              cert.key_path),))


def client_hello(cert: CertFiles) -> bytes:
    return TLSConnection(client_config(cert)).data_to_send()


def closed_by_peer(sock: socket.socket, timeout: float) -> bool:
    """Whether the peer closes ``sock`` within ``timeout`` seconds (reading what comes)."""
    end = time.monotonic() + timeout
    while (left := end - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            if not sock.recv(65536):
                return True
        except TimeoutError:
            return False
        except OSError:  # reset: the server closed with our bytes unread
            return True
    return False


def trickle(sock: socket.socket, data: bytes, every: float, timeout: float) -> bool:
    """Send ``data`` one byte every ``every`` s; True once the peer has closed (within
    ``timeout``)."""
    end = time.monotonic() + timeout
    for byte in data:
        if time.monotonic() > end:
            return False
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            return True
        if closed_by_peer(sock, every):
            return True
    return False


class Slowloris:
    """A silent and a trickling connection, each timed until the server closes it."""

    def __init__(self, port: int, hello: bytes, budget: float) -> None:
        self.cut_after: dict[str, float | None] = {}
        self._threads = [threading.Thread(target=self._run, args=(kind, port, hello, budget),
                                          daemon=True) for kind in ("silent", "trickle")]
        for t in self._threads:
            t.start()

    def _run(self, kind: str, port: int, hello: bytes, budget: float) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            start = time.monotonic()
            if kind == "silent":
                cut = closed_by_peer(sock, budget)
            else:
                cut = trickle(sock, hello, 0.2, budget)
            self.cut_after[kind] = time.monotonic() - start if cut else None

    def join(self, timeout: float) -> dict[str, float | None]:
        for t in self._threads:
            t.join(timeout)
        return self.cut_after


def assert_cut_by_deadline(cut_after: dict[str, float | None]) -> None:
    for kind in ("silent", "trickle"):
        took = cut_after.get(kind)
        assert took is not None, f"the {kind} slowloris was not cut: {cut_after}"
        assert DEADLINE - 0.2 <= took <= DEADLINE + SLACK, (kind, took)


def echo_handler(tls: TLSSocket, peer: tuple[Any, ...]) -> None:
    while data := tls.recv():
        tls.sendall(data)


def echo_once(port: int, cert: CertFiles) -> bytes:
    with tlsmith.connect("127.0.0.1", port, client_config(cert), timeout=10) as tls:
        tls.sendall(b"ping")
        return tls.recv_exactly(4)


@pytest.fixture
def tls_server(cert: CertFiles) -> Iterator[Callable[..., TLSServer]]:
    servers: list[TLSServer] = []

    def start(handler: Callable[[TLSSocket, tuple[Any, ...]], None] = echo_handler,
              **kw: Any) -> TLSServer:
        server = TLSServer(server_config(cert), ("127.0.0.1", 0), handler, **kw).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()


# ------------------------------------------------------------------ TLSServer
def test_defaults_are_bounded(cert: CertFiles) -> None:
    with TLSServer(server_config(cert), ("127.0.0.1", 0), echo_handler) as server:
        assert server.max_concurrent == DEFAULT_MAX_CONCURRENT == 256
        assert server.handshake_timeout == 10.0
        assert server.idle_timeout == server.timeout == 30.0
    with pytest.raises(UsageError):
        TLSServer(server_config(cert), ("127.0.0.1", 0), echo_handler, handshake_timeout=0)


def test_tlsserver_cuts_slowloris_at_the_deadline(
        tls_server: Callable[..., TLSServer], cert: CertFiles,
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="tlsmith.server"):
        server = tls_server(handshake_timeout=DEADLINE, timeout=30.0)
        port = server.server_address[1]
        loris = Slowloris(port, client_hello(cert), DEADLINE + SLACK + 1)
        time.sleep(0.1)
        assert echo_once(port, cert) == b"ping"  # a valid client is served meanwhile
        cut_after = loris.join(10)
    assert_cut_by_deadline(cut_after)
    lines = [r.getMessage() for r in caplog.records if r.name == "tlsmith.server"]
    deadline_lines = [m for m in lines if "handshake deadline exceeded after 1 s from "
                      "127.0.0.1:" in m]
    assert len(deadline_lines) == 2, lines


def test_tlsserver_caps_concurrent_connections(tls_server: Callable[..., TLSServer],
                                               cert: CertFiles) -> None:
    release = threading.Event()

    def handler(tls: TLSSocket, peer: tuple[Any, ...]) -> None:
        tls.sendall(b"hi")
        release.wait(10)

    baseline = threading.active_count()
    server = tls_server(handler, max_concurrent=2, handshake_timeout=5.0)
    port = server.server_address[1]
    first = [tlsmith.connect("127.0.0.1", port, client_config(cert), timeout=10)
             for _ in range(2)]
    for tls in first:
        assert tls.recv_exactly(2) == b"hi"
    # The third connects (the kernel's backlog) but is not served while both slots are
    # taken; silent extra connections don't make threads either.
    done: list[bytes] = []

    def third() -> None:
        with tlsmith.connect("127.0.0.1", port, client_config(cert), timeout=10) as tls:
            done.append(tls.recv_exactly(2))

    t = threading.Thread(target=third, daemon=True)
    t.start()
    time.sleep(0.3)  # the third is first in the backlog
    extra = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(20)]
    try:
        time.sleep(0.5)
        assert not done
        assert threading.active_count() <= baseline + 1 + 2 + 1  # accept loop, 2, third()
    finally:
        # Gone before a slot frees: each would otherwise hold one for its deadline.
        for sock in extra:
            sock.close()
    try:
        release.set()
        t.join(10)
        assert done == [b"hi"]
    finally:
        for tls in first:
            tls.close()


def test_tlsserver_caps_handshakes_apart_from_connections(
        tls_server: Callable[..., TLSServer], cert: CertFiles) -> None:
    """max_handshakes: silent clients hold the handshake slots until their deadline,
    while clients already served keep theirs; once the silent ones are cut, new clients
    are served again."""
    release = threading.Event()

    def handler(tls: TLSSocket, peer: tuple[Any, ...]) -> None:
        tls.sendall(b"hi")
        release.wait(10)

    server = tls_server(handler, max_concurrent=8, max_handshakes=2,
                        handshake_timeout=DEADLINE)
    assert server.max_handshakes == 2
    port = server.server_address[1]
    served = tlsmith.connect("127.0.0.1", port, client_config(cert), timeout=10)
    assert served.recv_exactly(2) == b"hi"  # in its handler: no handshake slot held
    silent = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(2)]
    done: list[float] = []
    start = time.monotonic()

    def late() -> None:
        with tlsmith.connect("127.0.0.1", port, client_config(cert), timeout=10) as tls:
            tls.recv_exactly(2)
            done.append(time.monotonic() - start)

    t = threading.Thread(target=late, daemon=True)
    t.start()
    try:
        time.sleep(DEADLINE / 2)
        assert not done  # both handshake slots are held by the silent ones
        t.join(DEADLINE + SLACK + 5)
        # Served once the deadline cut the silent clients, not before.
        assert done and DEADLINE - 0.2 <= done[0] <= DEADLINE + SLACK + 2
    finally:
        release.set()
        served.close()
        for sock in silent:
            sock.close()
    with pytest.raises(UsageError):
        TLSServer(server_config(cert), ("127.0.0.1", 0), echo_handler, max_handshakes=0)
    # Never more handshakes than connections.
    capped = TLSServer(server_config(cert), ("127.0.0.1", 0), echo_handler,
                       max_concurrent=4, max_handshakes=64)
    try:
        assert capped.max_handshakes == 4
    finally:
        capped.sock.close()


def test_tlsserver_idle_timeout_after_the_handshake(
        tls_server: Callable[..., TLSServer], cert: CertFiles,
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="tlsmith.server"):
        server = tls_server(idle_timeout=0.5, timeout=30.0)
        port = server.server_address[1]
        with tlsmith.connect("127.0.0.1", port, client_config(cert), timeout=10) as tls:
            tls.sendall(b"ping")
            assert tls.recv_exactly(4) == b"ping"
            start = time.monotonic()
            tls.settimeout(5)
            assert tls.recv() == b""  # the server closed us: we stayed idle
            assert time.monotonic() - start < 0.5 + SLACK
    assert any("idle timeout (0.5 s) from 127.0.0.1:" in r.getMessage()
               for r in caplog.records), [r.getMessage() for r in caplog.records]


def test_do_handshake_deadline_is_overall(cert: CertFiles) -> None:
    """TLSSocket.do_handshake(timeout): one byte every 0.2 s never resets the deadline,
    although each read is well within the socket's own timeout."""
    from tlsmith.io.blocking import HandshakeTimeout

    a, b = socket.socketpair()
    with a, b:
        a.settimeout(5.0)
        server = TLSSocket(a, TLSConnection(server_config(cert)))
        hello = client_hello(cert)
        stop = threading.Event()

        def drip() -> None:
            for byte in hello:
                if stop.wait(0.2):
                    return
                try:
                    b.sendall(bytes([byte]))
                except OSError:
                    return

        t = threading.Thread(target=drip, daemon=True)
        t.start()
        start = time.monotonic()
        with pytest.raises(HandshakeTimeout, match=r"after 0\.6 s"):
            server.do_handshake(timeout=0.6)
        assert 0.5 <= time.monotonic() - start < 0.6 + SLACK
        assert a.gettimeout() == 5.0  # the per-read timeout is restored
        stop.set()
        t.join(2)


# ------------------------------------------------------------------ asyncio
async def _aio_echo(reader: aio.TLSStreamReader, writer: aio.TLSStreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()


def test_aio_cuts_slowloris_at_the_deadline(cert: CertFiles,
                                            caplog: pytest.LogCaptureFixture) -> None:
    assert aio.start_server.__kwdefaults__["max_concurrent"] == DEFAULT_MAX_CONCURRENT

    async def main() -> dict[str, float | None]:
        server = await aio.start_server(_aio_echo, "127.0.0.1", 0, server_config(cert),
                                        handshake_timeout=DEADLINE)
        try:
            port = server.sockets[0].getsockname()[1]
            loris = Slowloris(port, client_hello(cert), DEADLINE + SLACK + 1)
            await asyncio.sleep(0.1)
            reader, writer = await aio.open_connection("127.0.0.1", port,
                                                       client_config(cert))
            writer.write(b"ping")
            assert await asyncio.wait_for(reader.readexactly(4), 5) == b"ping"
            writer.close()
            await writer.wait_closed()
            return await asyncio.to_thread(loris.join, 10)
        finally:
            server.close()
            await asyncio.wait_for(server.wait_closed(), 5)

    with caplog.at_level(logging.INFO, logger="tlsmith.aio"):
        cut_after = asyncio.run(asyncio.wait_for(main(), 30))
    assert_cut_by_deadline(cut_after)
    lines = [r.getMessage() for r in caplog.records if r.name == "tlsmith.aio"]
    assert sum("handshake deadline exceeded" in m for m in lines) == 2, lines


def test_aio_caps_handshakes(cert: CertFiles) -> None:
    async def main() -> tuple[bool, float]:
        server = await aio.start_server(_aio_echo, "127.0.0.1", 0, server_config(cert),
                                        handshake_timeout=DEADLINE, max_handshakes=1)
        try:
            port = server.sockets[0].getsockname()[1]
            silent = socket.create_connection(("127.0.0.1", port), timeout=5)
            await asyncio.sleep(0.2)
            start = time.monotonic()
            reader, writer = await aio.open_connection("127.0.0.1", port,
                                                       client_config(cert))
            writer.write(b"ping")
            await asyncio.wait_for(reader.readexactly(4), DEADLINE + 5)
            waited = time.monotonic() - start
            writer.close()
            await writer.wait_closed()
            silent.close()
            return True, waited
        finally:
            server.close()
            await asyncio.wait_for(server.wait_closed(), 5)

    ok, waited = asyncio.run(asyncio.wait_for(main(), 30))
    # The only handshake slot was the silent client's until its deadline.
    assert ok and DEADLINE - 0.4 <= waited <= DEADLINE + SLACK + 2
    with pytest.raises(UsageError):
        asyncio.run(aio.start_server(_aio_echo, "127.0.0.1", 0, server_config(cert),
                                     max_handshakes=0))


def test_aio_idle_timeout(cert: CertFiles, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> float:
        server = await aio.start_server(_aio_echo, "127.0.0.1", 0, server_config(cert),
                                        idle_timeout=0.5)
        try:
            port = server.sockets[0].getsockname()[1]
            reader, writer = await aio.open_connection("127.0.0.1", port,
                                                       client_config(cert))
            writer.write(b"ping")
            assert await asyncio.wait_for(reader.readexactly(4), 5) == b"ping"
            start = time.monotonic()
            assert await asyncio.wait_for(reader.read(100), 5) == b""
            took = time.monotonic() - start
            writer.close()
            return took
        finally:
            server.close()
            await asyncio.wait_for(server.wait_closed(), 5)

    with caplog.at_level(logging.INFO, logger="tlsmith.aio"):
        took = asyncio.run(asyncio.wait_for(main(), 30))
    assert took < 0.5 + SLACK
    assert any("idle timeout" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------ tlsmith serve
def test_serve_handshake_timeout_cuts_a_silent_client(
        serve_factory: Callable[..., PeerProcess], cert: CertFiles) -> None:
    serve = serve_factory("--handshake-timeout", "1", "--max-concurrent", "8")
    assert "handshake deadline 1 s" in serve.output()
    with socket.create_connection(("127.0.0.1", serve.port), timeout=5) as sock:
        start = time.monotonic()
        assert closed_by_peer(sock, DEADLINE + SLACK + 1)
        assert time.monotonic() - start <= DEADLINE + SLACK
    serve.wait_for("closed: handshake deadline exceeded after 1 s", timeout=5)


@pytest.mark.parametrize("clean", [True, False], ids=["close_notify", "bare_eof"])
def test_tlssocket_recv_tells_truncation_from_close_notify(
        tls_server: Callable[..., TLSServer], cert: CertFiles, clean: bool) -> None:
    """recv() returns b"" at the end either way; closed_cleanly says which end it was
    (a bare EOF must not pass for a close_notify: a truncation attack would go unseen)."""
    seen: list[bool | None] = []
    done = threading.Event()

    def handler(tls: TLSSocket, peer: tuple[Any, ...]) -> None:
        assert tls.recv() == b"ping"
        assert tls.recv() == b""
        seen.append(tls.closed_cleanly)
        done.set()

    server = tls_server(handler)
    tls = tlsmith.connect("127.0.0.1", server.server_address[1], client_config(cert),
                          timeout=10)
    tls.sendall(b"ping")
    if clean:
        tls.close()
    else:
        tls.sock.shutdown(socket.SHUT_RDWR)  # no close_notify: the TCP stream just ends
        tls.sock.close()
    assert done.wait(10)
    assert seen == [clean]

"""tlsmith.aio: asyncio streams, tlsmith <-> tlsmith in process, over loopback.

Every test runs its coroutine under ``asyncio.wait_for`` (plus pytest-timeout), so none
can hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from typing import Any, TypeVar

import pytest

from helpers import CertFiles
from tlsmith import aio
from tlsmith.codec.enums import ProtocolVersion
from tlsmith.config import CertifiedKey, ClientConfig, ServerConfig
from tlsmith.errors import UsageError
from tlsmith.events import HandshakeInfo
from tlsmith.stores import MemorySessionCache
from tlsmith.x509.verify import TrustStore

pytestmark = pytest.mark.timeout(60)

T = TypeVar("T")
TEST_TIMEOUT = 20.0
VERSIONS = {"1.3": ProtocolVersion.TLS13, "1.2": ProtocolVersion.TLS12}


def run(coro: Coroutine[Any, Any, T], timeout: float = TEST_TIMEOUT) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def client_config(cert: CertFiles, version: str = "1.3", **kw: Any) -> ClientConfig:
    v = VERSIONS[version]
    return ClientConfig(server_name="localhost", trust=TrustStore.from_pem_file(cert.ca_path),
                        min_version=v, max_version=v, **kw)


def server_config(cert: CertFiles, **kw: Any) -> ServerConfig:
    return ServerConfig(certificates=(CertifiedKey.from_files(cert.chain_path,
                                                              cert.key_path),), **kw)


@pytest.fixture
def cert(certs: dict[str, CertFiles]) -> CertFiles:
    return certs["ecdsa-p256"]


async def echo(reader: aio.TLSStreamReader, writer: aio.TLSStreamWriter) -> None:
    """Echo lines until the client closes; "KEYUPDATE" makes the server update its keys."""
    async for line in reader:
        if line.startswith(b"KEYUPDATE"):
            writer.tls.key_update(request_peer=True)
        writer.write(line)
        await writer.drain()


@contextlib.asynccontextmanager
async def serving(handler: Callable[[aio.TLSStreamReader, aio.TLSStreamWriter],
                                    Awaitable[None]],
                  config: ServerConfig, **kw: Any) -> Any:
    server = await aio.start_server(handler, "127.0.0.1", 0, config, **kw)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), 5)


async def close(writer: aio.TLSStreamWriter) -> None:
    writer.close()
    await asyncio.wait_for(writer.wait_closed(), 5)


# ------------------------------------------------------------------------- basics
@pytest.mark.parametrize("version", ["1.3", "1.2"])
def test_open_connection_echo(cert: CertFiles, version: str) -> None:
    async def main() -> None:
        async with serving(echo, server_config(cert)) as port:
            reader, writer = await aio.open_connection("127.0.0.1", port,
                                                       client_config(cert, version))
            info = writer.get_extra_info("tlsmith")
            assert isinstance(info, HandshakeInfo)
            assert info.version == VERSIONS[version]
            assert writer.get_extra_info("ssl_object") is None
            assert writer.get_extra_info("peername")[1] == port
            assert writer.get_extra_info("sockname")[0] == "127.0.0.1"
            assert writer.get_extra_info("socket") is not None
            assert writer.tls.handshake_seconds > 0
            writer.write(b"hello\n")
            writer.writelines([b"two ", b"parts\n"])
            await writer.drain()
            assert await reader.readline() == b"hello\n"
            assert await reader.readuntil(b" ") == b"two "
            assert await reader.readexactly(6) == b"parts\n"
            big = b"x" * 60_000 + b"\n"  # under the 64 KiB line limit
            writer.write(big)
            await writer.drain()
            assert await reader.readexactly(len(big)) == big
            # Half-close: our close_notify; the server's loop ends and it closes too.
            assert writer.can_write_eof()
            writer.write_eof()
            assert await reader.read() == b""
            assert reader.at_eof()
            assert reader.closed_cleanly is True
            await close(writer)
            assert writer.is_closing()

    run(main())


def test_upgrade_starttls(cert: CertFiles) -> None:
    """A line protocol: the client sends STARTTLS, the server answers OK, both upgrade;
    the client's ClientHello goes out right behind its command."""
    server_cfg = server_config(cert)
    seen: list[bytes] = []

    async def plain_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            seen.append(await reader.readline())
            writer.write(b"OK\r\n")
            await writer.drain()
            treader, twriter = await aio.upgrade(reader, writer, server_cfg, server_side=True)
            line = await treader.readline()
            twriter.write(b"secure " + line)
            await twriter.drain()
            twriter.close()
            await twriter.wait_closed()
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(plain_server, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"STARTTLS\r\n")
            assert await reader.readline() == b"OK\r\n"
            treader, twriter = await aio.upgrade(reader, writer, client_config(cert))
            assert twriter.get_extra_info("tlsmith").version == ProtocolVersion.TLS13
            twriter.write(b"ping\n")
            assert await treader.readline() == b"secure ping\n"
            assert await treader.read() == b""
            assert treader.closed_cleanly is True
            await close(twriter)
        finally:
            server.close()
            await server.wait_closed()
        assert seen == [b"STARTTLS\r\n"]

    run(main())


def test_upgrade_pipelined_client_hello(cert: CertFiles) -> None:
    """Bytes already in the plain reader's buffer (the ClientHello sent right behind
    STARTTLS, before the server read it) are fed to TLS first."""
    server_cfg = server_config(cert)

    async def plain_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.sleep(0.2)  # let the ClientHello land in the buffer too
            assert await reader.readline() == b"STARTTLS\r\n"
            treader, twriter = await aio.upgrade(reader, writer, server_cfg)
            twriter.write(await treader.readline())
            await twriter.drain()
            await treader.read()
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(plain_server, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"STARTTLS\r\n")  # no answer awaited: TLS follows at once
            treader, twriter = await aio.upgrade(reader, writer, client_config(cert))
            twriter.write(b"pipelined\n")
            assert await treader.readline() == b"pipelined\n"
            await close(twriter)
        finally:
            server.close()
            await server.wait_closed()

    run(main())


def test_upgrade_side_must_match_config(cert: CertFiles) -> None:
    async def main() -> None:
        reader = asyncio.StreamReader()
        with pytest.raises(UsageError):
            await aio.upgrade(reader, None, client_config(cert),  # type: ignore[arg-type]
                              server_side=True)

    run(main())


def test_open_connection_default_limits(cert: CertFiles) -> None:
    """readline over the limit raises ValueError (as asyncio's), and the stream goes on."""
    async def main() -> None:
        async with serving(echo, server_config(cert)) as port:
            reader, writer = await aio.open_connection("127.0.0.1", port,
                                                       client_config(cert), limit=1000)
            writer.write(b"y" * 3000 + b"\n")
            with pytest.raises(ValueError):
                await reader.readline()
            await close(writer)

    run(main())


# -------------------------------------------------------------- resumption, 0-RTT
@pytest.mark.parametrize("version", ["1.3", "1.2"])
def test_resumption_with_session_cache(cert: CertFiles, version: str) -> None:
    async def main() -> None:
        cache = MemorySessionCache()
        async with serving(echo, server_config(cert)) as port:
            cfg = client_config(cert, version)
            reader, writer = await aio.open_connection("127.0.0.1", port, cfg,
                                                       session_cache=cache)
            assert not writer.get_extra_info("tlsmith").resumed
            assert await writer.tls.server_verdict() == "accepted"
            session = await writer.tls.wait_for_session(timeout=5)
            assert session is not None and writer.tls.sessions[-1] is session
            writer.write(b"still here\n")
            assert await reader.readline() == b"still here\n"
            await close(writer)
            assert cache.get(f"127.0.0.1:{port}", cfg.clock()) is not None
            if version == "1.3":  # the cache hands out a TLS 1.3 ticket once: put it back
                cache.put(f"127.0.0.1:{port}", session)

            reader, writer = await aio.open_connection("127.0.0.1", port, cfg,
                                                       session_cache=cache)
            info = writer.get_extra_info("tlsmith")
            assert info.resumed and info.resumed_with is not None
            writer.write(b"resumed\n")
            assert await reader.readline() == b"resumed\n"
            await close(writer)

    run(main())


def test_early_data(cert: CertFiles) -> None:
    early_seen: list[bytes] = []

    async def handler(reader: aio.TLSStreamReader, writer: aio.TLSStreamWriter) -> None:
        early_seen.append(writer.tls.early_data)
        await echo(reader, writer)

    async def main() -> None:
        async with serving(handler, server_config(cert, max_early_data=4096)) as port:
            cfg = client_config(cert)
            reader, writer = await aio.open_connection("127.0.0.1", port, cfg)
            session = await writer.tls.wait_for_session(timeout=5)
            assert session is not None
            await close(writer)

            reader, writer = await aio.open_connection("127.0.0.1", port, cfg,
                                                       session=session,
                                                       early_data=b"zero rtt\n")
            assert writer.tls.early_data_accepted is True
            assert writer.get_extra_info("tlsmith").resumed
            assert await reader.readline() == b"zero rtt\n"
            await close(writer)
        assert early_seen == [b"", b"zero rtt\n"]

    run(main())


def test_key_update_both_ways(cert: CertFiles) -> None:
    server_updates: list[int] = []

    async def handler(reader: aio.TLSStreamReader, writer: aio.TLSStreamWriter) -> None:
        await echo(reader, writer)
        server_updates.append(writer.tls.key_updates_received)

    async def main() -> None:
        async with serving(handler, server_config(cert)) as port:
            reader, writer = await aio.open_connection("127.0.0.1", port, client_config(cert))
            writer.write(b"KEYUPDATE\n")  # the server updates and asks us to
            assert await reader.readline() == b"KEYUPDATE\n"
            assert writer.tls.key_updates_received == 1
            writer.tls.key_update(request_peer=False)
            writer.write(b"after\n")
            assert await reader.readline() == b"after\n"
            writer.write_eof()
            assert await reader.read() == b""
            await close(writer)
            for _ in range(100):
                if server_updates:
                    break
                await asyncio.sleep(0.02)
        # Our answer to the server's request, then our own update.
        assert server_updates == [2]

    run(main())


# -------------------------------------------------------------- how streams end
@pytest.mark.parametrize("clean", [True, False])
def test_close_notify_vs_bare_eof(cert: CertFiles, clean: bool) -> None:
    server_saw: list[bool | None] = []

    async def handler(reader: aio.TLSStreamReader, writer: aio.TLSStreamWriter) -> None:
        writer.write(b"bye\n")
        await writer.drain()
        if clean:
            writer.close()  # close_notify, then the transport
            # ... and the client's close_notify answers ours? It closes after reading.
        else:
            writer.tls.plain_writer.close()  # TCP FIN, no close_notify: a truncation
        server_saw.append(reader.closed_cleanly)

    async def main() -> None:
        async with serving(handler, server_config(cert)) as port:
            reader, writer = await aio.open_connection("127.0.0.1", port, client_config(cert))
            assert await reader.read() == b"bye\n"
            assert reader.at_eof()
            assert reader.closed_cleanly is clean
            assert writer.tls.closed_cleanly is clean
            await close(writer)
        assert server_saw == [None]

    run(main())


def test_server_sees_client_bare_eof(cert: CertFiles) -> None:
    server_saw: list[bool | None] = []

    async def handler(reader: aio.TLSStreamReader, writer: aio.TLSStreamWriter) -> None:
        assert await reader.read() == b"partial"
        server_saw.append(reader.closed_cleanly)

    async def main() -> None:
        async with serving(handler, server_config(cert)) as port:
            for clean in (False, True):
                _, writer = await aio.open_connection("127.0.0.1", port, client_config(cert))
                writer.write(b"partial")
                await writer.drain()
                if clean:
                    writer.close()
                else:
                    writer.tls.plain_writer.close()
                await writer.wait_closed()
                for _ in range(100):
                    if len(server_saw) == (2 if clean else 1):
                        break
                    await asyncio.sleep(0.02)
        assert server_saw == [False, True]

    run(main())


# -------------------------------------------------------------- timeouts, cancellation
class SilentServer:
    """A TCP server that accepts and never says a word; records when each connection
    sees EOF (the client closed its transport)."""

    def __init__(self) -> None:
        self.connected = 0
        self.closed = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                      ) -> None:
        self.connected += 1
        try:
            while await reader.read(65536):
                pass
        except ConnectionError:
            pass
        finally:
            self.closed.set()
            writer.close()

    async def __aenter__(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


def test_handshake_timeout_against_silent_server(cert: CertFiles) -> None:
    async def main() -> None:
        silent = SilentServer()
        async with silent as port:
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(TimeoutError, match=r"TLS handshake timed out after 0.5 s"):
                await aio.open_connection("127.0.0.1", port, client_config(cert),
                                          timeout=0.5)
            assert loop.time() - started < 3
            # The transport was closed: the server sees EOF.
            await asyncio.wait_for(silent.closed.wait(), 5)

    run(main())


def test_upgrade_timeout_closes_transport(cert: CertFiles) -> None:
    async def main() -> None:
        silent = SilentServer()
        async with silent as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            with pytest.raises(TimeoutError, match=r"TLS handshake timed out after 0.3 s"):
                await aio.upgrade(reader, writer, client_config(cert), timeout=0.3)
            assert writer.is_closing()
            await asyncio.wait_for(silent.closed.wait(), 5)

    run(main())


def test_cancel_during_handshake_leaks_nothing(cert: CertFiles) -> None:
    async def main() -> None:
        silent = SilentServer()
        async with silent as port:
            task = asyncio.create_task(aio.open_connection("127.0.0.1", port,
                                                           client_config(cert), timeout=30))
            for _ in range(200):
                if silent.connected:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.wait_for(silent.closed.wait(), 5)

    run(main())


def test_cancel_during_read_then_close(cert: CertFiles) -> None:
    """A read cancelled by a timeout loses nothing (the stream goes on); a task
    cancelled in a read closes its stream in ``finally`` -- close_notify included --
    even though its wait_closed() is cancelled too."""
    server_saw: list[bool | None] = []

    async def handler(reader: aio.TLSStreamReader, writer: aio.TLSStreamWriter) -> None:
        await echo(reader, writer)
        server_saw.append(reader.closed_cleanly)

    async def main() -> None:
        async with serving(handler, server_config(cert)) as port:
            reader, writer = await aio.open_connection("127.0.0.1", port, client_config(cert))
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(reader.readline(), 0.2)
            writer.write(b"still works\n")
            assert await reader.readline() == b"still works\n"

            reading = asyncio.Event()

            async def reader_task() -> None:
                try:
                    reading.set()
                    await reader.read(100)
                finally:
                    writer.close()
                    await writer.wait_closed()

            task = asyncio.create_task(reader_task())
            await reading.wait()
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert writer.is_closing()
            for _ in range(250):
                if server_saw:
                    break
                await asyncio.sleep(0.02)
        assert server_saw == [True]

    run(main())


# -------------------------------------------------------------- the server
def test_failed_handshake_and_raising_handler_do_not_stop_the_server(
        cert: CertFiles, certs: dict[str, CertFiles], caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []

    async def handler(reader: aio.TLSStreamReader, writer: aio.TLSStreamWriter) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("handler bug")
        writer.write(b"fine\n")

    async def main() -> None:
        async with serving(handler, server_config(cert), handshake_timeout=0.5) as port:
            # 1: the handler raises; the client sees the connection end.
            reader, writer = await aio.open_connection("127.0.0.1", port, client_config(cert))
            assert await reader.read() == b""
            await close(writer)
            # 2: a handshake that fails (a client that does not trust the server).
            wrong = replace(client_config(cert), trust=TrustStore.from_pem_file(
                certs["rsa-2048"].cert_path))
            with pytest.raises(Exception):  # noqa: B017 - which alert is beside the point
                await aio.open_connection("127.0.0.1", port, wrong)
            # 3: a client that never speaks: the server gives up after 0.5 s.
            plain_reader, plain_writer = await asyncio.open_connection("127.0.0.1", port)
            assert await asyncio.wait_for(plain_reader.read(), 5) == b""
            plain_writer.close()
            # 4: the server still serves.
            reader, writer = await aio.open_connection("127.0.0.1", port, client_config(cert))
            assert await reader.readline() == b"fine\n"
            await close(writer)

    with caplog.at_level(logging.INFO, logger="tlsmith.aio"):
        run(main())
    messages = [r.getMessage() for r in caplog.records if r.name == "tlsmith.aio"]
    assert any("raised" in m for m in messages), messages
    assert sum("handshake" in m and "failed" in m for m in messages) == 2, messages
    assert any("timed out" in m for m in messages), messages


def test_start_server_max_concurrent(cert: CertFiles) -> None:
    active = 0
    peak = 0

    async def handler(reader: aio.TLSStreamReader, writer: aio.TLSStreamWriter) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.3)
        active -= 1
        writer.write(b"done\n")

    async def one(port: int) -> bytes:
        reader, writer = await aio.open_connection("127.0.0.1", port, client_config(cert))
        try:
            return await reader.readline()
        finally:
            await close(writer)

    async def main() -> None:
        async with serving(handler, server_config(cert), max_concurrent=2) as port:
            results = await asyncio.gather(*(one(port) for _ in range(5)))
        assert results == [b"done\n"] * 5
        assert peak == 2

    run(main())


def test_open_connection_rejects_ssl_keyword(cert: CertFiles) -> None:
    async def main() -> None:
        with pytest.raises(UsageError):
            await aio.open_connection("127.0.0.1", 1, client_config(cert), ssl=True)

    run(main())


# -------------------------------------------------------------- the blocking server bound
def test_tlsserver_max_concurrent(cert: CertFiles) -> None:
    import threading

    import tlsmith
    from tlsmith.io.blocking import TLSServer, TLSSocket

    lock = threading.Lock()
    active = 0
    peak = 0

    def handler(tls: TLSSocket, peer: tuple[Any, ...]) -> None:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.3)
        with lock:
            active -= 1
        tls.sendall(b"done\n")

    results: list[bytes] = []

    def client(port: int) -> None:
        with tlsmith.connect("127.0.0.1", port, client_config(cert), timeout=15) as tls:
            data = tls.recv_exactly(5)
            with lock:
                results.append(data)

    with TLSServer(server_config(cert), ("127.0.0.1", 0), handler,
                   max_concurrent=2).start() as server:
        port = server.server_address[1]
        threads = [threading.Thread(target=client, args=(port,), daemon=True)
                   for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=20)
    assert results == [b"done\n"] * 5
    assert peak == 2
    with pytest.raises(UsageError):
        TLSServer(server_config(cert), ("127.0.0.1", 0), handler, max_concurrent=0)


# -------------------------------------------------------------- the shared driver
def test_driver_in_memory(cert: CertFiles) -> None:
    """The event driver alone, bytes moved by hand: what both adapters build on."""
    from tlsmith.connection import TLSConnection
    from tlsmith.io.driver import Step, TLSDriver

    cache = MemorySessionCache()
    client = TLSDriver(TLSConnection(client_config(cert)), session_cache=(cache, "srv"))
    server = TLSDriver(TLSConnection(server_config(cert)))
    client.start_handshake()

    def move(src: TLSDriver, dst: TLSDriver) -> None:
        data = src.data_to_send()
        if data:
            dst.receive_data(data)

    def settle() -> None:
        for _ in range(20):
            move(client, server)
            while server.step() is Step.EVENT:
                pass
            move(server, client)
            while client.step() is Step.EVENT:
                pass

    settle()
    assert client.conn.handshake_complete and server.conn.handshake_complete
    assert client.finish_handshake().version == ProtocolVersion.TLS13
    assert client.handshake_seconds > 0
    assert len(client.tickets) == 2 and client.session is client.tickets[-1].session
    assert cache.get("srv", client.conn.config.clock()) is client.session
    assert client.early_verdict() == "accepted"

    client.conn.send_data(b"hello")
    server.conn.key_update(request_peer=True)
    settle()
    assert server.take(3) == b"hel" and server.take(-1) == b"lo"
    assert client.key_updates_received == 1 and server.key_updates_received == 1

    server.conn.close()
    move(server, client)
    assert client.step() is Step.CLOSED
    assert client.closed_cleanly is True and client.eof
    client.receive_data(b"")  # then the transport's EOF: still clean
    assert client.step() is Step.CLOSED and client.closed_cleanly is True

    server.receive_data(b"")  # a bare EOF on the other side: a truncation
    assert server.step() is Step.CLOSED
    assert server.closed_cleanly is False


def test_both_adapters_use_the_driver(cert: CertFiles) -> None:
    import socket

    from tlsmith.connection import TLSConnection
    from tlsmith.io.blocking import TLSSocket
    from tlsmith.io.driver import TLSDriver

    a, b = socket.socketpair()
    try:
        tls = TLSSocket(a, TLSConnection(client_config(cert)))
        assert isinstance(tls.driver, TLSDriver) and tls.tickets is tls.driver.tickets
    finally:
        a.close()
        b.close()

    async def main() -> None:
        reader = asyncio.StreamReader()
        stream = aio.TLSStream(reader, None, TLSConnection(client_config(cert)))  # type: ignore[arg-type]
        assert isinstance(stream.driver, TLSDriver)
        assert stream.reader.tls is stream and stream.writer.tls is stream

    run(main())


def test_post_handshake_client_certificate(cert: CertFiles, devca: Any,
                                           tmp_path: Any) -> None:
    """Server, TLS 1.3: ask for the client's certificate after the handshake; the
    client's core answers while the client reads."""
    issued = devca.issue(("alice.example",), key_type="ecdsa-p256", client=True).write(
        tmp_path, "alice")
    alice = CertifiedKey.from_files(issued.chain_path, issued.key_path)
    got: list[Any] = []

    async def handler(reader: aio.TLSStreamReader, writer: aio.TLSStreamWriter) -> None:
        answer = await writer.tls.request_client_certificate()
        got.append(answer)
        assert answer is not None
        writer.write(f"verified={answer.verified}\n".encode())

    async def main() -> None:
        cfg = server_config(cert, client_trust=TrustStore.from_pem_file(cert.ca_path))
        async with serving(handler, cfg) as port:
            reader, writer = await aio.open_connection(
                "127.0.0.1", port, client_config(cert, certificate=alice))
            assert await reader.readline() == b"verified=True\n"
            await close(writer)

    run(main())
    assert got[0].chain == alice.chain


def test_server_verdict_silent_and_accepted(cert: CertFiles) -> None:
    """TLS 1.3 without tickets: nothing comes after the handshake until the server
    speaks, so the verdict is "silent"; once data came, "accepted"."""
    async def main() -> None:
        async with serving(echo, server_config(cert, tickets=0)) as port:
            reader, writer = await aio.open_connection("127.0.0.1", port, client_config(cert))
            assert await writer.tls.server_verdict(timeout=0.3) == "silent"
            assert await writer.tls.wait_for_session(timeout=0.2) is None
            writer.write(b"hi\n")
            assert await writer.tls.server_verdict() == "accepted"  # the echo came
            assert await reader.readline() == b"hi\n"
            await close(writer)

    run(main())

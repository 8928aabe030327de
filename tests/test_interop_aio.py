"""tlsmith.aio against real peers over loopback: its client against ``openssl s_server``
and Python's ``ssl`` server, ``openssl s_client`` and Python's asyncio ``ssl`` client
against its server (TLS 1.3 and 1.2), and STARTTLS (``openssl s_client -starttls smtp``)
against a small SMTP-like server that upgrades with ``tlsmith.aio.upgrade``.

Blocking peers (subprocesses) run in a thread (``asyncio.to_thread``) so the event loop
keeps serving; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from helpers import CertFiles
from peers import python_ssl_server, run_s_client, start_s_server, wait_until
from tlsmith import aio
from tlsmith.codec.enums import ProtocolVersion
from tlsmith.config import CertifiedKey, ClientConfig, ServerConfig
from tlsmith.x509.verify import TrustStore

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]

T = TypeVar("T")
TIMEOUT = 10.0
VERSIONS = {"1.3": ProtocolVersion.TLS13, "1.2": ProtocolVersion.TLS12}
GET = b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n"


def run(coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def client_config(cert: CertFiles, version: str = "1.3") -> ClientConfig:
    v = VERSIONS[version]
    return ClientConfig(server_name="localhost", trust=TrustStore.from_pem_file(cert.ca_path),
                        min_version=v, max_version=v)


def server_config(cert: CertFiles) -> ServerConfig:
    return ServerConfig(certificates=(CertifiedKey.from_files(cert.chain_path,
                                                              cert.key_path),))


@pytest.fixture
def cert(certs: dict[str, CertFiles]) -> CertFiles:
    return certs["ecdsa-p256"]


# --------------------------------------------------------------- our client, their server
@pytest.mark.parametrize("version", ["1.3", "1.2"])
def test_client_against_openssl_s_server(cert: CertFiles, tmp_path: Path, version: str
                                         ) -> None:
    extra = ["-www"] if version == "1.3" else ["-www", "-tls1_2"]
    server = start_s_server(cert, *extra, log_dir=tmp_path, tls13_only=version == "1.3")
    try:
        async def main() -> bytes:
            reader, writer = await aio.open_connection("127.0.0.1", server.port,
                                                       client_config(cert, version),
                                                       timeout=TIMEOUT)
            try:
                info = writer.get_extra_info("tlsmith")
                assert info.version == VERSIONS[version]
                assert info.certificate_verified
                writer.write(GET)
                await writer.drain()
                return await asyncio.wait_for(reader.read(), TIMEOUT)
            finally:
                writer.close()
                await writer.wait_closed()

        page = run(main())
    finally:
        server.stop()
    text = page.decode("utf-8", "replace")
    assert text.startswith("HTTP/1.0 200 ok"), text[:500]
    label = "TLSv1.3" if version == "1.3" else "TLSv1.2"
    assert f"New, {label}, Cipher is" in text, text[:2000]


def test_client_key_update_with_openssl_s_server(cert: CertFiles, tmp_path: Path) -> None:
    """s_server (console mode) prints what it receives: the line sent after our
    KeyUpdate must arrive readable. OpenSSL answers our update request with its next
    write: the line we have it send comes after its KeyUpdate."""
    server = start_s_server(cert, log_dir=tmp_path)
    try:
        async def main() -> None:
            reader, writer = await aio.open_connection("127.0.0.1", server.port,
                                                       client_config(cert), timeout=TIMEOUT)
            try:
                writer.write(b"before-update\n")
                writer.tls.key_update(request_peer=True)
                writer.write(b"after-update\n")
                await writer.drain()
                await asyncio.to_thread(server.wait_for, "after-update")
                server.send("hello-from-s_server\n")
                line = await asyncio.wait_for(reader.readline(), TIMEOUT)
                assert line == b"hello-from-s_server\n"
                assert writer.tls.key_updates_received == 1
            finally:
                writer.close()
                await writer.wait_closed()

        run(main())
        out = server.output()
    finally:
        server.stop()
    assert "before-update" in out and "after-update" in out


@pytest.mark.parametrize("version", ["1.3", "1.2"])
def test_client_against_python_ssl_echo(cert: CertFiles, version: str) -> None:
    v = ssl.TLSVersion.TLSv1_3 if version == "1.3" else ssl.TLSVersion.TLSv1_2
    payload = bytes(range(256)) * 1024  # 256 KiB

    async def main(port: int) -> bool | None:
        reader, writer = await aio.open_connection("127.0.0.1", port,
                                                   client_config(cert, version),
                                                   timeout=TIMEOUT)
        try:
            for start in range(0, len(payload), 32768):
                chunk = payload[start:start + 32768]
                writer.write(chunk)
                await writer.drain()
                assert await reader.readexactly(len(chunk)) == chunk
            writer.write_eof()  # our close_notify: Python answers with its own
            assert await reader.read() == b""
            return reader.closed_cleanly
        finally:
            writer.close()
            await writer.wait_closed()

    with python_ssl_server(cert, "echo", minimum_version=v, maximum_version=v) as (port,
                                                                                 served):
        clean = run(main(port))
        assert wait_until(lambda: bool(served) and served[0].done.is_set(), TIMEOUT)
    assert clean is True
    record = served[0]
    assert record.error is None, repr(record.error)
    assert record.version == ("TLSv1.3" if version == "1.3" else "TLSv1.2")
    assert record.received == len(payload)
    assert record.peer_closed_cleanly and record.unwrapped


def test_client_python_ssl_server_closes_first(cert: CertFiles) -> None:
    async def main(port: int) -> tuple[bytes, bool | None]:
        reader, writer = await aio.open_connection("127.0.0.1", port, client_config(cert),
                                                   timeout=TIMEOUT)
        data = await reader.read()
        writer.close()  # our close_notify: Python's unwrap() waits for it
        await writer.wait_closed()
        return data, reader.closed_cleanly

    with python_ssl_server(cert, "close-first") as (port, served):
        data, clean = run(main(port))
        assert wait_until(lambda: bool(served) and served[0].done.is_set(), TIMEOUT)
    assert (data, clean) == (b"bye", True)
    assert served[0].error is None, repr(served[0].error)
    assert served[0].unwrapped


# --------------------------------------------------------------- their client, our server
async def info_handler(reader: aio.TLSStreamReader, writer: aio.TLSStreamWriter) -> None:
    """Read a request (up to the blank line), answer with the version, then close."""
    request = await reader.readuntil(b"\r\n\r\n")
    info = writer.get_extra_info("tlsmith")
    body = f"tlsmith-aio {info.version_label} {info.cipher_suite.name}\n".encode()
    writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: " + str(len(body)).encode()
                 + b"\r\n\r\n" + body)
    await writer.drain()
    assert request.startswith(b"GET / ")


@pytest.mark.parametrize("version", ["1.3", "1.2"])
def test_openssl_s_client_against_server(cert: CertFiles, version: str) -> None:
    flag = "-tls1_3" if version == "1.3" else "-tls1_2"

    async def main() -> str:
        server = await aio.start_server(info_handler, "127.0.0.1", 0, server_config(cert))
        try:
            port = server.sockets[0].getsockname()[1]
            done = await asyncio.to_thread(
                run_s_client, port, flag, "-CAfile", str(cert.ca_path),
                "-verify_return_error", "-servername", "localhost", "-ign_eof", stdin=GET)
            assert done.returncode == 0, done.text
            return done.stdout
        finally:
            server.close()
            await server.wait_closed()

    out = run(main())
    label = "TLSv1.3" if version == "1.3" else "TLSv1.2"
    assert "Verify return code: 0 (ok)" in out
    assert f"New, {label}, Cipher is" in out
    assert f"tlsmith-aio {label} " in out


@pytest.mark.parametrize("version", ["1.3", "1.2"])
def test_python_ssl_client_against_server(cert: CertFiles, version: str) -> None:
    ctx = ssl.create_default_context(cafile=str(cert.ca_path))
    v = ssl.TLSVersion.TLSv1_3 if version == "1.3" else ssl.TLSVersion.TLSv1_2
    ctx.minimum_version = ctx.maximum_version = v

    async def main() -> tuple[bytes, str | None]:
        server = await aio.start_server(info_handler, "127.0.0.1", 0, server_config(cert))
        try:
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=ctx, server_hostname="localhost",
                ssl_handshake_timeout=TIMEOUT)
            try:
                version_seen = writer.get_extra_info("ssl_object").version()
                writer.write(GET)
                await writer.drain()
                # Our server closes with close_notify: Python reads a clean EOF.
                return await asyncio.wait_for(reader.read(), TIMEOUT), version_seen
            finally:
                writer.close()
                # Python may complain about the closed transport; the data is what counts.
                with contextlib.suppress(OSError, ssl.SSLError):
                    await asyncio.wait_for(writer.wait_closed(), TIMEOUT)
        finally:
            server.close()
            await server.wait_closed()

    reply, seen = run(main())
    label = "TLSv1.3" if version == "1.3" else "TLSv1.2"
    assert seen == label
    assert reply.startswith(b"HTTP/1.0 200 OK"), reply
    assert f"tlsmith-aio {label} ".encode() in reply


# --------------------------------------------------------------- STARTTLS
def test_openssl_starttls_smtp_against_upgrade(cert: CertFiles) -> None:
    """``openssl s_client -starttls smtp``: greeting, EHLO (we offer STARTTLS), STARTTLS,
    220, then the TLS handshake on the same connection -- our side via upgrade()."""
    cfg = server_config(cert)
    transcript: list[bytes] = []

    async def smtp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(b"220 tlsmith ESMTP ready\r\n")
            transcript.append(await reader.readline())  # EHLO
            writer.write(b"250-tlsmith greets you\r\n250 STARTTLS\r\n")
            transcript.append(await reader.readline())  # STARTTLS
            writer.write(b"220 go ahead\r\n")
            await writer.drain()
            treader, twriter = await aio.upgrade(reader, writer, cfg, server_side=True)
            line = await treader.readline()
            info = twriter.get_extra_info("tlsmith")
            twriter.write(b"250 secure " + info.version_label.encode() + b" " + line)
            await twriter.drain()
            twriter.close()
            await twriter.wait_closed()
        finally:
            writer.close()

    async def main() -> str:
        server = await asyncio.start_server(smtp, "127.0.0.1", 0)
        try:
            port = server.sockets[0].getsockname()[1]
            done = await asyncio.to_thread(
                run_s_client, port, "-starttls", "smtp", "-CAfile", str(cert.ca_path),
                "-verify_return_error", "-servername", "localhost", "-ign_eof",
                stdin=b"NOOP-OVER-TLS\n")
            assert done.returncode == 0, done.text
            return done.stdout
        finally:
            server.close()
            await server.wait_closed()

    out = run(main())
    assert transcript[0].startswith(b"EHLO ")
    assert transcript[1] == b"STARTTLS\r\n"
    assert "Verify return code: 0 (ok)" in out
    assert "250 secure TLSv1.3 NOOP-OVER-TLS" in out

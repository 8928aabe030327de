"""asyncio streams on top of the sans-IO core: ``open_connection``, ``start_server`` and
``upgrade`` (STARTTLS).

The streams mirror ``asyncio.StreamReader`` / ``asyncio.StreamWriter`` and run on the
same event driver as the blocking ``TLSSocket`` (``tlsmith.io.driver``). They sit on
top of a plain asyncio stream pair: TLS records are read from the plain reader only when
the application reads (pull, like the blocking socket), so flow control is asyncio's own
and there is no background task to leak. ``writer.tls`` (also ``reader.tls``) is the
``TLSStream`` with what TLSSocket offers beyond a socket: sessions, ``wait_for_session``,
``key_update``, ``server_verdict``, early data, ``closed_cleanly``.

Closing: ``writer.close()`` is synchronous -- it queues close_notify and closes the
transport at once -- so ``close()`` then ``await wait_closed()`` frees everything even if
the waiting task is cancelled. A handshake that fails, times out or is cancelled closes
its transport before the error propagates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from tlsmith.config import ClientConfig, ServerConfig
from tlsmith.connection import TLSConnection
from tlsmith.errors import ConnectionClosedError, TLSError, UsageError
from tlsmith.events import ClientCertificateReceived, HandshakeInfo, SessionTicketReceived
from tlsmith.io.blocking import DEFAULT_MAX_CONCURRENT, DEFAULT_MAX_HANDSHAKES, with_keylog
from tlsmith.io.driver import Step, TLSDriver
from tlsmith.session import Session
from tlsmith.stores import ClientSessionCache

__all__ = [
    "IdleTimeout",
    "TLSStream",
    "TLSStreamReader",
    "TLSStreamWriter",
    "open_connection",
    "start_server",
    "upgrade",
]

logger = logging.getLogger("tlsmith.aio")

_RECV = 65536
_DEFAULT_LIMIT = 2**16  # asyncio's StreamReader default

Handler = Callable[["TLSStreamReader", "TLSStreamWriter"], Awaitable[None]]


class IdleTimeout(TimeoutError):
    """A read waited longer than the stream's ``read_timeout`` for the peer."""


class TLSStream:
    """One TLS connection over a plain asyncio stream pair, shared by its reader and
    writer (``reader.tls`` / ``writer.tls``)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 conn: TLSConnection, *,
                 session_cache: tuple[ClientSessionCache, str] | None = None,
                 limit: int = _DEFAULT_LIMIT) -> None:
        self.driver = TLSDriver(conn, session_cache=session_cache)
        self.conn = conn
        self.plain_reader = reader
        self.plain_writer = writer
        # One coroutine reads the transport at a time; others wait, then re-check.
        self._read_lock = asyncio.Lock()
        self._closed = False
        # How long one read of the transport may wait (start_server's idle_timeout once
        # the handshake is done); None: as long as it takes.
        self.read_timeout: float | None = None
        self.reader = TLSStreamReader(self, limit)
        self.writer = TLSStreamWriter(self)

    # -- plumbing (the same loop as TLSSocket._pump, with awaits) -------------------------
    def _flush(self) -> None:
        data = self.driver.data_to_send()
        # Once the transport is closing, asyncio would drop the bytes with a warning.
        if data and not self.plain_writer.is_closing():
            self.plain_writer.write(data)

    def _step(self) -> Step:
        try:
            step = self.driver.step()
        except TLSError:
            with contextlib.suppress(Exception):
                self._flush()  # the alert the core queued for the peer
            raise
        self._flush()
        return step

    async def _pump(self) -> bool:
        """Handle one event, reading from the transport when the core needs bytes.
        Returns False at end of stream."""
        async with self._read_lock:
            while True:
                step = self._step()
                if step is Step.NEED_DATA:
                    # Cancellation here loses nothing: the bytes stay in the plain reader.
                    if self.read_timeout is None:
                        chunk = await self.plain_reader.read(_RECV)
                    else:
                        try:
                            async with asyncio.timeout(self.read_timeout):
                                chunk = await self.plain_reader.read(_RECV)
                        except TimeoutError as exc:
                            raise IdleTimeout(f"idle timeout: nothing received for "
                                               f"{self.read_timeout:g} s") from exc
                    self.driver.receive_data(chunk)
                    continue
                return step is Step.EVENT

    async def _handshake(self) -> HandshakeInfo:
        self.driver.start_handshake()
        self._flush()
        while not self.conn.handshake_complete:
            if not await self._pump():
                raise ConnectionClosedError("the peer closed the connection during the "
                                            "handshake")
        return self.driver.finish_handshake()

    async def establish(self, timeout: float | None, *, budget: float | None = None
                        ) -> HandshakeInfo:
        """The handshake, bounded by ``timeout`` seconds; on any failure (timeout and
        cancellation included) the transport is closed before the error propagates.
        ``budget``: the timeout to name in the error (when part of it went elsewhere)."""
        try:
            async with asyncio.timeout(timeout) as scope:
                return await self._handshake()
        except TimeoutError as exc:
            self.close(notify=False)
            if scope.expired():
                shown = timeout if budget is None else budget
                raise TimeoutError(f"TLS handshake timed out after {shown} s") from exc
            raise
        except BaseException:
            self.close(notify=False)  # an alert the core queued still goes out
            raise

    # -- state ----------------------------------------------------------------------------
    @property
    def info(self) -> HandshakeInfo:
        return self.driver.info

    @property
    def handshake_seconds(self) -> float:
        return self.driver.handshake_seconds

    @property
    def closed_cleanly(self) -> bool | None:
        """None while open; True after the peer's close_notify; False after a bare EOF
        (a truncation: the data may be incomplete)."""
        return self.driver.closed_cleanly

    @property
    def tickets(self) -> list[SessionTicketReceived]:
        return self.driver.tickets

    @property
    def sessions(self) -> list[Session]:
        """Client: the sessions received so far, newest last (for ``session=``)."""
        return self.driver.sessions

    @property
    def session(self) -> Session | None:
        return self.driver.session

    @property
    def key_updates_received(self) -> int:
        return self.driver.key_updates_received

    @property
    def client_certificates(self) -> list[ClientCertificateReceived]:
        return self.driver.client_certificates

    @property
    def early_data(self) -> bytes:
        """Server: the TLS 1.3 0-RTT bytes accepted (also the head of what the reader
        returns); they may be a replay (RFC 8446 §8)."""
        return bytes(self.driver.early)

    @property
    def early_data_accepted(self) -> bool | None:
        return self.conn.early_data_accepted

    # -- operations -----------------------------------------------------------------------
    async def wait_for_session(self, timeout: float = 1.0) -> Session | None:
        """Client: the newest session, reading for at most ``timeout`` seconds until one
        arrives (TLS 1.3 tickets follow the handshake). Data read meanwhile is kept for
        the reader. None if no session came in time or the stream ended first."""
        try:
            worth_waiting = self.driver.check_session_wait()
        except TLSError:
            with contextlib.suppress(Exception):
                self._flush()
            raise
        self._flush()
        if not worth_waiting:
            return self.session
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, timeout)):
                while not self.tickets:
                    if not await self._pump():
                        break
        return self.session

    async def server_verdict(self, timeout: float | None = None) -> str:
        """Client: "accepted" or "silent", as ``TLSSocket.server_verdict`` (a refusal
        raises AlertReceived)."""
        known = self.driver.early_verdict()
        if known is not None:
            return known
        try:
            async with asyncio.timeout(self.driver.verdict_timeout(timeout)):
                alive = await self._pump()
        except TimeoutError:
            return "silent"
        if not alive:
            raise ConnectionClosedError("the server closed the connection right after the "
                                        "handshake, without a word: it may have refused us")
        return "accepted"

    def key_update(self, *, request_peer: bool = True) -> None:
        """TLS 1.3: send KeyUpdate (and ask the peer to update too)."""
        self.conn.key_update(request_peer=request_peer)
        self._flush()

    async def request_client_certificate(self, *, wait: bool = True
                                         ) -> ClientCertificateReceived | None:
        """Server, TLS 1.3 post-handshake authentication, as in TLSSocket."""
        answered = len(self.client_certificates)
        self.conn.request_client_certificate()
        self._flush()
        if not wait:
            return None
        while len(self.client_certificates) == answered:
            if not await self._pump():
                raise ConnectionClosedError("the client closed the connection before "
                                            "answering the certificate request")
        return self.client_certificates[answered]

    def close(self, *, notify: bool = True) -> None:
        """Queue close_notify (best effort) and close the transport; synchronous, so a
        cancelled caller cannot leave the transport open. ``notify=False``: no
        close_notify (a handshake abandoned half-way has nothing to close cleanly)."""
        if self._closed:
            return
        self._closed = True
        try:
            if notify and not self.conn.closed:
                self.conn.close()
                with contextlib.suppress(Exception):
                    self._flush()
        finally:
            self.plain_writer.close()

    async def wait_closed(self) -> None:
        with contextlib.suppress(OSError):
            await self.plain_writer.wait_closed()


class TLSStreamReader:
    """The read half, compatible with ``asyncio.StreamReader``."""

    def __init__(self, stream: TLSStream, limit: int = _DEFAULT_LIMIT) -> None:
        self.tls = stream
        self._buf = stream.driver.plaintext  # the driver's buffer, shared
        self._limit = limit

    @property
    def closed_cleanly(self) -> bool | None:
        """None while open, True after close_notify, False after a bare EOF."""
        return self.tls.closed_cleanly

    async def _fill(self) -> bool:
        """Read more plaintext; False once the stream has ended."""
        if self.tls.driver.eof:
            return False
        return await self.tls._pump()

    def at_eof(self) -> bool:
        return self.tls.driver.eof and not self._buf

    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (``n`` < 0: everything until the end); b"" at the end."""
        if n == 0:
            return b""
        if n < 0:
            while await self._fill():
                pass
            return self.tls.driver.take(-1)
        while not self._buf:
            if not await self._fill():
                return b""
        return self.tls.driver.take(n)

    async def readexactly(self, n: int) -> bytes:
        if n < 0:
            raise ValueError("readexactly size can not be less than zero")
        while len(self._buf) < n:
            if not await self._fill():
                partial = self.tls.driver.take(-1)
                raise asyncio.IncompleteReadError(partial, n)
        return self.tls.driver.take(n)

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        seplen = len(separator)
        if seplen == 0:
            raise ValueError("Separator should be at least one-byte string")
        offset = 0
        while True:
            found = self._buf.find(separator, offset)
            if found >= 0:
                if found > self._limit:
                    raise asyncio.LimitOverrunError(
                        "Separator is found, but chunk is longer than limit", found)
                return self.tls.driver.take(found + seplen)
            offset = max(0, len(self._buf) + 1 - seplen)
            if offset > self._limit:
                raise asyncio.LimitOverrunError(
                    "Separator is not found, and chunk exceed the limit", offset)
            if not await self._fill():
                raise asyncio.IncompleteReadError(self.tls.driver.take(-1), None)

    async def readline(self) -> bytes:
        try:
            return await self.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            return exc.partial
        except asyncio.LimitOverrunError as exc:
            # As asyncio does: drop the over-long line, then report it.
            if self._buf.startswith(b"\n", exc.consumed):
                del self._buf[:exc.consumed + 1]
            else:
                self._buf.clear()
            raise ValueError(exc.args[0]) from exc

    def __aiter__(self) -> TLSStreamReader:
        return self

    async def __anext__(self) -> bytes:
        line = await self.readline()
        if line == b"":
            raise StopAsyncIteration
        return line


class TLSStreamWriter:
    """The write half, compatible with ``asyncio.StreamWriter``.

    ``write_eof()`` sends close_notify but keeps reading (TLS half-close);
    ``get_extra_info("tlsmith")`` is the HandshakeInfo, ``"ssl_object"`` is None, other
    names ("peername", "sockname", "socket", ...) come from the transport."""

    def __init__(self, stream: TLSStream) -> None:
        self.tls = stream

    @property
    def transport(self) -> asyncio.BaseTransport:
        return self.tls.plain_writer.transport

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        self.tls.conn.send_data(data)
        self.tls._flush()

    def writelines(self, data: Iterable[bytes | bytearray | memoryview]) -> None:
        self.write(b"".join(data))

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.tls.conn.close()
        self.tls._flush()

    async def drain(self) -> None:
        await self.tls.plain_writer.drain()

    def close(self) -> None:
        self.tls.close()

    def is_closing(self) -> bool:
        return self.tls.plain_writer.is_closing()

    async def wait_closed(self) -> None:
        await self.tls.wait_closed()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "tlsmith":
            return self.tls.conn.info if self.tls.conn.info is not None else default
        if name in ("ssl_object", "sslcontext"):
            return None  # not Python's ssl: a caller probing for it must not get one
        return self.tls.plain_writer.get_extra_info(name, default)

    async def __aenter__(self) -> TLSStreamWriter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await self.wait_closed()


# ------------------------------------------------------------------------------ API
def _default_client_config(host: str) -> ClientConfig:
    from tlsmith.x509.verify import TrustStore

    return ClientConfig(server_name=host, trust=TrustStore.system())


async def open_connection(host: str, port: int, config: ClientConfig | None = None, *,
                          timeout: float | None = 10.0,
                          session: Session | None = None,
                          early_data: bytes | None = None,
                          session_cache: ClientSessionCache | None = None,
                          keylog: str | os.PathLike[str] | None = None,
                          **kw: Any) -> tuple[TLSStreamReader, TLSStreamWriter]:
    """Connect over TCP and complete a TLS handshake, within ``timeout`` seconds for
    both (TimeoutError otherwise, the transport closed). Returns (reader, writer).

    ``session``, ``early_data``, ``session_cache`` and ``keylog`` work as in
    ``tlsmith.connect``. Other keywords go to ``asyncio.open_connection`` (``limit`` is
    also the TLS reader's line limit)."""
    if "ssl" in kw:
        raise UsageError("ssl= is Python's TLS; tlsmith.aio does TLS itself")
    if config is None:
        config = _default_client_config(host)
    config = with_keylog(config, keylog)
    cache_key = f"{host}:{port}"
    if session is None and session_cache is not None:
        session = session_cache.get(cache_key, config.clock())
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    try:
        async with asyncio.timeout_at(deadline):
            plain_reader, plain_writer = await asyncio.open_connection(host, port, **kw)
    except TimeoutError as exc:
        raise TimeoutError(f"connecting to {host}:{port} timed out after {timeout} s"
                           ) from exc
    try:
        # After connecting: the ClientHello is made (and observed) here.
        conn = TLSConnection(config, session=session, early_data=early_data)
    except BaseException:
        plain_writer.close()
        raise
    stream = TLSStream(plain_reader, plain_writer, conn,
                       session_cache=(session_cache, cache_key) if session_cache else None,
                       limit=kw.get("limit", _DEFAULT_LIMIT))
    left = None if deadline is None else max(0.0, deadline - loop.time())
    await stream.establish(left, budget=timeout)
    return stream.reader, stream.writer


async def upgrade(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                  config: ClientConfig | ServerConfig, *,
                  server_side: bool | None = None,
                  session: Session | None = None,
                  early_data: bytes | None = None,
                  timeout: float | None = 10.0,
                  keylog: str | os.PathLike[str] | None = None,
                  ) -> tuple[TLSStreamReader, TLSStreamWriter]:
    """STARTTLS: run a TLS handshake over an existing plain stream pair and return the
    TLS (reader, writer). The side follows the config (ServerConfig: server);
    ``server_side`` may state it, and must agree. Bytes already buffered in ``reader``
    (the peer's ClientHello may arrive with its STARTTLS command) are read first. Do
    not use the plain pair afterwards. On failure, timeout or cancellation the
    transport is closed."""
    is_server = isinstance(config, ServerConfig)
    if server_side is not None and server_side != is_server:
        raise UsageError(f"server_side={server_side} but the config is a "
                         f"{type(config).__name__}")
    # (two calls: with_keylog keeps the config's type, mypy needs to see which)
    if isinstance(config, ServerConfig):
        config = with_keylog(config, keylog)
    else:
        config = with_keylog(config, keylog)
    try:
        conn = TLSConnection(config, session=session, early_data=early_data)
    except BaseException:
        writer.close()
        raise
    stream = TLSStream(reader, writer, conn)
    await stream.establish(timeout)
    return stream.reader, stream.writer


async def start_server(handler: Handler, host: str | None, port: int | None,
                       config: ServerConfig, *,
                       handshake_timeout: float | None = 10.0,
                       max_concurrent: int | None = DEFAULT_MAX_CONCURRENT,
                       max_handshakes: int | None = DEFAULT_MAX_HANDSHAKES,
                       idle_timeout: float | None = 300.0,
                       keylog: str | os.PathLike[str] | None = None,
                       **kw: Any) -> asyncio.Server:
    """Serve TLS on ``host:port``: ``await handler(reader, writer)`` runs for each
    connection once its handshake is complete; the connection is closed (close_notify
    first) when the handler returns or raises.

    A handshake that fails or takes longer than ``handshake_timeout`` seconds, and a
    handler that raises, are logged on the ``tlsmith.aio`` logger and end only that
    connection. ``handshake_timeout`` is an overall deadline, however the client spreads
    its bytes. ``max_concurrent`` (default 256; None: no bound): at most that many
    connections are handshaking or in the handler at once; the others stay accepted (by
    the kernel and asyncio: a socket and a small task each, no buffers) but wait for a
    slot, and their handshake timeout starts once they have one. ``max_handshakes``
    (default 64; None: no own bound): of those, at most that many in their handshake at
    once, so clients that never finish one cannot hold every slot. ``idle_timeout``
    (default 300 s; None: none): after the handshake, a read that waits longer than
    that for the client raises TimeoutError in the handler (logged, the connection
    closed). Memory per connection: TLS records are read only when the handler reads,
    so the plaintext buffer holds at most one read beyond what it asked for (except
    ``read(-1)``, which reads to the end like asyncio's). Other keywords go to
    ``asyncio.start_server``."""
    if "ssl" in kw:
        raise UsageError("ssl= is Python's TLS; tlsmith.aio does TLS itself")
    if max_concurrent is not None and max_concurrent < 1:
        raise UsageError("max_concurrent must be at least 1")
    if max_handshakes is not None and max_handshakes < 1:
        raise UsageError("max_handshakes must be at least 1")
    for name, value in (("handshake_timeout", handshake_timeout),
                        ("idle_timeout", idle_timeout)):
        if value is not None and value <= 0:
            raise UsageError(f"{name} must be positive (or None)")
    config = with_keylog(config, keylog)
    limit = kw.get("limit", _DEFAULT_LIMIT)
    slots = asyncio.Semaphore(max_concurrent) if max_concurrent is not None else None
    handshake_slots = (asyncio.Semaphore(max_handshakes) if max_handshakes is not None
                       else None)

    async def establish(stream: TLSStream) -> None:
        if handshake_slots is None:
            await stream.establish(handshake_timeout)
        else:
            async with handshake_slots:
                await stream.establish(handshake_timeout)

    async def serve_one(plain_reader: asyncio.StreamReader,
                        plain_writer: asyncio.StreamWriter) -> None:
        peer = plain_writer.get_extra_info("peername")
        stream = TLSStream(plain_reader, plain_writer, TLSConnection(config), limit=limit)
        try:
            await establish(stream)
        except TimeoutError as exc:
            logger.warning("TLS handshake with %s failed: %s (handshake deadline exceeded "
                           "after %s s): connection closed", peer, exc, handshake_timeout)
            return
        except Exception as exc:  # one client's failure never stops the server
            logger.warning("TLS handshake with %s failed: %s", peer, exc)
            return
        stream.read_timeout = idle_timeout
        try:
            await handler(stream.reader, stream.writer)
        except IdleTimeout as exc:
            logger.info("%s from %s: connection closed", exc, peer)
        except Exception:
            logger.exception("the handler for %s raised", peer)
        finally:
            stream.close()
            with contextlib.suppress(Exception):
                await stream.wait_closed()

    async def on_connection(plain_reader: asyncio.StreamReader,
                            plain_writer: asyncio.StreamWriter) -> None:
        try:
            if slots is None:
                await serve_one(plain_reader, plain_writer)
            else:
                async with slots:
                    await serve_one(plain_reader, plain_writer)
        except asyncio.CancelledError:
            # Nobody awaits this task (asyncio.start_server made it); on Python 3.11 its
            # done-callback logs a cancelled task as an error, so end it quietly.
            pass
        finally:
            plain_writer.close()  # whatever happened (cancellation too): no leak

    return await asyncio.start_server(on_connection, host, port, **kw)

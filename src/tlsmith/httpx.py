"""httpx over tlsmith: transports whose TLS is done by tlsmith instead of ``ssl``.

``Transport`` (for ``httpx.Client``) and ``AsyncTransport`` (for ``httpx.AsyncClient``,
asyncio only -- not trio) wrap httpcore's connection pools exactly as httpx's own
``HTTPTransport`` does, but hand them a network backend whose ``start_tls`` runs a
tlsmith handshake. Nothing in ``ssl`` is patched; the ``ssl.SSLContext`` httpcore passes
to ``start_tls`` is ignored. Needs the ``httpx`` extra (``pip install tlsmith[httpx]``)::

    import httpx
    import tlsmith.httpx
    from tlsmith import ClientConfig, TrustStore

    config = ClientConfig(trust=TrustStore.from_pem_file("ca.pem"))
    with httpx.Client(transport=tlsmith.httpx.Transport(config)) as client:
        response = client.get("https://localhost:8443/")
        info = response.extensions["network_stream"].get_extra_info("tlsmith")
        print(response.status_code, info.version_label, info.cipher_suite.name)

What to know:

* HTTP/1.1 only: ALPN offers exactly ``http/1.1`` (the config's ``alpn_protocols`` are
  replaced), and ``http2=True`` is refused.
* ``server_name`` is set per connection to the host of the URL (or the request's
  ``sni_hostname`` extension); the rest of ``config`` is used as given. With no config:
  the system trust store, as ``tlsmith.connect`` does.
* ``session_cache`` (``tlsmith.stores.MemorySessionCache`` / ``FileSessionCache``): each
  connection resumes the freshest session cached for ``host:port`` and caches every
  session the server sends. ``keylog``: an NSS key-log file (default: $SSLKEYLOGFILE).
* Network streams answer ``get_extra_info("tlsmith")`` with the ``HandshakeInfo``
  (reach it as ``response.extensions["network_stream"]``); ``"ssl_object"`` is None,
  as there is no ``ssl.SSLObject`` (httpcore reads it only to detect HTTP/2).
* Errors map as with httpx's own transport: a failed handshake is ``httpx.ConnectError``
  carrying tlsmith's explanation (certificates: "certificate verify failed: ..."), with
  the tlsmith error as the ``__cause__`` of the httpcore error it wraps; timeouts are
  ``ConnectTimeout`` / ``ReadTimeout`` / ``WriteTimeout``. httpcore's timeouts bound each
  socket operation (as with ``ssl``), not a whole handshake.
* No proxies (TLS over TLS is not implemented).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import socket
import ssl
import threading
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Sized,
)
from dataclasses import replace
from types import TracebackType
from typing import Any, Self, SupportsIndex

try:
    import httpcore
    import httpx
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("tlsmith.httpx needs httpx: pip install 'tlsmith[httpx]'") from exc

from tlsmith.aio import TLSStreamReader, TLSStreamWriter, upgrade
from tlsmith.config import ClientConfig
from tlsmith.connection import TLSConnection
from tlsmith.errors import CertificateError, TLSError
from tlsmith.explain import explain
from tlsmith.io.blocking import TLSSocket, with_keylog
from tlsmith.session import Session
from tlsmith.stores import ClientSessionCache

__all__ = ["AsyncTlsmithBackend", "AsyncTransport", "TlsmithBackend", "Transport"]

_RECV = 65536
# httpx's own defaults (httpx.HTTPTransport), not httpcore's (10 connections, no expiry).
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20,
                              keepalive_expiry=5.0)
# Keywords of httpcore's pools that would bypass or contradict this transport.
_REFUSED = ("ssl_context", "network_backend", "proxy")


# ----------------------------------------------------------------------------- shared
def _default_config() -> ClientConfig:
    from tlsmith.x509.verify import TrustStore

    return ClientConfig(trust=TrustStore.system())


def _tls_failure(exc: TLSError, host: str, port: int) -> str:
    """The ConnectError message for a failed handshake: readable on its own."""
    where = f"{host}:{port}"
    if isinstance(exc, CertificateError):
        return (f"certificate verify failed: {exc.message} (reason: {exc.reason}; "
                f"alert '{exc.alert.rfc_name}' sent to {where})")
    return explain(exc, host=host, port=port)


def _socket_readable(sock: socket.socket | None) -> bool:
    """Whether ``sock`` has bytes (or EOF) to read right now; a closed socket counts as
    readable, so that httpcore drops the connection (its own rule)."""
    fd = -1 if sock is None else sock.fileno()
    if fd < 0:
        return True
    if not hasattr(select, "poll"):  # Windows
        return bool(select.select([fd], [], [], 0)[0])
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


@contextlib.contextmanager
def _map_io(timeout_exc: type[Exception], error_exc: type[Exception]) -> Iterator[None]:
    """Socket and TLS failures while reading/writing as httpcore's exceptions."""
    try:
        yield
    except TimeoutError as exc:  # socket.timeout; before OSError, its base
        raise timeout_exc(str(exc) or "timed out") from exc
    except (OSError, TLSError) as exc:
        raise error_exc(str(exc) or type(exc).__name__) from exc


class _SessionSource:
    """What every connection of one transport shares: the config (keylog applied), the
    session cache and a handshake counter."""

    def __init__(self, config: ClientConfig | None, session_cache: ClientSessionCache | None,
                 keylog: str | os.PathLike[str] | None) -> None:
        self.config = with_keylog(config if config is not None else _default_config(),
                                  keylog)
        self.session_cache = session_cache
        self._lock = threading.Lock()
        self.handshakes = 0

    def prepare(self, server_hostname: str | None, host: str, port: int
                ) -> tuple[ClientConfig, Session | None, str]:
        """For one TCP connection: its config, the session to resume (from the cache)
        and its cache key ("host:port", the name TLS is for)."""
        name = server_hostname or host
        config = replace(self.config, server_name=name, alpn_protocols=("http/1.1",))
        key = f"{name}:{port}"
        session: Session | None = None
        if self.session_cache is not None:
            session = self.session_cache.get(key, config.clock())
        return config, session, key

    def count(self) -> None:
        with self._lock:
            self.handshakes += 1


def _pool_kwargs(limits: httpx.Limits, pool_kwargs: dict[str, Any]) -> dict[str, Any]:
    if pool_kwargs.pop("http2", False) or not pool_kwargs.pop("http1", True):
        raise TypeError("tlsmith.httpx transports speak HTTP/1.1 only: HTTP/2 is not "
                        "implemented (http2=True / http1=False)")
    for name in _REFUSED:
        if name in pool_kwargs:
            raise TypeError(f"tlsmith.httpx transports do not take {name}=: "
                            + ("proxies are not supported" if name == "proxy" else
                               "TLS is done by tlsmith, configured by ClientConfig"))
    kwargs: dict[str, Any] = {
        "max_connections": limits.max_connections,
        "max_keepalive_connections": limits.max_keepalive_connections,
        "keepalive_expiry": limits.keepalive_expiry,
    }
    kwargs.update(pool_kwargs)
    # httpcore calls set_alpn_protocols() on this and passes it to start_tls, which
    # ignores it; giving one avoids httpcore loading certifi into a default context
    # for every connection.
    kwargs["ssl_context"] = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    kwargs["http1"] = True
    kwargs["http2"] = False
    return kwargs


_EXCEPTIONS: tuple[tuple[type[Exception], type[httpx.HTTPError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextlib.contextmanager
def _map_httpcore() -> Iterator[None]:
    """httpcore's exceptions as httpx's, most specific first (as httpx's transport)."""
    try:
        yield
    except Exception as exc:
        for source, target in _EXCEPTIONS:
            if isinstance(exc, source):
                raise target(str(exc)) from exc
        raise


def _core_request(request: httpx.Request, content: Any) -> httpcore.Request:
    return httpcore.Request(
        method=request.method,
        url=httpcore.URL(scheme=request.url.raw_scheme, host=request.url.raw_host,
                         port=request.url.port, target=request.url.raw_path),
        headers=request.headers.raw, content=content, extensions=request.extensions)


# ------------------------------------------------------------------------- blocking
class TLSStream(httpcore.NetworkStream):
    """One tlsmith TLS connection as an httpcore network stream (blocking)."""

    def __init__(self, tls: TLSSocket) -> None:
        self.tls = tls
        # Application data read while probing an idle connection (see is_readable).
        self._pending = bytearray()

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._pending:
            data = bytes(self._pending[:max_bytes])
            del self._pending[:max_bytes]
            return data
        with _map_io(httpcore.ReadTimeout, httpcore.ReadError):
            self.tls.settimeout(timeout)
            return self.tls.recv(max_bytes)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        with _map_io(httpcore.WriteTimeout, httpcore.WriteError):
            self.tls.settimeout(timeout)
            self.tls.sendall(buffer)

    def close(self) -> None:
        # Best effort close_notify; a dead peer must not make close() raise.
        with contextlib.suppress(OSError, TLSError):
            self.tls.settimeout(0.5)
            self.tls.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("tlsmith.httpx: TLS over TLS (an HTTPS proxy) is not "
                                    "supported")

    def _is_readable(self) -> bool:
        """httpcore asks this of an idle connection: readable means the server closed it.
        But a TLS server may send records that are no such thing (TLS 1.3 tickets after
        the handshake, a KeyUpdate): consume what is there without blocking, and say
        readable only for application data, a close or an error."""
        if self._pending:
            return True
        if not _socket_readable(self.tls.sock):
            return False
        try:
            self.tls.settimeout(0.0)
            data = self.tls.recv(_RECV)
        except BlockingIOError:
            return False  # only non-application records were waiting
        except (OSError, TLSError):
            return True
        self._pending += data
        return True  # data on an idle HTTP/1.1 connection, or b"" (closed)

    def get_extra_info(self, info: str) -> Any:
        if info == "tlsmith":
            return self.tls.conn.info
        if info == "ssl_object":
            return None  # no ssl.SSLObject: tlsmith does the TLS (use "tlsmith")
        if info == "tlsmith_socket":
            return self.tls
        if info == "socket":
            return self.tls.sock
        if info == "client_addr":
            return self.tls.sock.getsockname()
        if info == "server_addr":
            return self.tls.sock.getpeername()
        if info == "is_readable":
            return self._is_readable()
        return None


class _TCPStream(httpcore.NetworkStream):
    """A plain TCP connection; ``start_tls`` turns it into a ``TLSStream``."""

    def __init__(self, sock: socket.socket, host: str, port: int,
                 source: _SessionSource) -> None:
        self.sock = sock
        self.host = host
        self.port = port
        self._source = source

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        with _map_io(httpcore.ReadTimeout, httpcore.ReadError):
            self.sock.settimeout(timeout)
            return self.sock.recv(max_bytes)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        with _map_io(httpcore.WriteTimeout, httpcore.WriteError):
            self.sock.settimeout(timeout)
            self.sock.sendall(buffer)

    def close(self) -> None:
        self.sock.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        # ssl_context is httpcore's; tlsmith's ClientConfig decides everything instead.
        try:
            config, session, key = self._source.prepare(server_hostname, self.host,
                                                        self.port)
            tls = TLSSocket(self.sock, TLSConnection(config, session=session))
            if self._source.session_cache is not None:
                tls.session_cache = (self._source.session_cache, key)
            self.sock.settimeout(timeout)
            tls.do_handshake()
        except TimeoutError as exc:
            self.close()
            raise httpcore.ConnectTimeout(f"TLS handshake with {self.host}:{self.port} "
                                          f"timed out") from exc
        except (OSError, TLSError) as exc:
            self.close()
            message = (_tls_failure(exc, self.host, self.port) if isinstance(exc, TLSError)
                       else explain(exc, host=self.host, port=self.port))
            raise httpcore.ConnectError(message) from exc
        self._source.count()
        return TLSStream(tls)

    def get_extra_info(self, info: str) -> Any:
        if info == "socket":
            return self.sock
        if info == "client_addr":
            return self.sock.getsockname()
        if info == "server_addr":
            return self.sock.getpeername()
        if info == "is_readable":
            return _socket_readable(self.sock)
        return None


class TlsmithBackend(httpcore.NetworkBackend):
    """httpcore's blocking network backend with tlsmith for ``start_tls``."""

    def __init__(self, config: ClientConfig | None = None, *,
                 session_cache: ClientSessionCache | None = None,
                 keylog: str | os.PathLike[str] | None = None) -> None:
        self._source = _SessionSource(config, session_cache, keylog)

    @property
    def config(self) -> ClientConfig:
        return self._source.config

    @property
    def handshakes(self) -> int:
        """How many TLS handshakes this backend completed (tests count reuse by it)."""
        return self._source.handshakes

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None
                    ) -> httpcore.NetworkStream:
        source = None if local_address is None else (local_address, 0)
        try:
            sock = socket.create_connection((host, port), timeout, source_address=source)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"connecting to {host}:{port} timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(explain(exc, host=host, port=port)) from exc
        try:
            for option in socket_options or ():
                sock.setsockopt(*option)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            sock.close()
            raise httpcore.ConnectError(str(exc)) from exc
        return _TCPStream(sock, host, port, self._source)

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None
                            ) -> httpcore.NetworkStream:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            for option in socket_options or ():
                sock.setsockopt(*option)
            sock.settimeout(timeout)
            sock.connect(path)
        except TimeoutError as exc:
            sock.close()
            raise httpcore.ConnectTimeout(f"connecting to {path} timed out") from exc
        except OSError as exc:
            sock.close()
            raise httpcore.ConnectError(f"connecting to {path}: {exc}") from exc
        return _TCPStream(sock, path, 0, self._source)


class _ResponseStream(httpx.SyncByteStream):
    def __init__(self, stream: Iterable[bytes]) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        with _map_httpcore():
            yield from self._stream

    def close(self) -> None:
        close: Callable[[], None] | None = getattr(self._stream, "close", None)
        if close is not None:
            close()


class Transport(httpx.BaseTransport):
    """An ``httpx.BaseTransport`` doing TLS with tlsmith (HTTP/1.1 over httpcore's pool).

    ``config``: the ClientConfig (None: system trust store); ``session_cache``: resume
    per ``host:port`` from it and fill it; ``keylog``: NSS key-log path; ``limits``: as
    httpx's (default: httpx's); other keywords go to ``httpcore.ConnectionPool``
    (``retries``, ``local_address``, ``uds``, ``socket_options``, ``max_connections``...).
    """

    def __init__(self, config: ClientConfig | None = None, *,
                 session_cache: ClientSessionCache | None = None,
                 keylog: str | os.PathLike[str] | None = None,
                 limits: httpx.Limits = DEFAULT_LIMITS,
                 **pool_kwargs: Any) -> None:
        self.backend = TlsmithBackend(config, session_cache=session_cache, keylog=keylog)
        self._pool = httpcore.ConnectionPool(network_backend=self.backend,
                                             **_pool_kwargs(limits, pool_kwargs))

    @property
    def handshakes(self) -> int:
        """TLS handshakes done so far: fewer than requests means connections were reused."""
        return self.backend.handshakes

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        with _map_httpcore():
            response = self._pool.handle_request(_core_request(request, request.stream))
        assert isinstance(response.stream, Iterable)
        return httpx.Response(status_code=response.status, headers=response.headers,
                              stream=_ResponseStream(response.stream),
                              extensions=response.extensions)

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> Self:
        self._pool.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None = None,
                 exc_value: BaseException | None = None,
                 traceback: TracebackType | None = None) -> None:
        with _map_httpcore():
            self._pool.__exit__(exc_type, exc_value, traceback)


# ---------------------------------------------------------------------------- asyncio
class _PlainReader(asyncio.StreamReader):
    """asyncio's StreamReader, counting the bytes it holds: asyncio reads the socket
    eagerly, so "is the socket readable" says nothing about an idle connection; what
    arrived since (buffered here, or EOF) does."""

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=limit, loop=loop)
        self.buffered = 0

    def feed_data(self, data: Iterable[SupportsIndex]) -> None:
        super().feed_data(data)
        # (asyncio feeds bytes; anything unsized leaves the count off, and a count that
        # is off only makes the connection look readable: dropped, never misused)
        self.buffered += len(data) if isinstance(data, Sized) else 1

    async def read(self, n: int = -1) -> bytes:
        data = await super().read(n)
        self.buffered -= len(data)
        return data


class AsyncTLSStream(httpcore.AsyncNetworkStream):
    """One tlsmith TLS connection as an httpcore network stream (asyncio), over
    ``tlsmith.aio``'s streams."""

    def __init__(self, reader: TLSStreamReader, writer: TLSStreamWriter,
                 plain: _PlainReader, cache: tuple[ClientSessionCache, str] | None) -> None:
        self.reader = reader
        self.writer = writer
        self._plain = plain
        self._cache = cache
        self._cached = 0
        self._harvest()

    def _harvest(self) -> None:
        """Put the sessions received so far into the cache (TLS 1.2: at the handshake;
        TLS 1.3: tickets, read along with the responses)."""
        if self._cache is None:
            return
        sessions = self.writer.tls.sessions
        cache, key = self._cache
        for session in sessions[self._cached:]:
            cache.put(key, session)
        self._cached = len(sessions)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        with _map_io(httpcore.ReadTimeout, httpcore.ReadError):
            # (a cancelled read loses nothing: tlsmith.aio leaves the bytes buffered)
            async with asyncio.timeout(timeout):
                data = await self.reader.read(max_bytes)
        self._harvest()
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        with _map_io(httpcore.WriteTimeout, httpcore.WriteError):
            self.writer.write(buffer)
            async with asyncio.timeout(timeout):
                await self.writer.drain()

    async def aclose(self) -> None:
        self.writer.close()  # synchronous: close_notify queued, transport closed
        with contextlib.suppress(OSError, TLSError, TimeoutError):
            async with asyncio.timeout(1.0):
                await self.writer.wait_closed()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("tlsmith.httpx: TLS over TLS (an HTTPS proxy) is not "
                                    "supported")

    def _is_readable(self) -> bool:
        """httpcore asks this of an idle connection: readable means the server closed it.
        Anything that arrived since the last response (bytes or EOF) counts: the
        connection is then dropped, which at worst costs a new handshake (a server that
        sent a late ticket), never a request sent into a closed connection."""
        driver = self.writer.tls.driver
        return bool(self._plain.buffered or self._plain.at_eof() or driver.eof
                    or driver.plaintext or self.writer.is_closing())

    def get_extra_info(self, info: str) -> Any:
        if info == "tlsmith":
            return self.writer.get_extra_info("tlsmith")
        if info == "ssl_object":
            return None  # no ssl.SSLObject: tlsmith does the TLS (use "tlsmith")
        if info == "tlsmith_stream":
            return self.writer.tls
        if info == "socket":
            return self.writer.get_extra_info("socket")
        if info == "client_addr":
            return self.writer.get_extra_info("sockname")
        if info == "server_addr":
            return self.writer.get_extra_info("peername")
        if info == "is_readable":
            return self._is_readable()
        return None


class _AsyncTCPStream(httpcore.AsyncNetworkStream):
    """A plain asyncio TCP connection; ``start_tls`` upgrades it with ``tlsmith.aio``."""

    def __init__(self, reader: _PlainReader, writer: asyncio.StreamWriter, host: str,
                 port: int, source: _SessionSource) -> None:
        self.reader = reader
        self.writer = writer
        self.host = host
        self.port = port
        self._source = source

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        with _map_io(httpcore.ReadTimeout, httpcore.ReadError):
            async with asyncio.timeout(timeout):
                return await self.reader.read(max_bytes)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        with _map_io(httpcore.WriteTimeout, httpcore.WriteError):
            self.writer.write(buffer)
            async with asyncio.timeout(timeout):
                await self.writer.drain()

    async def aclose(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(1.0):
                await self.writer.wait_closed()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        # ssl_context is httpcore's; tlsmith's ClientConfig decides everything instead.
        # tlsmith.aio.upgrade closes the transport itself when the handshake fails.
        try:
            config, session, key = self._source.prepare(server_hostname, self.host,
                                                        self.port)
            reader, writer = await upgrade(self.reader, self.writer, config,
                                           session=session, timeout=timeout)
        except TimeoutError as exc:
            self.writer.close()
            raise httpcore.ConnectTimeout(f"TLS handshake with {self.host}:{self.port} "
                                          f"timed out") from exc
        except (OSError, TLSError) as exc:
            self.writer.close()
            message = (_tls_failure(exc, self.host, self.port) if isinstance(exc, TLSError)
                       else explain(exc, host=self.host, port=self.port))
            raise httpcore.ConnectError(message) from exc
        self._source.count()
        cache = None if self._source.session_cache is None else (self._source.session_cache,
                                                                 key)
        return AsyncTLSStream(reader, writer, self.reader, cache)

    def get_extra_info(self, info: str) -> Any:
        if info == "socket":
            return self.writer.get_extra_info("socket")
        if info == "client_addr":
            return self.writer.get_extra_info("sockname")
        if info == "server_addr":
            return self.writer.get_extra_info("peername")
        if info == "is_readable":
            return bool(self.reader.buffered or self.reader.at_eof())
        return None


class AsyncTlsmithBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend on asyncio (not trio), with tlsmith for ``start_tls``."""

    def __init__(self, config: ClientConfig | None = None, *,
                 session_cache: ClientSessionCache | None = None,
                 keylog: str | os.PathLike[str] | None = None) -> None:
        self._source = _SessionSource(config, session_cache, keylog)

    @property
    def config(self) -> ClientConfig:
        return self._source.config

    @property
    def handshakes(self) -> int:
        """How many TLS handshakes this backend completed (tests count reuse by it)."""
        return self._source.handshakes

    async def _open(self, what: str, timeout: float | None,
                    connect: Callable[[Callable[[], asyncio.BaseProtocol]],
                                      Any]) -> tuple[_PlainReader, asyncio.StreamWriter]:
        # asyncio.open_connection, but with our reader (see _PlainReader).
        loop = asyncio.get_running_loop()
        reader = _PlainReader(limit=_RECV, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        try:
            async with asyncio.timeout(timeout):
                transport, _ = await connect(lambda: protocol)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"connecting to {what} timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(f"connecting to {what}: {exc}") from exc
        return reader, asyncio.StreamWriter(transport, protocol, reader, loop)

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None
                          ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        local = None if local_address is None else (local_address, 0)
        try:
            reader, writer = await self._open(
                f"{host}:{port}", timeout,
                lambda factory: loop.create_connection(factory, host, port, local_addr=local))
        except httpcore.ConnectError as exc:
            if isinstance(exc.__cause__, OSError):  # say it as tlsmith.connect would
                raise httpcore.ConnectError(explain(exc.__cause__, host=host, port=port)
                                            ) from exc.__cause__
            raise
        try:
            sock = writer.get_extra_info("socket")
            for option in socket_options or ():
                sock.setsockopt(*option)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            writer.close()
            raise httpcore.ConnectError(str(exc)) from exc
        return _AsyncTCPStream(reader, writer, host, port, self._source)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None
                                  ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        reader, writer = await self._open(
            path, timeout, lambda factory: loop.create_unix_connection(factory, path))
        try:
            sock = writer.get_extra_info("socket")
            for option in socket_options or ():
                sock.setsockopt(*option)
        except OSError as exc:
            writer.close()
            raise httpcore.ConnectError(str(exc)) from exc
        return _AsyncTCPStream(reader, writer, path, 0, self._source)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class _AsyncResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _map_httpcore():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        aclose: Callable[[], Awaitable[None]] | None = getattr(self._stream, "aclose", None)
        if aclose is not None:
            await aclose()


class AsyncTransport(httpx.AsyncBaseTransport):
    """``Transport`` for ``httpx.AsyncClient``: asyncio only (httpcore's pool over
    ``tlsmith.aio``); the same arguments."""

    def __init__(self, config: ClientConfig | None = None, *,
                 session_cache: ClientSessionCache | None = None,
                 keylog: str | os.PathLike[str] | None = None,
                 limits: httpx.Limits = DEFAULT_LIMITS,
                 **pool_kwargs: Any) -> None:
        self.backend = AsyncTlsmithBackend(config, session_cache=session_cache,
                                           keylog=keylog)
        self._pool = httpcore.AsyncConnectionPool(network_backend=self.backend,
                                                  **_pool_kwargs(limits, pool_kwargs))

    @property
    def handshakes(self) -> int:
        """TLS handshakes done so far: fewer than requests means connections were reused."""
        return self.backend.handshakes

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        with _map_httpcore():
            response = await self._pool.handle_async_request(
                _core_request(request, request.stream))
        assert isinstance(response.stream, AsyncIterable)
        return httpx.Response(status_code=response.status, headers=response.headers,
                              stream=_AsyncResponseStream(response.stream),
                              extensions=response.extensions)

    async def aclose(self) -> None:
        await self._pool.aclose()

    async def __aenter__(self) -> Self:
        await self._pool.__aenter__()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None = None,
                        exc_value: BaseException | None = None,
                        traceback: TracebackType | None = None) -> None:
        with _map_httpcore():
            await self._pool.__aexit__(exc_type, exc_value, traceback)

"""Blocking sockets on top of the sans-IO core: ``tlsmith.connect`` and ``TLSServer``."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import queue
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from tlsmith.codec.enums import ProtocolVersion
from tlsmith.config import ClientConfig, ServerConfig
from tlsmith.connection import TLSConnection
from tlsmith.errors import ConnectionClosedError, TLSError, UsageError
from tlsmith.events import ClientCertificateReceived, HandshakeInfo, SessionTicketReceived
from tlsmith.io.driver import Step, TLSDriver
from tlsmith.io.served import ServedSocket
from tlsmith.io.slots import Slots
from tlsmith.keylog import KeyLogWriter
from tlsmith.observe import combine_observers
from tlsmith.session import Session
from tlsmith.stores import ClientSessionCache

_RECV = 65536
_IPPROTO_TCP = int(socket.IPPROTO_TCP)
_TCP_NODELAY = int(socket.TCP_NODELAY)
_SHUT_RDWR = int(socket.SHUT_RDWR)

logger = logging.getLogger("tlsmith.server")

#: Whether shutting a listening socket down wakes a thread blocked in its accept()
#: (Linux: accept() fails with EINVAL), so TLSServer can accept without a timeout.
_SHUTDOWN_WAKES_ACCEPT = sys.platform.startswith("linux")

#: TLSServer's default bound on connections served at once (one thread each).
DEFAULT_MAX_CONCURRENT = 256
DEFAULT_MAX_HANDSHAKES = 64


class HandshakeTimeout(TimeoutError):
    """The overall handshake deadline passed (however the peer trickled its bytes)."""


_Config = TypeVar("_Config", ClientConfig, ServerConfig)


def with_keylog(config: _Config, path: str | os.PathLike[str] | None = None) -> _Config:
    """``config`` with an NSS key-log writer added to its observer: to ``path``, or to
    $SSLKEYLOGFILE when no path is given. The file I/O lives here, above the sans-IO core."""
    target = path or os.environ.get("SSLKEYLOGFILE")
    if not target:
        return config
    return replace(config, observer=combine_observers(config.observer, KeyLogWriter(target)))


class TLSSocket:
    """A TLS connection over a connected stream socket (client or server side).

    Resumption (client): every session the server hands out lands in ``sessions``
    (newest last; ``session`` is the newest) -- TLS 1.3 tickets come *after* the
    handshake, so call ``wait_for_session(timeout)`` to read until one arrived.

    0-RTT (server): ``early_data`` holds the bytes the client sent as TLS 1.3 early data
    (RFC 8446 §4.2.10), complete once the handshake is (the client's EndOfEarlyData
    precedes its Finished). They are also the first ``len(early_data)`` bytes ``recv()``
    returns -- the stream stays whole for handlers that do not care -- so a handler can
    tell which part of a request came as 0-RTT data, which may be a replay (§8): act on
    it only if it is idempotent (see ``tlsmith serve``'s 425 Too Early).

    Writes (server, TLS 1.3): when the client's first data came together with its
    Finished, the NewSessionTickets wait for the application's answer and share its
    write -- or go out before ``recv()`` waits for the peer, or at ``close()``.
    """

    def __init__(self, sock: socket.socket, conn: TLSConnection) -> None:
        self.sock = sock
        self.conn = conn
        # The event driver shared with tlsmith.aio: plaintext buffer, sessions, key
        # updates, client certificates, 0-RTT bytes, how the stream ended.
        self.driver = TLSDriver(conn)
        # do_handshake(timeout=...): the monotonic time the whole handshake must end by.
        self._deadline: float | None = None
        self._deadline_budget = 0.0
        # The socket's own per-read timeout while a deadline narrows it (restored once,
        # when do_handshake ends: settimeout is a syscall or two).
        self._per_read: float | None = None
        # A TLS 1.3 server's tickets wait for the application's answer (see do_handshake).
        self._corked = False
        # Records are whole messages already: don't let Nagle hold the last one back. (Not
        # a TCP socket, e.g. AF_UNIX: refused, and nothing to do. Asking sock.family first
        # costs more than the refused call: it converts to an enum.)
        try:
            sock.setsockopt(_IPPROTO_TCP, _TCP_NODELAY, 1)
        except OSError:
            pass

    # -- state kept by the driver (assignable, as when they were plain attributes) ------
    @property
    def tickets(self) -> list[SessionTicketReceived]:
        return self.driver.tickets

    @tickets.setter
    def tickets(self, value: list[SessionTicketReceived]) -> None:
        self.driver.tickets = value

    @property
    def session_cache(self) -> tuple[ClientSessionCache, str] | None:
        """Client: where sessions go as they arrive (connect(session_cache=...))."""
        return self.driver.session_cache

    @session_cache.setter
    def session_cache(self, value: tuple[ClientSessionCache, str] | None) -> None:
        self.driver.session_cache = value

    @property
    def handshake_seconds(self) -> float:
        return self.driver.handshake_seconds

    @handshake_seconds.setter
    def handshake_seconds(self, value: float) -> None:
        self.driver.handshake_seconds = value

    @property
    def key_updates_received(self) -> int:
        return self.driver.key_updates_received

    @key_updates_received.setter
    def key_updates_received(self, value: int) -> None:
        self.driver.key_updates_received = value

    @property
    def client_certificates(self) -> list[ClientCertificateReceived]:
        """Server, TLS 1.3: answers to request_client_certificate() (RFC 8446 §4.6.2)."""
        return self.driver.client_certificates

    @client_certificates.setter
    def client_certificates(self, value: list[ClientCertificateReceived]) -> None:
        self.driver.client_certificates = value

    @property
    def closed_cleanly(self) -> bool | None:
        """None while open; True after close_notify, False after a bare EOF (truncation)."""
        return self.driver.closed_cleanly

    @closed_cleanly.setter
    def closed_cleanly(self, value: bool | None) -> None:
        self.driver.closed_cleanly = value

    # -- plumbing ---------------------------------------------------------------------
    def _flush(self) -> None:
        self._corked = False
        data = self.conn.data_to_send()  # (what driver.data_to_send() does, one call less)
        if data:
            self.sock.sendall(data)

    def _step(self) -> Step:
        try:
            step = self.driver.step()
        except TLSError:
            with contextlib.suppress(OSError):
                self._flush()  # the alert the core queued for the peer
            raise
        self._flush()
        return step

    def _pump(self) -> bool:
        """Handle one event; read from the socket when the core needs data.
        Returns False at end of stream."""
        while True:
            step = self._step()
            if step is Step.NEED_DATA:
                self.driver.receive_data(self._recv())
                continue
            return step is Step.EVENT

    def _recv(self) -> bytes:
        deadline = self._deadline
        if deadline is None:
            return self.sock.recv(_RECV)
        # An overall deadline: each read waits at most for what is left of it (and no
        # longer than the socket's own per-read timeout), so trickling bytes can't extend it.
        left = deadline - time.monotonic()
        if left <= 0:
            raise HandshakeTimeout(
                f"handshake deadline exceeded after {self._deadline_budget:g} s")
        per_read = self._per_read
        self.sock.settimeout(left if per_read is None else min(left, per_read))
        try:
            return self.sock.recv(_RECV)
        except TimeoutError as exc:
            if time.monotonic() >= deadline:
                raise HandshakeTimeout(
                    f"handshake deadline exceeded after {self._deadline_budget:g} s") from exc
            raise

    def do_handshake(self, timeout: float | None = None) -> HandshakeInfo:
        """Complete the handshake. ``timeout``: an overall deadline in seconds, however
        the peer spreads its bytes (``HandshakeTimeout``, a TimeoutError, past it); the
        socket's own timeout still bounds each read."""
        self.driver.start_handshake()
        if timeout is not None:
            self._deadline = time.monotonic() + timeout
            self._deadline_budget = timeout
            self._per_read = self.sock.gettimeout()
        conn = self.conn
        driver = self.driver
        try:
            self._flush()
            # What the core queues goes out before every read from the socket (and at
            # the end), not after every event: the handshake's events need no answer.
            while not conn.handshake_complete:
                try:
                    step = driver.step()
                except TLSError:
                    with contextlib.suppress(OSError):
                        self._flush()  # the alert the core queued for the peer
                    raise
                if step is Step.NEED_DATA:
                    self._flush()
                    driver.receive_data(self._recv())
                elif step is Step.CLOSED:
                    self._flush()
                    raise ConnectionClosedError("the peer closed the connection during "
                                                "the handshake")
        finally:
            if self._deadline is not None:
                self._deadline = None
                with contextlib.suppress(OSError):  # (a socket closed meanwhile)
                    self.sock.settimeout(self._per_read)
        if (not conn.is_client and conn.buffered_input()
                and conn.negotiated_version == ProtocolVersion.TLS13):
            # A TLS 1.3 server has only its NewSessionTickets to send now (RFC 8446 §4.6.1:
            # "at any time after it has received the client Finished"), and the client's
            # first data is already here: the tickets wait for the application's answer
            # and go out in the same write (one segment fewer), or before recv() has to
            # wait for the peer, or at close(), whichever comes first.
            self._corked = True
        else:
            self._flush()
        return driver.finish_handshake()

    def server_verdict(self, timeout: float | None = None) -> str:
        """Whether the server accepted us, as far as the protocol can tell (client side).

        TLS 1.2: the server's Finished came after its verdict on us: "accepted".
        TLS 1.3: the server judges our certificate (or its absence) *after* our Finished
        (RFC 8446 §4.4.2.4), so wait for its first post-handshake record: a ticket or
        data means "accepted"; a fatal alert (certificate_required, bad_certificate,
        unknown_ca, ...) raises ``AlertReceived``; nothing within ``timeout`` (default:
        twice the handshake time, between 0.25 s and 2 s) gives "silent" -- not refused,
        but not confirmed either.
        """
        known = self.driver.early_verdict()
        if known is not None:
            return known
        timeout = self.driver.verdict_timeout(timeout)
        previous = self.sock.gettimeout()
        self.sock.settimeout(timeout)
        try:
            alive = self._pump()
        except TimeoutError:
            return "silent"
        finally:
            self.sock.settimeout(previous)
        if not alive:
            raise ConnectionClosedError("the server closed the connection right after the "
                                        "handshake, without a word: it may have refused us")
        return "accepted"

    @property
    def info(self) -> HandshakeInfo:
        return self.driver.info

    # -- resumption and 0-RTT ---------------------------------------------------------
    @property
    def sessions(self) -> list[Session]:
        """Client: the sessions received so far (TLS 1.3 tickets, or the TLS 1.2
        session), newest last; each can be passed to ``connect(session=...)``."""
        return self.driver.sessions

    @property
    def session(self) -> Session | None:
        """Client: the newest session received, or None."""
        return self.driver.session

    def wait_for_session(self, timeout: float = 1.0) -> Session | None:
        """Client: the newest session, reading for at most ``timeout`` seconds until one
        arrives (TLS 1.3 servers send tickets after the handshake). Application data
        read meanwhile is kept for recv(). None if no session came in time, or if the
        connection ended first. TLS 1.2 sessions are known once the handshake is, so a
        TLS 1.2 connection never waits."""
        try:
            worth_waiting = self.driver.check_session_wait()
        except TLSError:
            with contextlib.suppress(OSError):
                self._flush()
            raise
        self._flush()
        if not worth_waiting:
            return self.session
        deadline = time.monotonic() + max(0.0, timeout)
        previous = self.sock.gettimeout()
        try:
            while not self.tickets:
                left = deadline - time.monotonic()
                if left <= 0 or self.driver.over_limit():
                    break
                self.sock.settimeout(left)
                try:
                    if not self._pump():
                        break
                except TimeoutError:
                    break
        finally:
            self.sock.settimeout(previous)
        return self.session

    @property
    def early_data(self) -> bytes:
        """Server: the TLS 1.3 0-RTT bytes the client sent (b"" if none were accepted);
        they may be a replay (RFC 8446 §8). Also the head of what recv() returns."""
        return bytes(self.driver.early)

    @property
    def early_data_accepted(self) -> bool | None:
        """Either side: whether 0-RTT data was accepted (None: none was offered)."""
        return self.conn.early_data_accepted

    # -- socket-like API --------------------------------------------------------------
    def sendall(self, data: bytes | bytearray | memoryview) -> None:
        conn = self.conn
        conn.send_data(data)
        # (_flush() inlined: one Python call fewer per write)
        self._corked = False
        out = conn.data_to_send()
        if out:
            self.sock.sendall(out)

    send = sendall

    def recv(self, bufsize: int = _RECV) -> bytes:
        """Up to ``bufsize`` bytes of application data; b"" once the peer has closed."""
        driver = self.driver
        conn = self.conn
        while not driver.plaintext:
            # (_pump() inlined, with step_take(): a record that fits is returned as is.)
            if driver.eof and driver.closed_cleanly is not None:
                return b""
            # (At a bare EOF the core still has to say so -- ConnectionClosed(clean=False)
            # -- so that closed_cleanly tells a truncation from a close_notify.)
            try:
                got = driver.step_take(bufsize)
            except TLSError:
                with contextlib.suppress(OSError):
                    self._flush()  # the alert the core queued for the peer
                raise
            if not self._corked:
                out = conn.data_to_send()  # (_flush() inlined: one call fewer per record)
                if out:
                    self.sock.sendall(out)
            if type(got) is bytes:
                return got
            if got is Step.NEED_DATA:
                if self._corked:
                    self._flush()
                driver.receive_data(self._recv())
            elif got is Step.CLOSED:
                if self._corked:
                    with contextlib.suppress(OSError):
                        self._flush()
                return b""
        return driver.take(bufsize)

    def recv_exactly(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = self.recv(n - len(out))
            if not chunk:
                raise ConnectionClosedError(f"the peer closed after {len(out)} of {n} bytes")
            out += chunk
        return bytes(out)

    def key_update(self, *, request_peer: bool = True) -> None:
        self.conn.key_update(request_peer=request_peer)
        self._flush()

    def request_client_certificate(self, *, wait: bool = True
                                   ) -> ClientCertificateReceived | None:
        """Server, TLS 1.3: ask the client for a certificate after the handshake (RFC 8446
        §4.6.2; the client must have offered post_handshake_auth, else UsageError). With
        ``wait``, read until the answer arrives (application data that comes first is
        kept for recv()) and return it; otherwise it lands in ``client_certificates``."""
        answered = len(self.client_certificates)
        self.conn.request_client_certificate()
        self._flush()
        if not wait:
            return None
        while len(self.client_certificates) == answered:
            if self.driver.over_limit():
                raise ConnectionClosedError(
                    f"more than {self.driver.MAX_BUFFERED} bytes of application data came "
                    "before the answer to the certificate request")
            if not self._pump():
                raise ConnectionClosedError("the client closed the connection before "
                                            "answering the certificate request")
        return self.client_certificates[answered]

    def settimeout(self, timeout: float | None) -> None:
        self.sock.settimeout(timeout)

    def makefile(self, mode: str = "rb", buffering: int = -1) -> Any:
        raw = _RawTLS(self)
        if "w" in mode and "r" in mode:
            return io.BufferedRWPair(raw, raw)
        if "w" in mode:
            return io.BufferedWriter(raw)
        return io.BufferedReader(raw, buffer_size=buffering if buffering > 0 else 8192)

    def unwrap_close(self) -> None:
        """Send close_notify and wait (briefly) for the peer's."""
        self.conn.close()
        with contextlib.suppress(OSError, TLSError):
            self._flush()
            while self._pump():
                pass

    def close(self) -> None:
        try:
            if not self.conn.closed:
                self.conn.close()
                try:  # (try/except: cheaper than contextlib.suppress, once per connection)
                    self._flush()
                except OSError:
                    pass
        finally:
            sock = self.sock
            try:
                sock.shutdown(_SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def fileno(self) -> int:
        return self.sock.fileno()

    def __enter__(self) -> TLSSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _RawTLS(io.RawIOBase):
    def __init__(self, tls: TLSSocket) -> None:
        self._tls = tls

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self._tls.recv(len(b))
        b[: len(data)] = data
        return len(data)

    def write(self, b: Any) -> int:
        self._tls.sendall(bytes(b))
        return len(b)


def connect(host: str, port: int, config: ClientConfig | None = None, *,
            timeout: float | None = 10.0,
            keylog: str | os.PathLike[str] | None = None,
            session: Session | None = None,
            early_data: bytes | None = None,
            session_cache: ClientSessionCache | None = None) -> TLSSocket:
    """Open a TCP connection and complete a TLS handshake; returns a TLSSocket.

    ``session_cache`` (``tlsmith.stores.MemorySessionCache`` / ``FileSessionCache``):
    without ``session``, resume the freshest session it holds for ``host:port``; every
    session the server sends on this connection is put into it.

    ``session``: resume it (from an earlier ``TLSSocket.session``). ``early_data``: TLS
    1.3 0-RTT data sent with the ClientHello (the session's ticket must allow it, else
    UsageError); ``tls.early_data_accepted`` says whether the server took it -- if not,
    the core sends it again after the handshake (``resend_rejected_early_data``)."""
    if config is None:
        from tlsmith.x509.verify import TrustStore

        config = ClientConfig(server_name=host, trust=TrustStore.system())
    config = with_keylog(config, keylog)
    cache_key = f"{host}:{port}"
    if session is None and session_cache is not None:
        session = session_cache.get(cache_key, config.clock())
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        # After connecting: the ClientHello is made (and observed) here.
        tls = TLSSocket(sock, TLSConnection(config, session=session, early_data=early_data))
        if session_cache is not None:
            tls.session_cache = (session_cache, cache_key)
        tls.do_handshake()
    except BaseException:
        sock.close()
        raise
    return tls


Handler = Callable[[TLSSocket, tuple[Any, ...]], None]


class _Unset:
    """TLSServer(idle_timeout=...) not given: the same as ``timeout``."""


_UNSET = _Unset()


class TLSServer:
    """Accepts connections on a listening socket and serves each in a thread of its own
    while it lasts: threads come from a pool that grows on demand (up to
    ``max_concurrent``) and are reused for later connections -- starting a thread per
    connection costs more than a short handshake's bookkeeping. A handler that keeps
    per-connection state in a ``threading.local`` resets it in ``on_connection``, which
    runs in the serving thread before each connection's handshake. Idle threads end
    after ``POOL_IDLE_SECONDS`` without work.

    ``config`` is used as given for every connection, so its ``session_store`` (ticket
    keys, session IDs, 0-RTT anti-replay marks), ``tickets`` and ``max_early_data`` are
    shared by all of them. The handler runs once the handshake is complete; accepted
    0-RTT data is in ``tls.early_data`` (and at the head of ``tls.recv()``), and
    ``tls.info.early_data_accepted`` tells whether the client offered any.

    Limits (each cut connection is logged on the ``tlsmith.server`` logger, and passed
    to ``on_error``):

    ``handshake_timeout`` (default 10 s): an overall deadline for the handshake, however
    the client spreads its bytes (a slowloris trickling one byte a second is cut at the
    deadline all the same). ``timeout`` (default 30 s) bounds each single socket
    operation, during the handshake and after it.

    ``idle_timeout`` (default: ``timeout``): after the handshake, how long the handler's
    reads wait for the client to send something (the socket timeout: ``recv()`` raises
    TimeoutError); None: no limit.

    ``max_concurrent`` (default 256): at most that many connections are served
    (handshake + handler, one thread each while it lasts) at once. The accept loop
    waits for a free slot before it accepts the next connection, so the others wait in
    the kernel's listen backlog (128) -- their TCP handshake completes, their
    ClientHello waits -- and beyond it new connections are refused or time out, as the
    kernel decides. Never more than ``max_concurrent`` + 1 threads (pooled threads only
    start when none is idle). None: no bound (a thread per connection served at once).

    ``max_handshakes`` (default 64, at most ``max_concurrent``): of those, at most that
    many may be in their handshake at once -- the expensive, attacker-paced phase -- so
    connections that never finish a handshake (until the deadline cuts them) cannot take
    every slot from clients already served. The accept loop waits for a handshake slot
    too. None: only ``max_concurrent`` applies.

    On Linux the accept loop blocks in accept() (``shutdown()`` wakes it) and the
    connections are ``ServedSocket``s (tlsmith.io.served): blocking sockets whose
    timeouts the kernel keeps, so reads and writes do not poll first.

    Memory per connection is bounded: a TLSSocket reads from the socket only when the
    handler needs bytes, so its plaintext buffer holds at most one read (64 KiB) and one
    record beyond what the handler asked for (``TLSDriver.MAX_BUFFERED`` when a helper
    reads ahead), and the core buffers at most one record being assembled.
    """

    def __init__(self, config: ServerConfig, address: tuple[str, int], handler: Handler, *,
                 timeout: float | None = 30.0,
                 on_error: Callable[[tuple[Any, ...], BaseException], None] | None = None,
                 keylog: str | os.PathLike[str] | None = None,
                 max_concurrent: int | None = DEFAULT_MAX_CONCURRENT,
                 handshake_timeout: float | None = 10.0,
                 idle_timeout: float | _Unset | None = _UNSET,
                 sock: socket.socket | None = None,
                 max_handshakes: int | None = DEFAULT_MAX_HANDSHAKES,
                 on_connection: Callable[[], None] | None = None) -> None:
        """``sock``: an already bound and listening socket to serve on instead of binding
        ``address`` (e.g. one of several SO_REUSEPORT sockets sharing a port).
        ``on_connection``: called in the serving thread before each connection's
        handshake (threads are reused: reset per-connection thread-local state there)."""
        if max_concurrent is not None and max_concurrent < 1:
            raise UsageError("max_concurrent must be at least 1")
        if max_handshakes is not None and max_handshakes < 1:
            raise UsageError("max_handshakes must be at least 1")
        if max_handshakes is not None and max_concurrent is not None:
            max_handshakes = min(max_handshakes, max_concurrent)
        for name, value in (("timeout", timeout), ("handshake_timeout", handshake_timeout),
                            ("idle_timeout", idle_timeout)):
            if isinstance(value, int | float) and value <= 0:
                raise UsageError(f"{name} must be positive (or None)")
        self.config = with_keylog(config, keylog)
        self.handler = handler
        self.timeout = timeout
        self.handshake_timeout = handshake_timeout
        self.idle_timeout: float | None = (timeout if isinstance(idle_timeout, _Unset)
                                           else idle_timeout)
        self.on_error = on_error
        self.max_concurrent = max_concurrent
        self.max_handshakes = max_handshakes
        self._slots = Slots(max_concurrent, max_handshakes)
        if sock is None:
            family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(128)
        self.sock = sock
        self.server_address: tuple[Any, ...] = self.sock.getsockname()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.on_connection = on_connection
        self._kind: tuple[socket.AddressFamily, socket.SocketKind, int] = (
            self.sock.family, self.sock.type, self.sock.proto)
        # The worker pool: idle workers wait on _jobs; _idle counts those not yet handed
        # a job (under _pool_lock, with the put, so no job is left without a worker).
        self._jobs: queue.SimpleQueue[tuple[socket.socket, tuple[Any, ...]] | None] = (
            queue.SimpleQueue())
        self._pool_lock = threading.Lock()
        self._idle = 0

    #: How long an idle pooled thread waits for another connection before it ends.
    POOL_IDLE_SECONDS = 5.0

    def _dispatch(self, client_sock: socket.socket, addr: tuple[Any, ...]) -> None:
        """Hand the connection to an idle worker, or start one for it."""
        with self._pool_lock:
            if self._idle:
                self._idle -= 1
                self._jobs.put((client_sock, addr))
                return
        threading.Thread(target=self._work, args=(client_sock, addr), daemon=True).start()

    def _work(self, client_sock: socket.socket, addr: tuple[Any, ...]) -> None:
        """A pooled thread: serve the connection, then wait for the next one. It counts
        itself idle *before* its connection's slot is given back, so the accept loop,
        once it has that slot, finds it idle instead of starting another thread."""
        job: tuple[socket.socket, tuple[Any, ...]] | None = (client_sock, addr)
        counted = [False]

        def ready() -> None:
            with self._pool_lock:
                if not self._stop.is_set():
                    self._idle += 1
                    counted[0] = True

        while job is not None:
            counted[0] = False
            try:
                self._serve_one(*job, ready=ready)
            except BaseException:
                self._retire(counted[0])
                raise
            if not counted[0]:
                return  # stopping
            try:
                job = self._jobs.get(timeout=self.POOL_IDLE_SECONDS)
            except queue.Empty:
                with self._pool_lock:
                    try:  # a job handed over while the wait timed out
                        job = self._jobs.get_nowait()
                    except queue.Empty:
                        self._idle -= 1
                        return

    def _retire(self, counted: bool) -> None:
        """A worker ends on an exception: if it had counted itself idle, take that back,
        or -- a connection was handed over meanwhile -- give the connection a new
        worker."""
        if not counted:
            return
        with self._pool_lock:
            if self._idle:
                self._idle -= 1
                return
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return
        if job is not None:
            threading.Thread(target=self._work, args=job, daemon=True).start()

    def serve_forever(self) -> None:
        # Linux: accept() blocks until a connection comes, and shutdown() wakes it by
        # shutting the listening socket down (accept() then fails at once). Elsewhere it
        # wakes every 0.2 s to look at _stop. (A socket with a timeout costs a poll() and,
        # for the accepted socket, an ioctl() per connection: two more GIL releases.)
        self.sock.settimeout(None if _SHUTDOWN_WAKES_ACCEPT else 0.2)
        accept = self._accept_served if _SHUTDOWN_WAKES_ACCEPT else self.sock.accept
        slots = self._slots
        while not self._stop.is_set():
            # Bounded: take the slots before accepting (checking _stop every 0.2 s).
            if not slots.take(0.2):
                continue
            try:
                client_sock, addr = accept()
            except TimeoutError:
                self._release()
                continue
            except OSError:
                self._release()
                if self._stop.is_set():
                    break
                raise
            try:
                self._dispatch(client_sock, addr)
            except BaseException as exc:
                client_sock.close()
                self._release()
                if isinstance(exc, RuntimeError):  # "can't start new thread": shed it
                    logger.warning("closed the connection from %s: cannot start a thread "
                                   "(%s)", _peer(addr), exc)
                    continue
                raise

    def _accept_served(self) -> tuple[socket.socket, tuple[Any, ...]]:
        """Linux: accept a connection as a ServedSocket (its timeouts kept by the
        kernel: no poll() before each read and write)."""
        fd, addr = self.sock._accept()  # type: ignore[attr-defined]  # (what accept() does)
        try:
            return ServedSocket(*self._kind, fd), addr
        except BaseException:
            os.close(fd)
            raise

    def _release(self, *, handshake: bool = True) -> None:
        """Give back the slots taken for one connection (its handshake slot unless it
        was given back when the handshake ended)."""
        self._slots.give_back(handshake=handshake)

    def _serve_one(self, client_sock: socket.socket, addr: tuple[Any, ...], *,
                   ready: Callable[[], None] | None = None) -> None:
        """Serve one connection; ``ready`` is called once it is over, just before its
        slots are given back."""
        in_handshake = True
        try:
            if self.on_connection is not None:
                try:
                    self.on_connection()
                except BaseException:
                    client_sock.close()
                    raise
            client_sock.settimeout(self.timeout)
            tls = TLSSocket(client_sock, TLSConnection(self.config))
            try:
                tls.do_handshake(self.handshake_timeout)
                in_handshake = False
                if self.max_handshakes is not None:
                    self._slots.give_back(connection=False)
                if self.idle_timeout != self.timeout:
                    client_sock.settimeout(self.idle_timeout)
                self.handler(tls, addr)
            except BaseException as exc:  # one client's failure never stops the server
                self._log_cut(addr, exc, in_handshake)
                if self.on_error is not None:
                    self.on_error(addr, exc)
            finally:
                with contextlib.suppress(Exception):
                    tls.close()
        finally:
            try:
                if ready is not None:
                    ready()
            finally:
                self._release(handshake=in_handshake)

    def _log_cut(self, addr: tuple[Any, ...], exc: BaseException, in_handshake: bool
                 ) -> None:
        peer = _peer(addr)
        if isinstance(exc, HandshakeTimeout):
            logger.info("%s from %s: connection closed", exc, peer)
        elif isinstance(exc, TimeoutError):
            what = ("handshake read timeout" if in_handshake else "idle timeout")
            limit = self.timeout if in_handshake else self.idle_timeout
            logger.info("%s (%s s) from %s: connection closed", what,
                        "-" if limit is None else f"{limit:g}", peer)
        elif in_handshake:
            logger.info("handshake with %s failed: %s", peer, exc)
        else:
            logger.info("the handler for %s raised: %r", peer, exc)

    def start(self) -> TLSServer:
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def shutdown(self) -> None:
        self._stop.set()
        if _SHUTDOWN_WAKES_ACCEPT:
            with contextlib.suppress(OSError):  # (not listening: nothing to wake)
                self.sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.sock.close()
        with self._pool_lock:  # idle workers end now (busy ones when their job ends)
            for _ in range(self._idle):
                self._jobs.put(None)
            self._idle = 0

    def __enter__(self) -> TLSServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def _peer(addr: tuple[Any, ...]) -> str:
    return f"{addr[0]}:{addr[1]}" if len(addr) >= 2 else str(addr)

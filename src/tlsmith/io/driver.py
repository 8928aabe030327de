"""The one event driver between the sans-IO core and a transport.

``TLSDriver`` is the transport-independent half of an I/O adapter: it feeds the core the
bytes the transport read, turns the core's events into state (the plaintext buffer, the
sessions received, key updates, client certificates, 0-RTT bytes, how the stream ended,
handshake timing) and says what the adapter must do next. The blocking ``TLSSocket``
and the asyncio streams (``tlsmith.aio``) both run on it, so they cannot drift apart.

An adapter's read loop is always the same, only the I/O differs::

    while not <what it waits for>:
        step = driver.step()              # a TLSError: write data_to_send(), then raise
        write(driver.data_to_send())      # after every step (alerts, KeyUpdate answers)
        if step is Step.NEED_DATA:
            driver.receive_data(read())   # b"" at EOF
        elif step is Step.CLOSED:
            break
"""

from __future__ import annotations

import enum
import time

from tlsmith.codec.enums import ProtocolVersion
from tlsmith.connection import TLSConnection
from tlsmith.errors import UsageError
from tlsmith.events import (
    NEED_DATA,
    ApplicationData,
    ClientCertificateReceived,
    ConnectionClosed,
    Event,
    FalseStart,
    HandshakeComplete,
    HandshakeInfo,
    KeyUpdated,
    SessionTicketReceived,
    WarningAlert,
)
from tlsmith.session import Session
from tlsmith.stores import ClientSessionCache


class Step(enum.Enum):
    """What ``TLSDriver.step()`` did, hence what the adapter does next."""

    EVENT = "event"  # one event was handled: check what you are waiting for again
    NEED_DATA = "need_data"  # read from the transport and receive_data() it
    CLOSED = "closed"  # the stream has ended (close_notify or EOF): stop reading


# Events the driver keeps no state for (the application reads them from conn.info etc.).
_NOTHING_TO_DO = frozenset({HandshakeComplete, FalseStart, WarningAlert})


class TLSDriver:
    """The state of one TLS connection above the core, for any transport.

    Client side: every session the server hands out lands in ``tickets`` (and in
    ``session_cache``, when set, under its key). Server side: ``early`` holds the 0-RTT
    bytes, which are also the head of ``plaintext`` (the stream stays whole).
    ``closed_cleanly`` is None while open, True after close_notify, False after a bare
    EOF (a truncation an attacker can cause).

    Memory: the adapters read from the transport only when the application waits for
    something, so ``plaintext`` grows by at most one read plus one record beyond what
    the application asked for. Helpers that read ahead while waiting for something else
    (a ticket, a post-handshake certificate) stop once ``over_limit()``: more than
    ``MAX_BUFFERED`` bytes of unread plaintext (back-pressure: the rest stays in the
    kernel until the application reads).
    """

    #: The most unread plaintext a read-ahead helper lets pile up.
    MAX_BUFFERED = 1 << 20

    def __init__(self, conn: TLSConnection, *,
                 session_cache: tuple[ClientSessionCache, str] | None = None) -> None:
        self.conn = conn
        self.plaintext = bytearray()
        self.early = bytearray()
        self.tickets: list[SessionTicketReceived] = []
        self.session_cache = session_cache
        self.key_updates_received = 0
        self.client_certificates: list[ClientCertificateReceived] = []
        self.closed_cleanly: bool | None = None
        # No more bytes will come: the transport hit EOF or the peer sent close_notify.
        self.eof = False
        self.handshake_seconds = 0.0
        self._started: float | None = None

    # -- bytes in and out ---------------------------------------------------------------
    def data_to_send(self) -> bytes:
        return self.conn.data_to_send()

    def receive_data(self, chunk: bytes | bytearray | memoryview) -> None:
        """Bytes the transport read; b"" at end of file."""
        self.conn.receive_data(chunk)
        if not chunk:
            self.eof = True

    # -- events -------------------------------------------------------------------------
    def step(self) -> Step:
        """Handle the core's next event. A TLSError propagates as is: the core has queued
        its alert, so the adapter should still write ``data_to_send()`` (best effort)."""
        event = self.conn.next_event()
        if event is NEED_DATA:
            return Step.CLOSED if self.eof else Step.NEED_DATA
        return self.handle(event)

    def step_take(self, n: int) -> bytes | Step:
        """``step()``, except that application data arriving while no plaintext is
        buffered, and fitting in ``n`` bytes, is returned as is: the bytes the record
        layer produced, not copied into ``plaintext`` and out again."""
        event = self.conn.next_event()
        if event is NEED_DATA:
            return Step.CLOSED if self.eof else Step.NEED_DATA
        if (type(event) is ApplicationData and not event.early and not self.plaintext
                and len(event.data) <= n):
            return event.data
        return self.handle(event)

    def handle(self, event: Event) -> Step:
        if type(event) in _NOTHING_TO_DO:  # (HandshakeComplete and friends: one test)
            return Step.EVENT
        if isinstance(event, ApplicationData):
            if event.early:
                self.early += event.data
            self.plaintext += event.data
        elif isinstance(event, ConnectionClosed):
            self.eof = True
            self.closed_cleanly = event.clean
            return Step.CLOSED
        elif isinstance(event, SessionTicketReceived):
            self.tickets.append(event)
            if self.session_cache is not None:
                cache, key = self.session_cache
                cache.put(key, event.session)
        elif isinstance(event, KeyUpdated):
            self.key_updates_received += 1
        elif isinstance(event, ClientCertificateReceived):
            self.client_certificates.append(event)
        return Step.EVENT

    def drain_pending(self) -> bool:
        """Handle the events the core can produce without new bytes; False once the
        stream has ended. The adapter writes ``data_to_send()`` afterwards."""
        while True:
            step = self.step()
            if step is Step.NEED_DATA:
                return True
            if step is Step.CLOSED:
                return False

    # -- plaintext ----------------------------------------------------------------------
    def over_limit(self) -> bool:
        """Whether more than MAX_BUFFERED plaintext bytes wait to be read."""
        return len(self.plaintext) > self.MAX_BUFFERED

    def take(self, n: int) -> bytes:
        """Up to ``n`` buffered plaintext bytes (all of them if ``n`` < 0)."""
        buf = self.plaintext
        if n < 0 or n >= len(buf):
            data = bytes(buf)
            buf.clear()
        else:
            data = bytes(buf[:n])
            del buf[:n]
        return data

    # -- handshake ----------------------------------------------------------------------
    def start_handshake(self) -> None:
        self._started = time.monotonic()

    def finish_handshake(self) -> HandshakeInfo:
        """Call once ``conn.handshake_complete``: records the time it took."""
        if self._started is not None:
            self.handshake_seconds = time.monotonic() - self._started
        return self.info

    @property
    def info(self) -> HandshakeInfo:
        if self.conn.info is None:
            raise UsageError("the handshake has not completed")
        return self.conn.info

    # -- resumption and the server's verdict ----------------------------------------------
    @property
    def sessions(self) -> list[Session]:
        return [t.session for t in self.tickets]

    @property
    def session(self) -> Session | None:
        return self.tickets[-1].session if self.tickets else None

    def check_session_wait(self) -> bool:
        """wait_for_session(): check it may be called, handle what is pending; True if it
        is worth reading for a ticket (none yet, the stream is open, TLS 1.3)."""
        if not self.conn.is_client:
            raise UsageError("wait_for_session() is for the client side")
        if not self.conn.handshake_complete:
            raise UsageError("the handshake has not completed")
        alive = self.drain_pending()
        if self.tickets or not alive or self.eof:
            return False
        # A TLS 1.2 server gives its session id/ticket in the handshake: nothing to wait for.
        return self.info.version != ProtocolVersion.TLS12

    def early_verdict(self) -> str | None:
        """server_verdict() without reading: "accepted" if already known, else None."""
        if not self.conn.is_client:
            raise UsageError("server_verdict() is for the client side")
        if self.info.version == ProtocolVersion.TLS12:
            return "accepted"
        if self.tickets or self.plaintext or self.key_updates_received:
            return "accepted"
        return None

    def verdict_timeout(self, timeout: float | None) -> float:
        """The default wait of server_verdict(): twice the handshake, 0.25 s to 2 s."""
        if timeout is not None:
            return timeout
        return min(2.0, max(0.25, 2 * self.handshake_seconds))

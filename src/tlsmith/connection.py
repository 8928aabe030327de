"""TLSConnection: the sans-IO core.

    conn.receive_data(bytes)   bytes from the peer (b"" means the transport hit EOF)
    conn.next_event()          one Event at a time; NeedData when it must wait
    conn.send_data(bytes)      application data to protect
    conn.data_to_send()        bytes for the wire
    conn.close() / conn.key_update()

This is the ONE place where errors become alerts (design.md §8): any ProtocolError
raised below turns into the alert it names, the connection dies, and the error is raised
to the caller. A fatal alert from the peer raises AlertReceived. After either, the
connection stays dead. The send path (send_data, key_update, request_client_certificate,
close, data_to_send) is treated alike: a ProtocolError raised while sending queues its
alert and kills the connection, any other exception becomes InternalError. A UsageError
(the caller misused the API) never kills the connection: nothing went wrong on the wire.

Limits (``config.limits``, see ``tlsmith.config.Limits``) bound what a peer can make us
do without progress: records that deliver nothing, KeyUpdates, fragments per handshake
message, ClientHello list sizes; each hit is a ProtocolError naming the limit.
"""

from __future__ import annotations

import operator
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from tlsmith.codec.enums import (
    AlertDescription,
    AlertLevel,
    ContentType,
    ExtensionType,
    HandshakeType,
    KeyUpdateRequest,
    ProtocolVersion,
)
from tlsmith.codec.messages import ClientHello, Finished, KeyUpdate
from tlsmith.config import ClientConfig, Limits, ServerConfig
from tlsmith.errors import (
    AlertReceived,
    BadRecordMac,
    ConnectionClosedError,
    InternalError,
    ProtocolError,
    TLSError,
    UnexpectedMessage,
    UsageError,
)
from tlsmith.events import (
    NEED_DATA,
    ApplicationData,
    ConnectionClosed,
    Event,
    FalseStart,
    HandshakeComplete,
    HandshakeInfo,
    WarningAlert,
)
from tlsmith.handshake import start
from tlsmith.handshake.base import State
from tlsmith.handshake.server import CHECK_AFTER_PARSING_MAX, client_hello_lists_error
from tlsmith.observe import (
    CheckTrace,
    CompleteTrace,
    Epoch,
    MessageTrace,
    NoteTrace,
    RecordTrace,
    SecretTrace,
    TraceRecord,
)
from tlsmith.record.framing import (
    HandshakeReassembler,
    Record,
    RecordReader,
    encode_record_header,
    fragment,
    parse_alert,
)
from tlsmith.record.protection import (
    PlaintextDecrypter,
    PlaintextEncrypter,
    RecordDecrypter,
    RecordEncrypter,
)
from tlsmith.session import Session, Session13

_CT_CCS = ContentType.CHANGE_CIPHER_SPEC
_CT_ALERT = ContentType.ALERT
_CT_HANDSHAKE = ContentType.HANDSHAKE
_CT_APPLICATION_DATA = ContentType.APPLICATION_DATA
_EPOCH_APPLICATION = Epoch.APPLICATION
_MAX_CCS = 2  # one per flight in middlebox-compatibility mode (RFC 8446 §D.4)
_CCS_RECORD = encode_record_header(ContentType.CHANGE_CIPHER_SPEC, 0x0303, 1) + b"\x01"
# Handshake messages that move nothing forward once the handshake is done: they count
# towards Limits.max_records_without_progress (a refused renegotiation, a ticket).
_IDLE_MESSAGES = frozenset({HandshakeType.HELLO_REQUEST, HandshakeType.NEW_SESSION_TICKET})
# Messages _drain_handshake looks at more closely (the others are progress, no more).
_COUNTED_MESSAGES = _IDLE_MESSAGES | {HandshakeType.CLIENT_HELLO, HandshakeType.KEY_UPDATE}


class TLSConnection:
    """One TLS connection, client or server, chosen by the type of ``config``."""

    def __init__(self, config: ClientConfig | ServerConfig, *,
                 session: Session | None = None, early_data: bytes | None = None) -> None:
        """``session`` (client): a ``Session13``/``Session12`` from an earlier
        ``SessionTicketReceived`` to resume. ``early_data`` (client, TLS 1.3): 0-RTT data
        sent with the ClientHello; the session's ticket must allow early data.
        ``info.early_data_accepted`` tells whether the server took it (if not, it is sent
        again after the handshake unless ``resend_rejected_early_data`` is off)."""
        self.config = config
        self.is_client = isinstance(config, ClientConfig)
        if not self.is_client and (session is not None or early_data is not None):
            raise UsageError("session= and early_data= are for the client side")
        if early_data is not None:
            _check_early_data(session, early_data)
        limits: Limits = config.limits
        self._limits = limits
        self._reader = RecordReader()
        self._handshake = HandshakeReassembler(
            max_fragments=limits.max_handshake_fragments_per_message)
        # Limits: records in a row that delivered nothing, and KeyUpdates received since
        # the last application data (both reset by progress, see _process_plain).
        self._idle = 0
        self._key_updates = 0
        # RFC 8446 §4.6.3: we sent a KeyUpdate and no application data since: it answers
        # any update_requested ("an implementation which receives multiple KeyUpdates
        # while it is silent" responds with a single update), however often we flush.
        self._key_update_queued = False
        # We sent update_requested: the peer's next KeyUpdate is the answer we asked for.
        self._key_update_asked = False
        # RFC 8446 §D.4: our compatibility CCS is due before the next protected record.
        self._ccs_owed = False
        self._read: RecordDecrypter = PlaintextDecrypter()
        # RFC 8446 §5.1 / RFC 5246 §E.1: the first ClientHello may use record version 0x0301.
        self._write: RecordEncrypter = PlaintextEncrypter(0x0301 if self.is_client else 0x0303)
        self.read_epoch = Epoch.PLAINTEXT
        self.write_epoch = Epoch.PLAINTEXT
        self._out: list[bytes] = []  # whole records, joined once in data_to_send()
        self._pending = bytearray()  # handshake bytes not yet framed into records
        self._events: deque[Event] = deque()
        self._dead: TLSError | None = None
        self._read_changed = False
        self._eof = False
        self.handshake_complete = False
        # RFC 7918: a TLS 1.2 client may write between its Finished and the server's.
        self.false_started = False
        self.peer_closed = False
        self.closed = False
        self.info: HandshakeInfo | None = None
        self.client_random = b""
        # The first ClientHello as on the wire (handshake header included): the one we
        # sent (client) or received (server) -- e.g. for its JA3/JA4 fingerprint.
        self.first_client_hello = b""
        self.received_ccs = 0
        # RFC 5929 §3.1: the first Finished of the latest handshake (its verify_data).
        self._first_finished = b""
        # RFC 8446 §4.2.6: whether the (last) ClientHello offered post_handshake_auth.
        self.post_handshake_auth_offered = False
        self._observer = config.observer
        # RFC 8446 §4.2.10: 0-RTT bytes the server may still skip (rejected early data;
        # None: not skipping, 0: the budget is used up) and the most it reads (accepted).
        self._skip_early: int | None = None
        self._early_left = 0
        # States talk to the connection through this private channel, never through the
        # public API (design.md: set_write/emit and friends stay out of TLSConnection).
        self._io = _Channel(self, session, early_data)
        self._state: State[Any] = start(self._io)
        if self.is_client:
            self._flush_handshake()
            if self.write_epoch == Epoch.PLAINTEXT:  # (not if 0-RTT keys are in place)
                self._write = PlaintextEncrypter(0x0303)

    # ------------------------------------------------------------------ public API
    @property
    def state_name(self) -> str:
        return self._state.name

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Bytes from the peer; ``b""`` tells that the transport reached end of file."""
        if not data:
            self._eof = True
        else:
            self._reader.feed(data)  # (it keeps bytes as they are and copies the rest)

    def buffered_input(self) -> int:
        """Bytes received but not yet processed (the rest of a record, or records after
        the event just returned)."""
        return self._reader.buffered()

    def next_event(self) -> Event:
        """The next event, or NEED_DATA when more bytes are needed."""
        if self._events:
            return self._events.popleft()
        if self._dead is not None:
            raise ConnectionClosedError(f"the connection is dead: {self._dead}")
        try:
            while not self._events:
                record = self._reader.next_record()
                if record is None:
                    if self._eof:
                        self._eof = False
                        if not self.peer_closed:
                            self.peer_closed = True
                            return ConnectionClosed(clean=False)
                    return NEED_DATA
                outer = record.content_type
                if outer is _CT_APPLICATION_DATA and self._skip_early is None:
                    # The bulk-data case: a record under the application keys holding
                    # application data, nothing traced, no handshake message half-read
                    # -- its event is returned as is; anything else takes the checks
                    # and errors of _process / _process_plain.
                    content_type, payload = self._read.unprotect(record)
                    if (content_type is _CT_APPLICATION_DATA and payload
                            and self.read_epoch is _EPOCH_APPLICATION
                            and self._observer is None and not self.peer_closed
                            and self._state.accepts_application_data
                            and not self._handshake.has_partial()):
                        self._idle = self._key_updates = 0  # progress
                        return ApplicationData(bytes(payload))
                    self._process_unprotected(record, content_type, payload)
                else:
                    self._process(outer, record)
        except ProtocolError as exc:
            self._fail(exc)
            raise
        except AlertReceived as exc:
            self._dead = exc
            self._events.clear()
            raise
        except TLSError:
            raise
        except Exception as exc:  # a bug: still answer the peer with internal_error
            err = InternalError(f"internal error while processing the peer's data: {exc!r}")
            self._fail(err)
            raise err from exc
        return self._events.popleft()

    def events(self) -> list[Event]:
        """Every event available now (without the final NeedData)."""
        out: list[Event] = []
        while True:
            ev = self.next_event()
            if ev is NEED_DATA:
                return out
            out.append(ev)
            if isinstance(ev, ConnectionClosed):
                return out

    def send_data(self, data: bytes | bytearray | memoryview) -> None:
        if self._dead is not None:
            self._check_alive()  # (raises)
        if self.write_epoch != _EPOCH_APPLICATION or not (
                self.handshake_complete or not self.is_client or self.false_started):
            # A TLS 1.3 server may send right after its Finished (RFC 8446 §4.4.4); a
            # TLS 1.2 client waits for the server's Finished unless it False Starts
            # (RFC 7918, ClientConfig.false_start).
            raise UsageError("application data can be sent only after the handshake")
        if self.closed:
            raise UsageError("send_data() after close()")
        protect = self._write.protect
        self._key_update_queued = False  # data follows our KeyUpdate: it is as good as sent
        try:
            if self._pending:  # handshake messages still unframed (our False Start
                self._flush_handshake()  # Finished) go first
            if self._observer is None:
                max_fragment = self.config.max_fragment
                if type(data) is bytes and 0 < len(data) <= max_fragment:
                    self._out.append(protect(_CT_APPLICATION_DATA, data))  # one record
                    return
                append = self._out.append
                for piece in fragment(memoryview(data), max_fragment):
                    append(protect(_CT_APPLICATION_DATA, piece))
            else:
                for piece in fragment(memoryview(data), self.config.max_fragment):
                    self._append_traced(ContentType.APPLICATION_DATA, piece)
        except Exception as exc:
            self._send_failed(exc)
            raise

    def data_to_send(self) -> bytes:
        """The bytes to write to the transport. If it raises (a protocol error while
        protecting queued handshake data), the connection is dead and the next call
        returns the alert."""
        if self._pending:
            try:
                self._flush_handshake()
            except Exception as exc:
                self._send_failed(exc)
                raise
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data

    def close(self) -> None:
        """Send close_notify (RFC 8446 §6.1); further send_data() is an error."""
        if self.closed or self._dead is not None:
            return
        self.closed = True
        try:
            self._send_alert(AlertLevel.WARNING, AlertDescription.CLOSE_NOTIFY)
        except Exception as exc:
            self._send_failed(exc)
            raise

    @property
    def negotiated_version(self) -> ProtocolVersion | None:
        return self._state.version

    @property
    def early_data_accepted(self) -> bool | None:
        """Client: whether the server accepted our 0-RTT data (None: none was sent, or
        the handshake has not reached EncryptedExtensions)."""
        return self.info.early_data_accepted if self.info is not None else None

    def key_update(self, *, request_peer: bool = True) -> None:
        """Send KeyUpdate and switch to the next write key (RFC 8446 §4.6.3; TLS 1.3)."""
        self._check_alive()
        try:
            self._state.key_update(self._io, request_peer=request_peer)
            self._flush_handshake()
        except Exception as exc:
            self._send_failed(exc)
            raise

    def request_client_certificate(self) -> None:
        """Server, TLS 1.3: ask for a client certificate after the handshake (RFC 8446
        §4.6.2). The client must have offered post_handshake_auth, the server needs
        ``ServerConfig.client_trust``, and only one request may be outstanding; otherwise
        UsageError. The answer arrives as a ``ClientCertificateReceived`` event;
        application data keeps flowing both ways meanwhile."""
        self._check_alive()
        state = self._state
        if self.is_client:
            raise UsageError("request_client_certificate() is for the server side")
        if self.closed:
            raise UsageError("request_client_certificate() after close()")
        try:
            state.request_client_certificate(self._io)
            self._flush_handshake()
        except Exception as exc:
            self._send_failed(exc)
            raise

    def export_keying_material(self, label: bytes, context: bytes | None, length: int
                               ) -> bytes:
        """Keying material exporter: RFC 8446 §7.5 (TLS 1.3) or RFC 5705 (TLS 1.2)."""
        self._check_alive()
        return self._state.export_keying_material(label, context, length)

    def tls_unique(self) -> bytes:
        """RFC 5929 §3.1 channel binding: the first Finished message's verify_data of
        the handshake (the client's in a full handshake, the server's on resumption).
        TLS 1.2 only: it is not defined for TLS 1.3 (RFC 9266 §2 uses an exporter)."""
        self._check_alive()
        if not self.handshake_complete or self.negotiated_version != ProtocolVersion.TLS12:
            raise UsageError("tls-unique is defined only after a TLS 1.2 handshake")
        return self._first_finished

    def send_fatal_alert(self, description: AlertDescription) -> None:
        """End the connection with a fatal alert of the application's choice (e.g. it
        refuses the peer after the handshake, RFC 8446 §6.2); data_to_send() then holds
        the alert and the connection is dead."""
        self._check_alive()
        if description == AlertDescription.CLOSE_NOTIFY:
            raise UsageError("close_notify is sent by close()")
        self._dead = ConnectionClosedError(
            f"the application ended the connection with a fatal {description.name} alert")
        self._pending.clear()
        self._events.clear()
        self._send_alert(AlertLevel.FATAL, description)

    def exporter(self, label: bytes, context: bytes | None, length: int) -> bytes:
        """Alias of ``export_keying_material``."""
        return self.export_keying_material(label, context, length)

    # ------------------------------------------------------------- record intake
    def _process_unprotected(self, record: Record, content_type: ContentType,
                             payload: bytes) -> None:
        """What ``_process`` does after unprotecting ``record`` (next_event's bulk path
        unprotects application_data records itself)."""
        epoch = self.read_epoch
        if self._observer is not None:
            self._trace_received(record, content_type, payload, epoch)
        if content_type == _CT_HANDSHAKE:
            self._handshake.feed(payload)
            self._drain_handshake()
            return
        self._process_plain(content_type, payload, epoch)

    def _process(self, outer: ContentType, record: Record) -> None:
        if outer == _CT_CCS:
            self._change_cipher_spec(record)
            return
        epoch = self.read_epoch
        if self._skip_early is not None and outer == _CT_APPLICATION_DATA:
            self._skip_early_record(record)
            return
        if outer == _CT_ALERT and epoch == Epoch.HANDSHAKE and not self.handshake_complete:
            # A TLS 1.3 peer that failed before it had our keys sends its alert in clear.
            content_type, payload = ContentType.ALERT, bytes(record.fragment)
            epoch = Epoch.PLAINTEXT
        else:
            content_type, payload = self._read.unprotect(record)
        if self._observer is not None:
            self._trace_received(record, content_type, payload, epoch)
        if content_type == _CT_HANDSHAKE:  # (_process_plain's first case, one call less)
            self._handshake.feed(payload)
            self._drain_handshake()
            return
        self._process_plain(content_type, payload, epoch)

    def _process_plain(self, content_type: ContentType, payload: bytes,
                       epoch: Epoch) -> None:
        if content_type == ContentType.HANDSHAKE:
            self._handshake.feed(payload)
            self._drain_handshake()
            return
        # (Handshake records are counted per message in _drain_handshake, and per
        # fragment by the reassembler.)
        if self._handshake.has_partial():
            # RFC 8446 §5.1: handshake messages MUST NOT be interleaved with other types.
            raise UnexpectedMessage(f"a {content_type.name} record arrived in the middle of "
                                    "a fragmented handshake message")
        if content_type == ContentType.ALERT:
            self._alert(payload, epoch)
        elif content_type == ContentType.APPLICATION_DATA:
            if not self._state.accepts_application_data:
                raise UnexpectedMessage("application data arrived before the handshake "
                                        "completed")
            if epoch == Epoch.EARLY:
                self._early_left -= len(payload)
                if self._early_left < 0:
                    # RFC 8446 §4.2.10: more than max_early_data_size of 0-RTT data.
                    raise UnexpectedMessage("the client sent more 0-RTT data than the "
                                            "ticket's max_early_data_size")
                if not payload:
                    self._no_progress("empty early data records")
                    return
                self._idle = self._key_updates = 0
                self._events.append(ApplicationData(bytes(payload), early=True))
            elif payload and not self.peer_closed:
                self._idle = self._key_updates = 0  # progress
                self._events.append(ApplicationData(bytes(payload)))
            else:
                # RFC 8446 §5.1 allows zero-length application data (traffic analysis),
                # but not without end: OpenSSL gives up after 32 in a row.
                self._no_progress("empty application_data records")
        else:
            raise UnexpectedMessage(f"unexpected record type {content_type.name}")

    def _skip_early_record(self, record: Record) -> None:
        """RFC 8446 §4.2.10: a server that rejected 0-RTT (or sent a HelloRetryRequest)
        skips the client's early-data records -- those it cannot decrypt with its
        handshake key, or every application_data record before the second ClientHello --
        up to max_early_data_size, then the first readable record ends the skipping."""
        size = max(0, len(record.fragment) - 17)  # inner type + AEAD tag
        if self.read_epoch != Epoch.PLAINTEXT:
            try:
                content_type, payload = self._read.unprotect(record)
            except BadRecordMac:
                pass
            else:
                self._skip_early = None
                if self._observer is not None:
                    self._trace_received(record, content_type, payload, self.read_epoch)
                self._process_plain(content_type, payload, self.read_epoch)
                return
        left = (self._skip_early or 0) - size
        self._skip_early = left
        if left < 0:
            self._skip_early = None
            # RFC 8446 §4.2.10: more 0-RTT data than max_early_data_size ends the
            # connection with unexpected_message -- skipped data as well as read data.
            raise UnexpectedMessage("more undecryptable early data than the "
                                    "max_early_data_size we allow")
        self._io.note(f"skipped {size} bytes of 0-RTT data we do not read")

    def _change_cipher_spec(self, record: Record) -> None:
        # RFC 5246 §7.1 / RFC 8446 §5: exactly one byte, 0x01, never inside a
        # fragmented handshake message; what it means is the state's decision.
        if bytes(record.fragment) != b"\x01":
            raise UnexpectedMessage("malformed change_cipher_spec record")
        if self._handshake.has_partial():
            raise UnexpectedMessage("change_cipher_spec inside a fragmented handshake message")
        self._no_progress("change_cipher_spec records")
        if self._observer is not None:
            self._trace_received(record, ContentType.CHANGE_CIPHER_SPEC, b"\x01",
                                 Epoch.PLAINTEXT)
            self._trace(MessageTrace("received", "ChangeCipherSpec", None, 6,
                                     self.read_epoch, self.now(), b"\x01"))
        self._state = self._state.change_cipher_spec(self._io)

    def _drain_handshake(self) -> None:
        next_message = self._handshake.next_message
        while (item := next_message()) is not None:
            msg_type, body, raw = item
            state = self._state
            if msg_type not in state.expects:
                raise UnexpectedMessage(
                    f"{HandshakeType(msg_type).name} is not allowed in state {state.name} "
                    f"(expected {' or '.join(sorted(t.name for t in state.expects)) or 'none'})")
            if msg_type in _COUNTED_MESSAGES:
                self._count_message(msg_type, body)
            else:
                self._idle = 0  # progress
            self._read_changed = False
            self._state = state.handle(self._io, msg_type, body, raw)
            if self._read_changed and self._handshake.has_partial():
                # RFC 8446 §5.1: a key change must fall on a record boundary.
                raise UnexpectedMessage("handshake data after a key change was in the same "
                                        "record as the message before it")

    def _count_message(self, msg_type: HandshakeType, body: memoryview) -> None:
        """Progress is any handshake message but a KeyUpdate (counted on its own), a
        refused renegotiation (HelloRequest, a ClientHello after the handshake) or a
        NewSessionTicket; a server bounds a ClientHello's lists before it is parsed."""
        if msg_type == HandshakeType.KEY_UPDATE:
            self._key_update_received()
            return
        idle = msg_type in _IDLE_MESSAGES or self.handshake_complete
        if msg_type == HandshakeType.CLIENT_HELLO and not self.is_client:
            self._check_client_hello(body)
        if not idle:
            self._idle = 0
        elif self._idle < self._limits.max_records_without_progress:
            self._idle += 1  # (_no_progress's count, without building its message)
        else:
            self._no_progress(f"{HandshakeType(msg_type).name} messages")

    def _alert(self, payload: bytes, epoch: Epoch) -> None:
        level, description = parse_alert(payload)
        if self._observer is not None:
            self._trace(MessageTrace("received", "Alert", (level, description), 2,
                                     epoch, self.now(), bytes(payload[:2])))
        if description == AlertDescription.CLOSE_NOTIFY:
            self.peer_closed = True
            self._events.append(ConnectionClosed(clean=True))
            return
        if self._state.alert_is_fatal(level, description):
            raise AlertReceived(description)
        # OpenSSL ends the connection after a few warnings in a row ("too many warn
        # alerts", unexpected_message); so do we, at the records-without-progress limit.
        self._no_progress("warning alerts")
        self._events.append(WarningAlert(description))

    def now(self) -> float:
        return self.config.clock()

    # -------------------------------------------------------------------- limits
    def _no_progress(self, what: str) -> None:
        """One more record (or message) that delivered nothing."""
        self._idle += 1
        limit = self._limits.max_records_without_progress
        if self._idle > limit:
            raise UnexpectedMessage(
                f"more than {limit} records in a row without progress, the last of them "
                f"{what} (limit Limits.max_records_without_progress={limit})")

    def _key_update_received(self) -> None:
        """Count a peer's KeyUpdate (the answer to our own request is not counted)."""
        if self._key_update_asked:
            self._key_update_asked = False  # the answer to ours: solicited, not counted
            return
        self._key_updates += 1
        limit = self._limits.max_key_updates_without_data
        if self._key_updates > limit:
            raise UnexpectedMessage(
                f"more than {limit} KeyUpdates without application data (limit "
                f"Limits.max_key_updates_without_data={limit})")

    def _check_client_hello(self, body: memoryview) -> None:
        """Server: bound the lists of a big ClientHello (or one after the handshake)
        before it is parsed (parsing 10,000 extensions alone costs a third of a second).
        A small one before the handshake is bounded after parsing, on its parsed lists,
        by the state that reads it (``handshake.server.read_client_hello``). A malformed
        body is left to the codec, which answers decode_error."""
        if len(body) <= CHECK_AFTER_PARSING_MAX and not self.handshake_complete:
            return
        err = client_hello_lists_error(body, self._limits)
        if err is not None:
            raise err

    # ----------------------------------------------------------------- internals
    def _trace(self, record: TraceRecord) -> None:
        if self._observer is not None:
            self._observer(record)

    def _append_traced(self, content_type: ContentType,
                       piece: bytes | bytearray | memoryview) -> None:
        """Protect and queue one record, and tell the observer (only when there is one)."""
        wire = self._write.protect(content_type, piece)
        self._out.append(wire)
        epoch = self.write_epoch
        if self._observer is not None:
            self._observer(RecordTrace("sent", content_type, epoch, epoch != Epoch.PLAINTEXT,
                                      bytes(wire), bytes(piece), self.config.clock()))

    def _trace_received(self, record: Record, content_type: ContentType,
                        payload: bytes | memoryview, epoch: Epoch) -> None:
        fragment_ = bytes(record.fragment)
        wire = encode_record_header(record.content_type, record.legacy_version,
                                    len(fragment_)) + fragment_
        if self._observer is not None:
            self._observer(RecordTrace("received", content_type, epoch, epoch != Epoch.PLAINTEXT,
                                      wire, bytes(payload), self.config.clock()))

    def _flush_handshake(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, bytearray()
        if self._observer is not None:
            if len(pending) <= self.config.max_fragment:
                self._append_traced(ContentType.HANDSHAKE, pending)
                return
            for piece in fragment(memoryview(pending), self.config.max_fragment):
                self._append_traced(ContentType.HANDSHAKE, piece)
            return
        protect = self._write.protect
        max_fragment = self.config.max_fragment
        if len(pending) <= max_fragment:  # (the usual flight: one record)
            self._out.append(protect(_CT_HANDSHAKE, pending))
            return
        for piece in fragment(memoryview(pending), max_fragment):
            self._out.append(protect(_CT_HANDSHAKE, piece))

    def _send_alert(self, level: AlertLevel, description: AlertDescription) -> None:
        self._flush_handshake()
        if self._ccs_owed:
            self._io.send_change_cipher_spec()
        body = bytes((level, description))
        if self._observer is None:
            self._out.append(self._write.protect(ContentType.ALERT, body))
            return
        self._append_traced(ContentType.ALERT, body)
        self._trace(MessageTrace("sent", "Alert", (level, description), 2, self.write_epoch,
                                 self.now(), body))

    def _fail(self, exc: ProtocolError) -> None:
        """Turn an error into its alert; the connection is dead afterwards."""
        self._dead = exc
        self._pending.clear()
        self._events.clear()  # nothing decided before the fatal error is reported
        self._io.note(f"fatal: {exc}")
        try:
            self._send_alert(AlertLevel.FATAL, exc.alert)
        except Exception:  # the write side itself is broken; nothing more to send
            pass

    def _send_failed(self, exc: Exception) -> None:
        """An exception on the send path: the same treatment as on the receive path. A
        ProtocolError kills the connection with its alert; any other exception but a
        TLSError becomes InternalError (raised instead of it). UsageError -- the
        caller's mistake, nothing went wrong on the wire -- leaves the connection as it
        was; so does ConnectionClosedError (already dead)."""
        if isinstance(exc, ProtocolError):
            if self._dead is None:
                self._fail(exc)
        elif not isinstance(exc, TLSError):
            err = InternalError(f"internal error while sending: {exc!r}")
            if self._dead is None:
                self._fail(err)
            raise err from exc

    def _check_alive(self) -> None:
        if self._dead is not None:
            raise ConnectionClosedError(f"the connection is dead: {self._dead}")



def _check_early_data(session: Session | None, data: bytes) -> None:
    if not isinstance(session, Session13):
        raise UsageError("early_data needs a TLS 1.3 session to resume (session=...)")
    if session.max_early_data <= 0:
        raise UsageError("this session's ticket does not allow early data "
                         "(the server sent no early_data extension with it)")
    if len(data) > session.max_early_data:
        raise UsageError(f"{len(data)} bytes of early data exceed the ticket's "
                         f"max_early_data_size of {session.max_early_data}")


_EXT_POST_HANDSHAKE_AUTH = ExtensionType.POST_HANDSHAKE_AUTH
_extension_type = operator.attrgetter("extension_type")


# The messages whose sending or receipt the connection notes (the Finished for tls-unique,
# the ClientHello, our KeyUpdate); by exact type: the codec has no subclasses of them.
_NOTED_MESSAGES = frozenset({Finished, ClientHello, KeyUpdate})


def _offers_pha(hello: ClientHello) -> bool:
    # (`in` over map(attrgetter) walks the extensions in C: a few opcodes, not 5 each.)
    return _EXT_POST_HANDSHAKE_AUTH in map(_extension_type, hello.extensions)


def _ignore_secret(name: str, value: bytes, nss_label: str | None) -> None:
    """``_Channel.secret`` when nobody observes the connection."""


class _Channel:
    """The connection as a handshake state sees it (``HandshakeIO``): private, so the
    public ``TLSConnection`` API carries none of these methods."""

    __slots__ = ("_c", "config", "early_data", "is_client", "now", "observed", "random",
                 "secret", "session")

    def __init__(self, conn: TLSConnection, session: Session | None,
                 early_data: bytes | None) -> None:
        self._c = conn
        config: Any = conn.config  # ClientConfig for ClientIO, ServerConfig for ServerIO
        self.config = config
        self.is_client = conn.is_client
        self.session = session
        self.early_data = early_data
        # The config's own callables and the observer's presence (fixed for the
        # connection's life), not methods around them: the states call them often.
        self.now: Callable[[], float] = config.clock
        self.random: Callable[[int], bytes] = config.random
        # Whether someone observes the trace: build costly details only then.
        self.observed: bool = conn._observer is not None
        # Each traffic secret is announced (SecretTrace); unobserved, a bare no-op.
        self.secret: Callable[[str, bytes, str | None], None] = (
            self._secret if self.observed else _ignore_secret)

    def send_application_data(self, data: bytes) -> None:
        c = self._c
        c._flush_handshake()
        c._key_update_queued = False
        if c._observer is not None:
            for piece in fragment(memoryview(data), c.config.max_fragment):
                c._append_traced(ContentType.APPLICATION_DATA, piece)
            return
        protect = c._write.protect
        for piece in fragment(memoryview(data), c.config.max_fragment):
            c._out.append(protect(ContentType.APPLICATION_DATA, piece))

    def skip_early_data(self, limit: int) -> None:
        self._c._skip_early = limit

    def accept_early_data(self, limit: int) -> None:
        self._c._early_left = limit

    def send_handshake(self, message: object, raw: bytes) -> None:
        c = self._c
        if type(message) in _NOTED_MESSAGES:
            self._note_sent(message, raw)
        c._pending += raw
        if c._observer is not None:
            c._observer(MessageTrace("sent", type(message).__name__, message, len(raw),
                                     c.write_epoch, c.config.clock(), bytes(raw)))

    def _note_sent(self, message: object, raw: bytes) -> None:
        c = self._c
        if isinstance(message, Finished) and not c._first_finished:
            c._first_finished = message.verify_data
        if isinstance(message, ClientHello):
            c._first_finished = b""
            c.client_random = message.random
            c.post_handshake_auth_offered = _offers_pha(message)
            if not c.first_client_hello:
                c.first_client_hello = bytes(raw)
        elif isinstance(message, KeyUpdate):
            c._key_update_queued = True
            if message.request_update == KeyUpdateRequest.UPDATE_REQUESTED:
                c._key_update_asked = True

    def received(self, message: object, raw: bytes) -> None:
        c = self._c
        if type(message) in _NOTED_MESSAGES:
            self._note_received(message, raw)
        if c._observer is not None:
            c._observer(MessageTrace("received", type(message).__name__, message, len(raw),
                                     c.read_epoch, c.config.clock(), bytes(raw)))

    def _note_received(self, message: object, raw: bytes) -> None:
        c = self._c
        if isinstance(message, Finished) and not c._first_finished:
            c._first_finished = message.verify_data
        if isinstance(message, ClientHello) and not c.is_client:
            c.client_random = message.random
            c.post_handshake_auth_offered = _offers_pha(message)
            if not c.first_client_hello:
                c.first_client_hello = bytes(raw)
            # RFC 8446 §4.2.10: the 0-RTT records skipped after a HelloRetryRequest all
            # precede the second ClientHello; nothing after it is skipped.
            c._skip_early = None

    def send_change_cipher_spec(self) -> None:
        c = self._c
        c._flush_handshake()
        c._ccs_owed = False
        c._out.append(_CCS_RECORD)
        if c._observer is not None:
            c._trace(RecordTrace("sent", ContentType.CHANGE_CIPHER_SPEC, Epoch.PLAINTEXT,
                                 False, _CCS_RECORD, b"\x01", c.now()))
            c._trace(MessageTrace("sent", "ChangeCipherSpec", None, 6, c.write_epoch,
                                  c.now(), b"\x01"))

    def owe_change_cipher_spec(self) -> None:
        self._c._ccs_owed = True

    def send_alert(self, level: AlertLevel, description: AlertDescription) -> None:
        self._c._send_alert(level, description)

    def drop_compatibility_ccs(self) -> None:
        c = self._c
        if c.handshake_complete or not (c.is_client or c.client_random):
            raise UnexpectedMessage("change_cipher_spec outside the TLS 1.3 handshake")
        c.received_ccs += 1
        if c.received_ccs > _MAX_CCS:
            # The RFC sets no number; a peer sending many is flooding us, not complying.
            raise UnexpectedMessage(f"more than {_MAX_CCS} change_cipher_spec records")

    def set_write(self, encrypter: RecordEncrypter, epoch: Epoch) -> None:
        c = self._c
        if c._pending:
            c._flush_handshake()
        c._write = encrypter
        c.write_epoch = epoch

    def set_read(self, decrypter: RecordDecrypter, epoch: Epoch) -> None:
        c = self._c
        c._read = decrypter
        c.read_epoch = epoch
        c._read_changed = True
        c._reader.max_ciphertext = decrypter.max_ciphertext

    def _secret(self, name: str, value: bytes, nss_label: str | None) -> None:
        c = self._c
        if c._observer is not None:
            c._observer(SecretTrace(name, value, c.client_random, nss_label, c.config.clock()))

    def check(self, name: str, ok: bool, detail: str) -> None:
        c = self._c
        if c._observer is not None:
            c._observer(CheckTrace(name, ok, detail, c.config.clock()))

    def note(self, text: str) -> None:
        c = self._c
        if c._observer is not None:
            c._observer(NoteTrace(text, c.config.clock()))

    def key_update_reply_pending(self) -> bool:
        return self._c._key_update_queued

    def emit(self, event: Event) -> None:
        c = self._c
        if isinstance(event, HandshakeComplete):
            if self.early_data is not None and event.info.early_data_accepted is not True:
                event = self._early_data_refused(event)
            c.info = event.info
            if c._observer is not None:
                c._trace(CompleteTrace(event.info, c.now()))
        elif isinstance(event, FalseStart):
            c.false_started = True
        c._events.append(event)

    def _early_data_refused(self, event: HandshakeComplete) -> HandshakeComplete:
        """Client: the early data asked for was rejected, or could not be offered (the
        session expired, another server name, TLS 1.2 chosen): say so, and -- RFC 8446
        §4.2.10, it is the application's to resend -- send it now unless told not to."""
        data = self.early_data
        assert data is not None
        if event.info.early_data_accepted is None:
            event = HandshakeComplete(replace(event.info, early_data_accepted=False))
        if self.config.resend_rejected_early_data:
            self.note(f"sending the {len(data)} bytes of early data after the handshake")
            self.send_application_data(data)
        return event

    def handshake_done(self) -> None:
        self._c.handshake_complete = True

"""TLSConnection: the sans-IO core.

    conn.receive_data(bytes)   bytes from the peer (b"" means the transport hit EOF)
    conn.next_event()          one Event at a time; NeedData when it must wait
    conn.send_data(bytes)      application data to protect
    conn.data_to_send()        bytes for the wire
    conn.close() / conn.key_update()

This is the ONE place where errors become alerts (design.md §8): any ProtocolError
raised below turns into the alert it names, the connection dies, and the error is raised
to the caller. A fatal alert from the peer raises AlertReceived. After either, the
connection stays dead.
"""

from __future__ import annotations

from collections import deque

from tlsmith.codec.enums import (
    AlertDescription,
    AlertLevel,
    ContentType,
    HandshakeType,
)
from tlsmith.codec.messages import ClientHello
from tlsmith.config import ClientConfig, ServerConfig
from tlsmith.errors import (
    AlertReceived,
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
    HandshakeComplete,
    HandshakeInfo,
    WarningAlert,
)
from tlsmith.handshake.base import State
from tlsmith.handshake.client13 import ClientStart
from tlsmith.handshake.common13 import Connected13
from tlsmith.handshake.server13 import ExpectClientHello
from tlsmith.keylog import KeyLogWriter
from tlsmith.observe import CheckTrace, MessageTrace, NoteTrace, Observer, SecretTrace, TraceRecord
from tlsmith.record.framing import (
    HandshakeReassembler,
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

_MAX_CCS = 2  # one per flight in middlebox-compatibility mode (RFC 8446 §D.4)
_CCS_RECORD = encode_record_header(ContentType.CHANGE_CIPHER_SPEC, 0x0303, 1) + b"\x01"


class TLSConnection:
    """One TLS connection, client or server, chosen by the type of ``config``."""

    def __init__(self, config: ClientConfig | ServerConfig) -> None:
        self.config = config
        self.is_client = isinstance(config, ClientConfig)
        self._reader = RecordReader()
        self._handshake = HandshakeReassembler()
        self._read: RecordDecrypter = PlaintextDecrypter()
        # RFC 8446 §5.1: the first ClientHello may use legacy_record_version 0x0301.
        self._write: RecordEncrypter = PlaintextEncrypter(0x0301 if self.is_client else 0x0303)
        self.read_epoch = "plaintext"
        self.write_epoch = "plaintext"
        self._out: list[bytes] = []  # whole records, joined once in data_to_send()
        self._pending = bytearray()  # handshake bytes not yet framed into records
        self._events: deque[Event] = deque()
        self._dead: TLSError | None = None
        self._read_changed = False
        self._eof = False
        self.handshake_complete = False
        self.peer_closed = False
        self.closed = False
        self.info: HandshakeInfo | None = None
        self.client_random = b""
        self.received_ccs = 0
        observers: list[Observer] = []
        if config.observer is not None:
            observers.append(config.observer)
        if config.keylog:
            observers.append(KeyLogWriter(config.keylog))
        self._observers = tuple(observers)
        self._state: State
        if isinstance(config, ClientConfig):
            self._state = ClientStart.begin(self)  # type: ignore[arg-type]
            self._flush_handshake()
            self._write = PlaintextEncrypter(0x0303)
        else:
            self._state = ExpectClientHello()

    # ------------------------------------------------------------------ public API
    @property
    def state_name(self) -> str:
        return self._state.name

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Bytes from the peer; ``b""`` tells that the transport reached end of file."""
        if not data:
            self._eof = True
        else:
            self._reader.feed(bytes(data))

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
                self._process(record.content_type, record)
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
        self._check_alive()
        if self.write_epoch != "application":
            raise UsageError("application data can be sent only after the handshake")
        if self.closed:
            raise UsageError("send_data() after close()")
        protect = self._write.protect
        append = self._out.append
        for piece in fragment(memoryview(data), self.config.max_fragment):
            append(protect(ContentType.APPLICATION_DATA, piece))

    def data_to_send(self) -> bytes:
        self._flush_handshake()
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
        self._send_alert(AlertLevel.WARNING, AlertDescription.CLOSE_NOTIFY)

    def key_update(self, *, request_peer: bool = True) -> None:
        """Send KeyUpdate and switch to the next write key (RFC 8446 §4.6.3)."""
        self._check_alive()
        if not isinstance(self._state, Connected13):
            raise UsageError("key_update() needs a completed TLS 1.3 handshake")
        self._state.send_key_update(self, request_peer=request_peer)
        self._flush_handshake()

    def exporter(self, label: bytes, context: bytes | None, length: int) -> bytes:
        """RFC 8446 §7.5 keying material exporter."""
        from tlsmith.crypto.schedule13 import export_keying_material

        if not isinstance(self._state, Connected13):
            raise UsageError("the exporter needs a completed TLS 1.3 handshake")
        st = self._state
        return export_keying_material(st.secrets.suite.hash_name, st.exporter_master_secret,
                                      label, context, length)

    # ------------------------------------------------------------- record intake
    def _process(self, outer: ContentType, record: object) -> None:
        from tlsmith.record.framing import Record

        assert isinstance(record, Record)
        if outer == ContentType.CHANGE_CIPHER_SPEC:
            self._change_cipher_spec(record)
            return
        if (outer == ContentType.ALERT and self.read_epoch == "handshake"
                and not self.handshake_complete):
            # A peer that failed before it had keys sends its alert in the clear.
            content_type, payload = ContentType.ALERT, bytes(record.fragment)
        else:
            content_type, payload = self._read.unprotect(record)
        if content_type == ContentType.HANDSHAKE:
            self._handshake.feed(payload)
            self._drain_handshake()
            return
        if self._handshake.has_partial():
            # RFC 8446 §5.1: handshake messages MUST NOT be interleaved with other types.
            raise UnexpectedMessage(f"a {content_type.name} record arrived in the middle of "
                                    "a fragmented handshake message")
        if content_type == ContentType.ALERT:
            self._alert(payload)
        elif content_type == ContentType.APPLICATION_DATA:
            if self.read_epoch != "application":
                raise UnexpectedMessage("application data arrived before the handshake "
                                        "completed")
            if payload and not self.peer_closed:
                self._events.append(ApplicationData(bytes(payload)))
        else:
            raise UnexpectedMessage(f"unexpected record type {content_type.name}")

    def _change_cipher_spec(self, record: object) -> None:
        from tlsmith.record.framing import Record

        assert isinstance(record, Record)
        # RFC 8446 §5: a single 0x01 byte between the first ClientHello and the peer's
        # Finished is dropped; anything else is unexpected_message.
        if bytes(record.fragment) != b"\x01":
            raise UnexpectedMessage("malformed change_cipher_spec record")
        started = self.is_client or self.client_random
        if self.handshake_complete or not started:
            raise UnexpectedMessage("change_cipher_spec outside the TLS 1.3 handshake")
        if self._handshake.has_partial():
            raise UnexpectedMessage("change_cipher_spec inside a fragmented handshake message")
        self.received_ccs += 1
        if self.received_ccs > _MAX_CCS:
            # The RFC sets no number; a peer sending many is flooding us, not complying.
            raise UnexpectedMessage(f"more than {_MAX_CCS} change_cipher_spec records")
        self._trace(MessageTrace("received", "ChangeCipherSpec", None, 6, "plaintext",
                                 self.now()))

    def _drain_handshake(self) -> None:
        while True:
            item = self._handshake.next_message()
            if item is None:
                return
            msg_type, body, raw = item
            state = self._state
            if msg_type not in state.expects:
                raise UnexpectedMessage(
                    f"{HandshakeType(msg_type).name} is not allowed in state {state.name} "
                    f"(expected {' or '.join(sorted(t.name for t in state.expects)) or 'none'})")
            self._read_changed = False
            self._state = state.handle(self, HandshakeType(msg_type), memoryview(body), raw)
            if self._read_changed and self._handshake.has_partial():
                # RFC 8446 §5.1: a key change must fall on a record boundary.
                raise UnexpectedMessage("handshake data after a key change was in the same "
                                        "record as the message before it")

    def _alert(self, payload: bytes) -> None:
        level, description = parse_alert(payload)
        self._trace(MessageTrace("received", "Alert", (level, description), 2,
                                 self.read_epoch, self.now()))
        if description == AlertDescription.CLOSE_NOTIFY:
            self.peer_closed = True
            self._events.append(ConnectionClosed(clean=True))
            return
        if description == AlertDescription.USER_CANCELED:
            self._events.append(WarningAlert(description))
            return
        # RFC 8446 §6.2: every other alert is fatal, whatever level it claims.
        raise AlertReceived(description)

    # --------------------------------------------------------- HandshakeIO side
    def now(self) -> float:
        return self.config.clock()

    def random(self, n: int) -> bytes:
        return self.config.random(n)

    def send_handshake(self, message: object, raw: bytes) -> None:
        if isinstance(message, ClientHello):
            self.client_random = message.random
        self._pending += raw
        self._trace(MessageTrace("sent", type(message).__name__, message, len(raw),
                                 self.write_epoch, self.now()))

    def received(self, message: object, raw: bytes) -> None:
        if isinstance(message, ClientHello) and not self.is_client:
            self.client_random = message.random
        self._trace(MessageTrace("received", type(message).__name__, message, len(raw),
                                 self.read_epoch, self.now()))

    def send_change_cipher_spec(self) -> None:
        self._flush_handshake()
        self._out.append(_CCS_RECORD)
        self._trace(MessageTrace("sent", "ChangeCipherSpec", None, 6, "plaintext", self.now()))

    def set_write(self, encrypter: RecordEncrypter, epoch: str) -> None:
        self._flush_handshake()
        self._write = encrypter
        self.write_epoch = epoch

    def set_read(self, decrypter: RecordDecrypter, epoch: str) -> None:
        self._read = decrypter
        self.read_epoch = epoch
        self._read_changed = True
        self._reader.max_ciphertext = decrypter.max_ciphertext

    def secret(self, name: str, value: bytes, nss_label: str | None) -> None:
        self._trace(SecretTrace(name, value, self.client_random, nss_label, self.now()))

    def check(self, name: str, ok: bool, detail: str) -> None:
        self._trace(CheckTrace(name, ok, detail, self.now()))

    def note(self, text: str) -> None:
        self._trace(NoteTrace(text, self.now()))

    def emit(self, event: Event) -> None:
        if isinstance(event, HandshakeComplete):
            self.info = event.info
        self._events.append(event)

    def handshake_done(self) -> None:
        self.handshake_complete = True

    # ----------------------------------------------------------------- internals
    def _trace(self, record: TraceRecord) -> None:
        for observer in self._observers:
            observer(record)

    def _flush_handshake(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, bytearray()
        protect = self._write.protect
        for piece in fragment(memoryview(pending), self.config.max_fragment):
            self._out.append(protect(ContentType.HANDSHAKE, piece))

    def _send_alert(self, level: AlertLevel, description: AlertDescription) -> None:
        self._flush_handshake()
        self._out.append(self._write.protect(ContentType.ALERT, bytes((level, description))))
        self._trace(MessageTrace("sent", "Alert", (level, description), 2, self.write_epoch,
                                 self.now()))

    def _fail(self, exc: ProtocolError) -> None:
        """Turn an error into its alert; the connection is dead afterwards."""
        self._dead = exc
        self._pending.clear()
        self._events.clear()  # nothing decided before the fatal error is reported
        self.note(f"fatal: {exc}")
        try:
            self._send_alert(AlertLevel.FATAL, exc.alert)
        except Exception:  # the write side itself is broken; nothing more to send
            pass

    def _check_alive(self) -> None:
        if self._dead is not None:
            raise ConnectionClosedError(f"the connection is dead: {self._dead}")


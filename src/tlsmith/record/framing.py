"""Record framing: bytes <-> records, records <-> handshake messages. No cryptography.

``RecordReader`` cuts the incoming byte stream into records (RFC 8446 §5.1, RFC 5246
§6.2.1); ``HandshakeReassembler`` joins handshake fragments into whole messages;
``fragment`` splits outgoing data into record-sized pieces. "Need more data" is
``None``, never an exception.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from tlsmith.codec.enums import AlertDescription, AlertLevel, ContentType, HandshakeType
from tlsmith.errors import DecodeError, IllegalParameter, RecordOverflow, UnexpectedMessage

MAX_PLAINTEXT = 2**14
"""RFC 8446 §5.1 / RFC 5246 §6.2.1: TLSPlaintext.length limit."""
MAX_CIPHERTEXT_13 = 2**14 + 256
"""RFC 8446 §5.2: TLSCiphertext.length limit."""
MAX_CIPHERTEXT_12 = 2**14 + 2048
"""RFC 5246 §6.2.3: TLSCiphertext.length limit."""

RECORD_HEADER_LEN = 5
HANDSHAKE_HEADER_LEN = 4
DEFAULT_MAX_HANDSHAKE_MESSAGE = 65536 + HANDSHAKE_HEADER_LEN

_HEADER = struct.Struct(">BHH")
_KNOWN_CONTENT_TYPES: dict[int, ContentType] = {
    t.value: t
    for t in (ContentType.CHANGE_CIPHER_SPEC, ContentType.ALERT, ContentType.HANDSHAKE,
              ContentType.APPLICATION_DATA)
}

Bytes = bytes | bytearray | memoryview


@dataclass(slots=True)
class Record:
    """One record as read from the wire (still protected, if protection is on)."""

    content_type: ContentType
    legacy_version: int
    fragment: bytes | memoryview


def encode_record_header(content_type: ContentType | int, legacy_version: int,
                         length: int) -> bytes:
    """The 5-byte TLSPlaintext/TLSCiphertext header."""
    return _HEADER.pack(content_type, legacy_version, length)


class RecordReader:
    """Splits a byte stream into records.

    ``max_ciphertext`` is the largest TLSPlaintext/TLSCiphertext.length accepted; the
    connection sets it when record protection changes (the decrypters check their own
    limit again). A header announcing more is ``RecordOverflow`` as soon as the header
    arrives, without buffering the body.

    Received data is kept as a queue of immutable chunks. A record lying inside one
    chunk is returned as a memoryview of it (no copy); only a record split across
    chunks is joined (one copy of that record). Every byte is copied at most once, so
    the work is linear in the data whatever the chunk sizes.
    """

    __slots__ = ("_chunks", "_size", "max_ciphertext")

    def __init__(self, max_ciphertext: int = MAX_CIPHERTEXT_12) -> None:
        self._chunks: deque[memoryview] = deque()
        self._size = 0
        self.max_ciphertext = max_ciphertext

    def feed(self, data: Bytes) -> None:
        """Add bytes received from the transport (mutable buffers are copied)."""
        if not data:
            return
        chunk = memoryview(data if isinstance(data, bytes) else bytes(data))
        self._chunks.append(chunk)
        self._size += len(chunk)

    def buffered(self) -> int:
        """Bytes received but not yet returned in a record."""
        return self._size

    def _peek_header(self) -> tuple[int, int, int]:
        first = self._chunks[0]
        if len(first) >= RECORD_HEADER_LEN:
            return _HEADER.unpack_from(first)
        head = bytearray()
        for chunk in self._chunks:
            head += chunk[: RECORD_HEADER_LEN - len(head)]
            if len(head) == RECORD_HEADER_LEN:
                break
        return _HEADER.unpack_from(head)

    def _take(self, n: int) -> bytes | memoryview:
        """Remove and return the next ``n`` buffered bytes (n <= buffered())."""
        if n == 0:
            return b""
        chunks = self._chunks
        self._size -= n
        first = chunks[0]
        if len(first) > n:
            chunks[0] = first[n:]
            return first[:n]
        if len(first) == n:
            chunks.popleft()
            return first
        parts: list[memoryview] = []
        while n:
            chunk = chunks.popleft()
            if len(chunk) > n:
                chunks.appendleft(chunk[n:])
                chunk = chunk[:n]
            parts.append(chunk)
            n -= len(chunk)
        return b"".join(parts)

    def next_record(self) -> Record | None:
        """The next complete record, or None if more data is needed."""
        if self._size < RECORD_HEADER_LEN:
            return None
        type_byte, version, length = self._peek_header()
        content_type = _KNOWN_CONTENT_TYPES.get(type_byte)
        if content_type is None:
            # RFC 8446 §5: an unexpected record type MUST be answered with
            # unexpected_message (RFC 5246 §6: likewise for TLS 1.2).
            raise UnexpectedMessage(f"record of unknown content type {type_byte}")
        if length > self.max_ciphertext:
            # RFC 8446 §5.1/§5.2, RFC 5246 §6.2: record_overflow.
            raise RecordOverflow(
                f"{content_type.name.lower()} record of {length} bytes exceeds the limit of "
                f"{self.max_ciphertext}"
            )
        if self._size < RECORD_HEADER_LEN + length:
            return None
        self._take(RECORD_HEADER_LEN)
        return Record(content_type, version, self._take(length))


class HandshakeReassembler:
    """Joins handshake-record payloads into messages (RFC 8446 §5.1).

    ``next_message`` returns (type, body, raw) where ``raw`` is the whole message with
    its 4-byte header (for the transcript) and ``body`` a view into it.
    """

    __slots__ = ("_buf", "_off", "max_message_size")

    def __init__(self, max_message_size: int = DEFAULT_MAX_HANDSHAKE_MESSAGE) -> None:
        self._buf = bytearray()
        self._off = 0
        self.max_message_size = max_message_size

    def feed(self, fragment: Bytes) -> None:
        """Add the payload of one handshake record."""
        if not fragment:
            # RFC 8446 §5.1: zero-length Handshake fragments MUST NOT be sent.
            raise UnexpectedMessage("zero-length handshake record")
        if self._off:
            del self._buf[: self._off]
            self._off = 0
        self._buf += fragment

    def next_message(self) -> tuple[HandshakeType, memoryview, bytes] | None:
        """The next complete message, or None if more fragments are needed."""
        buf = self._buf
        off = self._off
        available = len(buf) - off
        if available < HANDSHAKE_HEADER_LEN:
            return None
        length = int.from_bytes(buf[off + 1 : off + 4], "big")
        total = HANDSHAKE_HEADER_LEN + length
        if total > self.max_message_size:
            # Local policy limit. OpenSSL answers an over-long message with
            # illegal_parameter (a field outside the range we accept, RFC 8446 §6.2).
            raise IllegalParameter(
                f"handshake message of {total} bytes exceeds the limit of "
                f"{self.max_message_size}"
            )
        if available < total:
            return None
        with memoryview(buf) as view:
            raw = view[off : off + total].tobytes()
        self._off = off + total
        if self._off == len(buf):
            buf.clear()
            self._off = 0
        return HandshakeType(raw[0]), memoryview(raw)[HANDSHAKE_HEADER_LEN:], raw

    def has_partial(self) -> bool:
        """True if any bytes are buffered that ``next_message`` has not returned.

        The connection drains ``next_message`` first; a True answer then means a message
        is split across records, so a record of another type in between, or a key change
        now, is ``UnexpectedMessage`` (RFC 8446 §5.1)."""
        return len(self._buf) > self._off

    def buffered(self) -> int:
        return len(self._buf) - self._off


def fragment(data: Bytes, max_fragment: int = MAX_PLAINTEXT) -> Iterator[memoryview]:
    """Split outgoing data into pieces of at most ``max_fragment`` bytes (no copies).

    Empty data yields nothing: callers that want an empty application-data record
    (RFC 8446 §5.1 permits them) send it explicitly.
    """
    if max_fragment <= 0:
        raise ValueError("max_fragment must be positive")
    view = memoryview(data)
    for start in range(0, len(view), max_fragment):
        yield view[start : start + max_fragment]


def parse_alert(fragment: Bytes) -> tuple[AlertLevel, AlertDescription]:
    """The (level, description) of an alert record's payload."""
    if len(fragment) != 2:
        # RFC 8446 §5.1: an alert record holds exactly one alert, never fragmented or
        # coalesced; any other length does not decode (RFC 8446 §6.2 decode_error).
        raise DecodeError(f"alert record of {len(fragment)} byte(s), expected exactly 2")
    return AlertLevel(fragment[0]), AlertDescription(fragment[1])

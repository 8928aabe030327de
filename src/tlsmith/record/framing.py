"""Record framing: bytes <-> records, records <-> handshake messages. No cryptography.

``RecordReader`` cuts the incoming byte stream into records (RFC 8446 §5.1, RFC 5246
§6.2.1); ``HandshakeReassembler`` joins handshake fragments into whole messages;
``fragment`` splits outgoing data into record-sized pieces. "Need more data" is
``None``, never an exception.

Handshake size limits are checked on the 4-byte header, before any body is buffered:

* a length the message's structure cannot have is ``DecodeError`` (RFC 8446 §6.2:
  "the length of the message was incorrect"): fixed-length messages (HelloRequest,
  ServerHelloDone, EndOfEarlyData: 0; KeyUpdate: 1; Finished: 12..64) and the largest
  body each variable-length message's vectors allow (``HANDSHAKE_BODY_RANGES``);
* a length above local policy is ``IllegalParameter`` (as OpenSSL answers an excessive
  message): ``DEFAULT_MAX_HANDSHAKE_BODY`` per type (Certificate, CompressedCertificate
  256 KiB, CertificateStatus 64 KiB, the rest their structural maximum),
  ``DEFAULT_MAX_UNKNOWN_HANDSHAKE_BODY`` (16 KiB) for any other type, and the optional
  overall ``max_message_size``.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

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
MAX_HANDSHAKE_BODY = 2**24 - 1
"""RFC 8446 §4 / RFC 5246 §7.4: Handshake.length is a uint24."""
DEFAULT_MAX_HANDSHAKE_MESSAGE = HANDSHAKE_HEADER_LEN + MAX_HANDSHAKE_BODY
"""Default overall cap (header included): none beyond what the header can express; the
per-type limits decide."""

_U8, _U16, _U24 = 2**8 - 1, 2**16 - 1, 2**24 - 1
_H = HandshakeType

# Largest (and for fixed-length messages, smallest) body each message's structure allows
# (TLS 1.2 and 1.3 forms: the larger). "v<a..b>" below is a vector with a b-byte ceiling.
_CLIENT_HELLO_MAX = (
    2 + 32  # legacy_version, random (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2)
    + 1 + 32  # legacy_session_id<0..32>
    + 2 + (_U16 - 1)  # cipher_suites<2..2^16-2>
    + 1 + _U8  # legacy_compression_methods<1..2^8-1>
    + 2 + _U16  # extensions<8..2^16-1>
)  # = 131396
_SERVER_HELLO_MAX = 2 + 32 + 1 + 32 + 2 + 1 + 2 + _U16  # RFC 8446 §4.1.3: 65607
# RFC 8446 §4.6.1: lifetime, age_add, nonce<0..255>, ticket<1..2^16-1>,
# extensions<0..2^16-2> (RFC 5077 §3.3's TLS 1.2 form is smaller).
_NEW_SESSION_TICKET_MAX = 4 + 4 + 1 + _U8 + 2 + _U16 + 2 + (_U16 - 1)  # 131337
# RFC 5246 §7.4.4: certificate_types<1..2^8-1>, supported_signature_algorithms
# <2..2^16-2>, certificate_authorities<0..2^16-1> (RFC 8446 §4.3.2's form is smaller).
_CERTIFICATE_REQUEST_MAX = 1 + _U8 + 2 + (_U16 - 1) + 2 + _U16  # 131329
# RFC 5246 §7.4.3: DHE dh_p, dh_g, dh_Ys<1..2^16-1>, then a digitally-signed struct
# (scheme + signature<0..2^16-1>).
_SERVER_KEY_EXCHANGE_MAX = 3 * (2 + _U16) + 2 + 2 + _U16  # 262150
# RFC 4279 §3/§4: psk_identity<0..2^16-1>, then dh_Yc or EncryptedPreMasterSecret
# <0..2^16-1> (RFC 5246 §7.4.7's forms alone are smaller).
_CLIENT_KEY_EXCHANGE_MAX = 2 * (2 + _U16)  # 131074

HANDSHAKE_BODY_RANGES: Mapping[HandshakeType, tuple[int, int]] = MappingProxyType({
    _H.HELLO_REQUEST: (0, 0),  # RFC 5246 §7.4.1.1: struct { } HelloRequest
    _H.CLIENT_HELLO: (0, _CLIENT_HELLO_MAX),
    _H.SERVER_HELLO: (0, _SERVER_HELLO_MAX),
    _H.HELLO_VERIFY_REQUEST: (0, 2 + 1 + _U8),  # RFC 6347 §4.2.1: version, cookie<0..2^8-1>
    _H.NEW_SESSION_TICKET: (0, _NEW_SESSION_TICKET_MAX),
    _H.END_OF_EARLY_DATA: (0, 0),  # RFC 8446 §4.5: struct {} EndOfEarlyData
    _H.ENCRYPTED_EXTENSIONS: (0, 2 + _U16),  # RFC 8446 §4.3.1: extensions<0..2^16-1>
    _H.CERTIFICATE: (0, MAX_HANDSHAKE_BODY),  # RFC 8446 §4.4.2: certificate_list<0..2^24-1>
    _H.SERVER_KEY_EXCHANGE: (0, _SERVER_KEY_EXCHANGE_MAX),
    _H.CERTIFICATE_REQUEST: (0, _CERTIFICATE_REQUEST_MAX),
    _H.SERVER_HELLO_DONE: (0, 0),  # RFC 5246 §7.4.5: struct { } ServerHelloDone
    _H.CERTIFICATE_VERIFY: (0, 2 + 2 + _U16),  # RFC 8446 §4.4.3: scheme, signature<0..2^16-1>
    _H.CLIENT_KEY_EXCHANGE: (0, _CLIENT_KEY_EXCHANGE_MAX),
    # RFC 8446 §4.4.4: verify_data[Hash.length] (32 or 48 here); RFC 5246 §7.4.9: 12 unless
    # the suite says otherwise. Any hash up to SHA-512 fits 12..64.
    _H.FINISHED: (12, 64),
    _H.CERTIFICATE_URL: (0, 1 + 2 + _U16),  # RFC 6066 §5: type, url_and_hash_list<1..2^16-1>
    _H.CERTIFICATE_STATUS: (0, MAX_HANDSHAKE_BODY),  # RFC 6066 §8: response<1..2^24-1>
    _H.KEY_UPDATE: (1, 1),  # RFC 8446 §4.6.3: one KeyUpdateRequest byte
    _H.COMPRESSED_CERTIFICATE: (0, MAX_HANDSHAKE_BODY),  # RFC 8879 §4: message<1..2^24-1>
    _H.MESSAGE_HASH: (0, 64),  # RFC 8446 §4.4.1: Hash(ClientHello1); never on the wire
    # draft-agl-tls-nextprotoneg §3: selected_protocol<0..255>, padding<0..255>
    _H.NEXT_PROTOCOL: (2, 2 + 2 * _U8),
})
"""Structural (minimum, maximum) body length per type; outside it: ``DecodeError``.
Types not listed may have any length the header can express."""

DEFAULT_MAX_HANDSHAKE_FRAGMENTS = 64
"""Records one handshake message may span (``Limits.max_handshake_fragments_per_message``),
or one per ``MIN_FRAGMENT_AVERAGE`` bytes of the message if that is more."""
MIN_FRAGMENT_AVERAGE = 64
"""RFC 8449 §4: the smallest record_size_limit is 64 bytes, so a peer that must fragment
a message more finely than that is not complying but flooding us."""

DEFAULT_MAX_UNKNOWN_HANDSHAKE_BODY = 2**14
"""Local cap for a type not in ``DEFAULT_MAX_HANDSHAKE_BODY`` (unassigned, reserved
hello_retry_request(6), unsupported supplemental_data(23)): the state machine refuses
those anyway, so buffer no more than one record's worth."""

DEFAULT_MAX_HANDSHAKE_BODY: Mapping[HandshakeType, int] = MappingProxyType({
    **{t: hi for t, (_lo, hi) in HANDSHAKE_BODY_RANGES.items()},
    # Local policy where the structure allows up to 16 MiB. Chains of RSA-4096 or
    # ML-DSA certificates with SCTs stay well below 256 KiB (OpenSSL: 100 KiB).
    _H.CERTIFICATE: 2**18,
    _H.COMPRESSED_CERTIFICATE: 2**18,
    _H.CERTIFICATE_STATUS: 2**16,  # one stapled OCSP response
})
"""Default local cap on the body length per type; above it: ``IllegalParameter``.
Where no policy applies this is the structural maximum of ``HANDSHAKE_BODY_RANGES``."""

_HEADER = struct.Struct(">BHH")
_unpack_header_from = _HEADER.unpack_from
_unpack_u32_from = struct.Struct(">I").unpack_from
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
        size = self._size
        if size < RECORD_HEADER_LEN:
            return None
        first = self._chunks[0]
        n = len(first)
        if n >= RECORD_HEADER_LEN:
            type_byte, version, length = _unpack_header_from(first)
        else:
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
        total = RECORD_HEADER_LEN + length
        if size < total:
            return None
        if n > total and length:
            # The whole record lies in the first chunk, more follows (the common case).
            self._size = size - total
            self._chunks[0] = first[total:]
            return Record(content_type, version, first[RECORD_HEADER_LEN:total])
        if n == total and length:
            self._size = size - total
            self._chunks.popleft()
            return Record(content_type, version, first[RECORD_HEADER_LEN:])
        if n > RECORD_HEADER_LEN:  # (the header in the first chunk: _take(5) in short)
            self._size = size - RECORD_HEADER_LEN
            self._chunks[0] = first[RECORD_HEADER_LEN:]
        else:
            self._take(RECORD_HEADER_LEN)
        return Record(content_type, version, self._take(length))


def _limits_for(max_body: Mapping[HandshakeType, int] | None
                ) -> dict[int, tuple[int, int, int]]:
    caps = {**DEFAULT_MAX_HANDSHAKE_BODY, **(max_body or {})}
    return {int(t): (*HANDSHAKE_BODY_RANGES.get(t, (0, MAX_HANDSHAKE_BODY)), cap)
            for t, cap in caps.items()}


_DEFAULT_LIMITS = _limits_for(None)


def _table_for(limits: dict[int, tuple[int, int, int]], max_message_size: int
               ) -> dict[int, tuple[HandshakeType, int, int]]:
    """type byte -> (type, smallest body, largest body accepted by every limit): the
    one check ``next_message`` makes; outside it, ``_check_length`` says why."""
    overall = max_message_size - HANDSHAKE_HEADER_LEN
    return {t: (HandshakeType(t), lo, min(hi, cap, overall))
            for t, (lo, hi, cap) in limits.items()}


_DEFAULT_TABLE = _table_for(_DEFAULT_LIMITS, DEFAULT_MAX_HANDSHAKE_MESSAGE)


class HandshakeReassembler:
    """Joins handshake-record payloads into messages (RFC 8446 §5.1).

    ``next_message`` returns (type, body, raw) where ``raw`` is the whole message with
    its 4-byte header (for the transcript) and ``body`` a view into it.

    Lengths are checked as soon as a header is complete (see the module docstring).
    ``max_body`` replaces entries of ``DEFAULT_MAX_HANDSHAKE_BODY`` (a type's structural
    range still applies); ``max_unknown_body`` is the cap for unlisted types;
    ``max_message_size`` caps every message, header included.

    ``max_fragments``: a message may span this many records, or one per
    ``MIN_FRAGMENT_AVERAGE`` bytes of its length if that is more; beyond it,
    ``UnexpectedMessage`` naming ``Limits.max_handshake_fragments_per_message`` (RFC 8446
    §5.1 lets a peer fragment freely; 65,540 one-byte records for one ClientHello are a
    flood, not fragmentation).
    """

    __slots__ = ("_buf", "_frags", "_limits", "_max_message_size", "_off", "_table",
                 "max_fragments", "max_unknown_body")

    def __init__(
        self,
        max_message_size: int = DEFAULT_MAX_HANDSHAKE_MESSAGE,
        *,
        max_body: Mapping[HandshakeType, int] | None = None,
        max_unknown_body: int = DEFAULT_MAX_UNKNOWN_HANDSHAKE_BODY,
        max_fragments: int = DEFAULT_MAX_HANDSHAKE_FRAGMENTS,
    ) -> None:
        self._buf = bytearray()
        self._off = 0
        self._frags = 0  # records the buffered partial message has used so far
        self.max_fragments = max_fragments
        self.max_unknown_body = max_unknown_body
        # type -> (structural minimum, structural maximum, policy cap); the default tables
        # are built once per process, not once per connection.
        self._limits = _limits_for(max_body) if max_body else _DEFAULT_LIMITS
        self._max_message_size = max_message_size
        self._table = (_DEFAULT_TABLE if not max_body
                       and max_message_size == DEFAULT_MAX_HANDSHAKE_MESSAGE
                       else _table_for(self._limits, max_message_size))

    @property
    def max_message_size(self) -> int:
        """The overall cap on one message, header included (settable)."""
        return self._max_message_size

    @max_message_size.setter
    def max_message_size(self, value: int) -> None:
        self._max_message_size = value
        self._table = _table_for(self._limits, value)

    def _check_length(self, msg_type: int, length: int) -> None:
        """Refuse a header whose length the type cannot have, or that exceeds a cap."""
        limits = self._limits.get(msg_type)
        if limits is None:
            minimum, maximum, cap = 0, MAX_HANDSHAKE_BODY, self.max_unknown_body
        else:
            minimum, maximum, cap = limits
        if not minimum <= length <= maximum:
            # RFC 8446 §6.2 decode_error: "the length of the message was incorrect".
            allowed = str(maximum) if minimum == maximum else f"{minimum}..{maximum}"
            raise DecodeError(
                f"{_type_name(msg_type)} message of {length} body byte(s); its structure "
                f"allows {allowed}"
            )
        cap = min(cap, self.max_message_size - HANDSHAKE_HEADER_LEN)
        if length > cap:
            # Local policy limit. OpenSSL answers an over-long message with
            # illegal_parameter (a field outside the range we accept, RFC 8446 §6.2).
            raise IllegalParameter(
                f"{_type_name(msg_type)} message of {HANDSHAKE_HEADER_LEN + length} bytes "
                f"exceeds the limit of {HANDSHAKE_HEADER_LEN + cap}"
            )

    def feed(self, fragment: Bytes) -> None:
        """Add the payload of one handshake record."""
        if not fragment:
            # RFC 8446 §5.1: zero-length Handshake fragments MUST NOT be sent.
            raise UnexpectedMessage("zero-length handshake record")
        buf = self._buf
        if len(buf) > self._off:  # this record continues a partial message
            self._frags += 1
            if self._frags > self.max_fragments:
                self._check_fragments()
        else:
            self._frags = 1
        if self._off:
            del buf[: self._off]
            self._off = 0
        buf += fragment

    def _check_fragments(self) -> None:
        """Past the fixed count: allow one record per MIN_FRAGMENT_AVERAGE bytes of the
        message, whose length is known once its 4-byte header is buffered (until then,
        at most three more records can arrive: each adds at least one byte)."""
        buf, off = self._buf, self._off
        if len(buf) - off < HANDSHAKE_HEADER_LEN:
            return
        total = HANDSHAKE_HEADER_LEN + int.from_bytes(buf[off + 1 : off + 4], "big")
        allowed = max(self.max_fragments, -(-total // MIN_FRAGMENT_AVERAGE))
        if self._frags > allowed:
            raise UnexpectedMessage(
                f"a {_type_name(buf[off])} message of {total} bytes spread over more than "
                f"{allowed} records (limit Limits.max_handshake_fragments_per_message="
                f"{self.max_fragments}, or one record per {MIN_FRAGMENT_AVERAGE} bytes)")

    def next_message(self) -> tuple[HandshakeType, memoryview, bytes] | None:
        """The next complete message, or None if more fragments are needed."""
        buf = self._buf
        off = self._off
        size = len(buf)
        if size - off < HANDSHAKE_HEADER_LEN:
            return None
        header = _unpack_u32_from(buf, off)[0]  # msg_type (8 bits), length (24 bits)
        length = header & 0xFFFFFF
        entry = self._table.get(header >> 24)
        if entry is None or not entry[1] <= length <= entry[2]:
            self._check_length(header >> 24, length)  # (raises, or allows an unlisted type)
        end = off + HANDSHAKE_HEADER_LEN + length
        if size < end:
            return None
        if end == size:  # the buffer ends with this message
            raw = bytes(buf) if off == 0 else bytes(buf[off:])
            buf.clear()
            self._off = 0
            self._frags = 0
        else:
            raw = bytes(buf[off:end])
            self._off = end
            self._frags = 1  # the next message began in the last record fed
        return (entry[0] if entry is not None else HandshakeType(raw[0]),
                memoryview(raw)[HANDSHAKE_HEADER_LEN:], raw)

    def has_partial(self) -> bool:
        """True if any bytes are buffered that ``next_message`` has not returned.

        The connection drains ``next_message`` first; a True answer then means a message
        is split across records, so a record of another type in between, or a key change
        now, is ``UnexpectedMessage`` (RFC 8446 §5.1)."""
        return len(self._buf) > self._off

    def buffered(self) -> int:
        return len(self._buf) - self._off


def _type_name(msg_type: int) -> str:
    t = HandshakeType(msg_type)
    return t.name.lower() if t.known else str(t)


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

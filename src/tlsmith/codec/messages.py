"""Handshake messages: the TLS 1.3 ones (RFC 8446 §4) and those whose wire form TLS 1.2
shares (ClientHello, ServerHello, CertificateVerify, Finished). TLS 1.2-only forms are in
``messages12.py``.

Each message is a frozen dataclass with ``msg_type`` (ClassVar), ``serialize_body()``,
``serialize()`` (with the 4-byte handshake header) and ``parse_body(body)``, which must
consume the body exactly. Unknown code points and extensions survive parse -> serialize,
so a parsed message reserializes byte for byte.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import ClassVar, Self, TypeAlias

from tlsmith.codec.buffer import Reader, Writer
from tlsmith.codec.enums import (
    CipherSuite,
    CompressionMethod,
    HandshakeType,
    KeyUpdateRequest,
    ProtocolVersion,
    SignatureScheme,
    member,
)
from tlsmith.codec.extensions import (
    Extension,
    ExtensionContext,
    PreSharedKeyClientHello,
    parse_extensions,
    serialize_extensions,
)
from tlsmith.codec.extensions_base import (
    enum_tuple,
    read_u8_enums,
    read_u16_enums,
    u16_enum_list,
    write_u8s,
    write_u16s,
)
from tlsmith.codec.messages12 import (
    Certificate12,
    CertificateRequest12,
    CertificateStatus,
    ClientKeyExchangeDHE,
    ClientKeyExchangeECDHE,
    ClientKeyExchangeRSA,
    HelloRequest,
    MessageBase,
    NewSessionTicket12,
    ServerHelloDone,
    ServerKeyExchangeDHE,
    ServerKeyExchangeECDHE,
)
from tlsmith.errors import DecodeError, IllegalParameter
from tlsmith.frozen import fast_init

__all__ = [
    "DOWNGRADE_TLS11",
    "DOWNGRADE_TLS12",
    "HELLO_RETRY_REQUEST_RANDOM",
    "Certificate",
    "Certificate12",
    "CertificateEntry",
    "CertificateRequest",
    "CertificateRequest12",
    "CertificateStatus",
    "CertificateVerify",
    "ClientHello",
    "ClientKeyExchangeDHE",
    "ClientKeyExchangeECDHE",
    "ClientKeyExchangeRSA",
    "EncryptedExtensions",
    "EndOfEarlyData",
    "Finished",
    "HandshakeMessage",
    "HelloRequest",
    "KeyUpdate",
    "MessageBase",
    "NewSessionTicket",
    "NewSessionTicket12",
    "RawHandshakeMessage",
    "ServerHello",
    "ServerHelloDone",
    "ServerKeyExchangeDHE",
    "ServerKeyExchangeECDHE",
    "decode_handshake",
    "message_hash",
    "parse_handshake_header",
]

_H = HandshakeType
# Header bytes of the messages whose ``serialize`` writes its header itself.
_FINISHED_TYPE = bytes((_H.FINISHED,))
_SERVER_HELLO_TYPE = bytes((_H.SERVER_HELLO,))
_CERTIFICATE_VERIFY_TYPE = bytes((_H.CERTIFICATE_VERIFY,))
_NEW_SESSION_TICKET_TYPE = bytes((_H.NEW_SESSION_TICKET,))
_LENGTH8: tuple[bytes, ...] = tuple(bytes((i,)) for i in range(256))
_CH = ExtensionContext.CLIENT_HELLO

# RFC 8446 §4.1.3: a HelloRetryRequest is a ServerHello whose random is SHA-256 of
# "HelloRetryRequest".
HELLO_RETRY_REQUEST_RANDOM = bytes.fromhex(
    "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c"
)
# RFC 8446 §4.1.3: the last 8 bytes of a TLS 1.3 server's ServerHello.random when it
# negotiates TLS 1.2 (DOWNGRADE_TLS12) or TLS 1.1 and below (DOWNGRADE_TLS11).
DOWNGRADE_TLS12 = b"DOWNGRD\x01"
DOWNGRADE_TLS11 = b"DOWNGRD\x00"


def _check_hello_fields(random: bytes, session_id: bytes) -> None:
    if len(random) != 32:
        raise ValueError(f"random must be 32 bytes, not {len(random)}")
    if len(session_id) > 32:
        raise ValueError(f"a session id is at most 32 bytes, not {len(session_id)}")


# The wire form of a ClientHello's cipher_suites and legacy_compression_methods, by the
# two tuples (bounded: emptied when full).
_HELLO_LISTS: dict[tuple[tuple[int, ...], tuple[int, ...]], bytes] = {}
_NULL_COMPRESSION = (CompressionMethod.NULL,)


@fast_init
@dataclass(frozen=True, slots=True)
class ClientHello(MessageBase):
    """RFC 8446 §4.1.2 (and RFC 5246 §7.4.1.2): legacy_version; random[32];
    legacy_session_id<0..32>; cipher_suites<2..2^16-2>; legacy_compression_methods
    <1..2^8-1>; extensions. A hello without an extensions block at all (SSLv3 .. TLS 1.2,
    RFC 5246 §7.4.1.2) parses with ``has_extensions_block=False``.

    The RFC 8446 minimum extensions length (8) is not enforced: TLS 1.2 allows an empty
    block, and a TLS 1.3 hello missing its mandatory extensions is the handshake's
    missing_extension, not a decode error.
    """

    msg_type: ClassVar[HandshakeType] = _H.CLIENT_HELLO
    legacy_version: ProtocolVersion
    random: bytes
    legacy_session_id: bytes
    cipher_suites: tuple[CipherSuite, ...]
    legacy_compression_methods: tuple[int, ...]
    extensions: tuple[Extension, ...]
    has_extensions_block: bool = True

    def write_body(self, w: Writer) -> None:
        _check_hello_fields(self.random, self.legacy_session_id)
        w.u16(self.legacy_version)
        w.raw(self.random)
        w.opaque(1, self.legacy_session_id)
        suites, compression = self.cipher_suites, self.legacy_compression_methods
        # A client sends the same two lists in every hello: their bytes are kept.
        cacheable = type(suites) is tuple and type(compression) is tuple
        lists = _HELLO_LISTS.get((suites, compression)) if cacheable else None
        if lists is None:
            start = len(w)
            write_u16s(w, 2, suites)
            write_u8s(w, 1, compression)
            if cacheable and len(suites) <= 256:
                if len(_HELLO_LISTS) >= 64:
                    _HELLO_LISTS.clear()
                _HELLO_LISTS[suites, compression] = bytes(w._buf[start:])
        else:
            w.raw(lists)
        if self.has_extensions_block:
            serialize_extensions(w, self.extensions)
        elif self.extensions:
            raise ValueError("extensions given but has_extensions_block is False")

    @classmethod
    def parse_body(cls, body: bytes | memoryview) -> Self:
        r = Reader(body, "ClientHello")
        # Fast path: the fixed fields read in place when every length fits (the checks
        # below, made at once); anything else is read field by field, which says what is
        # wrong. legacy_session_id<0..32>, cipher_suites<2..2^16-2> (16-bit values),
        # legacy_compression_methods<1..2^8-1>.
        data, n = r._data, r._end
        if n > 37 and data[34] <= 32:
            at = 35 + data[34]  # the cipher_suites length
            size = data[at] << 8 | data[at + 1] if at + 1 < n else 1
            comp = at + 2 + size  # the compression methods' length
            if not size & 1 and size and comp < n and data[comp] and (
                    comp + 1 + data[comp] <= n):
                r._pos = comp + 1 + data[comp]
                compression = (_NULL_COMPRESSION if data[comp] == 1 and not data[comp + 1]
                               else enum_tuple(CompressionMethod, data[comp + 1:r._pos]))
                version = member(ProtocolVersion, data[0] << 8 | data[1])
                random = bytes(data[2:34])
                session_id = bytes(data[35:at])
                suites = u16_enum_list(data[at + 2:comp], CipherSuite)
                if r._pos == n:
                    return cls(version, random, session_id, suites, compression, (), False)
                extensions = parse_extensions(r, _CH)
                r.finish()
                return cls(version, random, session_id, suites, compression, extensions)
        version = member(ProtocolVersion, r.u16())
        random = r.raw(32)
        session_id = r.opaque(1, max_len=32)
        suites = read_u16_enums(r, 2, CipherSuite, min_len=2, max_len=0xFFFE,
                                what="ClientHello cipher_suites")
        compression = read_u8_enums(r, 1, CompressionMethod, min_len=1, max_len=0xFF,
                                    what="ClientHello legacy_compression_methods")
        if r.at_end():
            # RFC 5246 §7.4.1.2: extensions are present iff bytes follow compression_methods.
            return cls(version, random, session_id, suites, compression, (), False)
        # RFC 8446 §4.2.11: pre_shared_key must be last (checked by parse_extensions).
        extensions = parse_extensions(r, _CH)
        r.finish()  # RFC 8446 §4.1.2: data after the extensions block -> decode_error
        return cls(version, random, session_id, suites, compression, extensions)

    # -- PSK binders (RFC 8446 §4.2.11.2) ---------------------------------------------
    def _psk(self) -> PreSharedKeyClientHello:
        last = self.extensions[-1] if self.extensions else None
        if not isinstance(last, PreSharedKeyClientHello):
            raise ValueError("this ClientHello has no pre_shared_key as its last extension")
        return last

    def truncated_for_binders(self) -> bytes:
        """The serialized ClientHello (handshake header included, lengths unchanged)
        without the binders vector: the Truncate(ClientHello) of RFC 8446 §4.2.11.2.

        For a received hello, ``raw[:-psk.binders_length()]`` of the received bytes is
        the same value without reserializing."""
        full = self.serialize()
        return full[: len(full) - self._psk().binders_length()]

    def with_binders(self, binders: Sequence[bytes]) -> ClientHello:
        """A copy whose pre_shared_key binders are replaced (one per identity)."""
        psk = self._psk()
        if len(binders) != len(psk.identities):
            raise ValueError(f"{len(psk.identities)} identities but {len(binders)} binders")
        new_psk = replace(psk, binders=tuple(bytes(b) for b in binders))
        return replace(self, extensions=(*self.extensions[:-1], new_psk))


@fast_init
@dataclass(frozen=True, slots=True)
class ServerHello(MessageBase):
    """RFC 8446 §4.1.3 (and RFC 5246 §7.4.1.3): legacy_version; random[32];
    legacy_session_id_echo<0..32>; cipher_suite; legacy_compression_method; extensions
    (optional in TLS 1.2). A ServerHello whose random is ``HELLO_RETRY_REQUEST_RANDOM`` is a
    HelloRetryRequest and its extensions parse in the HELLO_RETRY_REQUEST context."""

    msg_type: ClassVar[HandshakeType] = _H.SERVER_HELLO
    legacy_version: ProtocolVersion
    random: bytes
    legacy_session_id_echo: bytes
    cipher_suite: CipherSuite
    legacy_compression_method: int
    extensions: tuple[Extension, ...]
    has_extensions_block: bool = True

    @property
    def is_hello_retry_request(self) -> bool:
        return self.random == HELLO_RETRY_REQUEST_RANDOM

    @property
    def downgrade_sentinel(self) -> bytes | None:
        """DOWNGRADE_TLS12 / DOWNGRADE_TLS11 if the random ends with one (§4.1.3)."""
        tail = self.random[24:]
        return tail if tail in (DOWNGRADE_TLS12, DOWNGRADE_TLS11) else None

    def write_body(self, w: Writer) -> None:
        _check_hello_fields(self.random, self.legacy_session_id_echo)
        w.u16(self.legacy_version)
        w.raw(self.random)
        w.opaque(1, self.legacy_session_id_echo)
        w.u16(self.cipher_suite)
        w.u8(self.legacy_compression_method)
        if self.has_extensions_block:
            serialize_extensions(w, self.extensions)
        elif self.extensions:
            raise ValueError("extensions given but has_extensions_block is False")

    def serialize(self) -> bytes:
        # The fixed fields joined directly (the same bytes as MessageBase.serialize, which
        # anything out of range or without an extensions block takes).
        random, session_id = self.random, self.legacy_session_id_echo
        compression = self.legacy_compression_method
        if (len(random) != 32 or len(session_id) > 32 or not self.has_extensions_block
                or not 0 <= compression <= 0xFF):
            return MessageBase.serialize(self)
        w = Writer()
        serialize_extensions(w, self.extensions)
        body = b"".join((self.legacy_version.to_bytes(2, "big"), random,
                         _LENGTH8[len(session_id)], session_id,
                         self.cipher_suite.to_bytes(2, "big"), _LENGTH8[compression],
                         w.getvalue()))
        return _SERVER_HELLO_TYPE + len(body).to_bytes(3, "big") + body

    @classmethod
    def parse_body(cls, body: bytes | memoryview) -> Self:
        # Fast path for the fixed fields of a hello that has an extensions block (read in
        # place, as the checked reads below would); the extensions are parsed the same way.
        n = len(body)
        if n > 39:
            sid_end = 35 + body[34]
            if body[34] <= 32 and sid_end + 3 < n:
                random = bytes(body[2:34])
                r = Reader(body, "ServerHello")
                r._pos = sid_end + 3
                extensions = parse_extensions(
                    r, ExtensionContext.HELLO_RETRY_REQUEST
                    if random == HELLO_RETRY_REQUEST_RANDOM else ExtensionContext.SERVER_HELLO)
                r.finish()
                return cls(member(ProtocolVersion, body[0] << 8 | body[1]), random,
                           bytes(body[35:sid_end]),
                           member(CipherSuite, body[sid_end] << 8 | body[sid_end + 1]),
                           member(CompressionMethod, body[sid_end + 2]), extensions)
        return cls._parse_checked(body)

    @classmethod
    def _parse_checked(cls, body: bytes | memoryview) -> Self:
        r = Reader(body, "ServerHello")
        version = member(ProtocolVersion, r.u16())
        random = r.raw(32)
        session_id = r.opaque(1, max_len=32)
        suite = member(CipherSuite, r.u16())
        compression = member(CompressionMethod, r.u8())
        if r.at_end():
            return cls(version, random, session_id, suite, compression, (), False)
        context = (ExtensionContext.HELLO_RETRY_REQUEST if random == HELLO_RETRY_REQUEST_RANDOM
                   else ExtensionContext.SERVER_HELLO)
        extensions = parse_extensions(r, context)
        r.finish()
        return cls(version, random, session_id, suite, compression, extensions)


@fast_init
@dataclass(frozen=True, slots=True)
class EncryptedExtensions(MessageBase):
    """RFC 8446 §4.3.1: Extension extensions<0..2^16-1>."""

    msg_type: ClassVar[HandshakeType] = _H.ENCRYPTED_EXTENSIONS
    extensions: tuple[Extension, ...]

    def write_body(self, w: Writer) -> None:
        serialize_extensions(w, self.extensions)

    @classmethod
    def parse_body(cls, body: bytes | memoryview) -> Self:
        if len(body) == 2 and not body[0] and not body[1]:
            return cls(())  # an empty extensions block (the usual answer)
        with Reader(body, cls.__name__) as r:
            extensions = parse_extensions(r, ExtensionContext.ENCRYPTED_EXTENSIONS)
        return cls(extensions)


@dataclass(frozen=True, slots=True)
class ClientEncryptedExtensions(EncryptedExtensions):
    """draft-vvv-tls-alps-01 §4: the client's encrypted extensions, sent after the
    server's Finished: an EncryptedExtensions message (type 8) from the client."""


@dataclass(frozen=True, slots=True)
class CertificateRequest(MessageBase):
    """RFC 8446 §4.3.2: opaque certificate_request_context<0..2^8-1>; extensions.
    A missing signature_algorithms is the handshake's missing_extension."""

    msg_type: ClassVar[HandshakeType] = _H.CERTIFICATE_REQUEST
    certificate_request_context: bytes
    extensions: tuple[Extension, ...]

    def write_body(self, w: Writer) -> None:
        w.opaque(1, self.certificate_request_context)
        serialize_extensions(w, self.extensions)

    @classmethod
    def parse_body(cls, body: bytes | memoryview) -> Self:
        with Reader(body, "CertificateRequest") as r:
            context = r.opaque(1)
            extensions = parse_extensions(r, ExtensionContext.CERTIFICATE_REQUEST)
        return cls(context, extensions)


@fast_init
@dataclass(frozen=True, slots=True)
class CertificateEntry:
    """RFC 8446 §4.4.2: opaque cert_data<1..2^24-1> (X.509 DER, or a raw public key);
    Extension extensions<0..2^16-1>."""

    cert_data: bytes
    extensions: tuple[Extension, ...] = ()


@fast_init
@dataclass(frozen=True, slots=True)
class Certificate(MessageBase):
    """RFC 8446 §4.4.2: opaque certificate_request_context<0..2^8-1>;
    CertificateEntry certificate_list<0..2^24-1>. (An empty list from a server is the
    handshake's decode_error, §4.4.2.4.)"""

    msg_type: ClassVar[HandshakeType] = _H.CERTIFICATE
    certificate_request_context: bytes
    certificate_list: tuple[CertificateEntry, ...]

    def write_body(self, w: Writer) -> None:
        w.opaque(1, self.certificate_request_context)
        with w.vector(3):
            for entry in self.certificate_list:
                w.opaque(3, entry.cert_data)
                serialize_extensions(w, entry.extensions)

    @classmethod
    def parse_body(cls, body: bytes | memoryview) -> Self:
        # Fast path for a well-formed body whose entries carry no extensions (a server's
        # chain, usually): lengths checked in place. Anything else -- extensions, or any
        # length that does not add up -- is read by ``_parse_checked``, which says what
        # is wrong.
        n = len(body)
        if n >= 4:
            start = 1 + body[0]
            end = start + 3
            if end <= n and end + (body[start] << 16 | body[start + 1] << 8
                                   | body[start + 2]) == n:
                entries: list[CertificateEntry] = []
                pos = end
                while pos + 5 <= n:  # cert_data<1..2^24-1>, then extensions<0..2^16-1>
                    data_start = pos + 3
                    data_end = data_start + (body[pos] << 16 | body[pos + 1] << 8
                                             | body[pos + 2])
                    if (data_end == data_start or data_end + 2 > n or body[data_end]
                            or body[data_end + 1]):
                        break
                    entries.append(CertificateEntry(bytes(body[data_start:data_end]), ()))
                    pos = data_end + 2
                else:
                    if pos == n:
                        return cls(bytes(body[1:start]), tuple(entries))
        return cls._parse_checked(body)

    @classmethod
    def _parse_checked(cls, body: bytes | memoryview) -> Self:
        entries: list[CertificateEntry] = []
        with Reader(body, "Certificate") as r:
            context = r.opaque(1)
            with r.vector(3, what="Certificate certificate_list") as lst:
                while not lst.at_end():
                    cert_data = lst.opaque(3, min_len=1)
                    extensions = parse_extensions(lst, ExtensionContext.CERTIFICATE)
                    entries.append(CertificateEntry(cert_data, extensions))
        return cls(context, tuple(entries))


@fast_init
@dataclass(frozen=True, slots=True)
class CertificateVerify(MessageBase):
    """RFC 8446 §4.4.3: SignatureScheme algorithm; opaque signature<0..2^16-1>. Also the
    TLS 1.2 digitally-signed CertificateVerify (RFC 5246 §7.4.8), same wire form."""

    msg_type: ClassVar[HandshakeType] = _H.CERTIFICATE_VERIFY
    algorithm: SignatureScheme
    signature: bytes

    def write_body(self, w: Writer) -> None:
        w.u16(self.algorithm)
        w.opaque(2, self.signature)

    def serialize(self) -> bytes:
        # The header, the scheme and the length written directly (same bytes as
        # MessageBase.serialize; a signature too long for its prefix takes that path).
        signature = self.signature
        n = len(signature)
        if n > 0xFFFF:
            return MessageBase.serialize(self)
        return b"".join((_CERTIFICATE_VERIFY_TYPE, (n + 4).to_bytes(3, "big"),
                         self.algorithm.to_bytes(2, "big"), n.to_bytes(2, "big"), signature))

    @classmethod
    def parse_body(cls, body: bytes | memoryview) -> Self:
        n = len(body)
        if n >= 4 and (body[2] << 8 | body[3]) == n - 4:  # well-formed: read in place
            return cls(member(SignatureScheme, body[0] << 8 | body[1]), bytes(body[4:]))
        return cls._parse_checked(body)

    @classmethod
    def _parse_checked(cls, body: bytes | memoryview) -> Self:
        with Reader(body, "CertificateVerify") as r:
            algorithm = member(SignatureScheme, r.u16())
            signature = r.opaque(2)
        return cls(algorithm, signature)


@fast_init
@dataclass(frozen=True, slots=True)
class Finished(MessageBase):
    """RFC 8446 §4.4.4 / RFC 5246 §7.4.9: opaque verify_data[Hash.length] (or 12 bytes in
    TLS 1.2). The codec takes the whole body; the handshake checks the length it expects.
    An empty body cannot be a Finished for any hash -> decode_error."""

    msg_type: ClassVar[HandshakeType] = _H.FINISHED
    verify_data: bytes

    def write_body(self, w: Writer) -> None:
        w.raw(self.verify_data)

    def serialize(self) -> bytes:
        # The header written directly (same bytes as MessageBase.serialize).
        verify_data = self.verify_data
        n = len(verify_data)
        if n >= 1 << 24:
            return MessageBase.serialize(self)
        return _FINISHED_TYPE + n.to_bytes(3, "big") + verify_data

    @classmethod
    def parse_body(cls, body: bytes | memoryview) -> Self:
        if not len(body):
            raise DecodeError("Finished: empty verify_data")
        return cls(bytes(body))


_TWO_U32_AT = struct.Struct(">II").unpack_from


@fast_init
@dataclass(frozen=True, slots=True)
class NewSessionTicket(MessageBase):
    """RFC 8446 §4.6.1: uint32 ticket_lifetime; uint32 ticket_age_add;
    opaque ticket_nonce<0..255>; opaque ticket<1..2^16-1>; Extension extensions<0..2^16-2>."""

    msg_type: ClassVar[HandshakeType] = _H.NEW_SESSION_TICKET
    ticket_lifetime: int
    ticket_age_add: int
    ticket_nonce: bytes
    ticket: bytes
    extensions: tuple[Extension, ...] = ()

    def write_body(self, w: Writer) -> None:
        w.u32(self.ticket_lifetime)
        w.u32(self.ticket_age_add)
        w.opaque(1, self.ticket_nonce)
        w.opaque(2, self.ticket)
        serialize_extensions(w, self.extensions)

    def serialize(self) -> bytes:
        # Without extensions, written directly (same bytes as MessageBase.serialize; a
        # nonce or ticket too long for its prefix takes that path, which says so).
        nonce, ticket = self.ticket_nonce, self.ticket
        n = len(ticket)
        if self.extensions or len(nonce) > 0xFF or n > 0xFFFF:
            return MessageBase.serialize(self)
        return b"".join((_NEW_SESSION_TICKET_TYPE, (len(nonce) + n + 13).to_bytes(3, "big"),
                         self.ticket_lifetime.to_bytes(4, "big"),
                         self.ticket_age_add.to_bytes(4, "big"), _LENGTH8[len(nonce)], nonce,
                         n.to_bytes(2, "big"), ticket, b"\x00\x00"))

    @classmethod
    def parse_body(cls, body: bytes | memoryview) -> Self:
        # Fast path: the fixed fields and both vectors of a well-formed body read in
        # place; its extensions parsed the same way (none: no parse at all).
        n = len(body)
        if n >= 14:
            ticket_start = 11 + body[8]  # after the nonce and the ticket's length
            if ticket_start <= n:
                ticket_end = ticket_start + (body[ticket_start - 2] << 8
                                             | body[ticket_start - 1])
                if ticket_start < ticket_end and ticket_end + 2 <= n:
                    if (ticket_end + 2 == n and not body[ticket_end]
                            and not body[ticket_end + 1]):
                        extensions: tuple[Extension, ...] = ()
                    else:
                        r = Reader(body, "NewSessionTicket")
                        r._pos = ticket_end
                        extensions = parse_extensions(r, ExtensionContext.NEW_SESSION_TICKET)
                        r.finish()
                    lifetime, age_add = _TWO_U32_AT(body, 0)
                    return cls(lifetime, age_add, bytes(body[9:ticket_start - 2]),
                               bytes(body[ticket_start:ticket_end]), extensions)
        return cls._parse_checked(body)

    @classmethod
    def _parse_checked(cls, body: bytes | memoryview) -> Self:
        with Reader(body, "NewSessionTicket") as r:
            lifetime = r.u32()
            age_add = r.u32()
            nonce = r.opaque(1)
            ticket = r.opaque(2, min_len=1)
            extensions = parse_extensions(r, ExtensionContext.NEW_SESSION_TICKET)
        return cls(lifetime, age_add, nonce, ticket, extensions)


@dataclass(frozen=True, slots=True)
class KeyUpdate(MessageBase):
    """RFC 8446 §4.6.3: KeyUpdateRequest request_update."""

    msg_type: ClassVar[HandshakeType] = _H.KEY_UPDATE
    request_update: KeyUpdateRequest

    def write_body(self, w: Writer) -> None:
        w.u8(self.request_update)

    @classmethod
    def parse_body(cls, body: bytes | memoryview) -> Self:
        with Reader(body, "KeyUpdate") as r:
            value = r.u8()
        if value > 1:
            # RFC 8446 §4.6.3: any other value -> "illegal_parameter".
            raise IllegalParameter(f"KeyUpdate: invalid request_update {value}")
        return cls(KeyUpdateRequest(value))


@dataclass(frozen=True, slots=True)
class EndOfEarlyData(MessageBase):
    """RFC 8446 §4.5: ``struct {} EndOfEarlyData;``"""

    msg_type: ClassVar[HandshakeType] = _H.END_OF_EARLY_DATA

    def write_body(self, w: Writer) -> None:
        pass

    @classmethod
    def parse_body(cls, body: bytes | memoryview) -> Self:
        if len(body):
            raise DecodeError(f"EndOfEarlyData: expected an empty body, got {len(body)} byte(s)")
        return cls()


@dataclass(frozen=True, slots=True)
class RawHandshakeMessage:
    """A handshake message kept undecoded (an unknown type, or a key-exchange message
    whose form ``decode_handshake`` could not choose)."""

    msg_type: HandshakeType
    body: bytes

    def serialize_body(self) -> bytes:
        return self.body

    def serialize(self) -> bytes:
        w = Writer()
        w.u8(self.msg_type)
        w.opaque(3, self.body)
        return w.getvalue()


def message_hash(digest: bytes) -> bytes:
    """The synthetic ``message_hash`` handshake message that replaces ClientHello1 in the
    transcript after a HelloRetryRequest (RFC 8446 §4.4.1): 0xFE 00 00 Hash.length ||
    Hash(ClientHello1)."""
    w = Writer()
    w.u8(_H.MESSAGE_HASH)
    w.opaque(3, digest)
    return w.getvalue()


HandshakeMessage: TypeAlias = (
    ClientHello
    | ServerHello
    | EncryptedExtensions
    | CertificateRequest
    | Certificate
    | CertificateVerify
    | Finished
    | NewSessionTicket
    | KeyUpdate
    | EndOfEarlyData
    | HelloRequest
    | ServerHelloDone
    | Certificate12
    | CertificateRequest12
    | ServerKeyExchangeECDHE
    | ServerKeyExchangeDHE
    | ClientKeyExchangeECDHE
    | ClientKeyExchangeDHE
    | ClientKeyExchangeRSA
    | NewSessionTicket12
    | CertificateStatus
    | RawHandshakeMessage
)
"""Any handshake message value."""


def parse_handshake_header(data: bytes | memoryview) -> tuple[HandshakeType, int]:
    """Decode the 4-byte handshake header at the start of ``data`` (msg_type, u24 body
    length). Bytes after the header are ignored; fewer than 4 -> ``DecodeError``."""
    if len(data) < 4:
        raise DecodeError(f"handshake header: truncated, {len(data)} of 4 bytes")
    return HandshakeType(data[0]), int.from_bytes(data[1:4], "big")


_Decoder = Callable[[bytes | memoryview], HandshakeMessage]

_DECODERS: dict[int, _Decoder] = {
    _H.HELLO_REQUEST: HelloRequest.parse_body,
    _H.CLIENT_HELLO: ClientHello.parse_body,
    _H.SERVER_HELLO: ServerHello.parse_body,
    _H.NEW_SESSION_TICKET: NewSessionTicket.parse_body,
    _H.END_OF_EARLY_DATA: EndOfEarlyData.parse_body,
    _H.ENCRYPTED_EXTENSIONS: EncryptedExtensions.parse_body,
    _H.CERTIFICATE: Certificate.parse_body,
    _H.CERTIFICATE_REQUEST: CertificateRequest.parse_body,
    _H.SERVER_HELLO_DONE: ServerHelloDone.parse_body,
    _H.CERTIFICATE_VERIFY: CertificateVerify.parse_body,
    _H.FINISHED: Finished.parse_body,
    _H.CERTIFICATE_STATUS: CertificateStatus.parse_body,
    _H.KEY_UPDATE: KeyUpdate.parse_body,
}
_DECODERS_12: dict[int, _Decoder] = {
    **_DECODERS,
    _H.CERTIFICATE: Certificate12.parse_body,
    _H.CERTIFICATE_REQUEST: CertificateRequest12.parse_body,
    _H.NEW_SESSION_TICKET: NewSessionTicket12.parse_body,
}
_SERVER_KX: dict[str, _Decoder] = {
    "ecdhe": ServerKeyExchangeECDHE.parse_body,
    "dhe": ServerKeyExchangeDHE.parse_body,
}
_CLIENT_KX: dict[str, _Decoder] = {
    "ecdhe": ClientKeyExchangeECDHE.parse_body,
    "dhe": ClientKeyExchangeDHE.parse_body,
    "rsa": ClientKeyExchangeRSA.parse_body,
}
_KX_KINDS = frozenset({"ecdhe", "dhe", "rsa"})


def decode_handshake(
    msg_type: HandshakeType | int,
    body: bytes | memoryview,
    *,
    tls12: bool = False,
    kx: str | None = None,
) -> HandshakeMessage:
    """Parse a handshake body by its type (for tracing tools and generic code).

    ``tls12`` picks the TLS 1.2 form of Certificate, CertificateRequest and
    NewSessionTicket. ServerKeyExchange/ClientKeyExchange need ``kx`` ("ecdhe", "dhe",
    "rsa"); without it (or for a kind with no such message, e.g. an RSA
    ServerKeyExchange), and for unknown types, the message is kept raw. Whether the
    message is *allowed* now is the handshake state's decision, not this function's.
    """
    if kx is not None and kx not in _KX_KINDS:
        raise ValueError(f"unknown key exchange kind {kx!r}")
    t = HandshakeType(msg_type)
    decoder = (_DECODERS_12 if tls12 else _DECODERS).get(t)
    if decoder is None and kx is not None:
        if t == _H.SERVER_KEY_EXCHANGE:
            decoder = _SERVER_KX.get(kx)
        elif t == _H.CLIENT_KEY_EXCHANGE:
            decoder = _CLIENT_KX.get(kx)
    if decoder is None:
        return RawHandshakeMessage(t, bytes(body))
    return decoder(body)

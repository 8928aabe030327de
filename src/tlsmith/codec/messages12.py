"""TLS 1.2-only handshake messages (RFC 5246 §7.4, RFC 8422 §5, RFC 5077 §3.3, RFC 6066 §8).

ClientHello, ServerHello, CertificateVerify and Finished have the same wire form in both
versions and live in ``messages.py``. ``MessageBase`` lives here (not in messages.py) so
that messages.py can import this module without an import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

from tlsmith.codec.buffer import Reader, Writer
from tlsmith.codec.enums import (
    CertificateStatusType,
    ClientCertificateType,
    ECCurveType,
    HandshakeType,
    NamedGroup,
    SignatureScheme,
    member,
)
from tlsmith.codec.extensions_base import (
    read_opaque_list,
    read_u8_enums,
    read_u16_enums,
    write_opaque_list,
    write_u8s,
    write_u16s,
)
from tlsmith.errors import DecodeError, IllegalParameter

_H = HandshakeType


class MessageBase:
    """Base of every handshake message class: implement ``write_body``; ``serialize()``
    adds the 4-byte header (msg_type u8, u24 length; RFC 8446 §4, RFC 5246 §7.4)."""

    __slots__ = ()
    msg_type: ClassVar[HandshakeType]

    def write_body(self, w: Writer) -> None:
        raise NotImplementedError

    def serialize_body(self) -> bytes:
        w = Writer()
        self.write_body(w)
        return w.getvalue()

    def serialize(self) -> bytes:
        w = Writer()
        buf = w._buf
        buf += b"\x00\x00\x00\x00"  # msg_type and u24 length, filled in below
        self.write_body(w)
        n = len(buf) - 4
        if n >= 1 << 24:
            raise ValueError(f"{n} bytes do not fit a 3-byte length prefix")
        buf[0] = self.msg_type
        buf[1:4] = n.to_bytes(3, "big")
        return bytes(buf)


# What the ``serialize`` methods that write their header themselves need.
_SERVER_HELLO_DONE_RAW = bytes((_H.SERVER_HELLO_DONE, 0, 0, 0))
_SERVER_KEY_EXCHANGE_TYPE = bytes((_H.SERVER_KEY_EXCHANGE,))
_NEW_SESSION_TICKET_TYPE = bytes((_H.NEW_SESSION_TICKET,))
_LENGTH8: tuple[bytes, ...] = tuple(bytes((i,)) for i in range(256))


def _expect_empty(body: bytes | memoryview, what: str) -> None:
    if len(body):
        raise DecodeError(f"{what}: expected an empty body, got {len(body)} byte(s)")


@dataclass(frozen=True, slots=True)
class HelloRequest(MessageBase):
    """RFC 5246 §7.4.1.1: ``struct { } HelloRequest;``"""

    msg_type: ClassVar[HandshakeType] = _H.HELLO_REQUEST

    def write_body(self, w: Writer) -> None:
        pass

    @classmethod
    def parse_body(cls, body: bytes | memoryview) -> Self:
        _expect_empty(body, "HelloRequest")
        return cls()


@dataclass(frozen=True, slots=True)
class ServerHelloDone(MessageBase):
    """RFC 5246 §7.4.5: ``struct { } ServerHelloDone;``"""

    msg_type: ClassVar[HandshakeType] = _H.SERVER_HELLO_DONE

    def write_body(self, w: Writer) -> None:
        pass

    def serialize(self) -> bytes:
        return _SERVER_HELLO_DONE_RAW

    @classmethod
    def parse_body(cls, body: bytes | memoryview) -> Self:
        _expect_empty(body, "ServerHelloDone")
        return cls()


@dataclass(frozen=True, slots=True)
class Certificate12(MessageBase):
    """RFC 5246 §7.4.2: ASN.1Cert certificate_list<0..2^24-1>; opaque ASN.1Cert<1..2^24-1>."""

    msg_type: ClassVar[HandshakeType] = _H.CERTIFICATE
    certificate_list: tuple[bytes, ...]

    def write_body(self, w: Writer) -> None:
        write_opaque_list(w, 3, 3, self.certificate_list)

    @classmethod
    def parse_body(cls, body: bytes | memoryview) -> Self:
        with Reader(body, "Certificate") as r:
            certs = read_opaque_list(r, 3, 3, min_len=0, max_len=0xFFFFFF, item_min=1,
                                     item_max=None, what="Certificate certificate_list")
        return cls(certs)


@dataclass(frozen=True, slots=True)
class CertificateRequest12(MessageBase):
    """RFC 5246 §7.4.4: ClientCertificateType certificate_types<1..2^8-1>;
    SignatureAndHashAlgorithm supported_signature_algorithms<2..2^16-2>;
    DistinguishedName certificate_authorities<0..2^16-1> (DER names, <1..2^16-1> each)."""

    msg_type: ClassVar[HandshakeType] = _H.CERTIFICATE_REQUEST
    certificate_types: tuple[ClientCertificateType, ...]
    supported_signature_algorithms: tuple[SignatureScheme, ...]
    certificate_authorities: tuple[bytes, ...] = ()

    def write_body(self, w: Writer) -> None:
        write_u8s(w, 1, self.certificate_types)
        write_u16s(w, 2, self.supported_signature_algorithms)
        write_opaque_list(w, 2, 2, self.certificate_authorities)

    @classmethod
    def parse_body(cls, body: bytes | memoryview) -> Self:
        with Reader(body, "CertificateRequest") as r:
            types = read_u8_enums(r, 1, ClientCertificateType, min_len=1, max_len=0xFF,
                                  what="CertificateRequest certificate_types")
            algs = read_u16_enums(r, 2, SignatureScheme, min_len=2, max_len=0xFFFE,
                                  what="CertificateRequest supported_signature_algorithms")
            cas = read_opaque_list(r, 2, 2, min_len=0, max_len=0xFFFF, item_min=1,
                                   item_max=None, what="CertificateRequest certificate_authorities")
        return cls(types, algs, cas)


def _read_signature(r: Reader, signed: bool) -> tuple[SignatureScheme | None, bytes]:
    """RFC 5246 §4.7 / §7.4.3: ``digitally-signed`` = SignatureAndHashAlgorithm algorithm;
    opaque signature<0..2^16-1>. Anonymous key exchange carries no signature."""
    if not signed:
        return None, b""
    return member(SignatureScheme, r.u16()), r.opaque(2)


def _write_signature(w: Writer, algorithm: SignatureScheme | None, signature: bytes) -> None:
    if algorithm is None:
        if signature:
            raise ValueError("a signature needs an algorithm")
        return
    w.u16(algorithm)
    w.opaque(2, signature)


@dataclass(frozen=True, slots=True)
class ServerKeyExchangeECDHE(MessageBase):
    """RFC 8422 §5.4: ServerECDHParams (ECParameters curve_params; ECPoint public) followed
    by the digitally-signed params (absent for ECDH_anon: ``algorithm=None``)."""

    msg_type: ClassVar[HandshakeType] = _H.SERVER_KEY_EXCHANGE
    curve_type: ECCurveType
    named_curve: NamedGroup
    public: bytes
    algorithm: SignatureScheme | None
    signature: bytes

    def params_bytes(self) -> bytes:
        """The ServerECDHParams encoding, the part covered by the signature."""
        public, curve_type = self.public, self.curve_type
        if len(public) <= 0xFF and 0 <= curve_type <= 0xFF:  # written directly
            return b"".join((_LENGTH8[curve_type], self.named_curve.to_bytes(2, "big"),
                             _LENGTH8[len(public)], public))
        w = Writer()  # (which says what is out of range)
        self._write_params(w)
        return w.getvalue()

    def serialize(self) -> bytes:
        # Written directly when signed (the same bytes as MessageBase.serialize).
        algorithm, signature = self.algorithm, self.signature
        if algorithm is None or len(signature) > 0xFFFF:
            return MessageBase.serialize(self)
        body = b"".join((self.params_bytes(), algorithm.to_bytes(2, "big"),
                         len(signature).to_bytes(2, "big"), signature))
        return _SERVER_KEY_EXCHANGE_TYPE + len(body).to_bytes(3, "big") + body

    def _write_params(self, w: Writer) -> None:
        w.u8(self.curve_type)
        w.u16(self.named_curve)
        w.opaque(1, self.public)

    def write_body(self, w: Writer) -> None:
        self._write_params(w)
        _write_signature(w, self.algorithm, self.signature)

    @classmethod
    def parse_body(cls, body: bytes | memoryview, *, signed: bool = True) -> Self:
        with Reader(body, "ServerKeyExchange") as r:
            curve_type = member(ECCurveType, r.u8())
            if curve_type != ECCurveType.NAMED_CURVE:
                # RFC 8422 §5.4: explicit_prime(1) and explicit_char2(2) are deprecated;
                # only named_curve is defined.
                raise IllegalParameter(f"ServerKeyExchange: unsupported curve_type {curve_type}")
            named_curve = member(NamedGroup, r.u16())
            public = r.opaque(1, min_len=1)  # opaque point <1..2^8-1>
            algorithm, signature = _read_signature(r, signed)
        return cls(curve_type, named_curve, public, algorithm, signature)


@dataclass(frozen=True, slots=True)
class ServerKeyExchangeDHE(MessageBase):
    """RFC 5246 §7.4.3: ServerDHParams (opaque dh_p, dh_g, dh_Ys, each <1..2^16-1>)
    followed by the digitally-signed params (absent for DH_anon)."""

    msg_type: ClassVar[HandshakeType] = _H.SERVER_KEY_EXCHANGE
    dh_p: bytes
    dh_g: bytes
    dh_Ys: bytes  # the RFC's spelling
    algorithm: SignatureScheme | None
    signature: bytes

    def params_bytes(self) -> bytes:
        """The ServerDHParams encoding, the part covered by the signature."""
        w = Writer()
        self._write_params(w)
        return w.getvalue()

    def _write_params(self, w: Writer) -> None:
        w.opaque(2, self.dh_p)
        w.opaque(2, self.dh_g)
        w.opaque(2, self.dh_Ys)

    def write_body(self, w: Writer) -> None:
        self._write_params(w)
        _write_signature(w, self.algorithm, self.signature)

    @classmethod
    def parse_body(cls, body: bytes | memoryview, *, signed: bool = True) -> Self:
        with Reader(body, "ServerKeyExchange") as r:
            p = r.opaque(2, min_len=1)
            g = r.opaque(2, min_len=1)
            ys = r.opaque(2, min_len=1)
            algorithm, signature = _read_signature(r, signed)
        return cls(p, g, ys, algorithm, signature)


@dataclass(frozen=True, slots=True)
class ClientKeyExchangeECDHE(MessageBase):
    """RFC 8422 §5.7: ClientECDiffieHellmanPublic, explicit form: opaque point<1..2^8-1>."""

    msg_type: ClassVar[HandshakeType] = _H.CLIENT_KEY_EXCHANGE
    public: bytes

    def write_body(self, w: Writer) -> None:
        w.opaque(1, self.public)

    @classmethod
    def parse_body(cls, body: bytes | memoryview) -> Self:
        with Reader(body, "ClientKeyExchange") as r:
            public = r.opaque(1, min_len=1)
        return cls(public)


@dataclass(frozen=True, slots=True)
class ClientKeyExchangeDHE(MessageBase):
    """RFC 5246 §7.4.7.2: ClientDiffieHellmanPublic, explicit form: opaque dh_Yc<1..2^16-1>."""

    msg_type: ClassVar[HandshakeType] = _H.CLIENT_KEY_EXCHANGE
    dh_Yc: bytes  # the RFC's spelling

    def write_body(self, w: Writer) -> None:
        w.opaque(2, self.dh_Yc)

    @classmethod
    def parse_body(cls, body: bytes | memoryview) -> Self:
        with Reader(body, "ClientKeyExchange") as r:
            yc = r.opaque(2, min_len=1)
        return cls(yc)


@dataclass(frozen=True, slots=True)
class ClientKeyExchangeRSA(MessageBase):
    """RFC 5246 §7.4.7.1: EncryptedPreMasterSecret, public-key-encrypted, so with a
    2-byte length in TLS 1.0 and later."""

    msg_type: ClassVar[HandshakeType] = _H.CLIENT_KEY_EXCHANGE
    encrypted_pre_master_secret: bytes

    def write_body(self, w: Writer) -> None:
        w.opaque(2, self.encrypted_pre_master_secret)

    @classmethod
    def parse_body(cls, body: bytes | memoryview) -> Self:
        with Reader(body, "ClientKeyExchange") as r:
            epms = r.opaque(2)
        return cls(epms)


@dataclass(frozen=True, slots=True)
class ServerKeyExchangePSK(MessageBase):
    """RFC 4279 §2: opaque psk_identity_hint<0..2^16-1>; for ECDHE_PSK (RFC 5489 §2) the
    hint is followed by ServerECDHParams, unsigned (``named_curve`` None: plain PSK)."""

    msg_type: ClassVar[HandshakeType] = _H.SERVER_KEY_EXCHANGE
    psk_identity_hint: bytes
    named_curve: NamedGroup | None = None
    public: bytes = b""

    def write_body(self, w: Writer) -> None:
        w.opaque(2, self.psk_identity_hint)
        if self.named_curve is not None:
            w.u8(ECCurveType.NAMED_CURVE)
            w.u16(self.named_curve)
            w.opaque(1, self.public)

    @classmethod
    def parse_body(cls, body: bytes | memoryview, *, ecdhe: bool = False) -> Self:
        with Reader(body, "ServerKeyExchange") as r:
            hint = r.opaque(2)
            if not ecdhe:
                return cls(hint)
            if ECCurveType(r.u8()) != ECCurveType.NAMED_CURVE:
                raise IllegalParameter("ServerKeyExchange: unsupported curve_type")
            curve = NamedGroup(r.u16())
            public = r.opaque(1, min_len=1)
        return cls(hint, curve, public)


@dataclass(frozen=True, slots=True)
class ClientKeyExchangePSK(MessageBase):
    """RFC 4279 §2: opaque psk_identity<0..2^16-1>; for ECDHE_PSK (RFC 5489 §2) followed
    by ClientECDiffieHellmanPublic (opaque point<1..2^8-1>; ``public`` None: plain PSK)."""

    msg_type: ClassVar[HandshakeType] = _H.CLIENT_KEY_EXCHANGE
    psk_identity: bytes
    public: bytes | None = None

    def write_body(self, w: Writer) -> None:
        w.opaque(2, self.psk_identity)
        if self.public is not None:
            w.opaque(1, self.public)

    @classmethod
    def parse_body(cls, body: bytes | memoryview, *, ecdhe: bool = False) -> Self:
        with Reader(body, "ClientKeyExchange") as r:
            identity = r.opaque(2)
            public = r.opaque(1, min_len=1) if ecdhe else None
        return cls(identity, public)


@dataclass(frozen=True, slots=True)
class NewSessionTicket12(MessageBase):
    """RFC 5077 §3.3: uint32 ticket_lifetime_hint; opaque ticket<0..2^16-1>."""

    msg_type: ClassVar[HandshakeType] = _H.NEW_SESSION_TICKET
    ticket_lifetime_hint: int
    ticket: bytes

    def write_body(self, w: Writer) -> None:
        w.u32(self.ticket_lifetime_hint)
        w.opaque(2, self.ticket)

    def serialize(self) -> bytes:
        # Written directly (the same bytes as MessageBase.serialize, which a ticket too
        # long for its prefix takes).
        ticket = self.ticket
        n = len(ticket)
        if n > 0xFFFF:
            return MessageBase.serialize(self)
        return b"".join((_NEW_SESSION_TICKET_TYPE, (n + 6).to_bytes(3, "big"),
                         self.ticket_lifetime_hint.to_bytes(4, "big"), n.to_bytes(2, "big"),
                         ticket))

    @classmethod
    def parse_body(cls, body: bytes | memoryview) -> Self:
        with Reader(body, "NewSessionTicket") as r:
            hint = r.u32()
            ticket = r.opaque(2)
        return cls(hint, ticket)


@dataclass(frozen=True, slots=True)
class CertificateStatus(MessageBase):
    """RFC 6066 §8: CertificateStatusType status_type; ``ocsp``: OCSPResponse
    ocsp_response<1..2^24-1> (DER). Other status types have no defined body here."""

    msg_type: ClassVar[HandshakeType] = _H.CERTIFICATE_STATUS
    status_type: CertificateStatusType
    ocsp_response: bytes

    def write_body(self, w: Writer) -> None:
        w.u8(self.status_type)
        w.opaque(3, self.ocsp_response)

    @classmethod
    def parse_body(cls, body: bytes | memoryview) -> Self:
        with Reader(body, "CertificateStatus") as r:
            status_type = CertificateStatusType(r.u8())
            if status_type != CertificateStatusType.OCSP:
                # RFC 6066 §8 defines only ocsp; RFC 8446 §6: an invalid enum is
                # illegal_parameter.
                raise IllegalParameter(f"CertificateStatus: unsupported status_type "
                                       f"{status_type}")
            response = r.opaque(3, min_len=1)
        return cls(status_type, response)


@dataclass(frozen=True, slots=True)
class NextProtocol(MessageBase):
    """draft-agl-tls-nextprotoneg-04 §3: opaque selected_protocol<0..255>; opaque
    padding<0..255>, zeros that bring the body to a multiple of 32 bytes (hiding the
    protocol's length). Sent by the client after its ChangeCipherSpec."""

    msg_type: ClassVar[HandshakeType] = _H.NEXT_PROTOCOL
    selected_protocol: bytes

    def write_body(self, w: Writer) -> None:
        w.opaque(1, self.selected_protocol)
        w.opaque(1, bytes(32 - (len(self.selected_protocol) + 2) % 32))

    @classmethod
    def parse_body(cls, body: bytes | memoryview) -> Self:
        with Reader(body, "NextProtocol") as r:
            selected = r.opaque(1)
            r.opaque(1)  # the padding's bytes are not checked (nor by BoringSSL)
        return cls(selected)

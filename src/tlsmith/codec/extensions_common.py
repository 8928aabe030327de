"""Extensions shared by TLS 1.2 and TLS 1.3, and the TLS 1.2-only ones.

RFC 6066 (server_name, max_fragment_length, status_request), RFC 8446 §4.2.3/§4.2.7
(signature algorithms, groups), RFC 7301 (ALPN), RFC 8422 (ec_point_formats), RFC 7685
(padding), RFC 7366 (encrypt_then_mac), RFC 7627 (extended_master_secret), RFC 8449
(record_size_limit), RFC 5077 (session_ticket), RFC 5746 (renegotiation_info).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

from tlsmith.codec.buffer import Writer
from tlsmith.codec.enums import (
    CertificateStatusType,
    ECPointFormat,
    ExtensionType,
    NamedGroup,
    NameType,
    SignatureScheme,
)
from tlsmith.codec.extensions_base import (
    SERVER_CONTEXTS,
    ExtensionBody,
    ExtensionContext,
    UndefinedForm,
    expect_empty,
    ext_reader,
    read_opaque_list,
    read_u8_enums,
    read_u16_enums,
    write_opaque_list,
    write_u8s,
    write_u16s,
)
from tlsmith.errors import DecodeError, IllegalParameter

_T = ExtensionType


@dataclass(frozen=True, slots=True)
class ServerName(ExtensionBody):
    """server_name (RFC 6066 §3). ``host_name=None`` is the empty body a server sends.

    The host name is decoded as ASCII (RFC 6066 §3: "represented as a byte string using
    ASCII encoding"); a non-ASCII byte is a ``DecodeError``. Beyond that, the codec does
    not judge the name (trailing dots, IP literals: the handshake decides).
    """

    extension_type: ClassVar[ExtensionType] = _T.SERVER_NAME
    host_name: str | None

    def write_body(self, w: Writer) -> None:
        if self.host_name is None:
            return
        with w.vector(2):
            w.u8(NameType.HOST_NAME)
            w.opaque(2, self.host_name.encode("ascii"))

    @classmethod
    def parse_body(cls, data: memoryview | bytes, context: ExtensionContext) -> Self:
        if context in SERVER_CONTEXTS:
            expect_empty(data, cls.extension_type)  # RFC 6066 §3: "SHALL be empty"
            return cls(None)
        r = ext_reader(data, cls.extension_type)
        names = r.vector(2, min_len=1, what="server_name list")  # ServerNameList<1..2^16-1>
        host: bytes | None = None
        unknown_type = False
        while not names.at_end():
            name_type = names.u8()
            # RFC 6066 §3: every name type's data begins with a 16-bit length.
            name = names.opaque(2, min_len=1)
            if name_type != NameType.HOST_NAME:
                unknown_type = True
            elif host is not None:
                # RFC 6066 §3: no more than one name of the same name_type.
                raise IllegalParameter("server_name extension: more than one host_name")
            else:
                host = name
        r.finish()
        if unknown_type or host is None:
            raise UndefinedForm("server_name extension: a name_type other than host_name")
        try:
            return cls(host.decode("ascii"))
        except UnicodeDecodeError:
            raise DecodeError("server_name extension: host_name is not ASCII") from None


@dataclass(frozen=True, slots=True)
class MaxFragmentLength(ExtensionBody):
    """max_fragment_length (RFC 6066 §4): 1 = 2^9, 2 = 2^10, 3 = 2^11, 4 = 2^12."""

    extension_type: ClassVar[ExtensionType] = _T.MAX_FRAGMENT_LENGTH
    max_fragment_length: int

    def write_body(self, w: Writer) -> None:
        w.u8(self.max_fragment_length)

    @classmethod
    def parse_body(cls, data: memoryview | bytes, context: ExtensionContext) -> Self:
        with ext_reader(data, cls.extension_type) as r:
            value = r.u8()
        if not 1 <= value <= 4:
            # RFC 6066 §4: a value outside the enumeration -> illegal_parameter.
            raise IllegalParameter(f"max_fragment_length extension: invalid value {value}")
        return cls(value)

    @property
    def length(self) -> int:
        return 1 << (8 + self.max_fragment_length)


@dataclass(frozen=True, slots=True)
class StatusRequest(ExtensionBody):
    """status_request (RFC 6066 §8), the ``ocsp`` CertificateStatusRequest form, sent in a
    ClientHello; ``empty=True`` is the empty body of a TLS 1.2 ServerHello or of a TLS 1.3
    CertificateRequest. ``request_extensions`` is the raw DER of the OCSP extensions."""

    extension_type: ClassVar[ExtensionType] = _T.STATUS_REQUEST
    responder_id_list: tuple[bytes, ...] = ()
    request_extensions: bytes = b""
    empty: bool = False

    def write_body(self, w: Writer) -> None:
        if self.empty:
            return
        w.u8(CertificateStatusType.OCSP)
        write_opaque_list(w, 2, 2, self.responder_id_list)
        w.opaque(2, self.request_extensions)

    @classmethod
    def parse_body(cls, data: memoryview | bytes, context: ExtensionContext) -> Self:
        if context is ExtensionContext.SERVER_HELLO:
            expect_empty(data, cls.extension_type)  # RFC 6066 §8: "SHALL be empty"
            return cls(empty=True)
        if context is ExtensionContext.CERTIFICATE_REQUEST:
            # RFC 8446 §4.4.2.1: a server asks for the client's OCSP response with an
            # *empty* status_request in CertificateRequest.
            expect_empty(data, cls.extension_type)
            return cls(empty=True)
        with ext_reader(data, cls.extension_type) as r:
            status_type = r.u8()
            if status_type != CertificateStatusType.OCSP:
                raise UndefinedForm(f"status_request extension: status_type {status_type}")
            # ResponderID responder_id_list<0..2^16-1>; opaque ResponderID<1..2^16-1>
            ids = read_opaque_list(r, 2, 2, min_len=0, max_len=0xFFFF, item_min=1,
                                   item_max=None, what="status_request responder_id_list")
            exts = r.opaque(2)
        return cls(ids, exts)


@dataclass(frozen=True, slots=True)
class CertificateStatusExtension(ExtensionBody):
    """status_request inside a TLS 1.3 CertificateEntry: a CertificateStatus body
    (RFC 8446 §4.4.2.1, RFC 6066 §8): status_type, then OCSPResponse<1..2^24-1>."""

    extension_type: ClassVar[ExtensionType] = _T.STATUS_REQUEST
    status_type: CertificateStatusType
    ocsp_response: bytes

    def write_body(self, w: Writer) -> None:
        w.u8(self.status_type)
        w.opaque(3, self.ocsp_response)

    @classmethod
    def parse_body(cls, data: memoryview | bytes, context: ExtensionContext) -> Self:
        with ext_reader(data, cls.extension_type) as r:
            status_type = CertificateStatusType(r.u8())
            if status_type != CertificateStatusType.OCSP:
                raise UndefinedForm(f"status_request extension: status_type {status_type}")
            response = r.opaque(3, min_len=1)
        return cls(status_type, response)


@dataclass(frozen=True, slots=True)
class SupportedGroups(ExtensionBody):
    """supported_groups (RFC 8446 §4.2.7): NamedGroup named_group_list<2..2^16-1>."""

    extension_type: ClassVar[ExtensionType] = _T.SUPPORTED_GROUPS
    named_group_list: tuple[NamedGroup, ...]

    def write_body(self, w: Writer) -> None:
        write_u16s(w, 2, self.named_group_list)

    @classmethod
    def parse_body(cls, data: memoryview | bytes, context: ExtensionContext) -> Self:
        with ext_reader(data, cls.extension_type) as r:
            groups = read_u16_enums(r, 2, NamedGroup, min_len=2, max_len=0xFFFF,
                                    what="supported_groups extension")
        return cls(groups)


@dataclass(frozen=True, slots=True)
class ECPointFormats(ExtensionBody):
    """ec_point_formats (RFC 8422 §5.1.2): ECPointFormat ec_point_format_list<1..2^8-1>."""

    extension_type: ClassVar[ExtensionType] = _T.EC_POINT_FORMATS
    ec_point_format_list: tuple[ECPointFormat, ...]

    def write_body(self, w: Writer) -> None:
        write_u8s(w, 1, self.ec_point_format_list)

    @classmethod
    def parse_body(cls, data: memoryview | bytes, context: ExtensionContext) -> Self:
        with ext_reader(data, cls.extension_type) as r:
            formats = read_u8_enums(r, 1, ECPointFormat, min_len=1, max_len=0xFF,
                                    what="ec_point_formats extension")
        return cls(formats)


@dataclass(frozen=True, slots=True)
class SignatureAlgorithms(ExtensionBody):
    """signature_algorithms (RFC 8446 §4.2.3):
    SignatureScheme supported_signature_algorithms<2..2^16-2>."""

    extension_type: ClassVar[ExtensionType] = _T.SIGNATURE_ALGORITHMS
    supported_signature_algorithms: tuple[SignatureScheme, ...]

    def write_body(self, w: Writer) -> None:
        write_u16s(w, 2, self.supported_signature_algorithms)

    @classmethod
    def parse_body(cls, data: memoryview | bytes, context: ExtensionContext) -> Self:
        with ext_reader(data, cls.extension_type) as r:
            schemes = read_u16_enums(r, 2, SignatureScheme, min_len=2, max_len=0xFFFE,
                                     what="signature_algorithms extension")
        return cls(schemes)


@dataclass(frozen=True, slots=True)
class SignatureAlgorithmsCert(ExtensionBody):
    """signature_algorithms_cert (RFC 8446 §4.2.3): same body as signature_algorithms."""

    extension_type: ClassVar[ExtensionType] = _T.SIGNATURE_ALGORITHMS_CERT
    supported_signature_algorithms: tuple[SignatureScheme, ...]

    def write_body(self, w: Writer) -> None:
        write_u16s(w, 2, self.supported_signature_algorithms)

    @classmethod
    def parse_body(cls, data: memoryview | bytes, context: ExtensionContext) -> Self:
        with ext_reader(data, cls.extension_type) as r:
            schemes = read_u16_enums(r, 2, SignatureScheme, min_len=2, max_len=0xFFFE,
                                     what="signature_algorithms_cert extension")
        return cls(schemes)


@dataclass(frozen=True, slots=True)
class ApplicationLayerProtocolNegotiation(ExtensionBody):
    """application_layer_protocol_negotiation (RFC 7301 §3.1):
    ProtocolName protocol_name_list<2..2^16-1>, opaque ProtocolName<1..2^8-1>."""

    extension_type: ClassVar[ExtensionType] = _T.APPLICATION_LAYER_PROTOCOL_NEGOTIATION
    protocol_name_list: tuple[bytes, ...]

    def write_body(self, w: Writer) -> None:
        write_opaque_list(w, 2, 1, self.protocol_name_list)

    @classmethod
    def parse_body(cls, data: memoryview | bytes, context: ExtensionContext) -> Self:
        with ext_reader(data, cls.extension_type) as r:
            names = read_opaque_list(
                r, 2, 1, min_len=2, max_len=0xFFFF, item_min=1, item_max=0xFF,
                what="application_layer_protocol_negotiation protocol_name_list")
        if context in SERVER_CONTEXTS and len(names) != 1:
            # RFC 7301 §3.1: the server's list "MUST contain exactly one" ProtocolName.
            raise DecodeError("application_layer_protocol_negotiation extension: a server "
                              f"must select exactly one protocol, got {len(names)}")
        return cls(names)

    @property
    def selected(self) -> bytes:
        """The server's choice (the only entry)."""
        return self.protocol_name_list[0]


@dataclass(frozen=True, slots=True)
class Padding(ExtensionBody):
    """padding (RFC 7685 §3): ``length`` zero bytes."""

    extension_type: ClassVar[ExtensionType] = _T.PADDING
    length: int

    def write_body(self, w: Writer) -> None:
        w.raw(bytes(self.length))

    @classmethod
    def parse_body(cls, data: memoryview | bytes, context: ExtensionContext) -> Self:
        n = len(data)
        if bytes(data) != bytes(n):
            # RFC 7685 §3: the padding "MUST" be all zero bytes. The RFC names no alert;
            # a nonzero byte is a well-formed but invalid value -> illegal_parameter
            # (RFC 8446 §6: syntactically correct, semantically invalid).
            raise IllegalParameter("padding extension: contains a nonzero byte")
        return cls(n)


@dataclass(frozen=True, slots=True)
class EncryptThenMac(ExtensionBody):
    """encrypt_then_mac (RFC 7366 §2): empty."""

    extension_type: ClassVar[ExtensionType] = _T.ENCRYPT_THEN_MAC

    def write_body(self, w: Writer) -> None:
        pass

    @classmethod
    def parse_body(cls, data: memoryview | bytes, context: ExtensionContext) -> Self:
        expect_empty(data, cls.extension_type)
        return cls()


@dataclass(frozen=True, slots=True)
class ExtendedMasterSecret(ExtensionBody):
    """extended_master_secret (RFC 7627 §5.1): "The extension_data field ... is empty"."""

    extension_type: ClassVar[ExtensionType] = _T.EXTENDED_MASTER_SECRET

    def write_body(self, w: Writer) -> None:
        pass

    @classmethod
    def parse_body(cls, data: memoryview | bytes, context: ExtensionContext) -> Self:
        expect_empty(data, cls.extension_type)
        return cls()


@dataclass(frozen=True, slots=True)
class RecordSizeLimit(ExtensionBody):
    """record_size_limit (RFC 8449 §4): uint16 RecordSizeLimit."""

    extension_type: ClassVar[ExtensionType] = _T.RECORD_SIZE_LIMIT
    record_size_limit: int

    def write_body(self, w: Writer) -> None:
        w.u16(self.record_size_limit)

    @classmethod
    def parse_body(cls, data: memoryview | bytes, context: ExtensionContext) -> Self:
        with ext_reader(data, cls.extension_type) as r:
            limit = r.u16()
        if limit < 64:
            # RFC 8449 §4: a value smaller than 64 MUST be treated as a fatal error and
            # generate an "illegal_parameter" alert.
            raise IllegalParameter(f"record_size_limit extension: {limit} is below 64")
        return cls(limit)


@dataclass(frozen=True, slots=True)
class SessionTicket(ExtensionBody):
    """SessionTicket (RFC 5077 §3.2): the whole body is the opaque ticket (empty to ask
    for a new one); a ServerHello's is always empty."""

    extension_type: ClassVar[ExtensionType] = _T.SESSION_TICKET
    ticket: bytes = b""

    def write_body(self, w: Writer) -> None:
        w.raw(self.ticket)

    @classmethod
    def parse_body(cls, data: memoryview | bytes, context: ExtensionContext) -> Self:
        if context is ExtensionContext.SERVER_HELLO:
            # RFC 5077 §3.2: the server sends an empty SessionTicket extension.
            expect_empty(data, cls.extension_type)
        return cls(bytes(data))


@dataclass(frozen=True, slots=True)
class RenegotiationInfo(ExtensionBody):
    """renegotiation_info (RFC 5746 §3.2): opaque renegotiated_connection<0..255>."""

    extension_type: ClassVar[ExtensionType] = _T.RENEGOTIATION_INFO
    renegotiated_connection: bytes = b""

    def write_body(self, w: Writer) -> None:
        w.opaque(1, self.renegotiated_connection)

    @classmethod
    def parse_body(cls, data: memoryview | bytes, context: ExtensionContext) -> Self:
        with ext_reader(data, cls.extension_type) as r:
            value = r.opaque(1)
        return cls(value)


@dataclass(frozen=True, slots=True)
class NextProtocolNegotiation(ExtensionBody):
    """next_protocol_negotiation (draft-agl-tls-nextprotoneg-04 §3): empty in a ClientHello;
    in a ServerHello the body is the advertised protocols, each ``opaque<1..255>``, with
    no outer length (an empty body advertises nothing)."""

    extension_type: ClassVar[ExtensionType] = _T.NEXT_PROTOCOL_NEGOTIATION
    protocols: tuple[bytes, ...] = ()

    def write_body(self, w: Writer) -> None:
        for proto in self.protocols:
            w.opaque(1, proto)

    @classmethod
    def parse_body(cls, data: memoryview | bytes, context: ExtensionContext) -> Self:
        if context is ExtensionContext.CLIENT_HELLO:
            expect_empty(data, cls.extension_type)
            return cls()
        protos: list[bytes] = []
        with ext_reader(data, cls.extension_type) as r:
            while not r.at_end():
                protos.append(r.opaque(1, min_len=1))
        return cls(tuple(protos))


@dataclass(frozen=True, slots=True)
class ApplicationSettingsClientHello(ExtensionBody):
    """application_settings in a ClientHello (draft-vvv-tls-alps-01 §3, old codepoint
    17513): ProtocolName supported_protocols<2..2^16-1> -- the ALPN protocols the client
    has settings for."""

    extension_type: ClassVar[ExtensionType] = _T.APPLICATION_SETTINGS
    protocols: tuple[bytes, ...]

    def write_body(self, w: Writer) -> None:
        write_opaque_list(w, 2, 1, self.protocols)

    @classmethod
    def parse_body(cls, data: memoryview | bytes, context: ExtensionContext) -> Self:
        with ext_reader(data, cls.extension_type) as r:
            protos = read_opaque_list(r, 2, 1, min_len=2, max_len=0xFFFF, item_min=1,
                                      item_max=0xFF, what="application_settings protocols")
        return cls(protos)


@dataclass(frozen=True, slots=True)
class ApplicationSettingsNewClientHello(ApplicationSettingsClientHello):
    """The same under the new codepoint 17613 (0x44cd)."""

    extension_type: ClassVar[ExtensionType] = _T.APPLICATION_SETTINGS_NEW


@dataclass(frozen=True, slots=True)
class ApplicationSettings(ExtensionBody):
    """application_settings in EncryptedExtensions or ClientEncryptedExtensions
    (draft-vvv-tls-alps-01 §3): the body is the opaque settings (maybe empty)."""

    extension_type: ClassVar[ExtensionType] = _T.APPLICATION_SETTINGS
    settings: bytes = b""

    def write_body(self, w: Writer) -> None:
        w.raw(self.settings)

    @classmethod
    def parse_body(cls, data: memoryview | bytes, context: ExtensionContext) -> Self:
        return cls(bytes(data))


@dataclass(frozen=True, slots=True)
class ApplicationSettingsNew(ApplicationSettings):
    """The same under the new codepoint 17613 (0x44cd)."""

    extension_type: ClassVar[ExtensionType] = _T.APPLICATION_SETTINGS_NEW

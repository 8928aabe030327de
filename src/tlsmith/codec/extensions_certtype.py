"""RFC 7250 §4.1: client_certificate_type (19) and server_certificate_type (20).

In a ClientHello each carries ``CertificateType <types><1..2^8-1>`` (most preferred
first); in a TLS 1.2 ServerHello or a TLS 1.3 EncryptedExtensions, the one type chosen.
The list is read with no lower bound: an empty list (or one holding only X.509, which
the client must omit instead, §4.2) is the handshake's illegal_parameter, not a codec
decode_error, as BoringSSL answers it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

from tlsmith.codec.buffer import Writer
from tlsmith.codec.enums import CertificateType, ExtensionType
from tlsmith.codec.extensions_base import (
    ExtensionBody,
    ExtensionContext,
    ext_reader,
    read_u8_enums,
    write_u8s,
)

_T = ExtensionType


class _TypeList(ExtensionBody):
    __slots__ = ()
    extension_type: ClassVar[ExtensionType]
    certificate_types: tuple[CertificateType, ...]

    def write_body(self, w: Writer) -> None:
        write_u8s(w, 1, self.certificate_types)

    @classmethod
    def parse_body(cls, data: memoryview | bytes, context: ExtensionContext) -> Self:
        with ext_reader(data, cls.extension_type) as r:
            types = read_u8_enums(r, 1, CertificateType, min_len=0, max_len=255,
                                  what=f"{cls.extension_type.name.lower()} extension")
        return cls(types)  # type: ignore[call-arg]


class _TypeChosen(ExtensionBody):
    __slots__ = ()
    extension_type: ClassVar[ExtensionType]
    certificate_type: CertificateType

    def write_body(self, w: Writer) -> None:
        w.u8(self.certificate_type)

    @classmethod
    def parse_body(cls, data: memoryview | bytes, context: ExtensionContext) -> Self:
        with ext_reader(data, cls.extension_type) as r:
            chosen = CertificateType(r.u8())
        return cls(chosen)  # type: ignore[call-arg]


@dataclass(frozen=True, slots=True)
class ClientCertificateTypeList(_TypeList):
    """client_certificate_type in a ClientHello: the types the client can send."""

    extension_type: ClassVar[ExtensionType] = _T.CLIENT_CERTIFICATE_TYPE
    certificate_types: tuple[CertificateType, ...]


@dataclass(frozen=True, slots=True)
class ClientCertificateTypeChosen(_TypeChosen):
    """client_certificate_type from the server: the type the client must send."""

    extension_type: ClassVar[ExtensionType] = _T.CLIENT_CERTIFICATE_TYPE
    certificate_type: CertificateType


@dataclass(frozen=True, slots=True)
class ServerCertificateTypeList(_TypeList):
    """server_certificate_type in a ClientHello: the types the client accepts."""

    extension_type: ClassVar[ExtensionType] = _T.SERVER_CERTIFICATE_TYPE
    certificate_types: tuple[CertificateType, ...]


@dataclass(frozen=True, slots=True)
class ServerCertificateTypeChosen(_TypeChosen):
    """server_certificate_type from the server: the type of its Certificate."""

    extension_type: ClassVar[ExtensionType] = _T.SERVER_CERTIFICATE_TYPE
    certificate_type: CertificateType

"""The Certificate message carrying a raw public key (RFC 7250 §3).

TLS 1.2: the message body is ``opaque ASN.1_subjectPublicKeyInfo<1..2^24-1>`` in place
of the certificate_list. TLS 1.3 keeps its Certificate structure and puts the SPKI in
the one CertificateEntry's cert_data (RFC 8446 §4.4.2); ``parse_certificate13_rpk``
reads it like ``Certificate.parse_body`` but lets an empty cert_data through, so the
handshake can say the key is empty rather than the list malformed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

from tlsmith.codec.buffer import Reader, Writer
from tlsmith.codec.enums import HandshakeType
from tlsmith.codec.extensions import parse_extensions
from tlsmith.codec.extensions_base import ExtensionContext
from tlsmith.codec.messages import Certificate, CertificateEntry
from tlsmith.codec.messages12 import MessageBase


@dataclass(frozen=True, slots=True)
class RawPublicKeyCertificate12(MessageBase):
    """RFC 7250 §3, TLS 1.2: ``opaque ASN.1_subjectPublicKeyInfo<1..2^24-1>``. An empty
    one is read as ``b""`` (the sender has no key: the empty Certificate of RFC 5246
    §7.4.6 has the same three zero bytes)."""

    msg_type: ClassVar[HandshakeType] = HandshakeType.CERTIFICATE
    subject_public_key_info: bytes

    def write_body(self, w: Writer) -> None:
        w.opaque(3, self.subject_public_key_info)

    @classmethod
    def parse_body(cls, body: bytes | memoryview) -> Self:
        with Reader(body, "Certificate (raw public key)") as r:
            spki = r.opaque(3)
        return cls(spki)


def parse_certificate13_rpk(body: bytes | memoryview) -> Certificate:
    """RFC 8446 §4.4.2 with the RawPublicKey form of cert_data, empty allowed here."""
    entries: list[CertificateEntry] = []
    with Reader(body, "Certificate") as r:
        context = r.opaque(1)
        with r.vector(3, what="Certificate certificate_list") as lst:
            while not lst.at_end():
                cert_data = lst.opaque(3)
                extensions = parse_extensions(lst, ExtensionContext.CERTIFICATE)
                entries.append(CertificateEntry(cert_data, extensions))
    return Certificate(context, tuple(entries))

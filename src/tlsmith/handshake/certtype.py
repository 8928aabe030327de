"""RFC 7250 §4: negotiating the certificate types (X.509 or a raw public key).

The client lists the types it accepts from the server (server_certificate_type) and the
types it can send (client_certificate_type), each omitted when it would say X.509 alone;
the server answers each with the one type chosen (TLS 1.2 ServerHello, TLS 1.3
EncryptedExtensions) or omits it, which means X.509. The server picks its most
preferred shared type: for its own certificate, the first credential (in configuration
order) of a type the client accepts; for the client's, the first of its
``client_certificate_types`` the client listed. No shared type is unsupported_certificate.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tlsmith.codec import extensions as ext
from tlsmith.codec.enums import CertificateType
from tlsmith.codec.extensions_base import ext_name
from tlsmith.config import CertifiedKey, ClientConfig, ServerConfig
from tlsmith.errors import IllegalParameter, UnsupportedCertificate
from tlsmith.handshake.client_auth import NoClientCredential

X509 = CertificateType.X509
RPK = CertificateType.RAW_PUBLIC_KEY
_KNOWN = (X509, RPK)


@dataclass(frozen=True)
class CertTypes:
    """The types the handshake settled on (X.509 unless an extension said otherwise)."""

    server: CertificateType = X509
    client: CertificateType = X509
    # Client side: the client_certificate_type list we sent (() if none).
    client_offered: tuple[CertificateType, ...] = ()


DEFAULT = CertTypes()


# ---------------------------------------------------------------------------- client
def client_offered_types(cfg: ClientConfig) -> tuple[CertificateType, ...]:
    """The client_certificate_type list to send, () to omit it: the configured types,
    else the type of our certificate."""
    types = cfg.client_certificate_types
    if types is None:
        types = tuple(dict.fromkeys(c.certificate_type for c in cfg.client_credentials))
    return () if tuple(types) in ((), (X509,)) else tuple(types)


def hello_extensions(cfg: ClientConfig) -> list[ext.Extension]:
    out: list[ext.Extension] = []
    client_types = client_offered_types(cfg)
    if client_types:
        out.append(ext.ClientCertificateTypeList(client_types))
    if tuple(cfg.server_certificate_types) != (X509,):
        out.append(ext.ServerCertificateTypeList(tuple(cfg.server_certificate_types)))
    return out


def client_read_answer(cfg: ClientConfig, extensions: Iterable[ext.Extension], *,
                       certificate_follows: bool) -> CertTypes:
    """The server's answers (already checked to answer only what we offered). A type we
    did not list, or X.509 by default when we did not accept it and a Certificate
    follows, is unsupported_certificate."""
    extensions = tuple(extensions)
    chosen = ext.find_extension(extensions, ext.ServerCertificateTypeChosen)
    server = chosen.certificate_type if chosen is not None else X509
    if (chosen is not None or certificate_follows) and \
            server not in cfg.server_certificate_types:
        how = "chose" if chosen is not None else "left the default,"
        raise UnsupportedCertificate(
            f"the server {how} {server.name} for its certificate; we accept only "
            + ", ".join(t.name for t in cfg.server_certificate_types) + " (RFC 7250 §4.2)",
            check="cert_type_not_offered")
    offered = client_offered_types(cfg)
    picked = ext.find_extension(extensions, ext.ClientCertificateTypeChosen)
    client = picked.certificate_type if picked is not None else X509
    if picked is not None and client not in offered:
        raise UnsupportedCertificate(
            f"the server asks for a {client.name} client certificate, a type we did not "
            "offer (RFC 7250 §4.2)", check="cert_type_not_offered")
    if picked is None and chosen is None and not offered:
        return DEFAULT  # X.509 both ways, nothing else offered: the usual answer
    return CertTypes(server, client, offered)


#: None of our credentials is of the negotiated client certificate type.
NO_CREDENTIAL_OF_TYPE = NoClientCredential(
    "client_cert_type", "none of our client credentials is of the certificate type the "
    "server asked for (RFC 7250)")


def of_client_type(creds: tuple[CertifiedKey, ...], types: CertTypes | None
                   ) -> tuple[CertifiedKey, ...]:
    """Answering a CertificateRequest: our credentials of the type the server asked for
    (None: post-handshake authentication, X.509 only). X.509 by default after we
    offered only other types is an error (we said we cannot send one)."""
    want = types.client if types is not None else X509
    if (types is not None and want == X509 and types.client_offered
            and X509 not in types.client_offered):
        raise UnsupportedCertificate(
            "the server asks for a client certificate of the default type X.509, which "
            "our client_certificate_type did not offer", check="client_cert_type_default")
    return tuple(c for c in creds if c.certificate_type == want)


# ---------------------------------------------------------------------------- server
def offered_types(found: ext.ClientCertificateTypeList | ext.ServerCertificateTypeList
                  | None) -> tuple[CertificateType, ...] | None:
    """A ClientHello list, validated: None when absent. RFC 7250 §4.1: at least one type,
    and not X.509 alone (the client omits the extension then); BoringSSL answers both
    with illegal_parameter. Unknown types are ignored (§4.2)."""
    if found is None:
        return None
    types = found.certificate_types
    if not types or tuple(types) == (X509,):
        raise IllegalParameter(f"{ext_name(found.extension_type)} extension: the list must "
                               "hold a type other than the default X.509 (RFC 7250 §4.1)",
                               check="cert_type_list_invalid")
    return tuple(t for t in types if t in _KNOWN)


def server_accepts(offered: tuple[CertificateType, ...] | None, ck: CertifiedKey) -> bool:
    """Whether the client accepts a credential of this type (X.509 when it listed none)."""
    return ck.certificate_type in (offered if offered is not None else (X509,))


def choose_client_type(cfg: ServerConfig, offered: tuple[CertificateType, ...] | None
                       ) -> CertificateType:
    """The client certificate type to ask for: our most preferred one the client lists
    (X.509 when it sent no list)."""
    theirs = offered if offered is not None else (X509,)
    for t in cfg.client_certificate_types:
        if t in theirs:
            return t
    raise UnsupportedCertificate(
        "no client certificate type in common: the client can send "
        + (", ".join(t.name for t in theirs) or "none we know")
        + "; we accept " + ", ".join(t.name for t in cfg.client_certificate_types)
        + " (RFC 7250 §4.2)", check="cert_type_no_overlap")


def server_answer(server_offered: tuple[CertificateType, ...] | None,
                  client_offered: tuple[CertificateType, ...] | None,
                  server_type: CertificateType | None, client_type: CertificateType | None
                  ) -> list[ext.Extension]:
    """The extensions answering the client's lists (only those it sent): our
    certificate's type (on resumption, the session's), and the client certificate type
    we ask for (when we ask)."""
    out: list[ext.Extension] = []
    if server_offered is not None and server_type is not None:
        out.append(ext.ServerCertificateTypeChosen(server_type))
    if client_offered is not None and client_type is not None:
        out.append(ext.ClientCertificateTypeChosen(client_type))
    return out

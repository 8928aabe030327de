"""Which of the client's credentials answers a CertificateRequest.

The credentials are tried in ``ClientConfig.client_credentials`` order; the first that
fits is sent. A credential fits when (TLS 1.2) its key type is among the request's
certificate_types (RFC 5246 §7.4.4; Ed25519/Ed448 count as ECDSA_SIGN, RFC 8422 §5.5),
its key can make one of the requested signature schemes (RFC 8446 §4.4.2.2, RFC 5246
§7.4.4), and, when it is ``must_match_issuer``, the request's certificate_authorities
names an issuer of its chain (RFC 8446 §4.2.4).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tlsmith.codec.enums import ClientCertificateType, ProtocolVersion, SignatureScheme
from tlsmith.config import CertificateCallback, CertifiedKey
from tlsmith.errors import call_application

_CERT_TYPE_FOR_KEY = {"rsa": ClientCertificateType.RSA_SIGN,
                      "ecdsa": ClientCertificateType.ECDSA_SIGN,
                      "eddsa": ClientCertificateType.ECDSA_SIGN}  # RFC 8422 §5.5


@dataclass(frozen=True)
class ClientCredential:
    """The credential to send and the scheme its CertificateVerify signs with."""

    credential: CertifiedKey
    scheme: SignatureScheme


@dataclass(frozen=True)
class NoClientCredential:
    """None fits; ``check`` and ``reason`` say why the last one tried did not."""

    check: str
    reason: str


def _scheme(cred: CertifiedKey, requested: Sequence[SignatureScheme], *, tls13: bool
            ) -> SignatureScheme | None:
    if tls13:
        ours = [s for s in cred.tls12_schemes if s in cred.tls13_schemes]
        # TLS 1.3-only schemes (ML-DSA, RFC 9963's legacy PKCS#1) have no TLS 1.2 order
        # to borrow.
        ours += sorted(cred.tls13_schemes.difference(ours))
    else:
        ours = list(cred.tls12_schemes)
    return next((s for s in ours if s in requested), None)


def choose_client_credential(
    credentials: Sequence[CertifiedKey], *, tls13: bool,
    schemes: Sequence[SignatureScheme], certificate_types: Sequence[int] | None = None,
    ca_names: tuple[bytes, ...] | None = None,
) -> ClientCredential | NoClientCredential:
    """The first of ``credentials`` that fits the request. ``certificate_types``: the
    TLS 1.2 list (None in TLS 1.3); ``ca_names``: certificate_authorities (None: absent)."""
    miss = NoClientCredential("client_cert_none", "we have no client certificate")
    for cred in credentials:
        if (certificate_types is not None
                and _CERT_TYPE_FOR_KEY.get(cred.key_type) not in certificate_types):
            miss = NoClientCredential(
                "client_cert_type", f"our {cred.key_type.upper()} client certificate is not "
                "among the server's certificate_types")
            continue
        scheme = _scheme(cred, schemes, tls13=tls13)
        if scheme is None:
            miss = NoClientCredential(
                "client_cert_sigalg", "none of our client certificates can sign with a "
                "scheme the server's signature_algorithms lists")
            continue
        if not cred.matches_issuers(ca_names):
            miss = NoClientCredential(
                "client_cert_issuer", "our client certificate must match an issuer the "
                "server names in certificate_authorities, and none does")
            continue
        return ClientCredential(cred, scheme)
    return miss


@dataclass(frozen=True)
class CertificateRequestInfo:
    """What the server asked for, as ClientConfig.certificate_callback sees it."""

    version: ProtocolVersion
    signature_schemes: tuple[SignatureScheme, ...]
    #: DER DistinguishedNames of the CAs the server accepts (None: it named none).
    certificate_authorities: tuple[bytes, ...] | None
    #: TLS 1.2 CertificateRequest.certificate_types (None in TLS 1.3).
    certificate_types: tuple[int, ...] | None


def callback_credentials(callback: CertificateCallback, info: CertificateRequestInfo,
                         configured: tuple[CertifiedKey, ...]) -> tuple[CertifiedKey, ...]:
    """The credentials the callback offers (None from it: the configured ones); an
    exception it raises is our failure, not the peer's: internal_error."""
    chosen = call_application("the client certificate callback", "certificate_callback",
                              callback, info)
    return configured if chosen is None else tuple(chosen)

"""Raw public keys (RFC 7250): a bare DER SubjectPublicKeyInfo in place of a chain.

A peer's raw public key carries no name and no issuer: nothing about it can be checked
except whether it is a key we were told to accept (a pinned SPKI or the user's
callback). ``certificate_type_of`` tells a stored peer "chain" of one SPKI from an
X.509 chain, so a resumed session reports the type it was authenticated with.
"""

from __future__ import annotations

import functools

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from tlsmith.codec.enums import CertificateType
from tlsmith.errors import DecodeError, UnsupportedCertificate
from tlsmith.x509.keys import PrivateKey, PublicKey


def spki_der(key: PrivateKey | PublicKey) -> bytes:
    """The DER SubjectPublicKeyInfo of a key (of a private key: its public half)."""
    public = key if isinstance(key, PublicKey) else key.public_key()
    return public.public_bytes(serialization.Encoding.DER,
                               serialization.PublicFormat.SubjectPublicKeyInfo)


@functools.lru_cache(maxsize=256)  # (bounded: the bytes are the peer's choice)
def raw_public_key(spki: bytes) -> PublicKey:
    """The key in a peer's SubjectPublicKeyInfo (RFC 7250 §3). An empty one is
    ``DecodeError`` (check ``rpk_empty``); bytes that are not an SPKI, ``DecodeError``;
    a key tlsmith cannot verify TLS signatures with, ``UnsupportedCertificate``."""
    if not spki:
        raise DecodeError("the raw public key is empty (RFC 7250 §3: "
                          "ASN.1_subjectPublicKeyInfo<1..2^24-1>)", check="rpk_empty")
    try:
        key = serialization.load_der_public_key(spki)
    except Exception as exc:  # ValueError, UnsupportedAlgorithm
        raise DecodeError(f"the raw public key is not a DER SubjectPublicKeyInfo: {exc}",
                          check="rpk_malformed") from exc
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey
                      | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        raise UnsupportedCertificate(f"the raw public key is a {type(key).__name__}, which "
                                     "signs no TLS handshake")
    return key


def certificate_type_of(chain: tuple[bytes, ...]) -> CertificateType | None:
    """RAW_PUBLIC_KEY for a one-element chain that is an SPKI, X509 for a chain of
    certificates, None for no chain. (A certificate never parses as an SPKI: its first
    field is the TBSCertificate, not an AlgorithmIdentifier.)"""
    if not chain:
        return None
    if len(chain) == 1:
        try:
            serialization.load_der_public_key(chain[0])
        except Exception:  # not an SPKI: a certificate
            return CertificateType.X509
        return CertificateType.RAW_PUBLIC_KEY
    return CertificateType.X509

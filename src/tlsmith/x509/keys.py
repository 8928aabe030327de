"""Loading private keys and certificate chains from PEM (or DER) files and bytes.

Loading is local configuration, not a peer's doing, so failures raise ``UsageError``
with a message that names the file and says what to fix.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, mldsa, rsa

from tlsmith.codec.enums import NamedGroup
from tlsmith.errors import UsageError

MLDSAPrivateKey: TypeAlias = (
    mldsa.MLDSA44PrivateKey | mldsa.MLDSA65PrivateKey | mldsa.MLDSA87PrivateKey
)
MLDSAPublicKey: TypeAlias = (
    mldsa.MLDSA44PublicKey | mldsa.MLDSA65PublicKey | mldsa.MLDSA87PublicKey
)
PrivateKey: TypeAlias = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
    | MLDSAPrivateKey
)
PublicKey: TypeAlias = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
    | MLDSAPublicKey
)
# FIPS 204 parameter sets, by key class (ML-DSA signs TLS 1.3 only: draft-ietf-tls-mldsa).
_MLDSA_NAMES: dict[type, str] = {
    mldsa.MLDSA44PrivateKey: "ML-DSA-44", mldsa.MLDSA44PublicKey: "ML-DSA-44",
    mldsa.MLDSA65PrivateKey: "ML-DSA-65", mldsa.MLDSA65PublicKey: "ML-DSA-65",
    mldsa.MLDSA87PrivateKey: "ML-DSA-87", mldsa.MLDSA87PublicKey: "ML-DSA-87",
}


def mldsa_name(key: object) -> str | None:
    """"ML-DSA-44", "ML-DSA-65" or "ML-DSA-87" for an ML-DSA key, else None."""
    for cls, name in _MLDSA_NAMES.items():
        if isinstance(key, cls):
            return name
    return None

#: A path (``str``/``PathLike``), or the PEM itself (``bytes``, or a ``str`` holding "-----BEGIN").
Source: TypeAlias = str | os.PathLike[str] | bytes

_PEM_MARKER = b"-----BEGIN"

# Friendly curve names (RFC 8446 §4.2.7 / NIST names) for the ones TLS signs with.
_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
_CURVE_GROUPS = {"secp256r1": NamedGroup.SECP256R1, "secp384r1": NamedGroup.SECP384R1,
                 "secp521r1": NamedGroup.SECP521R1}


def _read(source: Source) -> tuple[bytes, str]:
    """The bytes behind ``source`` and a label for messages (the path, or "PEM data")."""
    if isinstance(source, bytes):
        return source, "the PEM data given"
    if isinstance(source, str) and source.lstrip().startswith("-----BEGIN"):
        return source.encode("ascii", errors="replace"), "the PEM data given"
    path = Path(source)
    try:
        return path.read_bytes(), str(path)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory, not a PEM file") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it ({exc.strerror or exc})") from None


def load_private_key(source: Source, *, password: bytes | None = None) -> PrivateKey:
    """Load an RSA, ECDSA, Ed25519, Ed448 or ML-DSA private key from a PEM/DER file or
    PEM bytes.

    Accepts PKCS#8, traditional ("BEGIN RSA/EC PRIVATE KEY") and DER encodings.
    """
    data, label = _read(source)
    try:
        if _PEM_MARKER in data:
            key = serialization.load_pem_private_key(data, password=password)
        else:
            key = serialization.load_der_private_key(data, password=password)
    except TypeError as exc:
        # cryptography raises TypeError for a missing or unexpected password.
        if password is None:
            raise UsageError(
                f"{label}: the private key is encrypted; supply its password"
            ) from exc
        raise UsageError(f"{label}: the private key is not encrypted; omit the password") from exc
    except ValueError as exc:
        if password is not None and "password" in str(exc).lower():
            raise UsageError(f"{label}: wrong password for the private key") from exc
        if b"CERTIFICATE-----" in data and b"PRIVATE KEY-----" not in data:
            raise UsageError(
                f"{label} holds a certificate, not a private key; pass the key file instead"
            ) from exc
        raise UsageError(f"{label}: no usable private key found ({exc})") from exc
    except Exception as exc:  # unsupported algorithm and friends
        raise UsageError(f"{label}: cannot load the private key ({exc})") from exc
    if not isinstance(
        key,
        rsa.RSAPrivateKey
        | ec.EllipticCurvePrivateKey
        | ed25519.Ed25519PrivateKey
        | ed448.Ed448PrivateKey
        | mldsa.MLDSA44PrivateKey
        | mldsa.MLDSA65PrivateKey
        | mldsa.MLDSA87PrivateKey,
    ):
        raise UsageError(
            f"{label}: a {type(key).__name__} cannot sign TLS handshakes; "
            "use an RSA, ECDSA, Ed25519, Ed448 or ML-DSA key"
        )
    return key


def load_certificate_chain(source: Source) -> list[x509.Certificate]:
    """Load one or more certificates (leaf first, as in the file) from PEM, or one DER cert."""
    data, label = _read(source)
    try:
        if _PEM_MARKER in data:
            certs = x509.load_pem_x509_certificates(data)
        else:
            certs = [x509.load_der_x509_certificate(data)]
    except Exception as exc:  # ValueError, or InvalidVersion for "v4"
        if b"PRIVATE KEY-----" in data and b"CERTIFICATE-----" not in data:
            raise UsageError(
                f"{label} holds a private key, not a certificate; pass the certificate file"
            ) from exc
        raise UsageError(f"{label}: no certificate found ({exc})") from exc
    if not certs:
        raise UsageError(f"{label}: no certificate found")
    return certs


def der_chain(certs: Iterable[x509.Certificate]) -> list[bytes]:
    """The DER encodings, as carried in the TLS Certificate message (RFC 8446 §4.4.2)."""
    return [cert.public_bytes(serialization.Encoding.DER) for cert in certs]


def chain_issuers(chain: Iterable[bytes]) -> frozenset[bytes]:
    """The DER-encoded issuer names of a DER chain's certificates (to compare with a
    peer's certificate_authorities, which are DER DistinguishedNames)."""
    return frozenset(x509.load_der_x509_certificate(der).issuer.public_bytes()
                     for der in chain)


def key_description(key: PrivateKey | PublicKey | object) -> str:
    """A short name for a key: "RSA-2048", "ECDSA P-256", "Ed25519", "Ed448"."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return f"RSA-{key.key_size}"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return f"ECDSA {_CURVE_NAMES.get(key.curve.name, key.curve.name)}"
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PrivateKey | ed448.Ed448PublicKey):
        return "Ed448"
    pq = mldsa_name(key)
    if pq is not None:
        return pq
    size = getattr(key, "key_size", None)
    name = type(key).__name__.removeprefix("_")
    return f"{name}-{size}" if isinstance(size, int) else name


def ecdsa_curve_group(key: PrivateKey | PublicKey | object) -> NamedGroup | None:
    """The named group of an ECDSA key's curve (RFC 8422 §5.1.1), or None for other keys."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return _CURVE_GROUPS.get(key.curve.name)
    return None


def key_kind(key: PrivateKey | PublicKey | object) -> str:
    """What a TLS 1.2 suite's authentication must name for this key: "rsa" for RSA,
    "ecdsa" for ECDSA and EdDSA (RFC 8422 §5.1.1: EdDSA certificates use the ECDHE_ECDSA
    suites), "" for anything else."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "rsa"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey
                  | ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey
                  | ed448.Ed448PrivateKey | ed448.Ed448PublicKey):
        return "ecdsa"
    return ""

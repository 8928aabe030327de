"""Small facts about a single certificate that the handshake needs."""

from __future__ import annotations

import ipaddress
import threading
import warnings

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, mldsa, rsa
from cryptography.utils import CryptographyDeprecationWarning

from tlsmith.errors import BadCertificate, UnsupportedCertificate

PublicKey = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
    | ed448.Ed448PublicKey
    | mldsa.MLDSA44PublicKey | mldsa.MLDSA65PublicKey | mldsa.MLDSA87PublicKey
)


# Certificates already parsed (and their lazily parsed fields forced), by DER: a server
# sends the same chain to every client, and a client meets the same servers again, so
# each handshake need not parse it anew (a cryptography Certificate is immutable).
# Bounded; only certificates that parsed cleanly are kept.
_CACHE_SIZE = 512
_parsed: dict[bytes, x509.Certificate] = {}
_keys: dict[bytes, object] = {}
_lock = threading.Lock()


def _remember(cache: dict[bytes, object] | dict[bytes, x509.Certificate], der: bytes,
              value: object) -> None:
    with _lock:
        if len(cache) >= _CACHE_SIZE:
            del cache[next(iter(cache))]  # the oldest entry
        cache[der] = value  # type: ignore[assignment]


def load_certificate(der: bytes | bytearray | memoryview) -> x509.Certificate:
    """Parse a DER certificate and force the fields verification reads (cryptography
    parses lazily, so invalid ASN.1 -- a bad Name, version INTEGER 3, truncated DER --
    raises here rather than later from inside it). Cached by DER. Raises whatever
    cryptography raises (ValueError, x509.InvalidVersion...)."""
    key = bytes(der)
    cert = _parsed.get(key)
    if cert is not None:
        return cert
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        cert = x509.load_der_x509_certificate(key)
        cert.subject  # noqa: B018 -- force the lazy parses
        cert.issuer  # noqa: B018
        cert.not_valid_before_utc  # noqa: B018
        cert.not_valid_after_utc  # noqa: B018
        cert.extensions  # noqa: B018
    _remember(_parsed, key, cert)
    return cert


def parse_der(der: bytes) -> x509.Certificate:
    try:
        return load_certificate(der)
    except Exception as exc:  # ValueError, x509.InvalidVersion, ...
        raise BadCertificate(f"a certificate could not be parsed as DER X.509: {exc}") from exc


def leaf_public_key(der: bytes) -> PublicKey:
    cached = _keys.get(der)
    if cached is not None:
        return cached  # type: ignore[return-value]
    try:
        # cryptography parses lazily: a bad version or key surfaces here, and not always
        # as ValueError (e.g. InvalidVersion). A peer's bytes must end in bad_certificate.
        key = parse_der(der).public_key()
    except BadCertificate:
        raise
    except Exception as exc:
        raise BadCertificate(f"the certificate could not be parsed: {exc}") from exc
    if isinstance(key, PublicKey):
        _remember(_keys, bytes(der), key)
        return key
    raise UnsupportedCertificate(f"the certificate's key type ({type(key).__name__}) is "
                                 "not usable for TLS signatures")


def certificate_names(cert: x509.Certificate) -> tuple[str, ...]:
    """DNS names and IP addresses from subjectAltName (the CN only when no SAN exists)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        cns = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        return tuple(str(cn.value) for cn in cns)
    names: list[str] = list(san.get_values_for_type(x509.DNSName))
    names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return tuple(names)


def name_matches(pattern: str, host: str) -> bool:
    """RFC 6125 §6.4.3: a left-most ``*`` label matches exactly one label."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    try:
        return ipaddress.ip_address(pattern) == ipaddress.ip_address(host)
    except ValueError:
        pass
    if pattern.startswith("*."):
        head, _, rest = host.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == host

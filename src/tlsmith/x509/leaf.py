"""Small facts about a single certificate that the handshake needs."""

from __future__ import annotations

import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from tlsmith.errors import BadCertificate, UnsupportedCertificate

PublicKey = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
    | ed448.Ed448PublicKey
)


def parse_der(der: bytes) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise BadCertificate(f"a certificate could not be parsed as DER X.509: {exc}") from exc


def leaf_public_key(der: bytes) -> PublicKey:
    try:
        # cryptography parses lazily: a bad version or key surfaces here, and not always
        # as ValueError (e.g. InvalidVersion). A peer's bytes must end in bad_certificate.
        key = parse_der(der).public_key()
    except BadCertificate:
        raise
    except Exception as exc:
        raise BadCertificate(f"the certificate could not be parsed: {exc}") from exc
    if isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey
                  | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
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

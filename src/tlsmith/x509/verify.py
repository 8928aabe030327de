"""Certificate chain verification (RFC 5280 path validation, RFC 6125 name checks).

The heavy lifting is done by ``cryptography.x509.verification`` (a strict RFC 5280 /
CA/Browser Forum profile). This module adds what a person needs when it fails: every
failure becomes the typed error that carries the right alert (RFC 8446 §6.2), and its
message says, in words, what is wrong and what would fix it.

Success returns a ``VerifiedChain`` -- the proof token the handshake state after
Certificate requires (design.md §7), so skipping verification is a type error.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from pathlib import Path
from typing import TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509 import DNSName, IPAddress
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    PolicyBuilder,
    Store,
    Subject,
    VerificationError,
)

from tlsmith.errors import (
    BadCertificate,
    CertificateExpired,
    CertificateRequired,
    CertificateUnknown,
    ProtocolError,
    UnknownCA,
    UnsupportedCertificate,
    UsageError,
)
from tlsmith.x509.keys import key_description

__all__ = [
    "SYSTEM_BUNDLE_PATHS",
    "TrustStore",
    "VerifiedChain",
    "describe_certificate",
    "verify_client_chain",
    "verify_server_chain",
]

# Where distributions keep the system CA bundle (Debian/Ubuntu first).
SYSTEM_BUNDLE_PATHS = (
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
)

_PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----\r?\n.*?-----END CERTIFICATE-----", re.DOTALL
)
_CAFILE_HINT = "pass --cafile with the CA that issued it"

_SanValue: TypeAlias = str | ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class VerifiedChain:
    """Proof that a peer's certificate chain was verified (design.md §7).

    Create it only through ``verify_server_chain`` or ``verify_client_chain``: code that
    must not run before verification takes a ``VerifiedChain`` argument, so the type
    checker catches a path that skipped it.

    ``chain`` is the validated path, leaf first and the trust anchor last; ``hostname``
    is the (normalised) name that was checked, or None when no name was checked.
    """

    chain: tuple[x509.Certificate, ...]
    leaf: x509.Certificate
    hostname: str | None


class TrustStore:
    """A set of trust anchors (root CAs, or pinned self-signed certificates)."""

    def __init__(self, certificates: Iterable[x509.Certificate], *, source: str) -> None:
        self.certificates: tuple[x509.Certificate, ...] = tuple(certificates)
        #: Where the anchors came from, for messages ("/etc/ssl/certs/...", "3 certificates").
        self.source = source
        if not self.certificates:
            raise UsageError(f"no trusted certificates in {source}")
        self.store = Store(list(self.certificates))
        self._by_subject: dict[bytes, list[x509.Certificate]] = {}
        for cert in self.certificates:
            self._by_subject.setdefault(_name_key(cert.subject), []).append(cert)

    def __len__(self) -> int:
        return len(self.certificates)

    def __repr__(self) -> str:
        return f"TrustStore({len(self)} certificates from {self.source})"

    @classmethod
    def from_certificates(cls, certs: Iterable[x509.Certificate]) -> TrustStore:
        certs = tuple(certs)
        return cls(certs, source="the certificates given")

    @classmethod
    def from_pem_bytes(
        cls, data: bytes, *, source: str = "the PEM data given", skip_unreadable: bool = False
    ) -> TrustStore:
        """Every certificate in ``data``; one that cannot be parsed is an error unless
        ``skip_unreadable`` (used for the system bundle, which may hold odd old roots)."""
        certs: list[x509.Certificate] = []
        for index, block in enumerate(_PEM_CERTIFICATE.findall(data), start=1):
            try:
                with warnings.catch_warnings():
                    # e.g. a root with a negative serial (RFC 5280 §4.1.2.2 forbids it)
                    warnings.simplefilter("ignore", CryptographyDeprecationWarning)
                    certs.append(x509.load_pem_x509_certificate(block))
            except ValueError as exc:
                if not skip_unreadable:
                    raise UsageError(
                        f"{source}: certificate #{index} cannot be read ({exc})"
                    ) from exc
        return cls(certs, source=source)

    @classmethod
    def from_pem_file(
        cls, path: str | os.PathLike[str], *, skip_unreadable: bool = False
    ) -> TrustStore:
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UsageError(f"{path}: cannot read the CA file ({exc.strerror or exc})") from exc
        return cls.from_pem_bytes(data, source=str(path), skip_unreadable=skip_unreadable)

    @classmethod
    def system(cls) -> TrustStore:
        """The operating system's CA bundle (no certifi): the first of SYSTEM_BUNDLE_PATHS."""
        for candidate in SYSTEM_BUNDLE_PATHS:
            if os.path.isfile(candidate):
                return _load_cached(candidate, os.stat(candidate).st_mtime_ns)
        raise UsageError(
            "no system CA bundle found (looked in "
            + ", ".join(SYSTEM_BUNDLE_PATHS)
            + "); install ca-certificates or pass --cafile"
        )

    def issuers_of(self, cert: x509.Certificate) -> list[x509.Certificate]:
        """Trusted certificates named as ``cert``'s issuer (RFC 5280 §6.1: name chaining)."""
        return list(self._by_subject.get(_name_key(cert.issuer), ()))

    def __contains__(self, cert: object) -> bool:
        return cert in self.certificates


@functools.lru_cache(maxsize=4)
def _load_cached(path: str, _mtime_ns: int) -> TrustStore:
    return TrustStore.from_pem_file(path, skip_unreadable=True)


# --- verification -------------------------------------------------------------------


def verify_server_chain(
    cert_chain_der: Sequence[bytes],
    *,
    trust: TrustStore,
    server_name: str | None,
    now: datetime,
) -> VerifiedChain:
    """Verify a server's Certificate message (leaf first) for ``server_name`` at ``now``.

    ``server_name`` may be a DNS name or an IP address literal (RFC 6125 §6.4); None
    verifies the chain and the serverAuth purpose but no name. A naive ``now`` is UTC.
    Raises BadCertificate, CertificateExpired, CertificateUnknown, UnknownCA or
    UnsupportedCertificate, each with a message that explains the fix.
    """
    if not cert_chain_der:
        # RFC 8446 §4.4.2.4 makes an empty server Certificate a decode_error; the TLS 1.3
        # handshake checks that first. Reaching here empty is a chain with nothing to trust.
        raise BadCertificate("the server sent no certificate")
    now = _utc(now)
    certs = _parse_chain(cert_chain_der, "server")
    leaf, intermediates = certs[0], certs[1:]
    _check_validity(leaf, now, _describe_role(leaf, "the server's certificate"))

    checked_name: str | None = None
    if server_name is None:
        subject = _subject_from_leaf(leaf)
    else:
        subject, checked_name = _subject_for(server_name)
    try:
        verifier = PolicyBuilder().store(trust.store).time(now).build_server_verifier(subject)
    except ValueError as exc:  # cryptography's own check of the DNS name's syntax
        raise UsageError(f"{server_name!r} is not a valid host name ({exc})") from exc
    try:
        path = verifier.verify(leaf, intermediates)
    except VerificationError as exc:
        raise _explain(certs, trust, now, str(exc), "server", checked_name) from exc
    return VerifiedChain(chain=tuple(path), leaf=leaf, hostname=checked_name)


def verify_client_chain(
    cert_chain_der: Sequence[bytes], *, trust: TrustStore, now: datetime
) -> VerifiedChain:
    """Verify a client's certificate chain for mutual TLS (clientAuth purpose).

    An empty chain raises CertificateRequired (RFC 8446 §4.4.2.4); a server for which
    the client certificate is optional should not call this for an empty chain.
    """
    if not cert_chain_der:
        raise CertificateRequired("the client sent no certificate, but this server requires one")
    now = _utc(now)
    certs = _parse_chain(cert_chain_der, "client")
    leaf, intermediates = certs[0], certs[1:]
    _check_validity(leaf, now, _describe_role(leaf, "the client's certificate"))
    try:
        verifier = PolicyBuilder().store(trust.store).time(now).build_client_verifier()
        verified = verifier.verify(leaf, intermediates)
    except VerificationError as exc:
        raise _explain(certs, trust, now, str(exc), "client", None) from exc
    return VerifiedChain(chain=tuple(verified.chain), leaf=leaf, hostname=None)


def _parse_chain(cert_chain_der: Sequence[bytes], role: str) -> list[x509.Certificate]:
    certs: list[x509.Certificate] = []
    for index, der in enumerate(cert_chain_der):
        try:
            certs.append(x509.load_der_x509_certificate(bytes(der)))
        except ValueError as exc:
            which = f"the {role}'s certificate" if index == 0 else f"certificate #{index}"
            raise BadCertificate(
                f"{which} in the chain the {role} sent is not valid DER X.509 "
                f"({len(der)} bytes; {exc})"
            ) from exc
    return certs


def _subject_for(server_name: str) -> tuple[Subject, str]:
    """The RFC 6125 reference identity for ``server_name``: an IP-ID (§6.4.4) or a DNS-ID."""
    name = server_name.strip()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]  # a bracketed IPv6 literal, as in URLs
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        return IPAddress(address), str(address)
    # RFC 6125 §6.4.2: compare A-labels, case-insensitively, without the trailing dot.
    name = name.rstrip(".").lower()
    try:
        if not name.isascii():
            name = name.encode("idna").decode("ascii")
        return DNSName(name), name
    except (UnicodeError, ValueError) as exc:
        raise UsageError(
            f"{server_name!r} is neither a valid host name nor an IP address"
        ) from exc


def _subject_from_leaf(leaf: x509.Certificate) -> Subject:
    """A subject the leaf certainly covers, for verification with no name to check."""
    names = _san_values(leaf)
    for value in names:
        if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
            return IPAddress(value)
        if isinstance(value, str) and "*" not in value:
            return DNSName(value)
    for value in names:
        if isinstance(value, str) and value.startswith("*."):
            return DNSName("wildcard" + value[1:])
    # No usable SAN: cryptography will reject the leaf for that, which _explain reports.
    return DNSName("invalid")


# --- explaining failures --------------------------------------------------------------


def _explain(
    certs: list[x509.Certificate],
    trust: TrustStore,
    now: datetime,
    reason: str,
    role: str,
    server_name: str | None,
) -> ProtocolError:
    """Turn cryptography's failure into the typed error a person can act on.

    Order: the chain must reach a trust anchor (RFC 5280 §6.1), every certificate on
    the path must be within its validity (§4.1.2.5), then the name (RFC 6125 §6.4).
    """
    leaf = certs[0]
    reason = reason.removeprefix("validation failed: ")
    what = _describe_role(leaf, f"the {role}'s certificate")

    # Walk issuer links from the leaf through what the peer sent to a trusted certificate.
    current, remaining, position = leaf, list(certs[1:]), 1
    while current not in trust:
        anchors = trust.issuers_of(current)
        if anchors:
            signed = [a for a in anchors if _signed_by(current, a)]
            if not signed:
                return UnknownCA(
                    f"{what} names {_name(current.issuer)} as its issuer, and a trusted "
                    f"certificate has that name but a different key, so it did not sign "
                    f"it (was the CA regenerated?); {_CAFILE_HINT}"
                )
            anchor = signed[0]
            expired = _validity_error(
                anchor, now, f"the trusted CA certificate {_name(anchor.subject)}"
            )
            if expired is not None:
                return expired
            break
        candidates = [c for c in remaining if _name_key(c.subject) == _name_key(current.issuer)]
        if not candidates:
            if _name_key(current.subject) == _name_key(current.issuer):
                return UnknownCA(
                    f"{what if current is leaf else 'the root ' + _name(current.subject)} "
                    "is self-signed "
                    f"and not among the {_count(len(trust), 'trusted certificate')} from "
                    f"{trust.source}; if you trust it, pass --cafile with it (or with the "
                    "CA that issued it)"
                )
            return UnknownCA(
                f"{what} chains up to {_name(current.issuer)}, which is not among the "
                f"{_count(len(trust), 'trusted certificate')} from {trust.source}"
                + ("" if current is leaf else f" (via {_count(position - 1, 'intermediate')})")
                + f"; the {role} may be missing an intermediate certificate, or "
                + _CAFILE_HINT
            )
        signed = [c for c in candidates if _signed_by(current, c)]
        if not signed:
            return BadCertificate(
                f"the signature on {_name(current.subject)} does not verify with the key of "
                f"{_name(candidates[0].subject)} that the {role} sent as its issuer"
            )
        current = signed[0]
        remaining.remove(current)
        expired = _validity_error(
            current, now, f"intermediate certificate {_name(current.subject)}"
        )
        if expired is not None:
            return expired
        position += 1

    if server_name is not None and not _name_matches(leaf, server_name):
        return CertificateUnknown(
            f"{what} is not valid for {server_name!r}: {_valid_for(leaf)}; connect using "
            "one of those names, or reissue the certificate with this name"
        )
    if "EKU" in reason:
        wanted = "TLS server" if role == "server" else "TLS client"
        return UnsupportedCertificate(
            f"{what} is not allowed for {wanted} authentication (its extendedKeyUsage "
            f"allows: {_eku_names(leaf)}); reissue it with "
            f"{'serverAuth' if role == 'server' else 'clientAuth'}"
        )
    if "Forbidden public key algorithm" in reason or "Forbidden signature algorithm" in reason:
        return UnsupportedCertificate(
            f"{what} (or a CA certificate above it) uses a key or signature algorithm the "
            "Web PKI profile forbids (allowed: RSA, ECDSA P-256/P-384/P-521 signatures): "
            f"{reason}"
        )
    if "no subjectAltName" in reason:
        return BadCertificate(
            f"{what} has no subjectAltName extension, which RFC 5280/CA/B Forum verification "
            "requires (the subject CN is not used, RFC 6125 §6.4.4); reissue it with the "
            "host names as SANs"
        )
    return BadCertificate(f"{what} did not verify: {reason}")


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except Exception:  # InvalidSignature, name mismatch, unsupported key type
        return False
    return True


def _name_matches(leaf: x509.Certificate, reference: str) -> bool:
    """RFC 6125 §6.4: does a SAN of ``leaf`` match ``reference`` (already normalised)?"""
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(
            reference
        )
    except ValueError:
        address = None
    for value in _san_values(leaf):
        if address is not None:
            if value == address:  # §6.4.4 (IP-ID): compare octets
                return True
        elif isinstance(value, str) and _dns_matches(value.lower().rstrip("."), reference):
            return True
    return False


def _dns_matches(pattern: str, host: str) -> bool:
    # RFC 6125 §6.4.3: a wildcard only as the whole left-most label, matching one label.
    if pattern.startswith("*."):
        first, dot, rest = host.partition(".")
        return bool(first) and bool(dot) and rest == pattern[2:] and "*" not in rest
    return pattern == host


def _san_values(cert: x509.Certificate) -> list[_SanValue]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return []
    values: list[_SanValue] = []
    values.extend(san.get_values_for_type(x509.DNSName))
    for ip in san.get_values_for_type(x509.IPAddress):
        if isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address):
            values.append(ip)
    return values


def _valid_for(leaf: x509.Certificate) -> str:
    names = [str(v) for v in _san_values(leaf)]
    if names:
        return "it is valid for " + ", ".join(names)
    return (
        f"it has no DNS or IP subjectAltName at all (only the subject {_name(leaf.subject)}, "
        "which TLS clients no longer match, RFC 6125 §6.4.4)"
    )


def _eku_names(cert: x509.Certificate) -> str:
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except (x509.ExtensionNotFound, ValueError):
        return "(no extendedKeyUsage)"
    names = {
        ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
        ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    }
    return ", ".join(names.get(oid, _oid_name(oid)) for oid in eku) or "nothing"


# --- validity -----------------------------------------------------------------------


def _check_validity(cert: x509.Certificate, now: datetime, what: str) -> None:
    error = _validity_error(cert, now, what)
    if error is not None:
        raise error


def _validity_error(cert: x509.Certificate, now: datetime, what: str) -> CertificateExpired | None:
    # RFC 5280 §4.1.2.5: valid from notBefore to notAfter, both inclusive.
    not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
    if now < not_before:
        return CertificateExpired(
            f"{what} is not valid for another {_span(not_before - now)} "
            f"(not_before {_iso(not_before)}, now {_iso(now)}) — check the clock on this "
            "machine or the peer's; if both are right, the certificate was issued with a "
            "future start date"
        )
    if now > not_after:
        ago = now - not_after
        hint = (
            "; if it should still be valid, check the clock on this machine"
            if ago < timedelta(days=1)
            else ""
        )
        return CertificateExpired(
            f"{what} expired {_span(ago)} ago (not_after {_iso(not_after)}, now {_iso(now)}); "
            f"it needs to be renewed{hint}"
        )
    return None


def _count(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _span(delta: timedelta) -> str:
    """ "3 days", "2 minutes": the largest whole unit, for messages."""
    seconds = abs(delta.total_seconds())
    for unit, size in (("year", 365 * 86400), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            return _count(int(seconds // size), unit)
    return _count(int(seconds), "second")


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _iso(moment: datetime) -> str:
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- naming ---------------------------------------------------------------------------


def _name_key(name: x509.Name) -> bytes:
    return name.public_bytes()


def _name(name: x509.Name) -> str:
    text = name.rfc4514_string()
    return f"'{text}'" if text else "(an empty name)"


def _describe_role(cert: x509.Certificate, role: str) -> str:
    return f"{role} {_name(cert.subject)}"


def _oid_name(oid: x509.ObjectIdentifier) -> str:
    name = oid._name
    return oid.dotted_string if name == "Unknown OID" else name


def describe_certificate(cert: x509.Certificate) -> dict[str, str | list[str]]:
    """A JSON-friendly summary, as in the CLI's ``peer_certificates`` list.

    Keys: subject, issuer (RFC 4514), not_before, not_after (ISO 8601 UTC), serial
    (hex), subject_alt_names ("DNS:..", "IP:.."), public_key ("ECDSA P-256"),
    signature_algorithm, sha256_fingerprint (hex).
    """
    sans: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        pass
    else:
        for general_name in san:
            if isinstance(general_name, x509.DNSName):
                sans.append(f"DNS:{general_name.value}")
            elif isinstance(general_name, x509.IPAddress):
                sans.append(f"IP:{general_name.value}")
            elif isinstance(general_name, x509.RFC822Name):
                sans.append(f"email:{general_name.value}")
            elif isinstance(general_name, x509.UniformResourceIdentifier):
                sans.append(f"URI:{general_name.value}")
            else:
                sans.append(type(general_name).__name__)
    try:
        public_key = key_description(cert.public_key())
    except Exception:  # an algorithm cryptography cannot load
        public_key = _oid_name(cert.public_key_algorithm_oid)
    der = cert.public_bytes(serialization.Encoding.DER)
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "not_before": _iso(cert.not_valid_before_utc),
        "not_after": _iso(cert.not_valid_after_utc),
        "serial": format(cert.serial_number, "x"),
        "subject_alt_names": sans,
        "public_key": public_key,
        "signature_algorithm": _oid_name(cert.signature_algorithm_oid),
        "sha256_fingerprint": sha256(der).hexdigest(),
    }

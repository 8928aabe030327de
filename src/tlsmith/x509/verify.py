"""Certificate chain verification (RFC 5280 path validation, RFC 6125 name checks).

The heavy lifting is done by ``cryptography.x509.verification``. By default its
extension policy is relaxed to accept what OpenSSL and browsers accept (RFC 5280
"SHOULD"s such as SAN criticality or a missing authorityKeyIdentifier do not fail a
chain, and a certificate the user trusts directly may be the server's certificate);
``strict=True`` applies its CA/Browser Forum profile unchanged. This module adds what
a person needs when it fails: every failure becomes a ``CertificateError`` whose
``reason`` says what kind of failure it is, which carries the right alert (RFC 8446
§6.2), and whose message names the certificate, the expected and actual values, and
what would fix it.

Success returns a ``VerifiedChain`` -- the proof token the handshake state after
Certificate requires (design.md §7), so skipping verification is a type error.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import ssl
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from pathlib import Path
from typing import TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509 import DNSName, IPAddress
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    ServerVerifier,
    Store,
    Subject,
    VerificationError,
)

from tlsmith.errors import (
    BadCertificate,
    CertificateError,
    CertificateExpired,
    CertificateRequired,
    UsageError,
    certificate_error,
)
from tlsmith.x509.keys import key_description
from tlsmith.x509.leaf import load_certificate

__all__ = [
    "SYSTEM_BUNDLE_PATHS",
    "TrustStore",
    "VerifiedChain",
    "describe_certificate",
    "describe_chain",
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
_SERVER_CERT = "the server's certificate"

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
        self._members = frozenset(self.certificates)  # `in` without a scan
        #: Where the anchors came from, for messages ("/etc/ssl/certs/...", "3 certificates").
        self.source = source
        if not self.certificates:
            raise UsageError(f"no trusted certificates in {source}")
        self.store = Store(list(self.certificates))
        self._by_subject: dict[bytes, list[x509.Certificate]] = {}
        for cert in self.certificates:
            self._by_subject.setdefault(_name_key(cert.subject), []).append(cert)
        #: Server chains verified against these anchors (``verify_server_chain``): the
        #: chain's DER, the name and the policy -> the result and the span of time in
        #: which every certificate of its path is valid. Only successes are kept.
        self._verified: dict[
            tuple[tuple[bytes, ...], str | None, bool],
            tuple[VerifiedChain, datetime, datetime],
        ] = {}

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
            except Exception as exc:  # ValueError, InvalidVersion, ...
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
    def from_directory(
        cls, path: str | os.PathLike[str], *, skip_unreadable: bool = False
    ) -> TrustStore:
        """Every certificate in the files of directory ``path`` (like OpenSSL's
        ``-CApath``): ``*.pem``, ``*.crt``, ``*.cer`` and OpenSSL hashed names
        (``c_rehash``/``openssl rehash``: ``1a2b3c4d.0``, ``1a2b3c4d.1``...), PEM or DER.
        A certificate found twice (a hashed-name link to a ``.pem``) counts once; files
        with no certificate (a key, a CRL) are passed over."""
        directory = Path(path)
        try:
            names = sorted(entry.name for entry in os.scandir(directory))
        except OSError as exc:
            raise UsageError(
                f"{directory}: cannot read the CA directory ({exc.strerror or exc})"
            ) from exc
        certs: list[x509.Certificate] = []
        seen: set[bytes] = set()
        for name in names:
            if not _is_ca_file_name(name):
                continue
            file = directory / name
            try:
                if not file.is_file():
                    continue
                data = file.read_bytes()
            except OSError as exc:
                if skip_unreadable:
                    continue
                raise UsageError(f"{file}: cannot read ({exc.strerror or exc})") from exc
            for cert in _certificates_in(data, str(file), skip_unreadable=skip_unreadable):
                der = cert.public_bytes(serialization.Encoding.DER)
                if der not in seen:
                    seen.add(der)
                    certs.append(cert)
        if not certs:
            raise UsageError(
                f"no certificates in {directory}: --capath wants a directory of PEM or DER "
                "files named *.pem, *.crt or *.cer, or OpenSSL hashed names such as "
                "1a2b3c4d.0 (openssl rehash DIR makes them)"
            )
        return cls(certs, source=str(directory))

    @classmethod
    def combine(cls, *stores: TrustStore) -> TrustStore:
        """The anchors of all ``stores`` (e.g. ``--cafile`` and ``--capath`` together)."""
        certs: list[x509.Certificate] = []
        seen: set[bytes] = set()
        for store in stores:
            for cert in store.certificates:
                der = cert.public_bytes(serialization.Encoding.DER)
                if der not in seen:
                    seen.add(der)
                    certs.append(cert)
        return cls(certs, source=" and ".join(store.source for store in stores))

    @classmethod
    def system(cls) -> TrustStore:
        """The system's trust anchors, found as OpenSSL finds them, else ``certifi``'s.

        The first that holds a certificate of: the file ``SSL_CERT_FILE``, the
        directories ``SSL_CERT_DIR`` (like PATH); the bundle file, then the directory,
        that this Python's OpenSSL uses (``ssl.get_default_verify_paths()``); the first
        of SYSTEM_BUNDLE_PATHS; and, when the system has none, ``certifi.where()`` (the
        Mozilla bundle of the ``certifi`` package). Each is parsed once (until its file
        or directory changes).
        """
        env_file = os.environ.get("SSL_CERT_FILE")
        env_dir = os.environ.get("SSL_CERT_DIR")
        found = _cached_stores([env_file] if env_file else [], _split_dirs(env_dir))
        if found is not None:
            return found
        paths = ssl.get_default_verify_paths()
        found = _cached_stores(
            [p for p in (paths.cafile, paths.openssl_cafile) if p],
            [p for p in (paths.capath, paths.openssl_capath) if p][:1],
        )
        if found is not None:
            return found
        found = _cached_stores(list(SYSTEM_BUNDLE_PATHS), [], first_only=True)
        if found is not None:
            return found
        try:
            import certifi
        except ImportError:
            certifi_where = None
        else:
            certifi_where = certifi.where()
        if certifi_where and os.path.isfile(certifi_where):
            store = _cached_stores([certifi_where], [])
            if store is not None:
                return store
        raise UsageError(
            "no system CA bundle found (looked at SSL_CERT_FILE, SSL_CERT_DIR, "
            + ", ".join(SYSTEM_BUNDLE_PATHS)
            + " and the certifi package); install ca-certificates or certifi, "
            "or pass --cafile/--capath"
        )

    def issuers_of(self, cert: x509.Certificate) -> list[x509.Certificate]:
        """Trusted certificates named as ``cert``'s issuer (RFC 5280 §6.1: name chaining)."""
        return list(self._by_subject.get(_name_key(cert.issuer), ()))

    def __contains__(self, cert: object) -> bool:
        return cert in self._members


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, _mtime_ns: int, is_dir: bool = False) -> TrustStore:
    if is_dir:
        return TrustStore.from_directory(path, skip_unreadable=True)
    return TrustStore.from_pem_file(path, skip_unreadable=True)


def _cached_store(path: str, *, is_dir: bool) -> TrustStore | None:
    """The (cached) store at ``path``, or None if there is none or it holds nothing."""
    try:
        if not (os.path.isdir(path) if is_dir else os.path.isfile(path)):
            return None
        return _load_cached(path, os.stat(path).st_mtime_ns, is_dir)
    except (UsageError, OSError):
        return None


def _cached_stores(
    files: Sequence[str], dirs: Sequence[str], *, first_only: bool = False
) -> TrustStore | None:
    """The first usable of ``files`` (with ``first_only``: only the first that exists),
    else every usable directory of ``dirs`` together; None if none holds a certificate."""
    for path in files:
        store = _cached_store(path, is_dir=False)
        if store is not None:
            return store
        if first_only and os.path.isfile(path):
            break
    stores: list[TrustStore] = []
    for path in dirs:
        store = _cached_store(path, is_dir=True)
        if store is not None:
            stores.append(store)
    if not stores:
        return None
    if len(stores) == 1:
        return stores[0]
    return _combined_cached(tuple(stores))


@functools.lru_cache(maxsize=4)
def _combined_cached(stores: tuple[TrustStore, ...]) -> TrustStore:
    return TrustStore.combine(*stores)


def _split_dirs(value: str | None) -> list[str]:
    """``SSL_CERT_DIR`` is a list of directories, like PATH."""
    return [part for part in (value or "").split(os.pathsep) if part]


_HASHED_NAME = re.compile(r"[0-9a-fA-F]{8}\.[0-9]+")
_CA_SUFFIXES = (".pem", ".crt", ".cer")


def _is_ca_file_name(name: str) -> bool:
    return name.lower().endswith(_CA_SUFFIXES) or _HASHED_NAME.fullmatch(name) is not None


def _certificates_in(data: bytes, source: str, *, skip_unreadable: bool) -> list[x509.Certificate]:
    """The certificates in one file: its PEM blocks, else the whole file as DER."""
    blocks = _PEM_CERTIFICATE.findall(data)
    if not blocks:
        if b"-----BEGIN" in data:
            return []  # PEM, but a key or a CRL: not ours to read
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", CryptographyDeprecationWarning)
                return [x509.load_der_x509_certificate(data)]
        except ValueError:
            return []  # not a certificate at all
    certs: list[x509.Certificate] = []
    for index, block in enumerate(blocks, start=1):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", CryptographyDeprecationWarning)
                certs.append(x509.load_pem_x509_certificate(block))
        except ValueError as exc:
            if not skip_unreadable:
                raise UsageError(f"{source}: certificate #{index} cannot be read ({exc})") from exc
    return certs


# --- verification -------------------------------------------------------------------

#: The CA name ``DevCA`` gives itself (devca.DEFAULT_CA_NAME), to recognise our own CA.
_DEV_CA_NAME = "tlsmith development CA"

#: Rules of the strict profile that OpenSSL and browsers do not apply, for naming the
#: rule that failed: (text in cryptography's message, what the rule is and says).
_PROFILE_RULES = (
    ("subjectAltName MUST NOT be critical",
     "RFC 5280 §4.2.1.6 / CA/B BR §7.1.2.7.12: subjectAltName must not be critical "
     "when the subject is non-empty"),
    ("authorityKeyIdentifier: Certificate is missing required extension",
     "RFC 5280 §4.2.1.1 / CA/B BR §7.1.2.7.5: authorityKeyIdentifier is required"),
    ("basicConstraints.cA must not be asserted in an EE certificate",
     "CA/B BR §7.1.2.7.8: a server certificate must not be a CA (basicConstraints "
     "cA=TRUE)"),
    ("keyUsage: Certificate is missing required extension",
     "RFC 5280 §4.2.1.3 / CA/B BR §7.1.2.10.7: a CA certificate must carry keyUsage"),
    ("basicConstraints: Certificate extension has incorrect criticality",
     "RFC 5280 §4.2.1.9: basicConstraints must be critical in a CA certificate"),
)


def _ca_basic_constraints(
    _policy: object, _cert: x509.Certificate, value: x509.BasicConstraints
) -> None:
    if not value.ca:
        raise ValueError("basicConstraints.cA must be asserted in a CA certificate")


def _ca_key_usage(
    _policy: object, _cert: x509.Certificate, value: x509.KeyUsage | None
) -> None:
    # RFC 5280 §4.2.1.3: absent keyUsage allows everything; present, it must allow
    # certificate signing.
    if value is not None and not value.key_cert_sign:
        raise ValueError("keyUsage of a CA certificate must allow keyCertSign")


def _ee_server_eku(
    _policy: object, _cert: x509.Certificate, value: x509.ExtendedKeyUsage | None
) -> None:
    # RFC 5280 §4.2.1.12: any criticality (trustme marks it critical); present, it must
    # allow serverAuth (or anyExtendedKeyUsage).
    if value is not None and not (
            ExtendedKeyUsageOID.SERVER_AUTH in value
            or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in value):
        raise ValueError("required EKU not found (serverAuth)")


def _ee_client_eku(
    _policy: object, _cert: x509.Certificate, value: x509.ExtendedKeyUsage | None
) -> None:
    # RFC 5280 §4.2.1.12: present, it must allow clientAuth (or anyExtendedKeyUsage).
    if value is not None and not (
            ExtendedKeyUsageOID.CLIENT_AUTH in value
            or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in value):
        raise ValueError("required EKU not found (clientAuth)")


def _ee_client_key_usage(
    _policy: object, _cert: x509.Certificate, value: x509.KeyUsage | None
) -> None:
    # RFC 5280 §4.2.1.3 / RFC 8446 §4.4.2.2: a client certificate signs the
    # CertificateVerify, so a keyUsage present must allow digitalSignature.
    if value is not None and not value.digital_signature:
        raise ValueError("keyUsage of a client certificate must allow digitalSignature")


@functools.cache
def _lenient_policies(
    leaf_is_anchor: bool, client: bool = False
) -> tuple[ExtensionPolicy, ExtensionPolicy]:
    """(CA, EE) extension policies that accept what OpenSSL and browsers accept.

    Relative to cryptography's Web PKI defaults: no authorityKeyIdentifier needed
    (NSS ``certutil -S -x``), subjectAltName of any criticality (``trustme``), a CA
    without keyUsage or with a non-critical basicConstraints (RFC 5280 "SHOULD"s). A
    leaf the user trusts directly (``openssl req -x509`` marks it CA:TRUE) may be a CA
    certificate, as in Python's ssl, curl and gnutls-cli; name and validity are still
    checked. ``client``: the leaf must allow clientAuth rather than serverAuth.
    """
    ca = (
        ExtensionPolicy.webpki_defaults_ca()
        .may_be_present(x509.AuthorityKeyIdentifier, Criticality.AGNOSTIC, None)
        .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, _ca_key_usage)
        .require_present(x509.BasicConstraints, Criticality.AGNOSTIC, _ca_basic_constraints)
    )
    ee = (
        ExtensionPolicy.webpki_defaults_ee()
        .may_be_present(x509.AuthorityKeyIdentifier, Criticality.AGNOSTIC, None)
        .require_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)
        .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC,
                        _ee_client_eku if client else _ee_server_eku)
    )
    if client and not leaf_is_anchor:
        ee = ee.may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, _ee_client_key_usage)
    if leaf_is_anchor:
        ee = ee.may_be_present(x509.BasicConstraints, Criticality.AGNOSTIC, None).may_be_present(
            x509.KeyUsage, Criticality.AGNOSTIC, None
        )
    return ca, ee


def _server_verifier(
    trust: TrustStore, now: datetime, subject: Subject, *, strict: bool, leaf_is_anchor: bool
) -> ServerVerifier:
    builder = PolicyBuilder().store(trust.store).time(now)
    if not strict:
        ca_policy, ee_policy = _lenient_policies(leaf_is_anchor)
        builder = builder.extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
    return builder.build_server_verifier(subject)


def verify_server_chain(
    cert_chain_der: Sequence[bytes],
    *,
    trust: TrustStore,
    server_name: str | None,
    now: datetime,
    strict: bool = False,
) -> VerifiedChain:
    """Verify a server's Certificate message (leaf first) for ``server_name`` at ``now``.

    ``server_name`` may be a DNS name or an IP address literal (RFC 6125 §6.4); None
    verifies the chain and the serverAuth purpose but no name. A naive ``now`` is UTC.

    By default the policy accepts what OpenSSL and browsers accept (see
    ``_lenient_policies``), including a self-signed certificate that is itself in
    ``trust``; ``strict=True`` applies cryptography's CA/Browser Forum profile
    unchanged, and a chain refused only by that profile fails with reason "policy"
    and the rule named.

    Raises a ``CertificateError`` (BadCertificate, CertificateExpired,
    CertificateUnknown, UnknownCA or UnsupportedCertificate) whose ``reason`` says
    why, whose message says what would fix it, and whose ``peer_chain`` describes
    the chain that was sent (``describe_chain``).
    """
    if not cert_chain_der:
        # RFC 8446 §4.4.2.4 makes an empty server Certificate a decode_error; the TLS 1.3
        # handshake checks that first. Reaching here empty is a chain with nothing to trust.
        raise BadCertificate("the server sent no certificate", reason="malformed")
    # A chain this store already verified for this name and policy, at a moment when
    # every certificate of its path is still valid, verifies again with the same
    # result: the verdict is kept per store (what the chain, the anchors, the name and
    # the policy decide does not change; only time does). A client that reconnects to
    # the same server skips path building and signature checks of its chain.
    key = (tuple(map(bytes, cert_chain_der)), server_name, strict)
    cached = trust._verified.get(key)
    utc_now = now if now.tzinfo is UTC else _utc(now)
    if cached is not None and cached[1] < utc_now < cached[2]:
        return cached[0]
    try:
        verified = _verify_server_chain(
            cert_chain_der, trust=trust, server_name=server_name, now=now, strict=strict
        )
    except CertificateError as exc:
        exc.peer_chain = describe_chain(cert_chain_der)
        raise
    path = verified.chain
    if path:
        if len(trust._verified) >= _VERIFIED_CACHE_SIZE:
            trust._verified.clear()
        trust._verified[key] = (
            verified,
            max(cert.not_valid_before_utc for cert in path),
            min(cert.not_valid_after_utc for cert in path),
        )
    return verified


#: How many verified server chains a TrustStore remembers (then it starts afresh).
_VERIFIED_CACHE_SIZE = 64


def _verify_server_chain(
    cert_chain_der: Sequence[bytes],
    *,
    trust: TrustStore,
    server_name: str | None,
    now: datetime,
    strict: bool,
) -> VerifiedChain:
    now = _utc(now)
    certs = _parse_chain(cert_chain_der, "server")
    leaf, intermediates = certs[0], certs[1:]
    _check_validity(leaf, now, "the server's certificate")

    checked_name: str | None = None
    if server_name is None:
        subject = _subject_from_leaf(leaf)
    else:
        subject, checked_name = _subject_for(server_name)
    leaf_is_anchor = leaf in trust
    try:
        verifier = _server_verifier(
            trust, now, subject, strict=strict, leaf_is_anchor=leaf_is_anchor
        )
    except ValueError as exc:  # cryptography's own check of the DNS name's syntax
        raise UsageError(f"{server_name!r} is not a valid host name ({exc})") from exc
    try:
        path = verifier.verify(leaf, intermediates)
    except VerificationError as exc:
        if strict and _passes_lenient(trust, now, subject, leaf, intermediates, leaf_is_anchor):
            raise _profile_error(leaf, str(exc)) from exc
        raise _explain(certs, trust, now, str(exc), "server", checked_name) from exc
    except Exception as exc:  # cryptography choked on something it parsed lazily
        raise BadCertificate(
            f"{_describe_role(leaf, _SERVER_CERT)} could not be processed "
            f"({type(exc).__name__}: {exc}); its encoding is probably invalid",
            reason="malformed",
            subject=leaf.subject.rfc4514_string(),
        ) from exc
    _check_key_strength(certs, trust, "server")
    return VerifiedChain(chain=tuple(path), leaf=leaf, hostname=checked_name)


#: OpenSSL's default security level 2 (and browsers): RSA/DSA keys of at least 2048
#: bits, elliptic curves of at least 224 bits.
_MIN_RSA_BITS = 2048
_MIN_EC_BITS = 224
_WEAK_HASHES = ("sha1", "md5")


def _check_key_strength(certs: list[x509.Certificate], trust: TrustStore, role: str) -> None:
    """Refuse a chain whose leaf or intermediates have a weak key (what OpenSSL's
    default security level refuses as "key too small"); trust anchors are the user's
    choice and are not judged."""
    for position, cert in enumerate(certs):
        if cert in trust:
            continue
        try:
            key = cert.public_key()
        except Exception as exc:  # an unknown or corrupt key in an extra certificate
            raise BadCertificate(
                f"the key of {_name(cert.subject)} that the {role} sent cannot be loaded "
                f"({type(exc).__name__}: {exc})", reason="malformed",
                subject=cert.subject.rfc4514_string()) from exc
        size = None
        if isinstance(key, rsa.RSAPublicKey | dsa.DSAPublicKey):
            size, least = key.key_size, _MIN_RSA_BITS
        elif isinstance(key, ec.EllipticCurvePublicKey):
            size, least = key.curve.key_size, _MIN_EC_BITS
        if size is not None and size < least:
            what = (_describe_role(cert, f"the {role}'s certificate") if position == 0
                    else f"intermediate certificate {_name(cert.subject)}")
            raise certificate_error(
                "weak_key",
                f"{what} has a key of only {size} bits ({key_description(key)}); at "
                f"least {least} bits are required (OpenSSL's default security level and "
                "browsers refuse smaller keys); reissue it with a stronger key",
                subject=cert.subject.rfc4514_string())


def _weak_signature(certs: list[x509.Certificate], trust: TrustStore, role: str
                    ) -> CertificateError | None:
    """A certificate the peer sent, signed with SHA-1 or MD5 (refused everywhere since
    SHAttered; ``cryptography`` cannot even check an ECDSA-SHA1 signature)."""
    for position, cert in enumerate(certs):
        if cert in trust:
            continue
        try:
            algorithm = cert.signature_hash_algorithm
        except Exception:  # an algorithm cryptography does not know
            continue
        if algorithm is not None and algorithm.name in _WEAK_HASHES:
            what = (_describe_role(cert, f"the {role}'s certificate") if position == 0
                    else f"intermediate certificate {_name(cert.subject)}")
            return certificate_error(
                "weak_signature",
                f"{what} is signed with {algorithm.name.upper()}, which is no longer "
                "accepted (collisions can be forged); its CA must reissue it with "
                "SHA-256 or better",
                subject=cert.subject.rfc4514_string())
    return None


def _passes_lenient(
    trust: TrustStore,
    now: datetime,
    subject: Subject,
    leaf: x509.Certificate,
    intermediates: list[x509.Certificate],
    leaf_is_anchor: bool,
) -> bool:
    verifier = _server_verifier(trust, now, subject, strict=False, leaf_is_anchor=leaf_is_anchor)
    try:
        verifier.verify(leaf, intermediates)
    except Exception:
        return False
    return True


def _profile_error(leaf: x509.Certificate, failure: str) -> CertificateError:
    """The strict profile refused a chain the default policy accepts: name the rule."""
    detail = _clean_failure(failure)
    rule = next((text for key, text in _PROFILE_RULES if key in detail), detail)
    return certificate_error(
        "policy",
        f"{_describe_role(leaf, _SERVER_CERT)} (or a CA "
        f"certificate above it) breaks a rule of the strict CA/Browser Forum profile: "
        f"{rule} (cryptography says: {detail}); OpenSSL, browsers and tlsmith without "
        "--strict accept it; reissue the certificate to follow the rule",
        subject=leaf.subject.rfc4514_string(),
    )


def verify_client_chain(
    cert_chain_der: Sequence[bytes], *, trust: TrustStore, now: datetime, strict: bool = False
) -> VerifiedChain:
    """Verify a client's certificate chain for mutual TLS (clientAuth purpose).

    As for server chains, the default policy accepts what OpenSSL accepts (see
    ``_lenient_policies``: e.g. a subjectAltName of any criticality with an empty
    subject, RFC 5280 §4.2.1.6); ``strict=True`` applies cryptography's Web PKI client
    profile unchanged.

    An empty chain raises CertificateRequired (RFC 8446 §4.4.2.4); a server for which
    the client certificate is optional should not call this for an empty chain.
    """
    if not cert_chain_der:
        raise CertificateRequired("the client sent no certificate, but this server requires one")
    now = _utc(now)
    certs = _parse_chain(cert_chain_der, "client")
    leaf, intermediates = certs[0], certs[1:]
    _check_validity(leaf, now, "the client's certificate")
    builder = PolicyBuilder().store(trust.store).time(now)
    if not strict:
        ca_policy, ee_policy = _lenient_policies(leaf in trust, client=True)
        builder = builder.extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
    try:
        verified = builder.build_client_verifier().verify(leaf, intermediates)
    except VerificationError as exc:
        raise _explain(certs, trust, now, str(exc), "client", None) from exc
    _check_key_strength(certs, trust, "client")
    return VerifiedChain(chain=tuple(verified.chain), leaf=leaf, hostname=None)


def _parse_chain(cert_chain_der: Sequence[bytes], role: str) -> list[x509.Certificate]:
    """Parse every certificate, and the fields verification reads, so that invalid
    ASN.1 (a bad Name, version INTEGER 3, truncated DER) is bad_certificate here and
    never an exception from inside cryptography later."""
    certs: list[x509.Certificate] = []
    for index, der in enumerate(cert_chain_der):
        which = (
            f"the {role}'s certificate"
            if index == 0
            else f"certificate #{index} in the chain the {role} sent"
        )
        try:
            cert = load_certificate(der)
        except Exception as exc:  # ValueError, x509.InvalidVersion, ...
            raise BadCertificate(
                f"{which} is not valid DER X.509 "
                f"({len(der)} bytes; {type(exc).__name__}: {exc}); the certificate is "
                "malformed: reissue it with a standard tool (openssl, cryptography)",
                reason="malformed",
            ) from exc
        certs.append(cert)
    return certs


@functools.lru_cache(maxsize=256)
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


def _clean_failure(text: str) -> str:
    """cryptography's message without its prefixes and object reprs, OIDs named."""
    text = text.removeprefix("validation failed: ").removeprefix("candidates exhausted: ")
    text = re.sub(r"\s*\(encountered processing <Certificate\(.*?\)>\)", "", text)
    return re.sub(
        r"\b(\d+(?:\.\d+){3,})\b", lambda m: _oid_name(x509.ObjectIdentifier(m[1])), text
    )


def _is_dev_ca_name(name: x509.Name) -> bool:
    cns = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return any(str(cn.value) == _DEV_CA_NAME for cn in cns)


def _dev_ca_hint() -> str:
    try:
        from tlsmith.x509.devca import CA_FILE, default_data_dir

        where = str(default_data_dir() / CA_FILE)
    except Exception:  # HOME unset, ...
        where = "ca.pem in tlsmith's data directory"
    return (
        f"`tlsmith serve` keeps its CA in {where} ($TLSMITH_HOME overrides the "
        f"directory); pass --cafile {where} to trust it"
    )


def _ca_issuers_urls(cert: x509.Certificate) -> list[str]:
    """RFC 5280 §4.2.2.1: where the issuer's certificate can be downloaded."""
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except (x509.ExtensionNotFound, ValueError):
        return []
    return [
        str(desc.access_location.value)
        for desc in aia
        if desc.access_method == AuthorityInformationAccessOID.CA_ISSUERS
        and isinstance(desc.access_location, x509.UniformResourceIdentifier)
    ]


def _explain(
    certs: list[x509.Certificate],
    trust: TrustStore,
    now: datetime,
    failure: str,
    role: str,
    server_name: str | None,
) -> CertificateError:
    """Turn cryptography's failure into the typed error a person can act on.

    Order: the chain must reach a trust anchor (RFC 5280 §6.1), every certificate on
    the path must be within its validity (§4.1.2.5), then the name (RFC 6125 §6.4),
    then the purpose and the profile.
    """
    weak = _weak_signature(certs, trust, role)
    if weak is not None:
        return weak
    leaf = certs[0]
    reason = _clean_failure(failure)
    what = _describe_role(leaf, f"the {role}'s certificate")
    leaf_subject = leaf.subject.rfc4514_string()
    trusted = f"the {_count(len(trust), 'trusted certificate')} from {trust.source}"

    # Walk issuer links from the leaf through what the peer sent to a trusted certificate.
    current, remaining, position = leaf, list(certs[1:]), 1
    issuers: list[x509.Certificate] = []  # the intermediates on the path, leaf upwards
    while current not in trust:
        anchors = trust.issuers_of(current)
        if anchors:
            signed = [a for a in anchors if _signed_by(current, a)]
            if not signed:
                return certificate_error(
                    "unknown_issuer",
                    f"{what} names {_name(current.issuer)} as its issuer, and a trusted "
                    f"certificate has that name but a different key, so it did not sign "
                    f"it (was the CA regenerated?); "
                    + (_dev_ca_hint() if _is_dev_ca_name(current.issuer) else _CAFILE_HINT),
                    subject=leaf_subject,
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
            return _no_issuer(current, leaf, what, trusted, role, position)
        signed = [c for c in candidates if _signed_by(current, c)]
        if not signed:
            return certificate_error(
                "bad_signature",
                f"the signature on {_name(current.subject)} does not verify with the key of "
                f"{_name(candidates[0].subject)} that the {role} sent as its issuer; the "
                f"{role} sends the wrong issuer certificate, or the certificate was altered",
                subject=current.subject.rfc4514_string(),
            )
        current = signed[0]
        remaining.remove(current)
        issuers.append(current)
        expired = _validity_error(
            current, now, f"intermediate certificate {_name(current.subject)}"
        )
        if expired is not None:
            return expired
        position += 1

    if server_name is not None and not _name_matches(leaf, server_name):
        return certificate_error(
            "hostname_mismatch",
            f"{what} is not valid for {server_name!r}: {_valid_for(leaf)}; we asked for "
            f"{server_name!r}{_wildcard_note(leaf)}; connect using one of those names, or "
            "reissue the certificate with this name",
            subject=leaf_subject,
        )
    if "EKU" in reason:
        wanted = "TLS server" if role == "server" else "TLS client"
        return certificate_error(
            "wrong_usage",
            f"{what} is not allowed for {wanted} authentication (its extendedKeyUsage "
            f"allows: {_eku_names(leaf)}; {wanted} authentication needs "
            f"{'serverAuth' if role == 'server' else 'clientAuth'}); reissue it with "
            f"{'serverAuth' if role == 'server' else 'clientAuth'}",
            subject=leaf_subject,
        )
    non_cas = [c for c in issuers if not _is_ca(c)]
    if non_cas or "cA must be asserted" in reason:
        named = ", ".join(_name(c.subject) for c in non_cas) or "an intermediate"
        return certificate_error(
            "wrong_usage",
            f"{what} was signed by {named}, which the {role} sent as an intermediate but "
            "which is not a CA certificate (basicConstraints cA=FALSE or absent; RFC 5280 "
            "§6.1.4 (k) allows only CA certificates to sign others); the CA must reissue "
            "that intermediate as a CA certificate, or issue the server's certificate "
            "from a real CA",
            subject=non_cas[0].subject.rfc4514_string() if non_cas else leaf_subject,
        )
    if "keyUsage" in reason or "key usage" in reason.lower():
        return certificate_error(
            "wrong_usage",
            f"a keyUsage extension in the chain does not allow this use ({reason}); "
            "reissue the certificate with the right keyUsage",
            subject=leaf_subject,
        )
    if "Forbidden public key algorithm" in reason or "Forbidden signature algorithm" in reason:
        return certificate_error(
            "weak_key",
            f"{what} (or a CA certificate above it) uses a key or signature algorithm the "
            "Web PKI profile forbids (allowed: RSA of 2048 bits or more, ECDSA "
            f"P-256/P-384/P-521 signatures): {reason}",
            subject=leaf_subject,
        )
    if "no subjectAltName" in reason or (
        "subjectAltName" in reason and "missing required extension" in reason
    ):
        return certificate_error(
            "hostname_mismatch" if server_name is not None else "policy",
            f"{what} has no subjectAltName extension, so it is valid for no host name "
            "(the subject CN is no longer used, RFC 6125 §6.4.4)"
            + (f"; we asked for {server_name!r}" if server_name is not None else "")
            + "; reissue it with the host names as SANs",
            subject=leaf_subject,
        )
    return certificate_error(
        "policy",
        f"{what} (or a certificate above it) was refused by the verification policy: "
        f"{reason}; reissue it following RFC 5280",
        subject=leaf_subject,
    )


def _no_issuer(
    current: x509.Certificate,
    leaf: x509.Certificate,
    what: str,
    trusted: str,
    role: str,
    position: int,
) -> CertificateError:
    """The walk stopped: ``current``'s issuer is neither sent nor trusted."""
    leaf_subject = leaf.subject.rfc4514_string()
    via = "" if current is leaf else f" (via {_count(position - 1, 'intermediate')})"
    if _name_key(current.subject) == _name_key(current.issuer):
        if current is leaf:
            return certificate_error(
                "self_signed",
                f"{what} is self-signed (its issuer is itself) and not among {trusted}; "
                "if you trust it, pass --cafile with it (or with the CA that issued it)",
                subject=leaf_subject,
            )
        return certificate_error(
            "unknown_issuer",
            f"the chain the {role} sent ends at the CA {_name(current.subject)}{via}: the "
            f"root {_name(current.subject)} is self-signed and not among {trusted}; if you "
            "trust that CA, pass --cafile with its certificate",
            subject=leaf_subject,
        )
    if _is_dev_ca_name(current.issuer):
        return certificate_error(
            "unknown_issuer",
            f"{what} was issued by {_name(current.issuer)}, tlsmith's development CA, "
            f"which is not among {trusted}; {_dev_ca_hint()}",
            subject=leaf_subject,
        )
    urls = _ca_issuers_urls(current)
    if urls:
        return certificate_error(
            "missing_intermediate",
            f"{what} was issued by {_name(current.issuer)}{via}, which the {role} did not "
            f"send and which is not among {trusted}: the {role} is missing an "
            "intermediate certificate; the certificate says it can be downloaded from "
            f"{', '.join(urls)} (authorityInformationAccess caIssuers); the {role} "
            "should send it after its own certificate",
            subject=leaf_subject,
        )
    return certificate_error(
        "unknown_issuer",
        f"{what} chains up to {_name(current.issuer)}{via}, which is not among {trusted}; "
        f"the {role} may be missing an intermediate certificate, or that CA is not "
        f"trusted here: {_CAFILE_HINT}",
        subject=leaf_subject,
    )


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except (x509.ExtensionNotFound, ValueError):
        return False


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


def _wildcard_note(leaf: x509.Certificate) -> str:
    if any(isinstance(v, str) and v.startswith("*.") for v in _san_values(leaf)):
        return (
            " (a wildcard stands for exactly one whole left-most label: *.example.com "
            "covers www.example.com but neither example.com nor a.www.example.com, "
            "RFC 6125 §6.4.3)"
        )
    return ""


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


def _check_validity(cert: x509.Certificate, now: datetime, role: str) -> None:
    """Raise if ``cert`` (the leaf, ``role``: "the server's certificate") is not valid
    at ``now``; its description is built only then."""
    if cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        return
    error = _validity_error(cert, now, _describe_role(cert, role))
    if error is not None:
        raise error


def _validity_error(cert: x509.Certificate, now: datetime, what: str) -> CertificateExpired | None:
    # RFC 5280 §4.1.2.5: valid from notBefore to notAfter, both inclusive.
    not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
    if not_before <= now <= not_after:
        return None
    subject = cert.subject.rfc4514_string()
    if now < not_before:
        return CertificateExpired(
            f"{what} is not valid for another {_span(not_before - now)} "
            f"(not_before {_iso(not_before)}, now {_iso(now)}) — check the clock on this "
            "machine or the peer's; if both are right, the certificate was issued with a "
            "future start date",
            reason="not_yet_valid",
            subject=subject,
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
            f"it needs to be renewed{hint}",
            reason="expired",
            subject=subject,
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


def describe_chain(chain_der: Sequence[bytes]) -> list[dict[str, str | list[str]]]:
    """``describe_certificate`` for each certificate the peer sent, in the order sent
    (for printing the chain on failure, as ``openssl s_client`` does). A certificate
    that cannot be parsed is described by its position, size, fingerprint and error."""
    described: list[dict[str, str | list[str]]] = []
    for index, der in enumerate(chain_der):
        der = bytes(der)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", CryptographyDeprecationWarning)
                info = describe_certificate(x509.load_der_x509_certificate(der))
        except Exception as exc:  # malformed: say so, never fail while describing
            info = {
                "subject": "(unreadable)",
                "issuer": "(unreadable)",
                "not_before": "",
                "not_after": "",
                "subject_alt_names": [],
                "error": f"not valid DER X.509 ({len(der)} bytes; {type(exc).__name__}: {exc})",
                "sha256_fingerprint": sha256(der).hexdigest(),
            }
        info["position"] = str(index)
        described.append(info)
    return described

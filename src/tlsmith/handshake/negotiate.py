"""The server's view of a ClientHello, validated once, and pure functions that choose.

``offer(ch)`` reads every extension the server cares about in one pass into a frozen
``Offered``; ``choose_*`` decide from it and the config, with no side effects. The
version-specific rules (RFC 8446 §4.1.2 / §9.2 for TLS 1.3, RFC 5246 / 7627 / 5746 for
TLS 1.2) run in ``server13`` / ``server12`` on the same view.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from tlsmith.codec import extensions as ext
from tlsmith.codec.enums import (
    CertificateType,
    CipherSuite,
    ExtensionType,
    NamedGroup,
    ProtocolVersion,
    SignatureScheme,
    member,
)
from tlsmith.codec.extensions_base import ExtensionContext
from tlsmith.codec.messages import ClientHello
from tlsmith.config import CertifiedKey, ServerConfig
from tlsmith.crypto import sig
from tlsmith.errors import (
    HandshakeFailure,
    IllegalParameter,
    InappropriateFallback,
    NoApplicationProtocol,
    ProtocolVersionError,
    UnsupportedCertificate,
    call_application,
)
from tlsmith.frozen import fast_init
from tlsmith.handshake import certtype
from tlsmith.handshake.base import ALLOWED_IN
from tlsmith.x509.leaf import name_matches

# A certificate name against the client's SNI: a pure function of two strings, asked on
# every handshake (its IP-literal test alone costs microseconds); bounded, since the SNI
# is the peer's choice.
_name_matches = functools.lru_cache(maxsize=1024)(name_matches)



@dataclass(frozen=True)
class Offered:
    """What one ClientHello offers (None: the extension was absent).

    ``offer`` builds it through its ``__dict__`` (one C call instead of a frozen store
    per field); it gives every field (tests/test_handshake13_states.py holds it to that).
    """

    hello: ClientHello
    versions: tuple[ProtocolVersion, ...]  # supported_versions, or (legacy_version,)
    supported_versions_sent: bool
    suites: tuple[CipherSuite, ...]
    groups: tuple[NamedGroup, ...] | None
    key_shares: tuple[ext.KeyShareEntry, ...] | None
    signature_schemes: tuple[SignatureScheme, ...] | None
    server_name: str | None
    alpn: tuple[bytes, ...] | None
    psk: ext.PreSharedKeyClientHello | None
    psk_modes: ext.PskKeyExchangeModes | None
    cookie: bytes | None
    early_data: bool
    extended_master_secret: bool
    encrypt_then_mac: bool
    renegotiation_info: bytes | None  # RFC 5746: the extension's body
    empty_renegotiation_scsv: bool
    ec_point_formats: tuple[int, ...] | None
    fallback_scsv: bool
    types: frozenset[ExtensionType]
    # RFC 6066 §8: the client asks for a stapled OCSP response (status_request, ocsp).
    status_request: bool = False
    # RFC 7250 §4.1: the certificate types the client accepts from us / can send (known
    # types only; None: the extension was absent, which means X.509).
    server_certificate_types: tuple[CertificateType, ...] | None = None
    client_certificate_types: tuple[CertificateType, ...] | None = None
    # RFC 8446 §4.2.4: the CAs the client trusts (DER names; None: it sent none).
    ca_names: tuple[bytes, ...] | None = None
    # ServerConfig.certificate_callback's choice for this hello (None: the configured).
    certificates: tuple[CertifiedKey, ...] | None = None
    # RFC 5077 §3.2: the client's SessionTicket extension (TLS 1.2; None: absent).
    session_ticket: ext.SessionTicket | None = None

    @property
    def max_version(self) -> ProtocolVersion:
        return max(self.versions)


# The ClientHello extensions ``offer`` reads, found by their exact class: the codec
# parses each type in a ClientHello into its one registered class (these have no
# subclasses), so one C-level dict maps a hello's extensions to them.
_OFFER_CLASSES: tuple[type[ext.KnownExtension], ...] = (
    ext.SupportedVersionsClientHello, ext.SupportedGroups, ext.KeyShareClientHello,
    ext.SignatureAlgorithms, ext.ServerName, ext.ApplicationLayerProtocolNegotiation,
    ext.Cookie, ext.RenegotiationInfo, ext.ECPointFormats, ext.PreSharedKeyClientHello,
    ext.PskKeyExchangeModes, ext.EarlyDataIndication, ext.ExtendedMasterSecret,
    ext.EncryptThenMac, ext.StatusRequest, ext.ServerCertificateTypeList,
    ext.ClientCertificateTypeList, ext.CertificateAuthorities, ext.SessionTicket,
)
_TYPE_OF = operator.attrgetter("extension_type")
_new_object = object.__new__
# Types defined, but not for a ClientHello (ExtensionContext hashes in Python: a set of
# plain ints answers instead).
_NOT_IN_CLIENT_HELLO: frozenset[int] = frozenset(
    int(t) for t, allowed in ALLOWED_IN.items()
    if ExtensionContext.CLIENT_HELLO not in allowed
)


def offer(ch: ClientHello) -> Offered:
    """One pass over the ClientHello's extensions (duplicates were refused by the codec)."""
    exts = ch.extensions
    types = frozenset(map(_TYPE_OF, exts))
    if not _NOT_IN_CLIENT_HELLO.isdisjoint(types):
        for e in exts:
            if e.extension_type in _NOT_IN_CLIENT_HELLO:
                raise IllegalParameter(
                    f"the {e.extension_type.name} extension is not allowed in ClientHello")
    sv: ext.SupportedVersionsClientHello | None
    groups: ext.SupportedGroups | None
    shares: ext.KeyShareClientHello | None
    algs: ext.SignatureAlgorithms | None
    sni: ext.ServerName | None
    alpn: ext.ApplicationLayerProtocolNegotiation | None
    cookie: ext.Cookie | None
    reneg: ext.RenegotiationInfo | None
    pf: ext.ECPointFormats | None
    psk: ext.PreSharedKeyClientHello | None
    psk_modes: ext.PskKeyExchangeModes | None
    cas: ext.CertificateAuthorities | None
    # (A MalformedExtension or UnknownExtension of one of these types is not found.)
    by_class: dict[type, Any] = dict(zip(map(type, exts), exts, strict=True))
    (sv, groups, shares, algs, sni, alpn, cookie, reneg, pf, psk, psk_modes, early, ems, etm,
     status, server_types, client_types, cas, ticket) = map(
        by_class.get, _OFFER_CLASSES)
    suites = ch.cipher_suites
    # The codec already gives enum members (open enums): no conversions needed here.
    offered = _new_object(Offered)
    offered.__dict__.update(
        hello=ch,
        versions=(tuple(sv.versions) if sv is not None
                  else (member(ProtocolVersion, ch.legacy_version),)),
        supported_versions_sent=sv is not None,
        suites=tuple(suites),
        groups=tuple(groups.named_group_list) if groups else None,
        key_shares=shares.client_shares if shares is not None else None,
        signature_schemes=(tuple(algs.supported_signature_algorithms)
                           if algs is not None else None),
        server_name=sni.host_name if sni is not None else None,
        alpn=alpn.protocol_name_list if alpn is not None else None,
        psk=psk,
        psk_modes=psk_modes,
        cookie=cookie.cookie if cookie is not None else None,
        early_data=early is not None,
        extended_master_secret=ems is not None,
        encrypt_then_mac=etm is not None,
        renegotiation_info=reneg.renegotiated_connection if reneg is not None else None,
        empty_renegotiation_scsv=CipherSuite.TLS_EMPTY_RENEGOTIATION_INFO_SCSV in suites,
        ec_point_formats=tuple(pf.ec_point_format_list) if pf is not None else None,
        fallback_scsv=CipherSuite.TLS_FALLBACK_SCSV in suites,
        types=types,
        status_request=status is not None,
        server_certificate_types=certtype.offered_types(server_types),
        client_certificate_types=certtype.offered_types(client_types),
        ca_names=cas.authorities if cas else None,
        certificates=None,
        session_ticket=ticket,
    )
    return offered


#: JDK 11's ClientHello extensions, in the order it sends them (True: always sent).
_JDK11_EXTENSIONS: tuple[tuple[int, bool], ...] = (
    (0, False), (1, False), (5, False), (10, True), (11, False), (13, True), (50, True),
    (16, False), (17, False), (23, False), (43, True), (44, False), (45, True), (51, True),
    (0xFF01, False), (41, False),
)


def is_probably_jdk11(ch: ClientHello) -> bool:
    """Whether a ClientHello looks like JDK 11's with TLS 1.3 and 1.2 enabled (JDK 11
    before 11.0.2 breaks in TLS 1.3 resumption): no ChaCha20, JDK's extension order, no
    X25519, signature_algorithms_cert equal to signature_algorithms, and
    status_request_v2 (17) exactly when status_request. BoringSSL's heuristic."""
    if CipherSuite.TLS_CHACHA20_POLY1305_SHA256 in ch.cipher_suites:
        return False
    exts = list(ch.extensions)
    by_type = {int(e.extension_type): e for e in exts}
    i = 0
    for ext_type, required in _JDK11_EXTENSIONS:
        if i < len(exts) and int(exts[i].extension_type) == ext_type:
            i += 1
        elif required:
            return False
    if i != len(exts):
        return False
    groups = by_type.get(int(ExtensionType.SUPPORTED_GROUPS))
    algs = by_type.get(int(ExtensionType.SIGNATURE_ALGORITHMS))
    algs_cert = by_type.get(int(ExtensionType.SIGNATURE_ALGORITHMS_CERT))
    return (isinstance(groups, ext.SupportedGroups)
            and NamedGroup.X25519 not in groups.named_group_list
            and isinstance(algs, ext.SignatureAlgorithms)
            and isinstance(algs_cert, ext.SignatureAlgorithmsCert)
            and algs.supported_signature_algorithms
            == algs_cert.supported_signature_algorithms
            and (5 in by_type) == (17 in by_type))


def jdk11_downgrade(cfg: ServerConfig, offered: Offered) -> bool:
    """ServerConfig.jdk11_workaround applies: answer this client with TLS 1.2."""
    return (cfg.jdk11_workaround and ProtocolVersion.TLS13 in cfg.versions
            and ProtocolVersion.TLS13 in offered.versions
            and offered.supported_versions_sent and is_probably_jdk11(offered.hello))


def choose_version(cfg: ServerConfig, offered: Offered) -> ProtocolVersion:
    """RFC 8446 §4.2.1 / RFC 5246 §E.1: the highest version both sides speak."""
    legacy = member(ProtocolVersion, offered.hello.legacy_version)
    ours = cfg.versions
    if legacy < ProtocolVersion.TLS12:
        # RFC 8446 §D.5 / §4.1.2: legacy_version below 0x0303 is refused even if
        # supported_versions offers TLS 1.3; RFC 8996: TLS 1.0/1.1 are not spoken.
        raise ProtocolVersionError(
            f"the client offers at most {legacy.label} (legacy_version "
            f"0x{int(legacy):04x}); this server accepts "
            + " and ".join(v.label for v in ours))
    # RFC 8446 §4.2.1: without supported_versions a client speaks TLS 1.2 or below, even
    # if legacy_version says 0x0304 or more; RFC 5246 §E.1: a legacy_version above ours
    # (0x03ff, 0x0400, ...) is answered with the highest version we have (found by BoGo
    # ClientHelloVersionTooHigh, MinorVersionTolerance, MajorVersionTolerance).
    offers = (offered.versions if offered.supported_versions_sent
              else (ProtocolVersion.TLS12,))
    if jdk11_downgrade(cfg, offered):
        offers = tuple(v for v in offers if v != ProtocolVersion.TLS13)
    for v in ours:  # highest first
        if v in offers:
            if offered.fallback_scsv and v < max(ours):
                # RFC 7507 §3: a fallback to a version below our highest is an attack.
                raise InappropriateFallback(
                    f"the client signalled a fallback (TLS_FALLBACK_SCSV) to {v.label}, "
                    f"but this server supports {max(ours).label}")
            return v
    theirs = " and ".join(ProtocolVersion(v).label for v in offers)
    if not offered.supported_versions_sent:
        theirs += " (no supported_versions: TLS 1.2 at most)"
    raise ProtocolVersionError(
        f"no protocol version in common: the client offers {theirs}; this server accepts "
        + " and ".join(v.label for v in ours), check="version_no_overlap")


def suite_order(cfg: ServerConfig, offered: Offered) -> tuple[CipherSuite, ...]:
    """Our suites in the order we try them: ours, or the client's without server
    preference; an equal-preference group (``cipher_suite_groups``) takes the client's
    order among its members, at the place of its first member in ours."""
    ours = cfg.cipher_suites
    if not cfg.prefer_server_cipher_order:
        return tuple(s for s in offered.suites if s in ours)
    if not cfg.cipher_suite_groups:
        return ours
    rank = {s: i for i, s in reversed(list(enumerate(offered.suites)))}
    group_of = {s: g for g in cfg.cipher_suite_groups for s in g}
    out: list[CipherSuite] = []
    for s in ours:
        if s in out:
            continue
        group = group_of.get(s)
        out += sorted(group, key=lambda m: rank.get(m, len(rank))) if group else [s]
    return tuple(out)


def choose_alpn(cfg: ServerConfig, offered: Offered) -> str | None:
    if offered.alpn is None or not cfg.alpn_protocols:
        return None
    for proto in cfg.alpn_protocols:
        if proto.encode() in offered.alpn:
            return proto
    # RFC 7301 §3.2: no overlap -> no_application_protocol.
    raise NoApplicationProtocol(
        "no ALPN protocol in common: the client offers "
        + ", ".join(p.decode("ascii", "replace") for p in offered.alpn))


@fast_init
@dataclass(frozen=True, slots=True)
class CertChoice:
    certified: CertifiedKey
    scheme: SignatureScheme | None  # None: RSA key transport signs nothing
    sni_matched: bool


@dataclass(frozen=True)
class ClientHelloInfo:
    """What the client offers, as ServerConfig.certificate_callback sees it."""

    version: ProtocolVersion  # the version chosen
    server_name: str | None
    signature_schemes: tuple[SignatureScheme, ...]
    #: DER names from the client's certificate_authorities (None: it sent none).
    certificate_authorities: tuple[bytes, ...] | None


def with_callback_certificates(cfg: ServerConfig, offered: Offered,
                               version: ProtocolVersion) -> Offered:
    """Ask ServerConfig.certificate_callback (if set) for this hello's credentials; an
    exception it raises is our failure, not the peer's: internal_error."""
    if cfg.certificate_callback is None:
        return offered
    info = ClientHelloInfo(version, offered.server_name, offered.signature_schemes or (),
                           offered.ca_names)
    chosen = call_application("the certificate callback", "certificate_callback",
                              cfg.certificate_callback, info)
    return offered if chosen is None else replace(offered, certificates=tuple(chosen))


def candidates(cfg: ServerConfig, offered: Offered) -> tuple[CertifiedKey, ...]:
    """The credentials to choose from for this hello, in preference order."""
    return cfg.certificates if offered.certificates is None else offered.certificates


@functools.lru_cache(maxsize=256)
def _usable_schemes(ours: Iterable[SignatureScheme], configured: Iterable[SignatureScheme]
                    ) -> frozenset[int]:
    """The schemes a key can produce that the configuration allows (per key and
    configuration, not per handshake)."""
    return frozenset(ours) & frozenset(configured)


# choose_certificate's answers, by configuration and the parts of the hello it reads: a
# server sees the same few offers from every client of one kind. Keyed by id() of the
# configuration, which is kept alongside so the id cannot be reused while listed; bounded
# (the peer chooses the hello), emptied when full. Answers only: errors are raised anew.
_CERT_CHOICES: dict[tuple[object, ...], tuple[ServerConfig, CertChoice | None]] = {}
_CERT_CHOICES_MAX = 1024


def choose_certificate(cfg: ServerConfig, offered: Offered, *, tls13: bool,
                       key_type: str | None = None, signs: bool = True) -> CertChoice | None:
    """A certificate whose key can sign with a scheme the client accepts (and, in TLS 1.2,
    whose key type fits the suite), preferring one whose names match SNI
    (RFC 8446 §4.4.2.2, RFC 5246 §7.4.2). None if there is none."""
    if offered.certificates is not None:  # the certificate callback's (not cached)
        return _choose_certificate(cfg, offered, tls13=tls13, key_type=key_type, signs=signs)
    key = (id(cfg), tls13, key_type, signs, offered.signature_schemes,
           offered.server_certificate_types, offered.ca_names, offered.server_name,
           None if tls13 else offered.groups)
    hit = _CERT_CHOICES.get(key)
    if hit is not None and hit[0] is cfg:
        return hit[1]
    choice = _choose_certificate(cfg, offered, tls13=tls13, key_type=key_type, signs=signs)
    if len(_CERT_CHOICES) >= _CERT_CHOICES_MAX:
        _CERT_CHOICES.clear()
    _CERT_CHOICES[key] = (cfg, choice)
    return choice


def _choose_certificate(cfg: ServerConfig, offered: Offered, *, tls13: bool,
                        key_type: str | None, signs: bool) -> CertChoice | None:
    client_schemes = offered.signature_schemes or ()
    fallback: CertChoice | None = None
    creds = candidates(cfg, offered)
    accepted_types = offered.server_certificate_types
    if creds and not any(certtype.server_accepts(accepted_types, ck) for ck in creds):
        if accepted_types is None:  # no server_certificate_type: X.509 only
            raise HandshakeFailure("the client accepts only X.509 certificates and ours "
                                   "are all raw public keys", check="cert_type_no_credential")
        # RFC 7250 §4.2: no certificate of a listed type -> unsupported_certificate.
        raise UnsupportedCertificate(
            "none of our credentials is of a type the client accepts ("
            + (", ".join(t.name for t in accepted_types) or "none we know")
            + "; RFC 7250 §4.2)", check="cert_type_no_credential")
    for ck in creds:
        if key_type is not None and ck.key_type != key_type:
            continue
        if not certtype.server_accepts(accepted_types, ck):
            continue
        if not ck.matches_issuers(offered.ca_names):
            continue  # RFC 8446 §4.2.4: meant only for a client that trusts its issuer
        if (not tls13 and offered.groups is not None and ck.ecdsa_group is not None
                and ck.ecdsa_group not in offered.groups):
            # RFC 8422 §5.3: in TLS 1.2 the certificate's curve must be one the client
            # listed in supported_groups.
            continue
        scheme: SignatureScheme | None = None
        if signs:
            ours = ck.tls13_schemes if tls13 else ck.tls12_schemes
            if tls13 and ck.signing_schemes is not None:
                # RFC 9963 §3: the legacy PKCS#1 code points are for clients only.
                ours = ck.tls13_schemes - sig.CLIENT_ONLY_SCHEMES
            if ck.signing_schemes is not None:
                # The credential's own signing list replaces the configuration's
                # (which then only says what we accept from the client).
                usable = frozenset[int](ours)
            else:
                configured = cfg.signature_schemes
                usable = _usable_schemes(ours, configured if isinstance(configured, tuple)
                                         else tuple(configured))
            first = next((s for s in client_schemes if s in usable), None)
            if first is None:
                continue
            scheme = member(SignatureScheme, first)
        if ck.raw_public_key:
            # RFC 7250: a raw public key names no host, so it serves any name: it is
            # taken in configuration order, ahead of certificates whose names miss.
            return CertChoice(ck, scheme, False)
        sni = offered.server_name
        if sni and any(_name_matches(n, sni) for n in ck.names):
            return CertChoice(ck, scheme, True)
        if fallback is None:
            fallback = CertChoice(ck, scheme, False)
    return fallback


def staple_for(cfg: ServerConfig, certified: CertifiedKey, offered: Offered) -> bytes | None:
    """The OCSP response to staple for this certificate (RFC 6066 §8): only when the
    client asked with status_request and we have one (from ServerConfig.ocsp_callback,
    if set, else the credential's)."""
    if not offered.status_request:
        return None
    if cfg.ocsp_callback is not None:
        return call_application("the OCSP callback", "ocsp_callback", cfg.ocsp_callback,
                                certified)
    return certified.ocsp_response


def issuer_mismatch(cfg: ServerConfig, offered: Offered) -> HandshakeFailure | None:
    """The error when every certificate is must_match_issuer and the client's
    certificate_authorities names none of their issuers; else None."""
    creds = candidates(cfg, offered)
    if creds and all(not ck.matches_issuers(offered.ca_names) for ck in creds):
        return HandshakeFailure(
            "every certificate must match an issuer the client names in "
            "certificate_authorities, and none does", check="cert_issuer")
    return None


def no_certificate(offered: Offered) -> HandshakeFailure:
    return HandshakeFailure(
        "none of our certificates can sign with a scheme the client accepts ("
        + ", ".join(SignatureScheme(s).name for s in offered.signature_schemes or ()) + ")")


#: Send the trust store's subjects as certificate_authorities only when the list is short.
MAX_CERTIFICATE_AUTHORITIES = 16


def certificate_authorities(cfg: ServerConfig) -> tuple[bytes, ...]:
    """Mutual TLS: the DER subjects of the client CAs, for a CertificateRequest
    (RFC 8446 §4.2.4, RFC 5246 §7.4.4), or () for a large trust store."""
    if cfg.certificate_authorities is not None:
        return cfg.certificate_authorities
    trust = cfg.client_trust
    if trust is None or len(trust) > MAX_CERTIFICATE_AUTHORITIES:
        return ()
    names: list[bytes] = []
    for cert in trust.certificates:
        der = cert.subject.public_bytes()
        if der not in names:
            names.append(der)
    return tuple(names)

"""The server's view of a ClientHello, validated once, and pure functions that choose.

``offer(ch)`` reads every extension the server cares about in one pass into a frozen
``Offered``; ``choose_*`` decide from it and the config, with no side effects. The
version-specific rules (RFC 8446 §4.1.2 / §9.2 for TLS 1.3, RFC 5246 / 7627 / 5746 for
TLS 1.2) run in ``server13`` / ``server12`` on the same view.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

from tlsmith.codec import extensions as ext
from tlsmith.codec.enums import (
    CipherSuite,
    ExtensionType,
    NamedGroup,
    ProtocolVersion,
    SignatureScheme,
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
)
from tlsmith.handshake.base import ALLOWED_IN
from tlsmith.x509.leaf import name_matches

# A certificate name against the client's SNI: a pure function of two strings, asked on
# every handshake (its IP-literal test alone costs microseconds); bounded, since the SNI
# is the peer's choice.
_name_matches = functools.lru_cache(maxsize=1024)(name_matches)

_E = TypeVar("_E")


@dataclass(frozen=True)
class Offered:
    """What one ClientHello offers (None: the extension was absent)."""

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

    @property
    def max_version(self) -> ProtocolVersion:
        return max(self.versions)


def offer(ch: ClientHello) -> Offered:
    """One pass over the ClientHello's extensions (duplicates were refused by the codec)."""
    by_type = {e.extension_type: e for e in ch.extensions}
    for t in by_type:
        allowed = ALLOWED_IN.get(t)
        if allowed is not None and ExtensionContext.CLIENT_HELLO not in allowed:
            raise IllegalParameter(f"the {t.name} extension is not allowed in ClientHello")

    def get(cls: type[_E]) -> _E | None:
        found = by_type.get(getattr(cls, "extension_type"))  # noqa: B009
        return found if isinstance(found, cls) else None

    sv = get(ext.SupportedVersionsClientHello)
    groups = get(ext.SupportedGroups)
    shares = get(ext.KeyShareClientHello)
    algs = get(ext.SignatureAlgorithms)
    sni = get(ext.ServerName)
    alpn = get(ext.ApplicationLayerProtocolNegotiation)
    cookie = get(ext.Cookie)
    reneg = get(ext.RenegotiationInfo)
    pf = get(ext.ECPointFormats)
    # The codec already gives enum members (open enums): no conversions needed here.
    return Offered(
        hello=ch,
        versions=(tuple(sv.versions) if sv is not None
                  else (ProtocolVersion(ch.legacy_version),)),
        supported_versions_sent=sv is not None,
        suites=tuple(ch.cipher_suites),
        groups=tuple(groups.named_group_list) if groups else None,
        key_shares=shares.client_shares if shares is not None else None,
        signature_schemes=(tuple(algs.supported_signature_algorithms)
                           if algs is not None else None),
        server_name=sni.host_name if sni is not None else None,
        alpn=alpn.protocol_name_list if alpn is not None else None,
        psk=get(ext.PreSharedKeyClientHello),
        psk_modes=get(ext.PskKeyExchangeModes),
        cookie=cookie.cookie if cookie is not None else None,
        early_data=get(ext.EarlyDataIndication) is not None,
        extended_master_secret=get(ext.ExtendedMasterSecret) is not None,
        encrypt_then_mac=get(ext.EncryptThenMac) is not None,
        renegotiation_info=reneg.renegotiated_connection if reneg is not None else None,
        empty_renegotiation_scsv=CipherSuite.TLS_EMPTY_RENEGOTIATION_INFO_SCSV in ch.cipher_suites,
        ec_point_formats=tuple(pf.ec_point_format_list) if pf is not None else None,
        fallback_scsv=CipherSuite.TLS_FALLBACK_SCSV in ch.cipher_suites,
        types=frozenset(by_type),
        status_request=get(ext.StatusRequest) is not None,
    )


def choose_version(cfg: ServerConfig, offered: Offered) -> ProtocolVersion:
    """RFC 8446 §4.2.1 / RFC 5246 §E.1: the highest version both sides speak."""
    legacy = ProtocolVersion(offered.hello.legacy_version)
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


@dataclass(frozen=True)
class CertChoice:
    certified: CertifiedKey
    scheme: SignatureScheme | None  # None: RSA key transport signs nothing
    sni_matched: bool


@functools.lru_cache(maxsize=256)
def _usable_schemes(ours: Iterable[SignatureScheme], configured: Iterable[SignatureScheme]
                    ) -> frozenset[int]:
    """The schemes a key can produce that the configuration allows (per key and
    configuration, not per handshake)."""
    return frozenset(ours) & frozenset(configured)


def choose_certificate(cfg: ServerConfig, offered: Offered, *, tls13: bool,
                       key_type: str | None = None, signs: bool = True) -> CertChoice | None:
    """A certificate whose key can sign with a scheme the client accepts (and, in TLS 1.2,
    whose key type fits the suite), preferring one whose names match SNI
    (RFC 8446 §4.4.2.2, RFC 5246 §7.4.2). None if there is none."""
    client_schemes = offered.signature_schemes or ()
    fallback: CertChoice | None = None
    for ck in cfg.certificates:
        if key_type is not None and ck.key_type != key_type:
            continue
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
            scheme = SignatureScheme(first)
        sni = offered.server_name
        if sni and any(_name_matches(n, sni) for n in ck.names):
            return CertChoice(ck, scheme, True)
        if fallback is None:
            fallback = CertChoice(ck, scheme, False)
    return fallback


def staple_for(certified: CertifiedKey, offered: Offered) -> bytes | None:
    """The OCSP response to staple for this certificate (RFC 6066 §8): only when the
    client asked with status_request and we have one."""
    if offered.status_request and certified.ocsp_response is not None:
        return certified.ocsp_response
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
    trust = cfg.client_trust
    if trust is None or len(trust) > MAX_CERTIFICATE_AUTHORITIES:
        return ()
    names: list[bytes] = []
    for cert in trust.certificates:
        der = cert.subject.public_bytes()
        if der not in names:
            names.append(der)
    return tuple(names)

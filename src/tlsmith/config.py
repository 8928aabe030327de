"""Frozen, validated configuration for clients and servers.

Clock and randomness are part of the configuration, so a handshake can be replayed
byte for byte (design.md §1).
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tlsmith.codec.enums import (
    CertificateType,
    CipherSuite,
    NamedGroup,
    ProtocolVersion,
    SignatureScheme,
)
from tlsmith.errors import UsageError
from tlsmith.observe import Observer

if TYPE_CHECKING:
    from collections.abc import Sequence

    from cryptography import x509

    from tlsmith.handshake.client_auth import CertificateRequestInfo
    from tlsmith.handshake.negotiate import ClientHelloInfo
    from tlsmith.session import ExternalPsk, ImportedPsk
    from tlsmith.stores import SessionStore
    from tlsmith.x509.callback import VerifyCallback
    from tlsmith.x509.keys import PrivateKey
    from tlsmith.x509.verify import TrustStore

Random = Callable[[int], bytes]
Clock = Callable[[], float]

DEFAULT_TLS13_SUITES: tuple[CipherSuite, ...] = (
    CipherSuite.TLS_AES_128_GCM_SHA256,
    CipherSuite.TLS_AES_256_GCM_SHA384,
    CipherSuite.TLS_CHACHA20_POLY1305_SHA256,
)
ALL_TLS13_SUITES: tuple[CipherSuite, ...] = (
    *DEFAULT_TLS13_SUITES,
    CipherSuite.TLS_AES_128_CCM_SHA256,
)
# TLS 1.2 suites offered/accepted by default: forward-secret AEADs first, then DHE with
# the RFC 7919 groups, then CBC (used only with encrypt_then_mac, RFC 7366). RSA key
# transport (TLS_RSA_WITH_*) is never a default: ask for it by name.
DEFAULT_TLS12_SUITES: tuple[CipherSuite, ...] = (
    CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    CipherSuite.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    CipherSuite.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    CipherSuite.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    CipherSuite.TLS_DHE_RSA_WITH_AES_128_GCM_SHA256,
    CipherSuite.TLS_DHE_RSA_WITH_AES_256_GCM_SHA384,
    CipherSuite.TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
    CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
    CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384,
    CipherSuite.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384,
)
DEFAULT_SUITES: tuple[CipherSuite, ...] = (*DEFAULT_TLS13_SUITES, *DEFAULT_TLS12_SUITES)
SUPPORTED_VERSIONS: tuple[ProtocolVersion, ...] = (ProtocolVersion.TLS13, ProtocolVersion.TLS12)
DEFAULT_GROUPS: tuple[NamedGroup, ...] = (
    NamedGroup.X25519,
    NamedGroup.SECP256R1,
    NamedGroup.X448,
    NamedGroup.SECP384R1,
    NamedGroup.SECP521R1,
    NamedGroup.FFDHE2048,
    NamedGroup.FFDHE3072,
    NamedGroup.FFDHE4096,
    NamedGroup.X25519MLKEM768,
)
# A server takes the post-quantum hybrid first when the client already sent a share
# for it (it never asks for it with a HelloRetryRequest unless nothing else fits).
DEFAULT_SERVER_GROUPS: tuple[NamedGroup, ...] = (
    NamedGroup.X25519MLKEM768,
    *DEFAULT_GROUPS[:-1],
)
CLIENT_AUTH_MODES: tuple[str, ...] = ("none", "request", "require")
DEFAULT_SIGNATURE_SCHEMES: tuple[SignatureScheme, ...] = (
    SignatureScheme.ECDSA_SECP256R1_SHA256,
    SignatureScheme.ECDSA_SECP384R1_SHA384,
    SignatureScheme.ECDSA_SECP521R1_SHA512,
    SignatureScheme.ED25519,
    SignatureScheme.ED448,
    SignatureScheme.RSA_PSS_PSS_SHA256,
    SignatureScheme.RSA_PSS_PSS_SHA384,
    SignatureScheme.RSA_PSS_PSS_SHA512,
    SignatureScheme.RSA_PSS_RSAE_SHA256,
    SignatureScheme.RSA_PSS_RSAE_SHA384,
    SignatureScheme.RSA_PSS_RSAE_SHA512,
    SignatureScheme.RSA_PKCS1_SHA256,
    SignatureScheme.RSA_PKCS1_SHA384,
    SignatureScheme.RSA_PKCS1_SHA512,
)


@dataclass(frozen=True)
class Limits:
    """Bounds on the work a peer can make us do without progress (shared by clients and
    servers). Each one, when hit, ends the connection with the RFC's alert and a
    ``ProtocolError`` whose message names the limit (``Limits.<field>=<value>``).

    The RFCs set no numbers here; the defaults follow OpenSSL, BoringSSL and rustls and
    stay far above anything a real peer sends.
    """

    #: Consecutive records that deliver nothing: empty application_data records (RFC
    #: 8446 §5.1 allows them), warning alerts (TLS 1.2, user_canceled in TLS 1.3), CCS,
    #: refused renegotiation (HelloRequest, a second ClientHello) and NewSessionTickets.
    #: Reset by any other handshake message or by non-empty application data. Hit:
    #: unexpected_message (OpenSSL: MAX_EMPTY_RECORDS 32, "too many warn alerts").
    max_records_without_progress: int = 32
    #: KeyUpdates received without application data in between (BoringSSL and rustls:
    #: kMaxKeyUpdates 32). The answer to our own update_requested does not count. Hit:
    #: unexpected_message. A peer's update_requested that arrives while our previous
    #: KeyUpdate is still unsent gets no second reply (RFC 8446 §4.6.3 asks for one
    #: KeyUpdate before our next application data, and the queued one is it).
    max_key_updates_without_data: int = 32
    #: Records one handshake message may span: this many, or one per 64 bytes of the
    #: message if that is more (RFC 8449 §4: 64 bytes is the smallest record size limit a
    #: peer may be held to), so the work stays linear in the bytes received. A 64 KiB
    #: ClientHello may come in up to 1025 records, not 65,540. Hit: unexpected_message.
    max_handshake_fragments_per_message: int = 64
    #: ClientHello lists a server reads, counted on the raw bytes before the hello is
    #: parsed (the message itself is capped at 2^17 bytes by the framing). Real clients
    #: offer under 100 suites, about 20 extensions, 10-20 groups and 1-4 key shares
    #: (Chromium with GREASE and X25519MLKEM768: 16 suites, 18 extensions, 5 groups, 3
    #: shares); scanners send every IANA suite (~350). Suites are cheap to read, so
    #: their default is the structural maximum (cipher_suites<2..2^16-2>, RFC 8446
    #: §4.1.2: a legal ~128 KiB hello stays accepted); extensions are not (10,000 of them
    #: cost ~1.5 s before this cap). Hit: illegal_parameter (a list longer than we
    #: accept, like the framing's size caps).
    max_client_hello_cipher_suites: int = 32767
    max_client_hello_extensions: int = 128
    max_client_hello_groups: int = 128
    max_client_hello_key_shares: int = 32

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not isinstance(value, int) or value < 1:
                raise UsageError(f"Limits.{name} must be a positive integer, not {value!r}")


def _validate_common(
    suites: tuple[CipherSuite, ...],
    groups: tuple[NamedGroup, ...],
    min_version: ProtocolVersion,
    max_version: ProtocolVersion,
    max_fragment: int,
) -> None:
    if not suites:
        raise UsageError("at least one cipher suite must be configured")
    if not groups:
        raise UsageError("at least one key-exchange group must be configured")
    for v in (min_version, max_version):
        if v not in SUPPORTED_VERSIONS:
            # RFC 8996: TLS 1.0 and 1.1 are deprecated; SSL 3.0 is long gone (RFC 7568).
            raise UsageError(f"{ProtocolVersion(v).label} is not supported: tlsmith speaks "
                             "TLSv1.2 and TLSv1.3")
    if min_version > max_version:
        raise UsageError(f"min_version {min_version.label} is above max_version "
                         f"{max_version.label}")
    if not 64 <= max_fragment <= 2**14:
        raise UsageError("max_fragment must be between 64 and 16384 bytes")


def _validate_npn_alps(npn: tuple[str, ...] | None,
                       alps: tuple[tuple[str, bytes], ...], *, client: bool) -> None:
    for proto in npn or ():
        # A client may select the empty protocol (selected_protocol<0..255>); a server
        # advertises names of 1..255 bytes.
        if not (0 if client else 1) <= len(proto.encode()) <= 255:
            raise UsageError(f"NPN protocol name {proto!r} must be 1..255 bytes")
    names = [p for p, _ in alps]
    if len(set(names)) != len(names):
        raise UsageError("application_settings lists a protocol twice")
    for proto, settings in alps:
        if not 1 <= len(proto.encode()) <= 255 or len(settings) > 0xFFFF:
            raise UsageError(f"application_settings for {proto!r}: the name must be 1..255 "
                             "bytes and the settings at most 65535")
def _check_certificate_types(types: tuple[CertificateType, ...], name: str) -> None:
    known = (CertificateType.X509, CertificateType.RAW_PUBLIC_KEY)
    if not types or any(t not in known for t in types) or len(set(types)) != len(types):
        raise UsageError(f"{name} must list X509 and/or RAW_PUBLIC_KEY, each once")


def _memory_store() -> SessionStore:
    from tlsmith.stores import MemoryStore

    return MemoryStore()


@functools.cache  # (a handful of (lo, hi) pairs; asked several times per handshake)
def _versions_between(lo: ProtocolVersion, hi: ProtocolVersion) -> tuple[ProtocolVersion, ...]:
    return tuple(v for v in SUPPORTED_VERSIONS if lo <= v <= hi)


@dataclass(frozen=True)
class CertifiedKey:
    """A certificate chain (DER, leaf first) and the private key of its leaf."""

    chain: tuple[bytes, ...]
    private_key: PrivateKey
    names: tuple[str, ...] = ()  # DNS names / IPs the leaf is valid for (for SNI choice)
    # A DER OCSPResponse about the leaf, stapled when the client sends status_request
    # (RFC 6066 §8): in TLS 1.3 in the leaf's CertificateEntry (RFC 8446 §4.4.2.1), in
    # TLS 1.2 as a CertificateStatus message after Certificate. None: staple nothing.
    ocsp_response: bytes | None = None
    # The schemes this key may sign with, most preferred first (those the key cannot
    # make are ignored); None: every scheme the key can make, in tlsmith's order. Its
    # own list, apart from the config's signature_schemes (then only what we accept from
    # the peer; without it, a server signs only with schemes that list also holds).
    signing_schemes: tuple[SignatureScheme, ...] | None = None
    # RFC 7250: ``chain`` is one DER SubjectPublicKeyInfo, sent only to a peer that
    # negotiated the raw public key type (see ``CertifiedKey.raw``).
    raw_public_key: bool = False

    @classmethod
    def raw(cls, private_key: PrivateKey,
            signing_schemes: tuple[SignatureScheme, ...] | None = None) -> CertifiedKey:
        """A raw public key credential (RFC 7250): the key's SPKI instead of a chain."""
        from tlsmith.x509.rpk import spki_der

        return cls((spki_der(private_key),), private_key, signing_schemes=signing_schemes,
                   raw_public_key=True)

    @property
    def certificate_type(self) -> CertificateType:
        return CertificateType.RAW_PUBLIC_KEY if self.raw_public_key else CertificateType.X509
    # Offer this credential only to a peer whose certificate_authorities (RFC 8446
    # §4.2.4; RFC 5246 §7.4.4 in a TLS 1.2 CertificateRequest) names the issuer of a
    # certificate in its chain: for a key meant for one PKI only. Without the list (or
    # with no name in common) the next credential is tried.
    must_match_issuer: bool = False

    @functools.cached_property
    def issuers(self) -> frozenset[bytes]:
        """The DER issuer names of the certificates in the chain."""
        from tlsmith.x509.keys import chain_issuers

        return chain_issuers(self.chain)

    def matches_issuers(self, names: tuple[bytes, ...] | None) -> bool:
        """Whether the peer's CA names (None: it sent none) allow this credential."""
        if not self.must_match_issuer:
            return True
        return names is not None and not self.issuers.isdisjoint(names)

    def _restrict(self, schemes: list[SignatureScheme]) -> list[SignatureScheme]:
        if self.signing_schemes is None:
            return schemes
        return [s for s in self.signing_schemes if s in schemes]

    @functools.cached_property
    def tls13_schemes(self) -> frozenset[SignatureScheme]:
        """The TLS 1.3 signature schemes this key can produce (computed once)."""
        from tlsmith.crypto.sig import legacy_pkcs1_schemes, schemes_for_private_key

        ours = schemes_for_private_key(self.private_key, tls13=True)
        if self.signing_schemes is not None:
            # RFC 9963: PKCS#1 v1.5 in a TLS 1.3 client CertificateVerify, only by name.
            ours += legacy_pkcs1_schemes(self.private_key)
        return frozenset(self._restrict(ours))

    @functools.cached_property
    def tls12_schemes(self) -> tuple[SignatureScheme, ...]:
        """The TLS 1.2 signature schemes this key can produce, most preferred first."""
        from tlsmith.crypto.sig import schemes_for_private_key

        return tuple(self._restrict(schemes_for_private_key(self.private_key, tls13=False)))

    @functools.cached_property
    def ecdsa_group(self) -> NamedGroup | None:
        """The curve of an ECDSA key as a named group (None for RSA and EdDSA keys)."""
        from tlsmith.x509.keys import ecdsa_curve_group

        return ecdsa_curve_group(self.private_key)

    @functools.cached_property
    def key_type(self) -> str:
        """"rsa", "ecdsa" or "eddsa": what a TLS 1.2 suite's authentication must match."""
        from tlsmith.x509.keys import key_kind

        return key_kind(self.private_key)

    @classmethod
    def from_files(cls, cert_path: str | os.PathLike[str], key_path: str | os.PathLike[str]
                   ) -> CertifiedKey:
        from tlsmith.x509.keys import der_chain, load_certificate_chain, load_private_key
        from tlsmith.x509.leaf import certificate_names

        certs = load_certificate_chain(cert_path)
        return cls(tuple(der_chain(certs)), load_private_key(key_path),
                   certificate_names(certs[0]))


#: ClientConfig.certificate_callback: given what the server asked for
#: (handshake.client_auth.CertificateRequestInfo), the credentials to choose from, in
#: order (None: the configured ones).
CertificateCallback = Callable[["CertificateRequestInfo"], "Sequence[CertifiedKey] | None"]


@dataclass(frozen=True)
class ClientConfig:
    server_name: str | None = None
    alpn_protocols: tuple[str, ...] = ()
    cipher_suites: tuple[CipherSuite, ...] = DEFAULT_SUITES
    groups: tuple[NamedGroup, ...] = DEFAULT_GROUPS
    key_share_groups: tuple[NamedGroup, ...] = (NamedGroup.X25519,)
    signature_schemes: tuple[SignatureScheme, ...] = DEFAULT_SIGNATURE_SCHEMES
    min_version: ProtocolVersion = ProtocolVersion.TLS12
    max_version: ProtocolVersion = ProtocolVersion.TLS13
    # RFC 7627: refuse a TLS 1.2 server without extended_master_secret unless allowed.
    require_extended_master_secret: bool = True
    # RFC 7366: CBC suites only with encrypt_then_mac unless MAC-then-encrypt is allowed.
    allow_mac_then_encrypt: bool = False
    # RFC 7919 §3 / RFC 8996-era practice: smallest finite-field DH prime we accept.
    min_dhe_bits: int = 2048
    # RFC 7507: signal a fallback retry (for testing servers; normal clients never set it).
    send_fallback_scsv: bool = False
    trust: TrustStore | None = None
    # RFC 7250: the server certificate types we accept, most preferred first (sent as
    # server_certificate_type unless X.509 alone). A server's raw public key is accepted
    # only if it is one of ``trusted_raw_public_keys`` (DER SPKIs) or
    # ``raw_public_key_verifier(spki)`` says yes; with neither, only when
    # verify_certificates=False, and then reported as not checked.
    server_certificate_types: tuple[CertificateType, ...] = (CertificateType.X509,)
    trusted_raw_public_keys: frozenset[bytes] = frozenset()
    raw_public_key_verifier: Callable[[bytes], bool] | None = None
    # RFC 7250: the client certificate types we offer (client_certificate_type); None:
    # the types of our credentials (``client_credentials``), in their order (the
    # extension is sent unless that is X.509 alone).
    client_certificate_types: tuple[CertificateType, ...] | None = None
    # RFC 7250: our raw public key credential (CertifiedKey.raw), sent when the server
    # asks for that type; ``certificate`` is then the X.509 one.
    raw_public_key: CertifiedKey | None = None
    # Mutual TLS: the client's chain and key, sent when the server asks (RFC 8446 §4.4.2,
    # RFC 5246 §7.4.6). None: answer a CertificateRequest with an empty Certificate.
    certificate: CertifiedKey | None = None
    # More client credentials, tried in this order before ``certificate``: the first that
    # fits the CertificateRequest (its signature algorithms, TLS 1.2 certificate_types,
    # and, for a must_match_issuer credential, its certificate_authorities) is sent.
    certificates: tuple[CertifiedKey, ...] = ()
    # When the server asks and none of our credentials fits: False sends an empty
    # Certificate (RFC 8446 §4.4.2, RFC 5246 §7.4.6; the server decides), True aborts with
    # handshake_failure (BoringSSL's behaviour) so the mismatch surfaces here.
    fail_without_matching_certificate: bool = False
    # Called when the server asks for a certificate, to pick the credentials then (e.g.
    # from a store, by the CA names asked for); an exception it raises aborts with
    # internal_error. See CertificateCallback.
    certificate_callback: CertificateCallback | None = None
    verify_certificates: bool = True
    # The application's own check of the server's chain (tlsmith.x509.callback): after
    # tlsmith's verification, or -- with verify_certificates=False -- alone, and then
    # reported as accepted by the callback, not verified. reverify_on_resume: run it
    # again on a resumption, with the session's chain.
    verify_callback: VerifyCallback | None = None
    reverify_on_resume: bool = False
    # Apply the CA/Browser Forum profile unchanged when verifying the server's chain
    # (verify_server_chain(strict=True)); the default accepts what OpenSSL accepts.
    strict: bool = False
    # Revocation (RFC 6960, RFC 6066 §8, RFC 5280 §6.3): ask for a stapled OCSP response
    # (status_request), check it and these CRLs. Without any revocation information the
    # handshake soft-fails (and says "not checked") unless require_revocation is set.
    request_ocsp: bool = True
    # Ask for a stapled OCSP response even without verification, and never check it:
    # it is handed over as HandshakeInfo.ocsp_response, and the revocation sentence says
    # it was received, not checked (revocation rests on ``crls`` alone; a must-staple
    # certificate then fails). For a caller that checks the response itself.
    ocsp_unchecked: bool = False
    # Called with the server's chain (DER, leaf first) and its stapled OCSP response (None
    # if it sent none) once the Certificate (and CertificateStatus) arrived; False aborts
    # with bad_certificate_status_response (RFC 6066 §8). Setting it also asks for a
    # staple when not verifying.
    ocsp_callback: Callable[[tuple[bytes, ...], bytes | None], bool] | None = None
    crls: tuple[x509.CertificateRevocationList, ...] = ()
    require_revocation: bool = False
    middlebox_compat: bool = True
    max_fragment: int = 2**14
    # Resumption (the session itself is per connection: TLSConnection(session=...)).
    # RFC 5077 §3.2: ask a TLS 1.2 server for a ticket with an empty SessionTicket.
    session_tickets: bool = True
    # RFC 8446 §4.2.9: also offer psk_ke (resumption without a fresh (EC)DHE: no forward
    # secrecy for the resumed connection); psk_dhe_ke is always offered.
    offer_psk_ke: bool = False
    # RFC 8446 §4.2.11: external PSKs offered (after a resumption ticket, if any); an
    # ImportedPsk (RFC 9258) is offered as its SHA-256 and SHA-384 imports. TLS 1.2 PSK
    # suites (RFC 4279, RFC 5489), when listed in cipher_suites, use the ExternalPsks.
    external_psks: tuple[ExternalPsk | ImportedPsk, ...] = ()
    # Accept only a handshake authenticated by one of external_psks (or a ticket from
    # one): a TLS 1.3 ServerHello without pre_shared_key is missing_extension, a TLS 1.2
    # one without a PSK suite protocol_version. No trust store is needed.
    require_psk: bool = False
    # RFC 8446 §4.2.10: if the server rejects our 0-RTT data, send it again as ordinary
    # application data once the handshake completes.
    resend_rejected_early_data: bool = True
    # NPN (draft-agl-tls-nextprotoneg, TLS 1.2 only; superseded by ALPN): offered when
    # not None. We pick the first protocol the server advertises that we list, else our
    # first (the draft's fallback); "" selects the empty protocol.
    next_protocols: tuple[str, ...] | None = None
    # RFC 7918 False Start (TLS 1.2 full handshakes, ECDHE with an AEAD, ALPN or NPN
    # negotiated unless false_start_without_alpn): send application data after our
    # Finished, before the server's. The server's Finished is still checked.
    false_start: bool = False
    false_start_without_alpn: bool = False
    # ALPS (draft-vvv-tls-alps, TLS 1.3 only): our settings for each ALPN protocol,
    # offered in ClientHello and sent in ClientEncryptedExtensions when the server
    # answers for the negotiated protocol. alps_new_codepoint: 17613 instead of 17513.
    application_settings: tuple[tuple[str, bytes], ...] = ()
    alps_new_codepoint: bool = False
    # RFC 5246 §7.4.1.1: a client that does not renegotiate "MAY" ignore a TLS 1.2
    # HelloRequest; by default it is refused with a no_renegotiation warning (RFC 5746
    # §4.2), which some servers treat as fatal. True: drop it silently.
    ignore_hello_request: bool = False
    # RFC 8701: GREASE values in the ClientHello (suites, extensions, groups, key
    # shares, versions), as browsers send, so servers stay tolerant of unknown values.
    grease: bool = False
    random: Random = os.urandom
    clock: Clock = time.time
    observer: Observer | None = None
    # Bounds on a peer's floods and oversized hellos (see Limits).
    limits: Limits = Limits()

    @property
    def versions(self) -> tuple[ProtocolVersion, ...]:
        """The versions this client offers, highest first."""
        return _versions_between(self.min_version, self.max_version)

    @property
    def client_credentials(self) -> tuple[CertifiedKey, ...]:
        """Our credentials in the order they are tried: ``certificates``, then
        ``certificate``, then ``raw_public_key``."""
        return (*self.certificates,
                *(c for c in (self.certificate, self.raw_public_key) if c is not None))

    @property
    def may_send_certificate(self) -> bool:
        """Whether a CertificateRequest may get a certificate from us."""
        return bool(self.client_credentials) or self.certificate_callback is not None

    @property
    def sends_status_request(self) -> bool:
        """Whether the ClientHello asks for a stapled OCSP response (RFC 6066 §8)."""
        return self.ocsp_unchecked or (self.request_ocsp and (
            self.verify_certificates or self.ocsp_callback is not None))

    def __post_init__(self) -> None:
        _validate_common(self.cipher_suites, self.groups, self.min_version, self.max_version,
                         self.max_fragment)
        if self.min_dhe_bits < 1024:
            raise UsageError("min_dhe_bits below 1024 is not allowed (Logjam)")
        for g in self.key_share_groups:
            if g not in self.groups:
                raise UsageError(f"key share group {g.name} is not in the configured groups")
        if len(set(self.key_share_groups)) != len(self.key_share_groups):
            raise UsageError("key_share_groups lists a group twice")
        for proto in self.alpn_protocols:
            if not 1 <= len(proto.encode()) <= 255:
                raise UsageError(f"ALPN protocol name {proto!r} must be 1..255 bytes")
        _validate_npn_alps(self.next_protocols, self.application_settings, client=True)
        if self.require_revocation and not self.verify_certificates:
            raise UsageError("require_revocation (--require-revocation) needs certificate "
                             "verification (verify_certificates=True, no --insecure): "
                             "revocation is checked only on a verified chain")
        if self.require_psk and not self.external_psks:
            raise UsageError("require_psk needs external_psks")
        if self.reverify_on_resume and self.verify_callback is None:
            raise UsageError("reverify_on_resume needs a verify_callback to run again")
        _check_certificate_types(self.server_certificate_types, "server_certificate_types")
        if self.raw_public_key is not None and not self.raw_public_key.raw_public_key:
            raise UsageError("raw_public_key must be a raw public key credential "
                             "(CertifiedKey.raw)")
        if self.client_certificate_types is not None:
            _check_certificate_types(self.client_certificate_types, "client_certificate_types")
        x509_ok = CertificateType.X509 in self.server_certificate_types
        if (self.verify_certificates and x509_ok and self.trust is None
                and not self.require_psk):
            raise UsageError(
                "certificate verification needs a trust store: pass trust=TrustStore..., "
                "or verify_certificates=False to accept any certificate (insecure)"
            )
        if (self.verify_certificates
                and CertificateType.RAW_PUBLIC_KEY in self.server_certificate_types
                and not self.trusted_raw_public_keys and self.raw_public_key_verifier is None):
            raise UsageError(
                "accepting raw public keys needs trusted_raw_public_keys or "
                "raw_public_key_verifier, or verify_certificates=False (insecure)")


@dataclass(frozen=True)
class ServerConfig:
    certificates: tuple[CertifiedKey, ...]
    alpn_protocols: tuple[str, ...] = ()
    cipher_suites: tuple[CipherSuite, ...] = DEFAULT_SUITES
    groups: tuple[NamedGroup, ...] = DEFAULT_SERVER_GROUPS
    signature_schemes: tuple[SignatureScheme, ...] = DEFAULT_SIGNATURE_SCHEMES
    min_version: ProtocolVersion = ProtocolVersion.TLS12
    max_version: ProtocolVersion = ProtocolVersion.TLS13
    # RSA key transport (TLS_RSA_WITH_*, no forward secrecy): off unless asked for.
    allow_rsa_key_exchange: bool = False
    require_extended_master_secret: bool = True
    allow_mac_then_encrypt: bool = False
    prefer_server_cipher_order: bool = True
    # Equal-preference groups (OpenSSL's "[A|B]"), with prefer_server_cipher_order: the
    # server ranks a group's suites (all in cipher_suites) alike, at the place of the
    # first of them, and the client's order among them decides (e.g. ChaCha20 for
    # clients that put it before AES-GCM, having no AES hardware).
    cipher_suite_groups: tuple[tuple[CipherSuite, ...], ...] = ()
    # JDK 11 before 11.0.2 offers TLS 1.3 but fails to resume with it: answer hellos
    # that look like its own (negotiate.is_probably_jdk11) with TLS 1.2 and a ServerHello
    # random that JDK 11 does not read as a downgrade (BoringSSL's workaround; off).
    jdk11_workaround: bool = False
    # RFC 8701 §3.2: a GREASE extension in each TLS 1.3 NewSessionTicket.
    grease: bool = False
    # TLS 1.3 group choice: False takes our most preferred group the client sent a share
    # for (no HelloRetryRequest when one fits); True takes our most preferred group the
    # client supports, asking for its share with a HelloRetryRequest if needed (RFC 8446
    # §4.1.4), e.g. to insist on ML-KEM-1024 over a classical share.
    strict_group_preference: bool = False
    max_fragment: int = 2**14
    # Secret for the stateless HelloRetryRequest cookie (RFC 8446 §4.2.2).
    cookie_secret: bytes = field(default_factory=lambda: os.urandom(32))
    # Mutual TLS: "none", "request" (verify a certificate if the client sends one) or
    # "require" (no certificate -> certificate_required / handshake_failure alert).
    client_auth: str = "none"
    # The CAs client certificates must chain to (with client_auth != "none", this or a
    # verify_callback is required).
    client_trust: TrustStore | None = None
    # RFC 7250: the client certificate types we accept, most preferred first. A client's
    # raw public key must be one of ``trusted_client_raw_public_keys`` (DER SPKIs) or
    # pass ``client_raw_public_key_verifier(spki)``.
    client_certificate_types: tuple[CertificateType, ...] = (CertificateType.X509,)
    trusted_client_raw_public_keys: frozenset[bytes] = frozenset()
    client_raw_public_key_verifier: Callable[[bytes], bool] | None = None
    # The CA names (DER DistinguishedNames) a CertificateRequest carries to help the client
    # choose (RFC 8446 §4.2.4, RFC 5246 §7.4.4); () sends none. None: client_trust's
    # subjects when it holds few (MAX_CERTIFICATE_AUTHORITIES), else none.
    certificate_authorities: tuple[bytes, ...] | None = None
    # The application's own check of the client's chain (tlsmith.x509.callback): after
    # the client_trust verification, or alone without client_trust, and then reported as
    # accepted by the callback, not verified. reverify_on_resume: ask it again before
    # resuming a session with a client certificate (refused: a full handshake instead).
    verify_callback: VerifyCallback | None = None
    reverify_on_resume: bool = False
    # Apply cryptography's Web PKI client profile unchanged when verifying client chains
    # (verify_client_chain(strict=True)); the default accepts what OpenSSL accepts.
    strict: bool = False
    # Resumption (issue 7; design in tlsmith/tickets.py). The store holds the TLS 1.2
    # session-ID cache, 0-RTT single-use marks and the ticket keys; share one store (or a
    # RedisStore) between servers that should resume each other's sessions.
    session_store: SessionStore = field(default_factory=_memory_store)
    # TLS 1.3: NewSessionTickets sent after each handshake (RFC 8446 §4.6.1); TLS 1.2:
    # whether RFC 5077 tickets are issued at all (0: none, in either version).
    tickets: int = 2
    session_ids: bool = True  # TLS 1.2 session-ID resumption (RFC 5246 §7.3)
    ticket_lifetime: int = 7200  # seconds; RFC 8446 §4.6.1 caps it at 7 days
    # RFC 8446 §4.2.10: 0 never accepts early data; otherwise the ticket's
    # max_early_data_size (and early data is accepted once per ticket, §8.1).
    max_early_data: int = 0
    # RFC 8446 §8.3: how far the client's ticket age may be from ours for 0-RTT.
    early_data_window: float = 10.0
    # RFC 8446 §4.2.9: accept psk_ke (no (EC)DHE on resumption) when offered.
    allow_psk_ke: bool = False
    # External PSKs (RFC 8446 §4.2.11) and imported ones (RFC 9258) a client may use,
    # preferred in this order; with any, ``certificates`` may be empty (a PSK-only
    # server: a client without one of them gets handshake_failure).
    external_psks: tuple[ExternalPsk | ImportedPsk, ...] = ()
    # TLS 1.2 PSK suites (RFC 4279 §5.2): the identity hint in ServerKeyExchange (empty:
    # none; a plain PSK server then sends no ServerKeyExchange).
    psk_identity_hint: bytes = b""
    # When a client offers one of our external PSKs and a certificate would do too:
    # False authenticates with the PSK, True with the certificate.
    prefer_certificates_to_psks: bool = False
    # NPN (draft-agl-tls-nextprotoneg, TLS 1.2 only): the protocols advertised when the
    # client offers NPN (None: not advertised; () advertises an empty list). ALPN takes
    # precedence: a client that offers ALPN to a server with alpn_protocols gets no NPN.
    next_protocols: tuple[str, ...] | None = None
    # ALPS (draft-vvv-tls-alps, TLS 1.3 only): our settings for each ALPN protocol, sent
    # in EncryptedExtensions when the client offers ALPS for the negotiated protocol.
    application_settings: tuple[tuple[str, bytes], ...] = ()
    alps_new_codepoint: bool = False
    # RFC 6066 §8: when a client asks for certificate status, called with the chosen
    # credential for the OCSP response to staple (None: staple nothing), instead of its
    # ocsp_response -- e.g. to fetch a fresh one. An exception it raises aborts the
    # handshake with internal_error.
    ocsp_callback: Callable[[CertifiedKey], bytes | None] | None = None
    # Called on each ClientHello once the version is chosen, with what the client offers
    # (handshake.negotiate.ClientHelloInfo): the credentials to choose from for it, in
    # order (None: ``certificates``), e.g. loaded for its server name. An exception it
    # raises aborts the handshake with internal_error.
    certificate_callback: Callable[[ClientHelloInfo], Sequence[CertifiedKey] | None] | None = (
        None)
    random: Random = os.urandom
    clock: Clock = time.time
    observer: Observer | None = None
    # Bounds on a peer's floods and oversized hellos (see Limits).
    limits: Limits = Limits()

    @property
    def versions(self) -> tuple[ProtocolVersion, ...]:
        """The versions this server accepts, highest first."""
        return _versions_between(self.min_version, self.max_version)

    def __post_init__(self) -> None:
        _validate_common(self.cipher_suites, self.groups, self.min_version, self.max_version,
                         self.max_fragment)
        if not self.certificates and not self.external_psks:
            raise UsageError("a server needs at least one certificate and key (or external "
                             "PSKs)")
        grouped = [s for g in self.cipher_suite_groups for s in g]
        if len(set(grouped)) != len(grouped) or not set(grouped) <= set(self.cipher_suites):
            raise UsageError("cipher_suite_groups: each suite in at most one group, and "
                             "every one of them in cipher_suites")
        if len(self.cookie_secret) < 16:
            raise UsageError("cookie_secret must be at least 16 bytes")
        if self.client_auth not in CLIENT_AUTH_MODES:
            raise UsageError(f"client_auth must be one of {', '.join(CLIENT_AUTH_MODES)}, "
                             f"not {self.client_auth!r}")
        if self.certificate_authorities is not None and not all(
                1 <= len(n) < 2**16 for n in self.certificate_authorities):
            raise UsageError("certificate_authorities: each name must be 1..65535 bytes of "
                             "DER")
        if self.tickets < 0 or self.tickets > 16:
            raise UsageError("tickets must be between 0 and 16")
        if not 1 <= self.ticket_lifetime <= 604800:
            raise UsageError("ticket_lifetime must be 1..604800 seconds (RFC 8446 §4.6.1)")
        if self.max_early_data < 0 or self.max_early_data > 2**32 - 1:
            raise UsageError("max_early_data must be between 0 and 2^32-1")
        _validate_npn_alps(self.next_protocols, self.application_settings, client=False)
        if self.reverify_on_resume and self.verify_callback is None:
            raise UsageError("reverify_on_resume needs a verify_callback to run again")
        _check_certificate_types(self.client_certificate_types, "client_certificate_types")
        if (self.client_auth != "none"
                and CertificateType.RAW_PUBLIC_KEY in self.client_certificate_types
                and not self.trusted_client_raw_public_keys
                and self.client_raw_public_key_verifier is None):
            raise UsageError("accepting clients' raw public keys needs "
                             "trusted_client_raw_public_keys or client_raw_public_key_verifier")
        if (self.client_auth != "none" and self.client_trust is None
                and CertificateType.X509 in self.client_certificate_types
                and self.verify_callback is None):
            raise UsageError(
                f"client_auth={self.client_auth!r} needs client_trust=TrustStore...: the CAs "
                "that client certificates must chain to (or a verify_callback that judges "
                "them)")

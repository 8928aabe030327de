"""The BoGo shim: one test, ``1 + -resume-count`` connections to the runner.

Each connection: TCP to the runner's port, the shim id as 8 bytes little-endian, then
TLS (server if ``-server``) over a blocking socket with ``TLSConnection``; after the
handshake the checks the flags ask for, then the echo (every byte XOR 0xFF) until the
runner closes. See ``tlsmith.bogo`` and ``tlsmith.bogo.flags``.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, TypeVar

from tlsmith.bogo import rpk
from tlsmith.bogo.ciphers import CipherStringError, parse_cipher_string
from tlsmith.bogo.errors import describe_error
from tlsmith.bogo.flags import FlagError, Options, ParsedFlags, UnimplementedFlag, parse
from tlsmith.codec.enums import (
    AlertDescription,
    CipherSuite,
    NamedGroup,
    ProtocolVersion,
    SignatureScheme,
)
from tlsmith.codec.extensions import CertificateAuthorities
from tlsmith.codec.extensions_tls13 import EarlyDataIndication
from tlsmith.config import (
    DEFAULT_GROUPS,
    DEFAULT_SERVER_GROUPS,
    DEFAULT_SIGNATURE_SCHEMES,
    DEFAULT_SUITES,
    CertifiedKey,
    ClientConfig,
    Limits,
    ServerConfig,
)
from tlsmith.connection import TLSConnection
from tlsmith.crypto.kx import SUPPORTED_GROUPS, TLS13_ONLY_GROUPS
from tlsmith.crypto.sig import SUPPORTED_SIGNATURE_SCHEMES
from tlsmith.crypto.suites import TLS12_PSK_SUITES, TLS12_SUITES, TLS13_SUITES
from tlsmith.errors import TLSError, UsageError
from tlsmith.events import (
    NEED_DATA,
    ApplicationData,
    ConnectionClosed,
    Event,
    FalseStart,
    HandshakeComplete,
    HandshakeInfo,
    SessionTicketReceived,
)
from tlsmith.handshake import alps
from tlsmith.handshake.client_auth import CertificateRequestInfo
from tlsmith.handshake.negotiate import ClientHelloInfo
from tlsmith.observe import MessageTrace, SecretTrace, TraceRecord
from tlsmith.session import ExternalPsk, ImportedPsk, Session, Session12, Session13
from tlsmith.stores import MemoryStore
from tlsmith.x509.callback import PeerCertificates, Verdict, accept, refuse
from tlsmith.x509.keys import der_chain, load_certificate_chain, load_private_key
from tlsmith.x509.rpk import spki_der
from tlsmith.x509.verify import TrustStore

if TYPE_CHECKING:
    from collections.abc import Callable

_T = TypeVar("_T")
EXIT_UNIMPLEMENTED = 89
#: The runner sends handshake messages one byte per record (SplitHandshakeRecords), which
#: tlsmith's default bound on fragments per message (a DoS limit) refuses; the shim lifts
#: it so that those tests exercise reassembly instead.
SHIM_LIMITS = Limits(max_handshake_fragments_per_message=2**17)
_TLS12 = ProtocolVersion.TLS12
_TLS13 = ProtocolVersion.TLS13
#: Every suite tlsmith implements, defaults first (BoringSSL enables RSA key transport
#: and CBC by default; the runner asks for each suite by name).
ALL_SUITES: tuple[CipherSuite, ...] = (
    *DEFAULT_SUITES,
    *(s for s in (*TLS13_SUITES, *TLS12_SUITES) if s not in DEFAULT_SUITES),
    *TLS12_PSK_SUITES,  # used only with -psk
)


class ShimFailure(Exception):
    """A check the flags asked for did not hold (BoringSSL's shim prints and fails)."""


class Unimplemented(Exception):
    """The flags ask for something tlsmith does not do (exit 89)."""


@dataclass
class Watch:
    """What the observer saw on one connection (the public trace, no internals)."""

    sent_certificate: tuple[bytes, ...] | None = None
    peer_cv_scheme: SignatureScheme | None = None
    server_hello_session_id: bytes | None = None
    cert_request_cas: tuple[bytes, ...] | None = None  # a received CertificateRequest's
    cert_request_types: bytes | None = None  # (TLS 1.2)
    secrets: dict[str, bytes] = field(default_factory=dict)
    # The peer's signature_algorithms (ClientHello, or CertificateRequest).
    peer_verify_prefs: tuple[int, ...] | None = None
    # A client's 0-RTT: offered (early_data in its ClientHello), then refused (the
    # server's EncryptedExtensions, or the full handshake's, without it).
    offered_early_data: bool = False
    early_data_rejected: bool = False

    def __call__(self, record: TraceRecord) -> None:
        debug = os.environ.get("TLSMITH_BOGO_TRACE")  # a file: one line per message
        if debug and isinstance(record, MessageTrace):
            with open(debug, "a", encoding="utf-8") as f:
                f.write(f"{os.getpid()} {record.direction} {record.name} "
                        f"{record.message!r}"[:200] + "\n")
        if isinstance(record, SecretTrace):
            self.secrets[record.name] = record.value
            return
        if not isinstance(record, MessageTrace):
            return
        msg = record.message
        name = record.name.removesuffix("12")  # Certificate12 etc. in TLS 1.2
        if name == "RawPublicKeyCertificate" and record.direction == "sent":
            self.sent_certificate = (msg.subject_public_key_info,)
        elif name == "Certificate" and record.direction == "sent":
            entries = getattr(msg, "certificate_list", ())
            self.sent_certificate = tuple(
                e if isinstance(e, bytes) else e.cert_data for e in entries)
        elif name == "CertificateVerify" and record.direction == "received":
            self.peer_cv_scheme = SignatureScheme(msg.algorithm)
        elif name in ("ClientHello", "CertificateRequest") and record.direction == "received":
            self.peer_verify_prefs = _signature_algorithms(msg)
            if name == "CertificateRequest":
                types = getattr(msg, "certificate_types", None)
                if types is not None:  # TLS 1.2
                    self.cert_request_types = bytes(types)
                    self.cert_request_cas = tuple(msg.certificate_authorities)
                else:
                    cas = next((e for e in msg.extensions
                                if isinstance(e, CertificateAuthorities)), None)
                    self.cert_request_cas = tuple(cas.authorities) if cas is not None else ()
        elif name == "ServerHello":
            self.server_hello_session_id = bytes(getattr(msg, "legacy_session_id_echo", b""))
        elif name in ("ClientHello", "EncryptedExtensions"):
            early = any(isinstance(e, EarlyDataIndication) for e in msg.extensions)
            if name == "ClientHello" and record.direction == "sent":
                self.offered_early_data = early
            elif name == "EncryptedExtensions" and record.direction == "received":
                self.early_data_rejected = self.offered_early_data and not early


def _signature_algorithms(msg: object) -> tuple[int, ...] | None:
    algs = getattr(msg, "supported_signature_algorithms", None)  # TLS 1.2 CertificateRequest
    if algs is None:
        found = next((e for e in getattr(msg, "extensions", ())
                      if getattr(e, "extension_type", None) == 13), None)
        algs = getattr(found, "supported_signature_algorithms", None)
    return None if algs is None else tuple(int(a) for a in algs)


@dataclass
class Shared:
    """State that lives across the connections of one test (one process)."""

    store: MemoryStore = field(default_factory=MemoryStore)
    cookie_secret: bytes = field(default_factory=lambda: os.urandom(32))
    clock_offset: float = 0.0
    session: Session | None = None
    # BoringSSL reports the peer's signature algorithm of the session (a resumption
    # signs nothing): remember the full handshake's.
    peer_signature: SignatureScheme | None = None
    group: NamedGroup | None = None
    ocsp_response: bytes | None = None  # the full handshake's stapled response
    resumed_before: bool = False  # a server: this is not the first connection
    # A server: whether the tickets of the last connection allowed 0-RTT, and its ALPN.
    ticket_early_data: bool = False
    ticket_alpn: str | None = None
    ticket_alps: tuple[tuple[str, bytes], ...] | None = None  # our ALPS settings then
    # With -resumption-delay, BoringSSL's shim runs on a simulated clock that only the
    # delays move (the runner checks ticket ages to the second): so does ours.
    frozen_at: float | None = None
    # What the verify callback last said (SSL_get_verify_result; a resumption keeps the
    # session's): None when it never ran (X509_V_OK then).
    verify_ok: bool | None = None

    def clock(self) -> float:
        base = time.time() if self.frozen_at is None else self.frozen_at
        return base + self.clock_offset


def main(argv: list[str]) -> int:
    _ARGV[:] = argv
    if "-is-handshaker-supported" in argv:
        print("No")
        return 0
    try:
        flags = parse(argv)
    except UnimplementedFlag as exc:
        print(f"unimplemented flag {exc}", file=sys.stderr)
        _log_unimplemented(f"flag {exc}")
        return EXIT_UNIMPLEMENTED
    except FlagError as exc:
        print(f"flag error: {exc}", file=sys.stderr)
        return 1
    return run(flags)


#: When set, every unimplemented test appends "<why>" here (one line), so that ``make
#: bogo`` can say which missing features hold back the most tests.
UNIMPLEMENTED_LOG = "TLSMITH_BOGO_UNIMPLEMENTED_LOG"
#: When set, the same as JSON lines with the test's arguments: which other flags the
#: unimplemented tests need, to choose what to build next.
UNIMPLEMENTED_ARGV_LOG = "TLSMITH_BOGO_UNIMPLEMENTED_ARGV_LOG"
_ARGV: list[str] = []


def _log_unimplemented(why: str) -> None:
    path = os.environ.get(UNIMPLEMENTED_LOG)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(why.replace("\n", " ") + "\n")
    path = os.environ.get(UNIMPLEMENTED_ARGV_LOG)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"why": why, "argv": _ARGV}) + "\n")


def run(flags: ParsedFlags) -> int:
    first = flags.options(0)
    shared = Shared()
    if any(flags.options(i).resumption_delay for i in range(first.resume_count + 1)):
        shared.frozen_at = time.time()
    for i in range(first.resume_count + 1):
        opts = flags.options(i)
        if i > 0:
            # BoringSSL's shim moves its clock forward before each resumption.
            shared.clock_offset += opts.resumption_delay
        try:
            run_connection(opts, shared, resume=i > 0, retry=flags.retry_options())
        except Unimplemented as exc:
            print(f"unimplemented: {exc}", file=sys.stderr)
            _log_unimplemented(str(exc))
            return EXIT_UNIMPLEMENTED
        except ShimFailure as exc:
            print(f"shim check failed on connection {i + 1}: {exc}", file=sys.stderr)
            return 1
        except TLSError as exc:
            print(describe_error(exc), file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"<TransportError> connection {i + 1}: {exc!r}", file=sys.stderr)
            return 1
        shared.resumed_before = True
    return 0


# ------------------------------------------------------------------ configuration
_CS, _NG, _SS = CipherSuite, NamedGroup, SignatureScheme


@dataclass(frozen=True)
class Policy:
    """A BoringSSL compliance policy (ssl_lib.cc): TLS 1.2-1.3 with these suites,
    groups and signature schemes (for signing and for verifying)."""

    suites: tuple[CipherSuite, ...]
    groups: tuple[NamedGroup, ...]
    schemes: tuple[SignatureScheme, ...]


POLICIES: dict[str, Policy] = {
    # NIST SP 800-52r2: AES-GCM with ECDHE, P-256/P-384, no SHA-1, no EdDSA.
    "fips_202205": Policy(
        suites=(_CS.TLS_AES_128_GCM_SHA256, _CS.TLS_AES_256_GCM_SHA384,
                _CS.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                _CS.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
                _CS.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                _CS.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384),
        groups=(_NG.SECP256R1, _NG.SECP384R1),
        schemes=(_SS.RSA_PKCS1_SHA256, _SS.RSA_PKCS1_SHA384, _SS.RSA_PKCS1_SHA512,
                 _SS.ECDSA_SECP256R1_SHA256, _SS.ECDSA_SECP384R1_SHA384,
                 _SS.RSA_PSS_RSAE_SHA256, _SS.RSA_PSS_RSAE_SHA384, _SS.RSA_PSS_RSAE_SHA512)),
    # WPA3 192-bit: AES-256-GCM, P-384, SHA-384 and up.
    "wpa_202304": Policy(
        suites=(_CS.TLS_AES_256_GCM_SHA384, _CS.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                _CS.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384),
        groups=(_NG.SECP384R1,),
        schemes=(_SS.RSA_PKCS1_SHA384, _SS.RSA_PKCS1_SHA512, _SS.ECDSA_SECP384R1_SHA384,
                 _SS.RSA_PSS_RSAE_SHA384, _SS.RSA_PSS_RSAE_SHA512)),
}


# CNSA 1.0 (March 2026 profile): AES-256-GCM (RSA key transport too), ML-KEM-1024
# (preferred) or P-384, SHA-384 signatures.
POLICIES["cnsa1_202603"] = Policy(
    suites=(_CS.TLS_AES_256_GCM_SHA384, _CS.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            _CS.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, _CS.TLS_RSA_WITH_AES_256_GCM_SHA384),
    groups=(_NG.MLKEM1024, _NG.SECP384R1),
    schemes=(_SS.RSA_PKCS1_SHA384, _SS.ECDSA_SECP384R1_SHA384, _SS.RSA_PSS_RSAE_SHA384))


# CNSA 2.0 (March 2026 profile): TLS 1.3 with AES-256-GCM only, ML-KEM-1024 only, and
# (as BoGo's tests measure it) ECDSA P-384 or RSA-PSS SHA-384 signatures, not ML-DSA.
POLICIES["cnsa2_202603"] = Policy(
    suites=(_CS.TLS_AES_256_GCM_SHA384,),
    groups=(_NG.MLKEM1024,),
    schemes=(_SS.ECDSA_SECP384R1_SHA384, _SS.RSA_PSS_RSAE_SHA384))


# BoringSSL's -cnsa-202407 restricts nothing: its server takes AES-256-GCM in TLS 1.3
# whenever the client offers it (tlsmith: server order, AES-256-GCM first).
_CNSA_202407_SUITES: tuple[CipherSuite, ...] = (
    _CS.TLS_AES_256_GCM_SHA384, *(s for s in ALL_SUITES if s != _CS.TLS_AES_256_GCM_SHA384))


def _policy(o: Options) -> Policy | None:
    chosen = [name for name in POLICIES if getattr(o, name)]
    if len(chosen) > 1:
        raise Unimplemented("two compliance policies at once")
    return POLICIES[chosen[0]] if chosen else None


def _suites(o: Options, policy: Policy | None, *, server: bool = False
            ) -> tuple[CipherSuite, ...]:
    """-cipher sets the TLS 1.2 suites only (BoringSSL's TLS 1.3 suites are fixed)."""
    base = (policy.suites if policy else _CNSA_202407_SUITES if server and o.cnsa_202407
            else ALL_SUITES)
    if not o.cipher:
        return base
    try:
        parsed = parse_cipher_string(o.cipher)
        tls12 = parsed.tlsmith_suites()
    except CipherStringError as exc:
        raise Unimplemented(f"-cipher: {exc}") from exc
    return (*(s for s in base if s in TLS13_SUITES), *tls12)


def _suite_groups(o: Options, suites: tuple[CipherSuite, ...]
                  ) -> tuple[tuple[CipherSuite, ...], ...]:
    if not o.cipher:
        return ()
    groups = parse_cipher_string(o.cipher).tlsmith_groups()
    tls13 = tuple(s for s in suites if s in TLS13_SUITES)
    if o.server_preference or len(tls13) < 2:
        return groups
    return (tls13, *groups)


def _versions(o: Options) -> tuple[ProtocolVersion, ProtocolVersion]:
    lo = o.min_version or 0x0301
    hi = o.max_version or 0x0304
    if o.no_tls13:
        hi = min(hi, 0x0303)
    if o.no_tls12 and hi == 0x0304:
        lo = max(lo, 0x0304)
    elif o.no_tls12:
        hi = min(hi, 0x0302)
    if hi < 0x0303 or hi > 0x0304:
        raise Unimplemented(f"max version {hi:#06x}: tlsmith speaks TLS 1.2 and 1.3 only")
    lo = max(lo, 0x0303)
    if lo > hi:
        raise Unimplemented(f"no version enabled (min {lo:#06x} > max {hi:#06x})")
    return ProtocolVersion(lo), ProtocolVersion(hi)


_HYBRID = TLS13_ONLY_GROUPS  # the post-quantum groups (pure ML-KEM and hybrids)


def _groups(o: Options, default: tuple[NamedGroup, ...]) -> tuple[NamedGroup, ...]:
    if not o.curves:
        return default
    missing = [c for c in o.curves if NamedGroup(c) not in SUPPORTED_GROUPS]
    if missing:
        raise Unimplemented(f"group(s) {missing} not implemented")
    return tuple(dict.fromkeys(NamedGroup(c) for c in o.curves))


def _key_shares(groups: tuple[NamedGroup, ...]) -> tuple[NamedGroup, ...]:
    """BoringSSL's choice: a share for the first group, and for the first post-quantum
    hybrid when the first is classical (or the first classical one when it is not)."""
    first = groups[0]
    other = next((g for g in groups[1:] if (g in _HYBRID) != (first in _HYBRID)), None)
    if other is None:
        return (first,)
    return tuple(g for g in groups if g in (first, other))


#: BoringSSL's default signing preferences: tlsmith's defaults and ML-DSA.
SIGNING_DEFAULT: tuple[SignatureScheme, ...] = (
    *DEFAULT_SIGNATURE_SCHEMES, _SS.MLDSA44, _SS.MLDSA65, _SS.MLDSA87)


def _schemes(prefs: list[int]) -> tuple[SignatureScheme, ...]:
    if not prefs:
        return DEFAULT_SIGNATURE_SCHEMES
    schemes = tuple(SignatureScheme(p) for p in prefs
                    if SignatureScheme(p) in SUPPORTED_SIGNATURE_SCHEMES)
    if not schemes:
        raise Unimplemented(f"none of the signature schemes {prefs} is implemented")
    return tuple(dict.fromkeys(schemes))


def _alps(o: Options) -> tuple[tuple[str, bytes], ...]:
    """-application-settings "protocol,settings" (split at the first comma)."""
    if o.application_settings is None:
        return ()
    proto, _, settings = o.application_settings.partition(",")
    return ((proto, settings.encode("latin-1")),)


def _negotiated_alps(o: Options, info: HandshakeInfo) -> tuple[tuple[str, bytes], ...] | None:
    """Our ALPS settings if ALPS was negotiated on this connection, else None."""
    return _alps(o) if info.peer_application_settings is not None else None


def _alpn_list(wire: str) -> tuple[str, ...]:
    """-advertise-alpn is the wire format: length-prefixed names."""
    raw = wire.encode("latin-1")
    out: list[str] = []
    i = 0
    while i < len(raw):
        n = raw[i]
        out.append(raw[i + 1:i + 1 + n].decode("latin-1"))
        i += 1 + n
    return tuple(out)


def _credentials(o: Options, *, signing_prefs: bool = False) -> list[CertifiedKey]:
    """The credentials in BoringSSL's order; ``signing_prefs``: each with its own
    -signing-prefs (CertifiedKey.signing_schemes)."""
    out: list[CertifiedKey] = []
    # BoringSSL tries the credentials added with -new-x509-credential in order, and the
    # default one (-cert-file/-key-file before any of them) last.
    for cred in (*o.credentials, o.default):
        if cred.rpk:
            if not cred.key_file or cred.cert_file:
                raise ShimFailure("an RPK credential needs -key-file and no -cert-file")
            try:
                ck = CertifiedKey.raw(load_private_key(cred.key_file))
            except UsageError as exc:
                raise Unimplemented("a credential whose key type tlsmith cannot sign "
                                    "TLS handshakes with") from exc
            if signing_prefs and cred.signing_prefs:
                ck = replace(ck, signing_schemes=_schemes(cred.signing_prefs))
            out.append(ck)
        elif cred.cert_file and cred.key_file:
            try:
                ck = CertifiedKey.from_files(cred.cert_file, cred.key_file)
            except UsageError as exc:  # e.g. an ML-DSA key: no TLS signature scheme for it
                raise Unimplemented("a credential whose key type tlsmith cannot sign "
                                    "TLS handshakes with") from exc
            if cred.ocsp_response is not None:
                ck = replace(ck, ocsp_response=cred.ocsp_response)
            if signing_prefs and cred.signing_prefs:
                ck = replace(ck, signing_schemes=_schemes(cred.signing_prefs))
            if cred.must_match_issuer:
                ck = replace(ck, must_match_issuer=True)
            out.append(ck)
        elif cred.cert_file or cred.key_file:
            raise ShimFailure("a credential needs both -cert-file and -key-file")
    return out


def _psks(o: Options) -> tuple[ImportedPsk, ...]:
    """The -new-psk-credential credentials, in order (RFC 9258 imported PSKs)."""
    return tuple(ImportedPsk(c.psk_importer_identity, c.psk_importer_key,
                             c.psk_importer_context, c.psk_importer_hash)
                 for c in o.credentials if c.psk)


def _tls12_psk(o: Options) -> tuple[ExternalPsk, ...]:
    """-psk / -psk-identity: BoringSSL's PSK callbacks, which only TLS 1.2 PSK suites
    use (the identity is also the server's hint)."""
    if not o.psk:
        return ()
    return (ExternalPsk(o.psk_identity.encode(), o.psk.encode(), tls13=False),)


def _certificate_first(o: Options) -> bool:
    """Whether an X.509 credential comes before the first PSK one (the default
    credential, -cert-file before any -new-*-credential, is tried last)."""
    for c in o.credentials:
        if c.psk:
            return False
        if c.cert_file:
            return True
    return False


def _trust_nothing() -> TrustStore:
    """A trust store with only a CA of our own that issued nothing the runner has."""
    from tlsmith.x509.devca import DevCA

    return TrustStore.from_certificates([DevCA.create("tlsmith bogo: trusts nothing")
                                         .certificate])


def _trust(o: Options) -> TrustStore | None:
    """The runner's root, for tlsmith's own verification: BoringSSL's shim verifies with
    its callbacks alone, so only a legacy (not custom) -verify-peer (a server's
    -require-any-client-certificate too) also verifies here."""
    verifying = o.verify_peer or o.require_any_client_certificate
    if not o.trust_cert or not verifying or o.use_custom_verify_callback:
        return None
    return TrustStore.from_pem_file(o.trust_cert)


def _cert_types(get: Callable[[Options], _T], o: Options) -> _T:
    try:
        return get(o)
    except rpk.UnknownType as exc:
        raise Unimplemented(f"RFC 7250 {exc}: tlsmith knows X.509 and raw public "
                            "keys") from exc


@dataclass
class VerifyHook:
    """BoringSSL's shim's verify callbacks (test_config.cc: CertVerifyCallback, the legacy
    one, and CustomVerifyCallback) as tlsmith's verify_callback: accept any chain unless
    -verify-fail; a refusal is fatal only when verifying (SSL_VERIFY_PEER), else a "soft
    fail" recorded for -expect-verify-result; the legacy callback's refusal sends
    handshake_failure (SSL_alert_from_verify_result), the custom one's certificate_unknown."""

    o: Options
    shared: Shared
    # After a 0-RTT rejection BoringSSL's shim goes on with its -on-retry- configuration.
    retry: Options | None = None
    watch: Watch | None = None
    calls: int = 0

    def __call__(self, peer: PeerCertificates) -> Verdict:
        if self.calls:
            raise ShimFailure("Certificate verified twice")
        self.calls += 1
        o = self.o
        if self.retry is not None and self.watch is not None and self.watch.early_data_rejected:
            o = self.retry
        self.shared.verify_ok = not o.verify_fail
        if not o.verify_fail:
            return accept("BoGo shim: its callback accepts any chain")
        if not (o.verify_peer or o.require_any_client_certificate):
            return accept("BoGo shim: -verify-fail without -verify-peer is a soft fail")
        alert = (AlertDescription.CERTIFICATE_UNKNOWN if o.use_custom_verify_callback
                 else AlertDescription.HANDSHAKE_FAILURE)
        return refuse("BoGo shim: -verify-fail", alert=alert)


def client_config(o: Options, shared: Shared, watch: Watch, retry: Options | None = None
                  ) -> ClientConfig:
    lo, hi = _versions(o)
    policy = _policy(o)
    groups = _groups(o, policy.groups if policy else DEFAULT_GROUPS)
    if o.key_shares is not None:
        shares = tuple(NamedGroup(g) for g in o.key_shares if NamedGroup(g) in groups)
        if len(shares) != len(o.key_shares):
            raise Unimplemented(f"key shares {o.key_shares} not all implemented")
        if not shares:
            raise Unimplemented("-no-key-shares: tlsmith always sends a key share")
    elif o.curves or policy:
        shares = _key_shares(groups)
    else:
        shares = (NamedGroup.X25519,)
    creds = _credentials(o, signing_prefs=True)
    x509s = [c for c in creds if not c.raw_public_key]
    rpks = [c for c in creds if c.raw_public_key]
    psks = _psks(o)
    # BoringSSL: a client with PSK credentials accepts certificates only with -verify-peer.
    require_psk = bool(psks) and not o.verify_peer

    offered_types = _cert_types(rpk.client_offered_types, o)
    if offered_types is None and x509s and rpks:
        # BoringSSL offers its credentials' types in their order.
        offered_types = tuple(dict.fromkeys(c.certificate_type for c in creds))
    server_types = _cert_types(rpk.accepted_types, o)
    # BoringSSL's client always runs its verify callback (VerifyHook); tlsmith verifies
    # too only for a legacy -verify-peer with the runner's root.
    trust = _trust(o) if rpk.X509 in server_types else None
    if o.verify_peer and trust is None and psks and rpk.X509 in server_types:
        trust = _trust_nothing()  # BoringSSL: PSKs, or a certificate nothing vouches for
    return ClientConfig(
        server_name=o.host_name or None,
        alpn_protocols=_alpn_list(o.advertise_alpn),
        cipher_suites=_suites(o, policy),
        groups=groups,
        key_share_groups=shares,
        signature_schemes=(_schemes(o.verify_prefs) if o.verify_prefs or not policy
                           else policy.schemes),
        min_version=lo,
        max_version=hi,
        allow_mac_then_encrypt=True,
        send_fallback_scsv=o.fallback_scsv,
        trust=trust,
        server_certificate_types=server_types,
        raw_public_key_verifier=rpk.verifier(o),
        client_certificate_types=offered_types,
        certificates=tuple(creds),
        # BoringSSL aborts when none of its credentials fits the CertificateRequest.
        fail_without_matching_certificate=True,
        verify_certificates=trust is not None,
        verify_callback=VerifyHook(o, shared, retry, watch),
        reverify_on_resume=o.reverify_on_resume,
        request_ocsp=trust is not None,
        # BoringSSL asks only with -enable-ocsp-stapling and never checks the response.
        ocsp_unchecked=o.enable_ocsp_stapling,
        ocsp_callback=_client_ocsp_callback(o) if o.use_ocsp_callback else None,
        certificate_callback=_fail_cert_callback if o.fail_cert_callback else None,
        # BoringSSL's shim writes -shim-initial-write once per SSL_write, one record
        # each (also its 0-RTT data): so do our records.
        max_fragment=o.max_send_fragment or (
            min(max(len(o.shim_initial_write), 64), 2**14)
            if o.repeat_shim_initial_write > 1 else 2**14),
        session_tickets=not o.no_ticket,
        external_psks=(*psks, *_tls12_psk(o)),
        require_psk=require_psk,
        next_protocols=(("",) if o.select_empty_next_proto
                        else (o.select_next_proto,) if o.select_next_proto else None),
        false_start=o.false_start,
        false_start_without_alpn=o.allow_false_start_without_alpn,
        application_settings=_alps(o),
        alps_new_codepoint=o.alps_use_new_codepoint == 1,
        ignore_hello_request=o.renegotiate_ignore,
        grease=o.enable_grease,
        # BoringSSL's shim does not write its 0-RTT data again after a rejection.
        resend_rejected_early_data=False,
        clock=shared.clock,
        observer=watch,
        limits=SHIM_LIMITS,
    )


def _client_ocsp_callback(o: Options) -> Callable[[tuple[bytes, ...], bytes | None], bool]:
    """BoringSSL's legacy client OCSP callback: accepts, or refuses (-fail-ocsp-callback)
    whether or not a response was stapled."""
    def callback(chain: tuple[bytes, ...], staple: bytes | None) -> bool:
        return not o.fail_ocsp_callback
    return callback


class CallbackFailed(Exception):
    """A callback fails as the flags ask (-fail-ocsp-callback, -fail-cert-callback)."""


def _fail_cert_callback(info: CertificateRequestInfo | ClientHelloInfo) -> None:
    raise CallbackFailed("-fail-cert-callback")


def _server_ocsp_callback(o: Options) -> Callable[[CertifiedKey], bytes | None]:
    """BoringSSL's legacy server OCSP callback: staples the credential's response,
    declines (-decline-ocsp-callback) or fails (-fail-ocsp-callback)."""
    def callback(certified: CertifiedKey) -> bytes | None:
        if o.fail_ocsp_callback:
            raise CallbackFailed("-fail-ocsp-callback")
        return None if o.decline_ocsp_callback else certified.ocsp_response
    return callback


def _ca_list(flag: str) -> tuple[bytes, ...] | None:
    """-use-client-ca-list: comma-separated hex DER names, or <NULL> / <EMPTY> (none)."""
    if not flag:
        return None
    if flag in ("<NULL>", "<EMPTY>"):
        return ()
    return tuple(bytes.fromhex(name) for name in flag.split(","))


def server_config(o: Options, shared: Shared, watch: Watch) -> ServerConfig:
    lo, hi = _versions(o)
    policy = _policy(o)
    suites = _suites(o, policy, server=True)
    # Each credential signs with its own -signing-prefs (CertifiedKey.signing_schemes);
    # -verify-prefs is only what we accept from clients (ServerConfig.signature_schemes),
    # so a credential without preferences then signs with any scheme tlsmith offers.
    creds = _credentials(o, signing_prefs=True)
    psks = _psks(o)
    if not creds and not psks and not o.psk:
        raise ShimFailure("a server needs -cert-file and -key-file")
    if o.verify_prefs or not policy:
        # BoringSSL signs by default with every scheme it has, ML-DSA too (which
        # tlsmith's default signature_schemes leave to the user to opt in to).
        creds = [ck if ck.signing_schemes is not None
                 else replace(ck, signing_schemes=SIGNING_DEFAULT) for ck in creds]
    if o.decline_ocsp_callback:
        # BoringSSL's OCSP callback declines to staple: staple nothing. (Accepting, or
        # setting the response in the callback, is the static -ocsp-response.)
        creds = [replace(ck, ocsp_response=None) for ck in creds]
    if o.require_any_client_certificate:
        client_auth = "require"
    elif o.verify_peer:
        client_auth = "request"
    else:
        client_auth = "none"
    client_types = _cert_types(rpk.accepted_types, o)
    # BoringSSL's server judges client certificates with its verify callback
    # (VerifyHook); tlsmith verifies too for a legacy -verify-peer with the runner's root.
    client_trust = (_trust(o) if client_auth != "none" and rpk.X509 in client_types
                    else None)
    if o.fallback_scsv:
        raise ShimFailure("-fallback-scsv is a client flag")
    return ServerConfig(
        certificates=tuple(creds),
        # -reject-alpn: BoringSSL's ALPN callback refuses every offer; a server speaking
        # only a protocol no client offers does the same (RFC 7301 §3.2).
        alpn_protocols=(("tlsmith-bogo-rejects-all",) if o.reject_alpn
                        else (o.select_alpn,) if o.select_alpn else ()),
        next_protocols=(() if o.advertise_empty_npn
                        else _alpn_list(o.advertise_npn) if o.advertise_npn else None),
        application_settings=_alps(o),
        alps_new_codepoint=o.alps_use_new_codepoint == 1,
        cipher_suites=suites,
        groups=_groups(o, policy.groups if policy else DEFAULT_SERVER_GROUPS),
        signature_schemes=(_schemes(o.verify_prefs) if o.verify_prefs or not policy
                           else policy.schemes),
        min_version=lo,
        max_version=hi,
        allow_rsa_key_exchange=True,
        allow_mac_then_encrypt=True,
        # BoringSSL's server follows its -cipher list's order (and equal-preference
        # groups) in TLS 1.2; in TLS 1.3 the client's order unless -server-preference.
        prefer_server_cipher_order=o.server_preference or bool(o.cipher) or o.cnsa_202407,
        cipher_suite_groups=_suite_groups(o, suites),
        jdk11_workaround=o.jdk11_workaround,
        # BoringSSL's TLS 1.3 server always sends GREASE in its tickets.
        grease=True,
        # A policy's groups carry no "equal preference" flags in BoringSSL: its server
        # insists on the first it shares with the client (cnsa1: ML-KEM-1024), by HRR.
        strict_group_preference=policy is not None,
        max_fragment=o.max_send_fragment or 2**14,
        cookie_secret=shared.cookie_secret,
        client_auth=client_auth,
        client_trust=client_trust,
        client_certificate_types=client_types,
        client_raw_public_key_verifier=rpk.verifier(o),
        certificate_authorities=_ca_list(o.use_client_ca_list),
        verify_callback=VerifyHook(o, shared) if client_auth != "none" else None,
        session_store=shared.store,
        tickets=0 if o.no_ticket else 2,
        external_psks=(*psks, *_tls12_psk(o)),
        psk_identity_hint=o.psk_identity.encode(),
        # BoringSSL prefers its credentials in their order, PSKs and certificates alike.
        prefer_certificates_to_psks=_certificate_first(o),
        # BoringSSL's shim accepts up to 14336 bytes of 0-RTT data (kMaxEarlyDataAccepted).
        max_early_data=14336 if o.enable_early_data else 0,
        # BoringSSL accepts 0-RTT with a ticket age up to 60 s off (kMaxTicketAgeSkew-
        # Seconds), counted in whole seconds.
        early_data_window=_MAX_SKEW,
        ocsp_callback=_server_ocsp_callback(o) if o.use_ocsp_callback else None,
        certificate_callback=_fail_cert_callback if o.fail_cert_callback else None,
        clock=shared.clock,
        observer=watch,
        limits=SHIM_LIMITS,
    )


# --------------------------------------------------------------------- one connection
class Peer:
    """A TLSConnection over a blocking socket to the runner."""

    def __init__(self, sock: socket.socket, conn: TLSConnection, read_size: int) -> None:
        self.sock = sock
        self.conn = conn
        self.read_size = read_size
        self.info: HandshakeInfo | None = None
        self.sessions: list[Session] = []
        self.across_names: list[bool] = []  # each ticket's resumption_across_names flag
        self.closed_clean: bool | None = None  # None: open; then clean or not
        self.pending_echo: list[bytes] = []
        # After the handshake, like BoringSSL's SSL_read, reading does not flush what
        # the core queued (a KeyUpdate answer goes out with our next write).
        self.lazy = False
        # -false-start: what to write once the core says we may (before the server's
        # Finished), and whether it was written.
        self.on_false_start: Callable[[], None] | None = None
        self.false_started = False

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def next_event(self) -> Event:
        while True:
            try:
                ev = self.conn.next_event()
            except TLSError:
                self._flush_quietly()
                raise
            if ev is not NEED_DATA:
                return ev
            if not self.lazy:
                self.flush()
            data = self.sock.recv(self.read_size)
            self.conn.receive_data(data)

    def _flush_quietly(self) -> None:
        try:
            self.flush()
        except (OSError, TLSError):
            pass

    def handle(self, ev: Event) -> None:
        if isinstance(ev, HandshakeComplete):
            self.info = ev.info
        elif isinstance(ev, SessionTicketReceived):
            self.sessions.append(ev.session)
            self.across_names.append(ev.resumable_across_names)
        elif isinstance(ev, ApplicationData):
            self.pending_echo.append(bytes(b ^ 0xFF for b in ev.data))
        elif isinstance(ev, ConnectionClosed):
            self.closed_clean = ev.clean
        elif isinstance(ev, FalseStart) and self.on_false_start is not None:
            self.on_false_start()
            self.false_started = True

    def handshake(self) -> HandshakeInfo:
        self.flush()
        while self.info is None:
            ev = self.next_event()
            self.handle(ev)
            if self.pending_echo and not self.conn.is_client:
                # 0-RTT data: a TLS 1.3 server may answer once its Finished is out
                # (RFC 8446 §4.4.4); the runner waits for the echo before finishing.
                try:
                    self.conn.send_data(b"".join(self.pending_echo))
                    self.pending_echo.clear()
                    self.flush()
                except UsageError:
                    pass
            if self.closed_clean is not None and self.info is None:
                raise ShimFailure("the peer closed the connection during the handshake "
                                  "(:UNEXPECTED_EOF:)")
        self.flush()
        self.lazy = True
        return self.info

    def send(self, data: bytes) -> None:
        self.conn.send_data(data)
        self.flush()

    def echo_loop(self, on_read: Callable[[], None] | None) -> None:
        while self.closed_clean is None:
            if self.pending_echo:
                if on_read is not None:
                    on_read()
                data = b"".join(self.pending_echo)
                self.pending_echo.clear()
                self.send(data)
                continue
            self.handle(self.next_event())


def _connect(o: Options) -> socket.socket:
    host = "::1" if o.ipv6 else "127.0.0.1"
    sock = socket.create_connection((host, o.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(struct.pack("<Q", o.shim_id))
    return sock


def run_connection(o: Options, shared: Shared, *, resume: bool, retry: Options) -> None:
    """One connection. ``retry``: the options (with the -on-retry- flags) that BoringSSL
    applies when the server rejects our 0-RTT data, for the checks after it."""
    watch = Watch()
    if o.server:
        config: ClientConfig | ServerConfig = server_config(o, shared, watch)
        offer = None
    else:
        config = client_config(o, shared, watch, retry)
        offer = shared.session if resume else None
        if resume and offer is None:
            raise ShimFailure("no session to offer")
        shared.session = None
    if o.read_with_unfinished_write and not (resume and o.enable_early_data):
        # (With 0-RTT, the unfinished write is the early data, done with the handshake.)
        raise Unimplemented("-read-with-unfinished-write: a read while a write is blocked")
    early: bytes | None = None
    first_write = (o.shim_initial_write.encode() or b"hello") * max(
        o.repeat_shim_initial_write, 1)
    if (not o.server and resume and o.enable_early_data and o.shim_writes_first
            and isinstance(offer, Session13) and offer.max_early_data > 0):
        # As BoringSSL: 0-RTT carries what fits the ticket's max_early_data_size, and
        # the rest goes out once the handshake is done.
        early = first_write[:offer.max_early_data]
    sock = _connect(o)
    try:
        conn = TLSConnection(config, session=offer, early_data=early)
        peer = Peer(sock, conn, o.read_size or 512)
        if o.handshake_never_done and not o.false_start:
            raise Unimplemented("-handshake-never-done without -false-start")
        if o.false_start and o.handshake_twice:
            raise Unimplemented("-false-start with a second handshake call")
        if o.false_start and early is None and (o.shim_writes_first
                                                or o.export_keying_material > 0):
            def false_start_writes() -> None:
                # What BoringSSL's shim writes once SSL_do_handshake returns early.
                if o.export_keying_material > 0:
                    _send_keying_material(o, peer)
                if o.shim_writes_first:
                    peer.send(b"hello")
            peer.on_false_start = false_start_writes
        info = peer.handshake()
        if early is not None and not info.early_data_accepted:
            o = retry  # BoringSSL's shim retries with its -on-retry- configuration
        check_handshake(o, info, watch, shared, resume=resume)
        if o.expect_early_data_reason:
            reason = (server_early_data_reason(o, info, shared, resume=resume) if o.server
                      else early_data_reason(o, info, offer, resume=resume,
                                             sent=early is not None))
            _expect(reason == o.expect_early_data_reason,
                    f"early data reason is not {o.expect_early_data_reason!r}")
        if early is not None and info.early_data_accepted:
            first_write = first_write[len(early):]
        after_handshake(o, peer, info, watch, early_sent=early is not None,
                        false_started=peer.false_started, first_write=first_write)
        check_sessions(o, peer, info, resume=resume, offered=offer)
        if o.server:
            shared.ticket_early_data = o.enable_early_data and not o.no_ticket
            shared.ticket_alpn = info.alpn
            shared.ticket_alps = _negotiated_alps(o, info)
        if not o.server and peer.sessions:
            shared.session = peer.sessions[-1]
        elif not o.server and info.resumed and info.version == _TLS12:
            shared.session = offer  # resumed by session ID: the same session again
        shutdown(o, peer)
    finally:
        _close(sock)


def _close(sock: socket.socket) -> None:
    """Close without a reset: read what the runner still sends (closing a socket with
    unread bytes sends RST, and the runner would miss our alert or close_notify)."""
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(2.0)
        while sock.recv(65536):
            pass
    except OSError:
        pass
    sock.close()


def _send_keying_material(o: Options, peer: Peer) -> None:
    context = o.export_context.encode() if o.use_export_context else None
    peer.send(peer.conn.export_keying_material(o.export_label.encode(), context,
                                               o.export_keying_material))


def after_handshake(o: Options, peer: Peer, info: HandshakeInfo, watch: Watch, *,
                    early_sent: bool, false_started: bool = False,
                    first_write: bytes = b"hello") -> None:
    conn = peer.conn
    if o.export_keying_material > 0 and not false_started:
        _send_keying_material(o, peer)
    if o.export_traffic_secrets:
        if info.version != _TLS13:
            raise Unimplemented("-export-traffic-secrets in TLS 1.2")
        c = watch.secrets.get("client_application_traffic_secret_0", b"")
        s = watch.secrets.get("server_application_traffic_secret_0", b"")
        read, write = (c, s) if o.server else (s, c)
        peer.send(struct.pack("<H", len(read)) + read + write)
    if o.tls_unique:
        peer.send(conn.tls_unique())
    if o.send_alert:
        # BoringSSL's shim: SSL_send_fatal_alert(decompression_failure), then it fails.
        conn.send_fatal_alert(AlertDescription.DECOMPRESSION_FAILURE)
        peer._flush_quietly()
        raise ShimFailure("-send-alert: sent a fatal alert")
    if (o.shim_writes_first and not false_started
            and (not early_sent or info.early_data_accepted) and first_write):
        peer.send(first_write)
    if o.shim_shuts_down:
        return
    on_read = None
    if o.key_update:
        def on_read() -> None:
            conn.key_update(request_peer=False)
    peer.echo_loop(on_read)


def shutdown(o: Options, peer: Peer) -> None:
    if not o.check_close_notify:
        if o.shim_shuts_down:
            peer.conn.close()
            peer._flush_quietly()
        return
    peer.conn.close()
    peer.flush()
    if o.shim_shuts_down:
        while peer.closed_clean is None:
            peer.handle(peer.next_event())
    if peer.closed_clean is not True:
        raise ShimFailure("the peer did not send close_notify")


# ------------------------------------------------------------------------ checks
def _expect(ok: bool, what: str) -> None:
    if not ok:
        raise ShimFailure(what)


def check_handshake(o: Options, info: HandshakeInfo, watch: Watch, shared: Shared, *,
                    resume: bool) -> None:
    if not info.resumed:
        shared.peer_signature = watch.peer_cv_scheme if o.server else info.signature_scheme
        shared.group = info.group
    # A TLS 1.2 resumption exchanges no key: BoringSSL reports the session's group.
    group = info.group if info.group is not None else shared.group
    expect_resume = resume and not o.expect_session_miss
    # An external PSK authenticates a new session: BoringSSL does not call it reused.
    resumed = info.resumed and info.resumed_with != "external_psk"
    _expect(resumed == expect_resume,
            f"session unexpectedly was{'' if resumed else ' not'} reused")
    if o.expect_verify_result:
        _expect((shared.verify_ok is not False) == (not o.verify_fail),
                "Wrong certificate verification result")
    if o.expect_version:
        _expect(info.version == o.expect_version,
                f"got version {info.version:#06x}, expected {o.expect_version:#06x}")
    if o.expect_curve_id:
        curve = int(group) if group is not None else 0
        _expect(curve == o.expect_curve_id, f"curve {curve}, expected {o.expect_curve_id}")
    # -expect-cipher-aes: tlsmith orders suites as BoringSSL with AES hardware does.
    for cipher in (o.expect_cipher, o.expect_cipher_aes):
        if cipher:
            _expect(int(info.cipher_suite) == cipher,
                    f"cipher {int(info.cipher_suite):#06x}, expected {cipher:#06x}")
    if o.expect_ticket_age_skew is not None and resume:
        skew = info.ticket_age_skew
        _expect(skew is not None and round(skew) == o.expect_ticket_age_skew,
                f"ticket age skew {skew}, expected {o.expect_ticket_age_skew}")
    if o.expect_peer_verify_pref:
        _expect(watch.peer_verify_prefs == tuple(o.expect_peer_verify_pref),
                f"peer verify preferences {watch.peer_verify_prefs}, expected "
                f"{o.expect_peer_verify_pref}")
    if o.expect_hrr:
        _expect(info.hello_retry_request, "expected a HelloRetryRequest")
    if o.expect_no_hrr:
        _expect(not info.hello_retry_request, "unexpected HelloRetryRequest")
    if o.expect_alpn:
        _expect(info.alpn == o.expect_alpn, f"ALPN {info.alpn!r}, expected {o.expect_alpn!r}")
    if o.expect_next_proto:
        _expect(info.next_protocol == o.expect_next_proto,
                f"NPN {info.next_protocol!r}, expected {o.expect_next_proto!r}")
    if o.expect_no_next_proto:
        _expect(not info.next_protocol, f"NPN {info.next_protocol!r}, expected none")
    peer_alps = info.peer_application_settings
    if o.expect_peer_application_settings is not None:
        alps_want = o.expect_peer_application_settings.encode("latin-1")
        _expect(peer_alps == alps_want,
                f"peer ALPS settings {peer_alps!r}, expected {alps_want!r}")
    else:
        _expect(peer_alps is None, "ALPS was negotiated unexpectedly")
    if o.expect_server_name:
        _expect(info.server_name == o.expect_server_name,
                f"server name {info.server_name!r}, expected {o.expect_server_name!r}")
    if o.expect_no_server_name:
        _expect(not info.server_name, f"unexpected server name {info.server_name!r}")
    if o.expect_extended_master_secret:
        _expect(info.version == _TLS13 or bool(info.extended_master_secret),
                "extended master secret not negotiated")
    if o.expect_peer_signature_algorithm:
        got_scheme = shared.peer_signature
        _expect(got_scheme is not None and int(got_scheme) == o.expect_peer_signature_algorithm,
                f"peer signature algorithm {got_scheme!r}, expected "
                f"{o.expect_peer_signature_algorithm:#06x}")
    if o.expect_peer_cert_file:
        want = tuple(der_chain(load_certificate_chain(o.expect_peer_cert_file)))
        got = info.client_certificates if o.server else info.peer_certificates
        _expect(got == want, "the peer's certificate chain is not the expected one")
    if o.expect_no_peer_cert:
        got = info.client_certificates if o.server else info.peer_certificates
        _expect(not got, "unexpected peer certificate")
    if o.expect_selected_credential is not None:
        _check_selected_credential(o, watch, info, resume=resume)
    wrong_type = rpk.check_peer_type(o, info)
    if wrong_type:
        raise ShimFailure(wrong_type)
    if o.expect_client_ca_list:
        _expect(watch.cert_request_cas == _ca_list(o.expect_client_ca_list),
                f"CA names {watch.cert_request_cas!r}, expected {o.expect_client_ca_list}")
    if o.expect_certificate_types is not None:
        _expect(watch.cert_request_types == o.expect_certificate_types,
                f"certificate types {watch.cert_request_types!r}, expected "
                f"{o.expect_certificate_types!r}")
    if not info.resumed:
        shared.ocsp_response = info.ocsp_response
    if o.expect_ocsp_response is not None and not o.server:
        # BoringSSL reports the session's response on a resumption.
        staple = info.ocsp_response if not info.resumed else shared.ocsp_response
        _expect(staple == o.expect_ocsp_response,
                f"OCSP response {staple!r}, expected {o.expect_ocsp_response!r}")
    if o.expect_accept_early_data:
        _expect(info.early_data_accepted is True, "early data was not accepted")
    if o.expect_reject_early_data:
        _expect(info.early_data_accepted is not True, "early data was accepted")
    if o.expect_no_offer_early_data and resume and not o.server:
        _expect(info.early_data_accepted is None, "client unexpectedly offered early data")
    if o.expect_session_id or o.expect_no_session_id:
        sid = watch.server_hello_session_id or b""
        if info.version == _TLS12:
            _expect(bool(sid) == o.expect_session_id,
                    f"session id {'missing' if not sid else 'present'}")


def early_data_reason(o: Options, info: HandshakeInfo, offered: Session | None, *,
                      resume: bool, sent: bool) -> str:
    """BoringSSL's SSL_get_early_data_reason, where tlsmith's public state tells it."""
    if info.early_data_accepted:
        return "accept"
    if not o.enable_early_data:
        return "disabled"
    if info.version != _TLS13 and not sent:
        return "protocol_version"
    if not resume or offered is None:
        return "no_session_offered"
    if not isinstance(offered, Session13) or offered.max_early_data == 0:
        return "unsupported_for_session"
    if alps.early_data_mismatch(offered.application_settings, _alps(o), offered.alpn):
        return "alps_mismatch"
    if not sent:
        raise Unimplemented("offering 0-RTT without data to send (tlsmith needs the bytes "
                            "up front)")
    if info.version != _TLS13:
        return "protocol_version"
    if info.hello_retry_request:
        return "hello_retry_request"
    if not info.resumed:
        return "session_not_resumed"
    return "peer_declined"


_MAX_SKEW = 60.5


def server_early_data_reason(o: Options, info: HandshakeInfo, shared: Shared, *,
                             resume: bool) -> str:
    """BoringSSL's server-side SSL_get_early_data_reason, from the public state: the
    runner offers the last connection's ticket on every resumption."""
    if info.early_data_accepted:
        return "accept"
    if not o.enable_early_data:
        return "disabled"
    if info.version != _TLS13:
        return "protocol_version"
    if not resume:
        return "no_session_offered"
    if not info.resumed:
        return "session_not_resumed"
    if not shared.ticket_early_data:
        return "unsupported_for_session"
    if (info.alpn or "") != (shared.ticket_alpn or ""):
        return "alpn_mismatch"
    if shared.ticket_alps != _negotiated_alps(o, info):
        return "alps_mismatch"  # draft-vvv-tls-alps §5: 0-RTT needs the same settings
    if info.ticket_age_skew is not None and abs(info.ticket_age_skew) > _MAX_SKEW:
        return "ticket_age_skew"
    if info.hello_retry_request:
        return "hello_retry_request"
    return "peer_declined"


def _check_selected_credential(o: Options, watch: Watch, info: HandshakeInfo, *,
                               resume: bool) -> None:
    want_index = o.expect_selected_credential
    assert want_index is not None
    if not o.server:
        if resume:
            return  # a resumption sends no certificate
        if want_index < 0 and not o.default.key_file:
            _expect(not watch.sent_certificate, "a credential was selected")
            return
    creds = [o.default] if want_index < 0 else o.credentials
    if want_index >= len(creds):
        raise ShimFailure(f"no credential {want_index}")
    cred = creds[max(want_index, 0)]
    if cred.psk:
        _expect(info.psk_identity == cred.psk_importer_identity,
                f"PSK credential {want_index} was not the one selected")
        return
    if cred.rpk:
        want: tuple[bytes, ...] = (spki_der(load_private_key(cred.key_file)),)
    else:
        want = tuple(der_chain(load_certificate_chain(cred.cert_file)))
    _expect(watch.sent_certificate is not None and watch.sent_certificate[:1] == want[:1],
            f"credential {want_index} was not the one selected")


def check_sessions(o: Options, peer: Peer, info: HandshakeInfo, *, resume: bool,
                   offered: Session | None) -> None:
    if o.server:
        return
    sessions = peer.sessions
    if o.expect_resumable_across_names or o.expect_not_resumable_across_names:
        _expect(peer.across_names[-1:] == [o.expect_resumable_across_names],
                "the session's resumption_across_names flag is not the expected one")
    if info.version == _TLS13:
        expect_new = not o.expect_no_session and not o.shim_shuts_down
        _expect(bool(sessions) == expect_new,
                f"new session was{'' if sessions else ' not'} cached, but we expected the "
                "opposite")
        if sessions and expect_new:
            last = sessions[-1]
            assert isinstance(last, Session13)
            supports = last.max_early_data > 0
            _expect(supports == o.expect_ticket_supports_early_data,
                    f"new session did{'' if supports else ' not'} support early data, but we "
                    "expected the opposite")
        return
    usable = [s for s in sessions if isinstance(s, Session12) and (s.session_id or s.ticket)]
    if o.expect_no_session:
        _expect(not usable, "unexpected session")
    if o.expect_ticket_renewal and resume:
        _expect(bool(usable) and isinstance(offered, Session12)
                and usable[-1].ticket != offered.ticket, "the ticket was not renewed")

"""The TLS 1.2 server handshake (RFC 5246 §7.3), one class per state.

    server.ExpectClientHello ─► ServerHello Certificate [ServerKeyExchange]
        [CertificateRequest] ServerHelloDone
      ─► [ExpectClientCertificate] ─► ExpectClientKeyExchange
      ─► [ExpectClientCertificateVerify] ─► AwaitChangeCipherSpec ─► ExpectFinished
      ─► [NewSessionTicket] ChangeCipherSpec Finished ─► Connected12

Resumption (RFC 5246 §7.3, RFC 5077 §3.1/§3.4): a usable ticket or cached session ID ─►
    ServerHello [NewSessionTicket] ChangeCipherSpec Finished
      ─► AwaitChangeCipherSpec ─► ExpectResumedFinished ─► Connected12
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

from tlsmith.codec import extensions as ext
from tlsmith.codec.enums import (
    CertificateStatusType,
    CertificateType,
    CipherSuite,
    ClientCertificateType,
    ECCurveType,
    ECPointFormat,
    ExtensionType,
    HandshakeType,
    NamedGroup,
    ProtocolVersion,
    member,
)
from tlsmith.codec.messages import (
    DOWNGRADE_TLS12,
    CertificateVerify,
    ClientHello,
    Finished,
    ServerHello,
)
from tlsmith.codec.messages12 import (
    Certificate12,
    CertificateRequest12,
    CertificateStatus,
    ClientKeyExchangeDHE,
    ClientKeyExchangeECDHE,
    ClientKeyExchangePSK,
    ClientKeyExchangeRSA,
    MessageBase,
    NewSessionTicket12,
    NextProtocol,
    ServerHelloDone,
    ServerKeyExchangeDHE,
    ServerKeyExchangeECDHE,
    ServerKeyExchangePSK,
)
from tlsmith.codec.messages_rpk import RawPublicKeyCertificate12
from tlsmith.config import CertifiedKey, ServerConfig
from tlsmith.crypto import kx, rsa_kx, sig
from tlsmith.crypto.suites import SuiteInfo, suite_info
from tlsmith.crypto.transcript import Transcript
from tlsmith.errors import DecodeError, HandshakeFailure, IllegalParameter, UnknownPskIdentity
from tlsmith.events import HandshakeComplete, HandshakeInfo
from tlsmith.frozen import fast_init
from tlsmith.handshake import certtype, psk12
from tlsmith.handshake.base import ServerIO, State, Tls12State
from tlsmith.handshake.common12 import (
    AwaitChangeCipherSpec,
    Keys12,
    check_finished,
    derive_keys,
    finished,
    npn_text,
    record_keys,
    resumed_keys,
    send_message,
    signed_params,
)
from tlsmith.handshake.common12 import Connected12 as Connected12
from tlsmith.handshake.negotiate import (
    CertChoice,
    Offered,
    certificate_authorities,
    choose_alpn,
    choose_certificate,
    issuer_mismatch,
    jdk11_downgrade,
    staple_for,
    suite_order,
)
from tlsmith.handshake.proofs import (
    ChainAccepted,
    accept_client_chain,
    accept_client_raw_key,
    reverify_client_session,
    verify_signature,
)
from tlsmith.handshake.server import cached_message
from tlsmith.observe import Epoch
from tlsmith.record.protection import RecordDecrypter, RecordEncrypter
from tlsmith.stores import StoreUnavailable
from tlsmith.tickets import ServerSessionState, open_ticket, seal_state

_FFDHE = frozenset(kx.FFDHE_GROUPS)
_TLS12_CURVES = (NamedGroup.X25519, NamedGroup.SECP256R1, NamedGroup.X448,
                 NamedGroup.SECP384R1, NamedGroup.SECP521R1)


@dataclass(frozen=True)
class Choice12:
    suite: SuiteInfo
    group: NamedGroup | None  # the ECDHE curve or FFDHE group; None for RSA transport
    cert: CertChoice | None  # None: a PSK suite (RFC 4279, no certificate)
    etm: bool


@functools.lru_cache(maxsize=64)
def _tls12_curves(groups: tuple[NamedGroup, ...]) -> tuple[NamedGroup, ...]:
    """The configured groups that are TLS 1.2 ECDHE curves this build can use (per
    configuration, not per handshake)."""
    return tuple(g for g in groups if g in _TLS12_CURVES and kx.group_available(g))


def _group_for(cfg: ServerConfig, offered: Offered, kx_name: str | None) -> NamedGroup | None:
    if kx_name in ("ecdhe", "ecdhe_psk"):
        groups = cfg.groups
        curves = (_tls12_curves(groups) if isinstance(groups, tuple)
                  else [g for g in groups if g in _TLS12_CURVES and kx.group_available(g)])
        if offered.groups is None:
            # RFC 8422 §4: no supported_groups -> the client supports any curve.
            return curves[0] if curves else None
        if offered.ec_point_formats is not None and (
                ECPointFormat.UNCOMPRESSED not in offered.ec_point_formats):
            return None
        return next((g for g in curves if g in offered.groups), None)
    if kx_name == "dhe":
        ours = [g for g in cfg.groups if g in _FFDHE]
        theirs = [g for g in offered.groups or () if g in _FFDHE]
        if theirs:
            # RFC 7919 §4: the client named FFDHE groups; use one of them or no DHE.
            return next((g for g in ours if g in theirs), None)
        return ours[0] if ours else None
    return None


def choose12(cfg: ServerConfig, offered: Offered) -> Choice12:
    """The first of our suites (or the client's, without server preference) whose key
    exchange, certificate and record protection all fit (RFC 5246 §7.4.1.2)."""
    order = suite_order(cfg, offered)
    client = set(offered.suites)
    skipped: list[str] = []
    for s in order:
        info = suite_info(s)
        if s not in client or info is None or info.tls13:
            continue
        if info.key_exchange == "rsa" and not cfg.allow_rsa_key_exchange:
            skipped.append(f"{info.name} (RSA key exchange is off: allow_rsa_key_exchange)")
            continue
        if info.cipher == "cbc" and not offered.encrypt_then_mac and (
                not cfg.allow_mac_then_encrypt):
            skipped.append(f"{info.name} (CBC without encrypt_then_mac)")
            continue
        group = _group_for(cfg, offered, info.key_exchange)
        if info.key_exchange in ("ecdhe", "dhe", "ecdhe_psk") and group is None:
            continue
        etm = info.cipher == "cbc" and offered.encrypt_then_mac
        if psk12.is_psk_suite(info):
            if psk12.tls12_psks(cfg.external_psks):
                return Choice12(info, group, None, etm)
            continue
        signs = info.key_exchange != "rsa"
        cert = choose_certificate(cfg, offered, tls13=False, key_type=info.authentication,
                                  signs=signs)
        if cert is None:
            continue
        return Choice12(info, group, cert, etm)
    mismatch = issuer_mismatch(cfg, offered)
    if mismatch is not None:
        raise mismatch
    why = f" (skipped: {'; '.join(skipped)})" if skipped else ""
    raise HandshakeFailure(
        "no TLS 1.2 cipher suite in common: the client offers "
        + ", ".join(CipherSuite(s).name for s in offered.suites) + why)


def _check_client_hello(cfg: ServerConfig, offered: Offered) -> None:
    ch = offered.hello
    # Extensions only TLS 1.2 reads are checked now that 1.2 was chosen.
    ext.require_well_formed(ch.extensions)
    if 0 not in ch.legacy_compression_methods:
        # RFC 5246 §7.4.1.2: the null method MUST be offered.
        raise IllegalParameter("the ClientHello does not offer null compression")
    if offered.renegotiation_info:
        # RFC 5746 §3.6: a non-empty renegotiated_connection in an initial handshake.
        raise HandshakeFailure("renegotiation_info is not empty in an initial ClientHello",
                               check="renegotiation_info")
    if not offered.extended_master_secret and cfg.require_extended_master_secret:
        raise HandshakeFailure(
            "the client does not offer the extended master secret (RFC 7627), which this "
            "server requires for TLS 1.2", check="ems_required")


#: BoringSSL's non-standard downgrade marker for JDK 11 clients (which would refuse the
#: RFC 8446 §4.1.3 sentinel after being answered with TLS 1.2 on purpose).
JDK11_DOWNGRADE = bytes.fromhex("edbfb4a8c24710ff")


def _server_random(io: ServerIO, offered: Offered) -> bytes:
    random = io.random(32)
    if jdk11_downgrade(io.config, offered):
        random = random[:24] + JDK11_DOWNGRADE
        io.note("JDK 11 workaround: TLS 1.2 with BoringSSL's JDK 11 downgrade marker")
    elif ProtocolVersion.TLS13 in io.config.versions:
        # RFC 8446 §4.1.3: a TLS 1.3 server negotiating TLS 1.2 marks its random.
        random = random[:24] + DOWNGRADE_TLS12
        io.note("TLS 1.3 is enabled but the client did not offer it: the ServerHello "
                "random ends with the downgrade sentinel DOWNGRD\\x01")
    return random


def _common_extensions(offered: Offered, ems: bool, etm: bool) -> list[ext.Extension]:
    """renegotiation_info, EMS and EtM: answered the same in full and abbreviated
    handshakes."""
    exts: list[ext.Extension] = []
    if offered.renegotiation_info is not None or offered.empty_renegotiation_scsv:
        exts.append(_RENEGOTIATION_INFO)  # RFC 5746 §3.6
    if ems:
        exts.append(_EXTENDED_MASTER_SECRET)
    if etm:
        exts.append(_ENCRYPT_THEN_MAC)
    return exts


# Our fixed ServerHello answers: built and serialized once (extensions are frozen).
_RENEGOTIATION_INFO = ext.RenegotiationInfo(b"")
_EXTENDED_MASTER_SECRET = ext.ExtendedMasterSecret()
_ENCRYPT_THEN_MAC = ext.EncryptThenMac()
_SESSION_TICKET = ext.SessionTicket()
_EC_POINT_FORMATS = ext.ECPointFormats((ECPointFormat.UNCOMPRESSED,))
_SERVER_NAME_ACK = ext.ServerName(None)
for _fixed in (_RENEGOTIATION_INFO, _EXTENDED_MASTER_SECRET, _ENCRYPT_THEN_MAC,
               _SESSION_TICKET, _EC_POINT_FORMATS, _SERVER_NAME_ACK):
    ext.remember_wire(_fixed)
del _fixed


@dataclass(frozen=True)
class Resumable:
    """A session found for this ClientHello: how, and whether to issue a fresh ticket."""

    state: ServerSessionState
    how: str  # "ticket" or "session_id" (HandshakeInfo.resumed_with)
    renew: bool  # the ticket was sealed under the previous key (RFC 5077 §5.5 rotation)


def _client_ticket(offered: Offered) -> ext.SessionTicket | None:
    return offered.session_ticket


def find_session(io: ServerIO, offered: Offered) -> Resumable | None:
    """The session the client offers, if this server can resume it (RFC 5246 §7.4.1.2,
    RFC 5077 §3.4); None -> a full handshake. Never an error, except RFC 7627 §5.3."""
    cfg = io.config
    now = io.now()
    ticket = _client_ticket(offered)
    sid = offered.hello.legacy_session_id
    found: Resumable | None = None
    try:
        if ticket is not None and ticket.ticket and cfg.tickets > 0:
            opened = open_ticket(cfg.session_store.ticket_keys(now), ticket.ticket)
            if opened is None:
                io.note("the client's session ticket is not ours (unknown or retired key, "
                        "or altered): full handshake")
                return None
            found = Resumable(opened.state, "ticket", opened.renew)
        elif sid and cfg.session_ids:
            raw = cfg.session_store.get(sid, now)
            if raw is None:
                io.note("the client's session ID is not in our cache: full handshake")
                return None
            found = Resumable(ServerSessionState.from_bytes(raw), "session_id", False)
        else:
            return None
    except StoreUnavailable as exc:
        io.note(f"warning: the session store is unavailable ({exc}): full handshake")
        return None
    except (DecodeError, ValueError):
        io.note("the cached session is damaged: full handshake")
        return None
    state = found.state
    why = (_unusable(cfg, offered, state, now)
           or reverify_client_session(io, state.client_certificates, offered.server_name))
    if why is not None:
        io.note(f"cannot resume the offered session ({why}): full handshake")
        return None
    if state.extended_master_secret and not offered.extended_master_secret:
        # RFC 7627 §5.3: the session used EMS; the new ClientHello MUST carry it too.
        raise HandshakeFailure("the client resumes an extended-master-secret session "
                               "without the extension (RFC 7627 §5.3)", check="resumed_ems_dropped")
    if not state.extended_master_secret and offered.extended_master_secret:
        # RFC 7627 §5.3: do not resume a non-EMS session; a full handshake instead.
        io.note("the session was made without the extended master secret, the client "
                "now offers it: full handshake (RFC 7627 §5.3)")
        return None
    return found


def _unusable(cfg: ServerConfig, offered: Offered, state: ServerSessionState, now: float
              ) -> str | None:
    if state.version != ProtocolVersion.TLS12:
        return "not a TLS 1.2 session"
    if state.expired(now):
        return "expired"
    info = suite_info(state.cipher_suite)
    if (info is None or info.tls13 or state.cipher_suite not in offered.suites
            or state.cipher_suite not in cfg.cipher_suites):
        return f"its suite {CipherSuite(state.cipher_suite).name} is not offered here"
    if info.key_exchange == "rsa" and not cfg.allow_rsa_key_exchange:
        return "RSA key exchange is off"
    if psk12.is_psk_suite(info) and not psk12.tls12_psks(cfg.external_psks):
        return "a PSK suite, and this server has no PSK for TLS 1.2"
    if info.cipher == "cbc" and not offered.encrypt_then_mac and (
            not cfg.allow_mac_then_encrypt):
        return "CBC without encrypt_then_mac"
    if state.server_name != offered.server_name:
        return "it was for another server name"
    if cfg.client_auth == "require" and not (
            state.client_certificates and (state.client_certificate_verified
                                           or state.client_certificate_accepted_by_callback)):
        # Resuming must not skip a client certificate this server now requires.
        return "it has no verified client certificate, which this server requires"
    return None


def start(io: ServerIO, offered: Offered, raw: bytes) -> State[ServerIO]:
    """Answer a ClientHello with TLS 1.2: ServerHello ... ServerHelloDone in one flight,
    or an abbreviated handshake when the client offers a session we can resume."""
    cfg = io.config
    _check_client_hello(cfg, offered)
    resumable = find_session(io, offered)
    if resumable is not None:
        return _resume(io, offered, raw, resumable)
    choice = choose12(cfg, offered)
    alpn = choose_alpn(cfg, offered)
    suite = choice.suite
    ch = offered.hello
    random = _server_random(io, offered)
    exts = _common_extensions(offered, offered.extended_master_secret, choice.etm)
    # RFC 5077 §3.2: an empty SessionTicket says a NewSessionTicket will follow.
    ticket_ext = _client_ticket(offered)
    issue_ticket = ticket_ext is not None and cfg.tickets > 0
    if issue_ticket:
        exts.append(_SESSION_TICKET)
    session_id = io.random(32) if cfg.session_ids else b""
    if suite.key_exchange == "ecdhe" and offered.ec_point_formats is not None:
        exts.append(_EC_POINT_FORMATS)  # RFC 8422 §5.2
    if offered.server_name and choice.cert is not None and choice.cert.sni_matched:
        exts.append(_SERVER_NAME_ACK)  # RFC 6066 §3
    if alpn is not None:
        exts.append(ext.ApplicationLayerProtocolNegotiation((alpn.encode(),)))
    npn = _npn_advertised(cfg, offered)
    if npn is not None:
        exts.append(ext.NextProtocolNegotiation(npn))
    client_type = None
    if cfg.client_auth != "none" and choice.cert is not None:
        client_type = certtype.choose_client_type(cfg, offered.client_certificate_types)
    exts += certtype.server_answer(offered.server_certificate_types,
                                   offered.client_certificate_types,
                                   choice.cert.certified.certificate_type if choice.cert
                                   else None, client_type)
    staple = staple_for(cfg, choice.cert.certified, offered) if choice.cert else None
    if staple is not None:
        exts.append(ext.StatusRequest(empty=True))  # RFC 6066 §8: a CertificateStatus follows
    sh = ServerHello(
        legacy_version=ProtocolVersion.TLS12,
        random=random,
        # RFC 5246 §7.4.1.3: a new session ID to resume by (empty: not cached).
        legacy_session_id_echo=session_id,
        cipher_suite=member(CipherSuite, suite.suite),
        legacy_compression_method=0,
        extensions=tuple(exts),
    )
    # RFC 5246 §7.4.8: a client CertificateVerify signs the handshake messages themselves.
    transcript = Transcript(keep_raw=cfg.client_auth != "none")
    transcript.set_hash(suite.hash_name)
    transcript.update(raw)
    h = Handshake12S(ch, random, suite, transcript, offered.extended_master_secret,
                     choice.etm, alpn, choice, offered.server_name, session_id=session_id,
                     issue_ticket=issue_ticket, npn=npn is not None)
    _send(io, h, sh)
    if io.observed:
        io.note(f"negotiated TLS 1.2 with {suite.name} ({suite.description})")
    if choice.cert is None:
        return _psk_flight(io, h)
    certified = choice.cert.certified
    cert_msg, cert_raw = cached_message(certified, 12, lambda: _certificate12(certified))
    io.send_handshake(cert_msg, cert_raw)
    h.transcript.update(cert_raw)
    if staple is not None:
        _send(io, h, CertificateStatus(CertificateStatusType.OCSP, staple))
        io.note(f"stapled an OCSP response ({len(staple)} bytes) in CertificateStatus")
    share: kx.KeyShareSecret | None = None
    if suite.key_exchange in ("ecdhe", "dhe"):
        assert choice.group is not None and choice.cert.scheme is not None
        share = kx.generate_key_share(choice.group, io.random)
        scheme = choice.cert.scheme
        key = choice.cert.certified.private_key
        # RFC 5246 §7.4.3: the signature covers both randoms and the params.
        ske: ServerKeyExchangeECDHE | ServerKeyExchangeDHE
        if suite.key_exchange == "ecdhe":
            params = ServerKeyExchangeECDHE(ECCurveType.NAMED_CURVE, choice.group,
                                            share.public_bytes, None, b"").params_bytes()
            signature = sig.sign(scheme, key, signed_params(ch.random, random, params))
            ske = ServerKeyExchangeECDHE(ECCurveType.NAMED_CURVE, choice.group,
                                         share.public_bytes, scheme, signature)
        else:
            p, g = kx.ffdhe_params(choice.group)
            dh_p, dh_g = _int_bytes(p), _int_bytes(g)
            params = ServerKeyExchangeDHE(dh_p, dh_g, share.public_bytes, None,
                                          b"").params_bytes()
            signature = sig.sign(scheme, key, signed_params(ch.random, random, params))
            ske = ServerKeyExchangeDHE(dh_p, dh_g, share.public_bytes, scheme, signature)
        _send(io, h, ske)
    if cfg.client_auth != "none":
        # RFC 5246 §7.4.4 / RFC 8422 §5.5: any signing key; the schemes we verify.
        _send(io, h, CertificateRequest12(
            (ClientCertificateType.RSA_SIGN, ClientCertificateType.ECDSA_SIGN),
            cfg.signature_schemes, certificate_authorities(cfg)))
        io.note(f"asking the client for a certificate (client_auth={cfg.client_auth})")
    _send(io, h, ServerHelloDone())
    if client_type is not None:
        return ExpectClientCertificate(h, share, require=cfg.client_auth == "require",
                                       cert_type=client_type)
    return ExpectClientKeyExchange(h, share)


def _psk_flight(io: ServerIO, h: Handshake12S) -> State[ServerIO]:
    """A PSK suite: [ServerKeyExchange] ServerHelloDone -- the hint, and for ECDHE_PSK
    our share (RFC 5489 §2); plain PSK without a hint omits it (RFC 4279 §2). No
    CertificateRequest: client certificates need a certificate-based suite."""
    hint = io.config.psk_identity_hint
    share: kx.KeyShareSecret | None = None
    if h.choice.group is not None:
        share = kx.generate_key_share(h.choice.group, io.random)
        _send(io, h, ServerKeyExchangePSK(hint, h.choice.group, share.public_bytes))
    elif hint:
        _send(io, h, ServerKeyExchangePSK(hint))
    _send(io, h, ServerHelloDone())
    return ExpectClientKeyExchange(h, share)


def _int_bytes(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


@fast_init
@dataclass(frozen=True, slots=True)
class Handshake12S:
    """The server's TLS 1.2 handshake so far, passed by value from state to state."""

    hello: ClientHello
    server_random: bytes
    suite: SuiteInfo
    transcript: Transcript
    ems: bool
    etm: bool
    alpn: str | None
    choice: Choice12
    server_name: str | None
    client_chain: ChainAccepted | None = None  # mutual TLS: a verified client chain
    session_id: bytes = b""  # the new session's ID (empty: not cached)
    issue_ticket: bool = False  # RFC 5077 §3.3: NewSessionTicket before our CCS
    psk_identity: bytes | None = None  # PSK suites: the client's identity
    npn: bool = False  # we advertised NPN: a NextProtocol precedes the client's Finished
    next_protocol: bytes | None = None  # what the client selected


def _npn_advertised(cfg: ServerConfig, offered: Offered) -> tuple[bytes, ...] | None:
    """draft-agl-tls-nextprotoneg-04 §3: what to advertise (None: no NPN). Like
    BoringSSL, ALPN takes precedence: a client offering ALPN to a server with ALPN
    protocols gets no NPN, whether or not ALPN finds a protocol in common."""
    if cfg.next_protocols is None or ExtensionType.NEXT_PROTOCOL_NEGOTIATION not in (
            offered.types):
        return None
    if cfg.alpn_protocols and offered.alpn is not None:
        return None
    return tuple(p.encode() for p in cfg.next_protocols)


class ExpectNextProtocol(Tls12State[ServerIO]):
    """draft-agl-tls-nextprotoneg-04 §3: after the client's ChangeCipherSpec and before
    its Finished, the protocol it selected (and padding)."""

    expects = frozenset({HandshakeType.NEXT_PROTOCOL})

    def __init__(self, transcript: Transcript,
                 then: ExpectFinished | ExpectResumedFinished) -> None:
        self.transcript = transcript
        self.then = then

    def handle(self, io: ServerIO, msg_type: HandshakeType, body: memoryview, raw: bytes
               ) -> State[ServerIO]:
        msg = NextProtocol.parse_body(body)
        io.received(msg, raw)
        self.transcript.update(raw)
        io.note(f"the client selected {msg.selected_protocol!r} by NPN")
        return self.then.with_next_protocol(msg.selected_protocol)


def _await_finished(read: RecordDecrypter, h: Handshake12S | Resumed12S,
                    then: ExpectFinished | ExpectResumedFinished) -> State[ServerIO]:
    if h.npn:
        return AwaitChangeCipherSpec(read, ExpectNextProtocol(h.transcript, then))
    return AwaitChangeCipherSpec(read, then)


def _certificate12(certified: CertifiedKey) -> Certificate12 | RawPublicKeyCertificate12:
    """Our Certificate message (RFC 5246 §7.4.2, RFC 7250 §3): the same bytes on every
    handshake with this credential (``cached_message``)."""
    return (RawPublicKeyCertificate12(certified.chain[0]) if certified.raw_public_key
            else Certificate12(certified.chain))


def _send(io: ServerIO, h: Handshake12S, msg: MessageBase) -> None:
    send_message(io, h.transcript, msg)


class _State12(Tls12State[ServerIO]):
    def __init__(self, hs: Handshake12S) -> None:
        self.hs = hs


class ExpectClientCertificate(_State12):
    """Mutual TLS: the client's Certificate, first in its flight (RFC 5246 §7.4.6)."""

    expects = frozenset({HandshakeType.CERTIFICATE})

    def __init__(self, hs: Handshake12S, share: kx.KeyShareSecret | None, *, require: bool,
                 cert_type: CertificateType = CertificateType.X509) -> None:
        super().__init__(hs)
        self.share = share
        self.require = require
        self.cert_type = cert_type

    def handle(self, io: ServerIO, msg_type: HandshakeType, body: memoryview, raw: bytes
               ) -> State[ServerIO]:
        h = self.hs
        cert: Certificate12 | RawPublicKeyCertificate12
        chain: tuple[bytes, ...]
        if self.cert_type == CertificateType.RAW_PUBLIC_KEY:
            cert = RawPublicKeyCertificate12.parse_body(body)
            chain = (cert.subject_public_key_info,) if cert.subject_public_key_info else ()
        else:
            cert = Certificate12.parse_body(body)
            chain = tuple(cert.certificate_list)
        io.received(cert, raw)
        h.transcript.update(raw)
        if not chain:
            if self.require:
                # RFC 5246 §7.4.6: the server may answer a missing certificate with a
                # fatal handshake_failure alert.
                io.check("client certificate", False, "the client sent none")
                raise HandshakeFailure(
                    "the client sent no certificate, but this server requires one")
            io.check("client certificate", False, "the client sent none (optional)")
            return ExpectClientKeyExchange(h, self.share)
        if self.cert_type == CertificateType.RAW_PUBLIC_KEY:
            accepted = accept_client_raw_key(io, chain[0])
        else:
            accepted = accept_client_chain(io, chain, server_name=h.server_name)
        return ExpectClientKeyExchange(replace(h, client_chain=accepted), self.share)


class ExpectClientKeyExchange(_State12):
    expects = frozenset({HandshakeType.CLIENT_KEY_EXCHANGE})

    def __init__(self, hs: Handshake12S, share: kx.KeyShareSecret | None) -> None:
        super().__init__(hs)
        self.share = share

    def handle(self, io: ServerIO, msg_type: HandshakeType, body: memoryview, raw: bytes
               ) -> State[ServerIO]:
        h = self.hs
        kx_name = h.suite.key_exchange
        cke: (ClientKeyExchangeECDHE | ClientKeyExchangeDHE | ClientKeyExchangeRSA
              | ClientKeyExchangePSK)
        if psk12.is_psk_suite(h.suite):
            cke = ClientKeyExchangePSK.parse_body(body, ecdhe=self.share is not None)
            io.received(cke, raw)
            psk = psk12.for_identity(psk12.tls12_psks(io.config.external_psks),
                                     cke.psk_identity)
            if psk is None:
                # RFC 4279 §2: an identity we do not know.
                raise UnknownPskIdentity("the client's PSK identity is not one of ours",
                                         check="psk_identity_unknown")
            other = (self.share.exchange(cke.public)
                     if self.share is not None and cke.public is not None else None)
            pms = psk12.premaster_secret(psk.key, other)
            h = replace(h, psk_identity=psk.identity)
        elif kx_name == "ecdhe":
            cke = ClientKeyExchangeECDHE.parse_body(body)
            io.received(cke, raw)
            assert self.share is not None
            pms = self.share.exchange(cke.public)
        elif kx_name == "dhe":
            cke = ClientKeyExchangeDHE.parse_body(body)
            io.received(cke, raw)
            assert self.share is not None
            pms = self.share.exchange(cke.dh_Yc, tls12_dh_strip=True)
        else:
            cke = ClientKeyExchangeRSA.parse_body(body)
            io.received(cke, raw)
            assert h.choice.cert is not None
            key = h.choice.cert.certified.private_key
            # RFC 5246 §7.4.7.1: any failure -> a random pre-master secret, same path.
            pms = rsa_kx.decrypt_pre_master_secret(
                key, cke.encrypted_pre_master_secret,
                int(h.hello.legacy_version).to_bytes(2, "big"), io.random)
        h.transcript.update(raw)
        keys = derive_keys(io, h.suite, pms, h.hello.random, h.server_random, h.transcript,
                           ems=h.ems, etm=h.etm)
        write, read = record_keys(io, keys, client=False)
        if h.client_chain is not None:
            return ExpectClientCertificateVerify(h, keys, write, read)
        return _await_finished(read, h, ExpectFinished(h, keys, write))


class ExpectClientCertificateVerify(_State12):
    """Mutual TLS: the client signs the handshake messages so far (RFC 5246 §7.4.8)."""

    expects = frozenset({HandshakeType.CERTIFICATE_VERIFY})

    def __init__(self, hs: Handshake12S, keys: Keys12, write: RecordEncrypter,
                 read: RecordDecrypter) -> None:
        super().__init__(hs)
        self.keys, self.write, self.read = keys, write, read

    def handle(self, io: ServerIO, msg_type: HandshakeType, body: memoryview, raw: bytes
               ) -> State[ServerIO]:
        h = self.hs
        cv = CertificateVerify.parse_body(body)
        io.received(cv, raw)
        assert h.client_chain is not None
        verify_signature(io, h.client_chain, cv.algorithm, io.config.signature_schemes,
                         h.transcript.raw(), cv.signature, tls13=False,
                         what="client CertificateVerify", signer="client")
        h.transcript.update(raw)
        return _await_finished(self.read, h, ExpectFinished(h, self.keys, self.write))


class ExpectFinished(_State12):
    expects = frozenset({HandshakeType.FINISHED})

    def __init__(self, hs: Handshake12S, keys: Keys12, write: RecordEncrypter) -> None:
        super().__init__(hs)
        self.keys = keys
        self.write = write

    def with_next_protocol(self, selected: bytes) -> ExpectFinished:
        return ExpectFinished(replace(self.hs, next_protocol=selected), self.keys, self.write)

    def handle(self, io: ServerIO, msg_type: HandshakeType, body: memoryview, raw: bytes
               ) -> State[ServerIO]:
        h = self.hs
        fin = Finished.parse_body(body)
        io.received(fin, raw)
        check_finished(io, self.keys, h.transcript, fin, client=True)
        h.transcript.update(raw)
        _save_session(io, h, self.keys)
        io.send_change_cipher_spec()
        io.set_write(self.write, Epoch.APPLICATION)
        _send(io, h, finished(self.keys, h.transcript, client=False))
        choice = h.choice
        io.emit(HandshakeComplete(HandshakeInfo(
            version=ProtocolVersion.TLS12,
            cipher_suite=member(CipherSuite, h.suite.suite),
            group=choice.group,
            signature_scheme=choice.cert.scheme if choice.cert else None,
            alpn=h.alpn,
            next_protocol=npn_text(h.next_protocol),
            server_name=h.server_name,
            hello_retry_request=False,
            resumed=False,
            client_random=h.hello.random,
            extended_master_secret=h.ems,
            encrypt_then_mac=h.etm,
            key_exchange=(h.suite.key_exchange or "").upper() or None,
            client_certificates=h.client_chain.chain if h.client_chain else (),
            client_certificate_verified=(h.client_chain is not None
                                         and h.client_chain.trusted),
            psk_identity=h.psk_identity,
            client_certificate_accepted_by_callback=(h.client_chain is not None
                                                     and h.client_chain.by_callback),
        )))
        io.handshake_done()
        return Connected12(self.keys, is_client=False)


def _save_session(io: ServerIO, h: Handshake12S, keys: Keys12) -> None:
    """After a full handshake: cache the session under its ID and/or seal it into a
    NewSessionTicket (RFC 5077 §3.3: sent before our ChangeCipherSpec)."""
    if not (h.issue_ticket or h.session_id):
        return  # neither: nothing to keep
    cfg = io.config
    now = io.now()
    state = ServerSessionState(
        version=ProtocolVersion.TLS12, cipher_suite=member(CipherSuite, h.suite.suite),
        secret=keys.master_secret, issued_at=now, lifetime=cfg.ticket_lifetime,
        server_name=h.server_name, alpn=h.alpn, extended_master_secret=h.ems,
        client_certificates=h.client_chain.chain if h.client_chain else (),
        client_certificate_verified=(h.client_chain is not None
                                     and h.client_chain.trusted),
        server_certificate_type=(h.choice.cert.certified.certificate_type if h.choice.cert
                                 else CertificateType.X509),
        client_certificate_accepted_by_callback=(h.client_chain is not None
                                                 and h.client_chain.by_callback))
    plain = state.to_bytes()  # (once, for the ticket and the session cache alike)
    if h.issue_ticket:
        _send_ticket(io, h.transcript, plain, cfg.ticket_lifetime)
    if h.session_id:
        try:
            cfg.session_store.put(h.session_id, plain, cfg.ticket_lifetime, now)
            io.note("cached the session under its session ID (RFC 5246 §7.4.1.3)")
        except StoreUnavailable as exc:
            io.note(f"warning: the session store is unavailable ({exc}): the session ID "
                    "will not resume")


def _send_ticket(io: ServerIO, transcript: Transcript, state: bytes, lifetime: int) -> None:
    """RFC 5077 §3.3: a NewSessionTicket sealing ``state`` (``ServerSessionState``
    bytes)."""
    try:
        ticket = seal_state(io.config.session_store.ticket_keys(io.now()), state,
                            io.random(12))
    except StoreUnavailable as exc:
        # RFC 5077 §3.3: having promised one, send a zero-length ticket.
        io.note(f"warning: the session store is unavailable ({exc}): empty ticket")
        ticket, lifetime = b"", 0
    send_message(io, transcript, NewSessionTicket12(lifetime, ticket))
    if ticket and io.observed:
        io.note(f"issued a session ticket ({len(ticket)} bytes, lifetime {lifetime} s)")


@fast_init
@dataclass(frozen=True, slots=True)
class Resumed12S:
    """The server's abbreviated TLS 1.2 handshake, passed by value."""

    hello: ClientHello
    server_random: bytes
    suite: SuiteInfo
    transcript: Transcript
    etm: bool
    alpn: str | None
    server_name: str | None
    session: Resumable
    npn: bool = False
    next_protocol: bytes | None = None


def _resume(io: ServerIO, offered: Offered, raw: bytes, found: Resumable
            ) -> State[ServerIO]:
    """RFC 5246 §7.3: ServerHello [NewSessionTicket] ChangeCipherSpec Finished."""
    cfg = io.config
    state = found.state
    info = suite_info(state.cipher_suite)
    assert info is not None  # _unusable checked it
    ch = offered.hello
    etm = info.cipher == "cbc" and offered.encrypt_then_mac
    alpn = choose_alpn(cfg, offered)
    random = _server_random(io, offered)
    exts = _common_extensions(offered, state.extended_master_secret, etm)
    exts += certtype.server_answer(offered.server_certificate_types, None,
                                   state.server_certificate_type, None)
    ticket_ext = _client_ticket(offered)
    # RFC 5077 §3.1: a fresh ticket when the old key retired; §3.4: a client resuming by
    # ID that asks for a ticket gets one.
    issue = cfg.tickets > 0 and (found.renew or (
        found.how == "session_id" and ticket_ext is not None))
    if issue:
        exts.append(_SESSION_TICKET)
    if alpn is not None:
        exts.append(ext.ApplicationLayerProtocolNegotiation((alpn.encode(),)))
    npn = _npn_advertised(cfg, offered)
    if npn is not None:
        exts.append(ext.NextProtocolNegotiation(npn))
    # RFC 6066 §3: no server_name in a resuming ServerHello.
    sh = ServerHello(
        legacy_version=ProtocolVersion.TLS12,
        random=random,
        # RFC 5246 §7.4.1.3 / RFC 5077 §3.4: echoing the client's ID means "resumed".
        legacy_session_id_echo=ch.legacy_session_id,
        cipher_suite=member(CipherSuite, state.cipher_suite),
        legacy_compression_method=0,
        extensions=tuple(exts),
    )
    transcript = Transcript()
    transcript.set_hash(info.hash_name)
    transcript.update(raw)
    send_message(io, transcript, sh)
    if io.observed:
        io.note(f"resuming the session by {found.how.replace('_', ' ')} with {info.name} "
                "(abbreviated handshake, RFC 5246 §7.3)")
    keys = resumed_keys(io, info, state.secret, ch.random, random,
                        ems=state.extended_master_secret, etm=etm)
    if issue:
        if found.renew:
            io.note("the ticket was sealed under the previous key: renewing it")
        remaining = max(1, int(state.issued_at + state.lifetime - io.now()))
        _send_ticket(io, transcript, state.to_bytes(), remaining)
    write, read = record_keys(io, keys, client=False)
    io.send_change_cipher_spec()
    io.set_write(write, Epoch.APPLICATION)
    send_message(io, transcript, finished(keys, transcript, client=False))
    h = Resumed12S(ch, random, info, transcript, etm, alpn, offered.server_name, found,
                   npn=npn is not None)
    return _await_finished(read, h, ExpectResumedFinished(h, keys))


class ExpectResumedFinished(Tls12State[ServerIO]):
    """The client's Finished ends the abbreviated handshake (RFC 5246 §7.3)."""

    expects = frozenset({HandshakeType.FINISHED})

    def __init__(self, hs: Resumed12S, keys: Keys12) -> None:
        self.hs = hs
        self.keys = keys

    def with_next_protocol(self, selected: bytes) -> ExpectResumedFinished:
        return ExpectResumedFinished(replace(self.hs, next_protocol=selected), self.keys)

    def handle(self, io: ServerIO, msg_type: HandshakeType, body: memoryview, raw: bytes
               ) -> State[ServerIO]:
        h = self.hs
        state = h.session.state
        fin = Finished.parse_body(body)
        io.received(fin, raw)
        check_finished(io, self.keys, h.transcript, fin, client=True)
        h.transcript.update(raw)
        io.emit(HandshakeComplete(HandshakeInfo(
            version=ProtocolVersion.TLS12,
            cipher_suite=member(CipherSuite, h.suite.suite),
            group=None,
            signature_scheme=None,
            alpn=h.alpn,
            next_protocol=npn_text(h.next_protocol),
            server_name=h.server_name,
            hello_retry_request=False,
            resumed=True,
            resumed_with=h.session.how,
            client_random=h.hello.random,
            extended_master_secret=state.extended_master_secret,
            encrypt_then_mac=h.etm,
            client_certificates=state.client_certificates,
            client_certificate_verified=state.client_certificate_verified,
            client_certificate_accepted_by_callback=(
                state.client_certificate_accepted_by_callback
                or (io.config.reverify_on_resume and bool(state.client_certificates))),
        )))
        io.handshake_done()
        return Connected12(self.keys, is_client=False)

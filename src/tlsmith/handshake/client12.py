"""The TLS 1.2 client handshake (RFC 5246 §7.3), one class per state.

    client.ExpectServerHello ─► ExpectCertificate ─► [ExpectCertificateStatus]
      ─► ExpectServerKeyExchange (ECDHE/DHE)
      ─► ExpectServerHelloDone (CertificateRequest allowed) ─► our flight:
         [Certificate] ClientKeyExchange [CertificateVerify] ChangeCipherSpec Finished
      ─► [ExpectNewSessionTicket] ─► AwaitChangeCipherSpec ─► ExpectFinished ─► Connected12

Abbreviated (RFC 5246 §7.3, RFC 5077 §3.1): the ServerHello echoes the session ID we
offered with a Session12 ─► [ExpectNewSessionTicket] ─► AwaitChangeCipherSpec
      ─► ExpectResumedFinished ─► our ChangeCipherSpec Finished ─► Connected12
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Any, Final

from tlsmith.codec import extensions as ext
from tlsmith.codec.enums import (
    CipherSuite,
    ECPointFormat,
    HandshakeType,
    NamedGroup,
    ProtocolVersion,
    member,
)
from tlsmith.codec.extensions_base import ExtensionContext
from tlsmith.codec.messages import CertificateVerify, ClientHello, Finished, ServerHello
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
from tlsmith.crypto import kx, rsa_kx, sig
from tlsmith.crypto.suites import SuiteInfo, suite_info
from tlsmith.crypto.transcript import Transcript
from tlsmith.errors import (
    DecodeError,
    HandshakeFailure,
    IllegalParameter,
    InsufficientSecurity,
    UnsupportedCertificate,
)
from tlsmith.events import FalseStart, HandshakeComplete, HandshakeInfo, SessionTicketReceived
from tlsmith.frozen import fast_init
from tlsmith.handshake import certtype, psk12
from tlsmith.handshake.base import ClientIO, State, Tls12State, check_server_extensions
from tlsmith.handshake.certtype import DEFAULT as CERT_TYPES_DEFAULT
from tlsmith.handshake.certtype import CertTypes
from tlsmith.handshake.client import HelloSent, sni_name
from tlsmith.handshake.client13 import answer_or_fail, checked_alpn, credentials_for
from tlsmith.handshake.client_auth import (
    CertificateRequestInfo,
    ClientCredential,
    choose_client_credential,
)
from tlsmith.handshake.common12 import (
    AwaitChangeCipherSpec,
    Connected12,
    Keys12,
    check_finished,
    derive_keys,
    export12,
    finished,
    npn_text,
    record_keys,
    resumed_keys,
    send_message,
    signed_params,
)
from tlsmith.handshake.proofs import (
    ChainAccepted,
    PskServer,
    ServerAuthenticated,
    SignatureVerified,
    accept_server_chain,
    accept_server_raw_key,
    check_revocation,
    key_transport_server,
    psk_server,
    reverify_session,
    verify_signature,
)
from tlsmith.observe import Epoch
from tlsmith.record.protection import RecordDecrypter, RecordEncrypter
from tlsmith.session import Session12
from tlsmith.x509.keys import key_kind


class _Keep(enum.Enum):
    """Handshake12.but: the field keeps its value."""

    KEEP = 0


_KEEP: Final = _Keep.KEEP


@fast_init
@dataclass(frozen=True, slots=True)
class Handshake12:
    """The client's TLS 1.2 handshake so far, passed by value from state to state."""

    hello: ClientHello
    server_random: bytes
    suite: SuiteInfo
    transcript: Transcript
    ems: bool
    etm: bool
    alpn: str | None
    group: NamedGroup | None = None
    server_public: bytes = b""  # ECDHE point or DHE Ys
    dh_params: tuple[int, int] | None = None  # (p, g) for DHE
    cert_requested: bool = False
    cert_request: CertificateRequest12 | None = None
    # RFC 6066 §8: the ServerHello echoed status_request, so a CertificateStatus may
    # follow the Certificate.
    status_requested: bool = False
    # RFC 5077 §3.2: the ServerHello carried SessionTicket, so a NewSessionTicket comes
    # before the server's ChangeCipherSpec (§3.3).
    ticket_expected: bool = False
    session_id: bytes = b""  # what the server gave (the echo, when resuming)
    new_ticket: bytes = b""  # from NewSessionTicket (empty: none, RFC 5077 §3.3)
    ticket_lifetime: int = 0  # its ticket_lifetime_hint
    psk_hint: bytes = b""  # PSK suites: the server's identity hint (RFC 4279 §2)
    psk_identity: bytes | None = None  # PSK suites: the identity we sent
    next_protocol: bytes | None = None  # NPN: what we select (None: not negotiated)
    cert_types: CertTypes = CERT_TYPES_DEFAULT  # RFC 7250 (from the ServerHello)

    def but(self, *, group: NamedGroup | _Keep | None = _KEEP,
            server_public: bytes | _Keep = _KEEP,
            dh_params: tuple[int, int] | _Keep | None = _KEEP,
            cert_requested: bool | _Keep = _KEEP,
            cert_request: CertificateRequest12 | _Keep | None = _KEEP,
            psk_hint: bytes | _Keep = _KEEP, psk_identity: bytes | _Keep | None = _KEEP,
            new_ticket: bytes | _Keep = _KEEP, ticket_lifetime: int | _Keep = _KEEP,
            ) -> Handshake12:
        """``dataclasses.replace`` for the fields the later states set, field by field
        (replace walks every field in Python; a test pins the field list)."""
        return Handshake12(
            self.hello, self.server_random, self.suite, self.transcript, self.ems, self.etm,
            self.alpn, self.group if group is _KEEP else group,
            self.server_public if server_public is _KEEP else server_public,
            self.dh_params if dh_params is _KEEP else dh_params,
            self.cert_requested if cert_requested is _KEEP else cert_requested,
            self.cert_request if cert_request is _KEEP else cert_request,
            self.status_requested, self.ticket_expected, self.session_id,
            self.new_ticket if new_ticket is _KEEP else new_ticket,
            self.ticket_lifetime if ticket_lifetime is _KEEP else ticket_lifetime,
            self.psk_hint if psk_hint is _KEEP else psk_hint,
            self.psk_identity if psk_identity is _KEEP else psk_identity,
            self.next_protocol, self.cert_types)



def choose_next_protocol(ours: tuple[str, ...], advertised: tuple[bytes, ...]) -> bytes:
    """draft-agl-tls-nextprotoneg-04 §3: the first advertised protocol we support; with
    none in common, our first (the client "SHOULD select the first protocol that it
    supports")."""
    mine = [p.encode() for p in ours]
    for proto in advertised:
        if proto in mine:
            return proto
    return mine[0] if mine else b""


def handle_server_hello(io: ClientIO, sent: HelloSent, sh: ServerHello, raw: bytes
                        ) -> State[ClientIO]:
    """A TLS 1.2 ServerHello (RFC 5246 §7.4.1.3) and the extensions it answers."""
    cfg = io.config
    hello = sent.hello
    if sh.cipher_suite not in hello.cipher_suites:
        raise IllegalParameter(
            f"the server chose {CipherSuite(sh.cipher_suite).name}, which we did not offer",
                               check="suite_not_offered")
    suite = suite_info(sh.cipher_suite)
    if suite is None or suite.tls13:
        raise IllegalParameter(
            f"the server chose {CipherSuite(sh.cipher_suite).name} for TLS 1.2; it is not a "
            "TLS 1.2 suite", check="suite_not_tls12")
    if sh.legacy_compression_method != 0:
        raise IllegalParameter("the server chose a compression method we did not offer")
    resuming = bool(hello.legacy_session_id) and (
        sh.legacy_session_id_echo == hello.legacy_session_id)
    if resuming and sent.session12 is None:
        # We offered no session to resume: an echoed id would mean "resumed" (§7.4.1.3).
        raise IllegalParameter("the server tried to resume a session we never offered",
                               check="session_not_offered")
    check_server_extensions(sh.extensions, ExtensionContext.SERVER_HELLO, sent.offered,
                            tls12=True)
    # The answers by class, found in one pass (the first of a class, as find_extension;
    # parse_extensions has refused a type that comes twice).
    found: dict[type, Any] = {type(e): e for e in reversed(sh.extensions)}
    ems = ext.ExtendedMasterSecret in found
    if io.observed:  # (the trace record is built only for an observer)
        io.check("extended master secret", ems,
                 "negotiated (RFC 7627)" if ems else "the server did not negotiate it")
    if not ems and cfg.require_extended_master_secret:
        raise HandshakeFailure(
            "the server does not support the extended master secret (RFC 7627), which "
            "protects TLS 1.2 against triple-handshake attacks; allow it with "
            "require_extended_master_secret=False (CLI: --allow-no-ems)", check="ems_required")
    etm = ext.EncryptThenMac in found
    if etm and suite.cipher != "cbc":
        # RFC 7366 §3: never in answer to an AEAD suite.
        raise IllegalParameter("the server sent encrypt_then_mac for an AEAD suite",
                               check="etm_with_aead")
    if suite.cipher == "cbc" and not etm and not cfg.allow_mac_then_encrypt:
        raise HandshakeFailure(
            f"the server chose {suite.name} without encrypt_then_mac (RFC 7366); "
            "MAC-then-encrypt CBC is refused by default (allow_mac_then_encrypt=True)",
                               check="mte_refused")
    reneg: ext.RenegotiationInfo | None = found.get(ext.RenegotiationInfo)
    if reneg is not None and reneg.renegotiated_connection:
        # RFC 5746 §3.4: non-empty in an initial handshake -> handshake_failure.
        raise HandshakeFailure("renegotiation_info is not empty in an initial handshake",
                               check="renegotiation_info")
    formats: ext.ECPointFormats | None = found.get(ext.ECPointFormats)
    if formats is not None and ECPointFormat.UNCOMPRESSED not in formats.ec_point_format_list:
        # RFC 8422 §5.2: the uncompressed format MUST be supported.
        raise IllegalParameter("the server's ec_point_formats lacks the uncompressed form")
    chosen: ext.ApplicationLayerProtocolNegotiation | None = found.get(
        ext.ApplicationLayerProtocolNegotiation)
    alpn = checked_alpn(hello, chosen) if chosen is not None else None
    next_protocol = None
    npn: ext.NextProtocolNegotiation | None = found.get(ext.NextProtocolNegotiation)
    if npn is not None:
        if alpn is not None:
            # BoringSSL: NPN and ALPN may not both be negotiated on one connection.
            raise IllegalParameter("the server negotiated both ALPN and NPN",
                                   check="npn_and_alpn")
        next_protocol = choose_next_protocol(cfg.next_protocols or (), npn.protocols)
    transcript = sent.transcript
    if cfg.may_send_certificate:
        # RFC 5246 §7.4.8: our CertificateVerify would sign the handshake messages
        # themselves, so keep them (the ClientHello is still buffered, unhashed).
        transcript = Transcript(keep_raw=True)
        transcript.update(sent.transcript.raw())
    transcript.set_hash(suite.hash_name)
    transcript.update(raw)
    if io.observed:
        io.note(f"negotiated TLS 1.2 with {suite.name} ({suite.description})")
    status_requested = ext.StatusRequest in found
    ticket_expected = ext.SessionTicket in found
    types = certtype.client_read_answer(cfg, sh.extensions, certificate_follows=not resuming)
    h = Handshake12(hello, sh.random, suite, transcript, ems, etm, alpn,
                    status_requested=status_requested, ticket_expected=ticket_expected,
                    session_id=sh.legacy_session_id_echo, next_protocol=next_protocol,
                    cert_types=types)
    if resuming:
        assert sent.session12 is not None
        return _resume(io, h, sent.session12)
    if sent.session12 is not None:
        io.note("the server did not resume our TLS 1.2 session: full handshake")
    if psk12.is_psk_suite(suite):
        return ExpectPskServerKeyExchange(h)
    return ExpectCertificate(h)


def _resume(io: ClientIO, h: Handshake12, session: Session12) -> State[ClientIO]:
    """The server echoed our session ID: an abbreviated handshake (RFC 5246 §7.3; with a
    ticket, RFC 5077 §3.4)."""
    if h.suite.suite != session.cipher_suite:
        # RFC 5246 §7.4.1.3: a resumed session keeps its cipher suite.
        raise IllegalParameter(
            f"the server resumed our session with {CipherSuite(h.suite.suite).name}, but "
            f"the session was made with {CipherSuite(session.cipher_suite).name}",
                               check="resumed_suite_changed")
    if session.extended_master_secret and not h.ems:
        # RFC 7627 §5.3: the session used EMS; a resumption without it MUST abort.
        raise HandshakeFailure("the server resumed an extended-master-secret session "
                               "without the extension (RFC 7627 §5.3)", check="resumed_ems_dropped")
    if not session.extended_master_secret and h.ems:
        # RFC 7627 §5.3: a session without EMS must not be resumed with it.
        raise HandshakeFailure("the server resumed a session made without the extended "
                               "master secret but now claims it (RFC 7627 §5.3)",
                               check="resumed_ems_added")
    if io.observed:
        how = "ticket" if session.ticket else "session_id"
        io.note(f"the server echoed our session ID: resuming the session by {how} "
                "(abbreviated handshake)")
    keys = resumed_keys(io, h.suite, session.master_secret, h.hello.random,
                        h.server_random, ems=h.ems, etm=h.etm)
    write, read = record_keys(io, keys, client=True)
    finish = ExpectResumedFinished(h, keys, write, session)
    if h.ticket_expected:
        return ExpectNewSessionTicket(h, read, finish)
    return AwaitChangeCipherSpec(read, finish)


class _State12(Tls12State[ClientIO]):
    def __init__(self, hs: Handshake12) -> None:
        self.hs = hs


class ExpectCertificate(_State12):
    expects = frozenset({HandshakeType.CERTIFICATE})

    def handle(self, io: ClientIO, msg_type: HandshakeType, body: memoryview, raw: bytes
               ) -> State[ClientIO]:
        h = self.hs
        if h.cert_types.server == certtype.RPK:
            rpk = RawPublicKeyCertificate12.parse_body(body)
            io.received(rpk, raw)
            if not rpk.subject_public_key_info:
                # RFC 7250 §3: <1..2^24-1>; three zero bytes would be "no certificate".
                raise DecodeError("the server sent an empty Certificate message")
            accepted = accept_server_raw_key(io, rpk.subject_public_key_info)
        else:
            cert = Certificate12.parse_body(body)
            io.received(cert, raw)
            if not cert.certificate_list:
                raise DecodeError("the server sent an empty Certificate message")
            # The chain first: its errors say what is wrong and carry the chain as sent.
            accepted = accept_server_chain(io, cert.certificate_list)
        key = accepted.public_key()
        if key_kind(key) != h.suite.authentication:
            # RFC 5246 §7.4.2: the key must fit the suite's authentication/key exchange.
            raise UnsupportedCertificate(
                f"{h.suite.name} needs an {(h.suite.authentication or '').upper()} "
                "certificate; the "
                f"server sent one with a {key_kind(key) or 'different'} key")
        h.transcript.update(raw)
        if h.status_requested:
            return ExpectCertificateStatus(h, accepted)
        return _after_certificate(h, check_revocation(io, accepted, None))


def _after_certificate(h: Handshake12, accepted: ChainAccepted) -> State[ClientIO]:
    if h.suite.key_exchange == "rsa":
        return ExpectServerHelloDone(h, key_transport_server(accepted))
    return ExpectServerKeyExchange(h, accepted)


class ExpectCertificateStatus(_State12):
    """RFC 6066 §8: the server echoed status_request, so a CertificateStatus carrying a
    stapled OCSP response may follow its Certificate -- or not ("a server MAY choose not
    to send" it): then the next message is what would follow the Certificate."""

    def __init__(self, hs: Handshake12, chain: ChainAccepted) -> None:
        super().__init__(hs)
        self.chain = chain
        then = ({HandshakeType.SERVER_HELLO_DONE, HandshakeType.CERTIFICATE_REQUEST}
                if hs.suite.key_exchange == "rsa" else {HandshakeType.SERVER_KEY_EXCHANGE})
        self.expects = frozenset({HandshakeType.CERTIFICATE_STATUS, *then})

    def handle(self, io: ClientIO, msg_type: HandshakeType, body: memoryview, raw: bytes
               ) -> State[ClientIO]:
        h = self.hs
        if msg_type == HandshakeType.CERTIFICATE_STATUS:
            status = CertificateStatus.parse_body(body)
            io.received(status, raw)
            io.note(f"the server stapled an OCSP response ({len(status.ocsp_response)} "
                    "bytes)")
            accepted = check_revocation(io, self.chain, status.ocsp_response)
            h.transcript.update(raw)
            return _after_certificate(h, accepted)
        io.note("the server acknowledged status_request but sent no CertificateStatus "
                "(RFC 6066 §8 allows that)")
        accepted = check_revocation(io, self.chain, None)
        return _after_certificate(h, accepted).handle(io, msg_type, body, raw)


def _check_curve(h: Handshake12, group: NamedGroup) -> None:
    """RFC 8422 §5.4: the server's (EC)DHE curve must be one we offered and can use in
    TLS 1.2 (not a TLS 1.3-only group such as an ML-KEM one)."""
    offered = ext.find_extension(h.hello.extensions, ext.SupportedGroups)
    if offered is None or group not in offered.named_group_list or not (
            kx.group_available(group)) or group in kx.TLS13_ONLY_GROUPS:
        raise IllegalParameter(f"the server chose the curve {group.name}, which we "
                               "did not offer", check="group_not_offered")


class ExpectServerKeyExchange(_State12):
    expects = frozenset({HandshakeType.SERVER_KEY_EXCHANGE})

    def __init__(self, hs: Handshake12, chain: ChainAccepted) -> None:
        super().__init__(hs)
        self.chain = chain

    def handle(self, io: ClientIO, msg_type: HandshakeType, body: memoryview, raw: bytes
               ) -> State[ClientIO]:
        h = self.hs
        cfg = io.config
        ske: ServerKeyExchangeECDHE | ServerKeyExchangeDHE
        if h.suite.key_exchange == "ecdhe":
            ske = ServerKeyExchangeECDHE.parse_body(body)
            io.received(ske, raw)
            group = member(NamedGroup, ske.named_curve)
            _check_curve(h, group)
            h = h.but(group=group, server_public=ske.public)
        else:
            ske = ServerKeyExchangeDHE.parse_body(body)
            io.received(ske, raw)
            p, g = int.from_bytes(ske.dh_p, "big"), int.from_bytes(ske.dh_g, "big")
            ys = int.from_bytes(ske.dh_Ys, "big")
            if p.bit_length() < cfg.min_dhe_bits:
                # RFC 7919 §4 / Logjam: refuse weak server-chosen groups.
                raise InsufficientSecurity(
                    f"the server's DHE prime has {p.bit_length()} bits; at least "
                    f"{cfg.min_dhe_bits} are required")
            if not 1 < g < p - 1:
                raise IllegalParameter("the server's DHE generator is out of range "
                                       "(need 1 < g < p-1)")
            if not 1 < ys < p - 1:
                # RFC 7919 §3: the client MUST check 1 < dh_Ys < dh_p - 1, else a fatal
                # handshake_failure alert.
                raise HandshakeFailure("the server's DHE public value is out of range "
                                       "(need 1 < Ys < p-1, RFC 7919 §3)")
            named = kx.ffdhe_group_for_params(p, g)
            io.check("DHE parameters", True,
                     f"{p.bit_length()}-bit prime"
                     + (f" = {named.name} (RFC 7919)" if named else
                        " (custom parameters, not a RFC 7919 group)"))
            h = h.but(group=named, server_public=ske.dh_Ys, dh_params=(p, g))
        assert ske.algorithm is not None  # parse_body(signed=True)
        offered_algs = ext.find_extension(h.hello.extensions, ext.SignatureAlgorithms)
        content = signed_params(h.hello.random, h.server_random, ske.params_bytes())
        proof = verify_signature(io, self.chain, ske.algorithm,
                                 offered_algs.supported_signature_algorithms
                                 if offered_algs else (),
                                 content, ske.signature, tls13=False,
                                 what="ServerKeyExchange signature")
        h.transcript.update(raw)
        return ExpectServerHelloDone(h, proof)


class ExpectPskServerKeyExchange(_State12):
    """A PSK suite: no Certificate. ECDHE_PSK: ServerKeyExchange with the hint and the
    curve (RFC 5489 §2); plain PSK: one with the hint, or none (RFC 4279 §2)."""

    def __init__(self, hs: Handshake12) -> None:
        super().__init__(hs)
        self.ecdhe = hs.suite.key_exchange == "ecdhe_psk"
        self.expects = frozenset({HandshakeType.SERVER_KEY_EXCHANGE} if self.ecdhe else
                                 {HandshakeType.SERVER_KEY_EXCHANGE,
                                  HandshakeType.SERVER_HELLO_DONE})

    def handle(self, io: ClientIO, msg_type: HandshakeType, body: memoryview, raw: bytes
               ) -> State[ClientIO]:
        h = self.hs
        if msg_type == HandshakeType.SERVER_HELLO_DONE:
            return ExpectServerHelloDone(h, psk_server(b"")).handle(io, msg_type, body, raw)
        ske = ServerKeyExchangePSK.parse_body(body, ecdhe=self.ecdhe)
        io.received(ske, raw)
        if ske.named_curve is not None:
            _check_curve(h, ske.named_curve)
            h = h.but(group=ske.named_curve, server_public=ske.public)
        h = h.but(psk_hint=ske.psk_identity_hint)
        h.transcript.update(raw)
        return ExpectServerHelloDone(h, psk_server(ske.psk_identity_hint))


class ExpectServerHelloDone(_State12):
    expects = frozenset({HandshakeType.SERVER_HELLO_DONE, HandshakeType.CERTIFICATE_REQUEST})

    def __init__(self, hs: Handshake12, auth: ServerAuthenticated) -> None:
        super().__init__(hs)
        self.auth = auth
        if hs.cert_requested or isinstance(auth, PskServer):
            # RFC 4279 §2: no CertificateRequest with a PSK suite.
            self.expects = frozenset({HandshakeType.SERVER_HELLO_DONE})

    def handle(self, io: ClientIO, msg_type: HandshakeType, body: memoryview, raw: bytes
               ) -> State[ClientIO]:
        h = self.hs
        if msg_type == HandshakeType.CERTIFICATE_REQUEST:
            req = CertificateRequest12.parse_body(body)
            io.received(req, raw)
            h.transcript.update(raw)
            io.note("the server asks for a client certificate; "
                    + ("we will send ours if one fits" if io.config.may_send_certificate
                       else "we have none to send"))
            return ExpectServerHelloDone(h.but(cert_requested=True, cert_request=req),
                                         self.auth)
        done = ServerHelloDone.parse_body(body)
        io.received(done, raw)
        h.transcript.update(raw)
        return _client_flight(io, h, self.auth)


def _send(io: ClientIO, h: Handshake12, msg: MessageBase) -> None:
    send_message(io, h.transcript, msg)


def _client_flight(io: ClientIO, h: Handshake12, auth: ServerAuthenticated
                   ) -> State[ClientIO]:
    """[Certificate] ClientKeyExchange ChangeCipherSpec Finished (RFC 5246 §7.3)."""
    chosen: ClientCredential | None = None
    if h.cert_requested:
        chosen = client_credential12(io, h.cert_request, h.cert_types)
        if chosen is not None:
            certified = chosen.credential
            _send(io, h, RawPublicKeyCertificate12(certified.chain[0])
                  if certified.raw_public_key else Certificate12(certified.chain))
        else:
            _send(io, h, Certificate12(()))  # RFC 5246 §7.4.6: no certificate to offer
    suite = h.suite
    cke: MessageBase
    if psk12.is_psk_suite(suite):
        psk = psk12.for_hint(psk12.tls12_psks(io.config.external_psks), h.psk_hint)
        other: bytes | None = None
        public: bytes | None = None
        if suite.key_exchange == "ecdhe_psk":
            assert h.group is not None
            share = kx.generate_key_share(h.group, io.random)
            other, public = share.exchange(h.server_public), share.public_bytes
        pms = psk12.premaster_secret(psk.key, other)
        cke = ClientKeyExchangePSK(psk.identity, public)
        h = h.but(psk_identity=psk.identity)
    elif suite.key_exchange == "ecdhe":
        assert h.group is not None
        share = kx.generate_key_share(h.group, io.random)
        pms = share.exchange(h.server_public)
        cke = ClientKeyExchangeECDHE(share.public_bytes)
    elif suite.key_exchange == "dhe":
        assert h.dh_params is not None
        dh = kx.dh_share_for_params(*h.dh_params, io.random)
        pms = dh.exchange(h.server_public, tls12_dh_strip=True)
        cke = ClientKeyExchangeDHE(dh.public_bytes)
    else:
        # RFC 5246 §7.4.7.1: client_version (what we put in ClientHello) + 46 random bytes.
        pms = int(h.hello.legacy_version).to_bytes(2, "big") + io.random(46)
        leaf = auth.chain.public_key()
        cke = ClientKeyExchangeRSA(rsa_kx.encrypt_pre_master_secret(leaf, pms))
        io.note("pre-master secret: 0x0303 + 46 random bytes, encrypted to the server's "
                "RSA key (PKCS #1 v1.5)")
    _send(io, h, cke)
    keys = derive_keys(io, suite, pms, h.hello.random, h.server_random, h.transcript,
                       ems=h.ems, etm=h.etm)
    sent_certificate = False
    if chosen is not None:
        # RFC 5246 §7.4.8: sign every handshake message so far, with the scheme's hash.
        scheme = chosen.scheme
        _send(io, h, CertificateVerify(
            scheme, sig.sign(scheme, chosen.credential.private_key, h.transcript.raw())))
        io.note(f"sent our client certificate, signed with {scheme.name}")
        sent_certificate = True
    write, read = record_keys(io, keys, client=True)
    io.send_change_cipher_spec()
    io.set_write(write, Epoch.APPLICATION)
    _send_next_protocol(io, h)
    _send(io, h, finished(keys, h.transcript, client=True))
    false_start = _can_false_start(io, h)
    if false_start:
        io.note("False Start (RFC 7918): application data may go before the server's "
                "Finished")
        io.emit(FalseStart())
    finish = ExpectFinished(h, auth, keys, sent_certificate=sent_certificate,
                            false_start=false_start)
    if h.ticket_expected:
        return ExpectNewSessionTicket(h, read, finish)
    return AwaitChangeCipherSpec(read, finish)


def _send_next_protocol(io: ClientIO, h: Handshake12) -> None:
    """draft-agl-tls-nextprotoneg-04 §3: NextProtocol right after our ChangeCipherSpec."""
    if h.next_protocol is not None:
        _send(io, h, NextProtocol(h.next_protocol))


def _can_false_start(io: ClientIO, h: Handshake12) -> bool:
    """RFC 7918 §3-§4 (and BoringSSL's rule): opted in, ECDHE (forward secrecy) with an
    AEAD cipher, and an application protocol negotiated (ALPN or NPN) unless allowed
    without one."""
    cfg = io.config
    return (cfg.false_start and h.suite.key_exchange == "ecdhe" and h.suite.cipher != "cbc"
            and (h.alpn is not None or h.next_protocol is not None
                 or cfg.false_start_without_alpn))


def client_credential12(io: ClientIO, request: CertificateRequest12 | None,
                        cert_types: CertTypes = CERT_TYPES_DEFAULT) -> ClientCredential | None:
    """The credential answering a TLS 1.2 CertificateRequest (client_auth module), of the
    negotiated client certificate type, or None: send an empty Certificate -- unless
    fail_without_matching_certificate says abort."""
    if request is None:
        return None
    schemes = tuple(request.supported_signature_algorithms)
    types = tuple(request.certificate_types)
    cas = tuple(request.certificate_authorities) or None
    every = credentials_for(io, CertificateRequestInfo(ProtocolVersion.TLS12, schemes, cas,
                                                       types))
    creds = certtype.of_client_type(every, cert_types)
    if not creds:
        return answer_or_fail(io, certtype.NO_CREDENTIAL_OF_TYPE) if every else None
    return answer_or_fail(io, choose_client_credential(
        creds, tls13=False, schemes=schemes, certificate_types=types, ca_names=cas))


class ExpectNewSessionTicket(_State12):
    """RFC 5077 §3.3: the ServerHello carried SessionTicket, so a NewSessionTicket (maybe
    with an empty ticket) comes before the server's ChangeCipherSpec."""

    expects = frozenset({HandshakeType.NEW_SESSION_TICKET})

    def __init__(self, hs: Handshake12, read: RecordDecrypter,
                 finish: ExpectFinished | ExpectResumedFinished) -> None:
        super().__init__(hs)
        self.read = read
        self.finish = finish

    def handle(self, io: ClientIO, msg_type: HandshakeType, body: memoryview, raw: bytes
               ) -> State[ClientIO]:
        nst = NewSessionTicket12.parse_body(body)
        io.received(nst, raw)
        self.hs.transcript.update(raw)  # RFC 5077 §3.3: part of the Finished hash
        if nst.ticket:
            if io.observed:
                io.note(f"the server issued a session ticket ({len(nst.ticket)} bytes, "
                        f"lifetime hint {nst.ticket_lifetime_hint} s)")
        else:
            io.note("the server sent an empty NewSessionTicket: no ticket this time "
                    "(RFC 5077 §3.3)")
        return AwaitChangeCipherSpec(self.read, self.finish.with_ticket(
            nst.ticket, nst.ticket_lifetime_hint))

    def export_keying_material(self, label: bytes, context: bytes | None, length: int
                               ) -> bytes:
        return self.finish.export_keying_material(label, context, length)


def _emit_session(io: ClientIO, session: Session12) -> None:
    io.emit(SessionTicketReceived(session=session, ticket=session.ticket,
                                  lifetime=session.lifetime))


class ExpectFinished(_State12):
    expects = frozenset({HandshakeType.FINISHED})

    def __init__(self, hs: Handshake12, auth: ServerAuthenticated, keys: Keys12, *,
                 sent_certificate: bool = False, false_start: bool = False) -> None:
        super().__init__(hs)
        self.auth = auth
        self.keys = keys
        self.sent_certificate = sent_certificate
        self.false_start = false_start

    def with_ticket(self, ticket: bytes, lifetime: int) -> ExpectFinished:
        return ExpectFinished(self.hs.but(new_ticket=ticket, ticket_lifetime=lifetime),
                              self.auth, self.keys, sent_certificate=self.sent_certificate,
                              false_start=self.false_start)

    def export_keying_material(self, label: bytes, context: bytes | None, length: int
                               ) -> bytes:
        """False Start: the keys are final once our Finished is out (as BoringSSL
        allows); otherwise only after the handshake."""
        if not self.false_start:
            return super().export_keying_material(label, context, length)
        return export12(self.keys, label, context, length)

    def handle(self, io: ClientIO, msg_type: HandshakeType, body: memoryview, raw: bytes
               ) -> State[ClientIO]:
        h = self.hs
        fin = Finished.parse_body(body)
        io.received(fin, raw)
        check_finished(io, self.keys, h.transcript, fin, client=False)
        h.transcript.update(raw)
        chain = self.auth.chain
        rev = chain.revocation
        scheme = self.auth.scheme if isinstance(self.auth, SignatureVerified) else None
        io.emit(HandshakeComplete(HandshakeInfo(
            version=ProtocolVersion.TLS12,
            cipher_suite=member(CipherSuite, h.suite.suite),
            group=h.group,
            signature_scheme=scheme,
            alpn=h.alpn,
            next_protocol=npn_text(h.next_protocol),
            server_name=sni_name(io.config.server_name),
            hello_retry_request=False,
            resumed=False,
            peer_certificates=chain.chain,
            certificate_verified=chain.trusted,
            certificate_accepted_by_callback=chain.by_callback,
            client_random=h.hello.random,
            extended_master_secret=h.ems,
            encrypt_then_mac=h.etm if h.suite.cipher == "cbc" else False,
            key_exchange=(h.suite.key_exchange or "").upper() or None,
            client_certificate_requested=h.cert_requested,
            client_certificate_sent=self.sent_certificate,
            revocation=rev.detail if rev is not None else None,
            revocation_state=rev.state if rev is not None else None,
            psk_identity=h.psk_identity,
            ocsp_response=chain.ocsp_response,
        )))
        if h.session_id or h.new_ticket:
            # RFC 5246 §7.4.1.3 / RFC 5077 §3.3: something to resume this session with.
            _emit_session(io, Session12(
                session_id=h.session_id, ticket=h.new_ticket,
                master_secret=self.keys.master_secret,
                cipher_suite=member(CipherSuite, h.suite.suite), extended_master_secret=h.ems,
                received_at=io.now(), lifetime=h.ticket_lifetime if h.new_ticket else 0,
                server_name=sni_name(io.config.server_name), alpn=h.alpn,
                peer_certificates=chain.chain,
                certificate_verified=chain.trusted,
                certificate_accepted_by_callback=chain.by_callback))
        io.handshake_done()
        return Connected12(self.keys, is_client=True,
                           ignore_hello_request=io.config.ignore_hello_request)


class ExpectResumedFinished(_State12):
    """Abbreviated handshake: the server's Finished comes first (RFC 5246 §7.3); then our
    ChangeCipherSpec and Finished."""

    expects = frozenset({HandshakeType.FINISHED})

    def __init__(self, hs: Handshake12, keys: Keys12, write: RecordEncrypter,
                 session: Session12) -> None:
        super().__init__(hs)
        self.keys = keys
        self.write = write
        self.session = session

    def with_ticket(self, ticket: bytes, lifetime: int) -> ExpectResumedFinished:
        return ExpectResumedFinished(
            self.hs.but(new_ticket=ticket, ticket_lifetime=lifetime), self.keys,
            self.write, self.session)

    def handle(self, io: ClientIO, msg_type: HandshakeType, body: memoryview, raw: bytes
               ) -> State[ClientIO]:
        h = self.hs
        s = self.session
        fin = Finished.parse_body(body)
        io.received(fin, raw)
        if io.config.reverify_on_resume and reverify_session(
                io, io.config.verify_callback, s.peer_certificates, peer="server",
                server_name=io.config.server_name):
            s = replace(s, certificate_accepted_by_callback=True)
        check_finished(io, self.keys, h.transcript, fin, client=False)
        h.transcript.update(raw)
        io.send_change_cipher_spec()
        io.set_write(self.write, Epoch.APPLICATION)
        _send_next_protocol(io, h)
        _send(io, h, finished(self.keys, h.transcript, client=True))
        io.emit(HandshakeComplete(HandshakeInfo(
            version=ProtocolVersion.TLS12,
            cipher_suite=member(CipherSuite, h.suite.suite),
            group=None,
            signature_scheme=None,
            alpn=h.alpn,
            next_protocol=npn_text(h.next_protocol),
            server_name=sni_name(io.config.server_name),
            hello_retry_request=False,
            resumed=True,
            resumed_with="ticket" if s.ticket else "session_id",
            peer_certificates=s.peer_certificates,
            certificate_verified=s.certificate_verified,
            certificate_accepted_by_callback=s.certificate_accepted_by_callback,
            client_random=h.hello.random,
            extended_master_secret=h.ems,
            encrypt_then_mac=h.etm if h.suite.cipher == "cbc" else False,
        )))
        if h.new_ticket:
            # RFC 5077 §3.3: a fresh ticket for the same session (e.g. the key rotated).
            s = replace(s, ticket=h.new_ticket, lifetime=h.ticket_lifetime,
                        received_at=io.now(), alpn=h.alpn)
        # The session stays valid: hand it back so callers can resume again.
        _emit_session(io, s)
        io.handshake_done()
        return Connected12(self.keys, is_client=True,
                           ignore_hello_request=io.config.ignore_hello_request)

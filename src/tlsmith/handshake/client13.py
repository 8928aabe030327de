"""The TLS 1.3 client handshake (RFC 8446 §2, §4), one class per state.

    client.ExpectServerHello ─(HRR)─► client.ExpectServerHello
      └─► ExpectEncryptedExtensions ─► ExpectCertificateOrRequest ─► ExpectCertificate
          ─► ExpectCertificateVerify ─► ExpectFinished ─► Connected13
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, replace

from tlsmith.codec import extensions as ext
from tlsmith.codec.enums import (
    CipherSuite,
    ExtensionType,
    HandshakeType,
    NamedGroup,
    ProtocolVersion,
    member,
)
from tlsmith.codec.extensions_base import ExtensionContext as Ctx
from tlsmith.codec.messages import (
    Certificate,
    CertificateEntry,
    CertificateRequest,
    CertificateVerify,
    ClientEncryptedExtensions,
    ClientHello,
    EncryptedExtensions,
    EndOfEarlyData,
    Finished,
    ServerHello,
)
from tlsmith.codec.messages_rpk import parse_certificate13_rpk
from tlsmith.config import CertifiedKey
from tlsmith.crypto import schedule13, sig
from tlsmith.crypto.kx import KeyShareSecret, generate_key_share
from tlsmith.crypto.suites import SuiteInfo, suite_info
from tlsmith.crypto.transcript import Transcript
from tlsmith.errors import (
    DecodeError,
    HandshakeFailure,
    IllegalParameter,
    MissingExtension,
    UnexpectedMessage,
)
from tlsmith.events import HandshakeComplete, HandshakeInfo
from tlsmith.frozen import fast_init
from tlsmith.handshake import alps as alps_mod
from tlsmith.handshake import certtype, psk13
from tlsmith.handshake.base import (
    ClientIO,
    HandshakeIO,
    State,
    Tls13Handshaking,
    check_server_extensions,
)
from tlsmith.handshake.certtype import DEFAULT as CERT_TYPES_DEFAULT
from tlsmith.handshake.certtype import CertTypes
from tlsmith.handshake.client import HelloSent, sni_name
from tlsmith.handshake.client_auth import (
    CertificateRequestInfo,
    ClientCredential,
    NoClientCredential,
    callback_credentials,
    choose_client_credential,
)
from tlsmith.handshake.common13 import (
    Connected13,
    TicketContext,
    TrafficSecrets,
    announce,
    decrypter,
    encrypter,
    finished_for,
    handshake_decrypter,
    handshake_encrypter,
    handshake_secrets,
    verify_finished,
    verify_finished_with_key,
)
from tlsmith.handshake.proofs import (
    ChainAccepted,
    SignatureVerified,
    accept_server_chain,
    accept_server_raw_key,
    check_revocation,
    reverify_session,
    single_raw_key,
    verify_signature,
)
from tlsmith.handshake.psk13 import OfferedPsk
from tlsmith.observe import Epoch


@fast_init
@dataclass(frozen=True, slots=True)
class Negotiated:
    """What the ServerHello fixed; carried by the later states."""

    suite: SuiteInfo
    group: NamedGroup | None  # None: psk_ke (no (EC)DHE)
    hello_retry_request: bool
    alpn: str | None = None
    psk: OfferedPsk | None = None  # the PSK the server accepted (resumption)
    ccs_sent: bool = False  # our compatibility CCS already went out
    early_data_sent: bool = False
    early_data_accepted: bool = False
    alps: alps_mod.Settings | None = None  # (ours, the server's) once negotiated
    cert_types: CertTypes = CERT_TYPES_DEFAULT  # RFC 7250 (from EncryptedExtensions)


@fast_init
@dataclass(frozen=True, slots=True)
class Handshake13:
    """The client's TLS 1.3 handshake so far, passed by value from state to state."""

    hello: ClientHello
    neg: Negotiated
    transcript: Transcript
    hs: schedule13.HandshakeSecret
    chts: bytes
    shts: bytes
    offered: frozenset[ExtensionType]  # the extension types the ClientHello carried
    cert_request: CertificateRequest | None = None
    # RFC 8446 §4.4.4: the finished_keys of shts and chts, derived with their traffic
    # keys (handshake_decrypter/handshake_encrypter); None: not derived yet.
    server_finished_key: bytes | None = None
    client_finished_key: bytes | None = None

    @property
    def hello_psk_identity0(self) -> bytes | None:
        psk = ext.find_extension(self.hello.extensions, ext.PreSharedKeyClientHello)
        return psk.identities[0].identity if psk is not None else None


@dataclass(frozen=True)
class HelloRetry:
    """What a valid HelloRetryRequest asks the next ClientHello to carry."""

    suite: SuiteInfo
    new_shares: dict[NamedGroup, KeyShareSecret]
    cookie: bytes | None


def _check_common(sent: HelloSent, sh: ServerHello) -> SuiteInfo:
    if sh.legacy_version != ProtocolVersion.TLS12:
        raise IllegalParameter("ServerHello.legacy_version must be 0x0303 in TLS 1.3",
                               check="sh_legacy_version")
    # RFC 8446 §4.1.3: legacy_session_id_echo must echo ours.
    if sh.legacy_session_id_echo != sent.hello.legacy_session_id:
        raise IllegalParameter("the server did not echo our legacy_session_id",
                               check="session_id_echo")
    if sh.cipher_suite not in sent.hello.cipher_suites:
        raise IllegalParameter(
            f"the server chose {CipherSuite(sh.cipher_suite).name}, which we did not offer",
                               check="suite_not_offered")
    info = suite_info(sh.cipher_suite)
    if info is None or not info.tls13:
        raise IllegalParameter(f"{CipherSuite(sh.cipher_suite).name} is not a TLS 1.3 suite",
                               check="suite_not_tls13")
    if sh.legacy_compression_method != 0:
        raise IllegalParameter("legacy_compression_method must be 0 in TLS 1.3")
    return info


def check_hello_retry(io: ClientIO, sent: HelloSent, hrr: ServerHello) -> HelloRetry:
    """RFC 8446 §4.1.4: validate a HelloRetryRequest; what the new ClientHello needs."""
    info = _check_common(sent, hrr)
    if sent.hrr is not None:
        raise UnexpectedMessage("the server sent a second HelloRetryRequest "
                                "(RFC 8446 §4.1.4 allows one)", check="second_hrr")
    check_server_extensions(hrr.extensions, Ctx.HELLO_RETRY_REQUEST, sent.offered)
    ks = ext.find_extension(hrr.extensions, ext.KeyShareHelloRetryRequest)
    cookie = ext.find_extension(hrr.extensions, ext.Cookie)
    if ks is None and cookie is None:
        raise IllegalParameter("a HelloRetryRequest that would not change the "
                               "ClientHello (RFC 8446 §4.1.4)", check="hrr_no_change")
    shares = sent.shares
    if ks is not None:
        group = ks.selected_group
        if group not in io.config.groups:
            raise IllegalParameter(
                f"the HelloRetryRequest asks for {NamedGroup(group).name}, which we "
                "did not list in supported_groups (RFC 8446 §4.2.8)", check="hrr_group_not_offered")
        if group in sent.shares:
            raise IllegalParameter(
                f"the HelloRetryRequest asks for {NamedGroup(group).name}, for which "
                "we already sent a key share (RFC 8446 §4.2.8)", check="hrr_group_already_sent")
        shares = {NamedGroup(group): generate_key_share(NamedGroup(group), io.random)}
        io.note(f"server asked for a new key share: {NamedGroup(group).name}")
    return HelloRetry(info, shares, cookie.cookie if cookie else None)


def handle_server_hello(io: ClientIO, sent: HelloSent, sh: ServerHello, raw: bytes
                        ) -> State[ClientIO]:
    """A TLS 1.3 ServerHello: derive the handshake secrets and install their keys."""
    info = _check_common(sent, sh)
    check_server_extensions(sh.extensions, Ctx.SERVER_HELLO, sent.offered)
    if sent.hrr is not None and sh.cipher_suite != sent.hrr.cipher_suite:
        # RFC 8446 §4.1.4: the suite in ServerHello must match the HRR's.
        raise IllegalParameter("ServerHello's cipher suite differs from the "
                               "HelloRetryRequest's", check="hrr_suite_changed")
    psk_sh = ext.find_extension(sh.extensions, ext.PreSharedKeyServerHello)
    chosen: OfferedPsk | None = None
    if psk_sh is not None:
        if not sent.psks:
            raise IllegalParameter("the server accepted a PSK we never offered",
                                   check="psk_not_offered")
        chosen = psk13.check_selected_identity(sent.psks, psk_sh.selected_identity, info)
    elif io.config.require_psk:
        # ClientConfig.require_psk: no certificate is acceptable, only our PSKs.
        raise MissingExtension("the server did not accept our PSK (require_psk: no "
                               "certificate authentication)", check="psk_required")
    key_share = ext.find_extension(sh.extensions, ext.KeyShareServerHello)
    group: NamedGroup | None = None
    shared: bytes | None = None
    if key_share is None:
        if chosen is None:
            # RFC 8446 §9.2: without a PSK, key_share is mandatory.
            raise MissingExtension("the ServerHello has neither key_share nor "
                                   "pre_shared_key", check="key_share_missing")
        if not io.config.offer_psk_ke:
            # RFC 8446 §4.2.11: a key_share required by our psk_key_exchange_modes (we
            # did not offer psk_ke) but absent is illegal_parameter.
            raise IllegalParameter("the server resumed without a key_share (psk_ke), "
                                   "which we did not offer", check="psk_ke_not_offered")
    else:
        group = member(NamedGroup, key_share.server_share.group)
        secret = sent.shares.get(group)
        if secret is None:
            # RFC 8446 §4.2.8: the server's share must be in a group we sent a share for.
            raise IllegalParameter(
                f"the server answered with a {group.name} key share, but the "
                "client sent no share for that group", check="key_share_group_not_offered")
        shared = secret.exchange(key_share.server_share.key_exchange)
    transcript = sent.transcript
    if sent.hrr is None:
        transcript.set_hash(info.hash_name)
    secrets = handshake_secrets(io, info, shared, transcript.update_and_digest(raw),
                                early=chosen.early_secret() if chosen else None)
    hs, chts, shts = secrets.hs, secrets.chts, secrets.shts
    read, server_finished_key = handshake_decrypter(info, shts)
    io.set_read(read, Epoch.HANDSHAKE)
    client_finished_key: bytes | None = None
    if not sent.early_data or sent.hrr is not None:
        # Alerts from here on are protected with our handshake key, as OpenSSL does.
        # (With 0-RTT in flight the early key stays until EncryptedExtensions says
        # whether the server reads it.) RFC 8446 §D.4: the compatibility CCS precedes
        # our first protected record, whatever it is: with our second flight, or an
        # alert about the server's flight, so a middlebox or peer can read that alert.
        if io.config.middlebox_compat and not sent.ccs_sent:
            io.owe_change_cipher_spec()
        write, client_finished_key = handshake_encrypter(info, chts)
        io.set_write(write, Epoch.HANDSHAKE)
    if io.observed:
        how = "no (EC)DHE (psk_ke)" if group is None else group.name
        io.note(f"negotiated TLS 1.3 with {CipherSuite(info.suite).name} over {how}"
                + ("" if chosen is None else
                   f", resuming with PSK identity {psk_sh.selected_identity if psk_sh else 0}"))
    neg = Negotiated(info, group, sent.hrr is not None, psk=chosen,
                     ccs_sent=sent.ccs_sent, early_data_sent=sent.early_data)
    return ExpectEncryptedExtensions(Handshake13(sent.hello, neg, transcript, hs, chts, shts,
                                                 sent.offered, None, server_finished_key,
                                                 client_finished_key))


_CERT_DATA = operator.attrgetter("cert_data")


class _State13(Tls13Handshaking[ClientIO]):
    version = ProtocolVersion.TLS13

    def __init__(self, hs: Handshake13) -> None:
        self.hs = hs


class ExpectEncryptedExtensions(_State13):
    expects = frozenset({HandshakeType.ENCRYPTED_EXTENSIONS})

    def handle(self, io: ClientIO, msg_type: HandshakeType, body: memoryview,
               raw: bytes) -> State[ClientIO]:
        h = self.hs
        ee = EncryptedExtensions.parse_body(body)
        io.received(ee, raw)
        if ee.extensions:
            check_server_extensions(ee.extensions, Ctx.ENCRYPTED_EXTENSIONS, h.offered)
        alpn = None
        chosen = ext.find_extension(ee.extensions, ext.ApplicationLayerProtocolNegotiation)
        if chosen is not None:
            alpn = checked_alpn(h.hello, chosen)
        neg = h.neg
        accepted = ext.find_extension(ee.extensions, ext.EarlyDataIndication) is not None
        if accepted:
            if not neg.early_data_sent or neg.psk is None or neg.psk.session is None:
                raise IllegalParameter("the server accepted early data we did not send",
                                       check="early_data_not_sent")
            session = neg.psk.session
            # RFC 8446 §4.2.10: 0-RTT only with the first PSK, its suite and its ALPN.
            if (neg.psk.identity != h.hello_psk_identity0
                    or session.cipher_suite != neg.suite.suite or session.alpn != alpn):
                raise IllegalParameter("the server accepted early data with a PSK, suite "
                                       "or ALPN it may not be used with",
                                       check="early_data_mismatch")
        settings = _alps_answer(io, ee, alpn, neg, accepted)
        if settings != neg.alps:
            neg = replace(neg, alps=settings)
            h = replace(h, neg=neg)
        if neg.early_data_sent:
            io.check("0-RTT", accepted, "the server accepted our early data" if accepted
                     else "the server rejected our early data")
            if not accepted and not neg.hello_retry_request:
                io.set_write(encrypter(neg.suite, h.chts), Epoch.HANDSHAKE)
        types = certtype.client_read_answer(io.config, ee.extensions,
                                            certificate_follows=neg.psk is None)
        h.transcript.update(raw)
        if (alpn != neg.alpn or accepted != neg.early_data_accepted
                or (types is not neg.cert_types and types != neg.cert_types)):
            h = replace(h, neg=replace(neg, alpn=alpn, early_data_accepted=accepted,
                                       cert_types=types))
        if neg.psk is not None:
            # RFC 8446 §2.2: a PSK handshake has no Certificate/CertificateVerify.
            return ExpectFinished(h, neg.psk)
        return ExpectCertificateOrRequest(h)


def _alps_answer(io: ClientIO, ee: EncryptedExtensions, alpn: str | None, neg: Negotiated,
                 early_accepted: bool) -> alps_mod.Settings | None:
    """draft-vvv-tls-alps §3: the server's settings for the negotiated protocol, which
    must be one we have settings for; none with accepted 0-RTT (the session's apply)."""
    cfg = io.config
    t = alps_mod.extension_type(cfg.alps_new_codepoint)
    found = ext.find_extension_type(ee.extensions, t)
    session = neg.psk.session if neg.psk is not None else None
    if early_accepted:
        if found is not None:
            raise IllegalParameter("the server sent application_settings with accepted "
                                   "0-RTT data", check="alps_with_early_data")
        return session.application_settings if session is not None else None
    if found is None:
        return None
    assert isinstance(found, ext.ApplicationSettings)
    ours = alps_mod.local_settings(cfg.application_settings, alpn)
    if ours is None:
        raise IllegalParameter("the server sent application_settings for an ALPN protocol "
                               "we have no settings for", check="alps_protocol_mismatch")
    io.note(f"ALPS: the server's settings are {len(found.settings)} bytes")
    return ours, found.settings


def checked_alpn(hello: ClientHello, chosen: ext.ApplicationLayerProtocolNegotiation) -> str:
    """RFC 7301 §3.1: exactly one protocol, and one the client offered."""
    offered = ext.find_extension(hello.extensions, ext.ApplicationLayerProtocolNegotiation)
    if (len(chosen.protocol_name_list) != 1 or offered is None
            or chosen.protocol_name_list[0] not in offered.protocol_name_list):
        raise IllegalParameter("the server selected an ALPN protocol we did not offer",
                               check="alpn_not_offered")
    return chosen.protocol_name_list[0].decode("ascii", "replace")


class ExpectCertificateOrRequest(_State13):
    expects = frozenset({HandshakeType.CERTIFICATE, HandshakeType.CERTIFICATE_REQUEST})

    def handle(self, io: ClientIO, msg_type: HandshakeType, body: memoryview,
               raw: bytes) -> State[ClientIO]:
        h = self.hs
        if msg_type == HandshakeType.CERTIFICATE_REQUEST:
            req = CertificateRequest.parse_body(body)
            io.received(req, raw)
            check_server_extensions(req.extensions, Ctx.CERTIFICATE_REQUEST, h.offered)
            # RFC 8446 §4.3.2: in the handshake the context is empty; signature_algorithms
            # is mandatory.
            if req.certificate_request_context:
                raise IllegalParameter("CertificateRequest context must be empty during "
                                       "the handshake", check="cr_context_not_empty")
            if ext.find_extension(req.extensions, ext.SignatureAlgorithms) is None:
                raise MissingExtension("CertificateRequest without signature_algorithms",
                                       check="cr_no_signature_algorithms")
            h.transcript.update(raw)
            io.note("the server asks for a client certificate; "
                    + ("we will send ours if one fits" if io.config.may_send_certificate
                       else "we have none to send"))
            return ExpectCertificate(replace(h, cert_request=req))
        return _certificate(io, h, body, raw)


class ExpectCertificate(_State13):
    expects = frozenset({HandshakeType.CERTIFICATE})

    def handle(self, io: ClientIO, msg_type: HandshakeType, body: memoryview,
               raw: bytes) -> State[ClientIO]:
        return _certificate(io, self.hs, body, raw)


def _certificate(io: ClientIO, h: Handshake13, body: memoryview, raw: bytes
                 ) -> State[ClientIO]:
    rpk = h.neg.cert_types.server == certtype.RPK
    cert = parse_certificate13_rpk(body) if rpk else Certificate.parse_body(body)
    io.received(cert, raw)
    if cert.certificate_request_context:
        raise IllegalParameter("the server's Certificate must have an empty context")
    if not cert.certificate_list:
        # RFC 8446 §4.4.2.4: an empty server Certificate is a decode_error.
        raise DecodeError("the server sent an empty Certificate message")
    for entry in cert.certificate_list:
        if entry.extensions:
            # RFC 8446 §4.4.2: entry extensions must answer ones from the ClientHello.
            check_server_extensions(entry.extensions, Ctx.CERTIFICATE, h.offered)
    chain = tuple(map(_CERT_DATA, cert.certificate_list))
    if rpk:
        accepted = accept_server_raw_key(io, single_raw_key(chain))
    else:
        accepted = accept_server_chain(io, chain)
    # RFC 8446 §4.4.2.1: a stapled OCSP response is the status_request extension of the
    # leaf's CertificateEntry (a CertificateStatus body).
    staple = ext.find_extension(cert.certificate_list[0].extensions,
                                ext.CertificateStatusExtension)
    if staple is not None:
        io.note(f"the server stapled an OCSP response ({len(staple.ocsp_response)} bytes)")
    accepted = check_revocation(io, accepted,
                                staple.ocsp_response if staple is not None else None)
    h.transcript.update(raw)
    return ExpectCertificateVerify(h, accepted)


class ExpectCertificateVerify(_State13):
    expects = frozenset({HandshakeType.CERTIFICATE_VERIFY})

    def __init__(self, hs: Handshake13, chain: ChainAccepted) -> None:
        super().__init__(hs)
        self.chain = chain

    def handle(self, io: ClientIO, msg_type: HandshakeType, body: memoryview,
               raw: bytes) -> State[ClientIO]:
        h = self.hs
        cv = CertificateVerify.parse_body(body)
        io.received(cv, raw)
        offered = ext.find_extension(h.hello.extensions, ext.SignatureAlgorithms)
        schemes = offered.supported_signature_algorithms if offered else ()
        content = sig.certificate_verify_content(h.transcript.digest(), server=True)
        proof = verify_signature(io, self.chain, cv.algorithm, schemes, content,
                                 cv.signature, tls13=True, what="server CertificateVerify")
        h.transcript.update(raw)
        return ExpectFinished(h, proof)


class ExpectFinished(_State13):
    expects = frozenset({HandshakeType.FINISHED})

    def __init__(self, hs: Handshake13, proof: SignatureVerified | OfferedPsk) -> None:
        super().__init__(hs)
        # The server's certificate signature, or -- resuming -- the PSK whose keys its
        # Finished must be made with.
        self.proof = proof
        self.reverified = False  # reverify_on_resume: the callback accepted the session's

    def reverify(self, io: ClientIO) -> None:
        """Resuming with reverify_on_resume: the callback judges the session's chain."""
        proof = self.proof
        if (io.config.reverify_on_resume and isinstance(proof, OfferedPsk)
                and proof.session is not None):
            self.reverified = reverify_session(
                io, io.config.verify_callback, proof.session.peer_certificates,
                peer="server", server_name=io.config.server_name)

    def handle(self, io: ClientIO, msg_type: HandshakeType, body: memoryview,
               raw: bytes) -> State[ClientIO]:
        h = self.hs
        neg = h.neg
        suite = h.neg.suite
        fin = Finished.parse_body(body)
        io.received(fin, raw)
        self.reverify(io)
        transcript = h.transcript
        if h.server_finished_key is not None:
            verify_finished_with_key(io, suite, h.server_finished_key, transcript.digest(),
                                     fin, "server")
        else:
            verify_finished(io, suite, h.shts, transcript.digest(), fin, "server")
        master = h.hs.master_secret()
        cats, sats, ems = master.application_secrets(transcript.update_and_digest(raw))
        if io.observed:  # (unobserved, io.secret does nothing)
            io.secret("master_secret", master.secret, None)
            announce(io, "client_application_traffic_secret_0", cats)
            announce(io, "server_application_traffic_secret_0", sats)
            announce(io, "exporter_master_secret", ems)
        io.set_read(decrypter(suite, sats), Epoch.APPLICATION)
        if neg.early_data_accepted:
            # RFC 8446 §4.5: EndOfEarlyData under the early key, then handshake keys.
            eoed = EndOfEarlyData()
            raw_e = eoed.serialize()
            io.send_handshake(eoed, raw_e)
            h.transcript.update(raw_e)
            io.set_write(encrypter(suite, h.chts), Epoch.HANDSHAKE)
        if io.config.middlebox_compat and not neg.ccs_sent:
            io.send_change_cipher_spec()  # RFC 8446 §D.4
        if neg.alps is not None and not neg.early_data_accepted:
            # draft-vvv-tls-alps §4: our settings, before our Certificate and Finished.
            cee = ClientEncryptedExtensions((alps_mod.settings_extension(
                io.config.alps_new_codepoint, neg.alps[0]),))
            raw_c = cee.serialize()
            io.send_handshake(cee, raw_c)
            h.transcript.update(raw_c)
        sent_certificate = False
        if h.cert_request is not None:
            sent_certificate = send_client_certificate(
                io, h.transcript, h.cert_request,
                neg.cert_types)
        if h.client_finished_key is not None:
            client_fin = Finished(schedule13.verify_data_with_key(
                suite.hash_name, h.client_finished_key, transcript.digest()))
        else:
            client_fin = finished_for(suite, h.chts, transcript.digest())
        raw_f = client_fin.serialize()
        io.send_handshake(client_fin, raw_f)
        rms = master.resumption_master_secret(transcript.update_and_digest(raw_f))
        io.set_write(encrypter(suite, cats), Epoch.APPLICATION)
        proof = self.proof
        if isinstance(proof, SignatureVerified):
            rev = proof.chain.revocation
            staple = proof.chain.ocsp_response
            chain, verified = proof.chain.chain, proof.chain.trusted
            by_callback = proof.chain.by_callback
            scheme, resumed_with = proof.scheme, None
        else:
            rev, scheme, staple = None, None, None
            chain = proof.session.peer_certificates if proof.session else ()
            verified = proof.session.certificate_verified if proof.session else False
            by_callback = self.reverified or (proof.session is not None
                                              and proof.session.certificate_accepted_by_callback)
            resumed_with = ("external_psk" if proof.external
                            else "psk_ke" if neg.group is None else "psk_dhe_ke")
        io.emit(HandshakeComplete(HandshakeInfo(
            version=ProtocolVersion.TLS13,
            cipher_suite=member(CipherSuite, suite.suite),
            group=neg.group,
            signature_scheme=scheme,
            alpn=neg.alpn,
            server_name=sni_name(io.config.server_name),
            hello_retry_request=neg.hello_retry_request,
            resumed=resumed_with is not None,
            peer_certificates=chain,
            certificate_verified=verified,
            certificate_accepted_by_callback=by_callback,
            client_random=h.hello.random,
            client_certificate_requested=h.cert_request is not None,
            client_certificate_sent=sent_certificate,
            revocation=rev.detail if rev is not None else None,
            revocation_state=rev.state if rev is not None else None,
            ocsp_response=staple,
            resumed_with=resumed_with,
            early_data_accepted=neg.early_data_accepted if neg.early_data_sent else None,
            psk_identity=(proof.source.configured_identity
                          if isinstance(proof, OfferedPsk) and proof.source else None),
            peer_application_settings=neg.alps[1] if neg.alps is not None else None,
        )))
        io.handshake_done()
        # RFC 8446 §4.6.2: keep the transcript through our Finished for post-handshake
        # authentication, only if we offered it.
        pha = ExtensionType.POST_HANDSHAKE_AUTH in h.offered
        return Connected13(TrafficSecrets(suite, read_secret=sats, write_secret=cats),
                           is_client=True, resumption_master_secret=rms,
                           exporter_master_secret=ems,
                           transcript=h.transcript.copy() if pha else None,
                           ticket_context=TicketContext(
                               sni_name(io.config.server_name), neg.alpn, chain, verified,
                               neg.alps, by_callback))


def client_credential13(io: ClientIO, request: CertificateRequest,
                        types: CertTypes | None = None) -> ClientCredential | None:
    """The credential answering a TLS 1.3 CertificateRequest (client_auth module), of
    the negotiated client certificate type (``types``; None: X.509), or None: send an
    empty Certificate -- unless fail_without_matching_certificate says abort."""
    algs = ext.find_extension(request.extensions, ext.SignatureAlgorithms)
    if algs is None:
        return None
    found = ext.find_extension(request.extensions, ext.CertificateAuthorities)
    schemes = tuple(algs.supported_signature_algorithms)
    cas = tuple(found.authorities) if found is not None else None
    every = credentials_for(io, CertificateRequestInfo(ProtocolVersion.TLS13, schemes, cas,
                                                       None))
    creds = certtype.of_client_type(every, types)
    if not creds:
        return answer_or_fail(io, certtype.NO_CREDENTIAL_OF_TYPE) if every else None
    return answer_or_fail(io, choose_client_credential(creds, tls13=True, schemes=schemes,
                                                       ca_names=cas))


def credentials_for(io: ClientIO, info: CertificateRequestInfo) -> tuple[CertifiedKey, ...]:
    """The credentials to choose from: the configured ones, or the callback's."""
    cfg = io.config
    if cfg.certificate_callback is None:
        return cfg.client_credentials
    return callback_credentials(cfg.certificate_callback, info, cfg.client_credentials)


def answer_or_fail(io: ClientIO, chosen: ClientCredential | NoClientCredential
                   ) -> ClientCredential | None:
    """The chosen credential; if none fits, None (an empty Certificate, RFC 8446 §4.4.2,
    RFC 5246 §7.4.6) or, with fail_without_matching_certificate, handshake_failure."""
    if isinstance(chosen, ClientCredential):
        return chosen
    if io.config.fail_without_matching_certificate:
        raise HandshakeFailure(chosen.reason, check=chosen.check)
    io.note(f"{chosen.reason}: sending an empty Certificate")
    return None


def send_client_certificate(io: ClientIO, transcript: Transcript, request: CertificateRequest,
                            types: CertTypes | None = None) -> bool:
    """Answer a CertificateRequest: Certificate + CertificateVerify with the first of our
    credentials (of the negotiated type; None: X.509) that fits, else an empty
    Certificate (RFC 8446 §4.4.2: no suitable certificate). True if one was sent."""
    chosen = client_credential13(io, request, types)
    if chosen is None:
        _send13(io, transcript, Certificate(request.certificate_request_context, ()))
        return False
    certified, scheme = chosen.credential, chosen.scheme
    _send13(io, transcript, Certificate(
        request.certificate_request_context,
        tuple(CertificateEntry(der, ()) for der in certified.chain)))
    content = sig.certificate_verify_content(transcript.digest(), server=False)
    _send13(io, transcript, CertificateVerify(
        scheme, sig.sign(scheme, certified.private_key, content)))
    io.note(f"sent our client certificate, signed with {scheme.name}")
    return True


def _send13(io: HandshakeIO, transcript: Transcript,
            msg: Certificate | CertificateVerify) -> None:
    raw = msg.serialize()
    io.send_handshake(msg, raw)
    transcript.update(raw)

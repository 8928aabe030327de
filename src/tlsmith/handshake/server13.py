"""The TLS 1.3 server handshake (RFC 8446 §2, §4), one class per state.

    server.ExpectClientHello ─(no usable share)─► HelloRetryRequest ─► ExpectClientHelloAgain
      └─► ServerHello, EE, [CertificateRequest], Certificate, CertificateVerify, Finished
          ─► [ExpectClientCertificate ─► (non-empty) ExpectClientCertificateVerify]
          ─► ExpectClientFinished ─► Connected13
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, replace

from tlsmith.codec import extensions as ext
from tlsmith.codec.enums import (
    CertificateStatusType,
    CipherSuite,
    ExtensionType,
    HandshakeType,
    NamedGroup,
    ProtocolVersion,
    SignatureScheme,
)
from tlsmith.codec.messages import (
    HELLO_RETRY_REQUEST_RANDOM,
    Certificate,
    CertificateEntry,
    CertificateRequest,
    CertificateVerify,
    ClientHello,
    EncryptedExtensions,
    Finished,
    ServerHello,
    message_hash,
)
from tlsmith.config import CertifiedKey, ServerConfig
from tlsmith.crypto import schedule13, sig
from tlsmith.crypto.kx import group_available, server_key_share
from tlsmith.crypto.suites import SuiteInfo, suite_info
from tlsmith.crypto.transcript import Transcript
from tlsmith.errors import (
    CertificateRequired,
    HandshakeFailure,
    IllegalParameter,
    MissingExtension,
)
from tlsmith.events import HandshakeComplete, HandshakeInfo
from tlsmith.handshake.base import ServerIO, State, Tls13Handshaking
from tlsmith.handshake.common13 import (
    Connected13,
    TrafficSecrets,
    announce,
    decrypter,
    encrypter,
    finished_for,
    handshake_secrets,
    verify_finished,
)
from tlsmith.handshake.negotiate import (
    Offered,
    certificate_authorities,
    choose_alpn,
    choose_certificate,
    choose_version,
    no_certificate,
    offer,
    staple_for,
)
from tlsmith.handshake.proofs import (
    ChainAccepted,
    accept_client_chain,
    verify_signature,
)
from tlsmith.observe import Epoch

_COOKIE_LABEL = b"tlsmith hrr cookie v1"


@dataclass(frozen=True)
class Choice:
    """The server's decisions for one ClientHello."""

    suite: SuiteInfo
    group: NamedGroup
    client_share: bytes | None  # None: HelloRetryRequest needed
    certified: CertifiedKey
    scheme: SignatureScheme
    alpn: str | None
    server_name: str | None
    sni_matched: bool
    staple: bytes | None = None  # a DER OCSP response for the leaf's CertificateEntry


def check_client_hello(offered: Offered) -> None:
    """Every MUST of RFC 8446 §4.1.2 / §4.2 / §9.2 that does not depend on our config."""
    ch = offered.hello
    # RFC 8446 §4.1.2: exactly one compression method, null.
    if tuple(ch.legacy_compression_methods) != (0,):
        raise IllegalParameter("a TLS 1.3 ClientHello must offer only null compression")
    if offered.psk is not None and offered.psk_modes is None:
        # RFC 8446 §4.2.9: pre_shared_key requires psk_key_exchange_modes.
        raise MissingExtension("pre_shared_key offered without psk_key_exchange_modes")
    groups, shares = offered.groups, offered.key_shares
    # RFC 8446 §9.2: supported_groups and key_share come together.
    if (groups is None) != (shares is None):
        raise MissingExtension("ClientHello must carry both supported_groups and key_share, "
                               "or neither")
    if offered.signature_schemes is None:
        # RFC 8446 §9.2: a certificate-authenticated handshake needs signature_algorithms.
        raise MissingExtension("ClientHello has no signature_algorithms extension")
    if groups is None or shares is None:
        raise MissingExtension("ClientHello has no key_share; PSK-only handshakes are not "
                               "supported")
    seen: set[int] = set()
    for entry in shares:
        # RFC 8446 §4.2.8: each share's group is in supported_groups, at most once.
        if entry.group in seen:
            raise IllegalParameter(f"two key shares for {NamedGroup(entry.group).name}")
        if entry.group not in groups:
            raise IllegalParameter(
                f"key share for {NamedGroup(entry.group).name}, which is not in "
                "supported_groups")
        seen.add(entry.group)


def choose(cfg: ServerConfig, offered: Offered) -> Choice:
    client_suites = set(offered.suites)
    order = (cfg.cipher_suites if cfg.prefer_server_cipher_order
             else tuple(s for s in offered.suites if s in cfg.cipher_suites))
    info = next((i for s in order if s in client_suites
                 and (i := suite_info(s)) is not None and i.tls13), None)
    if info is None:
        raise HandshakeFailure(
            "no TLS 1.3 cipher suite in common: the client offers "
            + ", ".join(CipherSuite(s).name for s in offered.suites))
    assert offered.groups is not None and offered.key_shares is not None  # checked above
    by_group = {NamedGroup(e.group): e.key_exchange for e in offered.key_shares}
    usable = [g for g in cfg.groups if group_available(g)]
    group = next((g for g in usable if g in by_group), None)
    if group is None:
        group = next((g for g in usable if g in offered.groups), None)
        if group is None:
            raise HandshakeFailure(
                "no key-exchange group in common: the client supports "
                + ", ".join(NamedGroup(g).name for g in offered.groups))
    cert = choose_certificate(cfg, offered, tls13=True)
    if cert is None or cert.scheme is None:
        raise no_certificate(offered)
    return Choice(info, group, by_group.get(group), cert.certified, cert.scheme,
                  choose_alpn(cfg, offered), offered.server_name, cert.sni_matched,
                  staple_for(cert.certified, offered))


def _hrr(session_id: bytes, suite: CipherSuite, group: NamedGroup, cookie: bytes
         ) -> ServerHello:
    return ServerHello(
        legacy_version=ProtocolVersion.TLS12,
        random=HELLO_RETRY_REQUEST_RANDOM,
        legacy_session_id_echo=session_id,
        cipher_suite=suite,
        legacy_compression_method=0,
        extensions=(
            ext.SupportedVersionsServerHello(ProtocolVersion.TLS13),
            ext.KeyShareHelloRetryRequest(group),
            ext.Cookie(cookie),
        ),
    )


def _make_cookie(secret: bytes, suite: CipherSuite, group: NamedGroup, ch1_hash: bytes
                 ) -> bytes:
    """RFC 8446 §4.2.2: the cookie carries the ClientHello1 hash, integrity-protected, so
    the transcript can be rebuilt from the second ClientHello alone."""
    body = int(suite).to_bytes(2, "big") + int(group).to_bytes(2, "big") + ch1_hash
    return body + hmac.digest(secret, _COOKIE_LABEL + body, "sha256")


def _open_cookie(secret: bytes, cookie: bytes) -> tuple[CipherSuite, NamedGroup, bytes]:
    body, tag = cookie[:-32], cookie[-32:]
    if len(cookie) < 4 + 32 + 32 or not hmac.compare_digest(
            tag, hmac.digest(secret, _COOKIE_LABEL + body, "sha256")):
        raise IllegalParameter("the ClientHello's cookie is not one this server issued")
    return (CipherSuite(int.from_bytes(body[:2], "big")),
            NamedGroup(int.from_bytes(body[2:4], "big")), body[4:])


def start(io: ServerIO, offered: Offered, raw: bytes) -> State[ServerIO]:
    """The first ClientHello, TLS 1.3 chosen: answer it, or ask again with an HRR."""
    check_client_hello(offered)
    choice = choose(io.config, offered)
    transcript = Transcript()
    transcript.set_hash(choice.suite.hash_name)
    transcript.update(raw)
    if choice.client_share is None:
        return _retry(io, offered.hello, choice, transcript)
    return send_server_flight(io, offered.hello, choice, transcript, hrr=False, ccs_sent=False)


def _retry(io: ServerIO, ch: ClientHello, choice: Choice, transcript: Transcript
           ) -> State[ServerIO]:
    cookie = _make_cookie(io.config.cookie_secret, CipherSuite(choice.suite.suite),
                          choice.group, transcript.digest())
    hrr = _hrr(ch.legacy_session_id, CipherSuite(choice.suite.suite), choice.group, cookie)
    raw = hrr.serialize()
    io.note(f"no usable key share from the client: asking for {choice.group.name} "
            "with a HelloRetryRequest")
    io.send_handshake(hrr, raw)
    ccs = bool(ch.legacy_session_id)
    if ccs:
        io.send_change_cipher_spec()  # RFC 8446 §D.4: right after the first message
    return ExpectClientHelloAgain(ch, ccs_sent=ccs)


class ExpectClientHelloAgain(Tls13Handshaking[ServerIO]):
    """The second ClientHello, after our HelloRetryRequest (RFC 8446 §4.1.2, §4.1.4)."""

    version = ProtocolVersion.TLS13

    expects = frozenset({HandshakeType.CLIENT_HELLO})

    def __init__(self, first: ClientHello, *, ccs_sent: bool) -> None:
        self.first = first
        self.ccs_sent = ccs_sent

    def handle(self, io: ServerIO, msg_type: HandshakeType, body: memoryview,
               raw: bytes) -> State[ServerIO]:
        ch = ClientHello.parse_body(body)
        io.received(ch, raw)
        offered = offer(ch)
        # RFC 8446 §4.1.4: the version cannot change across the HelloRetryRequest.
        if choose_version(io.config, offered) != ProtocolVersion.TLS13:
            raise IllegalParameter("the second ClientHello no longer offers TLS 1.3")
        check_client_hello(offered)
        if offered.cookie is None:
            raise MissingExtension("the second ClientHello must echo our cookie")
        suite, group, ch1_hash = _open_cookie(io.config.cookie_secret, offered.cookie)
        # RFC 8446 §4.1.2: the client must resend the same hello except for the allowed
        # changes (key_share, cookie, early_data removal, padding).
        if (ch.random != self.first.random
                or ch.legacy_session_id != self.first.legacy_session_id
                or ch.cipher_suites != self.first.cipher_suites):
            raise IllegalParameter("the second ClientHello differs from the first in more "
                                   "than the key share and cookie")
        if offered.early_data:
            raise IllegalParameter("early_data in the ClientHello after a HelloRetryRequest")
        shares = offered.key_shares
        assert shares is not None  # check_client_hello
        if len(shares) != 1 or shares[0].group != group:
            raise IllegalParameter(
                f"after the HelloRetryRequest the client must send exactly one {group.name} "
                "key share (RFC 8446 §4.1.4)")
        choice = choose(io.config, offered)
        if choice.suite.suite != suite:
            raise IllegalParameter("the cipher suite changed across the HelloRetryRequest")
        choice = replace(choice, group=group, client_share=shares[0].key_exchange)
        transcript = Transcript()
        transcript.set_hash(choice.suite.hash_name)
        transcript.update(message_hash(ch1_hash))  # RFC 8446 §4.4.1
        hrr = _hrr(ch.legacy_session_id, suite, group, offered.cookie)
        transcript.update(hrr.serialize())
        transcript.update(raw)
        return send_server_flight(io, ch, choice, transcript, hrr=True,
                                  ccs_sent=self.ccs_sent)


def send_server_flight(io: ServerIO, ch: ClientHello, choice: Choice, transcript: Transcript,
                       *, hrr: bool, ccs_sent: bool) -> State[ServerIO]:
    """ServerHello ... Finished in one flight (RFC 8446 §2)."""
    suite = choice.suite
    assert choice.client_share is not None
    server_share, shared = server_key_share(choice.group, choice.client_share, io.random)
    sh = ServerHello(
        legacy_version=ProtocolVersion.TLS12,
        random=io.random(32),
        legacy_session_id_echo=ch.legacy_session_id,
        cipher_suite=CipherSuite(suite.suite),
        legacy_compression_method=0,
        extensions=(
            ext.SupportedVersionsServerHello(ProtocolVersion.TLS13),
            ext.KeyShareServerHello(ext.KeyShareEntry(choice.group, server_share)),
        ),
    )
    raw = sh.serialize()
    io.send_handshake(sh, raw)
    transcript.update(raw)
    if ch.legacy_session_id and not ccs_sent:
        io.send_change_cipher_spec()  # RFC 8446 §D.4
    secrets = handshake_secrets(io, suite, shared, transcript.digest())
    hs, chts, shts = secrets.hs, secrets.chts, secrets.shts
    io.set_write(encrypter(suite, shts), Epoch.HANDSHAKE)
    io.set_read(decrypter(suite, chts), Epoch.HANDSHAKE)

    ee_exts: list[ext.Extension] = []
    if choice.server_name and choice.sni_matched:
        ee_exts.append(ext.ServerName(None))  # RFC 6066 §3: acknowledge the name we used
    if choice.alpn is not None:
        ee_exts.append(ext.ApplicationLayerProtocolNegotiation((choice.alpn.encode(),)))
    flight: list[EncryptedExtensions | CertificateRequest | Certificate] = [
        EncryptedExtensions(tuple(ee_exts))]
    if io.config.client_auth != "none":
        flight.append(certificate_request(io.config))
        io.note(f"asking the client for a certificate (client_auth={io.config.client_auth})")
    entries = [CertificateEntry(der, ()) for der in choice.certified.chain]
    if choice.staple is not None:
        # RFC 8446 §4.4.2.1: the OCSP response rides in the leaf's CertificateEntry.
        entries[0] = CertificateEntry(entries[0].cert_data, (ext.CertificateStatusExtension(
            CertificateStatusType.OCSP, choice.staple),))
        io.note(f"stapling an OCSP response ({len(choice.staple)} bytes) to our "
                "certificate")
    flight.append(Certificate(b"", tuple(entries)))
    for msg in flight:
        raw = msg.serialize()
        io.send_handshake(msg, raw)
        transcript.update(raw)
    content = sig.certificate_verify_content(transcript.digest(), server=True)
    cv = CertificateVerify(choice.scheme,
                           sig.sign(choice.scheme, choice.certified.private_key, content))
    raw = cv.serialize()
    io.send_handshake(cv, raw)
    transcript.update(raw)
    fin = finished_for(suite, shts, transcript.digest())
    raw = fin.serialize()
    io.send_handshake(fin, raw)
    transcript.update(raw)

    master = hs.master_secret()
    th = transcript.digest()
    cats = master.client_application_traffic_secret_0(th)
    sats = master.server_application_traffic_secret_0(th)
    ems = master.exporter_master_secret(th)
    announce(io, "client_application_traffic_secret_0", cats)
    announce(io, "server_application_traffic_secret_0", sats)
    announce(io, "exporter_master_secret", ems)
    io.set_write(encrypter(suite, sats), Epoch.APPLICATION)
    info = HandshakeInfo(
        version=ProtocolVersion.TLS13,
        cipher_suite=CipherSuite(suite.suite),
        group=choice.group,
        signature_scheme=choice.scheme,
        alpn=choice.alpn,
        server_name=choice.server_name,
        hello_retry_request=hrr,
        resumed=False,
        client_random=ch.random,
    )
    pha = any(e.extension_type == ExtensionType.POST_HANDSHAKE_AUTH for e in ch.extensions)
    then = ExpectClientFinished(suite, transcript, master, chts, cats, sats, ems, info,
                                post_handshake_auth=pha)
    if io.config.client_auth != "none":
        return ExpectClientCertificate(then, require=io.config.client_auth == "require")
    return then


def certificate_request(cfg: ServerConfig) -> CertificateRequest:
    """RFC 8446 §4.3.2: an empty context during the handshake; signature_algorithms is
    mandatory; certificate_authorities tells the client which CAs we accept."""
    exts: list[ext.Extension] = [ext.SignatureAlgorithms(cfg.signature_schemes)]
    cas = certificate_authorities(cfg)
    if cas:
        exts.append(ext.CertificateAuthorities(cas))
    return CertificateRequest(b"", tuple(exts))


class ExpectClientCertificate(Tls13Handshaking[ServerIO]):
    """Mutual TLS: the client's Certificate (RFC 8446 §4.4.2), possibly empty."""

    expects = frozenset({HandshakeType.CERTIFICATE})
    version = ProtocolVersion.TLS13

    def __init__(self, then: ExpectClientFinished, *, require: bool) -> None:
        self.then = then
        self.require = require

    def handle(self, io: ServerIO, msg_type: HandshakeType, body: memoryview,
               raw: bytes) -> State[ServerIO]:
        cert = Certificate.parse_body(body)
        io.received(cert, raw)
        if cert.certificate_request_context:
            # RFC 8446 §4.4.2: the context of our CertificateRequest (empty) is echoed.
            raise IllegalParameter("the client's Certificate does not echo the "
                                   "certificate_request_context (empty in the handshake)")
        transcript = self.then.transcript
        transcript.update(raw)
        chain = tuple(e.cert_data for e in cert.certificate_list)
        if not chain:
            if self.require:
                # RFC 8446 §4.4.2.4: abort with certificate_required.
                io.check("client certificate", False, "the client sent none")
                raise CertificateRequired(
                    "the client sent no certificate, but this server requires one")
            io.check("client certificate", False, "the client sent none (optional)")
            return self.then
        accepted = accept_client_chain(io, chain)
        return ExpectClientCertificateVerify(self.then, accepted)


class ExpectClientCertificateVerify(Tls13Handshaking[ServerIO]):
    """Mutual TLS: the client proves its key (RFC 8446 §4.4.3)."""

    expects = frozenset({HandshakeType.CERTIFICATE_VERIFY})
    version = ProtocolVersion.TLS13

    def __init__(self, then: ExpectClientFinished, chain: ChainAccepted) -> None:
        self.then = then
        self.chain = chain

    def handle(self, io: ServerIO, msg_type: HandshakeType, body: memoryview,
               raw: bytes) -> State[ServerIO]:
        cv = CertificateVerify.parse_body(body)
        io.received(cv, raw)
        then = self.then
        content = sig.certificate_verify_content(then.transcript.digest(), server=False)
        verify_signature(io, self.chain, cv.algorithm, io.config.signature_schemes, content,
                         cv.signature, tls13=True, what="client CertificateVerify",
                         signer="client")
        then.transcript.update(raw)
        then.info = replace(then.info, client_certificates=self.chain.chain,
                            client_certificate_verified=self.chain.verified is not None)
        return then


class ExpectClientFinished(Tls13Handshaking[ServerIO]):
    expects = frozenset({HandshakeType.FINISHED})
    version = ProtocolVersion.TLS13

    def __init__(self, suite: SuiteInfo, transcript: Transcript,
                 master: schedule13.MasterSecret, chts: bytes, cats: bytes, sats: bytes,
                 ems: bytes, info: HandshakeInfo, *, post_handshake_auth: bool = False
                 ) -> None:
        self.suite, self.transcript, self.master = suite, transcript, master
        self.chts, self.cats, self.sats, self.ems = chts, cats, sats, ems
        self.info = info
        self.post_handshake_auth = post_handshake_auth  # the client offered it

    def handle(self, io: ServerIO, msg_type: HandshakeType, body: memoryview,
               raw: bytes) -> State[ServerIO]:
        fin = Finished.parse_body(body)
        io.received(fin, raw)
        verify_finished(io, self.suite, self.chts, self.transcript.digest(), fin, "client")
        self.transcript.update(raw)
        rms = self.master.resumption_master_secret(self.transcript.digest())
        io.set_read(decrypter(self.suite, self.cats), Epoch.APPLICATION)
        io.emit(HandshakeComplete(self.info))
        io.handshake_done()
        return Connected13(TrafficSecrets(self.suite, read_secret=self.cats,
                                          write_secret=self.sats),
                           is_client=False, resumption_master_secret=rms,
                           exporter_master_secret=self.ems,
                           # RFC 8446 §4.6.2 / §4.4.1: the transcript through the client
                           # Finished, for post-handshake authentication.
                           transcript=(self.transcript.copy() if self.post_handshake_auth
                                       else None))



"""The TLS 1.3 client handshake (RFC 8446 §2, §4), one class per state.

    ClientHello ─► ExpectServerHello ─(HRR)─► ExpectServerHello
                   └─► ExpectEncryptedExtensions ─► ExpectCertificateOrRequest
                       ─► ExpectCertificate ─► ExpectCertificateVerify ─► ExpectFinished
                       ─► Connected13
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from tlsmith.codec import extensions as ext
from tlsmith.codec.enums import (
    CipherSuite,
    ExtensionType,
    HandshakeType,
    NamedGroup,
    ProtocolVersion,
    PskKeyExchangeMode,
    SignatureScheme,
)
from tlsmith.codec.messages import (
    DOWNGRADE_TLS11,
    DOWNGRADE_TLS12,
    Certificate,
    CertificateRequest,
    CertificateVerify,
    ClientHello,
    EncryptedExtensions,
    Finished,
    ServerHello,
)
from tlsmith.crypto import schedule13, sig
from tlsmith.crypto.kx import KeyShareSecret, generate_key_share
from tlsmith.crypto.suites import SuiteInfo, suite_info
from tlsmith.crypto.transcript import Transcript
from tlsmith.errors import (
    DecodeError,
    IllegalParameter,
    MissingExtension,
    ProtocolVersionError,
    UnexpectedMessage,
)
from tlsmith.events import HandshakeComplete, HandshakeInfo
from tlsmith.handshake.base import ClientIO, HandshakeIO, State, check_server_extensions
from tlsmith.handshake.common13 import (
    Connected13,
    TrafficSecrets,
    announce,
    decrypter,
    encrypter,
    finished_for,
    verify_finished,
)
from tlsmith.x509.leaf import leaf_public_key
from tlsmith.x509.verify import VerifiedChain, verify_server_chain


def _sni_name(name: str | None) -> str | None:
    """RFC 6066 §3: literal IP addresses are not permitted in server_name."""
    if not name:
        return None
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return name.rstrip(".")
    return None


@dataclass(frozen=True)
class Negotiated:
    """What the ServerHello fixed; carried by the later states."""

    suite: SuiteInfo
    group: NamedGroup
    hello_retry_request: bool
    alpn: str | None = None


@dataclass(frozen=True)
class ChainAccepted:
    """Proof that the server's chain was checked (or that the caller turned checks off)."""

    verified: VerifiedChain | None
    chain: tuple[bytes, ...]


@dataclass(frozen=True)
class ServerSignatureVerified:
    """Proof that CertificateVerify was checked against the accepted chain's leaf."""

    chain: ChainAccepted
    scheme: SignatureScheme


class ClientStart:
    """Builds and sends the first ClientHello."""

    @staticmethod
    def begin(io: ClientIO) -> ExpectServerHello:
        cfg = io.config
        client_random = io.random(32)
        # RFC 8446 §D.4: middlebox compatibility mode sends a non-empty session id.
        session_id = io.random(32) if cfg.middlebox_compat else b""
        shares = {g: generate_key_share(g, io.random) for g in cfg.key_share_groups}
        hello = build_client_hello(io, client_random, session_id, shares, cookie=None)
        transcript = Transcript()
        raw = hello.serialize()
        transcript.update(raw)
        io.send_handshake(hello, raw)
        return ExpectServerHello(hello, shares, transcript, hrr=None)


def build_client_hello(
    io: ClientIO, client_random: bytes, session_id: bytes,
    shares: dict[NamedGroup, KeyShareSecret], cookie: bytes | None,
) -> ClientHello:
    cfg = io.config
    extensions: list[ext.Extension] = []
    sni = _sni_name(cfg.server_name)
    if sni:
        extensions.append(ext.ServerName(sni))
    extensions += [
        ext.SupportedVersionsClientHello(tuple(
            ProtocolVersion(v) for v in sorted(cfg.versions, reverse=True))),
        ext.SupportedGroups(tuple(cfg.groups)),
        ext.SignatureAlgorithms(tuple(cfg.signature_schemes)),
        ext.KeyShareClientHello(tuple(
            ext.KeyShareEntry(g, s.public_bytes) for g, s in shares.items())),
        ext.PskKeyExchangeModes((PskKeyExchangeMode.PSK_DHE_KE,)),
    ]
    if cfg.alpn_protocols:
        extensions.append(ext.ApplicationLayerProtocolNegotiation(
            tuple(p.encode() for p in cfg.alpn_protocols)))
    if cookie is not None:
        extensions.append(ext.Cookie(cookie))
    return ClientHello(
        legacy_version=ProtocolVersion.TLS12,
        random=client_random,
        legacy_session_id=session_id,
        cipher_suites=tuple(cfg.cipher_suites),
        legacy_compression_methods=(0,),
        extensions=tuple(extensions),
    )


def _offered(hello: ClientHello) -> frozenset[ExtensionType]:
    return frozenset(ExtensionType(e.extension_type) for e in hello.extensions)


class ExpectServerHello(State):
    expects = frozenset({HandshakeType.SERVER_HELLO})

    def __init__(self, hello: ClientHello, shares: dict[NamedGroup, KeyShareSecret],
                 transcript: Transcript, hrr: ServerHello | None) -> None:
        self.hello = hello
        self.shares = shares
        self.transcript = transcript
        self.hrr = hrr

    def handle(self, io: HandshakeIO, msg_type: HandshakeType, body: memoryview,
               raw: bytes) -> State:
        sh = ServerHello.parse_body(body)
        io.received(sh, raw)
        cio: ClientIO = io  # type: ignore[assignment]
        cfg = cio.config
        selected = ext.find_extension(sh.extensions, ext.SupportedVersionsServerHello)
        if selected is None:
            # RFC 8446 §4.1.3: a TLS 1.3 client that receives a TLS 1.2-or-below
            # ServerHello carrying a downgrade sentinel MUST abort (illegal_parameter).
            if sh.random[-8:] in (DOWNGRADE_TLS12, DOWNGRADE_TLS11):
                raise IllegalParameter(
                    "the server's random carries the TLS 1.3 downgrade sentinel: something "
                    "between us and the server removed TLS 1.3 (RFC 8446 §4.1.3)")
            raise ProtocolVersionError(
                f"the server chose {ProtocolVersion(sh.legacy_version).label}, but this "
                "client only allows TLS 1.3")
        # RFC 8446 §4.1.3 / §4.2.1: only a version we offered, and never below TLS 1.3.
        if (selected.selected_version != ProtocolVersion.TLS13
                or ProtocolVersion.TLS13 not in cfg.versions):
            raise IllegalParameter(
                f"the server selected {ProtocolVersion(selected.selected_version).label}, "
                "which the client did not offer")
        if sh.legacy_version != ProtocolVersion.TLS12:
            raise IllegalParameter("ServerHello.legacy_version must be 0x0303 in TLS 1.3")
        # RFC 8446 §4.1.3: legacy_session_id_echo must echo ours.
        if sh.legacy_session_id_echo != self.hello.legacy_session_id:
            raise IllegalParameter("the server did not echo our legacy_session_id")
        if sh.cipher_suite not in self.hello.cipher_suites:
            raise IllegalParameter(
                f"the server chose {CipherSuite(sh.cipher_suite).name}, which we did not offer")
        info = suite_info(sh.cipher_suite)
        if info is None or not info.tls13:
            raise IllegalParameter(f"{CipherSuite(sh.cipher_suite).name} is not a TLS 1.3 suite")
        if sh.legacy_compression_method != 0:
            raise IllegalParameter("legacy_compression_method must be 0 in TLS 1.3")
        if sh.is_hello_retry_request:
            return self._hello_retry(cio, sh, raw, info)
        check_server_extensions(sh.extensions, "SH", _offered(self.hello))
        if self.hrr is not None and sh.cipher_suite != self.hrr.cipher_suite:
            # RFC 8446 §4.1.4: the suite in ServerHello must match the HRR's.
            raise IllegalParameter("ServerHello's cipher suite differs from the "
                                   "HelloRetryRequest's")
        key_share = ext.find_extension(sh.extensions, ext.KeyShareServerHello)
        if key_share is None:
            # RFC 8446 §9.2: without a PSK, key_share is mandatory.
            raise MissingExtension("the ServerHello has no key_share (PSK-only handshakes "
                                   "were not offered)")
        if ext.find_extension(sh.extensions, ext.PreSharedKeyServerHello) is not None:
            raise IllegalParameter("the server accepted a PSK we never offered")
        group = key_share.server_share.group
        secret = self.shares.get(group)
        if secret is None:
            # RFC 8446 §4.2.8: the server's share must be in a group we sent a share for.
            raise IllegalParameter(
                f"the server answered with a {NamedGroup(group).name} key share, but the "
                "client sent no share for that group")
        shared = secret.exchange(key_share.server_share.key_exchange)
        if self.hrr is None:
            self.transcript.set_hash(info.hash_name)
        self.transcript.update(raw)
        early = schedule13.EarlySecret.derive(info.hash_name, None)
        hs = early.handshake_secret(shared)
        th = self.transcript.digest()
        chts = hs.client_handshake_traffic_secret(th)
        shts = hs.server_handshake_traffic_secret(th)
        announce(io, "client_handshake_traffic_secret", chts)
        announce(io, "server_handshake_traffic_secret", shts)
        io.set_read(decrypter(info, shts), "handshake")
        # Alerts from here on are protected with our handshake key, as OpenSSL does.
        io.set_write(encrypter(info, chts), "handshake")
        io.note(f"negotiated TLS 1.3 with {CipherSuite(info.suite).name} over "
                f"{NamedGroup(group).name}")
        neg = Negotiated(info, NamedGroup(group), self.hrr is not None)
        return ExpectEncryptedExtensions(self.hello, neg, self.transcript, hs, chts, shts)

    def _hello_retry(self, io: ClientIO, hrr: ServerHello, raw: bytes,
                     info: SuiteInfo) -> State:
        """RFC 8446 §4.1.4: a new ClientHello with the requested share (and cookie)."""
        if self.hrr is not None:
            raise UnexpectedMessage("the server sent a second HelloRetryRequest "
                                    "(RFC 8446 §4.1.4 allows one)")
        check_server_extensions(hrr.extensions, "HRR", _offered(self.hello))
        ks = ext.find_extension(hrr.extensions, ext.KeyShareHelloRetryRequest)
        cookie = ext.find_extension(hrr.extensions, ext.Cookie)
        if ks is None and cookie is None:
            raise IllegalParameter("a HelloRetryRequest that would not change the "
                                   "ClientHello (RFC 8446 §4.1.4)")
        shares = self.shares
        if ks is not None:
            group = ks.selected_group
            if group not in io.config.groups:
                raise IllegalParameter(
                    f"the HelloRetryRequest asks for {NamedGroup(group).name}, which we "
                    "did not list in supported_groups (RFC 8446 §4.2.8)")
            if group in self.shares:
                raise IllegalParameter(
                    f"the HelloRetryRequest asks for {NamedGroup(group).name}, for which "
                    "we already sent a key share (RFC 8446 §4.2.8)")
            shares = {NamedGroup(group): generate_key_share(NamedGroup(group), io.random)}
            io.note(f"server asked for a new key share: {NamedGroup(group).name}")
        self.transcript.set_hash(info.hash_name)
        self.transcript.restart_for_hello_retry_request()
        self.transcript.update(raw)
        hello2 = build_client_hello(io, self.hello.random, self.hello.legacy_session_id,
                                    shares, cookie.cookie if cookie else None)
        raw2 = hello2.serialize()
        self.transcript.update(raw2)
        if io.config.middlebox_compat:
            io.send_change_cipher_spec()  # RFC 8446 §D.4: before the second ClientHello
        io.send_handshake(hello2, raw2)
        return ExpectServerHello(hello2, shares, self.transcript, hrr=hrr)


class ExpectEncryptedExtensions(State):
    expects = frozenset({HandshakeType.ENCRYPTED_EXTENSIONS})

    def __init__(self, hello: ClientHello, neg: Negotiated, transcript: Transcript,
                 hs: schedule13.HandshakeSecret, chts: bytes, shts: bytes) -> None:
        self.hello, self.neg, self.transcript = hello, neg, transcript
        self.hs, self.chts, self.shts = hs, chts, shts

    def handle(self, io: HandshakeIO, msg_type: HandshakeType, body: memoryview,
               raw: bytes) -> State:
        ee = EncryptedExtensions.parse_body(body)
        io.received(ee, raw)
        check_server_extensions(ee.extensions, "EE", _offered(self.hello))
        alpn = None
        chosen = ext.find_extension(ee.extensions, ext.ApplicationLayerProtocolNegotiation)
        if chosen is not None:
            offered = ext.find_extension(self.hello.extensions,
                                         ext.ApplicationLayerProtocolNegotiation)
            # RFC 7301 §3.1: exactly one protocol, and one the client offered.
            if (len(chosen.protocol_name_list) != 1 or offered is None
                    or chosen.protocol_name_list[0] not in offered.protocol_name_list):
                raise IllegalParameter("the server selected an ALPN protocol we did not offer")
            alpn = chosen.protocol_name_list[0].decode("ascii", "replace")
        self.transcript.update(raw)
        neg = replace(self.neg, alpn=alpn)
        return ExpectCertificateOrRequest(self.hello, neg, self.transcript, self.hs,
                                          self.chts, self.shts)


class ExpectCertificateOrRequest(State):
    expects = frozenset({HandshakeType.CERTIFICATE, HandshakeType.CERTIFICATE_REQUEST})

    def __init__(self, hello: ClientHello, neg: Negotiated, transcript: Transcript,
                 hs: schedule13.HandshakeSecret, chts: bytes, shts: bytes,
                 cert_request: CertificateRequest | None = None) -> None:
        self.hello, self.neg, self.transcript = hello, neg, transcript
        self.hs, self.chts, self.shts = hs, chts, shts
        self.cert_request = cert_request

    def handle(self, io: HandshakeIO, msg_type: HandshakeType, body: memoryview,
               raw: bytes) -> State:
        cio: ClientIO = io  # type: ignore[assignment]
        if msg_type == HandshakeType.CERTIFICATE_REQUEST:
            req = CertificateRequest.parse_body(body)
            io.received(req, raw)
            check_server_extensions(req.extensions, "CR", _offered(self.hello))
            # RFC 8446 §4.3.2: in the handshake the context is empty; signature_algorithms
            # is mandatory.
            if req.certificate_request_context:
                raise IllegalParameter("CertificateRequest context must be empty during "
                                       "the handshake")
            if ext.find_extension(req.extensions, ext.SignatureAlgorithms) is None:
                raise MissingExtension("CertificateRequest without signature_algorithms")
            self.transcript.update(raw)
            nxt = ExpectCertificateOrRequest(self.hello, self.neg, self.transcript, self.hs,
                                             self.chts, self.shts, cert_request=req)
            nxt.expects = frozenset({HandshakeType.CERTIFICATE})
            io.note("the server asks for a client certificate; we will send none")
            return nxt
        cert = Certificate.parse_body(body)
        io.received(cert, raw)
        if cert.certificate_request_context:
            raise IllegalParameter("the server's Certificate must have an empty context")
        if not cert.certificate_list:
            # RFC 8446 §4.4.2.4: an empty server Certificate is a decode_error.
            raise DecodeError("the server sent an empty Certificate message")
        offered = _offered(self.hello)
        for entry in cert.certificate_list:
            # RFC 8446 §4.4.2: entry extensions must answer ones from the ClientHello.
            check_server_extensions(entry.extensions, "CT", offered)
        chain = tuple(entry.cert_data for entry in cert.certificate_list)
        cfg = cio.config
        verified: VerifiedChain | None = None
        if cfg.verify_certificates:
            assert cfg.trust is not None
            try:
                verified = verify_server_chain(
                    chain, trust=cfg.trust, server_name=cfg.server_name,
                    now=datetime.fromtimestamp(io.now(), tz=UTC))
            except Exception as exc:
                io.check("certificate chain", False, str(exc))
                raise
            io.check("certificate chain", True,
                     f"chains to a trusted root and is valid for {cfg.server_name!r}")
        else:
            io.check("certificate chain", True, "NOT checked (verification disabled)")
        self.transcript.update(raw)
        return ExpectCertificateVerify(self, ChainAccepted(verified, chain))


class ExpectCertificateVerify(State):
    expects = frozenset({HandshakeType.CERTIFICATE_VERIFY})

    def __init__(self, prev: ExpectCertificateOrRequest, chain: ChainAccepted) -> None:
        self.prev = prev
        self.chain = chain

    def handle(self, io: HandshakeIO, msg_type: HandshakeType, body: memoryview,
               raw: bytes) -> State:
        p = self.prev
        cv = CertificateVerify.parse_body(body)
        io.received(cv, raw)
        offered = ext.find_extension(p.hello.extensions, ext.SignatureAlgorithms)
        assert offered is not None
        # RFC 8446 §4.4.3: the scheme must be one the client offered.
        if cv.algorithm not in offered.supported_signature_algorithms:
            raise IllegalParameter(
                f"the server signed with {SignatureScheme(cv.algorithm).name}, "
                "which the client did not offer")
        key = leaf_public_key(self.chain.chain[0])
        if not sig.scheme_matches_key(cv.algorithm, key, tls13=True):
            raise IllegalParameter(
                f"{SignatureScheme(cv.algorithm).name} does not fit the certificate's key")
        content = sig.certificate_verify_content(p.transcript.digest(), server=True)
        try:
            sig.verify(cv.algorithm, key, content, cv.signature)
        except Exception as exc:
            io.check("server CertificateVerify", False, str(exc))
            raise
        io.check("server CertificateVerify", True,
                 f"{SignatureScheme(cv.algorithm).name} signature over the transcript is valid")
        p.transcript.update(raw)
        return ExpectFinished(p, ServerSignatureVerified(self.chain, cv.algorithm))


class ExpectFinished(State):
    expects = frozenset({HandshakeType.FINISHED})

    def __init__(self, prev: ExpectCertificateOrRequest, proof: ServerSignatureVerified
                 ) -> None:
        self.prev = prev
        self.proof = proof

    def handle(self, io: HandshakeIO, msg_type: HandshakeType, body: memoryview,
               raw: bytes) -> State:
        p = self.prev
        suite = p.neg.suite
        fin = Finished.parse_body(body)
        io.received(fin, raw)
        verify_finished(io, suite, p.shts, p.transcript.digest(), fin, "server")
        p.transcript.update(raw)
        master = p.hs.master_secret()
        th = p.transcript.digest()
        cats = master.client_application_traffic_secret_0(th)
        sats = master.server_application_traffic_secret_0(th)
        ems = master.exporter_master_secret(th)
        announce(io, "client_application_traffic_secret_0", cats)
        announce(io, "server_application_traffic_secret_0", sats)
        announce(io, "exporter_master_secret", ems)
        io.set_read(decrypter(suite, sats), "application")
        cio: ClientIO = io  # type: ignore[assignment]
        if cio.config.middlebox_compat and p.neg.hello_retry_request is False:
            io.send_change_cipher_spec()  # RFC 8446 §D.4
        if p.cert_request is not None:
            # RFC 8446 §4.4.2: no suitable certificate -> an empty Certificate message.
            empty = Certificate(p.cert_request.certificate_request_context, ())
            raw_c = empty.serialize()
            io.send_handshake(empty, raw_c)
            p.transcript.update(raw_c)
        client_fin = finished_for(suite, p.chts, p.transcript.digest())
        raw_f = client_fin.serialize()
        io.send_handshake(client_fin, raw_f)
        p.transcript.update(raw_f)
        rms = master.resumption_master_secret(p.transcript.digest())
        io.set_write(encrypter(suite, cats), "application")
        sh_scheme = self.proof.scheme
        io.emit(HandshakeComplete(HandshakeInfo(
            version="TLSv1.3",
            cipher_suite=CipherSuite(suite.suite),
            group=p.neg.group,
            signature_scheme=sh_scheme,
            alpn=p.neg.alpn,
            server_name=_sni_name(cio.config.server_name),
            hello_retry_request=p.neg.hello_retry_request,
            resumed=False,
            peer_certificates=self.proof.chain.chain,
            certificate_verified=self.proof.chain.verified is not None,
            client_random=p.hello.random,
        )))
        io.handshake_done()
        return Connected13(TrafficSecrets(suite, read_secret=sats, write_secret=cats),
                           is_client=True, resumption_master_secret=rms,
                           exporter_master_secret=ems)

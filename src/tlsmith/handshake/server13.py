"""The TLS 1.3 server handshake (RFC 8446 §2, §4), one class per state.

    ExpectClientHello ─(no usable share)─► HelloRetryRequest ─► ExpectClientHelloAgain
      └─► ServerHello, EE, Certificate, CertificateVerify, Finished (one flight)
          ─► ExpectClientFinished ─► Connected13
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, replace

from tlsmith.codec import extensions as ext
from tlsmith.codec.enums import (
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
    HandshakeFailure,
    IllegalParameter,
    MissingExtension,
    NoApplicationProtocol,
    ProtocolVersionError,
)
from tlsmith.events import HandshakeComplete, HandshakeInfo
from tlsmith.handshake.base import ALLOWED_IN, HandshakeIO, ServerIO, State
from tlsmith.handshake.common13 import (
    Connected13,
    TrafficSecrets,
    announce,
    decrypter,
    encrypter,
    finished_for,
    verify_finished,
)
from tlsmith.x509.leaf import name_matches

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


def _check_client_hello(ch: ClientHello) -> None:
    """Every MUST of RFC 8446 §4.1.2 / §4.2 / §9.2 that does not depend on our config."""
    for e in ch.extensions:
        allowed = ALLOWED_IN.get(ExtensionType(e.extension_type))
        if allowed is not None and "CH" not in allowed:
            raise IllegalParameter(
                f"the {ExtensionType(e.extension_type).name} extension is not allowed in "
                "ClientHello")
    versions = ext.find_extension(ch.extensions, ext.SupportedVersionsClientHello)
    if versions is None or ProtocolVersion.TLS13 not in versions.versions:
        offered = ProtocolVersion(ch.legacy_version).label
        raise ProtocolVersionError(
            f"the client offers at most {offered}; this server speaks TLS 1.3 only")
    # RFC 8446 §4.1.2: exactly one compression method, null.
    if tuple(ch.legacy_compression_methods) != (0,):
        raise IllegalParameter("a TLS 1.3 ClientHello must offer only null compression")
    psk = ext.find_extension(ch.extensions, ext.PreSharedKeyClientHello)
    if psk is not None and ext.find_extension(ch.extensions, ext.PskKeyExchangeModes) is None:
        # RFC 8446 §4.2.9: pre_shared_key requires psk_key_exchange_modes.
        raise MissingExtension("pre_shared_key offered without psk_key_exchange_modes")
    groups = ext.find_extension(ch.extensions, ext.SupportedGroups)
    shares = ext.find_extension(ch.extensions, ext.KeyShareClientHello)
    # RFC 8446 §9.2: supported_groups and key_share come together.
    if (groups is None) != (shares is None):
        raise MissingExtension("ClientHello must carry both supported_groups and key_share, "
                               "or neither")
    if ext.find_extension(ch.extensions, ext.SignatureAlgorithms) is None:
        # RFC 8446 §9.2: a certificate-authenticated handshake needs signature_algorithms.
        raise MissingExtension("ClientHello has no signature_algorithms extension")
    if groups is None or shares is None:
        raise MissingExtension("ClientHello has no key_share; PSK-only handshakes are not "
                               "supported")
    seen: set[int] = set()
    for entry in shares.client_shares:
        # RFC 8446 §4.2.8: each share's group is in supported_groups, at most once.
        if entry.group in seen:
            raise IllegalParameter(f"two key shares for {NamedGroup(entry.group).name}")
        if entry.group not in groups.named_group_list:
            raise IllegalParameter(
                f"key share for {NamedGroup(entry.group).name}, which is not in "
                "supported_groups")
        seen.add(entry.group)


def _choose(cfg: ServerConfig, ch: ClientHello) -> Choice:
    client_suites = set(ch.cipher_suites)
    order = (cfg.cipher_suites if cfg.prefer_server_cipher_order
             else tuple(s for s in ch.cipher_suites if s in cfg.cipher_suites))
    info = next((i for s in order if s in client_suites
                 and (i := suite_info(s)) is not None and i.tls13), None)
    if info is None:
        raise HandshakeFailure(
            "no cipher suite in common: the client offers "
            + ", ".join(CipherSuite(s).name for s in ch.cipher_suites))
    groups = ext.find_extension(ch.extensions, ext.SupportedGroups)
    shares = ext.find_extension(ch.extensions, ext.KeyShareClientHello)
    assert groups is not None and shares is not None
    by_group = {NamedGroup(e.group): e.key_exchange for e in shares.client_shares}
    usable = [g for g in cfg.groups if group_available(g)]
    group = next((g for g in usable if g in by_group), None)
    if group is None:
        group = next((g for g in usable if g in groups.named_group_list), None)
        if group is None:
            raise HandshakeFailure(
                "no key-exchange group in common: the client supports "
                + ", ".join(NamedGroup(g).name for g in groups.named_group_list))
    sni_ext = ext.find_extension(ch.extensions, ext.ServerName)
    server_name = sni_ext.host_name if sni_ext else None
    certified, scheme, matched = _choose_certificate(cfg, ch, server_name)
    return Choice(info, group, by_group.get(group), certified, scheme,
                  _choose_alpn(cfg, ch), server_name, matched)


def _choose_certificate(cfg: ServerConfig, ch: ClientHello, server_name: str | None
                        ) -> tuple[CertifiedKey, SignatureScheme, bool]:
    """A certificate whose key can sign with a scheme the client accepts, preferring one
    whose names match SNI (RFC 8446 §4.4.2.2)."""
    algs = ext.find_extension(ch.extensions, ext.SignatureAlgorithms)
    assert algs is not None
    client_schemes = list(algs.supported_signature_algorithms)
    fallback: tuple[CertifiedKey, SignatureScheme] | None = None
    for ck in cfg.certificates:
        ours = ck.tls13_schemes
        scheme = next((SignatureScheme(s) for s in client_schemes
                       if s in ours and s in cfg.signature_schemes), None)
        if scheme is None:
            continue
        if server_name and any(name_matches(n, server_name) for n in ck.names):
            return ck, scheme, True
        if fallback is None:
            fallback = (ck, scheme)
    if fallback is None:
        raise HandshakeFailure(
            "none of our certificates can sign with a scheme the client accepts ("
            + ", ".join(SignatureScheme(s).name for s in client_schemes) + ")")
    return fallback[0], fallback[1], False


def _choose_alpn(cfg: ServerConfig, ch: ClientHello) -> str | None:
    offered = ext.find_extension(ch.extensions, ext.ApplicationLayerProtocolNegotiation)
    if offered is None or not cfg.alpn_protocols:
        return None
    for proto in cfg.alpn_protocols:
        if proto.encode() in offered.protocol_name_list:
            return proto
    # RFC 7301 §3.2: no overlap -> no_application_protocol.
    raise NoApplicationProtocol(
        "no ALPN protocol in common: the client offers "
        + ", ".join(p.decode("ascii", "replace") for p in offered.protocol_name_list))


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


class ExpectClientHello(State):
    expects = frozenset({HandshakeType.CLIENT_HELLO})

    def handle(self, io: HandshakeIO, msg_type: HandshakeType, body: memoryview,
               raw: bytes) -> State:
        sio: ServerIO = io  # type: ignore[assignment]
        ch = ClientHello.parse_body(body)
        io.received(ch, raw)
        _check_client_hello(ch)
        choice = _choose(sio.config, ch)
        transcript = Transcript()
        transcript.set_hash(choice.suite.hash_name)
        transcript.update(raw)
        if choice.client_share is None:
            return self._retry(sio, ch, choice, transcript)
        return send_server_flight(sio, ch, choice, transcript, hrr=False, ccs_sent=False)

    def _retry(self, io: ServerIO, ch: ClientHello, choice: Choice, transcript: Transcript
               ) -> State:
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


class ExpectClientHelloAgain(State):
    """The second ClientHello, after our HelloRetryRequest (RFC 8446 §4.1.2, §4.1.4)."""

    expects = frozenset({HandshakeType.CLIENT_HELLO})

    def __init__(self, first: ClientHello, *, ccs_sent: bool) -> None:
        self.first = first
        self.ccs_sent = ccs_sent

    def handle(self, io: HandshakeIO, msg_type: HandshakeType, body: memoryview,
               raw: bytes) -> State:
        sio: ServerIO = io  # type: ignore[assignment]
        ch = ClientHello.parse_body(body)
        io.received(ch, raw)
        _check_client_hello(ch)
        cookie = ext.find_extension(ch.extensions, ext.Cookie)
        if cookie is None:
            raise MissingExtension("the second ClientHello must echo our cookie")
        suite, group, ch1_hash = _open_cookie(sio.config.cookie_secret, cookie.cookie)
        # RFC 8446 §4.1.2: the client must resend the same hello except for the allowed
        # changes (key_share, cookie, early_data removal, padding).
        if (ch.random != self.first.random
                or ch.legacy_session_id != self.first.legacy_session_id
                or ch.cipher_suites != self.first.cipher_suites):
            raise IllegalParameter("the second ClientHello differs from the first in more "
                                   "than the key share and cookie")
        if ext.find_extension(ch.extensions, ext.EarlyDataIndication) is not None:
            raise IllegalParameter("early_data in the ClientHello after a HelloRetryRequest")
        shares = ext.find_extension(ch.extensions, ext.KeyShareClientHello)
        assert shares is not None
        if len(shares.client_shares) != 1 or shares.client_shares[0].group != group:
            raise IllegalParameter(
                f"after the HelloRetryRequest the client must send exactly one {group.name} "
                "key share (RFC 8446 §4.1.4)")
        choice = _choose(sio.config, ch)
        if choice.suite.suite != suite:
            raise IllegalParameter("the cipher suite changed across the HelloRetryRequest")
        choice = replace(choice, group=group,
                         client_share=shares.client_shares[0].key_exchange)
        transcript = Transcript()
        transcript.set_hash(choice.suite.hash_name)
        transcript.update(message_hash(ch1_hash))  # RFC 8446 §4.4.1
        hrr = _hrr(ch.legacy_session_id, suite, group, cookie.cookie)
        transcript.update(hrr.serialize())
        transcript.update(raw)
        return send_server_flight(sio, ch, choice, transcript, hrr=True,
                                  ccs_sent=self.ccs_sent)


def send_server_flight(io: ServerIO, ch: ClientHello, choice: Choice, transcript: Transcript,
                       *, hrr: bool, ccs_sent: bool) -> State:
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
    early = schedule13.EarlySecret.derive(suite.hash_name, None)
    hs = early.handshake_secret(shared)
    th = transcript.digest()
    chts = hs.client_handshake_traffic_secret(th)
    shts = hs.server_handshake_traffic_secret(th)
    announce(io, "client_handshake_traffic_secret", chts)
    announce(io, "server_handshake_traffic_secret", shts)
    io.set_write(encrypter(suite, shts), "handshake")
    io.set_read(decrypter(suite, chts), "handshake")

    ee_exts: list[ext.Extension] = []
    if choice.server_name and choice.sni_matched:
        ee_exts.append(ext.ServerName(None))  # RFC 6066 §3: acknowledge the name we used
    if choice.alpn is not None:
        ee_exts.append(ext.ApplicationLayerProtocolNegotiation((choice.alpn.encode(),)))
    for msg in (
        EncryptedExtensions(tuple(ee_exts)),
        Certificate(b"", tuple(CertificateEntry(der, ()) for der in choice.certified.chain)),
    ):
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
    io.set_write(encrypter(suite, sats), "application")
    info = HandshakeInfo(
        version="TLSv1.3",
        cipher_suite=CipherSuite(suite.suite),
        group=choice.group,
        signature_scheme=choice.scheme,
        alpn=choice.alpn,
        server_name=choice.server_name,
        hello_retry_request=hrr,
        resumed=False,
        client_random=ch.random,
    )
    return ExpectClientFinished(suite, transcript, master, chts, cats, sats, ems, info)


class ExpectClientFinished(State):
    expects = frozenset({HandshakeType.FINISHED})

    def __init__(self, suite: SuiteInfo, transcript: Transcript,
                 master: schedule13.MasterSecret, chts: bytes, cats: bytes, sats: bytes,
                 ems: bytes, info: HandshakeInfo) -> None:
        self.suite, self.transcript, self.master = suite, transcript, master
        self.chts, self.cats, self.sats, self.ems = chts, cats, sats, ems
        self.info = info

    def handle(self, io: HandshakeIO, msg_type: HandshakeType, body: memoryview,
               raw: bytes) -> State:
        fin = Finished.parse_body(body)
        io.received(fin, raw)
        verify_finished(io, self.suite, self.chts, self.transcript.digest(), fin, "client")
        self.transcript.update(raw)
        rms = self.master.resumption_master_secret(self.transcript.digest())
        io.set_read(decrypter(self.suite, self.cats), "application")
        io.emit(HandshakeComplete(self.info))
        io.handshake_done()
        return Connected13(TrafficSecrets(self.suite, read_secret=self.cats,
                                          write_secret=self.sats),
                           is_client=False, resumption_master_secret=rms,
                           exporter_master_secret=self.ems)



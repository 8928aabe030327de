"""The TLS 1.3 server handshake (RFC 8446 §2, §4), one class per state.

    server.ExpectClientHello ─(no usable share)─► HelloRetryRequest ─► ExpectClientHelloAgain
      └─► ServerHello, EE, [CertificateRequest], Certificate, CertificateVerify, Finished
          ─► [ExpectClientCertificate ─► (non-empty) ExpectClientCertificateVerify]
          ─► ExpectClientFinished ─► Connected13
"""

from __future__ import annotations

import functools
import hmac
from dataclasses import dataclass, replace
from operator import attrgetter

from tlsmith.codec import extensions as ext
from tlsmith.codec.enums import (
    CertificateStatusType,
    CertificateType,
    CipherSuite,
    ExtensionType,
    HandshakeType,
    NamedGroup,
    ProtocolVersion,
    PskKeyExchangeMode,
    SignatureScheme,
    member,
)
from tlsmith.codec.messages import (
    HELLO_RETRY_REQUEST_RANDOM,
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
    message_hash,
)
from tlsmith.codec.messages_rpk import parse_certificate13_rpk
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
    UnsupportedExtension,
)
from tlsmith.events import HandshakeComplete, HandshakeInfo
from tlsmith.handshake import alps, certtype, psk13
from tlsmith.handshake.base import ServerIO, State, Tls13Handshaking
from tlsmith.handshake.common13 import (
    Connected13,
    TrafficSecrets,
    announce,
    decrypter,
    encrypter,
    handshake_decrypter,
    handshake_encrypter,
    handshake_secrets,
    verify_finished_with_key,
)
from tlsmith.handshake.negotiate import (
    Offered,
    certificate_authorities,
    choose_alpn,
    choose_certificate,
    choose_version,
    issuer_mismatch,
    no_certificate,
    offer,
    staple_for,
    suite_order,
    with_callback_certificates,
)
from tlsmith.handshake.proofs import (
    ChainAccepted,
    accept_client_chain,
    accept_client_raw_key,
    single_raw_key,
    verify_signature,
)
from tlsmith.handshake.psk13 import SelectedPsk
from tlsmith.handshake.server import cached_message, read_client_hello
from tlsmith.observe import Epoch

_COOKIE_LABEL = b"tlsmith hrr cookie v1"


@dataclass(frozen=True)
class Choice:
    """The server's decisions for one ClientHello.

    ``choose`` builds it through its ``__dict__`` (one C call instead of a frozen store
    per field); it gives every field (tests/test_handshake13_states.py holds it to that).
    """

    suite: SuiteInfo
    group: NamedGroup | None  # None: psk_ke
    client_share: bytes | None  # None: HelloRetryRequest needed (or psk_ke)
    certified: CertifiedKey | None  # None: resuming with a PSK (no Certificate)
    scheme: SignatureScheme | None
    alpn: str | None
    server_name: str | None
    sni_matched: bool
    staple: bytes | None = None  # a DER OCSP response for the leaf's CertificateEntry
    psk: SelectedPsk | None = None  # resumption / external PSK, binder verified
    early_data: bool = False  # 0-RTT accepted
    alps: bytes | None = None  # ALPS negotiated: our settings for the ALPN protocol
    # RFC 7250: the ClientHello's certificate type lists (None: absent).
    server_cert_types: tuple[CertificateType, ...] | None = None
    client_cert_types: tuple[CertificateType, ...] | None = None


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
    if offered.signature_schemes is None and offered.psk is None:
        # RFC 8446 §9.2: a certificate-authenticated handshake needs signature_algorithms.
        raise MissingExtension("ClientHello has no signature_algorithms extension")
    if groups is None or shares is None:
        if offered.psk is None:
            raise MissingExtension("ClientHello has neither key_share nor pre_shared_key")
        return  # a PSK-only (psk_ke) ClientHello
    seen: set[int] = set()
    for entry in shares:
        # RFC 8446 §4.2.8: each share's group is in supported_groups, at most once.
        if entry.group in seen:
            raise IllegalParameter(f"two key shares for {NamedGroup(entry.group).name}",
                                   check="duplicate_key_share")
        if entry.group not in groups:
            raise IllegalParameter(
                f"key share for {NamedGroup(entry.group).name}, which is not in "
                "supported_groups", check="key_share_group_not_offered")
        seen.add(entry.group)


# choose_suite's and choose_group's answers, by configuration and the lists of the hello
# they read: a server sees the same few offers from every client of one kind. Keyed by
# id() of the configuration, which is kept alongside so the id cannot be reused while
# listed; bounded (the peer chooses the lists), emptied when full. Errors are raised anew.
_SUITE_CHOICES: dict[tuple[int, tuple[CipherSuite, ...]], tuple[ServerConfig, SuiteInfo]] = {}
_GROUP_CHOICES: dict[tuple[int, tuple[NamedGroup, ...], tuple[NamedGroup, ...]],
                     tuple[ServerConfig, NamedGroup]] = {}
_CHOICES_MAX = 1024
_GROUP_OF = attrgetter("group")
_new_object = object.__new__
_KEY_EXCHANGE_OF = attrgetter("key_exchange")


def choose_suite(cfg: ServerConfig, offered: Offered) -> SuiteInfo:
    key = (id(cfg), offered.suites)
    hit = _SUITE_CHOICES.get(key)
    if hit is not None and hit[0] is cfg:
        return hit[1]
    client_suites = set(offered.suites)
    order = suite_order(cfg, offered)
    info = next((i for s in order if s in client_suites
                 and (i := suite_info(s)) is not None and i.tls13), None)
    if info is None:
        raise HandshakeFailure(
            "no TLS 1.3 cipher suite in common: the client offers "
            + ", ".join(CipherSuite(s).name for s in offered.suites))
    if len(_SUITE_CHOICES) >= _CHOICES_MAX:
        _SUITE_CHOICES.clear()
    _SUITE_CHOICES[key] = (cfg, info)
    return info


@functools.lru_cache(maxsize=64)
def _usable_groups(groups: tuple[NamedGroup, ...]) -> tuple[NamedGroup, ...]:
    """The configured groups this build can use (per configuration, not per handshake)."""
    return tuple(g for g in groups if group_available(g))


def choose_group(cfg: ServerConfig, offered: Offered
                 ) -> tuple[NamedGroup | None, bytes | None]:
    """Our preferred group the client sent a share for; else one it supports (an HRR);
    with ``strict_group_preference`` our preferred one it supports, share or not;
    (None, None) for a ClientHello without key_share (PSK only)."""
    groups, shares = offered.groups, offered.key_shares
    if groups is None or shares is None:
        return None, None
    share_groups = tuple(map(_GROUP_OF, shares))
    key = (id(cfg), groups, share_groups)
    hit = _GROUP_CHOICES.get(key)
    if hit is not None and hit[0] is cfg:
        group = hit[1]
    else:
        group = _choose_group(cfg, groups, frozenset(share_groups))
        if len(_GROUP_CHOICES) >= _CHOICES_MAX:
            _GROUP_CHOICES.clear()
        _GROUP_CHOICES[key] = (cfg, group)
    # (The last share of a group, were there two: check_client_hello refuses that.)
    return group, dict(zip(share_groups, map(_KEY_EXCHANGE_OF, shares), strict=True)).get(group)


def _choose_group(cfg: ServerConfig, offered_groups: tuple[NamedGroup, ...],
                  shared: frozenset[NamedGroup]) -> NamedGroup:
    groups = cfg.groups
    usable = (_usable_groups(groups) if isinstance(groups, tuple)
              else [g for g in groups if group_available(g)])
    group = None if cfg.strict_group_preference else next(
        (g for g in usable if g in shared), None)
    if group is None:
        group = next((g for g in usable if g in offered_groups), None)
        if group is None:
            raise HandshakeFailure(
                "no key-exchange group in common: the client supports "
                + ", ".join(NamedGroup(g).name for g in offered_groups))
    return group


#: (choose_suite's answer, choose_group's): what ``_resumption`` worked out already.
Chosen = tuple[SuiteInfo, NamedGroup | None, bytes | None]


def choose(cfg: ServerConfig, offered: Offered, *, psk: SelectedPsk | None = None,
           chosen: Chosen | None = None) -> Choice:
    if chosen is None:
        info = choose_suite(cfg, offered)
        group, share = choose_group(cfg, offered)
    else:
        info, group, share = chosen
    alpn = choose_alpn(cfg, offered)
    if psk is not None and psk.external and cfg.prefer_certificates_to_psks:
        cert = choose_certificate(cfg, offered, tls13=True) if group is not None else None
        if cert is not None and cert.scheme is not None:
            psk = None  # ServerConfig.prefer_certificates_to_psks
    # draft-vvv-tls-alps §3: ALPS when we have settings for the protocol and the client
    # lists it (under our codepoint).
    settings = alps.local_settings(cfg.application_settings, alpn)
    if settings is not None and alpn is not None and alpn.encode() not in (
            alps.offered_protocols(offered.hello.extensions, cfg.alps_new_codepoint)):
        settings = None
    if psk is not None:
        if psk.mode == PskKeyExchangeMode.PSK_KE:
            group, share = None, None
        elif group is None:
            raise HandshakeFailure("psk_dhe_ke without a key share")
        choice = _new_object(Choice)
        choice.__dict__.update(
            suite=info, group=group, client_share=share, certified=None, scheme=None,
            alpn=alpn, server_name=offered.server_name, sni_matched=False, staple=None,
            psk=psk, early_data=False, alps=settings,
            server_cert_types=offered.server_certificate_types,
            client_cert_types=offered.client_certificate_types)
        return choice
    if not cfg.certificates:
        raise _no_psk(cfg, offered)
    if group is None:
        raise MissingExtension("ClientHello has no key_share, and no PSK of its is usable")
    cert = choose_certificate(cfg, offered, tls13=True)
    if cert is None or cert.scheme is None:
        raise issuer_mismatch(cfg, offered) or no_certificate(offered)
    choice = _new_object(Choice)
    choice.__dict__.update(
        suite=info, group=group, client_share=share, certified=cert.certified,
        scheme=cert.scheme, alpn=alpn, server_name=offered.server_name,
        sni_matched=cert.sni_matched, staple=staple_for(cfg, cert.certified, offered),
        psk=None, early_data=False, alps=settings,
        server_cert_types=offered.server_certificate_types,
        client_cert_types=offered.client_certificate_types)
    return choice


def _no_psk(cfg: ServerConfig, offered: Offered) -> HandshakeFailure | MissingExtension:
    """A server with only external PSKs, and none of them usable here."""
    if offered.psk is None:
        return MissingExtension("this server authenticates only with external PSKs; the "
                                "ClientHello offers none", check="psk_missing")
    have_share = offered.key_shares is not None
    if psk13.psk_mode(cfg, offered, have_share=have_share) is None:
        return HandshakeFailure("the client's psk_key_exchange_modes leave nothing we "
                                "accept", check="no_supported_psk_mode")
    return HandshakeFailure("none of the client's PSK identities is one of our external "
                            "PSKs", check="psk_identity_not_found")


def _resumption(io: ServerIO, offered: Offered, raw: bytes,
                transcript_before: Transcript | None
                ) -> tuple[SelectedPsk | None, Chosen | None]:
    """The PSK to resume with (binder verified), or None: a full handshake; and the
    suite and group chosen on the way (for ``choose``), None if no PSK was offered."""
    if offered.psk is None:
        return None, None
    cfg = io.config
    suite = choose_suite(cfg, offered)
    group, share = choose_group(cfg, offered)
    chosen = suite, group, share
    mode = psk13.psk_mode(cfg, offered, have_share=group is not None)
    if mode is None:
        io.note("the client's psk_key_exchange_modes leave nothing we accept: full "
                "handshake")
        return None, chosen
    return psk13.select(io, offered, suite, raw, transcript_before, mode), chosen


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
        raise IllegalParameter("the ClientHello's cookie is not one this server issued",
                               check="cookie_mac")
    return (CipherSuite(int.from_bytes(body[:2], "big")),
            NamedGroup(int.from_bytes(body[2:4], "big")), body[4:])


def start(io: ServerIO, offered: Offered, raw: bytes) -> State[ServerIO]:
    """The first ClientHello, TLS 1.3 chosen: answer it, or ask again with an HRR."""
    check_client_hello(offered)
    psk, chosen = _resumption(io, offered, raw, None)
    choice = choose(io.config, offered, psk=psk, chosen=chosen)
    transcript = Transcript()
    transcript.set_hash(choice.suite.hash_name)
    transcript.update(raw)
    if choice.client_share is None and (psk is None or psk.mode != PskKeyExchangeMode.PSK_KE):
        if offered.early_data:
            # RFC 8446 §4.2.10: after an HRR, skip the client's 0-RTT records.
            io.skip_early_data(max(io.config.max_early_data, 2**14))
        return _retry(io, offered.hello, choice, transcript,
                      choice.psk.identity if choice.psk is not None else None)
    if psk is not None and offered.early_data:
        choice = replace(choice, early_data=psk13.early_data_verdict(
            io, offered, psk, choice.suite, choice.alpn, hrr=False, alps=choice.alps))
    return send_server_flight(io, offered, choice, transcript, hrr=False, ccs_sent=False)


def _retry(io: ServerIO, ch: ClientHello, choice: Choice, transcript: Transcript,
           psk_identity: bytes | None) -> State[ServerIO]:
    assert choice.group is not None  # choose(): a group or a psk_ke PSK
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
    return ExpectClientHelloAgain(ch, ccs_sent=ccs, psk_identity=psk_identity)


class ExpectClientHelloAgain(Tls13Handshaking[ServerIO]):
    """The second ClientHello, after our HelloRetryRequest (RFC 8446 §4.1.2, §4.1.4)."""

    version = ProtocolVersion.TLS13

    expects = frozenset({HandshakeType.CLIENT_HELLO})

    def __init__(self, first: ClientHello, *, ccs_sent: bool,
                 psk_identity: bytes | None = None) -> None:
        self.first = first
        self.ccs_sent = ccs_sent
        self.psk_identity = psk_identity  # the PSK chosen on the first ClientHello

    def handle(self, io: ServerIO, msg_type: HandshakeType, body: memoryview,
               raw: bytes) -> State[ServerIO]:
        ch = read_client_hello(io, body)
        io.received(ch, raw)
        offered = offer(ch)
        # RFC 8446 §4.1.4: the version cannot change across the HelloRetryRequest.
        if choose_version(io.config, offered) != ProtocolVersion.TLS13:
            raise IllegalParameter("the second ClientHello no longer offers TLS 1.3",
                                   check="hrr_version_changed")
        offered = with_callback_certificates(io.config, offered, ProtocolVersion.TLS13)
        check_client_hello(offered)
        if offered.cookie is None:
            raise MissingExtension("the second ClientHello must echo our cookie",
                                   check="hrr_cookie_missing")
        suite, group, ch1_hash = _open_cookie(io.config.cookie_secret, offered.cookie)
        # RFC 8446 §4.1.2: the client must resend the same hello except for the allowed
        # changes (key_share, cookie, early_data removal, padding).
        if (ch.random != self.first.random
                or ch.legacy_session_id != self.first.legacy_session_id
                or ch.cipher_suites != self.first.cipher_suites):
            raise IllegalParameter("the second ClientHello differs from the first in more "
                                   "than the key share and cookie", check="hrr_hello_changed")
        if offered.early_data:
            raise IllegalParameter("early_data in the ClientHello after a HelloRetryRequest",
                                   check="early_data_after_hrr")
        shares = offered.key_shares
        assert shares is not None  # check_client_hello
        if len(shares) != 1 or shares[0].group != group:
            raise IllegalParameter(
                f"after the HelloRetryRequest the client must send exactly one {group.name} "
                "key share (RFC 8446 §4.1.4)", check="hrr_key_share")
        transcript = Transcript()
        transcript.set_hash(choose_suite(io.config, offered).hash_name)
        transcript.update(message_hash(ch1_hash))  # RFC 8446 §4.4.1
        hrr = _hrr(ch.legacy_session_id, suite, group, offered.cookie)
        transcript.update(hrr.serialize())
        # RFC 8446 §4.2.11.2: the binders of the second ClientHello cover the
        # message_hash and the HelloRetryRequest too.
        if (self.psk_identity is not None and offered.psk is not None
                and all(i.identity != self.psk_identity for i in offered.psk.identities)):
            # RFC 8446 §4.1.2: the second ClientHello may drop only the PSKs the HRR's
            # suite rules out; the one we chose is compatible.
            raise IllegalParameter("the second ClientHello dropped the PSK the first one "
                                   "offered and we chose", check="psk_identity_not_found")
        psk, chosen = _resumption(io, offered, raw, transcript)
        choice = choose(io.config, offered, psk=psk, chosen=chosen)
        if choice.suite.suite != suite:
            raise IllegalParameter("the cipher suite changed across the HelloRetryRequest",
                                   check="hrr_suite_changed")
        choice = replace(choice, group=group, client_share=shares[0].key_exchange)
        transcript.update(raw)
        return send_server_flight(io, offered, choice, transcript, hrr=True,
                                  ccs_sent=self.ccs_sent)


# The constant parts of the flight: built and serialized once (messages are frozen).
_SUPPORTED_VERSIONS_13 = ext.SupportedVersionsServerHello(ProtocolVersion.TLS13)
ext.remember_wire(_SUPPORTED_VERSIONS_13)
_EMPTY_EE = EncryptedExtensions(())
_EMPTY_EE_RAW = _EMPTY_EE.serialize()
# supported_versions (TLS 1.3) as it appears in every TLS 1.3 ServerHello: type, length,
# selected_version (RFC 8446 §4.2.1).
_SUPPORTED_VERSIONS_13_WIRE = ServerHello(
    ProtocolVersion.TLS12, bytes(32), b"", CipherSuite.TLS_AES_128_GCM_SHA256, 0,
    (_SUPPORTED_VERSIONS_13,)).serialize()[-6:]


def server_hello13_wire(random: bytes, session_id: bytes, suite: int, group: int | None,
                        server_share: bytes | None, psk_index: int | None) -> bytes | None:
    """The TLS 1.3 ServerHello ``send_server_flight`` builds (RFC 8446 §4.1.3:
    supported_versions, then key_share when (EC)DHE, then pre_shared_key when resuming),
    written straight from its parts: the same bytes as the ``ServerHello`` message's
    ``serialize()``. None when a part is out of range (the message's own serialization
    then says why)."""
    if len(random) != 32 or len(session_id) > 32:
        return None
    exts = _SUPPORTED_VERSIONS_13_WIRE
    if server_share is not None:
        n = len(server_share)
        if group is None or n > 0xFFFF - 4:
            return None
        exts += (b"\x00\x33" + (n + 4).to_bytes(2, "big") + group.to_bytes(2, "big")
                 + n.to_bytes(2, "big") + server_share)
    if psk_index is not None:
        exts += b"\x00\x29\x00\x02" + psk_index.to_bytes(2, "big")
    # legacy_version 0x0303; random; legacy_session_id_echo; cipher_suite;
    # legacy_compression_method 0; the extensions block.
    body = b"".join((b"\x03\x03", random, _LENGTH_BYTES[len(session_id)], session_id,
                     suite.to_bytes(2, "big"), b"\x00", len(exts).to_bytes(2, "big"), exts))
    return b"\x02" + len(body).to_bytes(3, "big") + body


_LENGTH_BYTES: tuple[bytes, ...] = tuple(bytes((i,)) for i in range(256))


def _server_hello13(choice: Choice, random: bytes, session_id: bytes,
                    server_share: bytes | None) -> ServerHello:
    """The ServerHello message (for the trace, and to serialize when
    ``server_hello13_wire`` refuses its parts)."""
    sh_exts: list[ext.Extension] = [_SUPPORTED_VERSIONS_13]
    if choice.group is not None and server_share is not None:
        sh_exts.append(ext.KeyShareServerHello(ext.KeyShareEntry(choice.group, server_share)))
    if choice.psk is not None:
        sh_exts.append(ext.PreSharedKeyServerHello(choice.psk.index))  # RFC 8446 §4.2.11
    return ServerHello(
        legacy_version=ProtocolVersion.TLS12,
        random=random,
        legacy_session_id_echo=session_id,
        cipher_suite=member(CipherSuite, choice.suite.suite),
        legacy_compression_method=0,
        extensions=tuple(sh_exts),
    )


# EncryptedExtensions depending only on (server_name acknowledged, ALPN protocol, 0-RTT
# accepted): built and serialized once each (the common case: no ALPS, no RFC 7250
# certificate type lists).
_EE_CACHE: dict[tuple[bool, str | None, bool], tuple[EncryptedExtensions, bytes]] = {}
_EE_CACHE_MAX = 64


def _encrypted_extensions(io: ServerIO, choice: Choice, server_type: CertificateType | None,
                          client_type: CertificateType | None
                          ) -> tuple[EncryptedExtensions, bytes]:
    """Our EncryptedExtensions (RFC 8446 §4.3.1) and its serialization."""
    key: tuple[bool, str | None, bool] | None = None
    if ((choice.alps is None or choice.early_data) and choice.server_cert_types is None
            and choice.client_cert_types is None):
        key = (bool(choice.server_name and choice.sni_matched), choice.alpn,
               bool(choice.early_data))
        hit = _EE_CACHE.get(key)
        if hit is not None:
            return hit
    ee_exts: list[ext.Extension] = []
    if choice.server_name and choice.sni_matched:
        ee_exts.append(ext.ServerName(None))  # RFC 6066 §3: acknowledge the name we used
    if choice.alpn is not None:
        ee_exts.append(ext.ApplicationLayerProtocolNegotiation((choice.alpn.encode(),)))
    if choice.early_data:
        ee_exts.append(ext.EarlyDataIndication())  # RFC 8446 §4.2.10: 0-RTT accepted
    elif choice.alps is not None:
        # draft-vvv-tls-alps §3 (with accepted 0-RTT the session's settings apply).
        ee_exts.append(alps.settings_extension(io.config.alps_new_codepoint, choice.alps))
    ee_exts += certtype.server_answer(choice.server_cert_types, choice.client_cert_types,
                                      server_type, client_type)
    made = _EMPTY_EE, _EMPTY_EE_RAW
    if ee_exts:
        ee = EncryptedExtensions(tuple(ee_exts))
        made = ee, ee.serialize()
    if key is not None:
        if len(_EE_CACHE) >= _EE_CACHE_MAX:
            _EE_CACHE.clear()
        _EE_CACHE[key] = made
    return made


def send_server_flight(io: ServerIO, offered: Offered, choice: Choice, transcript: Transcript,
                       *, hrr: bool, ccs_sent: bool) -> State[ServerIO]:
    """ServerHello ... Finished in one flight (RFC 8446 §2)."""
    ch = offered.hello
    suite = choice.suite
    psk = choice.psk
    # ClientHello (0-RTT keys, RFC 8446 §7.1)
    ch_hash = transcript.digest() if choice.early_data else b""
    server_share: bytes | None = None
    shared: bytes | None = None
    if choice.group is not None and choice.client_share is not None:
        server_share, shared = server_key_share(choice.group, choice.client_share, io.random)
    random = io.random(32)
    session_id = ch.legacy_session_id
    raw_sh = server_hello13_wire(random, session_id, suite.suite, choice.group, server_share,
                                 psk.index if psk is not None else None)
    sh: ServerHello | None = None  # built only for an observer (or to say what is wrong)
    if raw_sh is None or io.observed:
        sh = _server_hello13(choice, random, session_id, server_share)
        if raw_sh is None:
            raw_sh = sh.serialize()
    io.send_handshake(sh, raw_sh)
    sh_hash = transcript.update_and_digest(raw_sh)
    if session_id and not ccs_sent:
        io.send_change_cipher_spec()  # RFC 8446 §D.4
    early = psk.early_secret(suite.hash_name) if psk is not None else None
    secrets = handshake_secrets(io, suite, shared, sh_hash, early=early)
    hs, chts, shts = secrets.hs, secrets.chts, secrets.shts
    write, server_finished_key = handshake_encrypter(suite, shts)
    io.set_write(write, Epoch.HANDSHAKE)
    read, client_finished_key = handshake_decrypter(suite, chts)
    io.set_read(read, Epoch.HANDSHAKE)

    certified, scheme = choice.certified, choice.scheme
    cfg = io.config
    client_type = None
    # RFC 8446 §4.3.2: no CertificateRequest in a PSK handshake.
    ask = cfg.client_auth != "none" and psk is None
    if ask:
        client_type = certtype.choose_client_type(cfg, choice.client_cert_types)
    state = psk.state if psk is not None else None
    server_type = (certified.certificate_type if certified is not None
                   else state.server_certificate_type if state is not None else None)
    ee, raw = _encrypted_extensions(io, choice, server_type, client_type)
    cr: tuple[CertificateRequest, bytes] | None = None
    if ask:
        cr = cached_message(cfg, 13, lambda: certificate_request(cfg))
        io.note(f"asking the client for a certificate (client_auth={cfg.client_auth})")
    staple = choice.staple
    if certified is not None and staple is not None:
        io.note(f"stapling an OCSP response ({len(staple)} bytes) to our certificate")
    # ``raw``: the last message sent, not yet in the transcript.
    io.send_handshake(ee, raw)
    if cr is not None:
        transcript.update(raw)
        raw = cr[1]
        io.send_handshake(cr[0], raw)
    if certified is not None:
        transcript.update(raw)
        cert_msg, raw = cached_message(certified, (13, staple),
                                       lambda: certificate13(certified, staple))
        io.send_handshake(cert_msg, raw)
        if scheme is not None:
            content = sig.certificate_verify_content(transcript.update_and_digest(raw),
                                                     server=True)
            cv = CertificateVerify(scheme, sig.sign(scheme, certified.private_key, content))
            raw = cv.serialize()
            io.send_handshake(cv, raw)
    fin = Finished(schedule13.verify_data_with_key(suite.hash_name, server_finished_key,
                                                   transcript.update_and_digest(raw)))
    raw = fin.serialize()
    io.send_handshake(fin, raw)

    master = hs.master_secret()
    cats, sats, ems = master.application_secrets(transcript.update_and_digest(raw))
    if io.observed:
        io.secret("master_secret", master.secret, None)
        announce(io, "client_application_traffic_secret_0", cats)
        announce(io, "server_application_traffic_secret_0", sats)
        announce(io, "exporter_master_secret", ems)
    io.set_write(encrypter(suite, sats), Epoch.APPLICATION)
    ch_types = offered.types
    offered_early = ExtensionType.EARLY_DATA in ch_types
    info = HandshakeInfo(
        version=ProtocolVersion.TLS13,
        cipher_suite=member(CipherSuite, suite.suite),
        group=choice.group,
        signature_scheme=choice.scheme,
        alpn=choice.alpn,
        server_name=choice.server_name,
        hello_retry_request=hrr,
        resumed=psk is not None,
        client_random=ch.random,
        resumed_with=psk.resumed_with if psk is not None else None,
        early_data_accepted=choice.early_data if offered_early else None,
        ticket_age_skew=psk.ticket_age_skew(psk.selected_at) if psk is not None else None,
        client_certificates=state.client_certificates if state is not None else (),
        client_certificate_verified=(state.client_certificate_verified
                                     if state is not None else False),
        psk_identity=(psk.source.configured_identity
                      if psk is not None and psk.source is not None else None),
        # reverify_on_resume: the callback accepted the session's chain again to get here.
        client_certificate_accepted_by_callback=state is not None and (
            state.client_certificate_accepted_by_callback
            or (cfg.reverify_on_resume and bool(state.client_certificates))),
    )
    pha = ExtensionType.POST_HANDSHAKE_AUTH in ch_types
    then = ExpectClientFinished(suite, transcript, master, chts, cats, sats, ems, info,
                                post_handshake_auth=pha,
                                tickets=_can_resume(offered.psk_modes),
                                server_certificate_type=server_type or CertificateType.X509,
                                client_finished_key=client_finished_key)
    if choice.early_data and state is not None and state.application_settings:
        then.alps = state.application_settings  # 0-RTT: the session's ALPS settings
        then.info = replace(info, peer_application_settings=state.application_settings[1])
    if choice.early_data and psk is not None and early is not None:
        # RFC 8446 §4.2.10: read 0-RTT under client_early_traffic_secret until
        # EndOfEarlyData.
        cets = early.client_early_traffic_secret(ch_hash)
        announce(io, "client_early_traffic_secret", cets)
        io.set_read(decrypter(suite, cets), Epoch.EARLY)
        io.accept_early_data(state.max_early_data if state is not None else 0)
        return ExpectEndOfEarlyData(then)
    if offered_early and not hrr:
        # Rejected 0-RTT: skip what we cannot decrypt (RFC 8446 §4.2.10).
        io.skip_early_data(max(state.max_early_data if state is not None else 0,
                               cfg.max_early_data, 2**14))
    after: State[ServerIO] = then
    if client_type is not None:
        after = ExpectClientCertificate(then, require=cfg.client_auth == "require",
                                        cert_type=client_type)
    if choice.alps is not None:
        # draft-vvv-tls-alps §4: the client's settings come first in its flight.
        return ExpectClientEncryptedExtensions(then, choice.alps, after)
    return after


def certificate13(certified: CertifiedKey, staple: bytes | None) -> Certificate:
    """Our Certificate message (RFC 8446 §4.4.2): the same bytes on every handshake with
    this credential and staple (``cached_message``)."""
    entries = [CertificateEntry(der, ()) for der in certified.chain]
    if staple is not None:
        # RFC 8446 §4.4.2.1: the OCSP response rides in the leaf's CertificateEntry.
        entries[0] = CertificateEntry(entries[0].cert_data, (
            ext.CertificateStatusExtension(CertificateStatusType.OCSP, staple),))
    return Certificate(b"", tuple(entries))


class ExpectClientEncryptedExtensions(Tls13Handshaking[ServerIO]):
    """ALPS negotiated (no 0-RTT): the client's ClientEncryptedExtensions, carrying its
    application_settings and nothing else (draft-vvv-tls-alps §4)."""

    expects = frozenset({HandshakeType.ENCRYPTED_EXTENSIONS})
    version = ProtocolVersion.TLS13

    def __init__(self, finish: ExpectClientFinished, ours: bytes,
                 then: State[ServerIO]) -> None:
        self.finish, self.ours, self.then = finish, ours, then

    def handle(self, io: ServerIO, msg_type: HandshakeType, body: memoryview,
               raw: bytes) -> State[ServerIO]:
        cee = ClientEncryptedExtensions.parse_body(body)
        io.received(cee, raw)
        t = alps.extension_type(io.config.alps_new_codepoint)
        found: ext.ApplicationSettings | None = None
        for e in cee.extensions:
            if e.extension_type != t or not isinstance(e, ext.ApplicationSettings):
                raise UnsupportedExtension(f"the {ExtensionType(e.extension_type).name} "
                                           "extension in ClientEncryptedExtensions",
                                           check="extension_not_offered")
            found = e
        if found is None:
            raise MissingExtension("ClientEncryptedExtensions without application_settings")
        finish = self.finish
        finish.transcript.update(raw)
        finish.alps = (self.ours, found.settings)
        finish.info = replace(finish.info, peer_application_settings=found.settings)
        io.note(f"ALPS: the client's settings are {len(found.settings)} bytes")
        return self.then


class ExpectEndOfEarlyData(Tls13Handshaking[ServerIO]):
    """0-RTT accepted: application data (``ApplicationData.early``) until the client's
    EndOfEarlyData (RFC 8446 §4.5), then its handshake keys."""

    expects = frozenset({HandshakeType.END_OF_EARLY_DATA})
    version = ProtocolVersion.TLS13
    accepts_application_data = True

    def __init__(self, then: ExpectClientFinished) -> None:
        self.then = then

    def handle(self, io: ServerIO, msg_type: HandshakeType, body: memoryview,
               raw: bytes) -> State[ServerIO]:
        eoed = EndOfEarlyData.parse_body(body)
        io.received(eoed, raw)
        self.then.transcript.update(raw)
        io.set_read(decrypter(self.then.suite, self.then.chts), Epoch.HANDSHAKE)
        return self.then


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

    def __init__(self, then: ExpectClientFinished, *, require: bool,
                 cert_type: CertificateType = CertificateType.X509) -> None:
        self.then = then
        self.require = require
        self.cert_type = cert_type

    def handle(self, io: ServerIO, msg_type: HandshakeType, body: memoryview,
               raw: bytes) -> State[ServerIO]:
        rpk = self.cert_type == CertificateType.RAW_PUBLIC_KEY
        cert = parse_certificate13_rpk(body) if rpk else Certificate.parse_body(body)
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
        if rpk:
            accepted = accept_client_raw_key(io, single_raw_key(chain))
        else:
            accepted = accept_client_chain(io, chain, server_name=self.then.info.server_name)
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
                            client_certificate_verified=self.chain.trusted,
                            client_certificate_accepted_by_callback=self.chain.by_callback)
        return then


def _can_resume(modes: ext.PskKeyExchangeModes | None) -> bool:
    """RFC 8446 §4.2.9: a client whose psk_key_exchange_modes (``modes``, None when it
    sent none) lists no mode we know cannot resume; servers SHOULD NOT send it tickets."""
    return modes is not None and not _KNOWN_PSK_MODES.isdisjoint(modes.ke_modes)


_KNOWN_PSK_MODES = frozenset({PskKeyExchangeMode.PSK_KE, PskKeyExchangeMode.PSK_DHE_KE})


class ExpectClientFinished(Tls13Handshaking[ServerIO]):
    expects = frozenset({HandshakeType.FINISHED})
    version = ProtocolVersion.TLS13

    def __init__(self, suite: SuiteInfo, transcript: Transcript,
                 master: schedule13.MasterSecret, chts: bytes, cats: bytes, sats: bytes,
                 ems: bytes, info: HandshakeInfo, *, post_handshake_auth: bool = False,
                 tickets: bool = True,
                 server_certificate_type: CertificateType = CertificateType.X509,
                 client_finished_key: bytes | None = None) -> None:
        self.suite, self.transcript, self.master = suite, transcript, master
        # RFC 8446 §4.4.4: the finished_key of chts, when derived with its traffic keys.
        self.client_finished_key = (
            client_finished_key if client_finished_key is not None
            else schedule13.finished_key(suite.hash_name, chts))
        self.server_certificate_type = server_certificate_type  # RFC 7250, for tickets
        self.tickets = tickets  # the client can resume with a ticket (RFC 8446 §4.2.9)
        self.chts, self.cats, self.sats, self.ems = chts, cats, sats, ems
        self.info = info
        self.post_handshake_auth = post_handshake_auth  # the client offered it
        self.alps: alps.Settings | None = None  # (ours, the client's) for the tickets

    def handle(self, io: ServerIO, msg_type: HandshakeType, body: memoryview,
               raw: bytes) -> State[ServerIO]:
        fin = Finished.parse_body(body)
        io.received(fin, raw)
        verify_finished_with_key(io, self.suite, self.client_finished_key,
                                 self.transcript.digest(), fin, "client")
        rms = self.master.resumption_master_secret(self.transcript.update_and_digest(raw))
        io.set_read(decrypter(self.suite, self.cats), Epoch.APPLICATION)
        info = self.info
        if self.tickets:
            psk13.send_tickets(io, self.suite, rms, server_name=info.server_name,
                               alpn=info.alpn, client_certificates=info.client_certificates,
                               client_certificate_verified=info.client_certificate_verified,
                               application_settings=self.alps,
                               server_certificate_type=self.server_certificate_type,
                               client_certificate_accepted_by_callback=(
                                   info.client_certificate_accepted_by_callback))
        else:
            io.note("no tickets: the client's psk_key_exchange_modes allow no resumption")
        io.emit(HandshakeComplete(info))
        io.handshake_done()
        return Connected13(TrafficSecrets(self.suite, read_secret=self.cats,
                                          write_secret=self.sats),
                           is_client=False, resumption_master_secret=rms,
                           exporter_master_secret=self.ems,
                           # RFC 8446 §4.6.2 / §4.4.1: the transcript through the client
                           # Finished, for post-handshake authentication.
                           transcript=(self.transcript.copy() if self.post_handshake_auth
                                       else None))



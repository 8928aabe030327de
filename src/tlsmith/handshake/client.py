"""The version-neutral start of the client handshake.

    begin(): ClientHello (TLS 1.3 and/or 1.2) ─► ExpectServerHello
      ├─ supported_versions = TLS 1.3 ─► client13 (HelloRetryRequest loops back here)
      └─ legacy_version = TLS 1.2      ─► client12

The version decision is made once, here: RFC 8446 §4.1.3 (downgrade sentinels) and
§4.2.1 (supported_versions), RFC 5246 §7.4.1.3 / RFC 8996 (no TLS 1.1 or below).
"""

from __future__ import annotations

import functools
import ipaddress
import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tlsmith.codec import extensions as ext
from tlsmith.codec.enums import (
    CipherSuite,
    ECPointFormat,
    ExtensionType,
    HandshakeType,
    NamedGroup,
    ProtocolVersion,
    PskKeyExchangeMode,
    SignatureScheme,
    member,
)
from tlsmith.codec.messages import DOWNGRADE_TLS11, DOWNGRADE_TLS12, ClientHello, ServerHello
from tlsmith.crypto.kx import TLS13_ONLY_GROUPS, KeyShareSecret, generate_key_share
from tlsmith.crypto.suites import suite_info
from tlsmith.crypto.transcript import Transcript
from tlsmith.errors import IllegalParameter, ProtocolVersionError, UnexpectedMessage
from tlsmith.frozen import fast_init
from tlsmith.handshake import alps, certtype, psk12
from tlsmith.handshake.base import ClientIO, State, Tls13Handshaking
from tlsmith.observe import Epoch
from tlsmith.record.protection import PlaintextEncrypter
from tlsmith.session import Session12

if TYPE_CHECKING:
    from tlsmith.handshake.psk13 import OfferedPsk


@functools.lru_cache(maxsize=256)
def sni_name(name: str | None) -> str | None:
    """RFC 6066 §3: literal IP addresses are not permitted in server_name (cached: a
    client config asks for the same name on every connection)."""
    if not name:
        return None
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return name.rstrip(".")
    return None


_EXTENSION_TYPE = operator.attrgetter("extension_type")


def offered_types(hello: ClientHello) -> frozenset[ExtensionType]:
    """The extension types ``hello`` carries (what the server may answer)."""
    return frozenset(map(_EXTENSION_TYPE, hello.extensions))


@fast_init
@dataclass(frozen=True, slots=True)
class HelloSent:
    """What the client offered, carried by value into the version-specific states."""

    hello: ClientHello
    shares: dict[NamedGroup, KeyShareSecret]
    transcript: Transcript
    offered: frozenset[ExtensionType]  # offered_types(hello)
    hrr: ServerHello | None = None
    # TLS 1.3 PSKs offered, in the order of the pre_shared_key identities.
    psks: tuple[OfferedPsk, ...] = ()
    early_data: bool = False  # 0-RTT data followed this ClientHello
    ccs_sent: bool = False  # the compatibility CCS already went out (RFC 8446 §D.4)
    session12: Session12 | None = None  # the TLS 1.2 session offered for resumption


def offered_suites(io: ClientIO) -> tuple[CipherSuite, ...]:
    """The configured suites that belong to a version we offer."""
    versions = io.config.versions
    out = []
    for s in io.config.cipher_suites:
        info = suite_info(s)
        if info is None:
            out.append(s)  # unknown/signalling values are the caller's business
        elif psk12.is_psk_suite(info) and not psk12.tls12_psks(io.config.external_psks):
            continue  # RFC 4279: only with a PSK to use
        elif (ProtocolVersion.TLS13 if info.tls13 else ProtocolVersion.TLS12) in versions:
            out.append(s)
    return tuple(out)


def session12_to_offer(io: ClientIO) -> Session12 | None:
    """The TLS 1.2 session to resume, if it is usable here (RFC 5246 §7.4.1.2)."""
    session = io.session
    if not isinstance(session, Session12) or ProtocolVersion.TLS12 not in io.config.versions:
        return None
    if session.expired(io.now()):
        io.note("the TLS 1.2 session has expired: not offering it")
        return None
    if session.server_name != sni_name(io.config.server_name):
        io.note("the TLS 1.2 session was for another server name: not offering it")
        return None
    if session.cipher_suite not in io.config.cipher_suites:
        io.note("the TLS 1.2 session's cipher suite is not configured: not offering it")
        return None
    return session


def begin(io: ClientIO) -> ExpectServerHello:
    """Build and send the first ClientHello."""
    # (psk13 imports this module. ``import a.b.c as c``, not ``from a.b import c``: the
    # latter runs importlib's Python _handle_fromlist on every call.)
    import tlsmith.handshake.psk13 as psk13

    cfg = io.config
    client_random = io.random(32)
    tls13 = ProtocolVersion.TLS13 in cfg.versions
    session12 = session12_to_offer(io)
    if session12 is not None:
        # RFC 5077 §3.4: with a ticket, a fresh session ID (its echo says "resumed");
        # without, the session's own ID (RFC 5246 §7.4.1.2).
        session_id = io.random(32) if session12.ticket else session12.session_id
    else:
        # RFC 8446 §D.4: middlebox compatibility mode sends a non-empty session id.
        session_id = io.random(32) if cfg.middlebox_compat and tls13 else b""
    shares = ({g: generate_key_share(g, io.random) for g in cfg.key_share_groups}
              if tls13 else {})
    psks = psk13.to_offer(io) if tls13 else ()
    early = bool(io.early_data) and bool(psks) and psks[0].allows_early_data
    if early and (s13 := psks[0].session) is not None and alps.early_data_mismatch(
            s13.application_settings, cfg.application_settings, s13.alpn):
        early = False
        io.note("our ALPS settings changed since the session: no 0-RTT (the server would "
                "not send its settings again)")
    if io.early_data and not early:
        io.note("the session cannot carry 0-RTT data here: not sending early data")
    hello = build_client_hello(io, client_random, session_id, shares, cookie=None,
                               psks=psks, early_data=early, session12=session12)
    transcript = Transcript()
    if psks:
        hello, raw = psk13.bind(hello, psks, transcript)
    else:
        raw = hello.serialize()
    transcript.update(raw)
    io.send_handshake(hello, raw)
    ccs_sent = False
    if early:
        if cfg.middlebox_compat:
            io.send_change_cipher_spec()  # RFC 8446 §D.4: right after the ClientHello
            ccs_sent = True
        psk13.send_early_data(io, psks[0], transcript)
    return ExpectServerHello(HelloSent(hello, shares, transcript, offered_types(hello),
                                       psks=psks,
                                       early_data=early, ccs_sent=ccs_sent,
                                       session12=session12))


def build_client_hello(
    io: ClientIO, client_random: bytes, session_id: bytes,
    shares: dict[NamedGroup, KeyShareSecret], cookie: bytes | None,
    *, retry: bool = False, psks: tuple[OfferedPsk, ...] = (), early_data: bool = False,
    session12: Session12 | None = None,
) -> ClientHello:
    """The ClientHello; with ``psks`` its pre_shared_key carries zero binders, filled in
    by ``psk13.bind`` (RFC 8446 §4.2.11.2)."""
    cfg = io.config
    versions = cfg.versions
    tls13 = ProtocolVersion.TLS13 in versions
    # RFC 8446 §4.1.2: the second ClientHello repeats the first (TLS 1.2 extensions
    # included) but for key_share, early_data, cookie and the PSKs (found by BoGo's
    # TLS13-HelloRetryRequest-Client, which compares the two hellos).
    tls12 = ProtocolVersion.TLS12 in versions
    parts = _hello_parts(io)  # what the configuration alone decides, built once
    suites = parts.suites
    extensions: list[ext.Extension] = list(parts.head)
    if tls12 and cfg.session_tickets:
        # RFC 5077 §3.2: our ticket, or an empty one to ask for a ticket.
        extensions.append(ext.SessionTicket(session12.ticket if session12 else b""))
    if tls13:
        extensions.append(ext.KeyShareClientHello(tuple(
            ext.KeyShareEntry(g, s.public_bytes) for g, s in shares.items())))
    extensions += parts.tail
    if cookie is not None:
        extensions.append(ext.Cookie(cookie))
    if early_data:
        extensions.append(ext.EarlyDataIndication())  # RFC 8446 §4.2.10
    if psks:
        # RFC 8446 §4.2.11: pre_shared_key MUST be the last extension.
        extensions.append(ext.PreSharedKeyClientHello(
            tuple(ext.PskIdentity(p.identity, p.obfuscated_age) for p in psks),
            tuple(bytes(p.hash_len) for p in psks)))
    if cfg.send_fallback_scsv:
        suites = (*suites, CipherSuite.TLS_FALLBACK_SCSV)  # RFC 7507 §4
    if cfg.grease:
        suites, extensions = _grease(client_random, suites, extensions, retry=retry)
    return ClientHello(
        legacy_version=ProtocolVersion.TLS12,
        random=client_random,
        legacy_session_id=session_id,
        cipher_suites=suites,
        legacy_compression_methods=(0,),
        extensions=tuple(extensions),
    )


def grease_values(seed: bytes) -> tuple[int, ...]:
    """Four RFC 8701 values (0x?A?A) taken from ``seed`` (the client random, which a
    second ClientHello repeats, so its GREASE values stay the same); the two used as
    extension types differ."""
    values = [((b & 0xF0) | 0x0A) * 0x0101 for b in seed[:4]]
    if values[2] == values[1]:
        values[2] ^= 0x1010
    return tuple(values)


def _grease(client_random: bytes, suites: tuple[CipherSuite, ...],
            extensions: list[ext.Extension], *, retry: bool
            ) -> tuple[tuple[CipherSuite, ...], list[ext.Extension]]:
    """RFC 8701 §3.1: a GREASE suite, group, key share, signature algorithm and version
    first in their lists, and two GREASE extensions (the first one and the last one
    before pre_shared_key), so that servers keep ignoring values they do not know.
    After a HelloRetryRequest the key_share holds the one share asked for (RFC 8446
    §4.1.2)."""
    suite_g, ext1, ext2, group_g = grease_values(client_random)
    out: list[ext.Extension] = [ext.UnknownExtension(ExtensionType(ext1), b"")]
    for e in extensions:
        if isinstance(e, ext.SupportedGroups):
            e = ext.SupportedGroups((NamedGroup(group_g), *e.named_group_list))
        elif isinstance(e, ext.SignatureAlgorithms):
            e = ext.SignatureAlgorithms((SignatureScheme(group_g),
                                         *e.supported_signature_algorithms))
        elif isinstance(e, ext.SupportedVersionsClientHello):
            e = ext.SupportedVersionsClientHello((ProtocolVersion(suite_g), *e.versions))
        elif isinstance(e, ext.KeyShareClientHello) and not retry:
            e = ext.KeyShareClientHello((ext.KeyShareEntry(NamedGroup(group_g), b"\x00"),
                                         *e.client_shares))
        out.append(e)
    last = ext.UnknownExtension(ExtensionType(ext2), b"\x00")
    if out and isinstance(out[-1], ext.PreSharedKeyClientHello):
        out.insert(len(out) - 1, last)  # RFC 8446 §4.2.11: the PSK stays last
    else:
        out.append(last)
    return (CipherSuite(suite_g), *suites), out


@dataclass(frozen=True)
class _HelloParts:
    """What a ClientHello takes from the configuration alone: the offered suites, the
    extensions before the variable ones (session_ticket, key_share) and those after them
    (up to the ALPN list). Built once per configuration; the extension objects are
    shared by every hello and their wire form is remembered (``ext.remember_wire``), so
    a new connection neither rebuilds nor reserializes them."""

    suites: tuple[CipherSuite, ...]
    head: tuple[ext.Extension, ...]
    tail: tuple[ext.Extension, ...]


_PARTS_ATTR = "_tlsmith_hello_parts"


def _hello_parts(io: ClientIO) -> _HelloParts:
    cfg = io.config
    # Kept on the (frozen) configuration object itself, outside its fields: it lives
    # exactly as long as the configuration, and dataclasses.replace() starts afresh.
    attrs: dict[str, Any] | None = getattr(cfg, "__dict__", None)
    parts: _HelloParts | None = attrs.get(_PARTS_ATTR) if attrs is not None else None
    if parts is None:
        parts = _build_hello_parts(io)
        for e in (*parts.head, *parts.tail):
            ext.remember_wire(e)
        if attrs is not None:
            attrs[_PARTS_ATTR] = parts
    return parts


def _build_hello_parts(io: ClientIO) -> _HelloParts:
    cfg = io.config
    versions = cfg.versions
    tls13 = ProtocolVersion.TLS13 in versions
    tls12 = ProtocolVersion.TLS12 in versions
    suites = offered_suites(io)
    groups = tuple(cfg.groups) if tls13 else tuple(
        g for g in cfg.groups if g not in TLS13_ONLY_GROUPS)
    head: list[ext.Extension] = []
    sni = sni_name(cfg.server_name)
    if sni:
        head.append(ext.ServerName(sni))
    if cfg.sends_status_request:
        # RFC 6066 §8: ask for a stapled OCSP response (no responder ids, no extensions).
        head.append(ext.StatusRequest())
    if tls13:
        head.append(ext.SupportedVersionsClientHello(versions))
    head += [
        ext.SupportedGroups(groups),
        ext.SignatureAlgorithms(tuple(cfg.signature_schemes)),
    ]
    if tls12:
        # RFC 8422 §5.1.2: only the uncompressed point format; RFC 7627 §5.1; RFC 5746
        # §3.4 (an empty renegotiation_info in the initial handshake).
        head += [
            ext.ECPointFormats((ECPointFormat.UNCOMPRESSED,)),
            ext.ExtendedMasterSecret(),
            ext.RenegotiationInfo(b""),
        ]
        if any((i := suite_info(s)) is not None and i.cipher == "cbc" for s in suites):
            head.append(ext.EncryptThenMac())  # RFC 7366 §2
    # (session_ticket, then key_share, go here: see build_client_hello.)
    tail: list[ext.Extension] = []
    if tls13:
        modes = ((PskKeyExchangeMode.PSK_DHE_KE, PskKeyExchangeMode.PSK_KE)
                 if cfg.offer_psk_ke else (PskKeyExchangeMode.PSK_DHE_KE,))
        tail.append(ext.PskKeyExchangeModes(modes))
        if cfg.may_send_certificate:
            # RFC 8446 §4.2.6: with a certificate to give, let the server ask for it
            # after the handshake too (post-handshake authentication, §4.6.2).
            tail.append(ext.PostHandshakeAuth())
    tail += certtype.hello_extensions(cfg)  # RFC 7250 §4.1
    if cfg.alpn_protocols:
        tail.append(ext.ApplicationLayerProtocolNegotiation(
            tuple(p.encode() for p in cfg.alpn_protocols)))
        if tls13 and cfg.application_settings:
            # draft-vvv-tls-alps §3: the protocols we have settings for (ALPS needs ALPN).
            alps_cls = (ext.ApplicationSettingsNewClientHello if cfg.alps_new_codepoint
                        else ext.ApplicationSettingsClientHello)
            tail.append(alps_cls(tuple(p.encode() for p, _ in cfg.application_settings)))
    if tls12 and cfg.next_protocols is not None:
        tail.append(ext.NextProtocolNegotiation())  # draft-agl-tls-nextprotoneg §3: empty
    return _HelloParts(suites, tuple(head), tuple(tail))


def _versions_text(versions: tuple[ProtocolVersion, ...]) -> str:
    return " and ".join(v.label for v in versions)


class ExpectServerHello(Tls13Handshaking[ClientIO]):
    expects = frozenset({HandshakeType.SERVER_HELLO})

    def __init__(self, sent: HelloSent) -> None:
        self.sent = sent

    def change_cipher_spec(self, io: ClientIO) -> State[ClientIO]:
        if ProtocolVersion.TLS13 not in io.config.versions:
            # RFC 8446 §5's compatibility CCS exists only if TLS 1.3 was offered; in
            # TLS 1.2 the server's CCS comes right before its Finished (RFC 5246 §7.3).
            raise UnexpectedMessage("change_cipher_spec before the ServerHello (this "
                                    "client offered only TLS 1.2)")
        return super().change_cipher_spec(io)

    def handle(self, io: ClientIO, msg_type: HandshakeType, body: memoryview,
               raw: bytes) -> State[ClientIO]:
        import tlsmith.handshake.client12 as client12  # (as in begin)
        import tlsmith.handshake.client13 as client13

        sh = ServerHello.parse_body(body)
        io.received(sh, raw)
        versions = io.config.versions
        selected = ext.find_extension(sh.extensions, ext.SupportedVersionsServerHello)
        if selected is not None:
            # RFC 8446 §4.2.1: only a version we offered, and never below TLS 1.3.
            chosen = member(ProtocolVersion, selected.selected_version)
            if chosen != ProtocolVersion.TLS13 or chosen not in versions:
                raise IllegalParameter(
                    f"the server selected {chosen.label} in supported_versions, which the "
                    "client did not offer", check="sh_version_not_offered")
            if sh.is_hello_retry_request:
                from tlsmith.handshake import psk13

                if self.sent.early_data:
                    # RFC 8446 §4.2.10: 0-RTT is rejected by a HelloRetryRequest; the
                    # second ClientHello -- or our alert if the HRR is bad -- goes out in
                    # the clear (the server has no early keys), without early_data.
                    io.set_write(PlaintextEncrypter(0x0303), Epoch.PLAINTEXT)
                    io.note("the HelloRetryRequest rejects our 0-RTT data")
                hrr = client13.check_hello_retry(io, self.sent, sh)
                shares = hrr.new_shares
                transcript = self.sent.transcript
                transcript.set_hash(hrr.suite.hash_name)
                transcript.restart_for_hello_retry_request()
                transcript.update(raw)
                # RFC 8446 §4.1.4: keep only PSKs whose hash fits the chosen suite, with
                # fresh ages and binders.
                psks = psk13.for_retry(io, self.sent.psks, hrr.suite.hash_name)
                hello2 = build_client_hello(io, self.sent.hello.random,
                                            self.sent.hello.legacy_session_id, shares,
                                            hrr.cookie, retry=True, psks=psks,
                                            session12=self.sent.session12)
                if psks:
                    hello2, raw2 = psk13.bind(hello2, psks, transcript)
                else:
                    raw2 = hello2.serialize()
                transcript.update(raw2)
                if io.config.middlebox_compat and not self.sent.ccs_sent:
                    io.send_change_cipher_spec()  # RFC 8446 §D.4: before ClientHello2
                io.send_handshake(hello2, raw2)
                # early_data stays True: 0-RTT was sent (and is now rejected).
                return ExpectServerHello(HelloSent(hello2, shares, transcript,
                                                   offered_types(hello2), hrr=sh,
                                                   psks=psks, ccs_sent=True,
                                                   early_data=self.sent.early_data))
            return client13.handle_server_hello(io, self.sent, sh, raw)
        if self.sent.hrr is not None:
            # RFC 8446 §4.1.4: after a HelloRetryRequest the version cannot change.
            raise IllegalParameter("the ServerHello after a HelloRetryRequest has no "
                                   "supported_versions (it must select TLS 1.3)",
                                   check="hrr_version_changed")
        server_version = member(ProtocolVersion, sh.legacy_version)
        if ProtocolVersion.TLS13 in versions:
            if sh.random[-8:] in (DOWNGRADE_TLS12, DOWNGRADE_TLS11):
                # RFC 8446 §4.1.3: a TLS 1.3 client MUST abort with illegal_parameter.
                io.check("downgrade protection", False,
                         "the server random ends with the TLS 1.3 downgrade sentinel")
                raise IllegalParameter(
                    "the server's random carries the TLS 1.3 downgrade sentinel: something "
                    "between us and the server removed TLS 1.3 (RFC 8446 §4.1.3)",
                                       check="downgrade_sentinel")
            io.check("downgrade protection", True,
                     "no TLS 1.3 downgrade sentinel: the server does not speak TLS 1.3")
        if self.sent.early_data:
            # RFC 8446 §D.3: a client that sent 0-RTT data MUST fail the connection on a
            # TLS 1.2 (or older) ServerHello; its alert goes in the clear (the server has
            # no early keys).
            io.set_write(PlaintextEncrypter(0x0303), Epoch.PLAINTEXT)
            raise ProtocolVersionError(
                f"the server chose {server_version.label} after we sent 0-RTT data",
                                       check="early_data_version")
        if (server_version == ProtocolVersion.TLS12 and io.config.require_psk
                and not ((i := suite_info(sh.cipher_suite)) and psk12.is_psk_suite(i))):
            raise ProtocolVersionError(
                "the server chose TLS 1.2 without a PSK suite, but require_psk accepts "
                "only a handshake authenticated by one of our external PSKs",
                check="psk_required_tls12")
        if server_version == ProtocolVersion.TLS12 and server_version in versions:
            return client12.handle_server_hello(io, self.sent, sh, raw)
        raise ProtocolVersionError(
            f"the server chose {server_version.label}, but this client accepts only "
            f"{_versions_text(versions)} (TLS 1.1 and below are deprecated, RFC 8996)",
                                   check="sh_version_not_offered")

"""Malformed, tampered and hostile TLS 1.2 handshake input gets the RFC's answer.

A key-aware man in the middle (tests/mitm12.py) changes, truncates or forges the TLS 1.2
messages between a real tlsmith client and server. Where a forgery must get past the
signature to reach the check under test, the test holds the server's private key and
re-signs the ServerKeyExchange (RFC 5246 §7.4.3).

Each attack checks the typed error (its ``.alert`` is the RFC's alert), that fatal alert
as the victim's last record, and a dead connection afterwards.

Truncation tests replay one recorded flight to fresh victims: both sides draw from
``deterministic_random``, so every rebuilt pair sends the same hellos and key shares.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import CertFiles
from mitm import (
    assert_dead,
    body_of,
    edit_server_hello,
    handshake_message,
    plaintext_record,
    run,
)
from mitm12 import (
    CCS,
    Flight12,
    Mitm12,
    Session12,
    deterministic,
    expect_alert12,
    handshake_record,
    patch_client_hello,
    read_alert12,
    without_extensions,
)
from pair import configs
from tlsmith.codec import extensions as ext
from tlsmith.codec.enums import (
    AlertDescription,
    AlertLevel,
    CipherSuite,
    ClientCertificateType,
    ContentType,
    ECCurveType,
    ExtensionType,
    HandshakeType,
    NamedGroup,
    ProtocolVersion,
    SignatureScheme,
)
from tlsmith.codec.messages import ClientHello, ServerHello
from tlsmith.codec.messages12 import (
    Certificate12,
    CertificateRequest12,
    ClientKeyExchangeDHE,
    ClientKeyExchangeECDHE,
    ClientKeyExchangeRSA,
    ServerKeyExchangeDHE,
    ServerKeyExchangeECDHE,
)
from tlsmith.config import ClientConfig, ServerConfig
from tlsmith.connection import TLSConnection
from tlsmith.crypto import kx, prf12, sig
from tlsmith.crypto.suites import TLS12_SUITES
from tlsmith.errors import (
    AlertReceived,
    BadRecordMac,
    DecodeError,
    DecryptError,
    HandshakeFailure,
    IllegalParameter,
    InsufficientSecurity,
    InternalError,
    ProtocolError,
    ProtocolVersionError,
    TLSError,
    UnsupportedCertificate,
    UnsupportedExtension,
)
from tlsmith.events import ApplicationData, HandshakeComplete
from tlsmith.observe import CheckTrace, MessageTrace, NoteTrace, SecretTrace
from tlsmith.x509.keys import load_private_key

H = HandshakeType
A = AlertDescription
TLS12 = ProtocolVersion.TLS12
S = CipherSuite
ECDHE_ECDSA = S.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
ECDHE_RSA = S.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
DHE_RSA = S.TLS_DHE_RSA_WITH_AES_128_GCM_SHA256
RSA_KX = S.TLS_RSA_WITH_AES_128_GCM_SHA256
FFDHE2048_P, FFDHE2048_G = kx.ffdhe_params(NamedGroup.FFDHE2048)


def configs12(cert: CertFiles, **kw: Any) -> tuple[ClientConfig, ServerConfig]:
    """Both sides TLS 1.2 only; the server also allows RSA key transport when the
    client asks only for it."""
    server_kw = {"max_version": TLS12, **kw.pop("server", {})}
    kw.setdefault("max_version", TLS12)
    suites = kw.get("cipher_suites", ())
    if suites and all(TLS12_SUITES[s].key_exchange == "rsa" for s in suites):
        server_kw.setdefault("allow_rsa_key_exchange", True)
        server_kw.setdefault("cipher_suites", suites)
    return configs(cert, server=server_kw, **kw)


def _int(n: int, length: int | None = None) -> bytes:
    return n.to_bytes(length or max(1, (n.bit_length() + 7) // 8), "big")


# -- recorded handshakes, replayed to fresh victims --------------------------------------
@dataclass
class Recorded:
    """A deterministic TLS 1.2 handshake, recorded once."""

    cert: CertFiles
    ccfg: ClientConfig
    scfg: ServerConfig
    seed: bytes
    server_messages: list[bytes]  # SH, Certificate, [SKE], SHD
    client_flight: Flight12  # [Certificate] CKE, CCS, Finished
    server_final: bytes  # CCS, Finished
    session: Session12

    def fresh(self) -> Mitm12:
        return Mitm12(*deterministic(self.ccfg, self.scfg, self.seed))

    def get(self, msg_type: HandshakeType) -> bytes:
        return next(m for m in self.server_messages if m[0] == msg_type)

    def client_before(self, msg_type: HandshakeType) -> Mitm12:
        """A fresh client that has had the server's messages before ``msg_type``."""
        m = self.fresh()
        prefix = []
        for msg in self.server_messages:
            if msg[0] == msg_type:
                break
            prefix.append(msg)
        if prefix:
            assert m.to_client(b"".join(handshake_record(x) for x in prefix)) == []
        return m

    def client_awaiting_finished(self) -> Mitm12:
        m = self.fresh()
        m.to_client(b"".join(handshake_record(x) for x in self.server_messages) + CCS)
        assert m.client.state_name == "ExpectFinished"
        return m

    def server_awaiting(self, stage: str) -> Mitm12:
        """A fresh server in ExpectClientKeyExchange or ExpectFinished. (Its signature
        is new -- ECDSA and RSA-PSS are randomized -- so with the extended master secret
        its keys differ from the recording: ask ``server_session``.)"""
        m = self.fresh()
        m.server_hello_flight()
        if stage == "ExpectFinished":
            assert m.to_server(self.client_flight.plaintext_data + CCS) == []
        assert m.server.state_name == stage
        return m

    def server_session(self, m: Mitm12) -> Session12:
        return m.session()

    def client_finished_for(self, m: Mitm12) -> bytes:
        """The genuine client Finished for the fresh server of ``m`` (in ExpectFinished)."""
        assert m.server_flight is not None
        transcript = (m.client_hello + b"".join(m.server_flight.messages)
                      + b"".join(self.client_flight.messages))
        return m.session().finished(transcript, client=True)


_RECORDED: dict[tuple[str, CipherSuite], Recorded] = {}


def recorded(cert: CertFiles, suite: CipherSuite) -> Recorded:
    key = (cert.key_type, suite)
    if key not in _RECORDED:
        ccfg, scfg = configs12(cert, cipher_suites=(suite,))
        seed = f"{cert.key_type} {suite.name}".encode()
        m = Mitm12(*deterministic(ccfg, scfg, seed))
        f = m.server_hello_flight()
        m.to_client(f.data)
        cf = m.client_flight()
        session = m.session()
        m.to_server(cf.data)
        final = m.server.data_to_send()
        assert isinstance(m.to_client(final)[0], HandshakeComplete)
        _RECORDED[key] = Recorded(cert, ccfg, scfg, seed, f.messages, cf, final, session)
    return _RECORDED[key]


@pytest.fixture
def ecdsa(certs: dict[str, CertFiles]) -> CertFiles:
    return certs["ecdsa-p256"]


@pytest.fixture
def rsa_cert(certs: dict[str, CertFiles]) -> CertFiles:
    return certs["rsa-2048"]


def test_recorded_flights_replay(certs: dict[str, CertFiles]) -> None:
    """Control: a recorded flight completes a handshake with a freshly built peer."""
    for cert, suite in ((certs["ecdsa-p256"], ECDHE_ECDSA), (certs["rsa-2048"], DHE_RSA),
                        (certs["rsa-2048"], RSA_KX)):
        rec = recorded(cert, suite)
        if suite != RSA_KX:  # (PKCS #1 v1.5 encryption is randomized: no replay there)
            m = rec.client_awaiting_finished()
            final = Flight12.parse(rec.server_final).protected_data
            assert isinstance(m.to_client(final)[0], HandshakeComplete)
        m = rec.server_awaiting("ExpectFinished")
        channel = m.session().channel(client=True)
        events = m.to_server(channel.handshake(rec.client_finished_for(m)))
        assert isinstance(events[0], HandshakeComplete)


# -- truncated and over-long messages ----------------------------------------------------
CLIENT_TARGETS = {
    "ServerHello": (ECDHE_ECDSA, H.SERVER_HELLO),
    "Certificate": (ECDHE_ECDSA, H.CERTIFICATE),
    "ServerKeyExchange-ECDHE": (ECDHE_ECDSA, H.SERVER_KEY_EXCHANGE),
    "ServerKeyExchange-DHE": (DHE_RSA, H.SERVER_KEY_EXCHANGE),
    "CertificateRequest": (ECDHE_ECDSA, H.CERTIFICATE_REQUEST),
    "ServerHelloDone": (ECDHE_ECDSA, H.SERVER_HELLO_DONE),
    "Finished": (ECDHE_ECDSA, H.FINISHED),
}
# ServerHello up to its compression method is a complete TLS 1.2 ServerHello without
# extensions (RFC 5246 §7.4.1.3): it parses, and lacks extended_master_secret.
_SH_WITHOUT_EXTENSIONS = 2 + 32 + 1 + 2 + 1


def _cert_for(certs: dict[str, CertFiles], suite: CipherSuite) -> CertFiles:
    return certs["rsa-2048"] if suite in (DHE_RSA, RSA_KX, ECDHE_RSA) else certs["ecdsa-p256"]


def _certificate_request() -> bytes:
    return CertificateRequest12((ClientCertificateType.ECDSA_SIGN,
                                 ClientCertificateType.RSA_SIGN),
                                (SignatureScheme.ECDSA_SECP256R1_SHA256,
                                 SignatureScheme.RSA_PSS_RSAE_SHA256),
                                (b"\x30\x00",)).serialize()


def _client_target(rec: Recorded, msg_type: HandshakeType
                   ) -> tuple[bytes, Callable[[], tuple[Mitm12, Callable[[bytes], bytes]]]]:
    """The genuine message, and a factory of (fresh victim, how to wrap a message)."""
    if msg_type == H.FINISHED:
        fin = rec.session.open(Flight12.parse(rec.server_final).protected, client=False)
        raw = fin[0][1]

        def at_finished() -> tuple[Mitm12, Callable[[bytes], bytes]]:
            channel = rec.session.channel(client=False)
            return rec.client_awaiting_finished(), channel.handshake
        return raw, at_finished
    if msg_type == H.CERTIFICATE_REQUEST:
        def at_request() -> tuple[Mitm12, Callable[[bytes], bytes]]:
            return rec.client_before(H.SERVER_HELLO_DONE), handshake_record
        return _certificate_request(), at_request

    def before() -> tuple[Mitm12, Callable[[bytes], bytes]]:
        return rec.client_before(msg_type), handshake_record
    return rec.get(msg_type), before


@pytest.mark.parametrize("target", list(CLIENT_TARGETS))
def test_client_truncated_message(certs: dict[str, CertFiles], target: str) -> None:
    """Every prefix of each message the client parses (the header's length fixed up):
    decode_error (RFC 5246 §7.2.2), except a prefix that is itself a legal message."""
    suite, msg_type = CLIENT_TARGETS[target]
    rec = recorded(_cert_for(certs, suite), suite)
    raw, victim_at = _client_target(rec, msg_type)
    body = body_of(raw)
    for k in range(len(body)):
        m, wrap = victim_at()
        error: type[ProtocolError] = DecodeError
        if msg_type == H.SERVER_HELLO and k == _SH_WITHOUT_EXTENSIONS:
            error = HandshakeFailure  # a ServerHello without extensions has no EMS
        try:
            expect_alert12(m.client, wrap(handshake_message(msg_type, body[:k])), error,
                           rec.session)
        except AssertionError as exc:
            raise AssertionError(f"{target} truncated to {k} of {len(body)}: {exc}") from exc


@pytest.mark.parametrize("target", list(CLIENT_TARGETS))
def test_client_message_with_trailing_byte(certs: dict[str, CertFiles], target: str) -> None:
    suite, msg_type = CLIENT_TARGETS[target]
    rec = recorded(_cert_for(certs, suite), suite)
    raw, victim_at = _client_target(rec, msg_type)
    m, wrap = victim_at()
    expect_alert12(m.client, wrap(handshake_message(msg_type, body_of(raw) + b"\x00")),
                   DecodeError, rec.session)


SERVER_TARGETS = {
    "ClientHello": (ECDHE_ECDSA, H.CLIENT_HELLO),
    "ClientKeyExchange-ECDHE": (ECDHE_ECDSA, H.CLIENT_KEY_EXCHANGE),
    "ClientKeyExchange-DHE": (DHE_RSA, H.CLIENT_KEY_EXCHANGE),
    "ClientKeyExchange-RSA": (RSA_KX, H.CLIENT_KEY_EXCHANGE),
    "Finished": (ECDHE_ECDSA, H.FINISHED),
}


def _server_target(rec: Recorded, msg_type: HandshakeType
                   ) -> tuple[bytes, Callable[[], tuple[Mitm12, Callable[[bytes], bytes]]]]:
    if msg_type == H.CLIENT_HELLO:
        def fresh() -> tuple[Mitm12, Callable[[bytes], bytes]]:
            return rec.fresh(), handshake_record
        return rec.fresh().client_hello, fresh
    if msg_type == H.CLIENT_KEY_EXCHANGE:
        def at_cke() -> tuple[Mitm12, Callable[[bytes], bytes]]:
            return rec.server_awaiting("ExpectClientKeyExchange"), handshake_record
        return rec.client_flight.get(H.CLIENT_KEY_EXCHANGE), at_cke
    fin = rec.session.open(rec.client_flight.protected, client=True)[0][1]

    def at_finished() -> tuple[Mitm12, Callable[[bytes], bytes]]:
        m = rec.server_awaiting("ExpectFinished")
        return m, m.session().channel(client=True).handshake
    return fin, at_finished


def _client_hello_without_extensions_length(raw: bytes) -> int:
    ch = ClientHello.parse_body(body_of(raw))
    return 2 + 32 + 1 + len(ch.legacy_session_id) + 2 + 2 * len(ch.cipher_suites) + 1 + len(
        ch.legacy_compression_methods)


@pytest.mark.parametrize("target", list(SERVER_TARGETS))
def test_server_truncated_message(certs: dict[str, CertFiles], target: str) -> None:
    suite, msg_type = SERVER_TARGETS[target]
    rec = recorded(_cert_for(certs, suite), suite)
    raw, victim_at = _server_target(rec, msg_type)
    body = body_of(raw)
    for k in range(len(body)):
        m, wrap = victim_at()
        error: type[ProtocolError] = DecodeError
        if msg_type == H.CLIENT_HELLO and k == _client_hello_without_extensions_length(raw):
            error = HandshakeFailure  # a legal ClientHello without extensions: no EMS
        try:
            expect_alert12(m.server, wrap(handshake_message(msg_type, body[:k])), error,
                           rec.session)
        except AssertionError as exc:
            raise AssertionError(f"{target} truncated to {k} of {len(body)}: {exc}") from exc


@pytest.mark.parametrize("target", list(SERVER_TARGETS))
def test_server_message_with_trailing_byte(certs: dict[str, CertFiles], target: str) -> None:
    suite, msg_type = SERVER_TARGETS[target]
    rec = recorded(_cert_for(certs, suite), suite)
    raw, victim_at = _server_target(rec, msg_type)
    m, wrap = victim_at()
    expect_alert12(m.server, wrap(handshake_message(msg_type, body_of(raw) + b"\x00")),
                   DecodeError, rec.session)


# -- ServerHello ---------------------------------------------------------------------------
def sh_attack(cert: CertFiles, error: type[ProtocolError], *, client: dict[str, Any] | None = None,
              server: dict[str, Any] | None = None, match: str | None = None,
              **changes: Any) -> ProtocolError:
    kw: dict[str, Any] = dict(client or {})
    m = Mitm12(*configs12(cert, server=server or {}, **kw))
    raw = m.server_hello_flight().get(H.SERVER_HELLO)
    if callable(changes.get("extensions")):
        changes["extensions"] = changes["extensions"](m.server_hello.extensions)
    return expect_alert12(m.client, handshake_record(edit_server_hello(raw, **changes)),
                          error, match=match)


def _plus(extension: ext.Extension) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    def edit(extensions: tuple[Any, ...]) -> tuple[Any, ...]:
        kept = tuple(e for e in extensions if e.extension_type != extension.extension_type)
        return (*kept, extension)
    return edit


def test_server_hello_suite_not_offered(ecdsa: CertFiles) -> None:
    """RFC 5246 §7.4.1.3: a cipher suite the client did not offer -> illegal_parameter."""
    sh_attack(ecdsa, IllegalParameter, client={"cipher_suites": (ECDHE_ECDSA,)},
              cipher_suite=ECDHE_RSA)


@pytest.mark.parametrize("suite", [S.TLS_AES_128_GCM_SHA256, S.TLS_AES_256_GCM_SHA384],
                         ids=lambda s: s.name)
def test_server_hello_tls13_suite_for_tls12(ecdsa: CertFiles, suite: CipherSuite) -> None:
    """A client offering TLS 1.3 and 1.2 gets a TLS 1.2 ServerHello naming a TLS 1.3
    suite (which it did offer): illegal_parameter."""
    sh_attack(ecdsa, IllegalParameter, client={"max_version": ProtocolVersion.TLS13},
              match="not a TLS 1.2 suite", cipher_suite=suite)


def test_server_hello_fallback_scsv_as_suite(ecdsa: CertFiles) -> None:
    sh_attack(ecdsa, IllegalParameter, client={"send_fallback_scsv": True},
              cipher_suite=S.TLS_FALLBACK_SCSV)


@pytest.mark.parametrize("method", [1, 64, 255])
def test_server_hello_compression_not_null(ecdsa: CertFiles, method: int) -> None:
    """RFC 5246 §7.4.1.3: a compression method the client did not offer."""
    sh_attack(ecdsa, IllegalParameter, legacy_compression_method=method)


@pytest.mark.parametrize("value", [b"\x00" * 12, b"\x01" * 24], ids=["12", "24"])
def test_server_hello_renegotiation_info_not_empty(ecdsa: CertFiles, value: bytes) -> None:
    """RFC 5746 §3.4: a non-empty renegotiated_connection in an initial handshake ->
    handshake_failure."""
    sh_attack(ecdsa, HandshakeFailure, extensions=_plus(ext.RenegotiationInfo(value)))


def test_server_hello_encrypt_then_mac_with_aead(ecdsa: CertFiles) -> None:
    """RFC 7366 §3: encrypt_then_mac in answer to an AEAD suite -> illegal_parameter (the
    client offered it, for its CBC suites)."""
    sh_attack(ecdsa, IllegalParameter, extensions=_plus(ext.EncryptThenMac()))


@pytest.mark.parametrize("version", [0x0302, 0x0301, 0x0300, 0x0304, 0x7F1C],
                         ids=lambda v: f"{v:04x}")
def test_server_hello_version_not_offered(ecdsa: CertFiles, version: int) -> None:
    """RFC 5246 §E.1 / RFC 8996: nothing below TLS 1.2; TLS 1.3 only by
    supported_versions, which this client did not send."""
    sh_attack(ecdsa, ProtocolVersionError, legacy_version=ProtocolVersion(version))


@pytest.mark.parametrize("extension", [
    ext.SessionTicket(b""),  # not offered: session_tickets=False
    ext.KeyShareServerHello(ext.KeyShareEntry(NamedGroup.X25519, bytes(range(1, 33)))),
    ext.UnknownExtension(ExtensionType(0x7777), b""),
], ids=["session_ticket", "key_share", "unknown"])
def test_server_hello_extension_not_offered(ecdsa: CertFiles, extension: Any) -> None:
    """RFC 5246 §7.4.1.4: only extensions the client offered -> unsupported_extension."""
    sh_attack(ecdsa, UnsupportedExtension, client={"session_tickets": False},
              extensions=_plus(extension))


def test_server_hello_key_share_with_tls13_client(ecdsa: CertFiles) -> None:
    """A TLS 1.3-only extension in a TLS 1.2 ServerHello, even one the client offered."""
    sh_attack(ecdsa, UnsupportedExtension, client={"max_version": ProtocolVersion.TLS13},
              extensions=_plus(ext.KeyShareServerHello(
                  ext.KeyShareEntry(NamedGroup.X25519, bytes(range(1, 33))))))


def test_server_hello_point_formats_without_uncompressed(ecdsa: CertFiles) -> None:
    """RFC 8422 §5.2: the uncompressed point format MUST be in the list."""
    sh_attack(ecdsa, IllegalParameter, extensions=_plus(ext.ECPointFormats((1, 2))))


@pytest.mark.parametrize(("chosen", "error"), [((b"h3",), IllegalParameter),
                                               ((b"h2", b"http/1.1"), DecodeError)],
                         ids=["other", "two"])
def test_server_hello_alpn_not_offered(ecdsa: CertFiles, chosen: tuple[bytes, ...],
                                       error: type[ProtocolError]) -> None:
    """RFC 7301 §3.1: exactly one protocol (the codec's structure: decode_error), one the
    client offered (illegal_parameter)."""
    sh_attack(ecdsa, error, client={"alpn_protocols": ("h2", "http/1.1")},
              extensions=_plus(ext.ApplicationLayerProtocolNegotiation(chosen)))


def test_server_hello_echoes_session_id(ecdsa: CertFiles) -> None:
    """A TLS 1.3-capable client sends a session id (RFC 8446 §D.4) but offers nothing to
    resume: an echo would claim an abbreviated handshake (RFC 5246 §7.4.1.3)."""
    m = Mitm12(*configs(ecdsa, server={"max_version": TLS12}))
    raw = m.server_hello_flight().get(H.SERVER_HELLO)
    sid = ClientHello.parse_body(body_of(m.client_hello)).legacy_session_id
    assert sid
    expect_alert12(m.client, handshake_record(edit_server_hello(
        raw, legacy_session_id_echo=sid)), IllegalParameter)


def test_server_hello_duplicate_extension(ecdsa: CertFiles) -> None:
    m = Mitm12(*configs12(ecdsa))
    raw = m.server_hello_flight().get(H.SERVER_HELLO)
    exts = m.server_hello.extensions
    forged = edit_server_hello(raw, extensions=(*exts, exts[0]))
    expect_alert12(m.client, handshake_record(forged), IllegalParameter)


# -- Certificate -----------------------------------------------------------------------------
def _deliver_up_to(m: Mitm12, msg_type: HandshakeType) -> list[bytes]:
    """Deliver the server's genuine messages before ``msg_type``; return the flight."""
    f = m.server_hello_flight()
    before = []
    for msg in f.messages:
        if msg[0] == msg_type:
            break
        before.append(msg)
    if before:
        assert m.to_client(b"".join(handshake_record(x) for x in before)) == []
    return f.messages


def test_certificate_empty(ecdsa: CertFiles) -> None:
    m = Mitm12(*configs12(ecdsa))
    _deliver_up_to(m, H.CERTIFICATE)
    expect_alert12(m.client, handshake_record(Certificate12(()).serialize()), DecodeError)


def test_certificate_key_does_not_fit_the_suite(certs: dict[str, CertFiles]) -> None:
    """RFC 5246 §7.4.2: an ECDHE_ECDSA suite needs an ECDSA certificate."""
    m = Mitm12(*configs12(certs["ecdsa-p256"]))
    _deliver_up_to(m, H.CERTIFICATE)
    rsa_flight = recorded(certs["rsa-2048"], DHE_RSA).get(H.CERTIFICATE)
    expect_alert12(m.client, handshake_record(rsa_flight), UnsupportedCertificate)


# -- ServerKeyExchange -------------------------------------------------------------------
def _sign(m: Mitm12, cert: CertFiles, ske: Any, scheme: SignatureScheme) -> bytes:
    """``ske`` re-signed with the server's key (RFC 5246 §7.4.3: over both randoms and
    the params)."""
    key = load_private_key(cert.key_path)
    ch = ClientHello.parse_body(body_of(m.client_hello))
    content = ch.random + m.server_hello.random + ske.params_bytes()
    return replace(ske, algorithm=scheme, signature=sig.sign(scheme, key, content)).serialize()


def ske_attack(cert: CertFiles, error: type[ProtocolError], forge: Callable[[Mitm12, Any], bytes],
               *, then_done: bool = False, **client_kw: Any) -> ProtocolError:
    """Replace the genuine ServerKeyExchange with ``forge(m, genuine)``."""
    m = Mitm12(*configs12(cert, **client_kw))
    msgs = _deliver_up_to(m, H.SERVER_KEY_EXCHANGE)
    raw = next(x for x in msgs if x[0] == H.SERVER_KEY_EXCHANGE)
    dhe = m.suite.key_exchange == "dhe"
    genuine = (ServerKeyExchangeDHE if dhe else ServerKeyExchangeECDHE).parse_body(body_of(raw))
    data = handshake_record(forge(m, genuine))
    if then_done:
        data += handshake_record(msgs[-1])
    return expect_alert12(m.client, data, error)


def _flip(data: bytes, index: int) -> bytes:
    b = bytearray(data)
    b[index] ^= 0x01
    return bytes(b)


@pytest.mark.parametrize(("key_type", "suite"), [("ecdsa-p256", ECDHE_ECDSA),
                                                 ("ed25519", ECDHE_ECDSA),
                                                 ("rsa-2048", ECDHE_RSA),
                                                 ("rsa-2048", DHE_RSA)],
                         ids=lambda v: getattr(v, "name", v))
@pytest.mark.parametrize("where", ["signature", "params", "random"])
def test_ske_signature_does_not_verify(certs: dict[str, CertFiles], key_type: str,
                                       suite: CipherSuite, where: str) -> None:
    """RFC 5246 §7.4.3 / §7.2.2: a ServerKeyExchange signature that does not verify ->
    decrypt_error (a flipped bit in the signature, or in what it covers)."""
    def forge(m: Mitm12, ske: Any) -> bytes:
        raw = ske.serialize()
        if where == "signature":
            return _flip(raw, len(raw) - 5)
        if where == "params":
            return _flip(raw, 4 + (5 if suite != DHE_RSA else 40))
        # Signed over another server random: the signature no longer matches.
        return replace(ske, signature=sig.sign(
            ske.algorithm, load_private_key(certs[key_type].key_path),
            ClientHello.parse_body(body_of(m.client_hello)).random + bytes(32)
            + ske.params_bytes())).serialize()
    ske_attack(certs[key_type], DecryptError, forge, cipher_suites=(suite,))


def test_ske_scheme_not_offered(rsa_cert: CertFiles) -> None:
    """RFC 5246 §7.4.3: the scheme must be one the client offered -> illegal_parameter."""
    def forge(m: Mitm12, ske: Any) -> bytes:
        return _sign(m, rsa_cert, ske, SignatureScheme.RSA_PKCS1_SHA256)
    ske_attack(rsa_cert, IllegalParameter, forge, cipher_suites=(ECDHE_RSA,),
               signature_schemes=(SignatureScheme.RSA_PSS_RSAE_SHA256,))


def test_ske_scheme_does_not_fit_the_key(ecdsa: CertFiles) -> None:
    """An RSA scheme (offered) for an ECDSA certificate -> illegal_parameter."""
    def forge(m: Mitm12, ske: Any) -> bytes:
        return replace(ske, algorithm=SignatureScheme.RSA_PSS_RSAE_SHA256,
                       signature=bytes(256)).serialize()
    ske_attack(ecdsa, IllegalParameter, forge)


@pytest.mark.parametrize(("key_type", "offered", "group"), [
    ("rsa-2048", (NamedGroup.X25519,), NamedGroup.SECP256R1),
    ("ecdsa-p256", (NamedGroup.X25519, NamedGroup.SECP256R1), NamedGroup.SECP384R1),
    ("ecdsa-p256", (NamedGroup.X25519, NamedGroup.SECP256R1), NamedGroup(0x7777)),
], ids=["secp256r1", "secp384r1", "unknown"])
def test_ske_curve_not_offered(certs: dict[str, CertFiles], key_type: str,
                               offered: tuple[NamedGroup, ...], group: NamedGroup) -> None:
    """RFC 8422 §5.4: a curve the client did not offer -> illegal_parameter (re-signed,
    so only the curve is wrong). (An ECDSA certificate's own curve must be offered,
    RFC 8422 §5.3.)"""
    cert = certs[key_type]
    rsa_key = key_type == "rsa-2048"
    scheme = (SignatureScheme.RSA_PSS_RSAE_SHA256 if rsa_key
              else SignatureScheme.ECDSA_SECP256R1_SHA256)

    def forge(m: Mitm12, ske: Any) -> bytes:
        point = (kx.generate_key_share(group, os.urandom).public_bytes
                 if group.known else b"\x04" + bytes(64))
        return _sign(m, cert, replace(ske, named_curve=group, public=point), scheme)
    ske_attack(cert, IllegalParameter, forge, groups=offered, key_share_groups=offered[:1],
               cipher_suites=(ECDHE_RSA if rsa_key else ECDHE_ECDSA,))


def test_ske_explicit_curve(ecdsa: CertFiles) -> None:
    """RFC 8422 §5.4: only named_curve; explicit curves are illegal_parameter."""
    def forge(m: Mitm12, ske: Any) -> bytes:
        raw = bytearray(ske.serialize())
        raw[4] = ECCurveType.EXPLICIT_PRIME
        return bytes(raw)
    ske_attack(ecdsa, IllegalParameter, forge)


@pytest.mark.parametrize(("group", "point"), [
    (NamedGroup.X25519, bytes(32)),  # all-zero shared secret
    (NamedGroup.X25519, bytes(range(1, 32))),  # 31 bytes
    (NamedGroup.SECP256R1, b"\x04" + bytes(range(1, 65))),  # not on the curve
    (NamedGroup.SECP256R1, b"\x02" + bytes(range(1, 33))),  # compressed form
    (NamedGroup.SECP256R1, b"\x04"),  # the point at infinity's encoding
], ids=["x25519-zero", "x25519-short", "p256-off-curve", "p256-compressed", "p256-04"])
def test_ske_invalid_point(ecdsa: CertFiles, group: NamedGroup, point: bytes) -> None:
    """RFC 8422 §5.4 / §5.11: the server's point must be valid -> illegal_parameter
    (detected when the client uses it, after ServerHelloDone)."""
    def forge(m: Mitm12, ske: Any) -> bytes:
        return _sign(m, ecdsa, replace(ske, named_curve=group, public=point),
                     SignatureScheme.ECDSA_SECP256R1_SHA256)
    groups = tuple(dict.fromkeys((group, NamedGroup.SECP256R1)))  # RFC 8422 §5.3
    ske_attack(ecdsa, IllegalParameter, forge, then_done=True, groups=groups,
               key_share_groups=(group,))


def _dhe(cert: CertFiles, p: int, g: int, ys: int) -> Callable[[Mitm12, Any], bytes]:
    def forge(m: Mitm12, ske: Any) -> bytes:
        return _sign(m, cert, replace(ske, dh_p=_int(p), dh_g=_int(g), dh_Ys=_int(ys)),
                     SignatureScheme.RSA_PSS_RSAE_SHA256)
    return forge


@pytest.mark.parametrize("bits", [512, 1024, 2047])
def test_ske_dhe_prime_too_small(rsa_cert: CertFiles, bits: int) -> None:
    """RFC 7919 §3.1 / Logjam: a server-chosen group below min_dhe_bits (2048) ->
    insufficient_security."""
    p = (1 << (bits - 1)) | 0x3B  # odd, exactly ``bits`` bits (primality is not the point)
    ske_attack(rsa_cert, InsufficientSecurity, _dhe(rsa_cert, p, 2, 5), cipher_suites=(DHE_RSA,))


@pytest.mark.parametrize("ys", ["0", "1", "p-1", "p", "p+1"])
def test_ske_dhe_public_value_out_of_range(rsa_cert: CertFiles, ys: str) -> None:
    """RFC 7919 §3: the client MUST check 1 < dh_Ys < dh_p - 1, else handshake_failure."""
    p = FFDHE2048_P
    value = {"0": 0, "1": 1, "p-1": p - 1, "p": p, "p+1": p + 1}[ys]
    ske_attack(rsa_cert, HandshakeFailure, _dhe(rsa_cert, p, FFDHE2048_G, value),
               cipher_suites=(DHE_RSA,))


@pytest.mark.parametrize("g", ["1", "p-1", "0"])
def test_ske_dhe_generator_out_of_range(rsa_cert: CertFiles, g: str) -> None:
    p = FFDHE2048_P
    value = {"0": 0, "1": 1, "p-1": p - 1}[g]
    ske_attack(rsa_cert, IllegalParameter, _dhe(rsa_cert, p, value, 5), cipher_suites=(DHE_RSA,))


def test_ske_dhe_custom_group_is_accepted(rsa_cert: CertFiles) -> None:
    """Control: a valid, re-signed ServerKeyExchange with other (custom, 2048-bit)
    parameters gets past every check: the forged signature machinery is sound."""
    m = Mitm12(*configs12(rsa_cert, cipher_suites=(DHE_RSA,)))
    msgs = _deliver_up_to(m, H.SERVER_KEY_EXCHANGE)
    ske = ServerKeyExchangeDHE.parse_body(body_of(msgs[2]))
    forged = _dhe(rsa_cert, FFDHE2048_P, FFDHE2048_G, pow(FFDHE2048_G, 12345, FFDHE2048_P))(m, ske)
    assert m.to_client(handshake_record(forged) + handshake_record(msgs[3])) == []
    assert m.client.state_name == "AwaitChangeCipherSpec"


# -- CertificateRequest, ServerHelloDone, Finished ------------------------------------------
@pytest.mark.parametrize("body", [
    b"\x00" + b"\x00\x02\x04\x03" + b"\x00\x00",  # no certificate types
    b"\x01\x40" + b"\x00\x00" + b"\x00\x00",  # no signature algorithms
    b"\x01\x40" + b"\x00\x03\x04\x03\x05" + b"\x00\x00",  # odd algorithms length
    b"\x01\x40" + b"\x00\x02\x04\x03" + b"\x00\x02\x00\x00",  # an empty DN
], ids=["no-types", "no-algorithms", "odd-algorithms", "empty-dn"])
def test_certificate_request_malformed(ecdsa: CertFiles, body: bytes) -> None:
    """RFC 5246 §7.4.4: vectors with minimum lengths -> decode_error."""
    m = Mitm12(*configs12(ecdsa))
    _deliver_up_to(m, H.SERVER_HELLO_DONE)
    expect_alert12(m.client, handshake_record(handshake_message(H.CERTIFICATE_REQUEST, body)),
                   DecodeError)


def test_certificate_request_is_answered_with_empty_certificate(ecdsa: CertFiles) -> None:
    """Control: RFC 5246 §7.4.6: with no certificate, the client sends an empty one."""
    m = Mitm12(*configs12(ecdsa))
    msgs = _deliver_up_to(m, H.SERVER_HELLO_DONE)
    m.to_client(handshake_record(_certificate_request()) + handshake_record(msgs[-1]))
    cf = m.client_flight()
    assert [x[0] for x in cf.messages] == [H.CERTIFICATE, H.CLIENT_KEY_EXCHANGE]
    assert Certificate12.parse_body(body_of(cf.messages[0])).certificate_list == ()


@pytest.mark.parametrize("forge", ["zeros", "client_label", "flipped"])
def test_client_server_finished_wrong(ecdsa: CertFiles, forge: str) -> None:
    """RFC 5246 §7.4.9: a Finished that does not verify -> decrypt_error (the client
    already switched its write keys: the alert is protected)."""
    rec = recorded(ecdsa, ECDHE_ECDSA)
    m = rec.client_awaiting_finished()
    genuine = rec.session.open(Flight12.parse(rec.server_final).protected, client=False)[0][1]
    fin = {
        "zeros": handshake_message(H.FINISHED, bytes(12)),
        "flipped": _flip(genuine, 10),
        "client_label": rec.session.open(rec.client_flight.protected, client=True)[0][1],
    }[forge]
    expect_alert12(m.client, rec.session.channel(client=False).handshake(fin), DecryptError,
                   rec.session, protected=True)


def test_server_client_finished_wrong(ecdsa: CertFiles) -> None:
    rec = recorded(ecdsa, ECDHE_ECDSA)
    m = rec.server_awaiting("ExpectFinished")
    expect_alert12(m.server, m.session().channel(client=True).handshake(
        _flip(rec.client_finished_for(m), 10)), DecryptError, protected=False)


@pytest.mark.parametrize("role", ["client", "server"])
def test_finished_record_corrupted(ecdsa: CertFiles, role: str) -> None:
    """RFC 5246 §6.2.3.3: a protected record that does not authenticate ->
    bad_record_mac."""
    rec = recorded(ecdsa, ECDHE_ECDSA)
    if role == "client":
        m = rec.client_awaiting_finished()
        data, victim = Flight12.parse(rec.server_final).protected_data, m.client
    else:
        m = rec.server_awaiting("ExpectFinished")
        data = m.session().channel(client=True).handshake(rec.client_finished_for(m))
        victim = m.server
    expect_alert12(victim, _flip(data, len(data) - 3), BadRecordMac, rec.session)


# -- ClientKeyExchange (server victim) ---------------------------------------------------
@pytest.mark.parametrize(("group", "point"), [
    (NamedGroup.X25519, bytes(32)),
    (NamedGroup.X25519, bytes(range(1, 34))),
    (NamedGroup.SECP256R1, b"\x04" + bytes(range(1, 65))),
    (NamedGroup.SECP256R1, b"\x03" + bytes(range(1, 33))),
    (NamedGroup.SECP384R1, b"\x04" + bytes(96)),
], ids=["x25519-zero", "x25519-long", "p256-off-curve", "p256-compressed", "p384-zero"])
def test_server_cke_invalid_point(ecdsa: CertFiles, group: NamedGroup, point: bytes) -> None:
    """RFC 8422 §5.7 / §5.11: the client's point must be valid -> illegal_parameter."""
    groups = tuple(dict.fromkeys((group, NamedGroup.SECP256R1)))  # RFC 8422 §5.3
    m = Mitm12(*configs12(ecdsa, groups=groups, key_share_groups=(group,),
                          server={"groups": (group,)}))
    m.server_hello_flight()
    ske = ServerKeyExchangeECDHE.parse_body(body_of(
        m.server_flight.get(H.SERVER_KEY_EXCHANGE)))  # type: ignore[union-attr]
    assert ske.named_curve == group
    expect_alert12(m.server, handshake_record(ClientKeyExchangeECDHE(point).serialize()),
                   IllegalParameter)


@pytest.mark.parametrize("yc", ["0", "1", "p-1", "p", "2^2048"])
def test_server_cke_dhe_out_of_range(rsa_cert: CertFiles, yc: str) -> None:
    """RFC 7919 §4: the server MUST check 1 < dh_Yc < dh_p - 1, else handshake_failure."""
    p = FFDHE2048_P
    value = {"0": 0, "1": 1, "p-1": p - 1, "p": p, "2^2048": 1 << 2048}[yc]
    m = Mitm12(*configs12(rsa_cert, cipher_suites=(DHE_RSA,)))
    m.server_hello_flight()
    expect_alert12(m.server, handshake_record(ClientKeyExchangeDHE(_int(value)).serialize()),
                   HandshakeFailure)


# -- CBC records: bad padding and bad MAC look the same -------------------------------------
def _cbc_pair(cert: CertFiles, etm: bool, monkeypatch: pytest.MonkeyPatch,
              suite: CipherSuite) -> tuple[TLSConnection, TLSConnection, Session12]:
    if not etm:
        patch_client_hello(monkeypatch, without_extensions(ExtensionType.ENCRYPT_THEN_MAC))
    m = Mitm12(*configs12(cert, cipher_suites=(suite,), allow_mac_then_encrypt=not etm,
                          server={"allow_mac_then_encrypt": not etm,
                                  "cipher_suites": (suite,)}))
    m.server_hello_flight()
    m.to_client(m.server_flight.data)  # type: ignore[union-attr]
    m.to_server(m.client_flight().data)
    assert isinstance(m.to_client(m.server.data_to_send())[0], HandshakeComplete)
    session = m.session()
    assert session.etm is etm
    return m.client, m.server, session


def _cbc_record(session: Session12, seq: int, content: bytes, *, bad_mac: bool,
                bad_padding: str | None) -> bytes:
    """A client->server CBC record (RFC 5246 §6.2.3.2 / RFC 7366 §3), optionally with a
    wrong MAC or wrong padding (everything else right)."""
    suite = session.suite
    assert suite.mac_name is not None
    key, mac_key = session.enc_key(client=True), session.mac_key(client=True)
    version, ct = 0x0303, ContentType.APPLICATION_DATA

    def mac(data: bytes, length: int) -> bytes:
        tag = hmac.new(mac_key, seq.to_bytes(8, "big") + bytes((ct,)) + version.to_bytes(2, "big")
                       + length.to_bytes(2, "big") + data, suite.mac_name).digest()  # type: ignore[arg-type]
        return _flip(tag, 0) if bad_mac else tag

    def padding(n: int) -> bytes:
        pad = 16 - (n % 16) + 16 - 1  # an extra block: a long padding is legal
        good = bytes((pad,)) * (pad + 1)
        if bad_padding == "value":  # one padding byte differs
            return good[:1] + bytes((pad ^ 1,)) + good[2:]
        if bad_padding == "length":  # a padding_length longer than the record
            return good[:-1] + b"\xff"
        return good

    iv = os.urandom(16)

    def cbc(plaintext: bytes) -> bytes:
        assert len(plaintext) % 16 == 0
        enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        return enc.update(plaintext) + enc.finalize()

    if session.etm:
        ciphertext = iv + cbc(content + padding(len(content)))
        fragment = ciphertext + mac(ciphertext, len(ciphertext))
    else:
        tag = mac(content, len(content))
        fragment = iv + cbc(content + tag + padding(len(content) + len(tag)))
    return plaintext_record(ct, fragment)


@pytest.mark.parametrize("suite", [S.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
                                   S.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA],
                         ids=lambda s: s.name)
@pytest.mark.parametrize("etm", [True, False], ids=["encrypt-then-mac", "mac-then-encrypt"])
def test_cbc_bad_padding_and_bad_mac_are_identical(ecdsa: CertFiles,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   etm: bool, suite: CipherSuite) -> None:
    """RFC 5246 §6.2.3.2: bad padding must look like a bad MAC (bad_record_mac, same
    answer), and RFC 7366 §3 likewise for encrypt-then-MAC."""
    _client, server, session = _cbc_pair(ecdsa, etm, monkeypatch, suite)
    # Control: a record built here is accepted, so the failures below are the flaw alone.
    server.receive_data(_cbc_record(session, 1, b"hello", bad_mac=False, bad_padding=None))
    assert run(server) == [ApplicationData(b"hello")]
    answers = []
    for bad_mac, bad_padding in ((True, None), (False, "value"), (False, "length"),
                                 (True, "value")):
        _, server, session = _cbc_pair(ecdsa, etm, monkeypatch, suite)
        record = _cbc_record(session, 1, b"hello", bad_mac=bad_mac, bad_padding=bad_padding)
        exc = expect_alert12(server, record, BadRecordMac, session)
        answers.append(str(exc))
    assert len(set(answers)) == 1, answers


# -- Bleichenbacher / ROBOT ------------------------------------------------------------------
def _pkcs1_block(k: int, message: bytes, *, head: bytes = b"\x00\x02",
                 separator: bool = True, ps_len: int | None = None) -> bytes:
    if ps_len is None:
        ps_len = k - len(head) - 1 - len(message)
    ps = bytes((b % 255) + 1 for b in os.urandom(ps_len))  # nonzero
    block = head + ps + (b"\x00" if separator else b"") + message
    return block[:k].ljust(k, b"\x01")


def _rsa_encrypt_raw(public: rsa.RSAPublicKey, block: bytes) -> bytes:
    n, e = public.public_numbers().n, public.public_numbers().e
    k = (n.bit_length() + 7) // 8
    return pow(int.from_bytes(block, "big"), e, n).to_bytes(k, "big")


def _robot_cases(public: rsa.RSAPublicKey) -> dict[str, bytes]:
    n = public.public_numbers().n
    k = (n.bit_length() + 7) // 8

    def enc(block: bytes) -> bytes:
        return _rsa_encrypt_raw(public, block)

    pms = b"\x03\x03" + os.urandom(46)
    return {
        "valid-padding-wrong-guess": enc(_pkcs1_block(k, pms)),
        "first-byte-01": enc(_pkcs1_block(k, pms, head=b"\x01\x02")),
        "block-type-01": enc(_pkcs1_block(k, pms, head=b"\x00\x01")),
        "block-type-03": enc(_pkcs1_block(k, pms, head=b"\x00\x03")),
        "no-separator": enc(b"\x00\x02" + bytes((b % 255) + 1 for b in os.urandom(k - 2))),
        "short-padding-string": enc(_pkcs1_block(k, b"\x03\x03" + os.urandom(k - 13),
                                                 ps_len=7)),
        "separator-at-end": enc(_pkcs1_block(k, b"", ps_len=k - 3)),
        "pms-47-bytes": enc(_pkcs1_block(k, pms[:47])),
        "pms-49-bytes": enc(_pkcs1_block(k, pms + b"\x00")),
        "version-0301": enc(_pkcs1_block(k, b"\x03\x01" + pms[2:])),
        "version-0000": enc(_pkcs1_block(k, b"\x00\x00" + pms[2:])),
        "garbage": _int(int.from_bytes(os.urandom(k), "big") % n, k),
        "zero": bytes(k),
        "modulus": _int(n, k),
        "ciphertext-255-bytes": enc(_pkcs1_block(k, pms))[1:],
        "ciphertext-257-bytes": b"\x00" + enc(_pkcs1_block(k, pms)),
        "ciphertext-empty": b"",
    }


def _trace_shape(records: list[Any]) -> list[tuple[Any, ...]]:
    """What the server's observer saw, without secret values, times or message objects."""
    out: list[tuple[Any, ...]] = []
    for r in records:
        if isinstance(r, MessageTrace):
            # (The length of what the attacker sent is the attacker's own choice.)
            length = r.length if r.direction == "sent" else None
            out.append(("message", r.direction, r.name, length, r.epoch))
        elif isinstance(r, SecretTrace):
            out.append(("secret", r.name, len(r.value)))
        elif isinstance(r, CheckTrace):
            out.append(("check", r.name, r.ok, r.detail))
        elif isinstance(r, NoteTrace):
            # Values derived from the attacker's own bytes (a session hash) are masked.
            out.append(("note", re.sub(r"[0-9a-f]{32,}", "<hex>", r.text)))
    return out


def _robot_attempt(rec: Recorded, epms: bytes, *, guess: bytes | None = None
                   ) -> tuple[str, Any, bytes, list[tuple[Any, ...]], str]:
    """Send ClientKeyExchange(epms), CCS, and a Finished under keys from ``guess``; return
    (error class, alert, what the server wrote, its trace shape, error text)."""
    m = rec.server_awaiting("ExpectClientKeyExchange")
    server = m.server
    first = len(m.sspy.records)
    cke = ClientKeyExchangeRSA(epms).serialize()
    server.receive_data(handshake_record(cke))
    assert run(server) == [], "the server reacted to the ClientKeyExchange alone"
    assert server.data_to_send() == b"", "the server wrote after the ClientKeyExchange"
    server.receive_data(CCS)
    assert run(server) == []
    assert server.data_to_send() == b""
    # The attacker's Finished: a master secret from a guessed pre-master secret
    # (RFC 7627 §4: over the session hash up to the ClientKeyExchange).
    suite = rec.session.suite
    transcript = rec.fresh().client_hello + b"".join(rec.server_messages) + cke
    session_hash = hashlib.new(suite.hash_name, transcript).digest()
    pms = guess if guess is not None else b"\x03\x03" + os.urandom(46)
    master = prf12.extended_master_secret(suite.hash_name, pms, session_hash)
    session = replace(rec.session, master_secret=master)
    server.receive_data(session.channel(client=True).handshake(
        session.finished(transcript, client=True)))
    try:
        events = run(server)
    except ProtocolError as exc:
        out = server.data_to_send()
        assert_dead(server)
        return (type(exc).__name__, exc.alert, out, _trace_shape(m.sspy.records[first:]),
                exc.message)
    raise AssertionError(f"the server accepted the forged Finished: {events}")


@pytest.mark.parametrize("suite", [RSA_KX, S.TLS_RSA_WITH_AES_128_CBC_SHA256],
                         ids=lambda s: s.name)
def test_rsa_key_exchange_answers_every_bad_ciphertext_alike(rsa_cert: CertFiles,
                                                             suite: CipherSuite) -> None:
    """RFC 5246 §7.4.7.1 (Bleichenbacher, ROBOT): whatever is wrong with the encrypted
    pre-master secret, the server goes on with a random one and fails only at the
    Finished -- the same alert, the same records, the same trace, at the same moment --
    as for a well-formed ciphertext of a secret the attacker does not know."""
    from tlsmith.x509.leaf import leaf_public_key

    rec = recorded(rsa_cert, suite)
    public = leaf_public_key(Certificate12.parse_body(
        body_of(rec.get(H.CERTIFICATE))).certificate_list[0])
    assert isinstance(public, rsa.RSAPublicKey)
    answers = {name: _robot_attempt(rec, epms) for name, epms in _robot_cases(public).items()}
    reference = answers.pop("valid-padding-wrong-guess")
    error, alert, out, shape, _ = reference
    assert alert in (A.BAD_RECORD_MAC, A.DECRYPT_ERROR)
    # The server never switched its write keys: its alert is in the clear.
    assert read_alert12(out, None, client=False) == (AlertLevel.FATAL, alert, False)
    for name, answer in answers.items():
        assert answer[:2] == (error, alert), name
        assert answer[2] == out, f"{name}: different bytes on the wire"
        assert answer[3] == shape, f"{name}: the server's trace differs"
        assert answer[4] == reference[4], name


def test_rsa_key_exchange_control(rsa_cert: CertFiles) -> None:
    """Control: with the right pre-master secret the same forged flight succeeds, so the
    failures above come from the secret alone."""
    from tlsmith.x509.leaf import leaf_public_key

    rec = recorded(rsa_cert, RSA_KX)
    public = leaf_public_key(Certificate12.parse_body(
        body_of(rec.get(H.CERTIFICATE))).certificate_list[0])
    assert isinstance(public, rsa.RSAPublicKey)
    pms = b"\x03\x03" + os.urandom(46)
    epms = _rsa_encrypt_raw(public, _pkcs1_block(256, pms))
    m = rec.server_awaiting("ExpectClientKeyExchange")
    cke = ClientKeyExchangeRSA(epms).serialize()
    suite = rec.session.suite
    transcript = rec.fresh().client_hello + b"".join(rec.server_messages) + cke
    master = prf12.extended_master_secret(
        suite.hash_name, pms, hashlib.new(suite.hash_name, transcript).digest())
    session = replace(rec.session, master_secret=master)
    events = m.to_server(handshake_record(cke) + CCS + session.channel(client=True).handshake(
        session.finished(transcript, client=True)))
    assert isinstance(events[0], HandshakeComplete)
    # A wrong version in a well-formed block is the attacker's only other lever; with the
    # right secret but the wrong version bytes the server must fail like the rest.
    bad_version = b"\x03\x02" + pms[2:]
    answer = _robot_attempt(rec, _rsa_encrypt_raw(public, _pkcs1_block(256, bad_version)),
                            guess=bad_version)
    assert answer[1] in (A.BAD_RECORD_MAC, A.DECRYPT_ERROR)


# -- random input to every TLS 1.2 state ---------------------------------------------------
FUZZ_TARGETS = [
    ("client", ECDHE_ECDSA, H.SERVER_HELLO),
    ("client", ECDHE_ECDSA, H.CERTIFICATE),
    ("client", ECDHE_ECDSA, H.SERVER_KEY_EXCHANGE),
    ("client", DHE_RSA, H.SERVER_KEY_EXCHANGE),
    ("client", ECDHE_ECDSA, H.CERTIFICATE_REQUEST),
    ("client", ECDHE_ECDSA, H.SERVER_HELLO_DONE),
    ("client", ECDHE_ECDSA, H.FINISHED),
    ("server", ECDHE_ECDSA, H.CLIENT_HELLO),
    ("server", ECDHE_ECDSA, H.CLIENT_KEY_EXCHANGE),
    ("server", DHE_RSA, H.CLIENT_KEY_EXCHANGE),
    ("server", RSA_KX, H.CLIENT_KEY_EXCHANGE),
    ("server", ECDHE_ECDSA, H.FINISHED),
]


@pytest.fixture(scope="module")
def fuzz_recordings(certs: dict[str, CertFiles]) -> dict[CipherSuite, Recorded]:
    return {s: recorded(_cert_for(certs, s), s) for s in (ECDHE_ECDSA, DHE_RSA, RSA_KX)}


@pytest.mark.timeout(120)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(target=st.sampled_from(FUZZ_TARGETS),
       body=st.one_of(st.binary(max_size=300), st.binary(min_size=12, max_size=12)),
       also_type=st.booleans())
def test_fuzz_random_tls12_messages(fuzz_recordings: dict[CipherSuite, Recorded],
                                    target: tuple[str, CipherSuite, HandshakeType],
                                    body: bytes, also_type: bool) -> None:
    """Random bytes as each TLS 1.2 message in the state that parses it: the victim
    accepts, or raises a ProtocolError (never internal_error) whose alert it sent; never
    any other exception, never a loop."""
    role, suite, msg_type = target
    rec = fuzz_recordings[suite]
    if role == "client":
        _, victim_at = _client_target(rec, msg_type)
    else:
        _, victim_at = _server_target(rec, msg_type)
    m, wrap = victim_at()
    victim = m.client if role == "client" else m.server
    if also_type and body:  # the first byte picks the message type
        message = handshake_message(body[0], body[1:])
    else:
        message = handshake_message(msg_type, body)
    victim.receive_data(wrap(message))
    try:
        run(victim, limit=16)
    except ProtocolError as exc:
        assert not isinstance(exc, InternalError), f"peer input caused internal_error: {exc}"
        _, description, _ = read_alert12(victim.data_to_send(), rec.session,
                                         client=victim.is_client)
        assert description == exc.alert
        assert_dead(victim)
    except AlertReceived:  # pragma: no cover - a handshake record is never an alert
        pytest.fail("a handshake message was taken for an alert")
    except TLSError as exc:  # pragma: no cover - anything else is a finding
        pytest.fail(f"unexpected {type(exc).__name__}: {exc}")


def test_server_hello_never_parses_as_tls13(ecdsa: CertFiles) -> None:
    """A 1.2-only client reads a ServerHello with supported_versions=TLS 1.3 as a
    selection it did not offer (RFC 8446 §4.2.1): illegal_parameter."""
    sh_attack(ecdsa, IllegalParameter, extensions=_plus(
        ext.SupportedVersionsServerHello(ProtocolVersion.TLS13)))


def test_server_hello_unknown_suite(ecdsa: CertFiles) -> None:
    sh_attack(ecdsa, IllegalParameter, cipher_suite=CipherSuite(0x7777))


def test_server_hello_rsa_suite_unsolicited(rsa_cert: CertFiles) -> None:
    """A key exchange the client left out (RSA transport) -> illegal_parameter."""
    sh_attack(rsa_cert, IllegalParameter, client={"cipher_suites": (ECDHE_RSA,)},
              cipher_suite=RSA_KX)


def test_server_hello_parsed_random_is_kept(ecdsa: CertFiles) -> None:
    """Sanity check of the ServerHello editing used above."""
    m = Mitm12(*configs12(ecdsa))
    raw = m.server_hello_flight().get(H.SERVER_HELLO)
    assert edit_server_hello(raw) == raw
    assert ServerHello.parse_body(body_of(raw)).random == m.server_hello.random

"""Handshake message codec (tlsmith.codec.messages, messages12): RFC 8448 vectors, round
trips, truncation / trailing bytes, RFC rules, and a real OpenSSL ClientHello."""

from __future__ import annotations

import hashlib
import ssl
from dataclasses import dataclass, replace
from typing import Any

import pytest

from rfc8448 import (
    SECTION_HELLO_RETRY_REQUEST,
    SECTION_RESUMED_0RTT,
    SECTION_SIMPLE_1RTT,
    load_section,
)
from tlsmith.codec import extensions as x
from tlsmith.codec import messages as m
from tlsmith.codec.enums import (
    AlertDescription,
    CertificateStatusType,
    CipherSuite,
    ClientCertificateType,
    CompressionMethod,
    ECCurveType,
    ECPointFormat,
    ExtensionType,
    HandshakeType,
    KeyUpdateRequest,
    NamedGroup,
    ProtocolVersion,
    PskKeyExchangeMode,
    SignatureScheme,
)
from tlsmith.errors import DecodeError, IllegalParameter

RANDOM = bytes(range(32))

CH_EXTS: tuple[x.Extension, ...] = (
    x.UnknownExtension(ExtensionType(0x0A0A), b""),
    x.ServerName("example.com"),
    x.SupportedGroups((NamedGroup(0x1A1A), NamedGroup.X25519, NamedGroup.SECP256R1)),
    x.SignatureAlgorithms((SignatureScheme.ECDSA_SECP256R1_SHA256,)),
    x.SupportedVersionsClientHello((ProtocolVersion(0x2A2A), ProtocolVersion.TLS13)),
    x.KeyShareClientHello((x.KeyShareEntry(NamedGroup(0x1A1A), b"\x00"),
                           x.KeyShareEntry(NamedGroup.X25519, bytes(32)))),
    x.PskKeyExchangeModes((PskKeyExchangeMode.PSK_DHE_KE,)),
    x.UnknownExtension(ExtensionType(0x4A4A), b"\x00"),
)
PSK = x.PreSharedKeyClientHello((x.PskIdentity(b"ticket-1", 1234),
                                 x.PskIdentity(b"ticket-2", 99)),
                                (bytes(32), bytes(48)))

CLIENT_HELLO = m.ClientHello(
    ProtocolVersion.TLS12, RANDOM, bytes(32),
    (CipherSuite(0x3A3A), CipherSuite.TLS_AES_128_GCM_SHA256,
     CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256),
    (0,), CH_EXTS,
)
CLIENT_HELLO_PSK = replace(CLIENT_HELLO, extensions=(*CH_EXTS, x.EarlyDataIndication(), PSK))
CLIENT_HELLO_NO_EXT = m.ClientHello(
    ProtocolVersion.TLS10, RANDOM, b"", (CipherSuite.TLS_RSA_WITH_AES_128_CBC_SHA,),
    (1, 0), (), has_extensions_block=False)
CLIENT_HELLO_EMPTY_EXT = replace(CLIENT_HELLO_NO_EXT, has_extensions_block=True)

SERVER_HELLO = m.ServerHello(
    ProtocolVersion.TLS12, RANDOM, b"\x01" * 32, CipherSuite.TLS_AES_256_GCM_SHA384, 0,
    (x.SupportedVersionsServerHello(ProtocolVersion.TLS13),
     x.KeyShareServerHello(x.KeyShareEntry(NamedGroup.X25519, bytes(32))),
     x.PreSharedKeyServerHello(0)),
)
HRR = m.ServerHello(
    ProtocolVersion.TLS12, m.HELLO_RETRY_REQUEST_RANDOM, b"", CipherSuite.TLS_AES_128_GCM_SHA256,
    0,
    (x.SupportedVersionsServerHello(ProtocolVersion.TLS13),
     x.KeyShareHelloRetryRequest(NamedGroup.SECP256R1), x.Cookie(b"cookie")),
)
SERVER_HELLO_12 = m.ServerHello(
    ProtocolVersion.TLS12, RANDOM[:24] + m.DOWNGRADE_TLS12, b"sid",
    CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, 0,
    (x.RenegotiationInfo(b""), x.ExtendedMasterSecret(),
     x.ECPointFormats((ECPointFormat.UNCOMPRESSED,)),
     x.SessionTicket(), x.StatusRequest(empty=True), x.ServerName(None),
     x.ApplicationLayerProtocolNegotiation((b"h2",)), x.EncryptThenMac()),
)
SERVER_HELLO_NO_EXT = m.ServerHello(
    ProtocolVersion.SSL30, RANDOM, b"", CipherSuite.TLS_RSA_WITH_AES_128_CBC_SHA, 0, (),
    has_extensions_block=False)

DN = b"\x30\x0e\x31\x0c\x30\x0a\x06\x03\x55\x04\x03\x0c\x03abc"


@dataclass(frozen=True)
class MSample:
    msg: Any
    name: str
    # byte counts at which a truncated body is itself a valid message
    valid_cuts: frozenset[int] = frozenset()
    trailing_fails: bool = True
    tls12: bool = False
    kx: str | None = None


def _no_ext_len(hello: m.ClientHello | m.ServerHello) -> int:
    return len(replace(hello, extensions=(), has_extensions_block=False).serialize_body())


M_SAMPLES: list[MSample] = [
    MSample(CLIENT_HELLO, "ClientHello", frozenset({_no_ext_len(CLIENT_HELLO)})),
    MSample(CLIENT_HELLO_PSK, "ClientHello-psk", frozenset({_no_ext_len(CLIENT_HELLO)})),
    MSample(CLIENT_HELLO_NO_EXT, "ClientHello-noext"),
    MSample(CLIENT_HELLO_EMPTY_EXT, "ClientHello-emptyext",
            frozenset({_no_ext_len(CLIENT_HELLO_NO_EXT)})),
    MSample(SERVER_HELLO, "ServerHello", frozenset({_no_ext_len(SERVER_HELLO)})),
    MSample(HRR, "HelloRetryRequest", frozenset({_no_ext_len(HRR)})),
    MSample(SERVER_HELLO_12, "ServerHello-tls12", frozenset({_no_ext_len(SERVER_HELLO_12)})),
    MSample(SERVER_HELLO_NO_EXT, "ServerHello-noext"),
    MSample(m.EncryptedExtensions(()), "EncryptedExtensions-empty"),
    MSample(m.EncryptedExtensions((x.ServerName(None), x.EarlyDataIndication(),
                                   x.SupportedGroups((NamedGroup.X25519,)),
                                   x.RecordSizeLimit(2**14 + 1),
                                   x.UnknownExtension(ExtensionType(0xABCD), b"z"))),
            "EncryptedExtensions"),
    MSample(m.CertificateRequest(b"", (x.SignatureAlgorithms(
        (SignatureScheme.RSA_PSS_RSAE_SHA256,)),)), "CertificateRequest"),
    MSample(m.CertificateRequest(b"ctx", (
        x.SignatureAlgorithms((SignatureScheme.ED25519,)),
        x.SignatureAlgorithmsCert((SignatureScheme.ED25519,)),
        x.CertificateAuthorities((DN,)), x.StatusRequest(empty=True),
        x.OIDFilters((x.OIDFilter(b"\x55\x1d\x25", b"\x30\x00"),)))),
        "CertificateRequest-full"),
    MSample(m.Certificate(b"", ()), "Certificate-empty"),
    MSample(m.Certificate(b"\x07", (
        m.CertificateEntry(b"\x30\x03\x02\x01\x01", (
            x.CertificateStatusExtension(CertificateStatusType.OCSP, b"\x30\x00"),
            x.UnknownExtension(ExtensionType.SIGNED_CERTIFICATE_TIMESTAMP, b"sct"))),
        m.CertificateEntry(b"\x30\x00"))), "Certificate"),
    MSample(m.CertificateVerify(SignatureScheme.ECDSA_SECP256R1_SHA256, b"sig"),
            "CertificateVerify"),
    MSample(m.CertificateVerify(SignatureScheme(0x0A0A), b""), "CertificateVerify-empty"),
    MSample(m.Finished(bytes(32)), "Finished", frozenset(range(1, 32)), trailing_fails=False),
    MSample(m.NewSessionTicket(7200, 0xDEADBEEF, b"\x00", b"ticket", ()),
            "NewSessionTicket"),
    MSample(m.NewSessionTicket(0, 0, b"", b"t" * 1000,
                               (x.EarlyDataIndication(16384),
                                x.UnknownExtension(ExtensionType(0x8A8A), b""))),
            "NewSessionTicket-ext"),
    MSample(m.KeyUpdate(KeyUpdateRequest.UPDATE_REQUESTED), "KeyUpdate"),
    MSample(m.KeyUpdate(KeyUpdateRequest.UPDATE_NOT_REQUESTED), "KeyUpdate-0"),
    MSample(m.EndOfEarlyData(), "EndOfEarlyData"),
    MSample(m.HelloRequest(), "HelloRequest"),
    MSample(m.ServerHelloDone(), "ServerHelloDone"),
    MSample(m.Certificate12((b"\x30\x01a", b"\x30\x00")), "Certificate12", tls12=True),
    MSample(m.Certificate12(()), "Certificate12-empty", tls12=True),
    MSample(m.CertificateRequest12(
        (ClientCertificateType.RSA_SIGN, ClientCertificateType.ECDSA_SIGN),
        (SignatureScheme.RSA_PKCS1_SHA256, SignatureScheme.ECDSA_SECP256R1_SHA256),
        (DN, DN)), "CertificateRequest12", tls12=True),
    MSample(m.CertificateRequest12((ClientCertificateType.RSA_SIGN,),
                                   (SignatureScheme.RSA_PKCS1_SHA256,)),
            "CertificateRequest12-noca", tls12=True),
    MSample(m.ServerKeyExchangeECDHE(ECCurveType.NAMED_CURVE, NamedGroup.X25519, bytes(32),
                                     SignatureScheme.RSA_PSS_RSAE_SHA256, b"s" * 256),
            "ServerKeyExchangeECDHE", tls12=True, kx="ecdhe"),
    MSample(m.ServerKeyExchangeDHE(b"\xff" * 256, b"\x02", b"\x11" * 256,
                                   SignatureScheme.RSA_PKCS1_SHA256, b"s" * 256),
            "ServerKeyExchangeDHE", tls12=True, kx="dhe"),
    MSample(m.ClientKeyExchangeECDHE(b"\x04" + bytes(64)), "ClientKeyExchangeECDHE",
            tls12=True, kx="ecdhe"),
    MSample(m.ClientKeyExchangeDHE(b"\x01" * 256), "ClientKeyExchangeDHE", tls12=True,
            kx="dhe"),
    MSample(m.ClientKeyExchangeRSA(b"\x02" * 256), "ClientKeyExchangeRSA", tls12=True,
            kx="rsa"),
    MSample(m.NewSessionTicket12(300, b"tick"), "NewSessionTicket12", tls12=True),
    MSample(m.NewSessionTicket12(0, b""), "NewSessionTicket12-empty", tls12=True),
    MSample(m.CertificateStatus(CertificateStatusType.OCSP, b"\x30\x03\x0a\x01\x00"),
            "CertificateStatus", tls12=True),
]
M_IDS = [s.name for s in M_SAMPLES]


def test_messages_every_class_has_a_sample() -> None:
    sampled = {type(s.msg) for s in M_SAMPLES}
    for name in m.__all__:
        obj = getattr(m, name)
        if isinstance(obj, type) and hasattr(obj, "parse_body"):
            assert obj in sampled, name


@pytest.mark.parametrize("sample", M_SAMPLES, ids=M_IDS)
def test_messages_round_trip(sample: MSample) -> None:
    msg = sample.msg
    body = msg.serialize_body()
    parsed = type(msg).parse_body(body)
    assert parsed == msg
    assert parsed.serialize_body() == body
    assert type(msg).parse_body(memoryview(body)) == msg
    full = msg.serialize()
    assert full[0] == msg.msg_type
    assert m.parse_handshake_header(full) == (msg.msg_type, len(body))
    assert full[4:] == body


@pytest.mark.parametrize("sample", M_SAMPLES, ids=M_IDS)
def test_messages_decode_handshake(sample: MSample) -> None:
    msg = sample.msg
    decoded = m.decode_handshake(msg.msg_type, msg.serialize_body(), tls12=sample.tls12,
                                 kx=sample.kx)
    assert decoded == msg


@pytest.mark.parametrize("sample", M_SAMPLES, ids=M_IDS)
def test_messages_truncated_is_decode_error(sample: MSample) -> None:
    body = sample.msg.serialize_body()
    cls = type(sample.msg)
    for cut in range(len(body)):
        if cut in sample.valid_cuts:
            cls.parse_body(body[:cut])
            continue
        with pytest.raises(DecodeError) as excinfo:
            cls.parse_body(body[:cut])
        assert excinfo.value.alert == AlertDescription.DECODE_ERROR


@pytest.mark.parametrize("sample", [s for s in M_SAMPLES if s.trailing_fails],
                         ids=[s.name for s in M_SAMPLES if s.trailing_fails])
def test_messages_trailing_bytes_is_decode_error(sample: MSample) -> None:
    body = sample.msg.serialize_body()
    # (two zero bytes would be a valid empty extensions block after a hello without one)
    for extra in (b"\x00", b"\x01\x02\x03", b"\xff\xff\xff"):
        with pytest.raises(DecodeError) as excinfo:
            type(sample.msg).parse_body(body + extra)
        assert excinfo.value.alert == AlertDescription.DECODE_ERROR


# -- RFC 8448 vectors ----------------------------------------------------------------------


def _all_rfc8448_messages() -> list[tuple[str, bytes]]:
    out = []
    for section in (3, 4, 5, 6, 7):
        for hm in load_section(section).handshake_messages():
            if section == SECTION_RESUMED_0RTT and hm.name == "ClientHello":
                continue  # printed truncated (without binders); see the PSK test
            out.append((f"s{section}-{hm.actor}-{hm.name}", hm.raw))
    return out


@pytest.mark.parametrize(("label", "raw"), _all_rfc8448_messages(),
                         ids=[label for label, _ in _all_rfc8448_messages()])
def test_messages_rfc8448_round_trip(label: str, raw: bytes) -> None:
    msg_type, length = m.parse_handshake_header(raw)
    assert length == len(raw) - 4
    msg = m.decode_handshake(msg_type, raw[4:])
    assert not isinstance(msg, m.RawHandshakeMessage)
    assert type(msg).__name__ == label.rsplit("-", 1)[1]
    assert msg.serialize() == raw


def test_messages_rfc8448_simple_client_hello() -> None:
    raw = load_section(SECTION_SIMPLE_1RTT).message("client", "ClientHello")
    ch = m.ClientHello.parse_body(raw[4:])
    assert ch.cipher_suites == (CipherSuite.TLS_AES_128_GCM_SHA256,
                                CipherSuite.TLS_CHACHA20_POLY1305_SHA256,
                                CipherSuite.TLS_AES_256_GCM_SHA384)
    sni = x.find_extension(ch.extensions, x.ServerName)
    assert sni == x.ServerName("server")
    ks = x.find_extension(ch.extensions, x.KeyShareClientHello)
    assert ks is not None and [e.group for e in ks.client_shares] == [NamedGroup.X25519]
    assert x.find_extension(ch.extensions, x.RenegotiationInfo) == x.RenegotiationInfo(b"")
    assert x.find_extension(ch.extensions, x.SessionTicket) == x.SessionTicket(b"")
    assert x.find_extension(ch.extensions, x.RecordSizeLimit) == x.RecordSizeLimit(0x4001)
    sv = x.find_extension(ch.extensions, x.SupportedVersionsClientHello)
    assert sv is not None and sv.versions == (ProtocolVersion.TLS13,)


def test_messages_rfc8448_server_hello_and_ticket() -> None:
    trace = load_section(SECTION_SIMPLE_1RTT)
    sh = m.ServerHello.parse_body(trace.message("server", "ServerHello")[4:])
    assert not sh.is_hello_retry_request
    ks = x.find_extension(sh.extensions, x.KeyShareServerHello)
    assert ks is not None and ks.server_share.group == NamedGroup.X25519
    nst = m.NewSessionTicket.parse_body(trace.message("server", "NewSessionTicket")[4:])
    assert nst.ticket_lifetime == 30
    assert x.find_extension(nst.extensions, x.EarlyDataIndication) == \
        x.EarlyDataIndication(1024)


def test_messages_rfc8448_psk_binders() -> None:
    """§4: the printed ClientHello is the binder prefix; the record carries it with binders."""
    trace = load_section(SECTION_RESUMED_0RTT)
    prefix = trace.find("client", "calculate PSK binder")["ClientHello prefix"]
    binder = trace.find("client", "calculate PSK binder")["finished"]
    full = next(r.payload for r in trace.records() if r.actor == "client")
    ch = m.ClientHello.parse_body(full[4:])
    psk = ch.extensions[-1]
    assert isinstance(psk, x.PreSharedKeyClientHello)
    assert psk.binders == (binder,)
    assert ch.truncated_for_binders() == prefix
    assert full[: len(full) - psk.binders_length()] == prefix
    assert ch.serialize() == full
    # rebuilding from placeholder binders gives the same bytes
    placeholder = ch.with_binders([bytes(len(binder))])
    assert placeholder.truncated_for_binders() == prefix
    assert placeholder.with_binders([binder]).serialize() == full
    assert x.find_extension(ch.extensions, x.EarlyDataIndication) == x.EarlyDataIndication()
    eoed = trace.message("client", "EndOfEarlyData")
    assert m.EndOfEarlyData.parse_body(eoed[4:]) == m.EndOfEarlyData()


def test_messages_rfc8448_hello_retry_request() -> None:
    trace = load_section(SECTION_HELLO_RETRY_REQUEST)
    hrr = m.ServerHello.parse_body(trace.message("server", "ServerHello", 0)[4:])
    assert hrr.is_hello_retry_request
    assert x.find_extension(hrr.extensions, x.KeyShareHelloRetryRequest) == \
        x.KeyShareHelloRetryRequest(NamedGroup.SECP256R1)
    cookie = x.find_extension(hrr.extensions, x.Cookie)
    assert cookie is not None and len(cookie.cookie) == 0x72
    sh = m.ServerHello.parse_body(trace.message("server", "ServerHello", 1)[4:])
    assert not sh.is_hello_retry_request
    ch2 = m.ClientHello.parse_body(trace.message("client", "ClientHello", 1)[4:])
    assert x.find_extension(ch2.extensions, x.Cookie) == cookie


# -- specific rules ------------------------------------------------------------------------


def test_messages_constants() -> None:
    assert hashlib.sha256(b"HelloRetryRequest").digest() == m.HELLO_RETRY_REQUEST_RANDOM
    assert bytes.fromhex("444f574e47524401") == m.DOWNGRADE_TLS12
    assert bytes.fromhex("444f574e47524400") == m.DOWNGRADE_TLS11
    assert SERVER_HELLO_12.downgrade_sentinel == m.DOWNGRADE_TLS12
    assert SERVER_HELLO.downgrade_sentinel is None


def test_messages_hrr_uses_hrr_extension_context() -> None:
    body = HRR.serialize_body()
    parsed = m.ServerHello.parse_body(body)
    assert isinstance(parsed.extensions[1], x.KeyShareHelloRetryRequest)
    # the same extensions under an ordinary random do not decode (key_share too short)
    with pytest.raises(DecodeError, match="key_share"):
        m.ServerHello.parse_body(body[:2] + RANDOM + body[34:])


def test_messages_client_hello_psk_not_last() -> None:
    bad = replace(CLIENT_HELLO, extensions=(PSK, *CH_EXTS))
    with pytest.raises(IllegalParameter, match="last") as excinfo:
        m.ClientHello.parse_body(bad.serialize_body())
    assert excinfo.value.alert == AlertDescription.ILLEGAL_PARAMETER


def test_messages_client_hello_duplicate_extension() -> None:
    bad = replace(CLIENT_HELLO, extensions=(*CH_EXTS, x.ServerName("other.example")))
    with pytest.raises(IllegalParameter, match="duplicate"):
        m.ClientHello.parse_body(bad.serialize_body())


def test_messages_client_hello_grease_survives() -> None:
    body = CLIENT_HELLO.serialize_body()
    parsed = m.ClientHello.parse_body(body)
    assert parsed.cipher_suites[0] == 0x3A3A
    assert str(parsed.cipher_suites[0]) == "GREASE_0x3a3a"
    assert str(parsed.extensions[0].extension_type) == "GREASE_0x0a0a"
    assert parsed.serialize_body() == body


def test_messages_client_hello_bad_vectors() -> None:
    good = CLIENT_HELLO_NO_EXT.serialize_body()
    # legacy_session_id<0..32>: 33 bytes
    sid33 = good[:34] + b"\x21" + bytes(33) + good[35:]
    with pytest.raises(DecodeError, match="allowed range"):
        m.ClientHello.parse_body(sid33)
    # cipher_suites: odd length, empty
    with pytest.raises(DecodeError, match="odd length"):
        m.ClientHello.parse_body(good[:35] + b"\x00\x03\x00\x2f\x00" + good[39:])
    with pytest.raises(DecodeError, match="cipher_suites"):
        m.ClientHello.parse_body(good[:35] + b"\x00\x00" + good[39:])
    # legacy_compression_methods<1..2^8-1>: empty
    with pytest.raises(DecodeError, match="compression"):
        m.ClientHello.parse_body(good[:39] + b"\x00")
    # a single byte where an extensions block would start
    with pytest.raises(DecodeError):
        m.ClientHello.parse_body(good + b"\x00")
    # (the in-place fast path falls back for these) lengths past the end; cut short
    with pytest.raises(DecodeError, match="truncated"):
        m.ClientHello.parse_body(good[:35] + b"\x02\x00" + good[37:])
    with pytest.raises(DecodeError, match="truncated"):
        m.ClientHello.parse_body(good[:39] + b"\x09" + good[40:])
    for cut in (34, 35, 36, 38, 39, 40):
        with pytest.raises(DecodeError, match="truncated"):
            m.ClientHello.parse_body(good[:cut])


def test_messages_client_hello_without_extensions() -> None:
    body = CLIENT_HELLO_NO_EXT.serialize_body()
    parsed = m.ClientHello.parse_body(body)
    assert parsed.has_extensions_block is False
    assert parsed.extensions == ()
    assert parsed.legacy_compression_methods == (CompressionMethod.DEFLATE,
                                                 CompressionMethod.NULL)
    empty = m.ClientHello.parse_body(CLIENT_HELLO_EMPTY_EXT.serialize_body())
    assert empty.has_extensions_block is True
    assert empty.serialize_body() == body + b"\x00\x00"


def test_messages_hello_serialize_rejects_invalid_fields() -> None:
    with pytest.raises(ValueError):
        replace(CLIENT_HELLO, random=bytes(31)).serialize()
    with pytest.raises(ValueError):
        replace(CLIENT_HELLO, legacy_session_id=bytes(33)).serialize()
    with pytest.raises(ValueError):
        replace(CLIENT_HELLO, has_extensions_block=False).serialize()
    with pytest.raises(ValueError):
        replace(SERVER_HELLO, has_extensions_block=False).serialize()
    with pytest.raises(ValueError):
        replace(SERVER_HELLO, random=b"").serialize()


def test_messages_truncated_for_binders_and_with_binders() -> None:
    ch = CLIENT_HELLO_PSK
    full = ch.serialize()
    trunc = ch.truncated_for_binders()
    assert full.startswith(trunc)
    assert len(full) - len(trunc) == PSK.binders_length() == 2 + 33 + 49
    # the header still states the full length (RFC 8446 §4.2.11.2)
    assert trunc[:4] == full[:4]
    new = ch.with_binders([b"\x11" * 32, b"\x22" * 48])
    assert new.truncated_for_binders() == trunc
    new_psk = new.extensions[-1]
    assert isinstance(new_psk, x.PreSharedKeyClientHello)
    assert new_psk.binders == (b"\x11" * 32, b"\x22" * 48)
    assert new_psk.identities == PSK.identities
    assert m.ClientHello.parse_body(new.serialize_body()) == new
    with pytest.raises(ValueError):
        ch.with_binders([bytes(32)])
    with pytest.raises(ValueError):
        CLIENT_HELLO.truncated_for_binders()
    with pytest.raises(ValueError):
        CLIENT_HELLO_NO_EXT.with_binders([])


def test_messages_key_update_invalid_value() -> None:
    for value in (2, 0x7F, 0xFF):
        with pytest.raises(IllegalParameter) as excinfo:
            m.KeyUpdate.parse_body(bytes([value]))
        assert excinfo.value.alert == AlertDescription.ILLEGAL_PARAMETER


def test_messages_empty_bodies() -> None:
    for cls in (m.EndOfEarlyData, m.HelloRequest, m.ServerHelloDone):
        with pytest.raises(DecodeError):
            cls.parse_body(b"\x00")
    with pytest.raises(DecodeError):
        m.Finished.parse_body(b"")


def test_messages_inner_lengths() -> None:
    cases: list[tuple[type[Any], str]] = [
        # Certificate: entry cert_data<1..>, entry length beyond the list, bad ext block
        (m.Certificate, "00 000005 000000 0000"),
        (m.Certificate, "00 000006 000003 aabb 0000"),
        (m.Certificate, "00 000007 000001 aa 0001 00"),
        (m.Certificate, "01 000000"),
        # NewSessionTicket: ticket<1..>, nonce beyond end
        (m.NewSessionTicket, "00000001 00000002 00 0000 0000"),
        (m.NewSessionTicket, "00000001 00000002 05 00 0001 aa 0000"),
        # CertificateVerify signature length beyond the body
        (m.CertificateVerify, "0804 0005 aabb"),
        # TLS 1.2 shapes
        (m.Certificate12, "000004 000000"),
        (m.Certificate12, "000005 000003 aabb"),
        (m.CertificateRequest12, "00 0002 0401 0000"),
        (m.CertificateRequest12, "01 01 0000 0000"),
        (m.CertificateRequest12, "01 01 0002 0401 0002 0000"),
        (m.ServerKeyExchangeECDHE, "03 001d 00 0804 0000"),
        (m.ServerKeyExchangeDHE, "0000 0001 02 0001 03 0804 0000"),
        (m.ClientKeyExchangeECDHE, "00"),
        (m.ClientKeyExchangeDHE, "0000"),
        (m.ClientKeyExchangeRSA, "0003 aabb"),
        (m.NewSessionTicket12, "00000000 0003 aabb"),
        (m.CertificateStatus, "01 000000"),
    ]
    for cls, hexbody in cases:
        with pytest.raises(DecodeError) as excinfo:
            cls.parse_body(bytes.fromhex(hexbody.replace(" ", "")))
        assert excinfo.value.alert == AlertDescription.DECODE_ERROR, (cls, hexbody)


def test_messages_certificate_entry_extension_context() -> None:
    msg = m.Certificate(b"", (m.CertificateEntry(b"\x30\x00", (
        x.CertificateStatusExtension(CertificateStatusType.OCSP, b"resp"),)),))
    parsed = m.Certificate.parse_body(msg.serialize_body())
    assert isinstance(parsed.certificate_list[0].extensions[0], x.CertificateStatusExtension)
    # duplicate extensions inside one entry
    dup = m.Certificate(b"", (m.CertificateEntry(b"\x30\x00", (
        x.UnknownExtension(ExtensionType(18), b""), x.UnknownExtension(ExtensionType(18), b"")
    )),))
    with pytest.raises(IllegalParameter):
        m.Certificate.parse_body(dup.serialize_body())


def test_messages_server_key_exchange_params_and_unsigned() -> None:
    ske = m.ServerKeyExchangeECDHE(ECCurveType.NAMED_CURVE, NamedGroup.SECP256R1,
                                   b"\x04" + bytes(64), SignatureScheme.ECDSA_SECP256R1_SHA256,
                                   b"sig")
    assert ske.params_bytes() == b"\x03\x00\x17\x41" + b"\x04" + bytes(64)
    assert ske.serialize_body().startswith(ske.params_bytes())
    anon = replace(ske, algorithm=None, signature=b"")
    assert anon.serialize_body() == ske.params_bytes()
    assert m.ServerKeyExchangeECDHE.parse_body(anon.serialize_body(), signed=False) == anon
    with pytest.raises(DecodeError):
        m.ServerKeyExchangeECDHE.parse_body(anon.serialize_body())
    with pytest.raises(DecodeError):
        m.ServerKeyExchangeECDHE.parse_body(ske.serialize_body(), signed=False)
    with pytest.raises(ValueError):
        replace(ske, algorithm=None).serialize()
    dhe = m.ServerKeyExchangeDHE(b"\x17", b"\x05", b"\x03", None, b"")
    assert dhe.params_bytes() == b"\x00\x01\x17\x00\x01\x05\x00\x01\x03"
    assert m.ServerKeyExchangeDHE.parse_body(dhe.serialize_body(), signed=False) == dhe


def test_messages_server_key_exchange_explicit_curve_is_illegal() -> None:
    body = bytes.fromhex("01 001d 01 aa 0804 0000".replace(" ", ""))
    with pytest.raises(IllegalParameter, match="curve_type"):
        m.ServerKeyExchangeECDHE.parse_body(body)


def test_messages_certificate_status_unknown_type() -> None:
    with pytest.raises(IllegalParameter):
        m.CertificateStatus.parse_body(b"\x02\x00\x00\x01\xaa")


def test_messages_message_hash() -> None:
    digest = hashlib.sha256(b"ClientHello1").digest()
    synthetic = m.message_hash(digest)
    assert synthetic == b"\xfe\x00\x00\x20" + digest
    assert m.parse_handshake_header(synthetic) == (HandshakeType.MESSAGE_HASH, 32)
    assert m.message_hash(bytes(48))[:4] == b"\xfe\x00\x00\x30"


def test_messages_parse_handshake_header() -> None:
    assert m.parse_handshake_header(b"\x01\x00\x01\x00extra") == (HandshakeType.CLIENT_HELLO,
                                                                  256)
    t, n = m.parse_handshake_header(memoryview(b"\x63\xff\xff\xff"))
    assert (int(t), n, t.known) == (0x63, 0xFFFFFF, False)
    for cut in range(4):
        with pytest.raises(DecodeError):
            m.parse_handshake_header(b"\x01\x00\x00\x00"[:cut])


def test_messages_decode_handshake_version_and_kx() -> None:
    cert13 = m.Certificate(b"", (m.CertificateEntry(b"\x30\x00"),))
    assert m.decode_handshake(HandshakeType.CERTIFICATE, cert13.serialize_body()) == cert13
    cert12 = m.Certificate12((b"\x30\x00",))
    assert m.decode_handshake(11, cert12.serialize_body(), tls12=True) == cert12
    nst12 = m.NewSessionTicket12(1, b"t")
    assert m.decode_handshake(4, nst12.serialize_body(), tls12=True) == nst12
    # key exchange without a kind, an RSA ServerKeyExchange, an unknown type: kept raw
    cke = m.ClientKeyExchangeRSA(b"x")
    assert m.decode_handshake(16, cke.serialize_body()) == m.RawHandshakeMessage(
        HandshakeType.CLIENT_KEY_EXCHANGE, cke.serialize_body())
    assert isinstance(m.decode_handshake(12, b"\x00", tls12=True, kx="rsa"),
                      m.RawHandshakeMessage)
    raw = m.decode_handshake(0x42, b"abc")
    assert isinstance(raw, m.RawHandshakeMessage)
    assert raw.serialize() == b"\x42\x00\x00\x03abc"
    assert raw.serialize_body() == b"abc"
    with pytest.raises(ValueError):
        m.decode_handshake(16, b"", kx="psk")
    with pytest.raises(DecodeError):
        m.decode_handshake(HandshakeType.FINISHED, b"")


def test_messages_are_frozen() -> None:
    with pytest.raises(AttributeError):
        m.Finished(b"x").verify_data = b"y"  # type: ignore[misc]


# -- a real ClientHello (OpenSSL via Python's ssl module) ----------------------------------


def _openssl_client_hello(hostname: str = "example.com") -> bytes:
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    sock = ctx.wrap_bio(incoming, outgoing, server_hostname=hostname)
    try:
        sock.do_handshake()
    except ssl.SSLWantReadError:
        pass
    record = outgoing.read()
    assert record[0] == 22  # handshake
    assert int.from_bytes(record[3:5], "big") == len(record) - 5
    return record[5:]


def test_messages_real_openssl_client_hello() -> None:
    handshake = _openssl_client_hello()
    msg_type, length = m.parse_handshake_header(handshake)
    assert msg_type == HandshakeType.CLIENT_HELLO
    assert length == len(handshake) - 4
    ch = m.ClientHello.parse_body(handshake[4:])
    assert x.find_extension(ch.extensions, x.ServerName) == x.ServerName("example.com")
    ks = x.find_extension(ch.extensions, x.KeyShareClientHello)
    assert ks is not None
    assert ks.share_for(NamedGroup.X25519) is not None
    assert len(ks.share_for(NamedGroup.X25519).key_exchange) == 32  # type: ignore[union-attr]
    sv = x.find_extension(ch.extensions, x.SupportedVersionsClientHello)
    assert sv is not None and ProtocolVersion.TLS13 in sv.versions
    assert ch.serialize() == handshake
    assert m.decode_handshake(msg_type, handshake[4:]).serialize() == handshake


# -- serialize() written directly: the same bytes as MessageBase.serialize ---------------

def _generic_serialize(msg: m.MessageBase) -> bytes:
    return m.MessageBase.serialize(msg)


@pytest.mark.parametrize("msg", [
    m.Finished(b""), m.Finished(b"\x01" * 12), m.Finished(bytes(range(48))),
    m.CertificateVerify(SignatureScheme.ECDSA_SECP256R1_SHA256, b""),
    m.CertificateVerify(SignatureScheme(0x0A0A), b"s" * 0xFFFF),
    m.NewSessionTicket(0, 0, b"", b"t"),
    m.NewSessionTicket(604800, 0xFFFFFFFF, b"n" * 255, b"t" * 0xFFFF),
    m.NewSessionTicket(7200, 1, b"\x00" * 8, b"t" * 200, (x.EarlyDataIndication(16384),)),
    m.ServerHelloDone(),
    m.NewSessionTicket12(0, b""), m.NewSessionTicket12(2**32 - 1, b"t" * 0xFFFF),
    m.ServerKeyExchangeECDHE(ECCurveType.NAMED_CURVE, NamedGroup.X25519, bytes(32),
                             SignatureScheme.ED25519, b"s" * 64),
    m.ServerKeyExchangeECDHE(ECCurveType.NAMED_CURVE, NamedGroup.SECP256R1, b"p" * 255,
                             SignatureScheme.RSA_PSS_RSAE_SHA256, b""),
    m.ServerKeyExchangeECDHE(ECCurveType.NAMED_CURVE, NamedGroup.X25519, bytes(32), None,
                             b""),
    m.ServerHello(ProtocolVersion.TLS12, RANDOM, b"", CipherSuite.TLS_AES_128_GCM_SHA256, 0,
                  ()),
    m.ServerHello(ProtocolVersion.TLS12, RANDOM, b"i" * 32, CipherSuite(0x0A0A), 1,
                  (x.RenegotiationInfo(b""), x.ExtendedMasterSecret(), x.ServerName(None))),
    m.ServerHello(ProtocolVersion.TLS11, RANDOM, b"i", CipherSuite(0xC02B), 0, (), False),
])
def test_direct_serialize_equals_the_generic_one(msg: m.MessageBase) -> None:
    assert msg.serialize() == _generic_serialize(msg)


@pytest.mark.parametrize("msg", [
    m.CertificateVerify(SignatureScheme.ED25519, b"s" * 0x10000),
    m.NewSessionTicket(0, 0, b"n" * 256, b"t"),
    m.NewSessionTicket(0, 0, b"", b"t" * 0x10000),
    m.NewSessionTicket(2**32, 0, b"", b"t"),
    m.CertificateVerify(0x10000, b""),  # type: ignore[arg-type]
    m.NewSessionTicket12(0, b"t" * 0x10000), m.NewSessionTicket12(-1, b""),
    m.ServerKeyExchangeECDHE(ECCurveType.NAMED_CURVE, NamedGroup.X25519, b"p" * 256,
                             SignatureScheme.ED25519, b"s"),
    m.ServerKeyExchangeECDHE(ECCurveType.NAMED_CURVE, NamedGroup.X25519, b"p",
                             SignatureScheme.ED25519, b"s" * 0x10000),
    m.ServerKeyExchangeECDHE(ECCurveType.NAMED_CURVE, NamedGroup.X25519, b"p", None, b"s"),
    m.ServerKeyExchangeECDHE(256, NamedGroup.X25519, b"p", None, b""),  # type: ignore[arg-type]
    m.ServerHello(ProtocolVersion.TLS12, RANDOM[:31], b"", CipherSuite(0x1301), 0, ()),
    m.ServerHello(ProtocolVersion.TLS12, RANDOM, bytes(33), CipherSuite(0x1301), 0, ()),
    m.ServerHello(ProtocolVersion.TLS12, RANDOM, b"", CipherSuite(0x1301), 256, ()),
    m.ServerHello(ProtocolVersion.TLS12, RANDOM, b"", CipherSuite(0x1301), 0,
                  (x.ExtendedMasterSecret(),), False),
    m.ServerHello(ProtocolVersion.TLS12, RANDOM, b"", CipherSuite(0x1301), 0,
                  (x.UnknownExtension(ExtensionType(0x4444), b"u" * 0x10000),)),
])
def test_direct_serialize_refuses_as_the_generic_one(msg: m.MessageBase) -> None:
    with pytest.raises((ValueError, OverflowError)) as generic:
        _generic_serialize(msg)
    with pytest.raises(generic.type, match=str(generic.value)[:20] or None):
        msg.serialize()
def _outcome(parse: Any, body: bytes) -> tuple[Any, ...]:
    try:
        return ("ok", parse(body))
    except Exception as exc:  # (the exception itself is what is compared)
        return ("error", type(exc), str(exc))


@pytest.mark.parametrize("cls, sample", [
    (m.Certificate, m.Certificate(b"", (m.CertificateEntry(b"\x30\x01\x00"),
                                        m.CertificateEntry(b"\x30\x00")))),
    (m.Certificate, m.Certificate(b"\x07", (m.CertificateEntry(b"\x30\x00", (
        x.CertificateStatusExtension(CertificateStatusType.OCSP, b"resp"),)),))),
    (m.ServerHello, SERVER_HELLO),
    (m.ServerHello, HRR),
    (m.ServerHello, SERVER_HELLO_12),
    (m.ServerHello, SERVER_HELLO_NO_EXT),
    (m.CertificateVerify, m.CertificateVerify(SignatureScheme.ECDSA_SECP256R1_SHA256, b"sig")),
    (m.NewSessionTicket, m.NewSessionTicket(7200, 0xDEADBEEF, b"\x00", b"ticket", ())),
    (m.NewSessionTicket, m.NewSessionTicket(0, 1, b"", b"t" * 300, (
        x.EarlyDataIndication(16384), x.UnknownExtension(ExtensionType(0x8A8A), b"")))),
    (x.KeyShareServerHello, x.KeyShareServerHello(x.KeyShareEntry(NamedGroup.X25519,
                                                                  b"\x01" * 32))),
])
def test_messages_fast_path_matches_checked_parse(cls: Any, sample: Any) -> None:
    """A message's fast path (well-formed bodies) gives what the checked parser gives,
    value or error, for the sample and for mutations of it (the fallback included)."""
    import random

    rng = random.Random(8446)
    body = sample.serialize_body()
    if issubclass(cls, x.ExtensionBody):  # (an extension body parses in its context)
        ctx = x.ExtensionContext.SERVER_HELLO
        fast: Any = lambda b: cls.parse_body(b, ctx)  # noqa: E731
    else:
        fast = cls.parse_body
    assert fast(body) == cls._parse_checked(body) == sample
    for _ in range(3000):
        b = bytearray(body)
        for _ in range(rng.randrange(1, 3)):
            i = rng.randrange(len(b) + 1)
            match rng.randrange(3):
                case 0 if i < len(b):
                    b[i] = rng.choice((0, 1, 0xFF, rng.randrange(256)))
                case 1:
                    b.insert(i, rng.randrange(256))
                case _:
                    del b[i:i + rng.randrange(1, 3)]
        mutated = bytes(b)
        assert _outcome(fast, mutated) == _outcome(cls._parse_checked, mutated)


def test_messages_client_hello_lists_kept_bytes() -> None:
    """The cipher_suites and compression bytes a ClientHello keeps between serializations
    are those of its own lists; a list that does not serialize still raises."""
    hello = m.ClientHello(ProtocolVersion.TLS12, bytes(32), b"",
                          (CipherSuite.TLS_AES_128_GCM_SHA256,), (0,), ())
    first = hello.serialize()
    assert hello.serialize() == first
    assert m.ClientHello.parse_body(first[4:]) == replace(hello, has_extensions_block=True)
    other = replace(hello, cipher_suites=(CipherSuite.TLS_AES_256_GCM_SHA384,
                                          CipherSuite.TLS_AES_128_GCM_SHA256))
    assert m.ClientHello.parse_body(other.serialize()[4:]).cipher_suites == \
        other.cipher_suites
    import struct

    with pytest.raises(struct.error):
        replace(hello, cipher_suites=(0x10000,)).serialize()  # type: ignore[arg-type]

"""Three RFC rules where TLS 1.2 and TLS 1.3 meet.

(a) RFC 8446 §D.5 / §4.1.2: a ClientHello whose legacy_version is below TLS 1.2 is
    refused with protocol_version, even when supported_versions offers TLS 1.3.
(b) RFC 8446 §4.1.2 / §4.2: a TLS 1.3 server ignores TLS 1.2-only extensions, so a
    malformed body there does not stop a TLS 1.3 handshake; a server that negotiates
    TLS 1.2 uses them and answers decode_error (RFC 5246 §7.2.2).
(c) Handshake message sizes (RFC 8446 §4 / §5.1, RFC 5246 §7.4): a legal ClientHello
    beyond 64 KiB is accepted; a header announcing a length the message cannot have is
    decode_error as soon as the 4-byte header is read, before any body is buffered.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from helpers import CertFiles
from mitm import (
    Mitm,
    edit_client_hello,
    expect_alert,
    handshake_record,
    run,
    server_first_flight,
)
from mitm12 import (
    CCS,
    Mitm12,
    expect_alert12,
    patch_client_hello,
    with_extension,
)
from pair import configs, handshake
from tlsmith.codec import extensions as ext
from tlsmith.codec.enums import (
    CipherSuite,
    ContentType,
    ExtensionType,
    HandshakeType,
    ProtocolVersion,
)
from tlsmith.codec.messages import ClientHello
from tlsmith.errors import DecodeError, ProtocolVersionError
from tlsmith.events import HandshakeComplete

H = HandshakeType
HS = ContentType.HANDSHAKE
TLS12 = ProtocolVersion.TLS12
TLS13 = ProtocolVersion.TLS13


# -- (a) legacy_version below TLS 1.2 -------------------------------------------------------
@pytest.mark.parametrize("server_kw", [{"min_version": TLS13}, {}],
                         ids=["tls13-only-server", "default-server"])
@pytest.mark.parametrize("legacy", [0x0300, 0x0301, 0x0302], ids=lambda v: f"{v:04x}")
def test_legacy_version_below_tls12_with_tls13_offered(certs: dict[str, CertFiles],
                                                       legacy: int,
                                                       server_kw: dict[str, Any]) -> None:
    """RFC 8446 §D.5: "servers MUST abort ... with protocol_version" for a ClientHello
    with legacy_version 0x0300 -- and §4.1.2 / RFC 8996 make 0x0301/0x0302 the same --
    even if supported_versions lists TLS 1.3."""
    m = Mitm(*configs(certs["ecdsa-p256"], server=server_kw))
    hello = ClientHello.parse_body(m.client_hello[4:])
    assert TLS13 in ext.find_extension(hello.extensions,  # type: ignore[union-attr]
                                       ext.SupportedVersionsClientHello).versions
    forged = edit_client_hello(m.client_hello, legacy_version=ProtocolVersion(legacy))
    expect_alert(m.server, m.sspy, handshake_record(forged), ProtocolVersionError)


def test_legacy_version_0303_is_the_control(certs: dict[str, CertFiles]) -> None:
    m = Mitm(*configs(certs["ecdsa-p256"], server={"min_version": TLS13}))
    forged = edit_client_hello(m.client_hello, legacy_version=TLS12)
    assert forged == m.client_hello
    m.to_server(handshake_record(forged))
    assert m.server.state_name == "ExpectClientFinished"


# -- (b) malformed TLS 1.2-only extensions ----------------------------------------------
MALFORMED = {
    "ec_point_formats-05-00": ext.UnknownExtension(ExtensionType.EC_POINT_FORMATS, b"\x05\x00"),
    "ec_point_formats-empty-list": ext.UnknownExtension(ExtensionType.EC_POINT_FORMATS,
                                                        b"\x00"),
    "extended_master_secret-with-body": ext.UnknownExtension(
        ExtensionType.EXTENDED_MASTER_SECRET, b"\x00"),
    "encrypt_then_mac-with-body": ext.UnknownExtension(ExtensionType.ENCRYPT_THEN_MAC,
                                                       b"\x00\x00"),
    "renegotiation_info-bad-length": ext.UnknownExtension(ExtensionType.RENEGOTIATION_INFO,
                                                          b"\x05"),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_tls13_server_ignores_malformed_tls12_extension(certs: dict[str, CertFiles],
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       name: str) -> None:
    """RFC 8446 §4.1.2: a TLS 1.3 server ignores extensions only TLS 1.2 uses, bodies
    included; the handshake completes."""
    patch_client_hello(monkeypatch, with_extension(MALFORMED[name]))
    client, server, _, _ = handshake(*configs(certs["ecdsa-p256"]))
    assert client.info is not None and client.info.version == TLS13
    assert server.handshake_complete
    client.send_data(b"ping")
    server.receive_data(client.data_to_send())
    assert [getattr(e, "data", None) for e in run(server)] == [b"ping"]


@pytest.mark.parametrize("name", list(MALFORMED))
@pytest.mark.parametrize("who", ["tls12-server", "tls12-client"])
def test_tls12_negotiation_refuses_malformed_extension(certs: dict[str, CertFiles],
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       who: str, name: str) -> None:
    """RFC 5246 §7.2.2: once TLS 1.2 is negotiated the extension is used, and a body
    that does not decode is decode_error."""
    patch_client_hello(monkeypatch, with_extension(MALFORMED[name]))
    if who == "tls12-server":
        ccfg, scfg = configs(certs["ecdsa-p256"], server={"max_version": TLS12})
    else:
        ccfg, scfg = configs(certs["ecdsa-p256"], max_version=TLS12)
    m = Mitm12(ccfg, scfg)
    expect_alert12(m.server, m.client_first.data, DecodeError)


# -- (c) handshake message sizes ---------------------------------------------------------
def _huge_hello(hello: ClientHello) -> ClientHello:
    """Legal and over 64 KiB: 20000 unassigned cipher suites and a 30000-byte padding
    extension (RFC 7685), before the real suites and extensions."""
    filler = tuple(CipherSuite(v) for v in range(0x2000, 0x2000 + 20500)
                   if not CipherSuite(v).known)[:20000]
    exts = (*hello.extensions, ext.Padding(30000))
    return replace(hello, cipher_suites=(*filler, *hello.cipher_suites), extensions=exts)


@pytest.mark.parametrize("version", [TLS13, TLS12], ids=lambda v: v.label)
def test_client_hello_over_64k_is_accepted(certs: dict[str, CertFiles],
                                           monkeypatch: pytest.MonkeyPatch,
                                           version: ProtocolVersion) -> None:
    """RFC 8446 §4.1.2 allows cipher_suites<2..2^16-2> and extensions<8..2^16-1>: a
    ClientHello can be ~128 KiB; it spans several records (RFC 8446 §5.1)."""
    patch_client_hello(monkeypatch, _huge_hello)
    ccfg, scfg = configs(certs["ecdsa-p256"], max_version=version)
    m = Mitm(ccfg, scfg)
    assert len(m.client_hello) > 65536
    assert len(m.client_first.records) >= 5  # fragmented at 2^14
    m.to_server(m.client_first.data)
    m.to_client(m.server.data_to_send())
    events = m.to_server(m.client.data_to_send())
    if version == TLS12:  # the server's Finished still has to reach the client
        m.to_client(m.server.data_to_send())
    assert any(isinstance(e, HandshakeComplete) for e in events)
    assert m.client.handshake_complete and m.server.handshake_complete


def _header(msg_type: int, length: int) -> bytes:
    return bytes((msg_type,)) + length.to_bytes(3, "big")


BAD_FINISHED = [0, 11, 65, 0x10000, 0xFFFFFF]


@pytest.mark.parametrize("length", BAD_FINISHED)
@pytest.mark.parametrize("role", ["client", "server"])
def test_tls13_finished_header_with_impossible_length(certs: dict[str, CertFiles],
                                                      role: str, length: int) -> None:
    """RFC 8446 §4.4.4: verify_data is Hash.length bytes; a header announcing another
    length is decode_error on the header alone (protected, in its own record)."""
    m = Mitm(*configs(certs["ecdsa-p256"]))
    f = server_first_flight(m)
    if role == "client":
        channel = m.channel("server_handshake_traffic_secret", f.suite)
        m.to_client(handshake_record(f.server_hello) + channel.handshake(*f.messages[:3]))
        assert m.client.state_name == "ExpectFinished"
        victim, spy = m.client, m.cspy
    else:
        channel = m.channel("client_handshake_traffic_secret", f.suite)
        victim, spy = m.server, m.sspy
    expect_alert(victim, spy, channel.record(HS, _header(H.FINISHED, length)), DecodeError)


@pytest.mark.parametrize("length", [0, 2, 0x10000, 0xFFFFFF])
def test_key_update_header_with_impossible_length(certs: dict[str, CertFiles],
                                                  length: int) -> None:
    """RFC 8446 §4.6.3: KeyUpdate is one byte."""
    m = Mitm(*configs(certs["ecdsa-p256"]))
    f = server_first_flight(m)
    m.to_client(f.data)
    events = m.to_server(m.client.data_to_send())
    assert isinstance(events[0], HandshakeComplete)
    channel = m.channel("client_application_traffic_secret_0", f.suite)
    expect_alert(m.server, m.sspy, channel.record(HS, _header(H.KEY_UPDATE, length)),
                 DecodeError)


def _tls12(cert: CertFiles) -> Mitm12:
    return Mitm12(*configs(cert, max_version=TLS12, server={"max_version": TLS12}))


@pytest.mark.parametrize("length", [1, 0x10000, 0xFFFFFF])
def test_server_hello_done_header_with_impossible_length(certs: dict[str, CertFiles],
                                                         length: int) -> None:
    """RFC 5246 §7.4.5: ServerHelloDone is empty."""
    m = _tls12(certs["ecdsa-p256"])
    msgs = m.server_hello_flight().messages
    m.to_client(b"".join(handshake_record(x) for x in msgs[:3]))
    assert m.client.state_name == "ExpectServerHelloDone"
    expect_alert12(m.client, handshake_record(_header(H.SERVER_HELLO_DONE, length)),
                   DecodeError)


@pytest.mark.parametrize("length", BAD_FINISHED)
@pytest.mark.parametrize("role", ["client", "server"])
def test_tls12_finished_header_with_impossible_length(certs: dict[str, CertFiles],
                                                      role: str, length: int) -> None:
    """RFC 5246 §7.4.9: verify_data is 12 bytes for every suite here."""
    m = _tls12(certs["ecdsa-p256"])
    f = m.server_hello_flight()
    m.to_client(f.data)
    cf = m.client_flight()
    session = m.session()
    if role == "client":
        m.to_client(CCS)
        victim, channel = m.client, session.channel(client=False)
    else:
        m.to_server(cf.plaintext_data + CCS)
        victim, channel = m.server, session.channel(client=True)
    assert victim.state_name == "ExpectFinished"
    expect_alert12(victim, channel.record(HS, _header(H.FINISHED, length)),
                   DecodeError, session)


@pytest.mark.parametrize(("msg_type", "length"), [(H.CLIENT_HELLO, 0xFFFFFF),
                                                  (H.CLIENT_HELLO, 131397),
                                                  (H.HELLO_REQUEST, 1)],
                         ids=["client_hello-16M", "client_hello-over-max", "hello_request"])
def test_other_headers_with_impossible_length(certs: dict[str, CertFiles],
                                              msg_type: HandshakeType, length: int) -> None:
    """ClientHello's vectors cap it at 131396 bytes (RFC 8446 §4.1.2); HelloRequest is
    empty (RFC 5246 §7.4.1.1)."""
    m = _tls12(certs["ecdsa-p256"])
    if msg_type == H.CLIENT_HELLO:
        expect_alert12(m.server, handshake_record(_header(msg_type, length)), DecodeError)
        return
    f = m.server_hello_flight()
    m.to_client(f.data)
    m.to_server(m.client_flight().data)
    assert isinstance(m.to_client(m.server.data_to_send())[0], HandshakeComplete)
    channel = m.session().channel(client=False, seq=1)
    expect_alert12(m.client, channel.record(HS, _header(msg_type, length)),
                   DecodeError, m.session())


@pytest.mark.parametrize("tls12", [False, True], ids=["tls13", "tls12"])
def test_legal_header_alone_waits(certs: dict[str, CertFiles], tls12: bool) -> None:
    """Control: a header announcing a possible length just waits for the body."""
    if tls12:
        m12 = _tls12(certs["ecdsa-p256"])
        msgs = m12.server_hello_flight().messages
        m12.to_client(b"".join(handshake_record(x) for x in msgs[:3]))
        assert m12.to_client(handshake_record(_header(H.CERTIFICATE_REQUEST, 100))) == []
        assert m12.client.data_to_send() == b""
        return
    m = Mitm(*configs(certs["ecdsa-p256"]))
    f = server_first_flight(m)
    channel = m.channel("client_handshake_traffic_secret", f.suite)
    assert m.to_server(channel.record(HS, _header(H.FINISHED, 32))) == []
    assert m.server.data_to_send() == b""

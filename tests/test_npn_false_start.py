"""NPN (draft-agl-tls-nextprotoneg-04) and TLS 1.2 False Start (RFC 7918), in memory.

NPN: the NextProtocol message and extension encodings, the client's choice, ALPN's
precedence, TLS 1.3 ignoring it, resumption. False Start: a client that opted in may
send application data after its Finished and before the server's, which it still checks.
Against OpenSSL: tests/test_interop_npn_false_start.py.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from helpers import CertFiles
from mitm12 import expect_alert12, patch_client_hello, with_extension
from pair import configs, pump
from tlsmith.codec import extensions as x
from tlsmith.codec.enums import CipherSuite, ExtensionType, HandshakeType, ProtocolVersion
from tlsmith.codec.extensions_base import ExtensionContext
from tlsmith.codec.messages12 import NextProtocol
from tlsmith.connection import TLSConnection
from tlsmith.errors import DecodeError, TLSError, UsageError
from tlsmith.events import (
    ApplicationData,
    FalseStart,
    HandshakeComplete,
    HandshakeInfo,
    SessionTicketReceived,
)
from tlsmith.handshake.client12 import choose_next_protocol

TLS12 = {"max_version": ProtocolVersion.TLS12}
ECDHE_GCM = CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
ECDHE_CBC = CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256


def _info(events: list[Any]) -> HandshakeInfo:
    done = [e for e in events if isinstance(e, HandshakeComplete)]
    assert len(done) == 1, events
    return done[0].info


def _run(cert: CertFiles, **kw: Any) -> tuple[HandshakeInfo, HandshakeInfo]:
    ccfg, scfg = configs(cert, **kw)
    client, server = TLSConnection(ccfg), TLSConnection(scfg)
    cev, sev = pump(client, server)
    return _info(cev), _info(sev)


# -- encodings ---------------------------------------------------------------------------


@pytest.mark.parametrize("proto", [b"", b"h2", b"http/1.1", b"x" * 30, b"y" * 255])
def test_next_protocol_is_padded_to_32_bytes(proto: bytes) -> None:
    """§3: padding_len = 32 - ((len(selected_protocol) + 2) % 32)."""
    body = NextProtocol(proto).serialize_body()
    assert len(body) % 32 == 0
    assert body[0] == len(proto) and body[1:1 + len(proto)] == proto
    pad = body[1 + len(proto):]
    assert pad[0] == len(pad) - 1 and pad[1:] == bytes(len(pad) - 1)
    assert NextProtocol.parse_body(body) == NextProtocol(proto)
    assert NextProtocol(proto).serialize()[0] == int(HandshakeType.NEXT_PROTOCOL) == 67


@pytest.mark.parametrize("body", [b"", b"\x02h2", b"\x02h2\x00\x00", b"\x05h2"],
                         ids=["empty", "no-padding", "trailing", "truncated"])
def test_next_protocol_malformed_is_decode_error(body: bytes) -> None:
    with pytest.raises(DecodeError):
        NextProtocol.parse_body(body)


def test_npn_extension_forms() -> None:
    sh = x.NextProtocolNegotiation((b"h2", b"http/1.1"))
    assert sh.serialize_body() == b"\x02h2\x08http/1.1"  # no outer length (§3)
    assert x.NextProtocolNegotiation.parse_body(b"", ExtensionContext.SERVER_HELLO) == (
        x.NextProtocolNegotiation(()))
    with pytest.raises(DecodeError):  # an empty protocol name
        x.NextProtocolNegotiation.parse_body(b"\x02h2\x00", ExtensionContext.SERVER_HELLO)
    with pytest.raises(DecodeError):  # a client's extension is empty
        x.NextProtocolNegotiation.parse_body(b"\x02h2", ExtensionContext.CLIENT_HELLO)
    assert int(ExtensionType.NEXT_PROTOCOL_NEGOTIATION) == 13172


@pytest.mark.parametrize(("ours", "advertised", "chosen"), [
    (("h2", "http/1.1"), (b"spdy/3", b"http/1.1", b"h2"), b"http/1.1"),  # server's order
    (("h2",), (b"spdy/3",), b"h2"),  # no overlap: our first (§3)
    (("",), (b"h2",), b""),  # the empty protocol, on purpose
    (("h2",), (), b"h2"),
])
def test_choose_next_protocol(ours: tuple[str, ...], advertised: tuple[bytes, ...],
                              chosen: bytes) -> None:
    assert choose_next_protocol(ours, advertised) == chosen


# -- NPN handshakes ----------------------------------------------------------------------


def test_npn_negotiated(certs: dict[str, CertFiles]) -> None:
    cinfo, sinfo = _run(certs["ecdsa-p256"], next_protocols=("h2", "http/1.1"), **TLS12,
                        server={"next_protocols": ("http/1.1", "spdy/3")})
    assert cinfo.next_protocol == sinfo.next_protocol == "http/1.1"
    assert cinfo.alpn is None


def test_npn_needs_both_sides(certs: dict[str, CertFiles]) -> None:
    cinfo, sinfo = _run(certs["ecdsa-p256"], next_protocols=("h2",), **TLS12)
    assert cinfo.next_protocol is None and sinfo.next_protocol is None
    cinfo, sinfo = _run(certs["ecdsa-p256"], **TLS12, server={"next_protocols": ("h2",)})
    assert cinfo.next_protocol is None and sinfo.next_protocol is None


def test_npn_empty_advertisement(certs: dict[str, CertFiles]) -> None:
    cinfo, sinfo = _run(certs["ecdsa-p256"], next_protocols=("foo",), **TLS12,
                        server={"next_protocols": ()})
    assert cinfo.next_protocol == sinfo.next_protocol == "foo"


def test_alpn_takes_precedence_over_npn(certs: dict[str, CertFiles]) -> None:
    cinfo, sinfo = _run(certs["ecdsa-p256"], next_protocols=("spdy/3",),
                        alpn_protocols=("h2",), **TLS12,
                        server={"next_protocols": ("spdy/3",), "alpn_protocols": ("h2",)})
    assert cinfo.alpn == sinfo.alpn == "h2"
    assert cinfo.next_protocol is None and sinfo.next_protocol is None


def test_npn_not_in_tls13(certs: dict[str, CertFiles]) -> None:
    cinfo, sinfo = _run(certs["ecdsa-p256"], next_protocols=("h2",),
                        server={"next_protocols": ("h2",)})
    assert cinfo.version == ProtocolVersion.TLS13
    assert cinfo.next_protocol is None and sinfo.next_protocol is None


def test_npn_on_resumption(certs: dict[str, CertFiles]) -> None:
    """The server advertises again and the client selects again in an abbreviated
    handshake (as BoringSSL does)."""
    ccfg, scfg = configs(certs["ecdsa-p256"], next_protocols=("h2",), session_tickets=True,
                         **TLS12, server={"next_protocols": ("h2",), "session_ids": True})
    client, server = TLSConnection(ccfg), TLSConnection(scfg)
    cev, _ = pump(client, server)
    session = next(e.session for e in cev if isinstance(e, SessionTicketReceived))
    client, server = TLSConnection(ccfg, session=session), TLSConnection(scfg)
    cev, sev = pump(client, server)
    cinfo, sinfo = _info(cev), _info(sev)
    assert cinfo.resumed and sinfo.resumed
    assert cinfo.next_protocol == sinfo.next_protocol == "h2"


# -- False Start -------------------------------------------------------------------------


def _until_false_start(cert: CertFiles, **kw: Any
                       ) -> tuple[TLSConnection, TLSConnection, list[Any]]:
    """Run the handshake up to the client's second flight, held back from the server."""
    ccfg, scfg = configs(cert, **kw)
    client, server = TLSConnection(ccfg), TLSConnection(scfg)
    server.receive_data(client.data_to_send())
    server.events()
    client.receive_data(server.data_to_send())
    return client, server, client.events()


def test_false_start_sends_data_before_the_server_finished(
        certs: dict[str, CertFiles]) -> None:
    client, server, events = _until_false_start(
        certs["ecdsa-p256"], false_start=True, alpn_protocols=("h2",),
        cipher_suites=(ECDHE_GCM,), **TLS12, server={"alpn_protocols": ("h2",)})
    assert any(isinstance(e, FalseStart) for e in events)
    assert not client.handshake_complete and client.false_started
    client.send_data(b"early request")
    # One write: our flight (CKE, CCS, Finished) first, then the application data.
    server.receive_data(client.data_to_send())
    sev = server.events()
    assert isinstance(sev[0], HandshakeComplete)
    assert [e.data for e in sev if isinstance(e, ApplicationData)] == [b"early request"]
    client.receive_data(server.data_to_send())
    assert isinstance(client.events()[0], HandshakeComplete)
    assert client.handshake_complete


def test_keying_material_exported_during_false_start(certs: dict[str, CertFiles]) -> None:
    """As BoringSSL allows: the keys are final once our Finished is out."""
    client, server, _ = _until_false_start(
        certs["ecdsa-p256"], false_start=True, false_start_without_alpn=True,
        cipher_suites=(ECDHE_GCM,), **TLS12)
    early = client.export_keying_material(b"EXPORTER-test", b"ctx", 48)
    server.receive_data(client.data_to_send())
    server.events()
    assert server.export_keying_material(b"EXPORTER-test", b"ctx", 48) == early
    client, _, _ = _until_false_start(certs["ecdsa-p256"], cipher_suites=(ECDHE_GCM,),
                                      **TLS12)
    with pytest.raises(UsageError):
        client.export_keying_material(b"EXPORTER-test", None, 16)


def test_false_start_still_checks_the_server_finished(certs: dict[str, CertFiles]) -> None:
    client, server, _ = _until_false_start(
        certs["ecdsa-p256"], false_start=True, false_start_without_alpn=True,
        cipher_suites=(ECDHE_GCM,), **TLS12)
    client.send_data(b"data")
    server.receive_data(client.data_to_send())
    server.events()
    flight = bytearray(server.data_to_send())
    flight[-1] ^= 1  # the server's encrypted Finished
    client.receive_data(bytes(flight))
    with pytest.raises(TLSError):
        client.events()
    assert not client.handshake_complete


@pytest.mark.parametrize("kw", [
    {},  # not opted in
    {"false_start": True},  # no ALPN/NPN negotiated
    {"false_start": True, "false_start_without_alpn": True,
     "cipher_suites": (ECDHE_CBC,), "allow_mac_then_encrypt": True},  # not an AEAD
], ids=["off", "no-alpn", "cbc"])
def test_no_false_start(certs: dict[str, CertFiles], kw: dict[str, Any]) -> None:
    kw = {"cipher_suites": (ECDHE_GCM,), **kw}
    server = {"allow_mac_then_encrypt": True}
    client, _, events = _until_false_start(certs["ecdsa-p256"], **TLS12, **kw,
                                           server=server)
    assert not any(isinstance(e, FalseStart) for e in events)
    with pytest.raises(UsageError):
        client.send_data(b"too early")


def test_false_start_with_npn(certs: dict[str, CertFiles]) -> None:
    client, _, events = _until_false_start(
        certs["ecdsa-p256"], false_start=True, next_protocols=("h2",),
        cipher_suites=(ECDHE_GCM,), **TLS12, server={"next_protocols": ("h2",)})
    assert any(isinstance(e, FalseStart) for e in events)
    client.send_data(b"ok")


def test_no_false_start_on_resumption(certs: dict[str, CertFiles]) -> None:
    """The abbreviated handshake ends with our Finished: nothing to start early."""
    ccfg, scfg = configs(certs["ecdsa-p256"], false_start=True,
                         false_start_without_alpn=True, session_tickets=True,
                         cipher_suites=(ECDHE_GCM,), **TLS12)
    client, server = TLSConnection(ccfg), TLSConnection(scfg)
    cev, _ = pump(client, server)
    assert any(isinstance(e, FalseStart) for e in cev)
    session = next(e.session for e in cev if isinstance(e, SessionTicketReceived))
    client, server = TLSConnection(replace(ccfg), session=session), TLSConnection(scfg)
    cev, _ = pump(client, server)
    assert _info(cev).resumed
    assert not any(isinstance(e, FalseStart) for e in cev)


# -- malformed NPN from a peer -----------------------------------------------------------


@pytest.mark.parametrize("version", [ProtocolVersion.TLS12, ProtocolVersion.TLS13])
def test_server_npn_in_client_hello_must_be_empty(certs: dict[str, CertFiles],
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  version: ProtocolVersion) -> None:
    """§3: the client's extension is empty; a TLS 1.2 server answers decode_error, a
    TLS 1.3 server ignores the (TLS 1.2-only) extension."""
    patch_client_hello(monkeypatch, with_extension(x.UnknownExtension(
        ExtensionType.NEXT_PROTOCOL_NEGOTIATION, b"\x02h2")))
    ccfg, scfg = configs(certs["ecdsa-p256"], next_protocols=("h2",),
                         server={"next_protocols": ("h2",), "max_version": version})
    client, server = TLSConnection(ccfg), TLSConnection(scfg)
    if version == ProtocolVersion.TLS12:
        expect_alert12(server, client.data_to_send(), DecodeError,
                       match="next_protocol_negotiation")
        return
    _, sev = pump(client, server)
    assert _info(sev).version == ProtocolVersion.TLS13 and _info(sev).next_protocol is None

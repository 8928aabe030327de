"""ALPS, application-layer protocol settings (draft-vvv-tls-alps-01, BoringSSL's two
codepoints), in memory: encodings, negotiation, ClientEncryptedExtensions, sessions and
0-RTT (the session's settings apply; changed settings mean no 0-RTT)."""

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
from tlsmith.codec.messages import ClientEncryptedExtensions, ClientHello
from tlsmith.config import ClientConfig
from tlsmith.connection import TLSConnection
from tlsmith.errors import DecodeError, UsageError
from tlsmith.events import HandshakeComplete, HandshakeInfo, SessionTicketReceived
from tlsmith.handshake import alps
from tlsmith.session import Session13, session_from_bytes
from tlsmith.tickets import ServerSessionState


def _info(events: list[Any]) -> HandshakeInfo:
    done = [e for e in events if isinstance(e, HandshakeComplete)]
    assert len(done) == 1, events
    return done[0].info


def _alps_configs(cert: CertFiles, client: dict[str, Any], server: dict[str, Any],
                  **kw: Any) -> tuple[Any, Any]:
    return configs(cert, alpn_protocols=("h2",), **client, **kw,
                   server={"alpn_protocols": ("h2",), **server})


def _run(cert: CertFiles, client: dict[str, Any], server: dict[str, Any]
         ) -> tuple[HandshakeInfo, HandshakeInfo]:
    ccfg, scfg = _alps_configs(cert, client, server)
    cev, sev = pump(TLSConnection(ccfg), TLSConnection(scfg))
    return _info(cev), _info(sev)


# -- encodings ---------------------------------------------------------------------------


def test_codepoints() -> None:
    assert int(ExtensionType.APPLICATION_SETTINGS) == 17513
    assert int(ExtensionType.APPLICATION_SETTINGS_NEW) == 0x44CD
    assert alps.extension_type(True) == ExtensionType.APPLICATION_SETTINGS_NEW
    assert alps.settings_extension(False, b"s").extension_type == 17513


def test_client_hello_form() -> None:
    ch = x.ApplicationSettingsClientHello((b"h2", b"http/1.1"))
    assert ch.serialize_body() == b"\x00\x0c\x02h2\x08http/1.1"
    for bad in (b"", b"\x00\x00", b"\x00\x01\x00", b"\x00\x03\x02h2\x00"):
        with pytest.raises(DecodeError):
            x.ApplicationSettingsClientHello.parse_body(bad, ExtensionContext.CLIENT_HELLO)


def test_client_encrypted_extensions_is_an_encrypted_extensions_message() -> None:
    """BoringSSL sends the client's settings in a message of type 8."""
    cee = ClientEncryptedExtensions((x.ApplicationSettingsNew(b"shim"),))
    raw = cee.serialize()
    assert raw[0] == HandshakeType.ENCRYPTED_EXTENSIONS
    assert raw[4:] == b"\x00\x08\x44\xcd\x00\x04shim"
    assert ClientEncryptedExtensions.parse_body(raw[4:]) == cee


def test_config_validation(certs: dict[str, CertFiles]) -> None:
    with pytest.raises(UsageError, match="twice"):
        ClientConfig(verify_certificates=False,
                     application_settings=(("h2", b"a"), ("h2", b"b")))
    _, scfg = configs(certs["ecdsa-p256"])
    with pytest.raises(UsageError, match="application_settings"):
        replace(scfg, application_settings=(("", b"a"),))


# -- negotiation -------------------------------------------------------------------------


@pytest.mark.parametrize("new", [False, True], ids=["old", "new"])
def test_alps_negotiated(certs: dict[str, CertFiles], new: bool) -> None:
    cinfo, sinfo = _run(certs["ecdsa-p256"],
                        {"application_settings": (("h2", b"client"),),
                         "alps_new_codepoint": new},
                        {"application_settings": (("h2", b"server"),),
                         "alps_new_codepoint": new})
    assert cinfo.alpn == "h2"
    assert cinfo.peer_application_settings == b"server"
    assert sinfo.peer_application_settings == b"client"


def test_alps_empty_settings(certs: dict[str, CertFiles]) -> None:
    cinfo, sinfo = _run(certs["ecdsa-p256"], {"application_settings": (("h2", b""),)},
                        {"application_settings": (("h2", b""),)})
    assert cinfo.peer_application_settings == sinfo.peer_application_settings == b""


@pytest.mark.parametrize(("client", "server"), [
    ({"application_settings": (("h2", b"c"),)}, {}),  # the server has none
    ({}, {"application_settings": (("h2", b"s"),)}),  # the client offers none
    ({"application_settings": (("h2", b"c"),), "alps_new_codepoint": True},
     {"application_settings": (("h2", b"s"),)}),  # different codepoints
    ({"application_settings": (("h2", b"c"),)},
     {"application_settings": (("other", b"s"),)}),  # not for the negotiated protocol
], ids=["server-none", "client-none", "codepoints", "other-protocol"])
def test_alps_not_negotiated(certs: dict[str, CertFiles], client: dict[str, Any],
                             server: dict[str, Any]) -> None:
    cinfo, sinfo = _run(certs["ecdsa-p256"], client, server)
    assert cinfo.alpn == "h2"
    assert cinfo.peer_application_settings is None
    assert sinfo.peer_application_settings is None


def test_alps_not_in_tls12(certs: dict[str, CertFiles]) -> None:
    ccfg, scfg = configs(certs["ecdsa-p256"], alpn_protocols=("h2",),
                         application_settings=(("h2", b"c"),),
                         server={"alpn_protocols": ("h2",),
                                 "application_settings": (("h2", b"s"),),
                                 "max_version": ProtocolVersion.TLS12})
    cev, sev = pump(TLSConnection(ccfg), TLSConnection(scfg))
    assert _info(cev).version == ProtocolVersion.TLS12
    assert _info(cev).peer_application_settings is None
    assert _info(sev).peer_application_settings is None


@pytest.mark.parametrize("alpn", [(), ("h2",)], ids=["no-alpn", "alpn"])
def test_client_offers_alps_only_with_alpn(certs: dict[str, CertFiles],
                                           alpn: tuple[str, ...]) -> None:
    ccfg, _ = configs(certs["ecdsa-p256"], alpn_protocols=alpn,
                      application_settings=(("h2", b"c"),))
    raw = TLSConnection(ccfg).data_to_send()
    hello = ClientHello.parse_body(raw[9:])  # (record and handshake headers)
    found = x.find_extension_type(hello.extensions, ExtensionType.APPLICATION_SETTINGS)
    assert (found == x.ApplicationSettingsClientHello((b"h2",))) if alpn else found is None


# -- sessions and 0-RTT ------------------------------------------------------------------


AES128 = CipherSuite.TLS_AES_128_GCM_SHA256


def test_sessions_keep_the_settings() -> None:
    state = ServerSessionState(version=ProtocolVersion.TLS13, cipher_suite=AES128,
                               secret=b"k" * 32, issued_at=1.0, lifetime=10,
                               application_settings=(b"ours", b"theirs"))
    assert ServerSessionState.from_bytes(state.to_bytes()) == state
    plain = ServerSessionState(version=ProtocolVersion.TLS13, cipher_suite=AES128,
                               secret=b"k" * 32, issued_at=1.0, lifetime=10)
    assert ServerSessionState.from_bytes(plain.to_bytes()).application_settings is None
    s = Session13(ticket=b"t", psk=b"p" * 32, cipher_suite=AES128,
                  ticket_age_add=1, lifetime=10, received_at=1.0, alpn="h2",
                  application_settings=(b"c", b"s"))
    assert session_from_bytes(s.to_bytes()) == s


def _resume_with_early_data(cert: CertFiles, first: bytes, second: bytes
                            ) -> tuple[HandshakeInfo, HandshakeInfo]:
    ccfg, scfg = _alps_configs(cert, {"application_settings": (("h2", first),)},
                               {"application_settings": (("h2", b"server"),),
                                "max_early_data": 1024})
    cev, _ = pump(TLSConnection(ccfg), TLSConnection(scfg))
    session = next(e.session for e in cev if isinstance(e, SessionTicketReceived))
    assert isinstance(session, Session13)
    assert session.application_settings == (first, b"server")
    ccfg2 = replace(ccfg, application_settings=(("h2", second),))
    client = TLSConnection(ccfg2, session=session, early_data=b"0-rtt")
    cev, sev = pump(client, TLSConnection(scfg))
    return _info(cev), _info(sev)


def test_early_data_keeps_the_session_settings(certs: dict[str, CertFiles]) -> None:
    cinfo, sinfo = _resume_with_early_data(certs["ecdsa-p256"], b"client", b"client")
    assert cinfo.early_data_accepted and sinfo.early_data_accepted
    assert cinfo.peer_application_settings == b"server"
    assert sinfo.peer_application_settings == b"client"


def test_changed_settings_mean_no_early_data(certs: dict[str, CertFiles]) -> None:
    cinfo, sinfo = _resume_with_early_data(certs["ecdsa-p256"], b"client", b"changed")
    assert cinfo.resumed and not cinfo.early_data_accepted
    # A full ALPS exchange again, with the new settings.
    assert cinfo.peer_application_settings == b"server"
    assert sinfo.peer_application_settings == b"changed"


def test_server_refuses_a_malformed_alps_offer(certs: dict[str, CertFiles],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    patch_client_hello(monkeypatch, with_extension(x.UnknownExtension(
        ExtensionType.APPLICATION_SETTINGS, b"\x00\x01\x00")))  # an empty protocol name
    ccfg, scfg = _alps_configs(certs["ecdsa-p256"],
                               {"application_settings": (("h2", b"c"),)},
                               {"application_settings": (("h2", b"s"),)})
    expect_alert12(TLSConnection(scfg), TLSConnection(ccfg).data_to_send(), DecodeError)

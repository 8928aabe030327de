"""Regression tests for core bugs found by BoringSSL's conformance runner (BoGo,
``make bogo``); each names the BoGo test that found it."""

from __future__ import annotations

import pytest

from helpers import CertFiles
from pair import configs
from tlsmith.codec.enums import ContentType
from tlsmith.connection import TLSConnection
from tlsmith.errors import IllegalParameter
from tlsmith.record.framing import encode_record_header


def _record(content_type: ContentType, payload: bytes) -> bytes:
    return encode_record_header(content_type, 0x0303, len(payload)) + payload


def _client_hello_without_supported_versions(legacy_version: int) -> bytes:
    """A TLS 1.2-style ClientHello (no supported_versions) with ``legacy_version``."""
    from tlsmith.codec import extensions as ext
    from tlsmith.codec.enums import CipherSuite, NamedGroup, SignatureScheme
    from tlsmith.codec.messages import ClientHello

    hello = ClientHello(
        legacy_version=legacy_version, random=bytes(32), legacy_session_id=b"",
        cipher_suites=(CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,),
        legacy_compression_methods=b"\x00",
        extensions=(ext.SupportedGroups((NamedGroup.X25519, NamedGroup.SECP256R1)),
                    ext.SignatureAlgorithms((SignatureScheme.ECDSA_SECP256R1_SHA256,)),
                    ext.ExtendedMasterSecret()))
    return _record(ContentType.HANDSHAKE, hello.serialize())


@pytest.mark.parametrize("legacy_version", [0x0303, 0x0304, 0x03FF, 0x0400])
def test_hello_without_supported_versions_negotiates_tls12(certs: dict[str, CertFiles],
                                                           legacy_version: int) -> None:
    """BoGo ClientHelloVersionTooHigh / MinorVersionTolerance / MajorVersionTolerance:
    without supported_versions the server answers TLS 1.2 (RFC 8446 §4.2.1, RFC 5246
    §E.1), whatever higher legacy_version the client claims."""
    from tlsmith.codec.enums import ProtocolVersion

    _, server_cfg = configs(certs["ecdsa-p256"])
    server = TLSConnection(server_cfg)
    server.receive_data(_client_hello_without_supported_versions(legacy_version))
    server.events()
    assert server.negotiated_version == ProtocolVersion.TLS12
    assert server.data_to_send()[:1] == bytes([ContentType.HANDSHAKE])


@pytest.mark.parametrize("where", ["server_hello", "encrypted_extensions"])
@pytest.mark.parametrize("name", ["ExtendedMasterSecret", "RenegotiationInfo", "SessionTicket"])
def test_tls12_only_extension_in_tls13_server_message_is_illegal(where: str, name: str) -> None:
    """BoGo EMS-Forbidden-TLS13 / RenegotiationInfo-Forbidden-TLS13 /
    Ticket-Forbidden-TLS13: a TLS 1.2 extension that the client offered (for TLS 1.2)
    must not come back in a TLS 1.3 ServerHello or EncryptedExtensions (RFC 8446 §4.2:
    recognised but not specified for the message -> illegal_parameter)."""
    from tlsmith.codec import extensions as ext
    from tlsmith.codec.extensions_base import ExtensionContext
    from tlsmith.handshake.base import check_server_extensions

    body = {"ExtendedMasterSecret": ext.ExtendedMasterSecret(),
            "RenegotiationInfo": ext.RenegotiationInfo(b""),
            "SessionTicket": ext.SessionTicket(b"")}[name]
    offered = frozenset({body.extension_type})
    with pytest.raises(IllegalParameter) as info:
        check_server_extensions([body], ExtensionContext(where), offered)
    assert info.value.check == "extension_not_allowed"
    check_server_extensions([body], ExtensionContext.SERVER_HELLO, offered, tls12=True)


def test_second_client_hello_repeats_the_first(certs: dict[str, CertFiles]) -> None:
    """BoGo TLS13-HelloRetryRequest-Client (and PostQuantumEnabledByDefaultInClients):
    after a HelloRetryRequest the client must resend its ClientHello unchanged but for
    key_share, cookie, early_data and pre_shared_key (RFC 8446 §4.1.2) -- it used to
    drop its TLS 1.2 extensions (ec_point_formats, extended_master_secret, ...)."""
    from dataclasses import replace

    from pair import SecretSpy, pump
    from tlsmith.codec.enums import ExtensionType, NamedGroup
    from tlsmith.observe import MessageTrace

    client_cfg, server_cfg = configs(certs["ecdsa-p256"])
    spy = SecretSpy()
    client = TLSConnection(replace(client_cfg, observer=spy,
                                   key_share_groups=(NamedGroup.X25519,)))
    server = TLSConnection(replace(server_cfg, groups=(NamedGroup.SECP256R1,)))
    pump(client, server)
    assert client.info is not None and client.info.hello_retry_request
    hellos = [r.message for r in spy.records
              if isinstance(r, MessageTrace) and r.name == "ClientHello"]
    assert len(hellos) == 2
    changeable = {ExtensionType.KEY_SHARE, ExtensionType.COOKIE, ExtensionType.EARLY_DATA,
                  ExtensionType.PRE_SHARED_KEY}
    first = [e.extension_type for e in hellos[0].extensions
             if e.extension_type not in changeable]
    second = [e.extension_type for e in hellos[1].extensions
              if e.extension_type not in changeable]
    assert ExtensionType.EXTENDED_MASTER_SECRET in first
    assert first == second
    assert hellos[0].cipher_suites == hellos[1].cipher_suites


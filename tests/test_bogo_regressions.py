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



def test_client_sends_compatibility_ccs_before_an_alert_about_the_server_flight(
        certs: dict[str, CertFiles]) -> None:
    """BoGo UnencryptedEncryptedExtensions, WrongMessageType-TLS13-*, ...: an alert about
    the server's first flight goes out under our handshake key; in middlebox
    compatibility mode the CCS must come before it (RFC 8446 §D.4), or a peer that
    waits for it cannot read the alert. Without an alert it still precedes the second
    flight only."""
    from dataclasses import replace

    from tlsmith.errors import TLSError

    client_cfg, server_cfg = configs(certs["ecdsa-p256"])
    client = TLSConnection(replace(client_cfg, server_name="wrong.example"))
    server = TLSConnection(server_cfg)
    server.receive_data(client.data_to_send())
    server.events()
    client.receive_data(server.data_to_send())
    with pytest.raises(TLSError):
        client.events()
    out = client.data_to_send()
    assert out[:6] == _record(ContentType.CHANGE_CIPHER_SPEC, b"\x01")
    assert out[6] == ContentType.APPLICATION_DATA  # the protected alert
    assert len(out) == 6 + 5 + int.from_bytes(out[9:11], "big")


@pytest.mark.parametrize(("modes", "tickets"), [
    (None, False), ((), False), ((0x7F,), False), ((1,), True), ((0,), True), ((0x7F, 1), True),
])
def test_tls13_server_sends_tickets_only_to_a_client_that_can_resume(
        modes: tuple[int, ...] | None, tickets: bool) -> None:
    """BoGo TLS13-ExpectNoSessionTicketOnBadKEMode-Server: RFC 8446 §4.2.9, servers
    SHOULD NOT send NewSessionTickets a client cannot use: none when its
    psk_key_exchange_modes lists no mode we know (or is absent)."""
    from tlsmith.codec import extensions as ext
    from tlsmith.codec.enums import CipherSuite
    from tlsmith.codec.messages import ClientHello
    from tlsmith.handshake.negotiate import offer
    from tlsmith.handshake.server13 import _can_resume

    exts = () if modes is None else (ext.PskKeyExchangeModes(modes),)
    hello = ClientHello(legacy_version=0x0303, random=bytes(32), legacy_session_id=b"",
                        cipher_suites=(CipherSuite.TLS_AES_128_GCM_SHA256,),
                        legacy_compression_methods=b"\x00", extensions=exts)
    assert _can_resume(offer(hello).psk_modes) is tickets


def test_server_credential_signing_schemes_apart_from_accepted_schemes(
        certs: dict[str, CertFiles]) -> None:
    """BoGo Server-Verify-*-TLS13 (-verify-prefs): ServerConfig.signature_schemes is what
    we accept from clients; a credential with its own signing_schemes signs with those,
    even when the accepted list holds none of them."""
    from dataclasses import replace

    from pair import pump
    from tlsmith.codec.enums import SignatureScheme as S
    from tlsmith.errors import HandshakeFailure

    client_cfg, server_cfg = configs(certs["ecdsa-p256"])
    server_cfg = replace(server_cfg, signature_schemes=(S.RSA_PSS_RSAE_SHA256,))
    with pytest.raises(HandshakeFailure):
        pump(TLSConnection(client_cfg), TLSConnection(server_cfg))
    own = tuple(replace(ck, signing_schemes=(S.ECDSA_SECP256R1_SHA256,))
                for ck in server_cfg.certificates)
    client = TLSConnection(client_cfg)
    pump(client, TLSConnection(replace(server_cfg, certificates=own)))
    assert client.info is not None and client.info.signature_scheme == S.ECDSA_SECP256R1_SHA256


@pytest.mark.parametrize(("types", "expected"), [
    ((1,), None),                                 # rsa_sign only: our key is ECDSA
    ((64,), "ECDSA_SECP256R1_SHA256"),            # ecdsa_sign
    ((1, 64), "ECDSA_SECP256R1_SHA256"),
])
def test_tls12_client_certificate_must_be_of_a_requested_type(
        certs: dict[str, CertFiles], types: tuple[int, ...], expected: str | None) -> None:
    """BoGo CheckClientCertificateTypes: RFC 5246 §7.4.6, the client sends only a
    certificate of a type CertificateRequest.certificate_types lists (else an empty
    Certificate)."""
    from tlsmith.codec.enums import SignatureScheme
    from tlsmith.config import CertifiedKey
    from tlsmith.handshake.client_auth import ClientCredential, choose_client_credential

    files = certs["ecdsa-p256"]
    key = CertifiedKey.from_files(files.chain_path, files.key_path)
    chosen = choose_client_credential(
        (key,), tls13=False, certificate_types=types,
        schemes=(SignatureScheme.ECDSA_SECP256R1_SHA256, SignatureScheme.RSA_PSS_RSAE_SHA256))
    scheme = chosen.scheme if isinstance(chosen, ClientCredential) else None
    assert (scheme.name if scheme is not None else None) == expected

"""Which security check fired: attacks whose tests pin the reason code.

A negative test that only checks the error class and alert passes when *another* check
raising the same class catches the attack -- then breaking the check under test goes
unnoticed (scripts/mutate.py shows it). Each test here reaches one check on its own and
asserts ``ProtocolError.check``; several cover checks no other test reached.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from helpers import CertFiles
from mitm import (
    Mitm,
    body_of,
    drop_extension,
    edit_server_hello,
    expect_alert,
    forged_certificate_verify,
    handshake_record,
    replace_extension,
)
from pair import configs as pair_configs
from pair import pump
from test_handshake13_attacks import (
    H,
    _after_real_hrr,
    _second_hello,
    client_victim,
    configs,
    deliver_server_hello,
    forge_rest,
    server_hello,
)
from tlsmith.codec import extensions as ext
from tlsmith.codec.enums import ExtensionType, ProtocolVersion, SignatureScheme
from tlsmith.codec.messages import CertificateRequest, EncryptedExtensions
from tlsmith.connection import TLSConnection
from tlsmith.errors import IllegalParameter, MissingExtension
from tlsmith.events import ConnectionClosed
from tlsmith.x509.keys import load_private_key


@pytest.fixture
def ecdsa(certs: dict[str, CertFiles]) -> CertFiles:
    return certs["ecdsa-p256"]


@pytest.fixture
def rsa(certs: dict[str, CertFiles]) -> CertFiles:
    return certs["rsa-2048"]


# -- truncation: a bare EOF is not a clean close -----------------------------------------------
@pytest.mark.parametrize("version", [ProtocolVersion.TLS13, ProtocolVersion.TLS12])
def test_eof_without_close_notify_is_truncation(ecdsa: CertFiles,
                                                version: ProtocolVersion) -> None:
    """RFC 8446 §6.1 / RFC 5246 §7.2.1: the transport closing without close_notify may be
    a truncation attack: ConnectionClosed(clean=False), never a clean close."""
    client_cfg, server_cfg = pair_configs(ecdsa, max_version=version)
    client, server = TLSConnection(client_cfg), TLSConnection(server_cfg)
    pump(client, server)
    assert client.handshake_complete and server.handshake_complete
    client.receive_data(b"")  # the server's FIN, no close_notify
    events = client.events()
    closed = [e for e in events if isinstance(e, ConnectionClosed)]
    assert len(closed) == 1 and closed[0].clean is False, events


@pytest.mark.parametrize("version", [ProtocolVersion.TLS13, ProtocolVersion.TLS12])
def test_eof_after_close_notify_is_clean(ecdsa: CertFiles, version: ProtocolVersion) -> None:
    """Control: close_notify first, then the EOF: clean."""
    client_cfg, server_cfg = pair_configs(ecdsa, max_version=version)
    client, server = TLSConnection(client_cfg), TLSConnection(server_cfg)
    pump(client, server)
    server.close()
    client.receive_data(server.data_to_send())
    client.receive_data(b"")
    closed = [e for e in client.events() if isinstance(e, ConnectionClosed)]
    assert closed and closed[0].clean is True


# -- CertificateVerify: a scheme that fits the key but was not offered ------------------------
@pytest.mark.parametrize("scheme", [SignatureScheme.RSA_PSS_RSAE_SHA384,
                                    SignatureScheme.RSA_PSS_RSAE_SHA512], ids=lambda s: s.name)
def test_cv_scheme_not_offered_but_fits_the_key(rsa: CertFiles,
                                                scheme: SignatureScheme) -> None:
    """RFC 8446 §4.4.3: the CertificateVerify's scheme must be one the client offered --
    checked on its own, not only through "fits the key": here the server's RSA key can
    sign with the scheme, and the signature is genuine."""
    m, f = client_victim(rsa, signature_schemes=(SignatureScheme.RSA_PSS_RSAE_SHA256,))
    ee, certificate = f.get(H.ENCRYPTED_EXTENSIONS), f.get(H.CERTIFICATE)
    cv, fin = forge_rest(m, f, rsa, ee, certificate, scheme=scheme)
    deliver_server_hello(m, f)
    channel = m.channel("server_handshake_traffic_secret", f.suite)
    expect_alert(m.client, m.cspy, channel.handshake(ee, certificate, cv, fin),
                 IllegalParameter, check="cv_scheme_not_offered")


def test_cv_scheme_offered_control(rsa: CertFiles) -> None:
    """Control for the test above: the same forgery with the offered scheme is accepted."""
    m, f = client_victim(rsa, signature_schemes=(SignatureScheme.RSA_PSS_RSAE_SHA256,))
    ee, certificate = f.get(H.ENCRYPTED_EXTENSIONS), f.get(H.CERTIFICATE)
    cv, fin = forge_rest(m, f, rsa, ee, certificate,
                         scheme=SignatureScheme.RSA_PSS_RSAE_SHA256)
    deliver_server_hello(m, f)
    channel = m.channel("server_handshake_traffic_secret", f.suite)
    m.to_client(channel.handshake(ee, certificate, cv, fin))
    assert m.client.handshake_complete


def test_cv_scheme_does_not_fit_key(ecdsa: CertFiles) -> None:
    """RFC 8446 §4.2.3: an offered scheme that does not fit the leaf's key (RSA-PSS with
    an ECDSA key) is refused by the "fits the key" check."""
    m, f = client_victim(ecdsa, signature_schemes=(SignatureScheme.ECDSA_SECP256R1_SHA256,
                                                   SignatureScheme.RSA_PSS_RSAE_SHA256))
    ee, certificate = f.get(H.ENCRYPTED_EXTENSIONS), f.get(H.CERTIFICATE)
    from tlsmith.codec.messages import CertificateVerify
    cv = CertificateVerify(SignatureScheme.RSA_PSS_RSAE_SHA256, b"\x00" * 256).serialize()
    deliver_server_hello(m, f)
    channel = m.channel("server_handshake_traffic_secret", f.suite)
    expect_alert(m.client, m.cspy, channel.handshake(ee, certificate, cv),
                 IllegalParameter, check="cv_scheme_key_mismatch")


# -- ServerHello -------------------------------------------------------------------------------
def _sh_attack(m: Mitm, raw: bytes, error: type[Any], check: str) -> None:
    expect_alert(m.client, m.cspy, handshake_record(raw), error, protected=False,
                 check=check)


def test_server_hello_version_not_offered(ecdsa: CertFiles) -> None:
    """RFC 8446 §4.2.1: supported_versions selecting a version we did not offer."""
    m, f = client_victim(ecdsa)
    sh = server_hello(f)
    exts = replace_extension(sh.extensions,
                             ext.SupportedVersionsServerHello(ProtocolVersion.TLS12))
    _sh_attack(m, edit_server_hello(f.server_hello, extensions=exts), IllegalParameter,
               "sh_version_not_offered")


def test_server_hello_key_share_missing(ecdsa: CertFiles) -> None:
    """RFC 8446 §9.2: without a PSK the ServerHello must carry key_share."""
    m, f = client_victim(ecdsa)
    exts = drop_extension(server_hello(f).extensions, ExtensionType.KEY_SHARE)
    _sh_attack(m, edit_server_hello(f.server_hello, extensions=exts), MissingExtension,
               "key_share_missing")


def test_server_hello_session_id_echo(ecdsa: CertFiles) -> None:
    m, f = client_victim(ecdsa)
    _sh_attack(m, edit_server_hello(f.server_hello, legacy_session_id_echo=bytes(32)),
               IllegalParameter, "session_id_echo")


def test_server_hello_downgrade_sentinel(ecdsa: CertFiles) -> None:
    """RFC 8446 §4.1.3: a TLS 1.2 ServerHello with the sentinel, to a client that also
    speaks TLS 1.2 (so only the sentinel check can refuse it)."""
    client_cfg, server_cfg = pair_configs(ecdsa)
    m = Mitm(client_cfg, server_cfg)
    m.to_server(m.client_first.data)
    f = m.from_server()
    raw = f.plaintext_messages[0]
    sh = server_hello_of(raw)
    forged = edit_server_hello(
        raw, random=sh.random[:24] + b"DOWNGRD\x01",
        extensions=drop_extension(sh.extensions, ExtensionType.SUPPORTED_VERSIONS))
    _sh_attack(m, forged, IllegalParameter, "downgrade_sentinel")


def server_hello_of(raw: bytes) -> Any:
    from tlsmith.codec.messages import ServerHello
    return ServerHello.parse_body(body_of(raw))


# -- HelloRetryRequest ---------------------------------------------------------------------------
def test_hrr_suite_changed_in_server_hello(ecdsa: CertFiles) -> None:
    """RFC 8446 §4.1.4: the ServerHello's cipher suite must be the HelloRetryRequest's."""
    from tlsmith.codec.enums import CipherSuite
    m, _ = _after_real_hrr(ecdsa)
    m.to_server(m.from_client().data)
    sh_raw = m.from_server().plaintext_messages[0]
    raw = edit_server_hello(sh_raw, cipher_suite=CipherSuite.TLS_AES_256_GCM_SHA384)
    _sh_attack(m, raw, IllegalParameter, "hrr_suite_changed")


def test_hrr_early_data_in_second_hello(ecdsa: CertFiles) -> None:
    """RFC 8446 §4.2.10: a client MUST NOT send early_data after a HelloRetryRequest."""
    m, hello2 = _second_hello(ecdsa)
    exts = replace_extension(hello2.extensions, ext.EarlyDataIndication(None))
    raw = replace(hello2, extensions=exts).serialize()
    expect_alert(m.server, m.sspy, handshake_record(raw), IllegalParameter,
                 check="early_data_after_hrr")


# -- EncryptedExtensions: ALPN -------------------------------------------------------------------
def test_alpn_protocol_not_offered(ecdsa: CertFiles) -> None:
    """RFC 7301 §3.1: the server's protocol must be one the client offered."""
    client, server = configs(ecdsa, alpn_protocols=("h2",),
                             server={"alpn_protocols": ("h2",)})
    from test_handshake13_attacks import server_first_flight
    m = Mitm(client, server)
    f = server_first_flight(m)
    ee = EncryptedExtensions((ext.ApplicationLayerProtocolNegotiation((b"evil/1",)),)
                             ).serialize()
    deliver_server_hello(m, f)
    channel = m.channel("server_handshake_traffic_secret", f.suite)
    expect_alert(m.client, m.cspy, channel.handshake(ee), IllegalParameter,
                 check="alpn_not_offered")


# -- CertificateRequest --------------------------------------------------------------------------
def _certificate_request_attack(ecdsa: CertFiles, request: CertificateRequest,
                                error: type[Any], check: str) -> None:
    m, f = client_victim(ecdsa)
    deliver_server_hello(m, f)
    channel = m.channel("server_handshake_traffic_secret", f.suite)
    data = channel.handshake(f.get(H.ENCRYPTED_EXTENSIONS), request.serialize())
    expect_alert(m.client, m.cspy, data, error, check=check)


def test_certificate_request_with_context(ecdsa: CertFiles) -> None:
    """RFC 8446 §4.3.2: in the handshake the context is empty."""
    sigalgs = ext.SignatureAlgorithms((SignatureScheme.ECDSA_SECP256R1_SHA256,))
    _certificate_request_attack(ecdsa, CertificateRequest(b"ctx", (sigalgs,)),
                                IllegalParameter, "cr_context_not_empty")


def test_certificate_request_without_signature_algorithms(ecdsa: CertFiles) -> None:
    """RFC 8446 §4.3.2: signature_algorithms MUST be specified."""
    _certificate_request_attack(ecdsa, CertificateRequest(b"", ()), MissingExtension,
                                "cr_no_signature_algorithms")


def test_forged_certificate_verify_helper_is_genuine(rsa: CertFiles) -> None:
    """The forging helper signs like the server does (so the tests above reach the check
    they target, not a signature failure)."""
    m, f = client_victim(rsa)
    key = load_private_key(rsa.key_path)
    cv = forged_certificate_verify(f.suite, SignatureScheme.RSA_PSS_RSAE_SHA256, key,
                                   m.client_hello, f.server_hello)
    assert cv[0] == H.CERTIFICATE_VERIFY


# -- exporter output against an independent implementation -------------------------------------
@pytest.mark.parametrize("tls12", [False, True], ids=["tls13", "tls12"])
def test_exporter_matches_openssl(ecdsa: CertFiles, tmp_path: Any, tls12: bool) -> None:
    """RFC 8446 §7.5 / RFC 5705: tlsmith's exporter output equals what ``openssl
    s_server -keymatexport`` derives on the same connection (an exporter that only
    agrees with itself would pass every in-memory test)."""
    import re

    from helpers import require_peer
    from peers import start_s_server
    from tlsmith.config import ClientConfig
    from tlsmith.io.blocking import connect
    from tlsmith.x509.verify import TrustStore

    require_peer("openssl")
    label = "EXPERIMENTAL-tlsmith-check"
    extra = ("-tls1_2",) if tls12 else ()
    server = start_s_server(ecdsa, "-keymatexport", label, "-keymatexportlen", "48", *extra,
                            log_dir=tmp_path, tls13_only=not tls12, line_buffered=True)
    try:
        config = ClientConfig(server_name="localhost",
                              trust=TrustStore.from_pem_file(ecdsa.ca_path))
        if tls12:
            config = replace(config, max_version=ProtocolVersion.TLS12)
        tls = connect("127.0.0.1", server.port, config, timeout=10)
        try:
            ours = tls.conn.export_keying_material(label.encode(), None, 48)
            server.wait_for("Keying material:")
            found = re.search(r"Keying material:\s*([0-9A-Fa-f]+)", server.output())
            assert found is not None, server.output()
            assert bytes.fromhex(found.group(1)) == ours
        finally:
            tls.close()
    finally:
        server.stop()

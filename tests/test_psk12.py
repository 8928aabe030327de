"""TLS 1.2 PSK cipher suites: RFC 4279 (PSK), RFC 5489 (ECDHE_PSK), RFC 7905 (ChaCha20).

In memory: both roles, with and without an identity hint, the wire forms, the
pre-master secret, an unknown identity (unknown_psk_identity) and a wrong key (the
Finished cannot be read: bad_record_mac). Against OpenSSL 3.0, both roles:
``s_server -psk HEX -psk_identity ID -nocert`` and ``s_client -psk``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from helpers import CertFiles, require_peer
from pair import configs, pump
from peers import run_s_client, start_s_server, tlsmith_server
from tlsmith.codec.enums import CipherSuite, NamedGroup, ProtocolVersion
from tlsmith.codec.messages12 import ClientKeyExchangePSK, ServerKeyExchangePSK
from tlsmith.config import ClientConfig, ServerConfig
from tlsmith.connection import TLSConnection
from tlsmith.errors import BadRecordMac, DecodeError, UnknownPskIdentity, UsageError
from tlsmith.events import Event, HandshakeComplete
from tlsmith.handshake.psk12 import premaster_secret
from tlsmith.io.blocking import connect
from tlsmith.session import ExternalPsk

pytestmark = pytest.mark.timeout(60)

S = CipherSuite
PSK_SUITES = (S.TLS_PSK_WITH_AES_128_CBC_SHA, S.TLS_PSK_WITH_AES_256_CBC_SHA,
              S.TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA, S.TLS_ECDHE_PSK_WITH_AES_256_CBC_SHA,
              S.TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256)
PSK = ExternalPsk(b"client-12", bytes(range(1, 33)))
GET = b"GET / HTTP/1.0\r\n\r\n"


def test_premaster_secret() -> None:
    # RFC 4279 §2: uint16 N, N zeros, uint16 N, psk.
    assert premaster_secret(b"\x01\x02", None) == bytes.fromhex("0002 0000 0002 0102")
    # RFC 5489 §2: the ECDH secret as other_secret.
    assert premaster_secret(b"\x01", b"\xaa\xbb\xcc") == bytes.fromhex("0003aabbcc 0001 01")


def test_message_encodings() -> None:
    ske = ServerKeyExchangePSK(b"hint")
    assert ske.serialize_body() == b"\x00\x04hint"
    assert ServerKeyExchangePSK.parse_body(ske.serialize_body()) == ske
    ecdhe = ServerKeyExchangePSK(b"", NamedGroup.X25519, bytes(32))
    body = ecdhe.serialize_body()
    assert body[:6] == bytes.fromhex("0000 03 001d 20")  # empty hint, named_curve x25519
    assert ServerKeyExchangePSK.parse_body(body, ecdhe=True) == ecdhe
    cke = ClientKeyExchangePSK(b"id", b"\x04" * 65)
    assert ClientKeyExchangePSK.parse_body(cke.serialize_body(), ecdhe=True) == cke
    assert ClientKeyExchangePSK(b"").serialize_body() == b"\x00\x00"


def test_malformed_psk_messages_are_decode_errors() -> None:
    with pytest.raises(DecodeError):
        ServerKeyExchangePSK.parse_body(b"\x00\x04hin")  # hint shorter than its length
    with pytest.raises(DecodeError):
        ServerKeyExchangePSK.parse_body(b"\x00\x00extra")  # bytes after the hint
    with pytest.raises(DecodeError):
        ClientKeyExchangePSK.parse_body(b"\x00\x02id", ecdhe=True)  # no ECDH point
    with pytest.raises(DecodeError):
        ClientKeyExchangePSK.parse_body(b"\x00\x02id\x00", ecdhe=True)  # empty point


@pytest.fixture
def pair(certs: dict[str, CertFiles]) -> tuple[ClientConfig, ServerConfig]:
    client, server = configs(certs["ecdsa-p256"])
    return (replace(client, max_version=ProtocolVersion.TLS12, allow_mac_then_encrypt=True),
            replace(server, max_version=ProtocolVersion.TLS12))


def _handshake(client_cfg: ClientConfig, server_cfg: ServerConfig
               ) -> tuple[TLSConnection, TLSConnection, list[Event]]:
    client, server = TLSConnection(client_cfg), TLSConnection(server_cfg)
    _, sev = pump(client, server)
    return client, server, sev


@pytest.mark.parametrize("suite", PSK_SUITES, ids=[s.name for s in PSK_SUITES])
@pytest.mark.parametrize("hint", [b"", b"server hint"])
def test_psk_suites_in_memory(pair: Any, suite: CipherSuite, hint: bytes) -> None:
    client_cfg, server_cfg = pair
    client, server, sev = _handshake(
        replace(client_cfg, cipher_suites=(suite,), external_psks=(PSK,),
                verify_certificates=False, trust=None),
        replace(server_cfg, certificates=(), external_psks=(PSK,), cipher_suites=(suite,),
                psk_identity_hint=hint))
    assert any(isinstance(e, HandshakeComplete) for e in sev)
    for info in (client.info, server.info):
        assert info is not None and info.cipher_suite == suite
        assert info.psk_identity == b"client-12" and info.peer_certificates == ()
        assert info.key_exchange == ("ECDHE_PSK" if "ECDHE" in suite.name else "PSK")


def test_psk_suites_are_opt_in(pair: Any) -> None:
    """Without a PSK the client does not offer PSK suites; without one the server does not
    choose them (a certificate suite is negotiated instead)."""
    client_cfg, server_cfg = pair
    suites = (S.TLS_PSK_WITH_AES_128_CBC_SHA, S.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)
    client, _, _ = _handshake(replace(client_cfg, cipher_suites=suites),
                              replace(server_cfg, cipher_suites=suites))
    assert client.info is not None
    assert client.info.cipher_suite == S.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
    client, _, _ = _handshake(replace(client_cfg, cipher_suites=suites, external_psks=(PSK,)),
                              replace(server_cfg, cipher_suites=suites))
    assert client.info is not None and client.info.psk_identity is None


def test_unknown_identity_and_wrong_key(pair: Any) -> None:
    client_cfg, server_cfg = pair
    suite = (S.TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256,)
    server_cfg = replace(server_cfg, external_psks=(PSK,), cipher_suites=suite)
    other = ExternalPsk(b"someone else", PSK.key)
    with pytest.raises(UnknownPskIdentity):
        _handshake(replace(client_cfg, cipher_suites=suite, external_psks=(other,)), server_cfg)
    wrong = ExternalPsk(PSK.identity, bytes(32))
    with pytest.raises(BadRecordMac):
        _handshake(replace(client_cfg, cipher_suites=suite, external_psks=(wrong,)), server_cfg)


def test_external_psk_values() -> None:
    assert ExternalPsk(b"", b"k", tls13=False).identity == b""  # RFC 4279: identity<0..>
    with pytest.raises(UsageError):
        ExternalPsk(b"id", b"")


# -- OpenSSL 3.0 ----------------------------------------------------------------------------
OPENSSL_NAMES = {S.TLS_PSK_WITH_AES_128_CBC_SHA: "PSK-AES128-CBC-SHA",
                 S.TLS_ECDHE_PSK_WITH_AES_256_CBC_SHA: "ECDHE-PSK-AES256-CBC-SHA",
                 S.TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256: "ECDHE-PSK-CHACHA20-POLY1305"}


@pytest.mark.interop
@pytest.mark.parametrize("suite", list(OPENSSL_NAMES), ids=[s.name for s in OPENSSL_NAMES])
def test_client_with_openssl_s_server(certs: dict[str, CertFiles], tmp_path: Path,
                                      suite: CipherSuite) -> None:
    require_peer("openssl")
    config = ClientConfig(verify_certificates=False, max_version=ProtocolVersion.TLS12,
                          cipher_suites=(suite,), external_psks=(PSK,),
                          allow_mac_then_encrypt=True)
    with start_s_server(certs["ecdsa-p256"], "-www", "-nocert", "-tls1_2", "-psk",
                        PSK.key.hex(), "-psk_identity", "client-12", "-psk_hint", "the hint",
                        "-cipher", OPENSSL_NAMES[suite], tls13_only=False,
                        log_dir=tmp_path) as server, \
            connect("127.0.0.1", server.port, config, timeout=10.0) as tls:
        assert tls.info.cipher_suite == suite and tls.info.psk_identity == b"client-12"
        tls.sendall(GET)
        page = b""
        while chunk := tls.recv():
            page += chunk
        text = page.decode("utf-8", "replace")
        assert f"Cipher is {OPENSSL_NAMES[suite]}" in text, text[-2000:]


@pytest.mark.interop
@pytest.mark.parametrize("suite", list(OPENSSL_NAMES), ids=[s.name for s in OPENSSL_NAMES])
def test_openssl_s_client_with_server(suite: CipherSuite) -> None:
    require_peer("openssl")
    config = ServerConfig(certificates=(), external_psks=(PSK,), cipher_suites=(suite,),
                          max_version=ProtocolVersion.TLS12, psk_identity_hint=b"the hint",
                          allow_mac_then_encrypt=True)
    with tlsmith_server(config) as server:
        done = run_s_client(server.port, "-tls1_2", "-ign_eof", "-psk", PSK.key.hex(),
                            "-psk_identity", "client-12", "-cipher", OPENSSL_NAMES[suite],
                            stdin=GET, timeout=10.0)
        out = done.stdout + done.stderr
        assert done.returncode == 0, out[-3000:]
        assert f"Cipher is {OPENSSL_NAMES[suite]}" in out, out[-3000:]
        assert "PSK identity hint: the hint" in out, out[-3000:]
        served = server.wait_served(0)
        assert served.error is None and served.info is not None
        assert served.info.psk_identity == b"client-12"
    # An identity the server does not know: unknown_psk_identity (RFC 4279 §2).
    with tlsmith_server(config) as server:
        done = run_s_client(server.port, "-tls1_2", "-psk", PSK.key.hex(), "-psk_identity",
                            "stranger", "-cipher", OPENSSL_NAMES[suite], timeout=10.0)
        assert "unknown psk identity" in (done.stdout + done.stderr).lower()

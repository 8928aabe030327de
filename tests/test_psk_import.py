"""Imported external PSKs (RFC 9258) and PSK-only TLS 1.3 (``require_psk``, a server
without certificates), in memory.

RFC 9258 has no published test vector: the derivation is pinned by an independent
computation over ``cryptography``'s HMAC below, and by interop with BoringSSL's runner
(BoGo's PSK-* tests import the same credentials as ``BOGO_PSK``).
"""

from __future__ import annotations

import struct
from dataclasses import replace
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as c_hmac

from helpers import CertFiles
from pair import configs, pump
from tlsmith.codec.enums import CipherSuite, NamedGroup, ProtocolVersion
from tlsmith.config import ClientConfig, ServerConfig
from tlsmith.connection import TLSConnection
from tlsmith.crypto import schedule13
from tlsmith.errors import (
    DecryptError,
    HandshakeFailure,
    MissingExtension,
    ProtocolVersionError,
    UsageError,
)
from tlsmith.events import SessionTicketReceived
from tlsmith.session import ExternalPsk, ImportedPsk, expand_psks

pytestmark = pytest.mark.timeout(60)

#: BoGo's pskSHA256Credential (ssl/test/runner/psk_tests.go).
BOGO_PSK = ImportedPsk(b"psk1", b"ABCD" * 8, b"context1", "sha256")


def _hmac(hash_name: str, key: bytes, data: bytes) -> bytes:
    algo = hashes.SHA256() if hash_name == "sha256" else hashes.SHA384()
    h = c_hmac.HMAC(key, algo)
    h.update(data)
    return h.finalize()


def _expected_ipskx(psk: ImportedPsk, target: str) -> tuple[bytes, bytes]:
    """RFC 9258 §4.1-§4.2 written out from the RFC text, one HMAC block each."""
    kdf = {"sha256": 1, "sha384": 2}[target]
    identity = (struct.pack("!H", len(psk.identity)) + psk.identity
                + struct.pack("!H", len(psk.context)) + psk.context
                + struct.pack("!HH", 0x0304, kdf))
    hlen = {"sha256": 32, "sha384": 48}
    epskx = _hmac(psk.hash_name, bytes(hlen[psk.hash_name]), psk.key)  # HKDF-Extract(0, epsk)
    digest = hashes.Hash(hashes.SHA256() if psk.hash_name == "sha256" else hashes.SHA384())
    digest.update(identity)
    label = b"tls13 derived psk"
    context = digest.finalize()
    info = (struct.pack("!H", hlen[target]) + bytes([len(label)]) + label
            + bytes([len(context)]) + context)
    okm = _hmac(psk.hash_name, epskx, info + b"\x01")
    if hlen[target] > len(okm):  # a SHA-384 target from a SHA-256 EPSK: T(2)
        okm += _hmac(psk.hash_name, epskx, okm + info + b"\x02")
    return identity, okm[:hlen[target]]


@pytest.mark.parametrize("epsk_hash", ["sha256", "sha384"])
def test_rfc9258_derivation_matches_an_independent_computation(epsk_hash: str) -> None:
    psk = ImportedPsk(b"client-7", bytes(range(48)), b"app context", epsk_hash)
    imported = psk.imported()
    assert [p.hash_name for p in imported] == ["sha256", "sha384"]
    for p in imported:
        identity, ipskx = _expected_ipskx(psk, p.hash_name)
        assert p.identity == identity
        assert p.key == ipskx
        assert p.imported_from is psk and p.configured_identity == b"client-7"


def test_bogo_credential_pinned() -> None:
    sha256, sha384 = BOGO_PSK.imported()
    assert sha256.identity == bytes.fromhex("000470736b310008636f6e746578743103040001")
    assert sha256.key == _expected_ipskx(BOGO_PSK, "sha256")[1]
    assert sha384.identity.endswith(b"\x03\x04\x00\x02")
    assert len(sha384.key) == 48


def test_imported_binders_use_imp_binder() -> None:
    early = schedule13.EarlySecret.derive("sha256", bytes(32))
    imp = early.binder_key(external=True, imported=True)
    assert imp == schedule13.derive_secret("sha256", early.secret, b"imp binder",
                                           schedule13.empty_hash("sha256"))
    assert imp != early.binder_key(external=True)


def test_usage_errors() -> None:
    with pytest.raises(UsageError):
        ImportedPsk(b"", bytes(32))
    with pytest.raises(UsageError):
        ImportedPsk(b"id", bytes(8))
    with pytest.raises(UsageError):
        ImportedPsk(b"id", bytes(32), hash_name="sha1")
    plain = ExternalPsk(b"x", bytes(32))
    assert expand_psks((plain, BOGO_PSK)) == (plain, *BOGO_PSK.imported())


# -- handshakes ---------------------------------------------------------------------------
@pytest.fixture
def pair(certs: dict[str, CertFiles]) -> tuple[ClientConfig, ServerConfig]:
    return configs(certs["ecdsa-p256"])


def _connect(client_cfg: ClientConfig, server_cfg: ServerConfig
             ) -> tuple[TLSConnection, TLSConnection]:
    client, server = TLSConnection(client_cfg), TLSConnection(server_cfg)
    pump(client, server)
    return client, server


@pytest.mark.parametrize("suite", [CipherSuite.TLS_AES_128_GCM_SHA256,
                                   CipherSuite.TLS_AES_256_GCM_SHA384])
def test_imported_psk_handshake(pair: Any, suite: CipherSuite) -> None:
    client_cfg, server_cfg = pair
    client, server = _connect(
        replace(client_cfg, external_psks=(BOGO_PSK,), require_psk=True,
                verify_certificates=False, trust=None, cipher_suites=(suite,)),
        replace(server_cfg, certificates=(), external_psks=(BOGO_PSK,)))
    for info in (client.info, server.info):
        assert info is not None and info.cipher_suite == suite
        assert info.resumed_with == "external_psk" and info.psk_identity == b"psk1"
        assert info.peer_certificates == ()


def test_server_prefers_its_own_order(pair: Any) -> None:
    client_cfg, server_cfg = pair
    other = ImportedPsk(b"psk3", b"IJKL" * 8, b"context3")
    client, server = _connect(replace(client_cfg, external_psks=(BOGO_PSK, other)),
                              replace(server_cfg, external_psks=(other, BOGO_PSK)))
    assert server.info is not None and server.info.psk_identity == b"psk3"
    assert client.info is not None and client.info.psk_identity == b"psk3"


def test_prefer_certificates_to_psks(pair: Any) -> None:
    client_cfg, server_cfg = pair
    client, _server = _connect(replace(client_cfg, external_psks=(BOGO_PSK,)),
                              replace(server_cfg, external_psks=(BOGO_PSK,),
                                      prefer_certificates_to_psks=True))
    assert client.info is not None and client.info.resumed_with is None
    assert client.info.peer_certificates


def test_a_different_context_is_another_psk(pair: Any) -> None:
    """Same identity and key, other context: no PSK in common; a PSK-only server says
    handshake_failure (BoringSSL: PSK_IDENTITY_NOT_FOUND)."""
    client_cfg, server_cfg = pair
    client = TLSConnection(replace(client_cfg, external_psks=(
        replace(BOGO_PSK, context=b"context2"),)))
    server = TLSConnection(replace(server_cfg, certificates=(), external_psks=(BOGO_PSK,)))
    server.receive_data(client.data_to_send())
    with pytest.raises(HandshakeFailure) as caught:
        server.events()
    assert caught.value.check == "psk_identity_not_found"


def test_ext_binder_for_an_imported_identity_is_refused(pair: Any) -> None:
    """The imported identity and ipskx, but bound with "ext binder": decrypt_error."""
    client_cfg, server_cfg = pair
    sha256 = BOGO_PSK.imported()[0]
    forged = ExternalPsk(sha256.identity, sha256.key)
    client = TLSConnection(replace(client_cfg, external_psks=(forged,)))
    server = TLSConnection(replace(server_cfg, external_psks=(BOGO_PSK,)))
    server.receive_data(client.data_to_send())
    with pytest.raises(DecryptError) as caught:
        server.events()
    assert caught.value.check == "binder_mismatch"


def test_psk_only_server_without_a_psk_offered(pair: Any) -> None:
    client_cfg, server_cfg = pair
    client = TLSConnection(client_cfg)
    server = TLSConnection(replace(server_cfg, certificates=(), external_psks=(BOGO_PSK,)))
    server.receive_data(client.data_to_send())
    with pytest.raises(MissingExtension):
        server.events()


def test_require_psk_refuses_certificates(pair: Any) -> None:
    client_cfg, server_cfg = pair
    psk_client = replace(client_cfg, external_psks=(BOGO_PSK,), require_psk=True)
    client, server = TLSConnection(psk_client), TLSConnection(server_cfg)
    server.receive_data(client.data_to_send())
    server.events()
    client.receive_data(server.data_to_send())
    with pytest.raises(MissingExtension) as caught:
        client.events()
    assert caught.value.check == "psk_required"
    # A TLS 1.2 server: no PSK authentication there (protocol_version).
    client = TLSConnection(psk_client)
    server = TLSConnection(replace(server_cfg, max_version=ProtocolVersion.TLS12))
    server.receive_data(client.data_to_send())
    server.events()
    client.receive_data(server.data_to_send())
    with pytest.raises(ProtocolVersionError):
        client.events()
    with pytest.raises(UsageError):
        replace(client_cfg, require_psk=True)


def test_imported_psk_after_hrr_then_resumed(pair: Any) -> None:
    """The second ClientHello keeps only the import whose hash is the HRR's suite's, its
    binder over message_hash + HRR; the session it makes resumes with a ticket."""
    client_cfg, server_cfg = pair
    client_cfg = replace(client_cfg, external_psks=(BOGO_PSK,), require_psk=True,
                         verify_certificates=False, trust=None,
                         cipher_suites=(CipherSuite.TLS_AES_256_GCM_SHA384,))
    server_cfg = replace(server_cfg, certificates=(), external_psks=(BOGO_PSK,),
                         groups=(NamedGroup.SECP256R1,))
    client, server = TLSConnection(client_cfg), TLSConnection(server_cfg)
    cev, _ = pump(client, server)
    assert client.info is not None and client.info.hello_retry_request
    assert client.info.resumed_with == "external_psk" and client.info.psk_identity == b"psk1"
    tickets = [e.session for e in cev if isinstance(e, SessionTicketReceived)]
    assert tickets
    client = TLSConnection(client_cfg, session=tickets[0])
    server = TLSConnection(server_cfg)
    pump(client, server)
    assert client.info is not None and client.info.resumed_with == "psk_dhe_ke"
    assert server.info is not None and server.info.psk_identity is None

"""RFC 9963: rsa_pkcs1_sha{256,384,512}_legacy, PKCS#1 v1.5 in a TLS 1.3 *client*
CertificateVerify only, and only when the client's credential names them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from helpers import CertFiles
from pair import configs, handshake
from tlsmith.codec.enums import ProtocolVersion, SignatureScheme
from tlsmith.config import CertifiedKey
from tlsmith.crypto import sig
from tlsmith.errors import HandshakeFailure, IllegalParameter
from tlsmith.observe import MessageTrace
from tlsmith.x509.devca import DevCA
from tlsmith.x509.verify import TrustStore

_S = SignatureScheme
LEGACY = (_S.RSA_PKCS1_SHA256_LEGACY, _S.RSA_PKCS1_SHA384_LEGACY, _S.RSA_PKCS1_SHA512_LEGACY)
CONTENT = sig.certificate_verify_content(b"\x02" * 32, server=False)


def test_legacy_codepoints_and_rules() -> None:
    assert [int(s) for s in LEGACY] == [0x0420, 0x0520, 0x0620]
    assert frozenset(LEGACY) == sig.CLIENT_ONLY_SCHEMES
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for scheme, h in zip(LEGACY, (hashes.SHA256(), hashes.SHA384(), hashes.SHA512()),
                         strict=True):
        assert sig.scheme_matches_key(scheme, key.public_key(), tls13=True)
        assert not sig.scheme_matches_key(scheme, key.public_key(), tls13=False)
        signature = sig.sign(scheme, key, CONTENT)
        # The same bytes as plain RSASSA-PKCS1-v1_5 (RFC 8017 §8.2) over the content.
        key.public_key().verify(signature, CONTENT, padding.PKCS1v15(), h)
        sig.verify(scheme, key.public_key(), CONTENT, signature, tls13=True)
        with pytest.raises(IllegalParameter):
            sig.verify(scheme, key.public_key(), CONTENT, signature, tls13=False)
    # Never chosen by default, never in the default offer.
    assert not set(LEGACY) & set(sig.schemes_for_private_key(key, tls13=True))
    assert not set(LEGACY) & set(sig.DEFAULT_SIGNATURE_SCHEMES)


def _client_cert(devca: DevCA, directory: Path, schemes: tuple[SignatureScheme, ...] | None
                 ) -> CertifiedKey:
    issued = devca.issue(("alice.example",), key_type="rsa-2048", client=True).write(
        directory, "alice-rsa")
    assert issued.chain_path and issued.key_path
    ck = CertifiedKey.from_files(issued.chain_path, issued.key_path)
    assert not set(LEGACY) & ck.tls13_schemes  # opt-in
    return replace(ck, signing_schemes=schemes)


def test_client_signs_legacy_pkcs1_when_configured(
        devca: DevCA, certs: dict[str, CertFiles], tmp_path: Path) -> None:
    files = certs["ecdsa-p256"]
    client_cert = _client_cert(devca, tmp_path, (_S.RSA_PKCS1_SHA256_LEGACY,))
    assert client_cert.tls13_schemes == {_S.RSA_PKCS1_SHA256_LEGACY}
    ccfg, scfg = configs(files, min_version=ProtocolVersion.TLS13, certificate=client_cert)
    # The server opts in by listing the code point (its CertificateRequest carries it).
    scfg = replace(scfg, client_auth="require",
                   client_trust=TrustStore.from_pem_file(files.ca_path),
                   signature_schemes=(_S.ECDSA_SECP256R1_SHA256, _S.RSA_PKCS1_SHA256_LEGACY))
    client, server, _, sspy = handshake(ccfg, scfg)
    assert client.handshake_complete and server.handshake_complete
    assert server.info is not None and server.info.client_certificate_verified
    verify = [r.message for r in sspy.records if isinstance(r, MessageTrace)
              and r.name == "CertificateVerify" and r.direction == "received"]
    assert [v.algorithm for v in verify] == [_S.RSA_PKCS1_SHA256_LEGACY]


def test_server_never_signs_with_legacy_pkcs1(certs: dict[str, CertFiles]) -> None:
    files = certs["rsa-2048"]
    ccfg, scfg = configs(files, min_version=ProtocolVersion.TLS13,
                         signature_schemes=(_S.RSA_PKCS1_SHA256_LEGACY,))
    server_cert = replace(scfg.certificates[0],
                          signing_schemes=(_S.RSA_PKCS1_SHA256_LEGACY, _S.RSA_PSS_RSAE_SHA256))
    scfg = replace(scfg, certificates=(server_cert,))
    with pytest.raises(HandshakeFailure, match="none of our certificates"):
        handshake(ccfg, scfg)

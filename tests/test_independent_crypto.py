"""sign() and the KeyUpdate secret chain, checked by an implementation that is not ours.

Oracles (issue 14): OpenSSL's command line, fed only public inputs --
* every signature tlsmith.crypto.sig.sign() makes, for every scheme it signs with, is
  verified by ``openssl pkeyutl -verify`` (and a signature with one bit flipped is not);
* application_traffic_secret_N+1 (RFC 8446 §7.2) is recomputed by ``openssl kdf HKDF``
  in EXPAND_ONLY mode, with the HkdfLabel structure (§7.1) built here byte by byte rather
  than by tlsmith.crypto.schedule13.hkdf_label.
The exporter is checked against ``openssl s_client -keymatexport`` in
tests/test_interop_openssl_server.py, and live KeyUpdates both ways in the interop tests.
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from helpers import require_peer
from tlsmith.codec.enums import SignatureScheme as S
from tlsmith.crypto import schedule13, sig

_DIGEST = {"SHA256": "sha256", "SHA384": "sha384", "SHA512": "sha512"}

_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_KEYS: dict[S, PrivateKeyTypes] = {
    S.ECDSA_SECP256R1_SHA256: ec.generate_private_key(ec.SECP256R1()),
    S.ECDSA_SECP384R1_SHA384: ec.generate_private_key(ec.SECP384R1()),
    S.ECDSA_SECP521R1_SHA512: ec.generate_private_key(ec.SECP521R1()),
    S.ED25519: ed25519.Ed25519PrivateKey.generate(),
    S.ED448: ed448.Ed448PrivateKey.generate(),
    S.RSA_PSS_RSAE_SHA256: _RSA,
    S.RSA_PSS_RSAE_SHA384: _RSA,
    S.RSA_PSS_RSAE_SHA512: _RSA,
    S.RSA_PKCS1_SHA256: _RSA,
    S.RSA_PKCS1_SHA384: _RSA,
    S.RSA_PKCS1_SHA512: _RSA,
}


def _openssl_verify(scheme: S, key: PrivateKeyTypes, data: bytes, signature: bytes,
                    tmp: Path) -> bool:
    openssl = require_peer("openssl")
    pub = tmp / "pub.pem"
    pub.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    (tmp / "data").write_bytes(data)
    (tmp / "sig").write_bytes(signature)
    cmd = [openssl, "pkeyutl", "-verify", "-pubin", "-inkey", str(pub), "-rawin",
           "-in", str(tmp / "data"), "-sigfile", str(tmp / "sig")]
    name = scheme.name
    if not name.startswith("ED"):
        cmd += ["-digest", _DIGEST[name.rsplit("_", 1)[1]]]
    if "_PSS_" in name:
        # RFC 8446 §4.2.3: MGF1 with the same hash, salt as long as the hash.
        cmd += ["-pkeyopt", "rsa_padding_mode:pss", "-pkeyopt", "rsa_pss_saltlen:digest",
                "-pkeyopt", f"rsa_mgf1_md:{_DIGEST[name.rsplit('_', 1)[1]]}"]
    elif "PKCS1" in name:
        cmd += ["-pkeyopt", "rsa_padding_mode:pkcs1"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    return result.returncode == 0 and "Signature Verified Successfully" in result.stdout


@pytest.mark.parametrize("scheme", list(_KEYS), ids=lambda s: s.name)
def test_sign_verified_by_openssl(scheme: S, tmp_path: Path) -> None:
    key = _KEYS[scheme]
    data = sig.certificate_verify_content(bytes(range(48)), server=True)
    signature = sig.sign(scheme, key, data)
    assert _openssl_verify(scheme, key, data, signature, tmp_path)
    # The oracle can say no: the same signature over other content is refused.
    tampered = sig.certificate_verify_content(bytes(range(48)), server=False)
    assert not _openssl_verify(scheme, key, tampered, signature, tmp_path)


def _hkdf_label(label: bytes, length: int) -> bytes:
    """RFC 8446 §7.1 HkdfLabel: uint16 length, opaque label<7..255> = "tls13 " + label,
    opaque context<0..255> (empty for "traffic upd")."""
    full = b"tls13 " + label
    return struct.pack("!HB", length, len(full)) + full + b"\x00"


def _openssl_expand(hash_name: str, prk: bytes, info: bytes, length: int) -> bytes:
    openssl = require_peer("openssl")
    result = subprocess.run(
        [openssl, "kdf", "-keylen", str(length), "-kdfopt", f"digest:{hash_name.upper()}",
         "-kdfopt", "mode:EXPAND_ONLY", "-kdfopt", f"hexkey:{prk.hex()}",
         "-kdfopt", f"hexinfo:{info.hex()}", "HKDF"],
        capture_output=True, text=True, timeout=30, check=True)
    return bytes.fromhex(result.stdout.strip().replace(":", ""))


@pytest.mark.parametrize("hash_name,length", [("sha256", 32), ("sha384", 48)])
def test_key_update_secret_chain_matches_openssl_hkdf(hash_name: str, length: int) -> None:
    secret = bytes(range(length))
    for _ in range(3):  # application_traffic_secret_1, _2, _3
        ours = schedule13.next_traffic_secret(hash_name, secret)
        theirs = _openssl_expand(hash_name, secret, _hkdf_label(b"traffic upd", length),
                                 length)
        assert ours == theirs
        # ... and the record key and IV of each generation (RFC 8446 §7.3).
        key, iv = schedule13.traffic_keys(hash_name, ours, 16, 12)
        assert key == _openssl_expand(hash_name, ours, _hkdf_label(b"key", 16), 16)
        assert iv == _openssl_expand(hash_name, ours, _hkdf_label(b"iv", 12), 12)
        secret = ours

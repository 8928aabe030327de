from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa

from tlsmith.codec.enums import SignatureScheme as S
from tlsmith.crypto.sig import (
    DEFAULT_SIGNATURE_SCHEMES,
    SUPPORTED_SIGNATURE_SCHEMES,
    certificate_verify_content,
    scheme_matches_key,
    schemes_for_private_key,
    sign,
    verify,
    verify_fitting,
)
from tlsmith.errors import DecryptError, IllegalParameter, InternalError

DATA = b"the transcript hash, or a TLS 1.2 ServerKeyExchange"


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    return {
        "rsa": rsa.generate_private_key(65537, 2048),
        "rsa1024": rsa.generate_private_key(65537, 1024),
        "p256": ec.generate_private_key(ec.SECP256R1()),
        "p384": ec.generate_private_key(ec.SECP384R1()),
        "p521": ec.generate_private_key(ec.SECP521R1()),
        "ed25519": ed25519.Ed25519PrivateKey.generate(),
        "ed448": ed448.Ed448PrivateKey.generate(),
    }


KEY_FOR_SCHEME = {
    S.ECDSA_SECP256R1_SHA256: "p256",
    S.ECDSA_SECP384R1_SHA384: "p384",
    S.ECDSA_SECP521R1_SHA512: "p521",
    S.ED25519: "ed25519",
    S.ED448: "ed448",
    S.RSA_PSS_RSAE_SHA256: "rsa",
    S.RSA_PSS_RSAE_SHA384: "rsa",
    S.RSA_PSS_RSAE_SHA512: "rsa",
    S.RSA_PSS_PSS_SHA256: "rsa",
    S.RSA_PSS_PSS_SHA384: "rsa",
    S.RSA_PSS_PSS_SHA512: "rsa",
    S.RSA_PKCS1_SHA256: "rsa",
    S.RSA_PKCS1_SHA384: "rsa",
    S.RSA_PKCS1_SHA512: "rsa",
}


@pytest.mark.parametrize("scheme", list(KEY_FOR_SCHEME), ids=str)
def test_sig_sign_verify_round_trip(scheme: S, keys: dict[str, Any]) -> None:
    key = keys[KEY_FOR_SCHEME[scheme]]
    signature = sign(scheme, key, DATA)
    verify(scheme, key.public_key(), DATA, signature)
    verify(int(scheme), key.public_key(), DATA, signature)  # plain ints are accepted


@pytest.mark.parametrize("scheme", list(KEY_FOR_SCHEME), ids=str)
def test_sig_tampered_signature_or_data_is_decrypt_error(scheme: S, keys: dict[str, Any]) -> None:
    key = keys[KEY_FOR_SCHEME[scheme]]
    signature = sign(scheme, key, DATA)
    with pytest.raises(DecryptError):
        verify(scheme, key.public_key(), DATA + b"!", signature)
    for index in (0, len(signature) // 2, len(signature) - 1):
        bad = bytearray(signature)
        bad[index] ^= 0x01
        with pytest.raises(DecryptError):
            verify(scheme, key.public_key(), DATA, bytes(bad))
    with pytest.raises(DecryptError):
        verify(scheme, key.public_key(), DATA, signature[:-1])
    with pytest.raises(DecryptError):
        verify(scheme, key.public_key(), DATA, b"")


@pytest.mark.parametrize("scheme", list(KEY_FOR_SCHEME), ids=str)
def test_sig_verify_fitting_is_verify_after_the_checks(scheme: S, keys: dict[str, Any]
                                                      ) -> None:
    """verify_fitting (for a scheme scheme_matches_key accepted): the same verdict and
    error as verify."""
    key = keys[KEY_FOR_SCHEME[scheme]]
    signature = sign(scheme, key, DATA)
    verify_fitting(scheme, key.public_key(), DATA, signature)
    for data, sig in ((DATA + b"!", signature), (DATA, signature[:-1]), (DATA, b"")):
        with pytest.raises(DecryptError) as fitting:
            verify_fitting(scheme, key.public_key(), data, sig)
        with pytest.raises(DecryptError) as checked:
            verify(scheme, key.public_key(), data, sig)
        assert str(fitting.value) == str(checked.value)


def test_sig_other_key_of_the_right_type_is_decrypt_error(keys: dict[str, Any]) -> None:
    signature = sign(S.ED25519, keys["ed25519"], DATA)
    with pytest.raises(DecryptError):
        verify(S.ED25519, ed25519.Ed25519PrivateKey.generate().public_key(), DATA, signature)


@pytest.mark.parametrize(("scheme", "key_name"), [
    (S.ECDSA_SECP256R1_SHA256, "rsa"),
    (S.ECDSA_SECP256R1_SHA256, "ed25519"),
    (S.RSA_PSS_RSAE_SHA256, "p256"),
    (S.RSA_PKCS1_SHA256, "ed448"),
    (S.ED25519, "ed448"),
    (S.ED448, "ed25519"),
    (S.ED25519, "rsa"),
], ids=str)
def test_sig_scheme_not_fitting_the_key(scheme: S, key_name: str,
                                        keys: dict[str, Any]) -> None:
    key = keys[key_name]
    with pytest.raises(IllegalParameter):
        verify(scheme, key.public_key(), DATA, b"\x30\x00")
    with pytest.raises(InternalError):
        sign(scheme, key, DATA)
    assert not scheme_matches_key(scheme, key.public_key(), tls13=True)
    assert not scheme_matches_key(scheme, key.public_key(), tls13=False)


def test_sig_unknown_scheme(keys: dict[str, Any]) -> None:
    with pytest.raises(IllegalParameter):
        verify(0x0A0A, keys["p256"].public_key(), DATA, b"")
    with pytest.raises(InternalError):
        sign(0x0A0A, keys["p256"], DATA)
    assert not scheme_matches_key(0x0A0A, keys["p256"].public_key(), tls13=False)


def test_sig_sha1_schemes_verify_in_tls12_only(keys: dict[str, Any]) -> None:
    rsa_key, ec_key = keys["rsa"], keys["p256"]
    rsa_sig = rsa_key.sign(DATA, padding.PKCS1v15(), hashes.SHA1())
    ec_sig = ec_key.sign(DATA, ec.ECDSA(hashes.SHA1()))
    verify(S.RSA_PKCS1_SHA1, rsa_key.public_key(), DATA, rsa_sig)
    verify(S.ECDSA_SHA1, ec_key.public_key(), DATA, ec_sig)
    with pytest.raises(IllegalParameter):
        verify(S.RSA_PKCS1_SHA1, rsa_key.public_key(), DATA, rsa_sig, tls13=True)
    with pytest.raises(IllegalParameter):
        verify(S.ECDSA_SHA1, ec_key.public_key(), DATA, ec_sig, tls13=True)
    # We never sign with SHA-1.
    with pytest.raises(InternalError):
        sign(S.RSA_PKCS1_SHA1, rsa_key, DATA)
    with pytest.raises(InternalError):
        sign(S.ECDSA_SHA1, ec_key, DATA)
    assert scheme_matches_key(S.ECDSA_SHA1, ec_key.public_key(), tls13=False)
    assert not scheme_matches_key(S.ECDSA_SHA1, ec_key.public_key(), tls13=True)


def test_sig_tls13_forbids_pkcs1_in_certificate_verify(keys: dict[str, Any]) -> None:
    public = keys["rsa"].public_key()
    signature = sign(S.RSA_PKCS1_SHA256, keys["rsa"], DATA)
    assert scheme_matches_key(S.RSA_PKCS1_SHA256, public, tls13=False)
    assert not scheme_matches_key(S.RSA_PKCS1_SHA256, public, tls13=True)
    verify(S.RSA_PKCS1_SHA256, public, DATA, signature)
    with pytest.raises(IllegalParameter):
        verify(S.RSA_PKCS1_SHA256, public, DATA, signature, tls13=True)


def test_sig_tls13_binds_ecdsa_scheme_to_the_curve(keys: dict[str, Any]) -> None:
    p384 = keys["p384"]
    # RFC 8446 §4.2.3: in TLS 1.2 ECDSA schemes name only the hash.
    signature = sign(S.ECDSA_SECP256R1_SHA256, p384, DATA)
    verify(S.ECDSA_SECP256R1_SHA256, p384.public_key(), DATA, signature)
    assert scheme_matches_key(S.ECDSA_SECP256R1_SHA256, p384.public_key(), tls13=False)
    assert not scheme_matches_key(S.ECDSA_SECP256R1_SHA256, p384.public_key(), tls13=True)
    assert scheme_matches_key(S.ECDSA_SECP384R1_SHA384, p384.public_key(), tls13=True)
    with pytest.raises(IllegalParameter):
        verify(S.ECDSA_SECP256R1_SHA256, p384.public_key(), DATA, signature, tls13=True)


def test_sig_rsa_pss_variants_follow_the_key_oid(keys: dict[str, Any]) -> None:
    public = keys["rsa"].public_key()
    # Unknown OID (the default): both PSS variants are acceptable.
    assert scheme_matches_key(S.RSA_PSS_RSAE_SHA256, public, tls13=True)
    assert scheme_matches_key(S.RSA_PSS_PSS_SHA256, public, tls13=True)
    # rsaEncryption key: rsae only. RSASSA-PSS key: pss only, and never PKCS#1.
    assert scheme_matches_key(S.RSA_PSS_RSAE_SHA256, public, tls13=True, rsa_pss_key=False)
    assert not scheme_matches_key(S.RSA_PSS_PSS_SHA256, public, tls13=True, rsa_pss_key=False)
    assert scheme_matches_key(S.RSA_PSS_PSS_SHA384, public, tls13=True, rsa_pss_key=True)
    assert not scheme_matches_key(S.RSA_PSS_RSAE_SHA384, public, tls13=True, rsa_pss_key=True)
    assert not scheme_matches_key(S.RSA_PKCS1_SHA256, public, tls13=False, rsa_pss_key=True)
    signature = sign(S.RSA_PSS_PSS_SHA256, keys["rsa"], DATA)
    with pytest.raises(IllegalParameter):
        verify(S.RSA_PSS_PSS_SHA256, public, DATA, signature, rsa_pss_key=False)
    verify(S.RSA_PSS_PSS_SHA256, public, DATA, signature, rsa_pss_key=True)


def test_sig_pss_salt_length_must_equal_hash_length(keys: dict[str, Any]) -> None:
    key = keys["rsa"]
    for salt in (0, 20, 64):
        signature = key.sign(DATA, padding.PSS(padding.MGF1(hashes.SHA256()), salt),
                             hashes.SHA256())
        with pytest.raises(DecryptError):
            verify(S.RSA_PSS_RSAE_SHA256, key.public_key(), DATA, signature)
    good = key.sign(DATA, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    verify(S.RSA_PSS_RSAE_SHA256, key.public_key(), DATA, good)


def test_sig_rsa_1024_cannot_do_pss_sha512(keys: dict[str, Any]) -> None:
    key = keys["rsa1024"]
    # RFC 8017 §9.1.1: emLen >= 2 * 64 + 2 = 130 bytes needs more than 1024 bits.
    assert not scheme_matches_key(S.RSA_PSS_RSAE_SHA512, key.public_key(), tls13=True)
    assert scheme_matches_key(S.RSA_PSS_RSAE_SHA384, key.public_key(), tls13=True)
    assert S.RSA_PSS_RSAE_SHA512 not in schemes_for_private_key(key, tls13=True)
    with pytest.raises(InternalError):
        sign(S.RSA_PSS_RSAE_SHA512, key, DATA)


def test_sig_schemes_for_private_key(keys: dict[str, Any]) -> None:
    assert schemes_for_private_key(keys["ed25519"], tls13=True) == [S.ED25519]
    assert schemes_for_private_key(keys["ed448"], tls13=False) == [S.ED448]
    assert schemes_for_private_key(keys["p384"], tls13=True) == [S.ECDSA_SECP384R1_SHA384]
    assert schemes_for_private_key(keys["p521"], tls13=False) == [
        S.ECDSA_SECP521R1_SHA512, S.ECDSA_SECP256R1_SHA256, S.ECDSA_SECP384R1_SHA384]
    assert schemes_for_private_key(keys["rsa"], tls13=True) == [
        S.RSA_PSS_RSAE_SHA256, S.RSA_PSS_RSAE_SHA384, S.RSA_PSS_RSAE_SHA512]
    assert schemes_for_private_key(keys["rsa"], tls13=False) == [
        S.RSA_PSS_RSAE_SHA256, S.RSA_PSS_RSAE_SHA384, S.RSA_PSS_RSAE_SHA512,
        S.RSA_PKCS1_SHA256, S.RSA_PKCS1_SHA384, S.RSA_PKCS1_SHA512]
    assert schemes_for_private_key(keys["rsa"], tls13=False, rsa_pss_key=True) == [
        S.RSA_PSS_PSS_SHA256, S.RSA_PSS_PSS_SHA384, S.RSA_PSS_PSS_SHA512]
    assert schemes_for_private_key(ec.generate_private_key(ec.SECP256K1()), tls13=True) == []
    # Every scheme offered for a key matches that key, and signing with it works.
    for name, key in keys.items():
        for tls13 in (True, False):
            for scheme in schemes_for_private_key(key, tls13=tls13):
                assert scheme_matches_key(scheme, key.public_key(), tls13=tls13), (name, scheme)
                verify(scheme, key.public_key(), DATA, sign(scheme, key, DATA), tls13=tls13)


def test_sig_default_schemes() -> None:
    assert DEFAULT_SIGNATURE_SCHEMES[:5] == (
        S.ECDSA_SECP256R1_SHA256, S.ECDSA_SECP384R1_SHA384, S.ECDSA_SECP521R1_SHA512,
        S.ED25519, S.ED448)
    assert DEFAULT_SIGNATURE_SCHEMES[-3:] == (
        S.RSA_PKCS1_SHA256, S.RSA_PKCS1_SHA384, S.RSA_PKCS1_SHA512)
    assert len(set(DEFAULT_SIGNATURE_SCHEMES)) == len(DEFAULT_SIGNATURE_SCHEMES) == 14
    assert S.RSA_PKCS1_SHA1 not in DEFAULT_SIGNATURE_SCHEMES
    assert set(DEFAULT_SIGNATURE_SCHEMES) <= SUPPORTED_SIGNATURE_SCHEMES
    assert set(KEY_FOR_SCHEME) == set(DEFAULT_SIGNATURE_SCHEMES)


def test_sig_certificate_verify_content_layout() -> None:
    digest = bytes(range(32))
    server = certificate_verify_content(digest, server=True)
    client = certificate_verify_content(digest, server=False)
    # RFC 8446 §4.4.3: 64 x 0x20, context string, 0x00, transcript hash.
    assert server == b"\x20" * 64 + b"TLS 1.3, server CertificateVerify\x00" + digest
    assert client == b"\x20" * 64 + b"TLS 1.3, client CertificateVerify\x00" + digest
    assert len(server) == 64 + 33 + 1 + 32


@pytest.mark.parametrize("scheme", list(KEY_FOR_SCHEME), ids=str)
def test_sig_signs_again_and_still_refuses_a_misfit(scheme: S, keys: dict[str, Any]
                                                    ) -> None:
    """Signing repeatedly with a (key, scheme), by member and by number, verifies; a
    scheme that does not fit the same key is refused every time."""
    key = keys[KEY_FOR_SCHEME[scheme]]
    for data in (DATA, DATA + b"again", b""):
        verify(scheme, key.public_key(), data, sign(scheme, key, data))
        verify(scheme, key.public_key(), data, sign(int(scheme), key, data))
    misfit = S.ED448 if KEY_FOR_SCHEME[scheme] != "ed448" else S.ED25519
    with pytest.raises(InternalError):
        sign(misfit, key, DATA)
    with pytest.raises(InternalError):
        sign(S.RSA_PKCS1_SHA1, key, DATA)

from __future__ import annotations

import hashlib

import pytest

from tlsmith.codec.enums import CipherSuite
from tlsmith.crypto.suites import (
    TLS12_PSK_SUITES,
    TLS12_SUITES,
    TLS13_SUITES,
    UNSUPPORTED_TLS12_SUITES,
    hash_factory,
    hash_len,
    suite_info,
)


def test_suites_tls13_table_matches_rfc8446_b4() -> None:
    expected = {
        CipherSuite.TLS_AES_128_GCM_SHA256: ("aes-gcm", 16, 16, "sha256"),
        CipherSuite.TLS_AES_256_GCM_SHA384: ("aes-gcm", 32, 16, "sha384"),
        CipherSuite.TLS_CHACHA20_POLY1305_SHA256: ("chacha20-poly1305", 32, 16, "sha256"),
        CipherSuite.TLS_AES_128_CCM_SHA256: ("aes-ccm", 16, 16, "sha256"),
        CipherSuite.TLS_AES_128_CCM_8_SHA256: ("aes-ccm-8", 16, 8, "sha256"),
    }
    assert set(TLS13_SUITES) == set(expected)
    for suite, (aead, key_len, tag_len, hash_name) in expected.items():
        info = TLS13_SUITES[suite]
        assert info.suite is suite
        assert (info.aead, info.key_len, info.tag_len, info.hash_name) == (
            aead, key_len, tag_len, hash_name)
        assert info.iv_len == 12
        assert info.record_iv_len == 0
        assert info.tls13
        assert info.key_exchange is None and info.authentication is None
        assert info.hash_len == hashlib.new(hash_name).digest_size


def test_suites_tls12_fields_follow_the_suite_name() -> None:
    for suite, info in TLS12_SUITES.items():
        name = suite.rfc_name
        assert not info.tls13
        assert info.suite is suite
        kx = name.removeprefix("TLS_").split("_WITH_")[0]
        assert info.key_exchange == {"ECDHE_ECDSA": "ecdhe", "ECDHE_RSA": "ecdhe",
                                     "DHE_RSA": "dhe", "RSA": "rsa"}[kx]
        assert info.authentication == ("ecdsa" if "ECDSA" in kx else "rsa")
        suffix = name.rsplit("_", 1)[1].lower()
        # RFC 5246 §5, RFC 5288 §3, RFC 5289 §3: SHA-256 PRF unless the suite says SHA384.
        assert info.hash_name == ("sha384" if suffix == "sha384" else "sha256")
        assert info.hash_len == hashlib.new(info.hash_name).digest_size
        if "_CBC_" in name:
            assert (info.cipher, info.aead) == ("cbc", "aes-cbc")
            assert info.key_len == (16 if "AES_128" in name else 32)
            # RFC 5246 §6.2.3.2: explicit 16-byte IV, nothing from the key block.
            assert (info.iv_len, info.record_iv_len, info.tag_len) == (0, 16, 0)
            assert info.mac_name == {"sha": "sha1"}.get(suffix, suffix)
            assert info.mac_key_len == hashlib.new(info.mac_name).digest_size
            continue
        assert (info.cipher, info.mac_name, info.mac_key_len) == ("aead", None, 0)
        if "_GCM_" in name:
            assert info.aead == "aes-gcm"
            assert (info.iv_len, info.record_iv_len) == (4, 8)  # RFC 5288 §3
            assert info.key_len == (16 if "AES_128" in name else 32)
        else:
            assert info.aead == "chacha20-poly1305"
            assert (info.iv_len, info.record_iv_len) == (12, 0)  # RFC 7905 §2
            assert info.key_len == 32
        assert info.tag_len == 16


def test_suites_cbc_suites_are_supported() -> None:
    # RFC 5246 App. C, RFC 5289 §3.1, RFC 8422 §6.
    expected = {f"TLS_{kx}_WITH_AES_{bits}_CBC_{mac}"
                for kx in ("ECDHE_ECDSA", "ECDHE_RSA")
                for bits, mac in (("128", "SHA"), ("256", "SHA"), ("128", "SHA256"),
                                  ("256", "SHA384"))}
    expected |= {f"TLS_{kx}_WITH_AES_{bits}_CBC_{mac}"
                 for kx in ("DHE_RSA", "RSA")
                 for bits in ("128", "256") for mac in ("SHA", "SHA256")}
    assert len(expected) == 16
    cbc = {info.name for info in TLS12_SUITES.values() if info.cipher == "cbc"}
    assert cbc == expected
    assert not UNSUPPORTED_TLS12_SUITES


def test_suites_tls13_suites_keep_the_aead_defaults() -> None:
    for info in TLS13_SUITES.values():
        assert (info.cipher, info.mac_name, info.mac_key_len) == ("aead", None, 0)


def test_suites_description() -> None:
    def d(suite: CipherSuite) -> str:
        info = suite_info(suite)
        assert info is not None
        return info.description

    assert d(CipherSuite.TLS_AES_128_GCM_SHA256) == "AEAD AES-128-GCM"
    assert d(CipherSuite.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) == "AEAD AES-256-GCM"
    assert d(CipherSuite.TLS_CHACHA20_POLY1305_SHA256) == "AEAD ChaCha20-Poly1305"
    assert d(CipherSuite.TLS_AES_128_CCM_8_SHA256) == "AEAD AES-128-CCM-8"
    assert d(CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256) == (
        "AES-128-CBC + HMAC-SHA256 (key 16, MAC key 32, IV 16)")
    assert d(CipherSuite.TLS_RSA_WITH_AES_256_CBC_SHA) == (
        "AES-256-CBC + HMAC-SHA1 (key 32, MAC key 20, IV 16)")
    assert d(CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384) == (
        "AES-256-CBC + HMAC-SHA384 (key 32, MAC key 48, IV 16)")


def test_suites_every_named_suite_is_classified() -> None:
    signalling = {CipherSuite.TLS_NULL_WITH_NULL_NULL,
                  CipherSuite.TLS_EMPTY_RENEGOTIATION_INFO_SCSV,
                  CipherSuite.TLS_FALLBACK_SCSV}
    for suite in CipherSuite:
        groups = [suite in TLS13_SUITES, suite in TLS12_SUITES, suite in TLS12_PSK_SUITES,
                  suite in UNSUPPORTED_TLS12_SUITES, suite in signalling]
        assert groups.count(True) == 1, suite


def test_suites_gcm_and_chacha_tls12_suites_are_all_supported() -> None:
    for suite in CipherSuite:
        if suite.rfc_name.startswith("TLS_") and "_WITH_" in suite.rfc_name and (
                "_GCM_" in suite.rfc_name or "CHACHA20" in suite.rfc_name):
            assert suite in TLS12_SUITES or suite in TLS12_PSK_SUITES


def test_suites_suite_info_lookup() -> None:
    assert suite_info(CipherSuite.TLS_AES_128_GCM_SHA256) is (
        TLS13_SUITES[CipherSuite.TLS_AES_128_GCM_SHA256])
    assert suite_info(0xC02F) is TLS12_SUITES[CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]
    assert suite_info(CipherSuite.TLS_RSA_WITH_AES_128_CBC_SHA) is (
        TLS12_SUITES[CipherSuite.TLS_RSA_WITH_AES_128_CBC_SHA])
    assert suite_info(CipherSuite.TLS_NULL_WITH_NULL_NULL) is None
    assert suite_info(CipherSuite.TLS_EMPTY_RENEGOTIATION_INFO_SCSV) is None
    assert suite_info(0x0A0A) is None  # GREASE
    assert suite_info(0x1234) is None
    assert TLS13_SUITES[CipherSuite.TLS_AES_128_GCM_SHA256].name == "TLS_AES_128_GCM_SHA256"


def test_suites_hash_helpers() -> None:
    for name, size in (("sha256", 32), ("sha384", 48), ("sha512", 64), ("sha1", 20)):
        assert hash_len(name) == size
        assert hash_factory(name)(b"abc").digest() == hashlib.new(name, b"abc").digest()
    with pytest.raises(ValueError):
        hash_factory("md5")
    with pytest.raises(ValueError):
        hash_len("sha3_256")

"""Cipher suite parameters: which AEAD, which hash, how long the keys are.

One ``SuiteInfo`` per supported suite, looked up with ``suite_info``. TLS 1.3 suites
name only the AEAD and the HKDF hash (RFC 8446 §B.4); TLS 1.2 suites also fix the key
exchange and the server's authentication (RFC 5288, RFC 5289, RFC 7905).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tlsmith.codec.enums import CipherSuite

HashFactory = Callable[..., Any]
"""A hashlib constructor: ``hash_factory("sha256")()`` gives a fresh hash object."""

_HASHES: dict[str, tuple[HashFactory, int]] = {
    "sha1": (hashlib.sha1, 20),
    "sha256": (hashlib.sha256, 32),
    "sha384": (hashlib.sha384, 48),
    "sha512": (hashlib.sha512, 64),
}


def hash_factory(name: str) -> HashFactory:
    """The hashlib constructor for ``name`` ("sha256", "sha384", ...)."""
    try:
        return _HASHES[name][0]
    except KeyError:
        raise ValueError(f"unsupported hash {name!r}") from None


def hash_len(name: str) -> int:
    """The digest length in bytes of ``name``."""
    try:
        return _HASHES[name][1]
    except KeyError:
        raise ValueError(f"unsupported hash {name!r}") from None


@dataclass(frozen=True)
class SuiteInfo:
    """What a cipher suite fixes.

    ``iv_len`` is the TLS 1.3 ``iv_length`` (12); for TLS 1.2 AEAD suites it is the
    fixed (implicit) part of the nonce taken from the key block: 4 for AES-GCM
    (RFC 5288 §3 "salt"), 12 for ChaCha20-Poly1305 (RFC 7905 §2).
    ``record_iv_len`` is the explicit per-record nonce carried on the wire in TLS 1.2
    (8 for AES-GCM, RFC 5288 §3; 0 for ChaCha20-Poly1305 and for every TLS 1.3 suite).
    ``hash_name`` is the HKDF hash (TLS 1.3) or the PRF hash (TLS 1.2, RFC 5246 §5).
    """

    suite: CipherSuite
    hash_name: str
    hash_len: int
    aead: str
    key_len: int
    iv_len: int
    tag_len: int
    tls13: bool
    key_exchange: str | None
    authentication: str | None
    record_iv_len: int = 0

    @property
    def name(self) -> str:
        return self.suite.rfc_name


def _tls13(suite: CipherSuite, hash_name: str, aead: str, key_len: int,
           tag_len: int = 16) -> SuiteInfo:
    return SuiteInfo(suite, hash_name, hash_len(hash_name), aead, key_len, 12, tag_len,
                     True, None, None)


def _tls12(suite: CipherSuite, kx: str, auth: str, aead: str, key_len: int,
           hash_name: str) -> SuiteInfo:
    if aead == "aes-gcm":
        iv_len, record_iv_len = 4, 8  # RFC 5288 §3: salt[4] || nonce_explicit[8]
    else:
        iv_len, record_iv_len = 12, 0  # RFC 7905 §2: whole nonce implicit
    return SuiteInfo(suite, hash_name, hash_len(hash_name), aead, key_len, iv_len, 16,
                     False, kx, auth, record_iv_len)


_CS = CipherSuite

# RFC 8446 §B.4.
TLS13_SUITES: dict[CipherSuite, SuiteInfo] = {
    s.suite: s
    for s in (
        _tls13(_CS.TLS_AES_128_GCM_SHA256, "sha256", "aes-gcm", 16),
        _tls13(_CS.TLS_AES_256_GCM_SHA384, "sha384", "aes-gcm", 32),
        _tls13(_CS.TLS_CHACHA20_POLY1305_SHA256, "sha256", "chacha20-poly1305", 32),
        _tls13(_CS.TLS_AES_128_CCM_SHA256, "sha256", "aes-ccm", 16),
        _tls13(_CS.TLS_AES_128_CCM_8_SHA256, "sha256", "aes-ccm-8", 16, tag_len=8),
    )
}

# RFC 5288 (RSA/DHE GCM), RFC 5289 (ECDHE GCM), RFC 7905 (ChaCha20-Poly1305).
TLS12_SUITES: dict[CipherSuite, SuiteInfo] = {
    s.suite: s
    for s in (
        _tls12(_CS.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "ecdhe", "ecdsa", "aes-gcm", 16,
               "sha256"),
        _tls12(_CS.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, "ecdhe", "ecdsa", "aes-gcm", 32,
               "sha384"),
        _tls12(_CS.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, "ecdhe", "ecdsa",
               "chacha20-poly1305", 32, "sha256"),
        _tls12(_CS.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, "ecdhe", "rsa", "aes-gcm", 16,
               "sha256"),
        _tls12(_CS.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, "ecdhe", "rsa", "aes-gcm", 32,
               "sha384"),
        _tls12(_CS.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, "ecdhe", "rsa",
               "chacha20-poly1305", 32, "sha256"),
        _tls12(_CS.TLS_DHE_RSA_WITH_AES_128_GCM_SHA256, "dhe", "rsa", "aes-gcm", 16, "sha256"),
        _tls12(_CS.TLS_DHE_RSA_WITH_AES_256_GCM_SHA384, "dhe", "rsa", "aes-gcm", 32, "sha384"),
        _tls12(_CS.TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256, "dhe", "rsa",
               "chacha20-poly1305", 32, "sha256"),
        _tls12(_CS.TLS_RSA_WITH_AES_128_GCM_SHA256, "rsa", "rsa", "aes-gcm", 16, "sha256"),
        _tls12(_CS.TLS_RSA_WITH_AES_256_GCM_SHA384, "rsa", "rsa", "aes-gcm", 32, "sha384"),
    )
}

UNSUPPORTED_TLS12_SUITES: frozenset[CipherSuite] = frozenset({
    # CBC suites (MAC-then-encrypt, or EtM per RFC 7366): not implemented yet.
    _CS.TLS_RSA_WITH_AES_128_CBC_SHA,
    _CS.TLS_DHE_RSA_WITH_AES_128_CBC_SHA,
    _CS.TLS_RSA_WITH_AES_256_CBC_SHA,
    _CS.TLS_DHE_RSA_WITH_AES_256_CBC_SHA,
    _CS.TLS_RSA_WITH_AES_128_CBC_SHA256,
    _CS.TLS_RSA_WITH_AES_256_CBC_SHA256,
    _CS.TLS_DHE_RSA_WITH_AES_128_CBC_SHA256,
    _CS.TLS_DHE_RSA_WITH_AES_256_CBC_SHA256,
    _CS.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
    _CS.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
    _CS.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
    _CS.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
    _CS.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
    _CS.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384,
    _CS.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
    _CS.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384,
})

_ALL: dict[CipherSuite, SuiteInfo] = {**TLS13_SUITES, **TLS12_SUITES}


def suite_info(s: CipherSuite | int) -> SuiteInfo | None:
    """The parameters of a supported suite, or None (unknown, signalling or unsupported)."""
    return _ALL.get(CipherSuite(s))

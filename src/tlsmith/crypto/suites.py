"""Cipher suite parameters: which AEAD (or CBC + HMAC), which hash, how long the keys are.

One ``SuiteInfo`` per supported suite, looked up with ``suite_info``. TLS 1.3 suites
name only the AEAD and the HKDF hash (RFC 8446 §B.4); TLS 1.2 suites also fix the key
exchange and the server's authentication (RFC 5246 App. C, RFC 5288, RFC 5289,
RFC 7905, RFC 8422).
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

    ``cipher`` is "aead" or "cbc". For AEAD suites ``aead`` names the AEAD; for CBC
    suites it is "aes-cbc" and ``mac_name`` is the HMAC hash ("sha1", "sha256",
    "sha384"), ``mac_key_len`` its key length (RFC 5246 §6.2.3.1, App. C).

    ``iv_len`` is the TLS 1.3 ``iv_length`` (12); for TLS 1.2 AEAD suites it is the
    fixed (implicit) part of the nonce taken from the key block: 4 for AES-GCM
    (RFC 5288 §3 "salt"), 12 for ChaCha20-Poly1305 (RFC 7905 §2); 0 for CBC suites
    (TLS 1.1+ takes no IV from the key block, RFC 5246 §6.3).
    ``record_iv_len`` is the explicit per-record nonce/IV carried on the wire in TLS 1.2
    (8 for AES-GCM, RFC 5288 §3; 16 for AES-CBC, RFC 5246 §6.2.3.2; 0 for
    ChaCha20-Poly1305 and for every TLS 1.3 suite).
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
    cipher: str = "aead"
    mac_name: str | None = None
    mac_key_len: int = 0

    @property
    def name(self) -> str:
        return self.suite.rfc_name

    @property
    def description(self) -> str:
        """The record protection in words, e.g. "AEAD AES-128-GCM" or
        "AES-128-CBC + HMAC-SHA256 (key 16, MAC key 32, IV 16)"."""
        if self.cipher == "cbc":
            mac = (self.mac_name or "?").upper()
            return (f"AES-{self.key_len * 8}-CBC + HMAC-{mac} (key {self.key_len}, "
                    f"MAC key {self.mac_key_len}, IV {self.record_iv_len})")
        if self.aead == "chacha20-poly1305":
            return "AEAD ChaCha20-Poly1305"
        # "aes-gcm" -> "AEAD AES-128-GCM", "aes-ccm-8" -> "AEAD AES-128-CCM-8"
        return f"AEAD AES-{self.key_len * 8}-{self.aead.removeprefix('aes-').upper()}"


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


def _tls12_cbc(suite: CipherSuite, kx: str, auth: str, key_len: int, mac_name: str,
               prf_hash: str = "sha256") -> SuiteInfo:
    # RFC 5246 §6.2.3.2: explicit 16-byte IV per record, none from the key block (§6.3);
    # RFC 5246 App. C: HMAC key length = MAC length.
    mac_len = hash_len(mac_name)
    return SuiteInfo(suite, prf_hash, hash_len(prf_hash), "aes-cbc", key_len, 0, 0, False,
                     kx, auth, 16, "cbc", mac_name, mac_len)


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

# RFC 5288 (RSA/DHE GCM), RFC 5289 (ECDHE GCM and CBC-SHA256/384), RFC 7905
# (ChaCha20-Poly1305), RFC 5246 App. C (RSA/DHE CBC), RFC 8422 (ECDHE CBC-SHA).
# The PRF hash is SHA-256 except for the *_SHA384 suites (RFC 5288 §3, RFC 5289 §3.1-3.2).
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
        # CBC + HMAC (MAC-then-encrypt, or encrypt-then-MAC with RFC 7366).
        _tls12_cbc(_CS.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, "ecdhe", "ecdsa", 16, "sha1"),
        _tls12_cbc(_CS.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, "ecdhe", "ecdsa", 32, "sha1"),
        _tls12_cbc(_CS.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, "ecdhe", "ecdsa", 16,
                   "sha256"),
        _tls12_cbc(_CS.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384, "ecdhe", "ecdsa", 32,
                   "sha384", "sha384"),
        _tls12_cbc(_CS.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, "ecdhe", "rsa", 16, "sha1"),
        _tls12_cbc(_CS.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA, "ecdhe", "rsa", 32, "sha1"),
        _tls12_cbc(_CS.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256, "ecdhe", "rsa", 16, "sha256"),
        _tls12_cbc(_CS.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384, "ecdhe", "rsa", 32, "sha384",
                   "sha384"),
        _tls12_cbc(_CS.TLS_DHE_RSA_WITH_AES_128_CBC_SHA, "dhe", "rsa", 16, "sha1"),
        _tls12_cbc(_CS.TLS_DHE_RSA_WITH_AES_256_CBC_SHA, "dhe", "rsa", 32, "sha1"),
        _tls12_cbc(_CS.TLS_DHE_RSA_WITH_AES_128_CBC_SHA256, "dhe", "rsa", 16, "sha256"),
        _tls12_cbc(_CS.TLS_DHE_RSA_WITH_AES_256_CBC_SHA256, "dhe", "rsa", 32, "sha256"),
        _tls12_cbc(_CS.TLS_RSA_WITH_AES_128_CBC_SHA, "rsa", "rsa", 16, "sha1"),
        _tls12_cbc(_CS.TLS_RSA_WITH_AES_256_CBC_SHA, "rsa", "rsa", 32, "sha1"),
        _tls12_cbc(_CS.TLS_RSA_WITH_AES_128_CBC_SHA256, "rsa", "rsa", 16, "sha256"),
        _tls12_cbc(_CS.TLS_RSA_WITH_AES_256_CBC_SHA256, "rsa", "rsa", 32, "sha256"),
    )
}

# RFC 4279 (PSK), RFC 5489 (ECDHE_PSK), RFC 7905 (ChaCha20-Poly1305): authenticated by
# an external PSK, no certificate. Apart from TLS12_SUITES: used only when a PSK is
# configured and the suite is asked for (ClientConfig/ServerConfig.cipher_suites).
TLS12_PSK_SUITES: dict[CipherSuite, SuiteInfo] = {
    s.suite: s
    for s in (
        _tls12_cbc(_CS.TLS_PSK_WITH_AES_128_CBC_SHA, "psk", "psk", 16, "sha1"),
        _tls12_cbc(_CS.TLS_PSK_WITH_AES_256_CBC_SHA, "psk", "psk", 32, "sha1"),
        _tls12_cbc(_CS.TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA, "ecdhe_psk", "psk", 16, "sha1"),
        _tls12_cbc(_CS.TLS_ECDHE_PSK_WITH_AES_256_CBC_SHA, "ecdhe_psk", "psk", 32, "sha1"),
        _tls12(_CS.TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256, "ecdhe_psk", "psk",
               "chacha20-poly1305", 32, "sha256"),
    )
}

UNSUPPORTED_TLS12_SUITES: frozenset[CipherSuite] = frozenset()
"""Named TLS 1.2 suites we recognise but cannot use (none at the moment; kept so that
callers can go on asking)."""

_ALL: dict[CipherSuite, SuiteInfo] = {**TLS13_SUITES, **TLS12_SUITES, **TLS12_PSK_SUITES}
# By number: a member or its plain int finds the entry without an Enum call.
_BY_NUMBER: dict[int, SuiteInfo] = {int(k): v for k, v in _ALL.items()}


def suite_info(s: CipherSuite | int) -> SuiteInfo | None:
    """The parameters of a supported suite, or None (unknown, signalling or unsupported)."""
    info = _BY_NUMBER.get(s)
    if info is None:
        CipherSuite(s)  # a value that is no code point at all still raises, as it did
    return info

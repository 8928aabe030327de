"""HMAC (RFC 2104) over ``hashlib`` constructors, for the key schedules' short inputs.

``hmac.digest`` looks the MAC algorithm up in OpenSSL's provider tables on every call
(EVP_MAC_fetch), which costs about as much again as hashing a handshake's short inputs;
``cryptography``'s ``HMAC`` costs more still. Two ``hashlib`` constructor calls compute
the same value in about half the time of ``hmac.digest``, and a key used for several
MACs (``HmacKey``: the TLS 1.2 PRF, a traffic secret's key and IV) absorbs its padded
key once and copies the two states per MAC.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any

_HASHES: dict[str, tuple[Callable[..., Any], int]] = {
    # hashlib name -> (constructor, block size in bytes)
    "sha256": (hashlib.sha256, 64),
    "sha384": (hashlib.sha384, 128),
    "sha512": (hashlib.sha512, 128),
    "sha1": (hashlib.sha1, 64),
}
_TRANS_36 = bytes(x ^ 0x36 for x in range(256))  # RFC 2104: ipad
_TRANS_5C = bytes(x ^ 0x5C for x in range(256))  # RFC 2104: opad


def hmac_digest(key: bytes, msg: bytes, hash_name: str) -> bytes:
    """HMAC-Hash(key, msg): the same value as ``hmac.digest(key, msg, hash_name)``."""
    fn = HMAC_BY_HASH.get(hash_name)
    if fn is None:
        return hmac.digest(key, msg, hash_name)
    return fn(key, msg)


def _hmac_for(ctor: Callable[..., Any], block: int) -> Callable[[bytes, bytes], bytes]:
    def hmac_hash(key: bytes, msg: bytes) -> bytes:
        if len(key) > block:
            key = ctor(key).digest()
        key = key.ljust(block, b"\0")
        digest: bytes = ctor(key.translate(_TRANS_5C)
                             + ctor(key.translate(_TRANS_36) + msg).digest()).digest()
        return digest

    return hmac_hash


#: hashlib name -> HMAC(key, msg) with that hash: what ``hmac_digest`` calls, for a
#: caller that knows its hash and makes many MACs (the key schedules).
HMAC_BY_HASH: dict[str, Callable[[bytes, bytes], bytes]] = {
    name: _hmac_for(ctor, block) for name, (ctor, block) in _HASHES.items()}


def hmac_digests(key: bytes, msgs: tuple[bytes, ...], hash_name: str) -> list[bytes]:
    """``[hmac_digest(key, m, hash_name) for m in msgs]``, padding the key once: for a
    few short messages this beats keyed-state copies (``HmacKey``)."""
    entry = _HASHES.get(hash_name)
    if entry is None:
        return [hmac.digest(key, m, hash_name) for m in msgs]
    ctor, block = entry
    if len(key) > block:
        key = ctor(key).digest()
    key = key.ljust(block, b"\0")
    inner, outer = key.translate(_TRANS_36), key.translate(_TRANS_5C)
    return [ctor(outer + ctor(inner + m).digest()).digest() for m in msgs]


def hmac_digest_pair(key: bytes, first: bytes, second: bytes, hash_name: str
                     ) -> tuple[bytes, bytes]:
    """``(hmac_digest(key, first, hash_name), hmac_digest(key, second, hash_name))``,
    padding the key once: a traffic secret's write key and IV (RFC 8446 §7.3)."""
    entry = _HASHES.get(hash_name)
    if entry is None:
        return hmac.digest(key, first, hash_name), hmac.digest(key, second, hash_name)
    ctor, block = entry
    if len(key) > block:
        key = ctor(key).digest()
    key = key.ljust(block, b"\0")
    inner, outer = key.translate(_TRANS_36), key.translate(_TRANS_5C)
    return (ctor(outer + ctor(inner + first).digest()).digest(),
            ctor(outer + ctor(inner + second).digest()).digest())


class HmacKey:
    """One HMAC key, for several MACs: the inner and outer states are keyed once."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes, hash_name: str) -> None:
        entry = _HASHES.get(hash_name)
        if entry is None:
            raise ValueError(f"unsupported HMAC hash {hash_name!r}")
        ctor, block = entry
        if len(key) > block:
            key = ctor(key).digest()
        key = key.ljust(block, b"\0")
        self._inner = ctor(key.translate(_TRANS_36))
        self._outer = ctor(key.translate(_TRANS_5C))

    def digest(self, *parts: bytes) -> bytes:
        """HMAC over the concatenation of ``parts``."""
        inner = self._inner.copy()
        for part in parts:
            inner.update(part)
        outer = self._outer.copy()
        outer.update(inner.digest())
        digest: bytes = outer.digest()
        return digest

"""HMAC (RFC 2104) over ``hashlib`` constructors, for the key schedules' short inputs.

``hmac.digest`` looks the MAC algorithm up in OpenSSL's provider tables on every call
(EVP_MAC_fetch), which costs about as much again as hashing a handshake's short inputs;
``cryptography``'s ``HMAC`` costs more still. Two ``hashlib`` constructor calls compute
the same value in about half the time of ``hmac.digest``; a key used for several MACs
(the TLS 1.2 PRF's P_hash, a traffic secret's key, IV and finished key, a stage's
secrets) is padded once for all of them.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

HashCtor = Callable[[bytes], "hashlib._Hash"]

_HASHES: dict[str, tuple[HashCtor, int]] = {
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


def _hmac_for(ctor: HashCtor, block: int) -> Callable[[bytes, bytes], bytes]:
    def hmac_hash(key: bytes, msg: bytes) -> bytes:
        if len(key) > block:
            key = ctor(key).digest()
        key = key.ljust(block, b"\0")
        return ctor(key.translate(_TRANS_5C)
                    + ctor(key.translate(_TRANS_36) + msg).digest()).digest()

    return hmac_hash


def _hmac3_for(ctor: HashCtor, block: int
               ) -> Callable[[bytes, bytes, bytes, bytes], tuple[bytes, bytes, bytes]]:
    def hmac3(key: bytes, first: bytes, second: bytes, third: bytes
              ) -> tuple[bytes, bytes, bytes]:
        if len(key) > block:
            key = ctor(key).digest()
        key = key.ljust(block, b"\0")
        inner, outer = key.translate(_TRANS_36), key.translate(_TRANS_5C)
        return (ctor(outer + ctor(inner + first).digest()).digest(),
                ctor(outer + ctor(inner + second).digest()).digest(),
                ctor(outer + ctor(inner + third).digest()).digest())

    return hmac3


#: hashlib name -> HMAC(key, msg) with that hash: what ``hmac_digest`` calls, for a
#: caller that knows its hash and makes many MACs (the key schedules).
HMAC_BY_HASH: dict[str, Callable[[bytes, bytes], bytes]] = {
    name: _hmac_for(ctor, block) for name, (ctor, block) in _HASHES.items()}


def _binder_chain_for(ctor: HashCtor, block: int
                      ) -> Callable[[bytes, bytes, bytes, bytes, bytes],
                                    tuple[bytes, bytes, bytes]]:
    # HKDF-Extract's salt when none is given: HashLen zeros (RFC 5869 §2.2), padded once.
    zeros = bytes(ctor(b"").digest_size).ljust(block, b"\0")
    zeros_inner, zeros_outer = zeros.translate(_TRANS_36), zeros.translate(_TRANS_5C)

    def chain(ikm: bytes, info: bytes, info2: bytes, info3: bytes, msg: bytes
              ) -> tuple[bytes, bytes, bytes]:
        # (Every key below is a digest: never longer than the block.)
        prk = ctor(zeros_outer + ctor(zeros_inner + ikm).digest()).digest()
        key = prk.ljust(block, b"\0")
        inner, outer = key.translate(_TRANS_36), key.translate(_TRANS_5C)
        first = ctor(outer + ctor(inner + info).digest()).digest()
        second = ctor(outer + ctor(inner + info2).digest()).digest()
        key = first.ljust(block, b"\0")
        third = ctor(key.translate(_TRANS_5C)
                     + ctor(key.translate(_TRANS_36) + info3).digest()).digest()
        key = third.ljust(block, b"\0")
        return prk, second, ctor(key.translate(_TRANS_5C)
                                 + ctor(key.translate(_TRANS_36) + msg).digest()).digest()

    return chain


#: hashlib name -> (ikm, info, info2, info3, msg) -> (prk, HMAC(prk, info2),
#: HMAC(HMAC(HMAC(prk, info), info3), msg)) with prk = HMAC(HashLen zeros, ikm), each
#: key padded once, in straight-line code: a TLS 1.3 PSK's Early Secret, its "derived"
#: salt and its binder (RFC 8446 §7.1, §4.2.11.2), what a resuming server computes first.
BINDER_CHAIN_BY_HASH: dict[str, Callable[[bytes, bytes, bytes, bytes, bytes],
                                         tuple[bytes, bytes, bytes]]] = {
    name: _binder_chain_for(ctor, block) for name, (ctor, block) in _HASHES.items()}

#: hashlib name -> (key, m1, m2, m3) -> the three HMACs under one key, padded once: the
#: three secrets a TLS 1.3 stage derives from one secret (RFC 8446 §7.1).
HMAC3_BY_HASH: dict[str, Callable[[bytes, bytes, bytes, bytes], tuple[bytes, bytes, bytes]]] = {
    name: _hmac3_for(ctor, block) for name, (ctor, block) in _HASHES.items()}


def fixed_expander(hash_name: str, infos: tuple[bytes, ...], lengths: tuple[int, ...]
                   ) -> Callable[[bytes], tuple[bytes, ...]]:
    """``key -> tuple(HMAC(key, info)[:length] for info, length in zip(infos,
    lengths))`` with the key padded once: the one-block HKDF-Expand of constant infos
    (a traffic secret's write key, IV and finished key, RFC 8446 §7.3, §4.4.4).
    Two or three infos take a straight-line path; ``hash_name`` must be in
    ``HMAC_BY_HASH``."""
    ctor, block = _HASHES[hash_name]
    if len(infos) != len(lengths):
        raise ValueError("one length per info")
    if len(infos) == 2:
        (i1, i2), (n1, n2) = infos, lengths

        def expand2(key: bytes) -> tuple[bytes, ...]:
            if len(key) > block:
                key = ctor(key).digest()
            key = key.ljust(block, b"\0")
            inner, outer = key.translate(_TRANS_36), key.translate(_TRANS_5C)
            return (ctor(outer + ctor(inner + i1).digest()).digest()[:n1],
                    ctor(outer + ctor(inner + i2).digest()).digest()[:n2])

        return expand2
    if len(infos) == 3:
        (i1, i2, i3), (n1, n2, n3) = infos, lengths

        def expand3(key: bytes) -> tuple[bytes, ...]:
            if len(key) > block:
                key = ctor(key).digest()
            key = key.ljust(block, b"\0")
            inner, outer = key.translate(_TRANS_36), key.translate(_TRANS_5C)
            return (ctor(outer + ctor(inner + i1).digest()).digest()[:n1],
                    ctor(outer + ctor(inner + i2).digest()).digest()[:n2],
                    ctor(outer + ctor(inner + i3).digest()).digest()[:n3])

        return expand3

    def expand(key: bytes) -> tuple[bytes, ...]:
        return tuple(d[:n] for d, n in zip(hmac_digests(key, infos, hash_name),
                                          lengths, strict=True))

    return expand


def hmac_digests(key: bytes, msgs: tuple[bytes, ...], hash_name: str) -> list[bytes]:
    """``[hmac_digest(key, m, hash_name) for m in msgs]``, padding the key once (for a
    few short messages two fresh hashes per MAC beat copies of keyed hash states)."""
    entry = _HASHES.get(hash_name)
    if entry is None:
        return [hmac.digest(key, m, hash_name) for m in msgs]
    ctor, block = entry
    if len(key) > block:
        key = ctor(key).digest()
    key = key.ljust(block, b"\0")
    inner, outer = key.translate(_TRANS_36), key.translate(_TRANS_5C)
    return [ctor(outer + ctor(inner + m).digest()).digest() for m in msgs]


def p_hash(hash_name: str, secret: bytes, seed: bytes, length: int) -> bytes:
    """The first ``length`` bytes of P_hash(secret, seed) -- RFC 5246 §5::

        P_hash(secret, seed) = HMAC_hash(secret, A(1) + seed) +
                               HMAC_hash(secret, A(2) + seed) + ...
        A(0) = seed; A(i) = HMAC_hash(secret, A(i-1))

    with the secret padded once (``hash_name`` must be in ``HMAC_BY_HASH``)."""
    ctor, block = _HASHES[hash_name]
    if len(secret) > block:
        secret = ctor(secret).digest()
    key = secret.ljust(block, b"\0")
    inner, outer = key.translate(_TRANS_36), key.translate(_TRANS_5C)
    a = seed
    out = b""
    while len(out) < length:
        a = ctor(outer + ctor(inner + a).digest()).digest()  # A(i)
        out += ctor(outer + ctor(inner + a + seed).digest()).digest()
    return out[:length]

"""The TLS 1.2 key derivation: PRF (RFC 5246 §5) and everything built on it.

    pre_master_secret --PRF "master secret" / "extended master secret"--> master_secret
    master_secret --PRF "key expansion"--> key_block -> MAC keys, write keys, fixed IVs
    master_secret --PRF "client finished" / "server finished"--> verify_data
    master_secret --PRF <exporter label>--> exported keying material (RFC 5705)

Every function takes the PRF hash by name (``"sha256"`` or ``"sha384"``, the suite's
``hash_name``). P_hash is ``tlsmith.crypto.mac.p_hash`` (HMAC over ``hashlib``
constructors, the secret padded once per PRF call).
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes

from tlsmith.crypto.mac import p_hash
from tlsmith.crypto.suites import SuiteInfo
from tlsmith.frozen import fast_init

# -- labels (RFC 5246 §8.1, §6.3, §7.4.9; RFC 7627 §4) -----------------------------------
LABEL_MASTER_SECRET = b"master secret"
LABEL_EXTENDED_MASTER_SECRET = b"extended master secret"
LABEL_KEY_EXPANSION = b"key expansion"
LABEL_CLIENT_FINISHED = b"client finished"
LABEL_SERVER_FINISHED = b"server finished"

MASTER_SECRET_LEN = 48
"""RFC 5246 §8.1: master_secret is always 48 bytes."""
VERIFY_DATA_LEN = 12
"""RFC 5246 §7.4.9: verify_data_length is 12 for every suite defined so far."""
RANDOM_LEN = 32

# Labels TLS itself uses; the exporter must not reproduce them (IANA "TLS Exporter
# Labels" registry, RFC 5705 §4 / RFC 7627 §7).
_RESERVED_EXPORTER_LABELS = frozenset({
    LABEL_MASTER_SECRET, LABEL_EXTENDED_MASTER_SECRET, LABEL_KEY_EXPANSION,
    LABEL_CLIENT_FINISHED, LABEL_SERVER_FINISHED,
})

_PRF_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
}


_DIGEST_SIZES: dict[str, int] = {name: cls().digest_size for name, cls in _PRF_HASHES.items()}


def _algorithm(hash_name: str) -> hashes.HashAlgorithm:
    try:
        return _PRF_HASHES[hash_name]()
    except KeyError:
        raise ValueError(f"unsupported TLS 1.2 PRF hash {hash_name!r}") from None


def prf(hash_name: str, secret: bytes, label: bytes, seed: bytes, length: int) -> bytes:
    """PRF(secret, label, seed) = P_<hash>(secret, label + seed)[:length] (RFC 5246 §5).

    P_hash(secret, seed) = HMAC(secret, A(1) + seed) + HMAC(secret, A(2) + seed) + ...
    with A(0) = seed and A(i) = HMAC(secret, A(i-1)).
    """
    if length < 0:
        raise ValueError(f"negative PRF output length {length}")
    if hash_name not in _PRF_HASHES:
        raise ValueError(f"unsupported TLS 1.2 PRF hash {hash_name!r}")
    return p_hash(hash_name, secret, label + seed, length)


def _check_random(name: str, value: bytes) -> None:
    if len(value) != RANDOM_LEN:
        raise ValueError(f"{name} is {len(value)} bytes, expected {RANDOM_LEN}")


def _check_hash(name: str, hash_name: str, value: bytes) -> None:
    expected = _DIGEST_SIZES.get(hash_name)
    if expected is None:
        expected = _algorithm(hash_name).digest_size  # (raises: not a PRF hash)
    if len(value) != expected:
        raise ValueError(f"{name} is {len(value)} bytes, expected {expected} ({hash_name})")


def master_secret(hash_name: str, pre_master_secret: bytes, client_random: bytes,
                  server_random: bytes) -> bytes:
    """RFC 5246 §8.1: PRF(pre_master_secret, "master secret",
    ClientHello.random + ServerHello.random)[0..47]."""
    _check_random("client_random", client_random)
    _check_random("server_random", server_random)
    return prf(hash_name, pre_master_secret, LABEL_MASTER_SECRET,
               client_random + server_random, MASTER_SECRET_LEN)


def extended_master_secret(hash_name: str, pre_master_secret: bytes,
                           session_hash: bytes) -> bytes:
    """RFC 7627 §4: PRF(pre_master_secret, "extended master secret", session_hash)[0..47],
    where session_hash is the PRF hash of the handshake up to ClientKeyExchange (§3)."""
    _check_hash("session_hash", hash_name, session_hash)
    return prf(hash_name, pre_master_secret, LABEL_EXTENDED_MASTER_SECRET, session_hash,
               MASTER_SECRET_LEN)


def key_block(hash_name: str, master_secret: bytes, client_random: bytes,
              server_random: bytes, length: int) -> bytes:
    """RFC 5246 §6.3: PRF(master_secret, "key expansion",
    server_random + client_random) -- note the server random comes first."""
    _check_random("client_random", client_random)
    _check_random("server_random", server_random)
    return prf(hash_name, master_secret, LABEL_KEY_EXPANSION, server_random + client_random,
               length)


@fast_init
@dataclass(frozen=True, slots=True, repr=False)
class KeyBlock12:
    """The key block cut into its six parts, in RFC 5246 §6.3 order. Empty parts are
    b"" (no MAC keys for AEAD suites, no fixed IV for CBC suites in TLS 1.1+)."""

    client_write_mac_key: bytes
    server_write_mac_key: bytes
    client_write_key: bytes
    server_write_key: bytes
    client_write_iv: bytes
    server_write_iv: bytes

    def __repr__(self) -> str:  # lengths only: these are secrets
        return (f"KeyBlock12(mac_key={len(self.client_write_mac_key)}, "
                f"key={len(self.client_write_key)}, iv={len(self.client_write_iv)})")


def key_block_length(suite: SuiteInfo) -> int:
    """How many key block bytes ``suite`` consumes (RFC 5246 §6.3)."""
    return 2 * (suite.mac_key_len + suite.key_len + suite.iv_len)


def derive_key_block(suite: SuiteInfo, master_secret: bytes, client_random: bytes,
                     server_random: bytes) -> KeyBlock12:
    """Expand the master secret for ``suite`` and split it (RFC 5246 §6.3).

    AEAD suites take no MAC key and a fixed IV of ``suite.iv_len`` bytes (4 for AES-GCM,
    RFC 5288 §3; 12 for ChaCha20-Poly1305, RFC 7905 §2). CBC suites take MAC keys and no
    IV: TLS 1.1+ sends an explicit IV in every record (RFC 5246 §6.2.3.2).
    """
    if suite.tls13:
        raise ValueError(f"{suite.name} is a TLS 1.3 suite (use the TLS 1.3 key schedule)")
    m, k, i = suite.mac_key_len, suite.key_len, suite.iv_len
    block = key_block(suite.hash_name, master_secret, client_random, server_random,
                      2 * (m + k + i))
    mk = 2 * m + k  # the six parts end at m, 2m, 2m+k, 2m+2k, 2m+2k+i, 2m+2k+2i
    return KeyBlock12(block[:m], block[m:2 * m], block[2 * m:mk], block[mk:mk + k],
                      block[mk + k:mk + k + i], block[mk + k + i:])


def finished_verify_data(hash_name: str, master_secret: bytes, *, client: bool,
                         handshake_hash: bytes) -> bytes:
    """RFC 5246 §7.4.9: PRF(master_secret, finished_label, Hash(handshake_messages))
    [0..11]; the label is "client finished" or "server finished" by the sender."""
    _check_hash("handshake_hash", hash_name, handshake_hash)
    label = LABEL_CLIENT_FINISHED if client else LABEL_SERVER_FINISHED
    return prf(hash_name, master_secret, label, handshake_hash, VERIFY_DATA_LEN)


def export_keying_material(hash_name: str, master_secret: bytes, client_random: bytes,
                           server_random: bytes, label: bytes, context: bytes | None,
                           length: int) -> bytes:
    """RFC 5705 §4: PRF(master_secret, label, client_random + server_random
    [+ uint16 context length + context])[length].

    ``context=None`` (no context) and ``context=b""`` (an empty context) give different
    output, as RFC 5705 §4 requires.
    """
    if label in _RESERVED_EXPORTER_LABELS:
        raise ValueError(f"exporter label {label!r} is reserved for TLS itself")
    _check_random("client_random", client_random)
    _check_random("server_random", server_random)
    seed = client_random + server_random
    if context is not None:
        if len(context) >= 1 << 16:
            raise ValueError(f"exporter context of {len(context)} bytes exceeds 2^16 - 1")
        seed += len(context).to_bytes(2, "big") + context
    return prf(hash_name, master_secret, label, seed, length)

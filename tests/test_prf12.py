"""TLS 1.2 key derivation (tlsmith.crypto.prf12).

Oracles, none computed by the code under test:
* published vectors in tests/vectors/tls12_prf.json (each entry names its source): the
  TLS WG P_SHA256 / P_SHA384 "test label" vectors and the NIST CAVP TLS 1.2 KDF case
  (master secret and key block);
* OpenSSL's own TLS1-PRF (``openssl kdf ... TLS1-PRF``), fed the seed each derivation is
  defined to use (RFC 5246 §8.1, §6.3, §7.4.9; RFC 7627 §4; RFC 5705 §4).
tests/test_record_protection_cbc.py also checks master secret, extended master secret,
key block and Finished against a real OpenSSL TLS 1.2 session.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from helpers import require_peer
from tlsmith.codec.enums import CipherSuite
from tlsmith.crypto import prf12
from tlsmith.crypto.suites import TLS12_SUITES, TLS13_SUITES, SuiteInfo

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parent / "vectors" / "tls12_prf.json").read_text())

CLIENT_RANDOM = bytes(range(0x00, 0x20))
SERVER_RANDOM = bytes(range(0x80, 0xA0))
MASTER = bytes.fromhex("a5" * 48)


def openssl_prf(hash_name: str, secret: bytes, label: bytes, seed: bytes, length: int) -> bytes:
    """OpenSSL's TLS 1.2 PRF: its "seed" is label + seed (RFC 5246 §5)."""
    openssl = require_peer("openssl")
    result = subprocess.run(
        [openssl, "kdf", "-keylen", str(length), "-kdfopt", f"digest:{hash_name.upper()}",
         "-kdfopt", f"hexsecret:{secret.hex()}", "-kdfopt", f"hexseed:{(label + seed).hex()}",
         "TLS1-PRF"],
        capture_output=True, text=True, timeout=30, check=True)
    return bytes.fromhex(result.stdout.strip().replace(":", ""))


# -- published vectors ---------------------------------------------------------------------

@pytest.mark.parametrize("vector", VECTORS["prf"], ids=lambda v: v["hash"])
def test_prf12_published_prf_vectors(vector: dict[str, str]) -> None:
    assert "source" in vector
    secret, seed = bytes.fromhex(vector["secret"]), bytes.fromhex(vector["seed"])
    label = vector["label"].encode()
    expected = bytes.fromhex(vector["output"])
    assert prf12.prf(vector["hash"], secret, label, seed, len(expected)) == expected
    # P_hash is a stream: any shorter output is a prefix (RFC 5246 §5 "[0..n]").
    for n in (0, 1, 31, 32, 33, 48, 49):
        assert prf12.prf(vector["hash"], secret, label, seed, n) == expected[:n]


def test_prf12_nist_master_secret_vector() -> None:
    for v in VECTORS["master_secret"]:
        assert "source" in v
        ms = prf12.master_secret(v["hash"], bytes.fromhex(v["pre_master_secret"]),
                                 bytes.fromhex(v["client_random"]),
                                 bytes.fromhex(v["server_random"]))
        assert ms.hex() == v["master_secret"]


def test_prf12_nist_key_block_vector_and_split() -> None:
    for v in VECTORS["key_block"]:
        assert "source" in v
        ms = bytes.fromhex(v["master_secret"])
        cr, sr = bytes.fromhex(v["client_random"]), bytes.fromhex(v["server_random"])
        expected = bytes.fromhex(v["key_block"])
        assert prf12.key_block(v["hash"], ms, cr, sr, len(expected)) == expected
        # AES-256-CBC + HMAC-SHA256 takes exactly these 128 bytes (RFC 5246 §6.3 order).
        suite = TLS12_SUITES[CipherSuite.TLS_RSA_WITH_AES_256_CBC_SHA256]
        assert prf12.key_block_length(suite) == len(expected) == 128
        kb = prf12.derive_key_block(suite, ms, cr, sr)
        assert kb.client_write_mac_key == expected[0:32]
        assert kb.server_write_mac_key == expected[32:64]
        assert kb.client_write_key == expected[64:96]
        assert kb.server_write_key == expected[96:128]
        assert kb.client_write_iv == kb.server_write_iv == b""


# -- OpenSSL cross-checks ------------------------------------------------------------------

@pytest.mark.parametrize("hash_name", ["sha256", "sha384"])
def test_prf12_matches_openssl_tls1_prf(hash_name: str) -> None:
    secret = hashlib.sha512(b"secret " + hash_name.encode()).digest()[:37]
    seed = hashlib.sha512(b"seed").digest()
    for length in (1, 47, 48, 49, 200):
        assert prf12.prf(hash_name, secret, b"some label", seed, length) == openssl_prf(
            hash_name, secret, b"some label", seed, length)


@pytest.mark.parametrize("hash_name", ["sha256", "sha384"])
def test_prf12_derivations_match_openssl(hash_name: str) -> None:
    pms = bytes.fromhex("0303") + bytes(range(46))
    size = hashlib.new(hash_name).digest_size
    session_hash = hashlib.new(hash_name, b"ClientHello...ClientKeyExchange").digest()
    handshake_hash = hashlib.new(hash_name, b"ClientHello...ClientFinished").digest()

    # RFC 5246 §8.1: seed = ClientHello.random + ServerHello.random.
    assert prf12.master_secret(hash_name, pms, CLIENT_RANDOM, SERVER_RANDOM) == openssl_prf(
        hash_name, pms, b"master secret", CLIENT_RANDOM + SERVER_RANDOM, 48)
    # RFC 7627 §4: seed = session_hash.
    assert prf12.extended_master_secret(hash_name, pms, session_hash) == openssl_prf(
        hash_name, pms, b"extended master secret", session_hash, 48)
    # RFC 5246 §6.3: seed = server_random + client_random.
    assert prf12.key_block(hash_name, MASTER, CLIENT_RANDOM, SERVER_RANDOM, 136) == (
        openssl_prf(hash_name, MASTER, b"key expansion", SERVER_RANDOM + CLIENT_RANDOM, 136))
    # RFC 5246 §7.4.9: seed = Hash(handshake_messages), 12 bytes.
    for client, label in ((True, b"client finished"), (False, b"server finished")):
        assert prf12.finished_verify_data(
            hash_name, MASTER, client=client, handshake_hash=handshake_hash) == openssl_prf(
            hash_name, MASTER, label, handshake_hash, 12)
    # RFC 5705 §4: seed = client_random + server_random [+ uint16 length + context].
    randoms = CLIENT_RANDOM + SERVER_RANDOM
    label = b"EXPERIMENTAL tlsmith"
    assert prf12.export_keying_material(
        hash_name, MASTER, CLIENT_RANDOM, SERVER_RANDOM, label, None, 40) == openssl_prf(
        hash_name, MASTER, label, randoms, 40)
    for context in (b"", b"ctx", bytes(300)):
        assert prf12.export_keying_material(
            hash_name, MASTER, CLIENT_RANDOM, SERVER_RANDOM, label, context, size) == (
            openssl_prf(hash_name, MASTER, label,
                        randoms + len(context).to_bytes(2, "big") + context, size))


# -- structure -----------------------------------------------------------------------------

def _expected_lengths(suite: SuiteInfo) -> tuple[int, int, int]:
    """(MAC key, key, fixed IV) from the suite's name (RFC 5246 App. C, RFC 5288 §3,
    RFC 5289, RFC 7905 §2)."""
    name = suite.name
    key = 16 if "AES_128" in name else 32
    if "_GCM_" in name:
        return 0, key, 4
    if "CHACHA20" in name:
        return 0, 32, 12
    mac = {"SHA": 20, "SHA256": 32, "SHA384": 48}[name.rsplit("_", 1)[1]]
    return mac, key, 0


@pytest.mark.parametrize("suite", list(TLS12_SUITES.values()), ids=lambda s: s.name)
def test_prf12_key_block_split_for_every_suite(suite: SuiteInfo) -> None:
    mac, key, iv = _expected_lengths(suite)
    assert prf12.key_block_length(suite) == 2 * (mac + key + iv)
    kb = prf12.derive_key_block(suite, MASTER, CLIENT_RANDOM, SERVER_RANDOM)
    parts = (kb.client_write_mac_key, kb.server_write_mac_key, kb.client_write_key,
             kb.server_write_key, kb.client_write_iv, kb.server_write_iv)
    assert [len(p) for p in parts] == [mac, mac, key, key, iv, iv]
    block = prf12.key_block(suite.hash_name, MASTER, CLIENT_RANDOM, SERVER_RANDOM,
                            2 * (mac + key + iv))
    assert b"".join(parts) == block
    assert MASTER.hex() not in repr(kb) and kb.client_write_key.hex() not in repr(kb)


def test_prf12_suite_prf_hash_selects_the_prf() -> None:
    s384 = TLS12_SUITES[CipherSuite.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384]
    s256 = TLS12_SUITES[CipherSuite.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA]
    assert (s384.hash_name, s256.hash_name) == ("sha384", "sha256")
    a = prf12.derive_key_block(s384, MASTER, CLIENT_RANDOM, SERVER_RANDOM)
    b = prf12.derive_key_block(s256, MASTER, CLIENT_RANDOM, SERVER_RANDOM)
    assert a.client_write_mac_key[:20] != b.client_write_mac_key


def test_prf12_extended_master_secret_differs_from_master_secret() -> None:
    pms = bytes(48)
    session_hash = hashlib.sha256(b"handshake").digest()
    ems = prf12.extended_master_secret("sha256", pms, session_hash)
    assert len(ems) == 48
    assert ems != prf12.master_secret("sha256", pms, CLIENT_RANDOM, SERVER_RANDOM)
    assert ems != prf12.extended_master_secret(
        "sha256", pms, hashlib.sha256(b"handshake2").digest())


def test_prf12_finished_and_exporter_properties() -> None:
    h = hashlib.sha256(b"msgs").digest()
    client = prf12.finished_verify_data("sha256", MASTER, client=True, handshake_hash=h)
    server = prf12.finished_verify_data("sha256", MASTER, client=False, handshake_hash=h)
    assert len(client) == len(server) == 12 and client != server
    # RFC 5705 §4: no context and an empty context are different inputs.
    none = prf12.export_keying_material("sha256", MASTER, CLIENT_RANDOM, SERVER_RANDOM,
                                        b"EXPERIMENTAL x", None, 32)
    empty = prf12.export_keying_material("sha256", MASTER, CLIENT_RANDOM, SERVER_RANDOM,
                                         b"EXPERIMENTAL x", b"", 32)
    assert none != empty and len(none) == len(empty) == 32


def test_prf12_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError):
        prf12.prf("sha1", b"k", b"l", b"s", 10)
    with pytest.raises(ValueError):
        prf12.prf("md5", b"k", b"l", b"s", 10)
    with pytest.raises(ValueError):
        prf12.prf("sha256", b"k", b"l", b"s", -1)
    with pytest.raises(ValueError):
        prf12.master_secret("sha256", bytes(48), bytes(31), SERVER_RANDOM)
    with pytest.raises(ValueError):
        prf12.key_block("sha256", MASTER, CLIENT_RANDOM, bytes(33), 10)
    with pytest.raises(ValueError):  # session_hash must be a SHA-384 digest here
        prf12.extended_master_secret("sha384", bytes(48), bytes(32))
    with pytest.raises(ValueError):
        prf12.finished_verify_data("sha256", MASTER, client=True, handshake_hash=bytes(48))
    for label in (b"master secret", b"key expansion", b"client finished",
                  b"server finished", b"extended master secret"):
        with pytest.raises(ValueError):
            prf12.export_keying_material("sha256", MASTER, CLIENT_RANDOM, SERVER_RANDOM,
                                         label, None, 16)
    with pytest.raises(ValueError):
        prf12.export_keying_material("sha256", MASTER, CLIENT_RANDOM, SERVER_RANDOM,
                                     b"EXPERIMENTAL", bytes(65536), 16)
    with pytest.raises(ValueError):
        prf12.derive_key_block(TLS13_SUITES[CipherSuite.TLS_AES_128_GCM_SHA256], MASTER,
                               CLIENT_RANDOM, SERVER_RANDOM)


@pytest.mark.parametrize("hash_name", ["sha256", "sha384"])
@pytest.mark.parametrize("secret_len", [0, 1, 48, 64, 128, 129, 200])
def test_p_hash_matches_rfc5246_definition(hash_name: str, secret_len: int) -> None:
    """mac.p_hash (the secret padded once) against P_hash written as RFC 5246 §5 says,
    over hmac.digest, for secrets shorter and longer than the hash block."""
    import hmac as std_hmac

    from tlsmith.crypto.mac import p_hash

    secret = bytes(range(secret_len % 256)) + b"s" * max(0, secret_len - 256)
    seed = b"label" + b"seed" * 9
    out, a = b"", seed
    while len(out) < 150:
        a = std_hmac.digest(secret, a, hash_name)
        out += std_hmac.digest(secret, a + seed, hash_name)
    for length in (0, 1, 12, 32, 48, 100, 150):
        assert p_hash(hash_name, secret, seed, length) == out[:length]

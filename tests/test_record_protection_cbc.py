"""TLS 1.2 CBC record protection (tlsmith.record.protection_cbc): MAC-then-encrypt
(RFC 5246 §6.2.3.1-6.2.3.2) and encrypt-then-MAC (RFC 7366 §3).

Oracles: records built in this file step by step from the RFC text on ``cryptography``'s
AES-CBC and the standard library's HMAC; and a real TLS 1.2 session of OpenSSL (through
the ``ssl`` module, in memory) whose records we decrypt with keys from our PRF and into
which we inject records of our own.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.x509.oid import NameOID

from tlsmith.codec.enums import CipherSuite, ContentType
from tlsmith.crypto import prf12
from tlsmith.crypto.kx import deterministic_random
from tlsmith.crypto.suites import TLS12_SUITES, TLS13_SUITES, SuiteInfo
from tlsmith.errors import BadRecordMac, InternalError, RecordOverflow
from tlsmith.record.framing import MAX_CIPHERTEXT_12, MAX_PLAINTEXT, Record, RecordReader
from tlsmith.record.protection import RecordDecrypter, RecordEncrypter
from tlsmith.record.protection_cbc import BAD_RECORD, TLS12CbcDecrypter, TLS12CbcEncrypter

CT = ContentType
CBC = [s for s in TLS12_SUITES.values() if s.cipher == "cbc"]
MODES = [pytest.param(False, id="MtE"), pytest.param(True, id="EtM")]


def keys(suite: SuiteInfo) -> tuple[bytes, bytes]:
    return bytes(range(1, suite.key_len + 1)), bytes(range(0x40, 0x40 + suite.mac_key_len))


def mac_len(suite: SuiteInfo) -> int:
    assert suite.mac_name is not None
    return hashlib.new(suite.mac_name).digest_size


class RecordingRandom:
    """A reproducible random source that remembers what it handed out."""

    def __init__(self, seed: bytes = b"cbc") -> None:
        self._random = deterministic_random(seed)
        self.drawn: list[bytes] = []

    def __call__(self, n: int) -> bytes:
        data = self._random(n)
        self.drawn.append(data)
        return data


def pair(suite: SuiteInfo, etm: bool, seq: int = 0,
         random: Callable[[int], bytes] = os.urandom
         ) -> tuple[TLS12CbcEncrypter, TLS12CbcDecrypter]:
    key, mac_key = keys(suite)
    return (TLS12CbcEncrypter(suite, key, mac_key, encrypt_then_mac=etm, random=random, seq=seq),
            TLS12CbcDecrypter(suite, key, mac_key, encrypt_then_mac=etm, seq=seq))


def decrypter(suite: SuiteInfo, etm: bool, seq: int = 0) -> TLS12CbcDecrypter:
    return pair(suite, etm, seq)[1]


def parse(wire: bytes) -> Record:
    reader = RecordReader()
    reader.feed(wire)
    rec = reader.next_record()
    assert rec is not None and reader.buffered() == 0
    return rec


# -- the independent construction, straight from the RFCs ----------------------------------

def ref_mac(suite: SuiteInfo, mac_key: bytes, data: bytes) -> bytes:
    assert suite.mac_name is not None
    return hmac.new(mac_key, data, suite.mac_name).digest()


def ref_cbc(key: bytes, iv: bytes, plaintext: bytes) -> bytes:
    assert len(plaintext) % 16 == 0
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return enc.update(plaintext) + enc.finalize()


def mac_prefix(seq: int, content_type: int, version: int, length: int) -> bytes:
    # RFC 5246 §6.2.3.1: seq_num + TLSCompressed.type + .version + .length
    return (seq.to_bytes(8, "big") + bytes([content_type]) + version.to_bytes(2, "big")
            + length.to_bytes(2, "big"))


def ref_mte(suite: SuiteInfo, seq: int, content_type: int, content: bytes, iv: bytes, *,
            version: int = 0x0303, pad_len: int | None = None, pad: bytes | None = None,
            tag: bytes | None = None) -> bytes:
    """RFC 5246 §6.2.3.2 GenericBlockCipher: IV + CBC(content + MAC + padding +
    padding_length). Returns the whole record."""
    key, mac_key = keys(suite)
    if tag is None:
        tag = ref_mac(suite, mac_key, mac_prefix(seq, content_type, version, len(content))
                      + content)
    if pad is None:
        if pad_len is None:
            pad_len = (-(len(content) + len(tag) + 1)) % 16
        pad = bytes([pad_len]) * (pad_len + 1)
    fragment = iv + ref_cbc(key, iv, content + tag + pad)
    return bytes([content_type]) + version.to_bytes(2, "big") + len(fragment).to_bytes(
        2, "big") + fragment


def ref_etm(suite: SuiteInfo, seq: int, content_type: int, content: bytes, iv: bytes, *,
            version: int = 0x0303, pad_len: int | None = None, pad: bytes | None = None,
            tag: bytes | None = None) -> bytes:
    """RFC 7366 §3: IV + CBC(content + padding + padding_length) + MAC(seq + type +
    version + len(IV + C) + IV + C). Returns the whole record."""
    key, mac_key = keys(suite)
    if pad is None:
        if pad_len is None:
            pad_len = (-(len(content) + 1)) % 16
        pad = bytes([pad_len]) * (pad_len + 1)
    encrypted = iv + ref_cbc(key, iv, content + pad)
    if tag is None:
        tag = ref_mac(suite, mac_key, mac_prefix(seq, content_type, version, len(encrypted))
                      + encrypted)
    fragment = encrypted + tag
    return bytes([content_type]) + version.to_bytes(2, "big") + len(fragment).to_bytes(
        2, "big") + fragment


def ref(etm: bool) -> Callable[..., bytes]:
    return ref_etm if etm else ref_mte


# -- round trips and the independent construction ------------------------------------------

@pytest.mark.parametrize("etm", MODES)
@pytest.mark.parametrize("suite", CBC, ids=lambda s: s.name)
def test_cbc_round_trip(suite: SuiteInfo, etm: bool) -> None:
    enc, dec = pair(suite, etm)
    m = mac_len(suite)
    items = [(CT.HANDSHAKE, b"\x14\x00\x00\x0c" + bytes(12)), (CT.APPLICATION_DATA, b""),
             (CT.ALERT, b"\x01\x00"), (CT.APPLICATION_DATA, bytes(range(256)) * 3),
             (CT.APPLICATION_DATA, b"x" * 15), (CT.APPLICATION_DATA, b"y" * 16),
             (CT.APPLICATION_DATA, os.urandom(MAX_PLAINTEXT))]
    for i, (content_type, data) in enumerate(items):
        wire = enc.protect(content_type, data)
        assert wire[0] == content_type and wire[1:3] == b"\x03\x03"
        n = len(data)
        # EtM: IV + CBC(content + pad) + MAC; MtE: IV + CBC(content + MAC + pad).
        expected = 16 + (n // 16 + 1) * 16 + m if etm else 16 + ((n + m) // 16 + 1) * 16
        assert len(wire) == 5 + expected == 5 + int.from_bytes(wire[3:5], "big")
        assert expected <= MAX_CIPHERTEXT_12
        assert dec.unprotect(parse(wire)) == (content_type, data)
        assert enc.seq == dec.seq == i + 1


@pytest.mark.parametrize("etm", MODES)
@pytest.mark.parametrize("suite", CBC, ids=lambda s: s.name)
def test_cbc_matches_the_rfc_construction(suite: SuiteInfo, etm: bool) -> None:
    """Several records in a row (the CBC context lives across records), each equal to a
    fresh CBC(IV) + HMAC built here from RFC 5246 §6.2.3 / RFC 7366 §3."""
    random = RecordingRandom()
    enc = pair(suite, etm, seq=5, random=random)[0]
    items = [(CT.APPLICATION_DATA, b"GET / HTTP/1.1\r\n\r\n"), (CT.HANDSHAKE, bytes(32)),
             (CT.ALERT, b"\x01\x00"), (CT.APPLICATION_DATA, b"")]
    for i, (content_type, data) in enumerate(items):
        wire = enc.protect(content_type, data)
        iv = random.drawn[i]
        assert len(iv) == 16 and wire[5:21] == iv  # RFC 5246 §6.2.3.2: explicit IV
        assert wire == ref(etm)(suite, 5 + i, content_type, data, iv)


def test_cbc_pinned_records() -> None:
    """One MtE and one EtM record spelled out byte by byte: the MAC input, the padded
    plaintext and the CBC step."""
    suite = TLS12_SUITES[CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256]
    key, mac_key = keys(suite)
    iv = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
    data = b"hello"
    # MtE: MAC(seq 7, type 23, 0x0303, length 5, "hello"); 5 + 32 = 37, pad 10 -> 48 bytes.
    mac_input = bytes.fromhex("0000000000000007" "17" "0303" "0005") + data
    tag = hmac.new(mac_key, mac_input, "sha256").digest()
    plaintext = data + tag + bytes([10]) * 11
    assert len(plaintext) == 48
    ct = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor().update(plaintext)
    mte = bytes.fromhex("170303") + (16 + 48).to_bytes(2, "big") + iv + ct
    enc = TLS12CbcEncrypter(suite, key, mac_key, encrypt_then_mac=False,
                            random=lambda n: iv, seq=7)
    assert enc.protect(CT.APPLICATION_DATA, data) == mte
    # EtM: CBC("hello" + 11 x 0x0a), then MAC(seq 7, type 23, 0x0303, length 32, IV + C).
    ct = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor().update(
        data + bytes([10]) * 11)
    mac_input = bytes.fromhex("0000000000000007" "17" "0303" "0020") + iv + ct
    tag = hmac.new(mac_key, mac_input, "sha256").digest()
    etm = bytes.fromhex("170303") + (16 + 16 + 32).to_bytes(2, "big") + iv + ct + tag
    enc = TLS12CbcEncrypter(suite, key, mac_key, encrypt_then_mac=True,
                            random=lambda n: iv, seq=7)
    assert enc.protect(CT.APPLICATION_DATA, data) == etm
    for wire, mode in ((mte, False), (etm, True)):
        assert decrypter(suite, mode, seq=7).unprotect(parse(wire)) == (
            CT.APPLICATION_DATA, data)


@pytest.mark.parametrize("etm", MODES)
@pytest.mark.parametrize("suite", CBC, ids=lambda s: s.name)
def test_cbc_decrypts_rfc_records_with_any_padding_length(suite: SuiteInfo, etm: bool) -> None:
    # RFC 5246 §6.2.3.2: padding may be any length up to 255 that fills whole blocks.
    data = b"some content"
    base = len(data) + (0 if etm else mac_len(suite)) + 1
    minimal = (-base) % 16
    dec = decrypter(suite, etm)
    for i, pad_len in enumerate(range(minimal, 256, 16)):
        wire = ref(etm)(suite, i, CT.APPLICATION_DATA, data, os.urandom(16), pad_len=pad_len)
        assert dec.unprotect(parse(wire)) == (CT.APPLICATION_DATA, data)


def test_cbc_fresh_random_iv_per_record() -> None:
    suite = CBC[0]
    enc, dec = pair(suite, False)
    a = enc.protect(CT.APPLICATION_DATA, b"same")
    b = enc.protect(CT.APPLICATION_DATA, b"same")
    assert a[5:21] != b[5:21] and a[21:] != b[21:]
    assert dec.unprotect(parse(a))[1] == dec.unprotect(parse(b))[1] == b"same"


# -- tampering -----------------------------------------------------------------------------

@pytest.mark.parametrize("etm", MODES)
@pytest.mark.parametrize("suite", CBC, ids=lambda s: s.name)
def test_cbc_every_bit_flip_is_bad_record_mac(suite: SuiteInfo, etm: bool) -> None:
    enc, _ = pair(suite, etm)
    rec = parse(enc.protect(CT.HANDSHAKE, b"\x14\x00\x00\x01x"))
    fragment = bytes(rec.fragment)
    for i in range(len(fragment) * 8):  # IV, ciphertext and (EtM) MAC
        bad = bytearray(fragment)
        bad[i // 8] ^= 1 << (i % 8)
        with pytest.raises(BadRecordMac) as exc:
            decrypter(suite, etm).unprotect(Record(CT.HANDSHAKE, 0x0303, bytes(bad)))
        assert exc.value.message == BAD_RECORD
    # Type, version and sequence number are in the MAC (RFC 5246 §6.2.3.1, RFC 7366 §3).
    for wrong in (Record(CT.ALERT, 0x0303, fragment), Record(CT.HANDSHAKE, 0x0302, fragment)):
        with pytest.raises(BadRecordMac):
            decrypter(suite, etm).unprotect(wrong)
    with pytest.raises(BadRecordMac):
        decrypter(suite, etm, seq=1).unprotect(rec)
    assert decrypter(suite, etm).unprotect(rec) == (CT.HANDSHAKE, b"\x14\x00\x00\x01x")


def _messages(suite: SuiteInfo, etm: bool, wires: list[bytes]) -> set[str]:
    messages = set()
    for wire in wires:
        with pytest.raises(BadRecordMac) as exc:
            decrypter(suite, etm).unprotect(parse(wire))
        messages.add(str(exc.value))
    return messages


@pytest.mark.parametrize("suite", CBC, ids=lambda s: s.name)
def test_cbc_mte_bad_padding_and_bad_mac_are_indistinguishable(suite: SuiteInfo) -> None:
    mac_key = keys(suite)[1]
    m = mac_len(suite)
    iv = bytes(range(16))
    data = b"attack at dawn"
    ct = CT.APPLICATION_DATA
    pad_len = (-(len(data) + m + 1)) % 16
    good_tag = ref_mac(suite, mac_key, mac_prefix(0, ct, 0x0303, len(data)) + data)
    assert pad_len > 0
    wires = [
        # Padding bytes that do not repeat padding_length (RFC 5246 §6.2.3.2).
        ref_mte(suite, 0, ct, data, iv, pad=bytes([pad_len ^ 1]) * pad_len + bytes([pad_len])),
        # padding_length larger than the record.
        ref_mte(suite, 0, ct, data, iv, pad=bytes([255]) * (pad_len + 1)),
        # Good padding, wrong MAC.
        ref_mte(suite, 0, ct, data, iv, tag=bytes(b ^ 0x80 for b in good_tag)),
        # Good padding, MAC under the wrong sequence number.
        ref_mte(suite, 1, ct, data, iv),
    ]
    # Bad padding, but the MAC is right for "zero-length padding": still rejected.
    content = b"z" * ((-(m + 1)) % 16 + 16)
    tag = ref_mac(suite, mac_key, mac_prefix(0, ct, 0x0303, len(content)) + content)
    assert tag[-1] != 7
    wires.append(ref_mte(suite, 0, ct, content, iv, tag=tag, pad=b"\x07"))
    assert _messages(suite, False, wires) == {f"{BAD_RECORD} (alert bad_record_mac)"}


@pytest.mark.parametrize("suite", CBC, ids=lambda s: s.name)
def test_cbc_etm_bad_padding_and_bad_mac_are_indistinguishable(suite: SuiteInfo) -> None:
    iv = bytes(range(16))
    data = b"attack at dawn"  # 14 bytes: pad_len 1
    ct = CT.APPLICATION_DATA
    wires = [
        ref_etm(suite, 0, ct, data, iv, pad=b"\x02\x01"),  # valid MAC, bad padding bytes
        ref_etm(suite, 0, ct, data, iv, pad=b"\x01\xff"),  # valid MAC, padding too long
        ref_etm(suite, 0, ct, data, iv, tag=bytes(mac_len(suite))),  # bad MAC
        ref_etm(suite, 3, ct, data, iv),  # MAC under another sequence number
    ]
    assert _messages(suite, True, wires) == {f"{BAD_RECORD} (alert bad_record_mac)"}


@pytest.mark.parametrize("etm", MODES)
@pytest.mark.parametrize("suite", CBC, ids=lambda s: s.name)
def test_cbc_truncated_and_misaligned_records(suite: SuiteInfo, etm: bool) -> None:
    enc, _ = pair(suite, etm)
    fragment = bytes(parse(enc.protect(CT.APPLICATION_DATA, b"x" * 40)).fragment)
    m = mac_len(suite)
    sizes = {0, 1, 15, 16, 17, 31, 32, 33, len(fragment) - 1, len(fragment) - 16,
             len(fragment) + 1}
    if etm:
        sizes |= {16 + m, 16 + 15 + m, 16 + 16 + m - 1}
    else:
        sizes |= {16 + m, 16 + (m + 1) // 16 * 16}
    for size in sorted(sizes):
        if size == len(fragment):
            continue
        cut = (fragment + bytes(16))[:size]
        with pytest.raises(BadRecordMac):
            decrypter(suite, etm).unprotect(Record(CT.APPLICATION_DATA, 0x0303, cut))
    # The shortest legal record: empty content.
    shortest = enc.protect(CT.APPLICATION_DATA, b"")
    expected = 16 + 16 + m if etm else 16 + (m + 1 + 15) // 16 * 16
    assert len(shortest) == 5 + expected
    assert decrypter(suite, etm, seq=1).unprotect(parse(shortest)) == (CT.APPLICATION_DATA, b"")


@pytest.mark.parametrize("etm", MODES)
def test_cbc_oversize(etm: bool) -> None:
    suite = TLS12_SUITES[CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384]
    with pytest.raises(RecordOverflow):
        decrypter(suite, etm).unprotect(
            Record(CT.APPLICATION_DATA, 0x0303, bytes(MAX_CIPHERTEXT_12 + 1)))
    big, _ = pair(suite, etm)
    big.max_plaintext = MAX_PLAINTEXT + 1
    rec = parse(big.protect(CT.APPLICATION_DATA, bytes(MAX_PLAINTEXT + 1)))
    # Authentic, but decrypts to more than 2^14 bytes (RFC 5246 §6.2.1).
    with pytest.raises(RecordOverflow):
        decrypter(suite, etm).unprotect(rec)
    with pytest.raises(InternalError):
        pair(suite, etm)[0].protect(CT.APPLICATION_DATA, bytes(MAX_PLAINTEXT + 1))


# -- sequence numbers, construction, interface ---------------------------------------------

@pytest.mark.parametrize("etm", MODES)
def test_cbc_sequence_numbers(etm: bool) -> None:
    suite = TLS12_SUITES[CipherSuite.TLS_RSA_WITH_AES_128_CBC_SHA]
    enc, dec = pair(suite, etm)
    wires = [enc.protect(CT.APPLICATION_DATA, bytes([i])) for i in range(3)]
    # Out of order: record 1 under seq 0 fails.
    with pytest.raises(BadRecordMac):
        decrypter(suite, etm).unprotect(parse(wires[1]))
    assert [dec.unprotect(parse(w))[1] for w in wires] == [b"\x00", b"\x01", b"\x02"]
    assert dec.seq == enc.seq == 3
    # RFC 5246 §6.1: the 64-bit sequence number never wraps.
    last, last_dec = pair(suite, etm, seq=2**64 - 1)
    wire = last.protect(CT.APPLICATION_DATA, b"x")
    assert last_dec.unprotect(parse(wire)) == (CT.APPLICATION_DATA, b"x")
    with pytest.raises(InternalError):
        last.protect(CT.APPLICATION_DATA, b"x")
    with pytest.raises(InternalError):
        decrypter(suite, etm, seq=2**64).unprotect(parse(wire))


def test_cbc_constructor_checks() -> None:
    suite = TLS12_SUITES[CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256]
    key, mac_key = keys(suite)
    aead = TLS12_SUITES[CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]
    tls13 = TLS13_SUITES[CipherSuite.TLS_AES_128_GCM_SHA256]
    for bad_suite in (aead, tls13):
        with pytest.raises(ValueError):
            TLS12CbcDecrypter(bad_suite, key, mac_key, encrypt_then_mac=False)
    for k, mk in ((key + b"x", mac_key), (key, mac_key[:-1]), (key, b"")):
        with pytest.raises(ValueError):
            TLS12CbcEncrypter(suite, k, mk, encrypt_then_mac=True, random=os.urandom)
    short = TLS12CbcEncrypter(suite, key, mac_key, encrypt_then_mac=True,
                              random=lambda n: bytes(n - 1))
    with pytest.raises(InternalError):
        short.protect(CT.APPLICATION_DATA, b"x")
    assert short.seq == 0
    enc = TLS12CbcEncrypter(suite, key, mac_key, encrypt_then_mac=True, random=os.urandom,
                            legacy_version=0x0302)
    wire = enc.protect(CT.APPLICATION_DATA, b"v")
    assert wire[1:3] == b"\x03\x02"
    assert decrypter(suite, True).unprotect(parse(wire)) == (CT.APPLICATION_DATA, b"v")
    assert "encrypt-then-MAC" in repr(enc) and key.hex() not in repr(enc)
    assert "MAC-then-encrypt" in repr(decrypter(suite, False))


def test_cbc_implements_the_record_protocols() -> None:
    suite = CBC[0]
    enc, dec = pair(suite, True)
    encrypters: list[RecordEncrypter] = [enc]
    decrypters: list[RecordDecrypter] = [dec]
    assert encrypters[0].max_plaintext == MAX_PLAINTEXT
    assert encrypters[0].max_ciphertext == decrypters[0].max_ciphertext == MAX_CIPHERTEXT_12
    # A stream of records through RecordReader with the decrypter's limit.
    reader = RecordReader(dec.max_ciphertext)
    payloads = [os.urandom(n) for n in (0, 1, 100, MAX_PLAINTEXT, 5000)]
    reader.feed(b"".join(enc.protect(CT.APPLICATION_DATA, p) for p in payloads))
    got = []
    while (rec := reader.next_record()) is not None:
        got.append(dec.unprotect(rec)[1])
    assert got == payloads


# -- against OpenSSL -----------------------------------------------------------------------

SSL_OP_NO_EXTENDED_MASTER_SECRET = 0x1  # OpenSSL 3: SSL_OP_BIT(0)
SSL_OP_NO_ENCRYPT_THEN_MAC = 0x80000  # OpenSSL: SSL_OP_BIT(19)


@dataclass
class Server:
    cert: Path
    key_path: Path
    key: rsa.RSAPrivateKey


@pytest.fixture(scope="module")
def server_cert(tmp_path_factory: pytest.TempPathFactory) -> Server:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    d = tmp_path_factory.mktemp("cbc-openssl")
    (d / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return Server(d / "cert.pem", d / "key.pem", key)


def _records(stream: bytes) -> list[Record]:
    reader = RecordReader()
    reader.feed(stream)
    out = []
    while (rec := reader.next_record()) is not None:
        out.append(Record(rec.content_type, rec.legacy_version, bytes(rec.fragment)))
    assert reader.buffered() == 0
    return out


def _handshake_messages(records: list[Record]) -> list[bytes]:
    """The plaintext handshake messages before ChangeCipherSpec, whole (header + body)."""
    data = b""
    for rec in records:
        if rec.content_type == CT.CHANGE_CIPHER_SPEC:
            break
        assert rec.content_type == CT.HANDSHAKE
        data += bytes(rec.fragment)
    messages = []
    while data:
        size = 4 + int.from_bytes(data[1:4], "big")
        messages.append(data[:size])
        data = data[size:]
    return messages


def _server_hello_extensions(server_hello: bytes) -> tuple[int, set[int]]:
    body = server_hello[4:]
    pos = 2 + 32
    pos += 1 + body[pos]  # session_id
    suite = int.from_bytes(body[pos:pos + 2], "big")
    pos += 3  # cipher_suite, compression_method
    end = pos + 2 + int.from_bytes(body[pos:pos + 2], "big")
    pos += 2
    types = set()
    while pos < end:
        types.add(int.from_bytes(body[pos:pos + 2], "big"))
        pos += 4 + int.from_bytes(body[pos + 2:pos + 4], "big")
    return suite, types


OPENSSL_CASES = [
    ("AES128-SHA", CipherSuite.TLS_RSA_WITH_AES_128_CBC_SHA, True, True),
    ("AES128-SHA", CipherSuite.TLS_RSA_WITH_AES_128_CBC_SHA, False, False),
    ("AES256-SHA256", CipherSuite.TLS_RSA_WITH_AES_256_CBC_SHA256, False, True),
    ("AES256-SHA256", CipherSuite.TLS_RSA_WITH_AES_256_CBC_SHA256, True, False),
    ("ECDHE-RSA-AES256-SHA384", CipherSuite.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384, False, True),
    ("ECDHE-RSA-AES256-SHA384", CipherSuite.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384, True, True),
    ("ECDHE-RSA-AES128-SHA", CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, True, True),
]


@pytest.mark.parametrize(("openssl_name", "suite_id", "etm", "ems"), OPENSSL_CASES,
                         ids=[f"{c[0]}-{'EtM' if c[2] else 'MtE'}-{'EMS' if c[3] else 'noEMS'}"
                              for c in OPENSSL_CASES])
def test_cbc_openssl_session(server_cert: Server, tmp_path: Path, openssl_name: str,
                             suite_id: CipherSuite, etm: bool, ems: bool) -> None:
    """A TLS 1.2 session between two OpenSSL endpoints (``ssl`` module, memory BIOs).
    With the master secret from its key log we derive the key block (prf12), decrypt
    both Finished messages and the application data, check verify_data (and, for RSA key
    exchange, the (extended) master secret from the pre-master secret), and finally make
    OpenSSL accept records that our encrypter wrote."""
    suite = TLS12_SUITES[suite_id]
    keylog = tmp_path / "keylog"
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(server_cert.cert, server_cert.key_path)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE
    for ctx in (server_ctx, client_ctx):
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        try:
            ctx.set_ciphers(f"{openssl_name}:@SECLEVEL=1")
        except ssl.SSLError:
            pytest.skip(f"this OpenSSL build has no {openssl_name}")
        ctx.options |= ssl.OP_NO_TICKET | ssl.OP_NO_COMPRESSION
        if not etm:
            ctx.options |= SSL_OP_NO_ENCRYPT_THEN_MAC
        if not ems:
            ctx.options |= SSL_OP_NO_EXTENDED_MASTER_SECRET
    client_ctx.keylog_filename = str(keylog)

    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    c2s, s2c = bytearray(), bytearray()

    def pump() -> None:
        if data := c_out.read():
            c2s.extend(data)
            s_in.write(data)
        if data := s_out.read():
            s2c.extend(data)
            c_in.write(data)

    done = [False, False]
    for _ in range(10):
        for i, end in enumerate((client, server)):
            if not done[i]:
                try:
                    end.do_handshake()
                    done[i] = True
                except ssl.SSLWantReadError:
                    pass
        pump()
    assert all(done)
    client_data, server_data = b"ping " * 10, os.urandom(20000)  # the latter: 2 records
    client.write(client_data)
    server.write(server_data)
    pump()
    assert server.read(1000) == client_data
    got = b""
    while len(got) < len(server_data):
        got += client.read(len(server_data))
    assert got == server_data

    c_records, s_records = _records(bytes(c2s)), _records(bytes(s2c))
    c_msgs, s_msgs = _handshake_messages(c_records), _handshake_messages(s_records)
    client_hello, server_hello, client_key_exchange = c_msgs[0], s_msgs[0], c_msgs[-1]
    assert (client_hello[0], server_hello[0], client_key_exchange[0]) == (1, 2, 16)
    negotiated, extensions = _server_hello_extensions(server_hello)
    assert negotiated == suite_id
    assert (0x16 in extensions, 0x17 in extensions) == (etm, ems)  # RFC 7366, RFC 7627
    client_random, server_random = client_hello[6:38], server_hello[6:38]
    line = next(x for x in keylog.read_text().splitlines() if x.startswith("CLIENT_RANDOM"))
    _, logged_random, logged_master = line.split()
    assert bytes.fromhex(logged_random) == client_random
    master = bytes.fromhex(logged_master)

    transcript = b"".join(c_msgs[:1] + s_msgs + c_msgs[1:])
    hash_name = suite.hash_name
    if suite.key_exchange == "rsa":
        # RFC 5246 §7.4.7.1: EncryptedPreMasterSecret, RSAES-PKCS1-v1_5.
        encrypted = client_key_exchange[6:]
        assert len(encrypted) == int.from_bytes(client_key_exchange[4:6], "big")
        pms = server_cert.key.decrypt(encrypted, padding.PKCS1v15())
        if ems:  # RFC 7627 §4: session_hash over ClientHello ... ClientKeyExchange
            session_hash = hashlib.new(hash_name, transcript).digest()
            assert prf12.extended_master_secret(hash_name, pms, session_hash) == master
        else:
            assert prf12.master_secret(hash_name, pms, client_random, server_random) == master

    kb = prf12.derive_key_block(suite, master, client_random, server_random)
    from_client = TLS12CbcDecrypter(suite, kb.client_write_key, kb.client_write_mac_key,
                                    encrypt_then_mac=etm)
    from_server = TLS12CbcDecrypter(suite, kb.server_write_key, kb.server_write_mac_key,
                                    encrypt_then_mac=etm)
    c_protected = c_records[c_records.index(next(
        r for r in c_records if r.content_type == CT.CHANGE_CIPHER_SPEC)) + 1:]
    s_protected = s_records[s_records.index(next(
        r for r in s_records if r.content_type == CT.CHANGE_CIPHER_SPEC)) + 1:]

    # RFC 5246 §7.4.9: Finished is the first record under the new keys (seq 0).
    content_type, client_finished = from_client.unprotect(c_protected[0])
    assert content_type == CT.HANDSHAKE and client_finished[:4] == b"\x14\x00\x00\x0c"
    assert client_finished[4:] == prf12.finished_verify_data(
        hash_name, master, client=True,
        handshake_hash=hashlib.new(hash_name, transcript).digest())
    content_type, server_finished = from_server.unprotect(s_protected[0])
    assert content_type == CT.HANDSHAKE and server_finished[:4] == b"\x14\x00\x00\x0c"
    assert server_finished[4:] == prf12.finished_verify_data(
        hash_name, master, client=False,
        handshake_hash=hashlib.new(hash_name, transcript + client_finished).digest())

    assert [from_client.unprotect(r) for r in c_protected[1:]] == [
        (CT.APPLICATION_DATA, client_data)]
    assert b"".join(from_server.unprotect(r)[1] for r in s_protected[1:]) == server_data
    assert all(r.content_type == CT.APPLICATION_DATA for r in s_protected[1:])

    # Our records, with the client's keys and next sequence number, are accepted by OpenSSL.
    ours = TLS12CbcEncrypter(suite, kb.client_write_key, kb.client_write_mac_key,
                             encrypt_then_mac=etm, random=os.urandom, seq=from_client.seq)
    messages = [b"from tlsmith", b"", os.urandom(MAX_PLAINTEXT), b"y" * 33]
    s_in.write(b"".join(ours.protect(CT.APPLICATION_DATA, m) for m in messages))
    received = b""
    expected = b"".join(messages)
    while len(received) < len(expected):
        received += server.read(len(expected))
    assert received == expected
    server_back = os.urandom(100)
    server.write(server_back)
    assert [from_server.unprotect(r) for r in _records(s_out.read())] == [
        (CT.APPLICATION_DATA, server_back)]

from __future__ import annotations

import struct

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305

from tlsmith.codec.enums import CipherSuite, ContentType
from tlsmith.crypto.suites import TLS12_SUITES, TLS13_SUITES, SuiteInfo
from tlsmith.errors import BadRecordMac, InternalError, RecordOverflow, UnexpectedMessage
from tlsmith.record.framing import (
    MAX_CIPHERTEXT_12,
    MAX_CIPHERTEXT_13,
    MAX_PLAINTEXT,
    Record,
    RecordReader,
)
from tlsmith.record.protection import (
    Padding,
    PlaintextDecrypter,
    PlaintextEncrypter,
    RecordDecrypter,
    RecordEncrypter,
    TLS12AeadDecrypter,
    TLS12AeadEncrypter,
    TLS13Decrypter,
    TLS13Encrypter,
)

CT = ContentType
TLS13 = list(TLS13_SUITES.values())
TLS12 = [s for s in TLS12_SUITES.values() if s.cipher == "aead"]


def key_iv(suite: SuiteInfo) -> tuple[bytes, bytes]:
    return bytes(range(1, suite.key_len + 1)), bytes(range(0xA0, 0xA0 + suite.iv_len))


def pair13(suite: SuiteInfo, padding: Padding = 0) -> tuple[TLS13Encrypter, TLS13Decrypter]:
    key, iv = key_iv(suite)
    return TLS13Encrypter(suite, key, iv, padding), TLS13Decrypter(suite, key, iv)


def parse(wire: bytes) -> Record:
    reader = RecordReader()
    reader.feed(wire)
    rec = reader.next_record()
    assert rec is not None and reader.buffered() == 0
    return rec


def raw_aead(suite: SuiteInfo, key: bytes) -> AESGCM | ChaCha20Poly1305 | AESCCM:
    if suite.aead == "aes-gcm":
        return AESGCM(key)
    if suite.aead == "chacha20-poly1305":
        return ChaCha20Poly1305(key)
    return AESCCM(key, tag_length=suite.tag_len)


def test_protection_implementations_satisfy_the_protocols() -> None:
    suite = TLS13[0]
    key, iv = key_iv(suite)
    s12 = TLS12[0]
    k12, iv12 = key_iv(s12)
    encrypters: list[RecordEncrypter] = [
        PlaintextEncrypter(), TLS13Encrypter(suite, key, iv), TLS12AeadEncrypter(s12, k12, iv12)]
    decrypters: list[RecordDecrypter] = [
        PlaintextDecrypter(), TLS13Decrypter(suite, key, iv), TLS12AeadDecrypter(s12, k12, iv12)]
    assert [e.seq for e in encrypters] == [0, 0, 0]
    assert [d.max_ciphertext for d in decrypters] == [
        MAX_PLAINTEXT, MAX_CIPHERTEXT_13, MAX_CIPHERTEXT_12]
    assert all(e.max_plaintext == MAX_PLAINTEXT for e in encrypters)


# -- plaintext -------------------------------------------------------------------------

def test_protection_plaintext_round_trip_and_version() -> None:
    enc = PlaintextEncrypter(0x0301)
    wire = enc.protect(CT.HANDSHAKE, b"\x01\x00\x00\x00")
    assert wire == bytes.fromhex("160301000401000000")
    assert enc.seq == 1
    enc.legacy_version = 0x0303
    assert enc.protect(CT.ALERT, memoryview(b"\x02\x28"))[:3] == b"\x15\x03\x03"
    assert PlaintextEncrypter().legacy_version == 0x0303
    dec = PlaintextDecrypter()
    assert dec.unprotect(parse(wire)) == (CT.HANDSHAKE, b"\x01\x00\x00\x00")
    assert dec.seq == 1


def test_protection_plaintext_refuses_application_data() -> None:
    with pytest.raises(InternalError):
        PlaintextEncrypter().protect(CT.APPLICATION_DATA, b"secret")
    with pytest.raises(UnexpectedMessage):
        PlaintextDecrypter().unprotect(Record(CT.APPLICATION_DATA, 0x0303, b"secret"))


def test_protection_plaintext_limits() -> None:
    with pytest.raises(InternalError):
        PlaintextEncrypter().protect(CT.HANDSHAKE, bytes(MAX_PLAINTEXT + 1))
    dec = PlaintextDecrypter()
    dec.unprotect(Record(CT.HANDSHAKE, 0x0303, bytes(MAX_PLAINTEXT)))
    with pytest.raises(RecordOverflow):
        dec.unprotect(Record(CT.HANDSHAKE, 0x0303, bytes(MAX_PLAINTEXT + 1)))


# -- TLS 1.3 ---------------------------------------------------------------------------

@pytest.mark.parametrize("suite", TLS13, ids=lambda s: s.name)
def test_protection_tls13_round_trip(suite: SuiteInfo) -> None:
    enc, dec = pair13(suite)
    cases = [(CT.HANDSHAKE, b"\x14\x00\x00\x20" + bytes(32)), (CT.ALERT, b"\x01\x00"),
             (CT.APPLICATION_DATA, b""), (CT.APPLICATION_DATA, b"GET / HTTP/1.1\r\n"),
             (CT.APPLICATION_DATA, bytes(range(256)) * 64)]
    for i, (content_type, data) in enumerate(cases):
        wire = enc.protect(content_type, data)
        # RFC 8446 §5.2: outer type 23, version 0x0303, length = content + type + tag.
        assert wire[:3] == b"\x17\x03\x03"
        assert struct.unpack(">H", wire[3:5])[0] == len(data) + 1 + suite.tag_len == len(wire) - 5
        assert dec.unprotect(parse(wire)) == (content_type, data)
        assert enc.seq == dec.seq == i + 1


@pytest.mark.parametrize("suite", TLS13, ids=lambda s: s.name)
def test_protection_tls13_matches_an_independent_construction(suite: SuiteInfo) -> None:
    key, iv = key_iv(suite)
    enc = TLS13Encrypter(suite, key, iv)
    aead = raw_aead(suite, key)
    for seq in range(3):
        data = b"record %d" % seq
        wire = enc.protect(CT.APPLICATION_DATA, data)
        nonce = bytes(a ^ b for a, b in zip(iv, seq.to_bytes(12, "big"), strict=True))
        header = b"\x17\x03\x03" + (len(data) + 1 + suite.tag_len).to_bytes(2, "big")
        assert wire == header + aead.encrypt(nonce, data + b"\x17", header)


def test_protection_tls13_full_size_record() -> None:
    enc, dec = pair13(TLS13_SUITES[CipherSuite.TLS_AES_256_GCM_SHA384])
    data = bytes(MAX_PLAINTEXT)
    wire = enc.protect(CT.APPLICATION_DATA, memoryview(data))
    assert len(wire) == 5 + MAX_PLAINTEXT + 1 + 16
    assert dec.unprotect(parse(wire)) == (CT.APPLICATION_DATA, data)
    with pytest.raises(InternalError):
        enc.protect(CT.APPLICATION_DATA, bytes(MAX_PLAINTEXT + 1))


def test_protection_tls13_fixed_padding() -> None:
    enc, dec = pair13(TLS13_SUITES[CipherSuite.TLS_AES_128_GCM_SHA256], padding=100)
    wire = enc.protect(CT.HANDSHAKE, b"\x0b\x00\x00\x01\x00")
    assert len(wire) == 5 + 5 + 1 + 100 + 16
    assert dec.unprotect(parse(wire)) == (CT.HANDSHAKE, b"\x0b\x00\x00\x01\x00")
    # Padding only ever inflates the record up to the size limit (RFC 8446 §5.4).
    wire = enc.protect(CT.APPLICATION_DATA, bytes(MAX_PLAINTEXT - 10))
    assert len(wire) == 5 + MAX_PLAINTEXT + 1 + 16
    assert dec.unprotect(parse(wire)) == (CT.APPLICATION_DATA, bytes(MAX_PLAINTEXT - 10))


def test_protection_tls13_padding_policy_function() -> None:
    seen: list[int] = []

    def to_block_of_64(n: int) -> int:
        seen.append(n)
        return -(n + 1) % 64

    enc, dec = pair13(TLS13_SUITES[CipherSuite.TLS_CHACHA20_POLY1305_SHA256],
                      padding=to_block_of_64)
    for size in (0, 1, 62, 63, 64, 1000):
        wire = enc.protect(CT.APPLICATION_DATA, bytes(size))
        assert (len(wire) - 5 - 16) % 64 == 0
        assert dec.unprotect(parse(wire)) == (CT.APPLICATION_DATA, bytes(size))
    assert seen == [0, 1, 62, 63, 64, 1000]
    # Negative padding from a policy is treated as none.
    enc, dec = pair13(TLS13_SUITES[CipherSuite.TLS_CHACHA20_POLY1305_SHA256],
                      padding=lambda n: -5)
    assert len(enc.protect(CT.APPLICATION_DATA, b"abc")) == 5 + 4 + 16


def test_protection_tls13_padding_with_zero_bytes_in_content() -> None:
    enc, dec = pair13(TLS13_SUITES[CipherSuite.TLS_AES_128_GCM_SHA256], padding=7)
    data = b"ends with zeros\x00\x00\x00"
    assert dec.unprotect(parse(enc.protect(CT.APPLICATION_DATA, data))) == (
        CT.APPLICATION_DATA, data)


def test_protection_tls13_seq_changes_the_nonce() -> None:
    suite = TLS13_SUITES[CipherSuite.TLS_AES_128_GCM_SHA256]
    key, iv = key_iv(suite)
    enc = TLS13Encrypter(suite, key, iv)
    first = enc.protect(CT.APPLICATION_DATA, b"same")
    second = enc.protect(CT.APPLICATION_DATA, b"same")
    assert first != second and first[:5] == second[:5]
    # A decrypter at seq 0 cannot open record 1; one at seq 1 can.
    with pytest.raises(BadRecordMac):
        TLS13Decrypter(suite, key, iv).unprotect(parse(second))
    assert TLS13Decrypter(suite, key, iv, seq=1).unprotect(parse(second)) == (
        CT.APPLICATION_DATA, b"same")
    # Out of order delivery fails.
    dec = TLS13Decrypter(suite, key, iv)
    with pytest.raises(BadRecordMac):
        dec.unprotect(parse(second))


@pytest.mark.parametrize("suite", TLS13, ids=lambda s: s.name)
def test_protection_tls13_tamper_every_byte_is_bad_record_mac(suite: SuiteInfo) -> None:
    key, iv = key_iv(suite)
    wire = TLS13Encrypter(suite, key, iv).protect(CT.HANDSHAKE, b"\x14\x00\x00\x04abcd")
    rec = parse(wire)
    fragment = bytes(rec.fragment)
    for i in range(len(fragment)):
        bad = bytearray(fragment)
        bad[i] ^= 0x80
        with pytest.raises(BadRecordMac):
            TLS13Decrypter(suite, key, iv).unprotect(Record(rec.content_type, 0x0303, bytes(bad)))
    # The header is authenticated too (RFC 8446 §5.2 additional_data).
    with pytest.raises(BadRecordMac):
        TLS13Decrypter(suite, key, iv).unprotect(Record(rec.content_type, 0x0301, fragment))
    with pytest.raises(BadRecordMac):
        TLS13Decrypter(suite, key, iv).unprotect(Record(rec.content_type, 0x0303, fragment[:-1]))
    with pytest.raises(BadRecordMac):
        TLS13Decrypter(suite, key, iv).unprotect(Record(rec.content_type, 0x0303, b""))
    wrong_key = bytes(len(key))
    with pytest.raises(BadRecordMac):
        TLS13Decrypter(suite, wrong_key, iv).unprotect(rec)
    assert TLS13Decrypter(suite, key, iv).unprotect(rec) == (CT.HANDSHAKE, b"\x14\x00\x00\x04abcd")


def _seal13(suite: SuiteInfo, inner: bytes, seq: int = 0) -> Record:
    """A TLS 1.3 record around an arbitrary TLSInnerPlaintext (built without tlsmith)."""
    key, iv = key_iv(suite)
    nonce = bytes(a ^ b for a, b in zip(iv, seq.to_bytes(12, "big"), strict=True))
    header = b"\x17\x03\x03" + (len(inner) + suite.tag_len).to_bytes(2, "big")
    return Record(CT.APPLICATION_DATA, 0x0303, raw_aead(suite, key).encrypt(nonce, inner, header))


@pytest.mark.parametrize("suite", TLS13, ids=lambda s: s.name)
def test_protection_tls13_all_zero_plaintext_is_unexpected_message(suite: SuiteInfo) -> None:
    key, iv = key_iv(suite)
    for inner in (b"", b"\x00", bytes(50)):
        with pytest.raises(UnexpectedMessage, match="no content type"):
            TLS13Decrypter(suite, key, iv).unprotect(_seal13(suite, inner))


def test_protection_tls13_bad_inner_content_types() -> None:
    suite = TLS13_SUITES[CipherSuite.TLS_AES_128_GCM_SHA256]
    key, iv = key_iv(suite)
    # RFC 8446 §5: a protected change_cipher_spec, or an unknown type.
    for inner in (b"\x01\x14", b"data\x18", b"data\xff\x00\x00"):
        with pytest.raises(UnexpectedMessage):
            TLS13Decrypter(suite, key, iv).unprotect(_seal13(suite, inner))
    # RFC 8446 §5.4: zero-length Handshake/Alert content.
    for inner in (b"\x16", b"\x15\x00\x00"):
        with pytest.raises(UnexpectedMessage, match="empty"):
            TLS13Decrypter(suite, key, iv).unprotect(_seal13(suite, inner))
    assert TLS13Decrypter(suite, key, iv).unprotect(_seal13(suite, b"\x17\x00")) == (
        CT.APPLICATION_DATA, b"")


def test_protection_tls13_refuses_to_send_what_must_not_be_sent() -> None:
    enc, _ = pair13(TLS13_SUITES[CipherSuite.TLS_AES_128_GCM_SHA256])
    with pytest.raises(InternalError):
        enc.protect(CT.HANDSHAKE, b"")
    with pytest.raises(InternalError):
        enc.protect(CT.ALERT, b"")
    with pytest.raises(InternalError):
        enc.protect(CT.CHANGE_CIPHER_SPEC, b"\x01")
    assert enc.seq == 0


def test_protection_tls13_oversize() -> None:
    suite = TLS13_SUITES[CipherSuite.TLS_AES_128_GCM_SHA256]
    key, iv = key_iv(suite)
    # RFC 8446 §5.2: TLSCiphertext.length > 2^14 + 256.
    with pytest.raises(RecordOverflow):
        TLS13Decrypter(suite, key, iv).unprotect(
            Record(CT.APPLICATION_DATA, 0x0303, bytes(MAX_CIPHERTEXT_13 + 1)))
    # RFC 8446 §5.4: an authentic TLSInnerPlaintext longer than 2^14 + 1 (here 2^14 + 2,
    # carried in a record that is itself within 2^14 + 256).
    rec = _seal13(suite, bytes(MAX_PLAINTEXT) + b"\x17\x00")
    assert len(rec.fragment) <= MAX_CIPHERTEXT_13
    with pytest.raises(RecordOverflow):
        TLS13Decrypter(suite, key, iv).unprotect(rec)
    # 2^14 content + type is exactly at the limit.
    ok = _seal13(suite, bytes(MAX_PLAINTEXT) + b"\x17")
    assert TLS13Decrypter(suite, key, iv).unprotect(ok)[1] == bytes(MAX_PLAINTEXT)


def test_protection_tls13_record_size_limit() -> None:
    enc, dec = pair13(TLS13_SUITES[CipherSuite.TLS_AES_128_GCM_SHA256], padding=1000)
    enc.max_plaintext = dec.max_plaintext = 511  # RFC 8449 record_size_limit 512
    wire = enc.protect(CT.APPLICATION_DATA, bytes(100))
    assert len(wire) == 5 + 512 + 16  # padding clipped to the limit
    assert dec.unprotect(parse(wire)) == (CT.APPLICATION_DATA, bytes(100))
    with pytest.raises(InternalError):
        enc.protect(CT.APPLICATION_DATA, bytes(512))
    enc.max_plaintext = MAX_PLAINTEXT
    with pytest.raises(RecordOverflow):
        dec.unprotect(parse(enc.protect(CT.APPLICATION_DATA, bytes(600))))


def test_protection_tls13_outer_type_must_be_application_data() -> None:
    suite = TLS13_SUITES[CipherSuite.TLS_AES_128_GCM_SHA256]
    enc, dec = pair13(suite)
    rec = parse(enc.protect(CT.HANDSHAKE, b"\x14\x00\x00\x00"))
    for outer in (CT.HANDSHAKE, CT.ALERT, CT.CHANGE_CIPHER_SPEC):
        with pytest.raises(UnexpectedMessage):
            dec.unprotect(Record(outer, 0x0303, rec.fragment))


def test_protection_tls13_sequence_number_never_wraps() -> None:
    suite = TLS13_SUITES[CipherSuite.TLS_AES_128_GCM_SHA256]
    key, iv = key_iv(suite)
    enc = TLS13Encrypter(suite, key, iv, seq=2**64 - 1)
    dec = TLS13Decrypter(suite, key, iv, seq=2**64 - 1)
    last = enc.protect(CT.APPLICATION_DATA, b"last")
    assert dec.unprotect(parse(last)) == (CT.APPLICATION_DATA, b"last")
    assert enc.seq == dec.seq == 2**64
    # RFC 8446 §5.3: MUST rekey or terminate rather than wrap.
    with pytest.raises(InternalError, match="exhausted"):
        enc.protect(CT.APPLICATION_DATA, b"one more")
    with pytest.raises(InternalError, match="exhausted"):
        dec.unprotect(parse(last))


def test_protection_tls13_rejects_wrong_key_material() -> None:
    suite = TLS13_SUITES[CipherSuite.TLS_AES_128_GCM_SHA256]
    with pytest.raises(ValueError):
        TLS13Encrypter(suite, bytes(15), bytes(12))
    with pytest.raises(ValueError):
        TLS13Decrypter(suite, bytes(16), bytes(8))
    with pytest.raises(ValueError):
        TLS13Encrypter(TLS12[0], bytes(16), bytes(4))


def test_protection_tls13_stream_through_the_reader() -> None:
    enc, dec = pair13(TLS13_SUITES[CipherSuite.TLS_AES_128_CCM_8_SHA256])
    payloads = [bytes([i]) * (i * 997 % 5000) for i in range(1, 30)]
    stream = b"".join(enc.protect(CT.APPLICATION_DATA, p) for p in payloads)
    reader = RecordReader(max_ciphertext=dec.max_ciphertext)
    got = []
    for start in range(0, len(stream), 4096):
        reader.feed(stream[start : start + 4096])
        while (rec := reader.next_record()) is not None:
            got.append(dec.unprotect(rec)[1])
    assert got == payloads


# -- TLS 1.2 AEAD ----------------------------------------------------------------------

def pair12(suite: SuiteInfo) -> tuple[TLS12AeadEncrypter, TLS12AeadDecrypter]:
    key, iv = key_iv(suite)
    return TLS12AeadEncrypter(suite, key, iv), TLS12AeadDecrypter(suite, key, iv)


@pytest.mark.parametrize("suite", TLS12, ids=lambda s: s.name)
def test_protection_tls12_round_trip(suite: SuiteInfo) -> None:
    enc, dec = pair12(suite)
    for i, (content_type, data) in enumerate([
            (CT.HANDSHAKE, b"\x14\x00\x00\x0c" + bytes(12)), (CT.APPLICATION_DATA, b""),
            (CT.ALERT, b"\x01\x00"), (CT.APPLICATION_DATA, bytes(MAX_PLAINTEXT))]):
        wire = enc.protect(content_type, data)
        assert wire[0] == content_type and wire[1:3] == b"\x03\x03"
        assert len(wire) == 5 + suite.record_iv_len + len(data) + 16
        assert dec.unprotect(parse(wire)) == (content_type, data)
        assert enc.seq == dec.seq == i + 1


@pytest.mark.parametrize("suite", TLS12, ids=lambda s: s.name)
def test_protection_tls12_matches_an_independent_construction(suite: SuiteInfo) -> None:
    """RFC 5246 §6.2.3.3 with RFC 5288 §3 (GCM) / RFC 7905 §2 (ChaCha20) nonces, built
    directly on the AEAD primitive. (No published TLS 1.2 record vector is in the RFCs.)"""
    key, iv = key_iv(suite)
    enc = TLS12AeadEncrypter(suite, key, iv, seq=5)
    data = b"GET / HTTP/1.1\r\n\r\n"
    wire = enc.protect(CT.APPLICATION_DATA, data)
    seq = (5).to_bytes(8, "big")
    aad = seq + b"\x17\x03\x03" + len(data).to_bytes(2, "big")
    if suite.aead == "aes-gcm":
        ct = AESGCM(key).encrypt(iv + seq, data, aad)
        expected = b"\x17\x03\x03" + (8 + len(ct)).to_bytes(2, "big") + seq + ct
    else:
        nonce = bytes(a ^ b for a, b in zip(iv, bytes(4) + seq, strict=True))
        ct = ChaCha20Poly1305(key).encrypt(nonce, data, aad)
        expected = b"\x17\x03\x03" + len(ct).to_bytes(2, "big") + ct
    assert wire == expected


@pytest.mark.parametrize("suite", TLS12, ids=lambda s: s.name)
def test_protection_tls12_tampering_is_bad_record_mac(suite: SuiteInfo) -> None:
    key, iv = key_iv(suite)
    rec = parse(TLS12AeadEncrypter(suite, key, iv).protect(CT.HANDSHAKE, b"\x14\x00\x00\x01x"))
    fragment = bytes(rec.fragment)
    for i in range(len(fragment)):
        bad = bytearray(fragment)
        bad[i] ^= 0x01
        with pytest.raises(BadRecordMac):
            TLS12AeadDecrypter(suite, key, iv).unprotect(Record(CT.HANDSHAKE, 0x0303, bytes(bad)))
    # Type and version are in the additional data (RFC 5246 §6.2.3.3).
    with pytest.raises(BadRecordMac):
        TLS12AeadDecrypter(suite, key, iv).unprotect(Record(CT.ALERT, 0x0303, fragment))
    with pytest.raises(BadRecordMac):
        TLS12AeadDecrypter(suite, key, iv).unprotect(Record(CT.HANDSHAKE, 0x0302, fragment))
    # Wrong sequence number.
    with pytest.raises(BadRecordMac):
        TLS12AeadDecrypter(suite, key, iv, seq=1).unprotect(rec)
    # Too short to hold explicit nonce + tag.
    for size in (0, suite.record_iv_len + 15):
        with pytest.raises(BadRecordMac):
            TLS12AeadDecrypter(suite, key, iv).unprotect(Record(CT.HANDSHAKE, 0x0303, bytes(size)))


def test_protection_tls12_gcm_explicit_nonce_is_taken_from_the_record() -> None:
    suite = TLS12_SUITES[CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]
    key, iv = key_iv(suite)
    # A peer may use any explicit nonce (RFC 5288 §3); only the AAD uses our seq.
    explicit = bytes.fromhex("0102030405060708")
    data = b"hello"
    aad = bytes(8) + b"\x17\x03\x03" + len(data).to_bytes(2, "big")
    ct = AESGCM(key).encrypt(iv + explicit, data, aad)
    rec = Record(CT.APPLICATION_DATA, 0x0303, explicit + ct)
    assert TLS12AeadDecrypter(suite, key, iv).unprotect(rec) == (CT.APPLICATION_DATA, data)


def test_protection_tls12_oversize() -> None:
    suite = TLS12_SUITES[CipherSuite.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384]
    key, iv = key_iv(suite)
    with pytest.raises(RecordOverflow):
        TLS12AeadDecrypter(suite, key, iv).unprotect(
            Record(CT.APPLICATION_DATA, 0x0303, bytes(MAX_CIPHERTEXT_12 + 1)))
    big = TLS12AeadEncrypter(suite, key, iv)
    big.max_plaintext = MAX_PLAINTEXT + 1
    rec = parse(big.protect(CT.APPLICATION_DATA, bytes(MAX_PLAINTEXT + 1)))
    with pytest.raises(RecordOverflow):
        TLS12AeadDecrypter(suite, key, iv).unprotect(rec)
    with pytest.raises(InternalError):
        TLS12AeadEncrypter(suite, key, iv).protect(CT.APPLICATION_DATA, bytes(MAX_PLAINTEXT + 1))


def test_protection_tls12_sequence_number_never_wraps() -> None:
    suite = TLS12_SUITES[CipherSuite.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256]
    key, iv = key_iv(suite)
    enc = TLS12AeadEncrypter(suite, key, iv, seq=2**64 - 1)
    wire = enc.protect(CT.APPLICATION_DATA, b"x")
    assert TLS12AeadDecrypter(suite, key, iv, seq=2**64 - 1).unprotect(parse(wire))[1] == b"x"
    with pytest.raises(InternalError):
        enc.protect(CT.APPLICATION_DATA, b"x")
    with pytest.raises(InternalError):
        TLS12AeadDecrypter(suite, key, iv, seq=2**64).unprotect(parse(wire))


def test_protection_tls12_legacy_version_and_key_checks() -> None:
    suite = TLS12_SUITES[CipherSuite.TLS_DHE_RSA_WITH_AES_128_GCM_SHA256]
    key, iv = key_iv(suite)
    enc = TLS12AeadEncrypter(suite, key, iv, legacy_version=0x0302)
    wire = enc.protect(CT.APPLICATION_DATA, b"v")
    assert wire[1:3] == b"\x03\x02"
    assert TLS12AeadDecrypter(suite, key, iv).unprotect(parse(wire)) == (CT.APPLICATION_DATA, b"v")
    with pytest.raises(ValueError):
        TLS12AeadEncrypter(suite, key, bytes(12))
    with pytest.raises(ValueError):
        TLS12AeadDecrypter(TLS13[0], *key_iv(TLS13[0]))


@pytest.mark.parametrize(("kind", "key_len", "tag_len", "want_tag"), [
    ("aes-gcm", 16, 16, 16), ("aes-gcm", 32, 16, 16), ("chacha20-poly1305", 32, 16, 16),
    ("aes-ccm", 16, 16, 16), ("aes-ccm", 16, 8, 8), ("aes-ccm-8", 16, 16, 8),
    ("aes-ccm-8", 32, 8, 8),
])
def test_aead_kinds_seal_and_open(kind: str, key_len: int, tag_len: int, want_tag: int
                                  ) -> None:
    from tlsmith.crypto.aead import Aead

    aead = Aead(kind, bytes(range(key_len)), tag_len)
    assert aead.tag_len == want_tag
    sealed = aead.seal(bytes(12), b"hello", b"aad")
    assert len(sealed) == 5 + want_tag
    assert aead.open(bytes(12), sealed, b"aad") == b"hello"
    assert aead.raw_decrypt(bytes(12), sealed, b"aad") == b"hello"


@pytest.mark.parametrize(("kind", "key_len", "tag_len", "message"), [
    ("aes-ocb", 16, 16, "unknown AEAD 'aes-ocb'"),
    ("aes-gcm", 20, 16, r"aes-gcm: key of 20 bytes, expected \(16, 24, 32\)"),
    ("chacha20-poly1305", 16, 16, r"chacha20-poly1305: key of 16 bytes, expected \(32,\)"),
    ("aes-gcm", 16, 12, "aes-gcm: the tag is always 16 bytes, not 12"),
    ("aes-ccm", 16, 12, "aes-ccm: unsupported tag length 12"),
])
def test_aead_refuses(kind: str, key_len: int, tag_len: int, message: str) -> None:
    from tlsmith.crypto.aead import Aead

    with pytest.raises(ValueError, match=message):
        Aead(kind, bytes(key_len), tag_len)


@pytest.mark.parametrize("suite", TLS13, ids=lambda s: s.name)
def test_protection_tls13_bulk_path_matches_the_checked_path(suite: SuiteInfo) -> None:
    """protect/unprotect take a short path for unpadded application data; it must give
    the bytes and results of the general path (taken for a plain int type, padding)."""
    key, iv = key_iv(suite)
    fast, checked = TLS13Encrypter(suite, key, iv), TLS13Encrypter(suite, key, iv)
    dec_fast, dec_checked = TLS13Decrypter(suite, key, iv), TLS13Decrypter(suite, key, iv)
    for data in (b"", b"x", bytes(MAX_PLAINTEXT), memoryview(b"abc\x00")):
        wire = fast.protect(CT.APPLICATION_DATA, data)
        assert wire == checked.protect(23, data)  # type: ignore[arg-type]  # (an int)
        rec = parse(wire)
        assert dec_fast.unprotect(rec) == (CT.APPLICATION_DATA, bytes(data))
        # The same record with the outer type as a plain int takes the checked path.
        assert dec_checked.unprotect(Record(23, rec.legacy_version, rec.fragment)  # type: ignore[arg-type]
                                     ) == (CT.APPLICATION_DATA, bytes(data))
    assert fast.seq == checked.seq == dec_fast.seq == dec_checked.seq == 4
    with pytest.raises(InternalError):
        fast.protect(CT.APPLICATION_DATA, bytes(MAX_PLAINTEXT + 1))

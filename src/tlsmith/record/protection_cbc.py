"""TLS 1.2 CBC record protection: AES-CBC + HMAC, MAC-then-encrypt (RFC 5246
§6.2.3.1-6.2.3.2) or encrypt-then-MAC (RFC 7366 §3), on the ``RecordEncrypter`` /
``RecordDecrypter`` interface of ``tlsmith.record.protection``.

MAC-then-encrypt (the RFC 5246 default)::

    MAC = HMAC(mac_key, seq_num + type + version + length + content)
    fragment = IV + CBC(IV, content + MAC + padding + padding_length)

encrypt-then-MAC (negotiated with the encrypt_then_mac extension, RFC 7366)::

    C = CBC(IV, content + padding + padding_length)
    fragment = IV + C + HMAC(mac_key, seq_num + type + version + len(IV + C) + IV + C)

Each object builds its AES contexts and its keyed HMAC once; a record costs one HMAC
copy and one or two AES calls. The CBC contexts live as long as the key: the decrypter
is fed IV + ciphertext and drops the first output block (CBC decryption of a block only
needs the block before it); the encrypter first feeds D_K(IV) XOR its chaining value,
which makes the IV it outputs exactly the random IV, and the blocks after it chain from
that IV as a fresh CBC(IV) would.
"""

from __future__ import annotations

import hmac as _hmac
import struct
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as _crypto_hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tlsmith.codec.enums import ContentType, ProtocolVersion
from tlsmith.crypto.suites import SuiteInfo
from tlsmith.errors import BadRecordMac, InternalError, RecordOverflow
from tlsmith.record.framing import MAX_CIPHERTEXT_12, MAX_PLAINTEXT, Record

Bytes = bytes | bytearray | memoryview
Random = Callable[[int], bytes]

TLS12 = int(ProtocolVersion.TLS12)
BLOCK = 16
"""AES block size = SecurityParameters.record_iv_length (RFC 5246 §6.2.3.2)."""
SEQ_LIMIT = 2**64

# One message for every authentication failure (MAC or padding), so the error a peer
# can observe does not tell them apart (RFC 5246 §6.2.3.2 implementation note).
BAD_RECORD = "record failed authentication (bad MAC or padding)"

_HEADER = struct.Struct(">BHH")
_pack_header = _HEADER.pack
# RFC 5246 §6.2.3.1: seq_num (uint64) + type + version + length, the MAC's prefix.
_pack_mac_prefix = struct.Struct(">QBHH").pack
# padding + padding_length: n + 1 bytes of value n (RFC 5246 §6.2.3.2).
_PADDING: tuple[bytes, ...] = tuple(bytes((n,)) * (n + 1) for n in range(256))

_MAC_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
}


def _check_seq(seq: int) -> None:
    if seq >= SEQ_LIMIT:
        # RFC 5246 §6.1: sequence numbers MUST NOT wrap; renegotiate or close.
        raise InternalError("record sequence number exhausted (2^64 records under one key)")


class _CbcRecordBase:
    """Key checks, the keyed HMAC, the sequence number and the size limits."""

    __slots__ = ("_alg", "_mac", "_mac_len", "_seq", "encrypt_then_mac", "max_plaintext",
                 "suite")

    def __init__(self, suite: SuiteInfo, enc_key: bytes, mac_key: bytes,
                 encrypt_then_mac: bool, seq: int) -> None:
        if suite.tls13 or suite.cipher != "cbc" or suite.mac_name not in _MAC_HASHES:
            raise ValueError(f"{suite.name} is not a TLS 1.2 CBC suite")
        if len(enc_key) != suite.key_len or len(mac_key) != suite.mac_key_len:
            raise ValueError(
                f"{suite.name}: key/MAC key of {len(enc_key)}/{len(mac_key)} bytes, "
                f"expected {suite.key_len}/{suite.mac_key_len}")
        self.suite = suite
        self.encrypt_then_mac = encrypt_then_mac
        algorithm = _MAC_HASHES[suite.mac_name]()
        self._mac = _crypto_hmac.HMAC(mac_key, algorithm)  # copied for every record
        self._mac_len = algorithm.digest_size
        self._alg = algorithms.AES(enc_key)
        self._seq = seq
        # Content bytes per record; RFC 8449 record_size_limit lowers it.
        self.max_plaintext = MAX_PLAINTEXT

    @property
    def seq(self) -> int:
        return self._seq

    @property
    def max_ciphertext(self) -> int:
        # RFC 5246 §6.2.3: TLSCiphertext.length MUST NOT exceed 2^14 + 2048.
        return MAX_CIPHERTEXT_12

    def __repr__(self) -> str:
        mode = "encrypt-then-MAC" if self.encrypt_then_mac else "MAC-then-encrypt"
        return f"{type(self).__name__}({self.suite.name}, {mode}, seq={self._seq})"


class TLS12CbcEncrypter(_CbcRecordBase):
    """Protects records with AES-CBC + HMAC; a fresh random IV per record
    (RFC 5246 §6.2.3.2: chosen at random, unpredictable) and minimal padding."""

    __slots__ = ("_cbc", "_chain", "_iv_decrypt", "_random", "legacy_version")

    def __init__(self, suite: SuiteInfo, enc_key: bytes, mac_key: bytes, *,
                 encrypt_then_mac: bool, random: Random, seq: int = 0,
                 legacy_version: int = TLS12) -> None:
        super().__init__(suite, enc_key, mac_key, encrypt_then_mac, seq)
        self._random = random
        self.legacy_version = legacy_version
        self._cbc = Cipher(self._alg, modes.CBC(bytes(BLOCK))).encryptor().update
        self._iv_decrypt = Cipher(self._alg, modes.ECB()).decryptor().update
        self._chain = 0  # the CBC context's last output block, as an integer

    def _encrypt(self, iv: bytes, plaintext: bytes) -> bytes:
        """CBC(iv, plaintext) on the long-lived context (``plaintext`` whole blocks)."""
        # E_K(D_K(iv) XOR chain XOR chain) = iv: the context's chaining value becomes iv.
        lead = int.from_bytes(self._iv_decrypt(iv), "big") ^ self._chain
        self._cbc(lead.to_bytes(BLOCK, "big"))
        ciphertext = self._cbc(plaintext)
        self._chain = int.from_bytes(ciphertext[-BLOCK:], "big")
        return ciphertext

    def protect(self, content_type: ContentType, data: Bytes) -> bytes:
        n = len(data)
        if n > self.max_plaintext:
            raise InternalError(
                f"fragment of {n} bytes exceeds the limit of {self.max_plaintext}")
        seq = self._seq
        _check_seq(seq)
        iv = self._random(BLOCK)
        if len(iv) != BLOCK:
            raise InternalError(f"the random source returned {len(iv)} byte(s), not {BLOCK}")
        self._seq = seq + 1
        version = self.legacy_version
        mac = self._mac.copy()
        if self.encrypt_then_mac:
            # RFC 7366 §3: encrypt content + padding, then MAC the IV and ciphertext with
            # the length of IV + ciphertext in the prefix.
            ciphertext = self._encrypt(iv, b"".join((data, _PADDING[BLOCK - 1 - n % BLOCK])))
            length = BLOCK + len(ciphertext)
            mac.update(_pack_mac_prefix(seq, content_type, version, length))
            mac.update(iv)
            mac.update(ciphertext)
            tag = mac.finalize()
            header = _pack_header(content_type, version, length + len(tag))
            return b"".join((header, iv, ciphertext, tag))
        # RFC 5246 §6.2.3.1: MAC the content with the plaintext length in the prefix, then
        # §6.2.3.2: encrypt content + MAC + padding + padding_length.
        mac.update(_pack_mac_prefix(seq, content_type, version, n))
        mac.update(data)
        tag = mac.finalize()
        pad = _PADDING[BLOCK - 1 - (n + self._mac_len) % BLOCK]
        ciphertext = self._encrypt(iv, b"".join((data, tag, pad)))
        header = _pack_header(content_type, version, BLOCK + len(ciphertext))
        return b"".join((header, iv, ciphertext))


class TLS12CbcDecrypter(_CbcRecordBase):
    """Checks and decrypts AES-CBC + HMAC records. Every MAC or padding failure is
    ``BadRecordMac`` with the same message (RFC 5246 §6.2.3.2, RFC 7366 §3)."""

    __slots__ = ("_cbc", "_min_len")

    def __init__(self, suite: SuiteInfo, enc_key: bytes, mac_key: bytes, *,
                 encrypt_then_mac: bool, seq: int = 0) -> None:
        super().__init__(suite, enc_key, mac_key, encrypt_then_mac, seq)
        self._cbc = Cipher(self._alg, modes.CBC(bytes(BLOCK))).decryptor().update
        mac_len = self._mac_len
        if encrypt_then_mac:
            # IV + at least one block (padding_length) + MAC.
            self._min_len = BLOCK + BLOCK + mac_len
        else:
            # IV + enough whole blocks for MAC + padding_length.
            self._min_len = BLOCK + (mac_len + 1 + BLOCK - 1) // BLOCK * BLOCK

    def _decrypt(self, iv_and_ciphertext: Bytes) -> memoryview:
        """The plaintext of IV + ciphertext (whole blocks) on the long-lived context."""
        return memoryview(self._cbc(iv_and_ciphertext))[BLOCK:]

    def unprotect(self, record: Record) -> tuple[ContentType, bytes]:
        fragment = record.fragment
        n = len(fragment)
        if n > MAX_CIPHERTEXT_12:
            # RFC 5246 §6.2.3: TLSCiphertext.length MUST NOT exceed 2^14 + 2048.
            raise RecordOverflow(f"protected record of {n} bytes exceeds 2^14 + 2048")
        mac_len = self._mac_len
        encrypted_len = n - mac_len if self.encrypt_then_mac else n  # IV + ciphertext
        if n < self._min_len or encrypted_len % BLOCK:
            # Cannot be IV + whole blocks (+ MAC): it cannot authenticate.
            raise BadRecordMac(f"protected record of {n} bytes has an impossible length")
        seq = self._seq
        _check_seq(seq)
        view = memoryview(fragment)
        content_type = record.content_type
        version = record.legacy_version
        mac = self._mac.copy()
        if self.encrypt_then_mac:
            # RFC 7366 §3: check the MAC over IV + ciphertext before decrypting anything.
            encrypted = view[:encrypted_len]
            mac.update(_pack_mac_prefix(seq, content_type, version, encrypted_len))
            mac.update(encrypted)
            if not _hmac.compare_digest(mac.finalize(), view[encrypted_len:]):
                raise BadRecordMac(BAD_RECORD)
            plaintext = self._decrypt(encrypted)
            size = len(plaintext)
            pad = plaintext[-1]
            strip = pad + 1
            if strip > size or not _hmac.compare_digest(plaintext[size - strip:],
                                                        _PADDING[pad]):
                raise BadRecordMac(BAD_RECORD)
            content = plaintext[:size - strip]
        else:
            # RFC 5246 §6.2.3.2: decrypt, then check padding and MAC together. With bad
            # padding the MAC is still computed, as if the padding were empty (only the
            # padding_length byte removed), and both failures look the same.
            plaintext = self._decrypt(view)
            size = len(plaintext)
            pad = plaintext[-1]
            fits = pad + 1 + mac_len <= size
            check = pad + 1 if fits else 1
            pad_ok = fits & _hmac.compare_digest(plaintext[size - check:],
                                                 _PADDING[pad][:check])
            strip = pad + 1 if pad_ok else 1
            content_len = size - strip - mac_len
            content = plaintext[:content_len]
            mac.update(_pack_mac_prefix(seq, content_type, version, content_len))
            mac.update(content)
            mac_ok = _hmac.compare_digest(mac.finalize(),
                                          plaintext[content_len:content_len + mac_len])
            if not (mac_ok & pad_ok):
                raise BadRecordMac(BAD_RECORD)
        self._seq = seq + 1
        if len(content) > self.max_plaintext:
            # RFC 5246 §6.2.1/§7.2.2: the decrypted fragment is at most 2^14 bytes.
            raise RecordOverflow(f"decrypted record of {len(content)} bytes exceeds 2^14")
        return content_type, bytes(content)

"""Record protection: plaintext, TLS 1.3 AEAD (RFC 8446 §5.2-5.4) and TLS 1.2 AEAD
(RFC 5246 §6.2.3.3, RFC 5288, RFC 7905), behind one interface.

An encrypter turns (content type, data) into one complete wire record; a decrypter
turns a ``Record`` from ``RecordReader`` into (content type, data). Each object holds
one traffic key and its own sequence number; a key change means a new object. The AEAD
is built once per key, and the per-record work is a nonce XOR, a 5-byte header and one
AEAD call.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import ClassVar, Protocol

from cryptography.exceptions import InvalidTag

from tlsmith.codec.enums import ContentType, ProtocolVersion
from tlsmith.crypto.aead import Aead
from tlsmith.crypto.suites import SuiteInfo
from tlsmith.errors import (
    BadRecordMac,
    InternalError,
    RecordOverflow,
    UnexpectedMessage,
)
from tlsmith.record.framing import (
    MAX_CIPHERTEXT_12,
    MAX_CIPHERTEXT_13,
    MAX_PLAINTEXT,
    Record,
)

Bytes = bytes | bytearray | memoryview
Padding = int | Callable[[int], int]
"""TLS 1.3 padding policy: a fixed number of zero bytes, or a function of the content
length returning how many to add (RFC 8446 §5.4). Clipped to the record size limit."""

TLS12 = int(ProtocolVersion.TLS12)
SEQ_LIMIT = 2**64
"""RFC 8446 §5.3 / RFC 5246 §6.1: sequence numbers are 64-bit and MUST NOT wrap."""

_HEADER = struct.Struct(">BHH")
_pack_header = _HEADER.pack
_TYPE_BYTES: tuple[bytes, ...] = tuple(bytes((i,)) for i in range(256))
_APPLICATION_DATA = ContentType.APPLICATION_DATA
_TLS13_INNER_TYPES: dict[int, ContentType] = {
    # RFC 8446 §5: a protected change_cipher_spec is unexpected_message.
    t.value: t for t in (ContentType.ALERT, ContentType.HANDSHAKE, ContentType.APPLICATION_DATA)
}
_TLS13_INNER_TYPE_BYTES: dict[int, bytes] = {t: _TYPE_BYTES[t] for t in _TLS13_INNER_TYPES}
_APPLICATION_DATA_BYTE = _TYPE_BYTES[_APPLICATION_DATA]


class RecordEncrypter(Protocol):
    """Turns one fragment into one complete wire record."""

    @property
    def seq(self) -> int:
        """The sequence number the next record will use."""
        ...

    @property
    def max_plaintext(self) -> int:
        """The most content bytes one record may carry (fragment outgoing data to this)."""
        ...

    @property
    def max_ciphertext(self) -> int:
        """The largest TLSCiphertext.length this encrypter produces."""
        ...

    def protect(self, content_type: ContentType, data: Bytes) -> bytes:
        """The complete record (header + protected fragment) for ``data``."""
        ...


class RecordDecrypter(Protocol):
    """Turns one wire record back into (content type, content)."""

    @property
    def seq(self) -> int:
        """The sequence number the next record is expected to use."""
        ...

    @property
    def max_ciphertext(self) -> int:
        """The largest record length accepted (set ``RecordReader.max_length`` to it)."""
        ...

    def unprotect(self, record: Record) -> tuple[ContentType, bytes]:
        """Check and decrypt ``record``; raise the matching ``ProtocolError`` if bad."""
        ...


def _check_seq(seq: int) -> None:
    if seq >= SEQ_LIMIT:
        # RFC 8446 §5.3 / RFC 5246 §6.1: rekey (KeyUpdate) or close before wrapping.
        raise InternalError("record sequence number exhausted (2^64 records under one key)")


# -- plaintext -----------------------------------------------------------------------------

class PlaintextEncrypter:
    """Records before protection starts. ``legacy_version`` is 0x0301 for the first
    ClientHello if the caller wants (RFC 8446 §5.1), otherwise 0x0303."""

    __slots__ = ("_seq", "legacy_version", "max_plaintext")

    def __init__(self, legacy_version: int = TLS12) -> None:
        self.legacy_version = legacy_version
        self.max_plaintext = MAX_PLAINTEXT
        self._seq = 0

    @property
    def seq(self) -> int:
        return self._seq

    @property
    def max_ciphertext(self) -> int:
        return self.max_plaintext

    def protect(self, content_type: ContentType, data: Bytes) -> bytes:
        if content_type == _APPLICATION_DATA:
            # RFC 8446 §5.1: application data MUST NOT be written unprotected.
            raise InternalError("refusing to send application data without protection")
        if len(data) > self.max_plaintext:
            raise InternalError(
                f"fragment of {len(data)} bytes exceeds the limit of {self.max_plaintext}")
        self._seq += 1
        return _pack_header(content_type, self.legacy_version, len(data)) + bytes(data)

    def __repr__(self) -> str:
        return f"PlaintextEncrypter(legacy_version={self.legacy_version:#06x})"


class PlaintextDecrypter:
    """Records before the peer's protection starts."""

    __slots__ = ("_seq",)

    def __init__(self) -> None:
        self._seq = 0

    @property
    def seq(self) -> int:
        return self._seq

    @property
    def max_ciphertext(self) -> int:
        return MAX_PLAINTEXT

    def unprotect(self, record: Record) -> tuple[ContentType, bytes]:
        fragment = record.fragment
        if len(fragment) > MAX_PLAINTEXT:
            # RFC 8446 §5.1 / RFC 5246 §6.2.1: TLSPlaintext.length MUST NOT exceed 2^14.
            raise RecordOverflow(f"plaintext record of {len(fragment)} bytes exceeds 2^14")
        if record.content_type == _APPLICATION_DATA:
            # RFC 8446 §5.1: application data is always protected.
            raise UnexpectedMessage("application data received before protection started")
        self._seq += 1
        return record.content_type, bytes(fragment)

    def __repr__(self) -> str:
        return "PlaintextDecrypter()"


# -- TLS 1.3 -------------------------------------------------------------------------------

class _AeadRecordBase:
    """What TLS 1.3 and TLS 1.2 AEAD protection share: one AEAD object per key, the
    sequence number, the size limits (``max_plaintext``: content bytes per record; RFC
    8449 record_size_limit lowers it to limit - 1).

    Subclasses call the ``__init__`` they extend by name, not through ``super()``: four
    protectors are built per handshake and side."""

    __slots__ = ("_aead", "_seq", "_tag_len", "max_plaintext", "suite")
    _max_ciphertext: ClassVar[int]

    def __init__(self, suite: SuiteInfo, key: bytes, iv: bytes, seq: int) -> None:
        if len(key) != suite.key_len or len(iv) != suite.iv_len:
            raise ValueError(
                f"{suite.name}: key/iv of {len(key)}/{len(iv)} bytes, expected "
                f"{suite.key_len}/{suite.iv_len}")
        self.suite = suite
        self._aead = Aead(suite.aead, key, suite.tag_len)
        self._tag_len = suite.tag_len
        self._seq = seq
        self.max_plaintext = MAX_PLAINTEXT

    @property
    def seq(self) -> int:
        return self._seq

    @property
    def max_ciphertext(self) -> int:
        return self._max_ciphertext

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.suite.name}, seq={self._seq})"


class _Tls13Base(_AeadRecordBase):
    __slots__ = ("_iv", "_nonce_len")
    _max_ciphertext = MAX_CIPHERTEXT_13

    def __init__(self, suite: SuiteInfo, key: bytes, iv: bytes, seq: int) -> None:
        if not suite.tls13:
            raise ValueError(f"{suite.name} is not a TLS 1.3 suite")
        _AeadRecordBase.__init__(self, suite, key, iv, seq)
        self._iv = int.from_bytes(iv, "big")
        self._nonce_len = len(iv)


class TLS13Encrypter(_Tls13Base):
    """RFC 8446 §5.2: TLSInnerPlaintext = content || type || zeros, sealed under
    nonce = iv XOR seq, with the record header as additional data."""

    __slots__ = ("_padding", "_seal")

    def __init__(self, suite: SuiteInfo, key: bytes, iv: bytes, padding: Padding = 0,
                 *, seq: int = 0) -> None:
        _Tls13Base.__init__(self, suite, key, iv, seq)
        self._padding = padding
        self._seal = self._aead.raw_encrypt

    def protect(self, content_type: ContentType, data: Bytes) -> bytes:
        n = len(data)
        if content_type is _APPLICATION_DATA and n <= self.max_plaintext and not self._padding:
            # The bulk case (what _protect_checked does for it, without padding).
            seq = self._seq
            if seq >= SEQ_LIMIT:
                _check_seq(seq)
            self._seq = seq + 1
            header = _pack_header(23, TLS12, n + 1 + self._tag_len)
            return header + self._seal((self._iv ^ seq).to_bytes(self._nonce_len),
                                       b"".join((data, _APPLICATION_DATA_BYTE)), header)
        return self._protect_checked(content_type, data)

    def _protect_checked(self, content_type: ContentType, data: Bytes) -> bytes:
        n = len(data)
        room = self.max_plaintext - n
        if room < 0:
            raise InternalError(
                f"fragment of {n} bytes exceeds the limit of {self.max_plaintext}")
        if n == 0 and content_type != _APPLICATION_DATA:
            # RFC 8446 §5.4: no zero-length Handshake or Alert content.
            raise InternalError(f"refusing to send an empty {content_type.name} record")
        type_byte = _TLS13_INNER_TYPE_BYTES.get(content_type)
        if type_byte is None:
            raise InternalError(f"{content_type} records are never encrypted in TLS 1.3")
        padding = self._padding
        if padding:
            pad = padding(n) if callable(padding) else padding
            # RFC 8446 §5.4: the whole TLSInnerPlaintext stays within 2^14 + 1 bytes.
            pad = max(0, min(pad, room))
        else:
            pad = 0
        seq = self._seq
        if seq >= SEQ_LIMIT:
            _check_seq(seq)
        self._seq = seq + 1
        inner = b"".join((data, type_byte, bytes(pad))) if pad else b"".join((data, type_byte))
        # RFC 8446 §5.2: opaque_type 23, legacy_record_version 0x0303; the header is the AAD.
        header = _pack_header(23, TLS12, n + 1 + pad + self._tag_len)
        # RFC 8446 §5.3: 64-bit seq, left-padded to iv_length, XORed with the IV (int.to_bytes
        # is big-endian by default).
        return header + self._seal((self._iv ^ seq).to_bytes(self._nonce_len), inner, header)


class TLS13Decrypter(_Tls13Base):
    """The receiving half of RFC 8446 §5.2-5.4."""

    __slots__ = ("_open",)

    def __init__(self, suite: SuiteInfo, key: bytes, iv: bytes, *, seq: int = 0) -> None:
        _Tls13Base.__init__(self, suite, key, iv, seq)
        self._open = self._aead.raw_decrypt

    def unprotect(self, record: Record) -> tuple[ContentType, bytes]:
        fragment = record.fragment
        n = len(fragment)
        if record.content_type is not _APPLICATION_DATA or n > MAX_CIPHERTEXT_13:
            return self._unprotect_checked(record)
        # The common case, with the checks of _unprotect_checked in the same order.
        seq = self._seq
        if seq >= SEQ_LIMIT:
            _check_seq(seq)
        try:
            plaintext = self._open((self._iv ^ seq).to_bytes(self._nonce_len), fragment,
                                   _pack_header(23, record.legacy_version, n))
        except InvalidTag:
            raise self._aead.auth_failure() from None  # bad_record_mac (RFC 8446 §5.2)
        self._seq = seq + 1
        if plaintext.endswith(_APPLICATION_DATA_BYTE) and len(plaintext) <= self.max_plaintext + 1:
            # Unpadded application data (RFC 8446 §5.4: the last byte is the type).
            return _APPLICATION_DATA, plaintext[:-1]
        return self._inner(plaintext)

    def _unprotect_checked(self, record: Record) -> tuple[ContentType, bytes]:
        if record.content_type != _APPLICATION_DATA:
            # RFC 8446 §5.2: protected records always have opaque_type application_data.
            raise UnexpectedMessage(
                f"{record.content_type.name.lower()} record where a protected record was "
                "expected")
        fragment = record.fragment
        n = len(fragment)
        if n > MAX_CIPHERTEXT_13:
            # RFC 8446 §5.2: TLSCiphertext.length MUST NOT exceed 2^14 + 256.
            raise RecordOverflow(f"protected record of {n} bytes exceeds 2^14 + 256")
        seq = self._seq
        if seq >= SEQ_LIMIT:
            _check_seq(seq)
        aad = _pack_header(record.content_type, record.legacy_version, n)
        try:
            plaintext = self._open((self._iv ^ seq).to_bytes(self._nonce_len), fragment, aad)
        except InvalidTag:
            raise self._aead.auth_failure() from None  # bad_record_mac (RFC 8446 §5.2)
        self._seq = seq + 1
        return self._inner(plaintext)

    def _inner(self, plaintext: bytes) -> tuple[ContentType, bytes]:
        """(content type, content) of a decrypted TLSInnerPlaintext (RFC 8446 §5.4)."""
        if len(plaintext) > self.max_plaintext + 1:
            # RFC 8446 §5.4: TLSInnerPlaintext MUST NOT exceed 2^14 + 1 bytes.
            raise RecordOverflow(
                f"decrypted record of {len(plaintext)} bytes exceeds {self.max_plaintext} + 1")
        if plaintext and plaintext[-1]:
            type_byte = plaintext[-1]
            content = plaintext[:-1]
        else:
            # RFC 8446 §5.4: strip the zero padding; the last non-zero byte is the type.
            stripped = plaintext.rstrip(b"\x00")
            if not stripped:
                raise UnexpectedMessage("decrypted record has no content type (all zeros)")
            type_byte = stripped[-1]
            content = stripped[:-1]
        content_type = _TLS13_INNER_TYPES.get(type_byte)
        if content_type is None:
            # RFC 8446 §5: unknown types, and protected change_cipher_spec.
            raise UnexpectedMessage(f"protected record of content type {ContentType(type_byte)}")
        if not content and content_type != _APPLICATION_DATA:
            # RFC 8446 §5.4: zero-length Handshake/Alert content is unexpected_message.
            raise UnexpectedMessage(f"empty {content_type.name.lower()} record")
        return content_type, content


# -- TLS 1.2 AEAD --------------------------------------------------------------------------

class _Tls12AeadBase(_AeadRecordBase):
    __slots__ = ("_explicit_len", "_iv", "_salt")
    _max_ciphertext = MAX_CIPHERTEXT_12

    def __init__(self, suite: SuiteInfo, key: bytes, fixed_iv: bytes, seq: int) -> None:
        if suite.tls13 or suite.aead not in ("aes-gcm", "chacha20-poly1305"):
            raise ValueError(f"{suite.name} is not a TLS 1.2 AEAD suite")
        _AeadRecordBase.__init__(self, suite, key, fixed_iv, seq)
        self._explicit_len = suite.record_iv_len
        # RFC 5288 §3: nonce = salt (implicit, 4) || nonce_explicit (8, on the wire).
        self._salt = fixed_iv
        # RFC 7905 §2: nonce = fixed iv (12) XOR left-padded 64-bit seq.
        self._iv = int.from_bytes(fixed_iv, "big")


class TLS12AeadEncrypter(_Tls12AeadBase):
    """RFC 5246 §6.2.3.3 GenericAEADCipher. AES-GCM sends the 64-bit sequence number as
    nonce_explicit (RFC 5288 §3 allows it, and it is never reused under one key)."""

    __slots__ = ("_seal", "legacy_version")

    def __init__(self, suite: SuiteInfo, key: bytes, fixed_iv: bytes, *, seq: int = 0,
                 legacy_version: int = TLS12) -> None:
        _Tls12AeadBase.__init__(self, suite, key, fixed_iv, seq)
        self._seal = self._aead.raw_encrypt
        self.legacy_version = legacy_version

    def protect(self, content_type: ContentType, data: Bytes) -> bytes:
        n = len(data)
        if n > self.max_plaintext:
            raise InternalError(
                f"fragment of {n} bytes exceeds the limit of {self.max_plaintext}")
        seq = self._seq
        if seq >= SEQ_LIMIT:
            _check_seq(seq)
        self._seq = seq + 1
        seq_bytes = seq.to_bytes(8)
        version = self.legacy_version
        # RFC 5246 §6.2.3.3: additional_data = seq_num + type + version + length
        # (the plaintext length).
        aad = seq_bytes + _pack_header(content_type, version, n)
        if self._explicit_len:
            # RFC 5288 §3: salt || nonce_explicit, and nonce_explicit is the seq.
            body = self._seal(self._salt + seq_bytes, data, aad)
            header = _pack_header(content_type, version, 8 + len(body))
            return b"".join((header, seq_bytes, body))
        body = self._seal((self._iv ^ seq).to_bytes(12), data, aad)  # RFC 7905 §2
        return _pack_header(content_type, version, len(body)) + body


class TLS12AeadDecrypter(_Tls12AeadBase):
    """The receiving half of RFC 5246 §6.2.3.3 with RFC 5288 / RFC 7905 nonces."""

    __slots__ = ("_open",)

    def __init__(self, suite: SuiteInfo, key: bytes, fixed_iv: bytes, *, seq: int = 0) -> None:
        _Tls12AeadBase.__init__(self, suite, key, fixed_iv, seq)
        self._open = self._aead.raw_decrypt

    def unprotect(self, record: Record) -> tuple[ContentType, bytes]:
        fragment = record.fragment
        n = len(fragment)
        if n > MAX_CIPHERTEXT_12:
            # RFC 5246 §6.2.3: TLSCiphertext.length MUST NOT exceed 2^14 + 2048.
            raise RecordOverflow(f"protected record of {n} bytes exceeds 2^14 + 2048")
        explicit_len = self._explicit_len
        plain_len = n - explicit_len - self._tag_len
        if plain_len < 0:
            # Too short to hold the explicit nonce and the tag: it cannot authenticate.
            raise BadRecordMac(f"protected record of {n} bytes is too short")
        seq = self._seq
        if seq >= SEQ_LIMIT:
            _check_seq(seq)
        seq_bytes = seq.to_bytes(8)
        if explicit_len:
            # RFC 5288 §3: salt || nonce_explicit (the first 8 bytes of the fragment).
            view = memoryview(fragment)
            nonce = self._salt + view[:explicit_len]
            body: Bytes = view[explicit_len:]
        else:
            nonce = (self._iv ^ seq).to_bytes(12)  # RFC 7905 §2
            body = fragment
        content_type = record.content_type
        aad = seq_bytes + _pack_header(content_type, record.legacy_version, plain_len)
        try:
            plaintext = self._open(nonce, body, aad)
        except InvalidTag:
            raise self._aead.auth_failure() from None  # bad_record_mac (RFC 5246 §6.2.3.3)
        self._seq = seq + 1
        if plain_len > self.max_plaintext:
            # RFC 5246 §6.2.1/§7.2.2: the decrypted fragment is at most 2^14 bytes.
            raise RecordOverflow(f"decrypted record of {plain_len} bytes exceeds 2^14")
        return content_type, plaintext

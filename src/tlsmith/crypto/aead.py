"""AEAD ciphers (RFC 5116) behind one small interface, built once per traffic key.

The record layer calls ``seal``/``open`` for every record, so construction (key
schedule of the block cipher) happens here once and the per-record cost is one call
into the backend.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305

from tlsmith.errors import BadRecordMac

AEAD_KINDS: tuple[str, ...] = ("aes-gcm", "chacha20-poly1305", "aes-ccm", "aes-ccm-8")

_KEY_LENGTHS: dict[str, tuple[int, ...]] = {
    "aes-gcm": (16, 24, 32),
    "chacha20-poly1305": (32,),
    "aes-ccm": (16, 24, 32),
    "aes-ccm-8": (16, 24, 32),
}

Bytes = bytes | bytearray | memoryview

# (kind, key length) -> the backend class, for the 16-byte tag every TLS 1.3 suite and
# the TLS 1.2 GCM / ChaCha20 suites use: one lookup checks the kind, the key and the tag.
_DIRECT: dict[tuple[str, int], type[AESGCM] | type[ChaCha20Poly1305] | type[AESCCM]] = {
    **{("aes-gcm", n): AESGCM for n in _KEY_LENGTHS["aes-gcm"]},
    ("chacha20-poly1305", 32): ChaCha20Poly1305,
    **{("aes-ccm", n): AESCCM for n in _KEY_LENGTHS["aes-ccm"]},  # (tag_length=16)
}


class Aead:
    """One AEAD key. ``seal`` returns ciphertext || tag; ``open`` verifies and decrypts."""

    __slots__ = ("_decrypt", "_encrypt", "kind", "raw_decrypt", "raw_encrypt", "tag_len")

    def __init__(self, kind: str, key: bytes, tag_len: int = 16) -> None:
        direct = _DIRECT.get((kind, len(key))) if tag_len == 16 else None
        if direct is not None:
            impl: AESGCM | ChaCha20Poly1305 | AESCCM = direct(key)
        else:
            impl, tag_len = self._checked(kind, key, tag_len)
        self.kind = kind
        self.tag_len = tag_len
        # Bound methods looked up once: the record path calls them per record.
        # ``raw_encrypt`` / ``raw_decrypt`` are the backend's own calls, for the record
        # layer's per-record path (one Python call fewer per record): ``raw_encrypt`` is
        # ``seal``; ``raw_decrypt`` raises cryptography's InvalidTag, which the caller
        # turns into ``auth_failure()``.
        self._encrypt = self.raw_encrypt = impl.encrypt
        self._decrypt = self.raw_decrypt = impl.decrypt

    @staticmethod
    def _checked(kind: str, key: bytes, tag_len: int
                 ) -> tuple[AESGCM | ChaCha20Poly1305 | AESCCM, int]:
        """The backend object and the tag length, after checking what ``_DIRECT`` does
        not cover."""
        if kind not in _KEY_LENGTHS:
            raise ValueError(f"unknown AEAD {kind!r}")
        if len(key) not in _KEY_LENGTHS[kind]:
            raise ValueError(f"{kind}: key of {len(key)} bytes, expected {_KEY_LENGTHS[kind]}")
        impl: AESGCM | ChaCha20Poly1305 | AESCCM
        if kind == "aes-ccm-8":
            tag_len = 8  # RFC 6655 §3: AES_128_CCM_8 has an 8-byte tag
            impl = AESCCM(key, tag_length=8)
        elif kind == "aes-ccm":
            if tag_len not in (8, 16):
                raise ValueError(f"aes-ccm: unsupported tag length {tag_len}")
            impl = AESCCM(key, tag_length=tag_len)
        else:
            if tag_len != 16:
                raise ValueError(f"{kind}: the tag is always 16 bytes, not {tag_len}")
            impl = AESGCM(key) if kind == "aes-gcm" else ChaCha20Poly1305(key)
        return impl, tag_len

    def seal(self, nonce: bytes, plaintext: Bytes, aad: bytes) -> bytes:
        """Encrypt and authenticate; the result is ``len(plaintext) + tag_len`` bytes."""
        return self._encrypt(nonce, plaintext, aad)

    def open(self, nonce: bytes, ciphertext: Bytes, aad: bytes) -> bytes:
        """Verify and decrypt; a failed check is ``BadRecordMac`` (RFC 8446 §5.2)."""
        try:
            return self._decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            raise self.auth_failure() from None

    def auth_failure(self) -> BadRecordMac:
        """The error for a record that failed authentication (RFC 8446 §5.2)."""
        return BadRecordMac(
            f"{self.kind}: record failed authentication (wrong key, nonce or tampering)")

    def __repr__(self) -> str:
        return f"Aead({self.kind!r}, tag_len={self.tag_len})"

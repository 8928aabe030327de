"""The handshake transcript hash (RFC 8446 §4.4.1; RFC 5246 §7.4.9 for TLS 1.2).

The hash function is known only once the server has chosen the cipher suite, but the
client has to record its ClientHello before that. So a ``Transcript`` starts out
buffering raw handshake messages; ``set_hash`` hashes the buffer and from then on
every message goes straight into a running ``hashlib`` object.
``digest()`` reads the current value from a copy, so the running hash is never
finalised.
"""

from __future__ import annotations

import hashlib

from tlsmith.codec.messages import message_hash as synthetic_message_hash
from tlsmith.errors import InternalError

# hashlib.new() dispatches by name in Python first (0.7 us against 0.14 us for the
# named constructor).
_CONSTRUCTORS = {"sha256": hashlib.sha256, "sha384": hashlib.sha384,
                 "sha512": hashlib.sha512, "sha1": hashlib.sha1}


def _new_hash(hash_name: str) -> hashlib._Hash:
    ctor = _CONSTRUCTORS.get(hash_name)
    return ctor() if ctor is not None else hashlib.new(hash_name)


class Transcript:
    """Transcript-Hash(M1, M2, ... Mn) = Hash(M1 || M2 || ... || Mn) -- RFC 8446 §4.4.1.

    Messages are whole handshake messages, header (type and 24-bit length) included,
    exactly as they appeared on the wire.
    """

    __slots__ = (
        "_count", "_hash", "_hash_name", "_keep_raw", "_messages", "_pending", "_restarted"
    )

    def __init__(self, *, keep_raw: bool = False) -> None:
        """``keep_raw`` keeps the concatenated messages after the hash is set (TLS 1.2's
        CertificateVerify signs handshake_messages themselves, RFC 5246 §7.4.8)."""
        self._hash_name: str | None = None
        self._hash: hashlib._Hash | None = None
        self._pending: list[bytes] | None = []  # buffered messages while the hash is unknown
        self._keep_raw = keep_raw
        self._messages: list[bytes] = []  # kept only with keep_raw
        self._restarted = False
        self._count = 0

    # -- state ----------------------------------------------------------------------
    @property
    def hash_name(self) -> str | None:
        """The hash's ``hashlib`` name, or None until ``set_hash``."""
        return self._hash_name

    @property
    def message_count(self) -> int:
        """How many messages the transcript holds (the synthetic message_hash counts one)."""
        return self._count

    @property
    def restarted(self) -> bool:
        """True once the transcript was restarted for a HelloRetryRequest."""
        return self._restarted

    def set_hash(self, hash_name: str) -> None:
        """Fix the hash (that of the negotiated cipher suite) and hash what was buffered."""
        if self._hash_name is not None:
            if hash_name != self._hash_name:
                raise InternalError(
                    f"transcript hash is already {self._hash_name}, cannot change it to "
                    f"{hash_name}"
                )
            return
        running = _new_hash(hash_name)
        pending = self._pending or []
        for message in pending:
            running.update(message)
        self._hash_name = hash_name
        self._hash = running
        self._pending = None

    # -- adding messages ------------------------------------------------------------
    def update(self, raw_handshake_message: bytes | bytearray | memoryview) -> None:
        """Append one handshake message (header included) to the transcript."""
        if self._hash is None:
            assert self._pending is not None
            self._pending.append(bytes(raw_handshake_message))
        else:
            self._hash.update(raw_handshake_message)
        self._count += 1
        if self._keep_raw:
            self._messages.append(bytes(raw_handshake_message))

    def update_and_digest(self, raw_handshake_message: bytes | bytearray | memoryview
                          ) -> bytes:
        """``update(raw_handshake_message)``, then ``digest()``: the transcript hash through
        a message just sent or received (one call where the handshake needs both)."""
        running = self._hash
        if running is None or self._keep_raw:
            self.update(raw_handshake_message)
            return self.digest()
        running.update(raw_handshake_message)
        self._count += 1
        return running.copy().digest()

    def restart_for_hello_retry_request(self) -> None:
        """RFC 8446 §4.4.1: after a HelloRetryRequest, ClientHello1 in the transcript is
        replaced by the synthetic message

            message_hash (254) || 00 00 Hash.length || Hash(ClientHello1)

        The transcript so far must be exactly ClientHello1, and the hash must be known
        (the HelloRetryRequest names the cipher suite)."""
        if self._hash_name is None or self._hash is None:
            raise InternalError(
                "transcript: the hash must be set (from the HelloRetryRequest's cipher "
                "suite) before restarting for a HelloRetryRequest"
            )
        if self._restarted:
            raise InternalError("transcript: already restarted for a HelloRetryRequest")
        if self._count != 1:
            raise InternalError(
                "transcript: a HelloRetryRequest restart needs exactly one message "
                f"(ClientHello1) before it, the transcript holds {self._count}"
            )
        client_hello1_hash = self._hash.digest()
        synthetic = synthetic_message_hash(client_hello1_hash)
        running = _new_hash(self._hash_name)
        running.update(synthetic)
        self._hash = running
        self._count = 1
        self._restarted = True
        if self._keep_raw:
            self._messages = [synthetic]

    # -- reading --------------------------------------------------------------------
    def digest(self) -> bytes:
        """Transcript-Hash of everything so far; the running hash is left untouched."""
        if self._hash is None:
            raise InternalError("transcript: digest() before the hash is known (set_hash)")
        return self._hash.copy().digest()

    def digest_with(self, extra: bytes = b"", *, hash_name: str | None = None) -> bytes:
        """Transcript-Hash(transcript so far || extra) without changing the transcript.

        Used for PSK binders (RFC 8446 §4.2.11.2), which cover a ClientHello truncated
        before its binders. Before ``set_hash`` -- a client's first ClientHello -- pass the
        PSK's ``hash_name``; afterwards it must be omitted or equal the transcript's.
        """
        if self._hash is not None:
            if hash_name is not None and hash_name != self._hash_name:
                raise InternalError(
                    f"transcript hash is {self._hash_name}, not {hash_name}"
                )
            running = self._hash.copy()
        else:
            if hash_name is None:
                raise InternalError(
                    "transcript: digest_with() before the hash is known needs hash_name"
                )
            running = _new_hash(hash_name)
            assert self._pending is not None
            for message in self._pending:
                running.update(message)
        running.update(extra)
        return running.digest()

    def raw(self) -> bytes:
        """The concatenated messages (only with ``keep_raw=True``, or before set_hash)."""
        if self._hash is None:
            assert self._pending is not None
            return b"".join(self._pending)
        if not self._keep_raw:
            raise InternalError("transcript: raw messages were not kept (keep_raw=False)")
        return b"".join(self._messages)

    def copy(self) -> Transcript:
        """An independent fork: later updates to either do not affect the other."""
        other = Transcript(keep_raw=self._keep_raw)
        other._hash_name = self._hash_name
        other._hash = None if self._hash is None else self._hash.copy()
        other._pending = None if self._pending is None else list(self._pending)
        other._count = self._count
        other._messages = list(self._messages)
        other._restarted = self._restarted
        return other


def message_hash(hash_name: str, client_hello1: bytes) -> bytes:
    """The synthetic message_hash message that replaces ClientHello1 (RFC 8446 §4.4.1)."""
    hashed = _new_hash(hash_name)
    hashed.update(client_hello1)
    return synthetic_message_hash(hashed.digest())


__all__ = ["Transcript", "message_hash"]

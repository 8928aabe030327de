"""Sessions a client can resume, and external PSKs (RFC 8446 §2.2, §4.6.1; RFC 5077).

A client gets a ``Session13`` from every TLS 1.3 NewSessionTicket and a ``Session12``
from a TLS 1.2 handshake (session ID and/or RFC 5077 ticket); it passes one back as
``TLSConnection(config, session=...)`` to resume. Both are frozen values: the secret
never appears in ``repr`` and the clock reading is the injected ``config.clock``'s.

``to_pem()`` / ``Session.from_pem()`` store a session in a file (``--sess-out`` /
``--sess-in``): a versioned binary encoding, base64 between PEM-style lines. The file
holds the resumption secret: treat it like a private key.
"""

from __future__ import annotations

import base64
import binascii
import functools
from dataclasses import dataclass, field

from tlsmith.codec.buffer import Reader, Writer
from tlsmith.codec.enums import CipherSuite
from tlsmith.errors import DecodeError, UsageError
from tlsmith.frozen import fast_init

_PEM_BEGIN = "-----BEGIN TLSMITH SESSION-----"
_PEM_END = "-----END TLSMITH SESSION-----"
_FORMAT_13 = 13
_FORMAT_12 = 12


def _str(value: str | None) -> bytes:
    return (value or "").encode()


def _unstr(raw: bytes) -> str | None:
    return raw.decode() if raw else None


def _verdict_byte(verified: bool, by_callback: bool) -> int:
    """Bit 0: verified against a trust store; bit 1: accepted by the application's
    verify callback (an older session's byte is 0 or 1)."""
    return int(verified) | int(by_callback) << 1


def _read_verdict(byte: int) -> dict[str, bool]:
    return {"certificate_verified": bool(byte & 1),
            "certificate_accepted_by_callback": bool(byte & 2)}


def _write_chain(w: Writer, chain: tuple[bytes, ...]) -> None:
    with w.vector(3):
        for der in chain:
            w.opaque(3, der)


def write_alps(w: Writer, settings: tuple[bytes, bytes] | None) -> None:
    """ALPS settings as an optional trailer (absent: none), so sessions without ALPS
    keep their earlier encoding."""
    if settings is not None:
        w.opaque(2, settings[0])
        w.opaque(2, settings[1])


def read_alps(r: Reader) -> tuple[bytes, bytes] | None:
    if r.at_end():
        return None
    return r.opaque(2), r.opaque(2)


def _read_chain(r: Reader) -> tuple[bytes, ...]:
    out = []
    with r.vector(3, what="certificate chain") as v:
        while not v.at_end():
            out.append(v.opaque(3))
    return tuple(out)


@fast_init
@dataclass(frozen=True, slots=True)
class Session13:
    """A TLS 1.3 resumption ticket and what the client needs to use it (RFC 8446 §4.6.1).

    ``psk`` is HKDF-Expand-Label(resumption_master_secret, "resumption", ticket_nonce);
    ``received_at`` is the client's clock when the ticket arrived (seconds).
    """

    ticket: bytes = field(repr=False)
    psk: bytes = field(repr=False)
    cipher_suite: CipherSuite
    ticket_age_add: int
    lifetime: int  # seconds (RFC 8446 §4.6.1: at most 604800)
    received_at: float
    server_name: str | None = None
    alpn: str | None = None
    max_early_data: int = 0  # 0: the ticket does not allow early data
    peer_certificates: tuple[bytes, ...] = field(default=(), repr=False)
    certificate_verified: bool = False
    # ALPS (draft-vvv-tls-alps): (our settings, the server's), None if not negotiated.
    application_settings: tuple[bytes, bytes] | None = field(default=None, repr=False)
    # The application's verify_callback accepted the chain (tlsmith.x509.callback).
    certificate_accepted_by_callback: bool = False

    @property
    def version_label(self) -> str:
        return "TLSv1.3"

    def expired(self, now: float) -> bool:
        return now >= self.received_at + self.lifetime or now < self.received_at - 60

    def obfuscated_age(self, now: float) -> int:
        """RFC 8446 §4.2.11.1: the ticket age in milliseconds plus ticket_age_add, mod 2^32."""
        age_ms = max(0, int((now - self.received_at) * 1000))
        return (age_ms + self.ticket_age_add) % 2**32

    def to_bytes(self) -> bytes:
        w = Writer()
        w.u8(_FORMAT_13)
        w.opaque(2, self.ticket)
        w.opaque(1, self.psk)
        w.u16(int(self.cipher_suite))
        w.u32(self.ticket_age_add)
        w.u32(self.lifetime)
        w.u64(round(self.received_at * 1000))
        w.opaque(1, _str(self.server_name))
        w.opaque(1, _str(self.alpn))
        w.u32(self.max_early_data)
        w.u8(_verdict_byte(self.certificate_verified, self.certificate_accepted_by_callback))
        _write_chain(w, self.peer_certificates)
        write_alps(w, self.application_settings)
        return w.getvalue()

    def to_pem(self) -> str:
        return _pem(self.to_bytes())


@fast_init
@dataclass(frozen=True, slots=True)
class Session12:
    """A TLS 1.2 session: its session ID and/or RFC 5077 ticket and master secret."""

    session_id: bytes
    ticket: bytes = field(repr=False)  # b"": resume by session ID only
    master_secret: bytes = field(repr=False)
    cipher_suite: CipherSuite
    extended_master_secret: bool
    received_at: float
    lifetime: int = 0  # the ticket_lifetime_hint (0: unspecified)
    server_name: str | None = None
    alpn: str | None = None
    peer_certificates: tuple[bytes, ...] = field(default=(), repr=False)
    certificate_verified: bool = False
    # The application's verify_callback accepted the chain (tlsmith.x509.callback).
    certificate_accepted_by_callback: bool = False

    @property
    def version_label(self) -> str:
        return "TLSv1.2"

    def expired(self, now: float) -> bool:
        return bool(self.lifetime) and now >= self.received_at + self.lifetime

    def to_bytes(self) -> bytes:
        w = Writer()
        w.u8(_FORMAT_12)
        w.opaque(1, self.session_id)
        w.opaque(2, self.ticket)
        w.opaque(1, self.master_secret)
        w.u16(int(self.cipher_suite))
        w.u8(int(self.extended_master_secret))
        w.u64(round(self.received_at * 1000))
        w.u32(self.lifetime)
        w.opaque(1, _str(self.server_name))
        w.opaque(1, _str(self.alpn))
        w.u8(_verdict_byte(self.certificate_verified, self.certificate_accepted_by_callback))
        _write_chain(w, self.peer_certificates)
        return w.getvalue()

    def to_pem(self) -> str:
        return _pem(self.to_bytes())


Session = Session13 | Session12


def session_from_bytes(data: bytes) -> Session:
    """The inverse of ``to_bytes()``; DecodeError if it is not a session we wrote."""
    with Reader(data, "session") as r:
        kind = r.u8()
        if kind == _FORMAT_13:
            return Session13(
                ticket=r.opaque(2), psk=r.opaque(1), cipher_suite=CipherSuite(r.u16()),
                ticket_age_add=r.u32(), lifetime=r.u32(), received_at=r.u64() / 1000,
                server_name=_unstr(r.opaque(1)), alpn=_unstr(r.opaque(1)),
                max_early_data=r.u32(), **_read_verdict(r.u8()),
                peer_certificates=_read_chain(r), application_settings=read_alps(r))
        if kind == _FORMAT_12:
            return Session12(
                session_id=r.opaque(1), ticket=r.opaque(2), master_secret=r.opaque(1),
                cipher_suite=CipherSuite(r.u16()), extended_master_secret=bool(r.u8()),
                received_at=r.u64() / 1000, lifetime=r.u32(),
                server_name=_unstr(r.opaque(1)), alpn=_unstr(r.opaque(1)),
                **_read_verdict(r.u8()), peer_certificates=_read_chain(r))
        raise DecodeError(f"unknown session format {kind}")


def _pem(data: bytes) -> str:
    b64 = base64.b64encode(data).decode()
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return "\n".join([_PEM_BEGIN, *lines, _PEM_END]) + "\n"


def session_from_pem(text: str) -> Session:
    """Read a session written by ``to_pem()``; UsageError if the text is not one."""
    start, end = text.find(_PEM_BEGIN), text.find(_PEM_END)
    if start < 0 or end < start:
        raise UsageError("not a tlsmith session file (no BEGIN TLSMITH SESSION block)")
    body = "".join(text[start + len(_PEM_BEGIN):end].split())
    try:
        return session_from_bytes(base64.b64decode(body, validate=True))
    except (binascii.Error, DecodeError, ValueError) as exc:
        raise UsageError(f"the session file is damaged: {exc}") from exc


@dataclass(frozen=True)
class ExternalPsk:
    """An external PSK (RFC 8446 §4.2.11): an identity both sides know, a key, and the
    hash it is used with (its binder uses "ext binder")."""

    identity: bytes
    key: bytes = field(repr=False)
    hash_name: str = "sha256"
    # RFC 9258: ``identity`` is a serialized ImportedIdentity and ``key`` its ipskx (the
    # binder then uses "imp binder"); made by ImportedPsk.imported(), not by hand.
    imported_from: ImportedPsk | None = field(default=None, compare=False)
    # Also a TLS 1.3 external PSK (False: only TLS 1.2 PSK suites use it).
    tls13: bool = True

    def __post_init__(self) -> None:
        # RFC 4279 §2 / RFC 8446 §4.2.11: identity<0..2^16-1> (TLS 1.3: at least one
        # byte, so an empty identity is for TLS 1.2 PSK suites only); psk<0..2^16-1>. A
        # short key (a password) can be guessed offline from one handshake (RFC 4279
        # §7): use 16 or more random bytes.
        if len(self.identity) > 0xFFFF:
            raise UsageError("an external PSK's identity must be at most 65535 bytes")
        if self.hash_name not in ("sha256", "sha384"):
            raise UsageError("an external PSK's hash must be sha256 or sha384")
        if not 1 <= len(self.key) <= 0xFFFF:
            raise UsageError("an external PSK key must be 1..65535 bytes")

    @property
    def configured_identity(self) -> bytes:
        """The identity as configured (an imported PSK's external_identity)."""
        return self.imported_from.identity if self.imported_from else self.identity


#: RFC 9258 §4.1 / §10.2: the target protocol (TLS 1.3) and the TLS KDF identifiers.
_TARGET_PROTOCOL_TLS13 = 0x0304
_TARGET_KDFS = {"sha256": 0x0001, "sha384": 0x0002}  # HKDF_SHA256, HKDF_SHA384


@dataclass(frozen=True)
class ImportedPsk:
    """An external PSK imported for TLS 1.3 (RFC 9258): the identity and key (EPSK) both
    sides know, an optional context, and the EPSK's hash. It becomes one ExternalPsk per
    target KDF (SHA-256 and SHA-384): identity = ImportedIdentity, key = ipskx."""

    identity: bytes
    key: bytes = field(repr=False)
    context: bytes = b""
    hash_name: str = "sha256"

    def __post_init__(self) -> None:
        if not 1 <= len(self.identity) <= 0xFFFF or len(self.context) > 0xFFFF:
            raise UsageError("an imported PSK's identity must be 1..65535 bytes and its "
                             "context at most 65535 (RFC 9258 §4.1)")
        if self.hash_name not in _TARGET_KDFS:
            raise UsageError("an imported PSK's hash must be sha256 or sha384")
        if len(self.key) < 16:
            raise UsageError("an imported PSK's key must be at least 16 bytes")

    def imported_identity(self, target_hash: str) -> bytes:
        """The ImportedIdentity struct (RFC 9258 §4.1) for TLS 1.3 and ``target_hash``."""
        w = Writer()
        w.opaque(2, self.identity)
        w.opaque(2, self.context)
        w.u16(_TARGET_PROTOCOL_TLS13)
        w.u16(_TARGET_KDFS[target_hash])
        return w.getvalue()

    def imported(self) -> tuple[ExternalPsk, ...]:
        """The imported PSKs (RFC 9258 §4.2), SHA-256's first."""
        return self._imports

    @functools.cached_property
    def _imports(self) -> tuple[ExternalPsk, ...]:
        # Derived once per ImportedPsk (two HKDFs): both sides ask on every handshake.
        from tlsmith.crypto.schedule13 import imported_psk

        out = []
        for target in _TARGET_KDFS:
            ident = self.imported_identity(target)
            out.append(ExternalPsk(ident, imported_psk(self.hash_name, self.key, ident,
                                                       target), target, imported_from=self))
        return tuple(out)


def expand_psks(psks: tuple[ExternalPsk | ImportedPsk, ...]) -> tuple[ExternalPsk, ...]:
    """The PSKs TLS 1.3 offers / looks up: each ImportedPsk's imports in place (an empty
    identity is TLS 1.2's only)."""
    out: list[ExternalPsk] = []
    for p in psks:
        out.extend(p.imported() if isinstance(p, ImportedPsk)
                   else (p,) if p.identity and p.tls13 else ())
    return tuple(out)


__all__ = ["ExternalPsk", "ImportedPsk", "Session", "Session12", "Session13", "expand_psks",
           "session_from_bytes", "session_from_pem"]

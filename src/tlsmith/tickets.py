"""Server-side session state and self-encrypted tickets (RFC 5077 §4, RFC 8446 §4.6.1).

Design decision (issue 7): tickets are *stateless* — the server seals what it needs to
resume (``ServerSessionState``) under a rotating ticket key, so a handshake state never
looks anything up over a network to resume from a ticket. A ``SessionStore``
(``tlsmith.stores``) is consulted synchronously for three small things only: the TLS 1.2
session-ID cache, single-use checks for 0-RTT (anti-replay), and the shared ticket keys.
The in-memory store lives in the core; the Redis store (``tlsmith.stores_redis``) sits
above it behind the same protocol, answers within a short socket timeout and, when it
cannot, is treated as "no session / not fresh" so the handshake falls back to a full one.

Ticket format (RFC 5077 §4's recommended shape, with an AEAD instead of CBC + HMAC)::

    key_name[16] | nonce[12] | AES-256-GCM(key, nonce, state, aad=key_name)

A ticket sealed under the current key is accepted; under the previous key it is accepted
and *renewed* (a fresh ticket is issued); under any older key it is ignored and the
handshake is a full one.
"""

from __future__ import annotations

import hmac
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tlsmith.codec.buffer import Reader, Writer
from tlsmith.codec.enums import CertificateType, CipherSuite, ProtocolVersion, member
from tlsmith.errors import DecodeError, UsageError
from tlsmith.frozen import fast_init
from tlsmith.session import read_alps, write_alps

KEY_NAME_LEN = 16
_NONCE_LEN = 12
_TAG_LEN = 16
_STATE_FORMAT = 1
# The fixed-size runs of a ServerSessionState (see ``to_bytes``), big-endian.
_FORMAT_VERSION_SUITE = struct.Struct(">BHH")
_VERSION_SUITE = struct.Struct(">HH")
_ISSUED_LIFETIME_AGE = struct.Struct(">QII")
_EMS_EARLY_VERDICT = struct.Struct(">BIB")
_LENGTH8: tuple[bytes, ...] = tuple(bytes((i,)) for i in range(256))
# Known members by value (``from_bytes``'s fast path; other values: the checked reader).
_VERSION_BY_VALUE: dict[int, ProtocolVersion] = dict(ProtocolVersion._value2member_map_)
_SUITE_BY_VALUE: dict[int, CipherSuite] = dict(CipherSuite._value2member_map_)
#: The smallest ticket ``open_ticket`` will try: name, nonce, tag and a minimal state.
MIN_TICKET_LEN = KEY_NAME_LEN + _NONCE_LEN + _TAG_LEN + 8


@dataclass(frozen=True)
class TicketKey:
    """One ticket-encryption key: a public 16-byte name and a 32-byte AES-256-GCM key."""

    name: bytes
    key: bytes = field(repr=False)
    created_at: float = 0.0

    def __post_init__(self) -> None:
        if len(self.name) != KEY_NAME_LEN or len(self.key) != 32:
            raise UsageError("a ticket key is a 16-byte name and a 32-byte key")

    @classmethod
    def generate(cls, random: Callable[[int], bytes], now: float) -> TicketKey:
        return cls(random(KEY_NAME_LEN), random(32), now)

    def to_bytes(self) -> bytes:
        return self.name + self.key + int(self.created_at * 1000).to_bytes(8, "big")

    @classmethod
    def from_bytes(cls, data: bytes) -> TicketKey:
        if len(data) != KEY_NAME_LEN + 32 + 8:
            raise DecodeError("a stored ticket key has the wrong length")
        return cls(data[:16], data[16:48], int.from_bytes(data[48:], "big") / 1000)


@dataclass(frozen=True)
class TicketKeys:
    """The current key (seals new tickets) and the previous one (still opens tickets,
    which are then renewed)."""

    current: TicketKey
    previous: TicketKey | None = None

    def rotated(self, new: TicketKey) -> TicketKeys:
        return TicketKeys(new, self.current)


@fast_init
@dataclass(frozen=True, slots=True)
class ServerSessionState:
    """What a server needs to resume a session, sealed into a ticket or cached by ID."""

    version: ProtocolVersion
    cipher_suite: CipherSuite
    secret: bytes = field(repr=False)  # TLS 1.3: the ticket's PSK; TLS 1.2: master secret
    issued_at: float  # the server's clock when the ticket/session was made (seconds)
    lifetime: int
    ticket_age_add: int = 0  # TLS 1.3
    server_name: str | None = None
    alpn: str | None = None
    extended_master_secret: bool = True  # TLS 1.2 (RFC 7627 §5.3)
    max_early_data: int = 0  # TLS 1.3: what the ticket allowed
    client_certificates: tuple[bytes, ...] = field(default=(), repr=False)
    client_certificate_verified: bool = False
    # TLS 1.3 ALPS (draft-vvv-tls-alps): (our settings, the client's), None if not used.
    application_settings: tuple[bytes, bytes] | None = field(default=None, repr=False)
    # RFC 7250: the type of the certificate the server authenticated with (answered
    # again in server_certificate_type when the session resumes).
    server_certificate_type: CertificateType = CertificateType.X509
    # The application's verify_callback accepted the client's chain (tlsmith.x509.callback).
    client_certificate_accepted_by_callback: bool = False

    def to_bytes(self) -> bytes:
        secret = self.secret
        sni = (self.server_name or "").encode()
        alpn = (self.alpn or "").encode()
        if (self.client_certificates or (len(secret) | len(sni) | len(alpn)) > 0xFF
                or self.server_certificate_type != CertificateType.X509
                or self.application_settings is not None):
            return self._to_bytes_written()
        # The common state (no client chain, no trailers) joined directly: the same
        # bytes as ``_to_bytes_written``.
        return b"".join((
            _FORMAT_VERSION_SUITE.pack(_STATE_FORMAT, self.version, self.cipher_suite),
            _LENGTH8[len(secret)], secret,
            _ISSUED_LIFETIME_AGE.pack(int(self.issued_at * 1000), self.lifetime,
                                      self.ticket_age_add),
            _LENGTH8[len(sni)], sni, _LENGTH8[len(alpn)], alpn,
            _EMS_EARLY_VERDICT.pack(
                int(self.extended_master_secret), self.max_early_data,
                int(self.client_certificate_verified)
                | int(self.client_certificate_accepted_by_callback) << 1),
            b"\x00\x00\x00",  # client certificates: an empty <0..2^24-1> vector
        ))

    def _to_bytes_written(self) -> bytes:
        # The fixed-size runs packed by struct (fewer calls; the same bytes as u8/u16/
        # u32/u64 one at a time, and out-of-range values still refused).
        w = Writer()
        w.raw(_FORMAT_VERSION_SUITE.pack(_STATE_FORMAT, self.version, self.cipher_suite))
        w.opaque(1, self.secret)
        w.raw(_ISSUED_LIFETIME_AGE.pack(int(self.issued_at * 1000), self.lifetime,
                                        self.ticket_age_add))
        w.opaque(1, (self.server_name or "").encode())
        w.opaque(1, (self.alpn or "").encode())
        # Bit 0: verified against client_trust; bit 1: accepted by the verify callback.
        w.raw(_EMS_EARLY_VERDICT.pack(
            int(self.extended_master_secret), self.max_early_data,
            int(self.client_certificate_verified)
            | int(self.client_certificate_accepted_by_callback) << 1))
        with w.vector(3):
            for der in self.client_certificates:
                w.opaque(3, der)
        # Optional trailers (older states end above): the certificate type, then ALPS.
        if (self.server_certificate_type != CertificateType.X509
                or self.application_settings is not None):
            w.u8(self.server_certificate_type)
            write_alps(w, self.application_settings)
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ServerSessionState:
        # The common state (what ``to_bytes`` joins directly: no client chain, no
        # trailer) read in place; anything else, and every error, by the checked reader.
        try:
            n = len(data)
            if (type(data) is bytes and data[0] == _STATE_FORMAT
                    and data[n - 3:] == b"\x00\x00\x00"):
                p = 6 + data[5]  # after the secret
                s = p + 16  # the server name's length
                q = s + 1 + data[s]  # the ALPN protocol's length
                a = q + 1 + data[q]  # the EMS / early data / verdict run
                if a + 9 == n:
                    version_value, suite_value = _VERSION_SUITE.unpack_from(data, 1)
                    version = _VERSION_BY_VALUE.get(version_value)
                    suite = _SUITE_BY_VALUE.get(suite_value)
                    if version is not None and suite is not None:
                        issued_ms, lifetime, age_add = _ISSUED_LIFETIME_AGE.unpack_from(
                            data, p)
                        ems_value, max_early, verdict = _EMS_EARLY_VERDICT.unpack_from(
                            data, a)
                        return cls(version, suite, data[6:p], issued_ms / 1000, lifetime,
                                   age_add, data[s + 1:q].decode() or None,
                                   data[q + 1:a].decode() or None, bool(ems_value),
                                   max_early, (), bool(verdict & 1), None,
                                   CertificateType.X509, bool(verdict & 2))
        except (IndexError, ValueError):
            pass
        return cls._from_bytes_checked(data)

    @classmethod
    def _from_bytes_checked(cls, data: bytes) -> ServerSessionState:
        with Reader(data, "session state") as r:
            if r.u8() != _STATE_FORMAT:
                raise DecodeError("unknown session state format")
            version_value, suite_value = _VERSION_SUITE.unpack(r.view(4))
            version = member(ProtocolVersion, version_value)
            suite = member(CipherSuite, suite_value)
            secret = r.opaque(1)
            issued_ms, lifetime, age_add = _ISSUED_LIFETIME_AGE.unpack(
                r.view(_ISSUED_LIFETIME_AGE.size))
            issued = issued_ms / 1000
            sni = r.opaque(1).decode() or None
            alpn = r.opaque(1).decode() or None
            ems_value, max_early, verdict = _EMS_EARLY_VERDICT.unpack(
                r.view(_EMS_EARLY_VERDICT.size))
            ems = bool(ems_value)
            chain = []
            with r.vector(3, what="client certificates") as v:
                while not v.at_end():
                    chain.append(v.opaque(3))
            server_type, alps = CertificateType.X509, None
            if not r.at_end():
                server_type = CertificateType(r.u8())
                alps = read_alps(r)
                if server_type == CertificateType.X509 and alps is None:
                    # to_bytes writes no trailer for these: a stray byte, not a state.
                    raise DecodeError("session state: a trailer with nothing in it")
        return cls(version, suite, secret, issued, lifetime, age_add, sni, alpn, ems,
                   max_early, tuple(chain), bool(verdict & 1), alps, server_type,
                   bool(verdict & 2))

    def expired(self, now: float) -> bool:
        return now >= self.issued_at + self.lifetime or now < self.issued_at - 60


@fast_init
@dataclass(frozen=True, slots=True)
class OpenedTicket:
    state: ServerSessionState
    renew: bool  # sealed under the previous key: issue a fresh ticket


def seal_ticket(keys: TicketKeys, state: ServerSessionState, nonce: bytes) -> bytes:
    """Encrypt and authenticate ``state`` under the current key (``nonce``: 12 random
    bytes from the connection's injected randomness)."""
    return seal_state(keys, state.to_bytes(), nonce)


def seal_state(keys: TicketKeys, state: bytes, nonce: bytes) -> bytes:
    """``seal_ticket`` of a state already serialized (``ServerSessionState.to_bytes``)."""
    k = keys.current
    return k.name + nonce + _aead(k.key).encrypt(nonce, state, k.name)


_AEADS: dict[bytes, AESGCM] = {}


def _aead(key: bytes) -> AESGCM:
    """The AES-GCM object of a ticket key: keyed once, not per ticket (a server seals
    and opens many tickets under the same few keys)."""
    aead = _AEADS.get(key)
    if aead is None:
        if len(_AEADS) >= 16:  # (rotated keys: keep only a few)
            _AEADS.clear()
        aead = _AEADS[key] = AESGCM(key)
    return aead


def open_ticket(keys: TicketKeys, ticket: bytes) -> OpenedTicket | None:
    """The state sealed in ``ticket``, or None if it is not one of ours (unknown or
    retired key, forged, truncated, altered): the caller then does a full handshake."""
    if len(ticket) < MIN_TICKET_LEN:
        return None
    name = ticket[:KEY_NAME_LEN]
    if hmac.compare_digest(name, keys.current.name):
        key, renew = keys.current, False
    elif keys.previous is not None and hmac.compare_digest(name, keys.previous.name):
        key, renew = keys.previous, True
    else:
        return None
    nonce = ticket[KEY_NAME_LEN:KEY_NAME_LEN + _NONCE_LEN]
    try:
        plain = _aead(key.key).decrypt(nonce, ticket[KEY_NAME_LEN + _NONCE_LEN:], name)
        state = ServerSessionState.from_bytes(plain)
    except (InvalidTag, DecodeError, ValueError):
        return None
    return OpenedTicket(state, renew)


__all__ = ["MIN_TICKET_LEN", "OpenedTicket", "ServerSessionState", "TicketKey",
           "TicketKeys", "open_ticket", "seal_state", "seal_ticket"]

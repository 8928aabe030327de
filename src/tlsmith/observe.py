"""What the core tells an observer: decoded messages, derived secrets, checks made.

The core only *emits* these records (to ``config.observer``); rendering them — the
ladder diagram, JSON, the NSS key log — lives above the core (trace.py, keylog.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from tlsmith.frozen import fast_init

Direction = Literal["sent", "received"]


class Epoch(StrEnum):
    """Which keys protect a record (RFC 8446 §5.2 / RFC 5246 §6.1)."""

    PLAINTEXT = "plaintext"
    EARLY = "early"  # TLS 1.3 0-RTT
    HANDSHAKE = "handshake"  # TLS 1.3 handshake traffic keys
    APPLICATION = "application"  # TLS 1.3 application keys; TLS 1.2 after ChangeCipherSpec


@fast_init
@dataclass(frozen=True, slots=True)
class MessageTrace:
    """A handshake message (or alert / CCS) that crossed the wire."""

    direction: Direction
    name: str  # e.g. "ClientHello", "Alert", "ChangeCipherSpec"
    message: Any  # the decoded frozen dataclass (or None for CCS)
    length: int  # bytes on the wire for the message itself (header included)
    epoch: Epoch
    time: float
    # The message's bytes (handshake: the 4-byte header and body; alert: 2 bytes; CCS:
    # b"\x01"), kept out of repr() (it may be large, and Finished is a MAC).
    raw: bytes = field(default=b"", repr=False)


@fast_init
@dataclass(frozen=True, slots=True)
class RecordTrace:
    """A record that crossed the wire (RFC 8446 §5 / RFC 5246 §6.2): the bytes as sent
    (``wire``: 5-byte header and fragment, ciphertext when protected) and what they carry
    (``content_type`` and ``plaintext``: for TLS 1.3 the inner type and content, without
    padding). Application data appears here only when someone observes."""

    direction: Direction
    content_type: int  # the real (inner) content type
    epoch: Epoch
    protected: bool
    wire: bytes = field(repr=False)
    plaintext: bytes = field(repr=False)
    time: float


@fast_init
@dataclass(frozen=True, slots=True)
class CompleteTrace:
    """The handshake is complete (the ``HandshakeComplete`` event was emitted)."""

    info: Any  # events.HandshakeInfo
    time: float


@fast_init
@dataclass(frozen=True, slots=True)
class SecretTrace:
    """A secret the key schedule derived; ``nss_label`` is set for key-log lines."""

    name: str  # RFC 8446 name, e.g. "client_handshake_traffic_secret"
    value: bytes = field(repr=False)
    client_random: bytes
    nss_label: str | None
    time: float


@fast_init
@dataclass(frozen=True, slots=True)
class CheckTrace:
    """A security check and its outcome (signature, Finished, certificate chain, ...)."""

    name: str
    ok: bool
    detail: str
    time: float


@fast_init
@dataclass(frozen=True, slots=True)
class NoteTrace:
    """A decision worth explaining (e.g. "server asked for a new key share: P-384")."""

    text: str
    time: float


TraceRecord = (MessageTrace | RecordTrace | SecretTrace | CheckTrace | NoteTrace
               | CompleteTrace)
Observer = Callable[[TraceRecord], None]


def combine_observers(*observers: Observer | None) -> Observer | None:
    """One observer that hands each record to every given one (None entries skipped)."""
    present = tuple(o for o in observers if o is not None)
    if not present:
        return None
    if len(present) == 1:
        return present[0]

    def fan_out(record: TraceRecord) -> None:
        for observer in present:
            observer(record)

    return fan_out

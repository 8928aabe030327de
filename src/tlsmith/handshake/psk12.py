"""TLS 1.2 PSK cipher suites: RFC 4279 (PSK), RFC 5489 (ECDHE_PSK), RFC 7905.

No certificates: the ServerKeyExchange carries an identity hint (plain PSK: omitted when
the hint is empty, RFC 4279 §2), the ClientKeyExchange the identity, and the pre-master
secret joins the PSK with N zero bytes (PSK) or the ECDH secret (ECDHE_PSK). The PSKs
are the configuration's ``external_psks`` that are not RFC 9258 imports (those belong
to TLS 1.3); the suites are used only when asked for in ``cipher_suites``.
"""

from __future__ import annotations

import hmac

from tlsmith.codec.buffer import Writer
from tlsmith.crypto.suites import SuiteInfo
from tlsmith.session import ExternalPsk, ImportedPsk

PSK_KEY_EXCHANGES = frozenset({"psk", "ecdhe_psk"})


def is_psk_suite(info: SuiteInfo) -> bool:
    return info.key_exchange in PSK_KEY_EXCHANGES


def tls12_psks(psks: tuple[ExternalPsk | ImportedPsk, ...]) -> tuple[ExternalPsk, ...]:
    """The PSKs a TLS 1.2 PSK suite may use (RFC 9258 imports are TLS 1.3 only)."""
    return tuple(p for p in psks if isinstance(p, ExternalPsk) and p.imported_from is None)


def for_hint(psks: tuple[ExternalPsk, ...], hint: bytes) -> ExternalPsk:
    """Client: the PSK whose identity is the server's hint, else our first (RFC 4279
    §5.2: the hint only helps the client choose)."""
    return next((p for p in psks if hint and p.identity == hint), psks[0])


def for_identity(psks: tuple[ExternalPsk, ...], identity: bytes) -> ExternalPsk | None:
    """Server: the PSK the client names."""
    found = None
    for p in psks:
        if hmac.compare_digest(p.identity, identity) and found is None:
            found = p
    return found


def premaster_secret(psk: bytes, other_secret: bytes | None) -> bytes:
    """RFC 4279 §2 / RFC 5489 §2: struct { opaque other_secret<0..2^16-1>; opaque
    psk<0..2^16-1>; } -- other_secret is N zero bytes (N = the PSK's length) for plain
    PSK, the ECDH shared secret for ECDHE_PSK."""
    w = Writer()
    w.opaque(2, bytes(len(psk)) if other_secret is None else other_secret)
    w.opaque(2, psk)
    return w.getvalue()

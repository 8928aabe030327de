"""Key exchange for every supported group, with randomness passed in.

``generate_key_share(group, random)`` derives the private key from ``random`` (a
``Callable[[int], bytes]``), so a handshake driven by a seeded generator is
reproducible byte for byte. The one exception is ML-KEM encapsulation on the server
side (``server_key_share`` for the ML-KEM groups): ``cryptography`` draws the
encapsulation randomness itself, so that server share is not reproducible.

Wire formats are RFC 8446 §4.2.8.1 (FFDHE: Y left-padded to the size of p) and
§4.2.8.2 (X25519/X448 raw; NIST curves UncompressedPointRepresentation),
draft-ietf-tls-mlkem for MLKEM768/MLKEM1024 (the client sends the encapsulation key,
the server the ciphertext) and draft-ietf-tls-ecdhe-mlkem for the hybrids. A malformed
peer value is ``IllegalParameter``.

FFDHE (RFC 7919) is computed with Python's ``pow``: ``cryptography`` has deprecated
finite-field DH. Python integers are not constant time; the exponents are ephemeral
(used for one exchange), which limits what a timing observer can learn.
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import TypeGuard, cast

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, x448, x25519
from cryptography.hazmat.primitives.asymmetric.mlkem import (
    MLKEM768PrivateKey,
    MLKEM768PublicKey,
    MLKEM1024PrivateKey,
    MLKEM1024PublicKey,
)

from tlsmith.codec.enums import NamedGroup
from tlsmith.errors import HandshakeFailure, IllegalParameter, InternalError

Random = Callable[[int], bytes]
"""Returns ``n`` random bytes (``os.urandom`` in production, a seeded stream in tests)."""

SUPPORTED_GROUPS: tuple[NamedGroup, ...] = (
    NamedGroup.X25519,
    NamedGroup.X448,
    NamedGroup.SECP256R1,
    NamedGroup.SECP384R1,
    NamedGroup.SECP521R1,
    NamedGroup.FFDHE2048,
    NamedGroup.FFDHE3072,
    NamedGroup.FFDHE4096,
    NamedGroup.X25519MLKEM768,
    NamedGroup.SECP256R1MLKEM768,
    NamedGroup.SECP384R1MLKEM1024,
    NamedGroup.MLKEM768,
    NamedGroup.MLKEM1024,
)


def system_random(n: int) -> bytes:
    """The operating system's CSPRNG (the production ``Random``)."""
    return os.urandom(n)


def deterministic_random(seed: bytes) -> Random:
    """A reproducible ``Random`` for tests: SHAKE-256(seed || counter) per call.
    Never use it for real connections."""
    counter = 0

    def random(n: int) -> bytes:
        nonlocal counter
        counter += 1
        return hashlib.shake_256(seed + counter.to_bytes(8, "big")).digest(n)

    return random


def _draw(random: Random, n: int) -> bytes:
    data = random(n)
    if len(data) != n:
        raise InternalError(f"the random source returned {len(data)} byte(s), not {n}")
    return data


# -- RFC 7919 FFDHE groups --------------------------------------------------------------
# Appendix A. tests/test_crypto_kx.py re-parses rfc7919.txt and checks these constants.
_FFDHE2048_P_HEX = (
    "FFFFFFFFFFFFFFFFADF85458A2BB4A9AAFDC5620273D3CF1D8B9C583CE2D3695"
    "A9E13641146433FBCC939DCE249B3EF97D2FE363630C75D8F681B202AEC4617A"
    "D3DF1ED5D5FD65612433F51F5F066ED0856365553DED1AF3B557135E7F57C935"
    "984F0C70E0E68B77E2A689DAF3EFE8721DF158A136ADE73530ACCA4F483A797A"
    "BC0AB182B324FB61D108A94BB2C8E3FBB96ADAB760D7F4681D4F42A3DE394DF4"
    "AE56EDE76372BB190B07A7C8EE0A6D709E02FCE1CDF7E2ECC03404CD28342F61"
    "9172FE9CE98583FF8E4F1232EEF28183C3FE3B1B4C6FAD733BB5FCBC2EC22005"
    "C58EF1837D1683B2C6F34A26C1B2EFFA886B423861285C97FFFFFFFFFFFFFFFF"
)
_FFDHE3072_P_HEX = (
    "FFFFFFFFFFFFFFFFADF85458A2BB4A9AAFDC5620273D3CF1D8B9C583CE2D3695"
    "A9E13641146433FBCC939DCE249B3EF97D2FE363630C75D8F681B202AEC4617A"
    "D3DF1ED5D5FD65612433F51F5F066ED0856365553DED1AF3B557135E7F57C935"
    "984F0C70E0E68B77E2A689DAF3EFE8721DF158A136ADE73530ACCA4F483A797A"
    "BC0AB182B324FB61D108A94BB2C8E3FBB96ADAB760D7F4681D4F42A3DE394DF4"
    "AE56EDE76372BB190B07A7C8EE0A6D709E02FCE1CDF7E2ECC03404CD28342F61"
    "9172FE9CE98583FF8E4F1232EEF28183C3FE3B1B4C6FAD733BB5FCBC2EC22005"
    "C58EF1837D1683B2C6F34A26C1B2EFFA886B4238611FCFDCDE355B3B6519035B"
    "BC34F4DEF99C023861B46FC9D6E6C9077AD91D2691F7F7EE598CB0FAC186D91C"
    "AEFE130985139270B4130C93BC437944F4FD4452E2D74DD364F2E21E71F54BFF"
    "5CAE82AB9C9DF69EE86D2BC522363A0DABC521979B0DEADA1DBF9A42D5C4484E"
    "0ABCD06BFA53DDEF3C1B20EE3FD59D7C25E41D2B66C62E37FFFFFFFFFFFFFFFF"
)
_FFDHE4096_P_HEX = (
    "FFFFFFFFFFFFFFFFADF85458A2BB4A9AAFDC5620273D3CF1D8B9C583CE2D3695"
    "A9E13641146433FBCC939DCE249B3EF97D2FE363630C75D8F681B202AEC4617A"
    "D3DF1ED5D5FD65612433F51F5F066ED0856365553DED1AF3B557135E7F57C935"
    "984F0C70E0E68B77E2A689DAF3EFE8721DF158A136ADE73530ACCA4F483A797A"
    "BC0AB182B324FB61D108A94BB2C8E3FBB96ADAB760D7F4681D4F42A3DE394DF4"
    "AE56EDE76372BB190B07A7C8EE0A6D709E02FCE1CDF7E2ECC03404CD28342F61"
    "9172FE9CE98583FF8E4F1232EEF28183C3FE3B1B4C6FAD733BB5FCBC2EC22005"
    "C58EF1837D1683B2C6F34A26C1B2EFFA886B4238611FCFDCDE355B3B6519035B"
    "BC34F4DEF99C023861B46FC9D6E6C9077AD91D2691F7F7EE598CB0FAC186D91C"
    "AEFE130985139270B4130C93BC437944F4FD4452E2D74DD364F2E21E71F54BFF"
    "5CAE82AB9C9DF69EE86D2BC522363A0DABC521979B0DEADA1DBF9A42D5C4484E"
    "0ABCD06BFA53DDEF3C1B20EE3FD59D7C25E41D2B669E1EF16E6F52C3164DF4FB"
    "7930E9E4E58857B6AC7D5F42D69F6D187763CF1D5503400487F55BA57E31CC7A"
    "7135C886EFB4318AED6A1E012D9E6832A907600A918130C46DC778F971AD0038"
    "092999A333CB8B7A1A1DB93D7140003C2A4ECEA9F98D0ACC0A8291CDCEC97DCF"
    "8EC9B55A7F88A46B4DB5A851F44182E1C68A007E5E655F6AFFFFFFFFFFFFFFFF"
)


@dataclass(frozen=True)
class FFDHEGroup:
    """A RFC 7919 group: generator 2, safe prime p, and the secret exponent size we use.

    RFC 7919 §5.2 allows a short exponent of at least 225/275/325 bits for
    ffdhe2048/3072/4096; we use 256/320/384 bits.
    """

    group: NamedGroup
    p: int
    g: int
    exponent_bits: int

    @property
    def p_len(self) -> int:
        return (self.p.bit_length() + 7) // 8


FFDHE_GROUPS: dict[NamedGroup, FFDHEGroup] = {
    g.group: g
    for g in (
        FFDHEGroup(NamedGroup.FFDHE2048, int(_FFDHE2048_P_HEX, 16), 2, 256),
        FFDHEGroup(NamedGroup.FFDHE3072, int(_FFDHE3072_P_HEX, 16), 2, 320),
        FFDHEGroup(NamedGroup.FFDHE4096, int(_FFDHE4096_P_HEX, 16), 2, 384),
    )
}


def ffdhe_params(group: NamedGroup) -> tuple[int, int]:
    """(p, g) of a RFC 7919 group, e.g. for a TLS 1.2 ServerDHParams (RFC 5246 §7.4.3)."""
    try:
        params = FFDHE_GROUPS[group]
    except KeyError:
        raise InternalError(f"{group} is not a supported finite-field group") from None
    return params.p, params.g


def ffdhe_group_for_params(p: int, g: int) -> NamedGroup | None:
    """The named group whose (p, g) a TLS 1.2 server sent, or None for custom parameters
    (RFC 7919 §4: a client may refuse groups it does not recognise)."""
    for params in FFDHE_GROUPS.values():
        if params.p == p and params.g == g:
            return params.group
    return None


# -- NIST curves -------------------------------------------------------------------------
# Group orders (SEC 2 / FIPS 186-4 D.1.2), used to map random bytes to a scalar in [1, n-1].

@dataclass(frozen=True)
class _Curve:
    curve: ec.EllipticCurve
    order: int
    coord_len: int

    @property
    def point_len(self) -> int:
        return 1 + 2 * self.coord_len


_CURVES: dict[NamedGroup, _Curve] = {
    NamedGroup.SECP256R1: _Curve(
        ec.SECP256R1(),
        0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
        32,
    ),
    NamedGroup.SECP384R1: _Curve(
        ec.SECP384R1(),
        int("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF"
            "581A0DB248B0A77AECEC196ACCC52973", 16),
        48,
    ),
    NamedGroup.SECP521R1: _Curve(
        ec.SECP521R1(),
        int("01FF" + "FFFFFFFF" * 7 + "FFFFFFFA51868783BF2F966B7FCC0148F709A5D0"
            "3BB5C9B8899C47AEBB6FB71E91386409", 16),
        66,
    ),
}

_X25519_LEN = 32
_X448_LEN = 56
_MLKEM_SEED_LEN = 64


def key_exchange_length(group: NamedGroup, *, server: bool = False) -> int | None:
    """The exact length of a key_exchange value for ``group``, or None if unsupported.
    ``server`` says who *sent* the value: it matters only for hybrid groups, whose
    server share is a KEM ciphertext."""
    if group == NamedGroup.X25519:
        return _X25519_LEN
    if group == NamedGroup.X448:
        return _X448_LEN
    if group in _CURVES:
        return _CURVES[group].point_len
    if group in FFDHE_GROUPS:
        return FFDHE_GROUPS[group].p_len
    kem = _KEM_GROUPS.get(group)
    if kem is not None:
        ecdh = key_exchange_length(kem.ecdh) if kem.ecdh is not None else 0
        return (kem.ct_len if server else kem.ek_len) + (ecdh or 0)
    return None


def validate_key_exchange_length(group: NamedGroup, data: bytes, *, server: bool) -> None:
    """Raise ``IllegalParameter`` if ``data`` cannot be a ``group`` share.

    ``server=True`` for a share a server sent (ServerHello), False for a client's
    (ClientHello) -- so a server checking a client's key_share passes ``server=False``.
    RFC 8446 §4.2.8.1/§4.2.8.2 fix the lengths; draft-ietf-tls-ecdhe-mlkem §4 the hybrid.
    """
    expected = key_exchange_length(group, server=server)
    if expected is None:
        raise IllegalParameter(f"key_share for unsupported group {group}")
    if len(data) != expected:
        sender = "server" if server else "client"
        raise IllegalParameter(
            f"{group} key_exchange from the {sender} is {len(data)} byte(s), "
            f"expected {expected}"
        )


@cache
def group_available(group: NamedGroup) -> bool:
    """Whether this build can use ``group`` (X448 and ML-KEM depend on the backend)."""
    try:
        if group == NamedGroup.X448:
            x448.X448PrivateKey.from_private_bytes(bytes(_X448_LEN))
            return True
        kem = _KEM_GROUPS.get(group)
        if kem is not None:
            kem.private.from_seed_bytes(bytes(_MLKEM_SEED_LEN))
            return True
    except UnsupportedAlgorithm:
        return False
    return group in SUPPORTED_GROUPS


# -- key shares --------------------------------------------------------------------------

class KeyShareSecret(ABC):
    """Our ephemeral private key for one group; ``public_bytes`` is what goes on the wire.

    Used by a TLS 1.3 client (the share it offers) and by a TLS 1.2 endpoint that sends
    its public value first.
    """

    __slots__ = ("group", "public_bytes")

    def __init__(self, group: NamedGroup, public_bytes: bytes) -> None:
        self.group = group
        self.public_bytes = public_bytes

    @abstractmethod
    def exchange(self, peer_key_exchange: bytes, *, tls12_dh_strip: bool = False) -> bytes:
        """The shared secret with the peer's key_exchange value.

        ``tls12_dh_strip`` matters only for FFDHE: TLS 1.2 strips leading zero bytes of
        Z (RFC 5246 §8.1.2) and may send Y without padding, TLS 1.3 pads both to the size
        of p (RFC 8446 §4.2.8.1, §7.4.1). A Y outside 1 < Y < p-1 is IllegalParameter,
        or HandshakeFailure in TLS 1.2 mode (RFC 7919 §3, §4)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.group}>"


_X25519_BY_TYPE: dict[type, bool] = {}


def _is_x25519(private: object) -> TypeGuard[x25519.X25519PrivateKey]:
    """isinstance(private, X25519PrivateKey), remembered per class (an ABC check)."""
    t = type(private)
    known = _X25519_BY_TYPE.get(t)
    if known is None:
        known = _X25519_BY_TYPE[t] = isinstance(private, x25519.X25519PrivateKey)
    return known


def _x_exchange(
    private: x25519.X25519PrivateKey | x448.X448PrivateKey, peer: bytes, group: NamedGroup
) -> bytes:
    try:
        if _is_x25519(private):
            if len(peer) != _X25519_LEN:
                raise IllegalParameter(f"x25519 public key of {len(peer)} bytes, expected 32")
            shared = private.exchange(x25519.X25519PublicKey.from_public_bytes(peer))
        else:
            if len(peer) != _X448_LEN:
                raise IllegalParameter(f"x448 public key of {len(peer)} bytes, expected 56")
            shared = cast(x448.X448PrivateKey, private).exchange(
                x448.X448PublicKey.from_public_bytes(peer))
    except ValueError:
        # OpenSSL refuses low-order points because they give an all-zero secret.
        shared = b""
    # RFC 8446 §7.4.2 / RFC 7748 §6.1: an all-zero shared secret MUST abort.
    if not any(shared):
        raise IllegalParameter(f"{group}: the peer's public key gives an all-zero shared secret")
    return shared


class _XShare(KeyShareSecret):
    __slots__ = ("_private",)

    def __init__(
        self, group: NamedGroup, private: x25519.X25519PrivateKey | x448.X448PrivateKey
    ) -> None:
        super().__init__(group, private.public_key().public_bytes_raw())
        self._private = private

    def exchange(self, peer_key_exchange: bytes, *, tls12_dh_strip: bool = False) -> bytes:
        return _x_exchange(self._private, bytes(peer_key_exchange), self.group)


def _load_ec_point(group: NamedGroup, data: bytes) -> ec.EllipticCurvePublicKey:
    curve = _CURVES[group]
    # RFC 8446 §4.2.8.2: UncompressedPointRepresentation, legacy_form = 4 (RFC 8422 §5.4.1
    # likewise for TLS 1.2, where we never negotiate compressed points).
    if len(data) != curve.point_len or data[0] != 4:
        raise IllegalParameter(
            f"{group}: expected an uncompressed point of {curve.point_len} bytes "
            f"starting with 0x04, got {len(data)} byte(s)"
        )
    try:
        # Checks that the point lies on the curve (RFC 8446 §4.2.8.2 "MUST validate").
        return ec.EllipticCurvePublicKey.from_encoded_point(curve.curve, data)
    except ValueError:
        raise IllegalParameter(f"{group}: the peer's point is not on the curve") from None


class _ECShare(KeyShareSecret):
    __slots__ = ("_private",)

    def __init__(self, group: NamedGroup, private: ec.EllipticCurvePrivateKey) -> None:
        numbers = private.public_key().public_numbers()
        n = _CURVES[group].coord_len
        super().__init__(
            group, b"\x04" + numbers.x.to_bytes(n, "big") + numbers.y.to_bytes(n, "big")
        )
        self._private = private

    def exchange(self, peer_key_exchange: bytes, *, tls12_dh_strip: bool = False) -> bytes:
        peer = _load_ec_point(self.group, bytes(peer_key_exchange))
        # RFC 8446 §7.4.2: the x-coordinate, fixed length, leading zeros kept.
        return self._private.exchange(ec.ECDH(), peer)


class _FFDHEShare(KeyShareSecret):
    __slots__ = ("_params", "_x")

    def __init__(self, params: FFDHEGroup, x: int) -> None:
        y = pow(params.g, x, params.p)
        # RFC 8446 §4.2.8.1: Y left-padded with zeros to the size of p.
        super().__init__(params.group, y.to_bytes(params.p_len, "big"))
        self._params = params
        self._x = x

    def exchange(self, peer_key_exchange: bytes, *, tls12_dh_strip: bool = False) -> bytes:
        p = self._params.p
        p_len = self._params.p_len
        if not tls12_dh_strip and len(peer_key_exchange) != p_len:
            # RFC 8446 §4.2.8.1: the value is padded to exactly the size of p.
            raise IllegalParameter(
                f"{self.group}: public value of {len(peer_key_exchange)} byte(s), "
                f"expected {p_len}"
            )
        y = int.from_bytes(peer_key_exchange, "big")
        # RFC 8446 §4.2.8.1 / RFC 7919 §5.1: peers MUST check 1 < Y < p-1 (p is a safe
        # prime, so this excludes every small subgroup).
        if not 1 < y < p - 1:
            message = f"{self.group}: peer public value outside 1 < Y < p-1"
            if tls12_dh_strip:
                # RFC 7919 §3 (dh_Ys) and §4 (dh_Yc): handshake_failure in TLS 1.2.
                raise HandshakeFailure(message)
            raise IllegalParameter(message)
        z = pow(y, self._x, p)
        if tls12_dh_strip:
            # RFC 5246 §8.1.2: leading zero bytes of Z are stripped.
            return z.to_bytes((z.bit_length() + 7) // 8, "big")
        # RFC 8446 §7.4.1: left-padded to the size of the prime.
        return z.to_bytes(p_len, "big")


@dataclass(frozen=True)
class _KEMGroup:
    """A pure ML-KEM group (draft-ietf-tls-mlkem) or an ECDHE + ML-KEM hybrid
    (draft-ietf-tls-ecdhe-mlkem §3: the two shares and secrets are concatenated, ML-KEM
    first for X25519MLKEM768, the ECDH part first for the SecP*r1MLKEM* groups)."""

    private: type[MLKEM768PrivateKey] | type[MLKEM1024PrivateKey]
    public: type[MLKEM768PublicKey] | type[MLKEM1024PublicKey]
    ek_len: int  # FIPS 203 encapsulation key (the client's share)
    ct_len: int  # FIPS 203 ciphertext (the server's share)
    ecdh: NamedGroup | None = None
    kem_first: bool = True


_KEM_GROUPS: dict[NamedGroup, _KEMGroup] = {
    NamedGroup.MLKEM768: _KEMGroup(MLKEM768PrivateKey, MLKEM768PublicKey, 1184, 1088),
    NamedGroup.MLKEM1024: _KEMGroup(MLKEM1024PrivateKey, MLKEM1024PublicKey, 1568, 1568),
    NamedGroup.X25519MLKEM768: _KEMGroup(
        MLKEM768PrivateKey, MLKEM768PublicKey, 1184, 1088, NamedGroup.X25519),
    NamedGroup.SECP256R1MLKEM768: _KEMGroup(
        MLKEM768PrivateKey, MLKEM768PublicKey, 1184, 1088, NamedGroup.SECP256R1, False),
    NamedGroup.SECP384R1MLKEM1024: _KEMGroup(
        MLKEM1024PrivateKey, MLKEM1024PublicKey, 1568, 1568, NamedGroup.SECP384R1, False),
}
#: Groups with no TLS 1.2 form (RFC 8422 ECParameters name only classical curves).
TLS13_ONLY_GROUPS: frozenset[NamedGroup] = frozenset(_KEM_GROUPS)


def _split(kem: _KEMGroup, data: bytes, kem_len: int) -> tuple[bytes, bytes]:
    """(ML-KEM part, ECDH part) of a key_exchange value whose length was checked."""
    if kem.kem_first:
        return data[:kem_len], data[kem_len:]
    return data[len(data) - kem_len:], data[:len(data) - kem_len]


def _join(kem: _KEMGroup, kem_part: bytes, ecdh_part: bytes) -> bytes:
    return kem_part + ecdh_part if kem.kem_first else ecdh_part + kem_part


class _KEMShare(KeyShareSecret):
    """A client's ML-KEM decapsulation key, with the hybrid's ECDH key if any."""

    __slots__ = ("_ecdh", "_kem", "_params")

    def __init__(self, group: NamedGroup, kem: MLKEM768PrivateKey | MLKEM1024PrivateKey,
                 ecdh: KeyShareSecret | None) -> None:
        params = _KEM_GROUPS[group]
        ek = kem.public_key().public_bytes_raw()
        super().__init__(group, _join(params, ek, ecdh.public_bytes if ecdh else b""))
        self._params = params
        self._kem = kem
        self._ecdh = ecdh

    def exchange(self, peer_key_exchange: bytes, *, tls12_dh_strip: bool = False) -> bytes:
        validate_key_exchange_length(self.group, peer_key_exchange, server=True)
        ct, ecdh_part = _split(self._params, bytes(peer_key_exchange), self._params.ct_len)
        try:
            kem_secret = self._kem.decapsulate(ct)
        except ValueError:
            raise IllegalParameter(f"{self.group.name}: malformed ML-KEM ciphertext") from None
        if self._ecdh is None:
            return kem_secret
        return _join(self._params, kem_secret, self._ecdh.exchange(ecdh_part))


def _kem_server_share(group: NamedGroup, client_key_exchange: bytes, random: Random
                      ) -> tuple[bytes, bytes]:
    params = _KEM_GROUPS[group]
    validate_key_exchange_length(group, client_key_exchange, server=False)
    ek, ecdh_part = _split(params, bytes(client_key_exchange), params.ek_len)
    try:
        # FIPS 203 §7.2 input check (modulus check) happens when loading the key.
        kem_public = params.public.from_public_bytes(ek)
    except ValueError:
        raise IllegalParameter(f"{group.name}: invalid ML-KEM encapsulation key") from None
    ecdh_public, ecdh_secret = b"", b""
    if params.ecdh is not None:
        share = generate_key_share(params.ecdh, random)
        ecdh_public, ecdh_secret = share.public_bytes, share.exchange(ecdh_part)
    kem_secret, ciphertext = kem_public.encapsulate()
    return _join(params, ciphertext, ecdh_public), _join(params, kem_secret, ecdh_secret)


def generate_key_share(group: NamedGroup, random: Random) -> KeyShareSecret:
    """A fresh ephemeral key for ``group``, derived entirely from ``random``."""
    if group == NamedGroup.X25519:
        return _XShare(group, x25519.X25519PrivateKey.from_private_bytes(
            _draw(random, _X25519_LEN)))
    if group == NamedGroup.X448:
        return _XShare(group, x448.X448PrivateKey.from_private_bytes(_draw(random, _X448_LEN)))
    curve = _CURVES.get(group)
    if curve is not None:
        # 64 extra bits make the bias of the reduction negligible (FIPS 186-4 B.4.1).
        n_len = (curve.order.bit_length() + 7) // 8
        value = int.from_bytes(_draw(random, n_len + 8), "big")
        scalar = value % (curve.order - 1) + 1
        return _ECShare(group, ec.derive_private_key(scalar, curve.curve))
    params = FFDHE_GROUPS.get(group)
    if params is not None:
        bits = params.exponent_bits
        x = int.from_bytes(_draw(random, bits // 8), "big") | (1 << (bits - 1))
        return _FFDHEShare(params, x)
    kem = _KEM_GROUPS.get(group)
    if kem is not None:
        # FIPS 203 §7.1: the 64-byte seed (d || z) determines the key pair.
        private = kem.private.from_seed_bytes(_draw(random, _MLKEM_SEED_LEN))
        ecdh = generate_key_share(kem.ecdh, random) if kem.ecdh is not None else None
        return _KEMShare(group, private, ecdh)
    raise InternalError(f"cannot generate a key share for unsupported group {group}")


def server_key_share(
    group: NamedGroup, client_key_exchange: bytes, random: Random
) -> tuple[bytes, bytes]:
    """TLS 1.3 server side: (our key_exchange for the ServerHello, shared secret).

    For the ML-KEM groups the encapsulation randomness comes from ``cryptography``,
    not from ``random`` (only a hybrid's ECDH half is reproducible).
    """
    if group == NamedGroup.X25519:
        # The common group, without a KeyShareSecret around the key (it is used once).
        private = x25519.X25519PrivateKey.from_private_bytes(_draw(random, _X25519_LEN))
        return (private.public_key().public_bytes_raw(),
                _x_exchange(private, bytes(client_key_exchange), group))
    if group in _KEM_GROUPS:
        return _kem_server_share(group, client_key_exchange, random)
    share = generate_key_share(group, random)
    return share.public_bytes, share.exchange(client_key_exchange)


def dh_share_for_params(p: int, g: int, random: Random) -> KeyShareSecret:
    """A TLS 1.2 client's DH key for the group a server chose (RFC 5246 §7.4.3, RFC 7919
    §4). A RFC 7919 group uses its short exponent; custom parameters get a full-size
    exponent, since nothing is known of the subgroup structure."""
    named = ffdhe_group_for_params(p, g)
    if named is not None:
        params = FFDHE_GROUPS[named]
    else:
        params = FFDHEGroup(NamedGroup(0), p, g, p.bit_length() - 1)
    bits = params.exponent_bits
    x = int.from_bytes(_draw(random, (bits + 7) // 8), "big") % (1 << bits)
    x |= 1 << (bits - 1)
    return _FFDHEShare(params, x)

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.hazmat.primitives.asymmetric.mlkem import (
    MLKEM768PrivateKey,
    MLKEM1024PrivateKey,
    MLKEM1024PublicKey,
)

from tlsmith.codec.enums import NamedGroup
from tlsmith.crypto import kx
from tlsmith.crypto.kx import (
    FFDHE_GROUPS,
    SUPPORTED_GROUPS,
    deterministic_random,
    ffdhe_group_for_params,
    ffdhe_params,
    generate_key_share,
    group_available,
    key_exchange_length,
    server_key_share,
    system_random,
    validate_key_exchange_length,
)
from tlsmith.errors import HandshakeFailure, IllegalParameter, InternalError

# RFC 7919 as published, kept in the repository (tests/vectors/README.md).
RFC7919 = Path(__file__).resolve().parent / "vectors" / "rfc7919.txt"

DH_GROUPS = [g for g in SUPPORTED_GROUPS if g not in kx.TLS13_ONLY_GROUPS]
NIST = [NamedGroup.SECP256R1, NamedGroup.SECP384R1, NamedGroup.SECP521R1]


def rng(seed: str = "kx") -> kx.Random:
    return deterministic_random(seed.encode())


def test_kx_supported_groups_are_available() -> None:
    assert set(SUPPORTED_GROUPS) == {
        NamedGroup.X25519, NamedGroup.X448, NamedGroup.SECP256R1, NamedGroup.SECP384R1,
        NamedGroup.SECP521R1, NamedGroup.FFDHE2048, NamedGroup.FFDHE3072,
        NamedGroup.FFDHE4096, NamedGroup.X25519MLKEM768, NamedGroup.SECP256R1MLKEM768,
        NamedGroup.SECP384R1MLKEM1024, NamedGroup.MLKEM768, NamedGroup.MLKEM1024}
    for group in SUPPORTED_GROUPS:
        assert group_available(group)
    assert not group_available(NamedGroup.FFDHE8192)
    assert not group_available(NamedGroup(0x0A0A))


@pytest.mark.parametrize("group", SUPPORTED_GROUPS, ids=str)
def test_kx_client_and_server_agree(group: NamedGroup) -> None:
    client = generate_key_share(group, rng("client"))
    assert client.group == group
    assert len(client.public_bytes) == key_exchange_length(group, server=False)
    validate_key_exchange_length(group, client.public_bytes, server=False)
    server_share, server_secret = server_key_share(group, client.public_bytes, rng("server"))
    assert len(server_share) == key_exchange_length(group, server=True)
    validate_key_exchange_length(group, server_share, server=True)
    assert client.exchange(server_share) == server_secret
    assert any(server_secret)


@pytest.mark.parametrize("group", DH_GROUPS, ids=str)
def test_kx_dh_exchange_is_symmetric(group: NamedGroup) -> None:
    a = generate_key_share(group, rng("a"))
    b = generate_key_share(group, rng("b"))
    assert a.public_bytes != b.public_bytes
    assert a.exchange(b.public_bytes) == b.exchange(a.public_bytes)


@pytest.mark.parametrize("group", SUPPORTED_GROUPS, ids=str)
def test_kx_key_share_is_deterministic_from_the_random_source(group: NamedGroup) -> None:
    first = generate_key_share(group, rng("same"))
    second = generate_key_share(group, rng("same"))
    other = generate_key_share(group, rng("other"))
    assert first.public_bytes == second.public_bytes
    assert first.public_bytes != other.public_bytes


@pytest.mark.parametrize("group", DH_GROUPS, ids=str)
def test_kx_server_share_is_deterministic_for_dh_groups(group: NamedGroup) -> None:
    client = generate_key_share(group, rng("client"))
    assert (server_key_share(group, client.public_bytes, rng("s"))
            == server_key_share(group, client.public_bytes, rng("s")))


@pytest.mark.parametrize("group", SUPPORTED_GROUPS, ids=str)
def test_kx_wrong_lengths_are_illegal_parameter(group: NamedGroup) -> None:
    client = generate_key_share(group, rng("c"))
    server_share, _ = server_key_share(group, client.public_bytes, rng("s"))
    for bad in (server_share[:-1], server_share + b"\x01", b""):
        with pytest.raises(IllegalParameter):
            client.exchange(bad)
        with pytest.raises(IllegalParameter):
            validate_key_exchange_length(group, bad, server=True)
    for bad in (client.public_bytes[:-1], client.public_bytes + b"\x01", b""):
        with pytest.raises(IllegalParameter):
            server_key_share(group, bad, rng("s"))
        with pytest.raises(IllegalParameter):
            validate_key_exchange_length(group, bad, server=False)


def test_kx_random_source_of_wrong_length_is_internal_error() -> None:
    with pytest.raises(InternalError):
        generate_key_share(NamedGroup.X25519, lambda n: bytes(n - 1))


def test_kx_unsupported_group() -> None:
    for group in (NamedGroup.FFDHE8192, NamedGroup.MLKEM512, NamedGroup(0x1A1A)):
        assert key_exchange_length(group) is None
        with pytest.raises(InternalError):
            generate_key_share(group, system_random)
        with pytest.raises(IllegalParameter):
            validate_key_exchange_length(group, b"\x00" * 32, server=False)


def test_kx_system_random_length() -> None:
    assert len(system_random(17)) == 17
    generate_key_share(NamedGroup.X25519, system_random)


def test_kx_deterministic_random_is_a_stream() -> None:
    r1, r2 = rng("x"), rng("x")
    assert [r1(5), r1(40)] == [r2(5), r2(40)]
    assert rng("x")(16) != rng("y")(16)


# -- X25519 / X448 ---------------------------------------------------------------------

# RFC 7748 §6.1: low-order points give an all-zero shared secret.
X25519_LOW_ORDER = [
    bytes(32),
    b"\x01" + bytes(31),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
]
X448_LOW_ORDER = [bytes(56), b"\x01" + bytes(55)]


@pytest.mark.parametrize("point", X25519_LOW_ORDER, ids=lambda p: p[:4].hex())
def test_kx_x25519_low_order_point_is_illegal_parameter(point: bytes) -> None:
    share = generate_key_share(NamedGroup.X25519, rng())
    with pytest.raises(IllegalParameter, match="all-zero"):
        share.exchange(point)
    with pytest.raises(IllegalParameter):
        server_key_share(NamedGroup.X25519, point, rng())


@pytest.mark.parametrize("point", X448_LOW_ORDER, ids=lambda p: p[:4].hex())
def test_kx_x448_low_order_point_is_illegal_parameter(point: bytes) -> None:
    share = generate_key_share(NamedGroup.X448, rng())
    with pytest.raises(IllegalParameter):
        share.exchange(point)


def test_kx_x25519_matches_rfc7748_section_6_1() -> None:
    # RFC 7748 §6.1 test vector (Alice's private key, Bob's public key, shared K).
    alice = kx._XShare(
        NamedGroup.X25519,
        x25519.X25519PrivateKey.from_private_bytes(bytes.fromhex(
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")))
    assert alice.public_bytes.hex() == (
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
    bob_public = bytes.fromhex(
        "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
    assert alice.exchange(bob_public).hex() == (
        "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")


# -- NIST curves -------------------------------------------------------------------------

@pytest.mark.parametrize("group", NIST, ids=str)
def test_kx_ec_compressed_point_is_illegal_parameter(group: NamedGroup) -> None:
    share = generate_key_share(group, rng())
    peer = generate_key_share(group, rng("peer")).public_bytes
    coord = (len(peer) - 1) // 2
    compressed = bytes([2 + (peer[-1] & 1)]) + peer[1 : 1 + coord]
    with pytest.raises(IllegalParameter):
        share.exchange(compressed)
    # Right length but the compressed/hybrid marker instead of 0x04.
    for marker in (2, 3, 6, 7):
        with pytest.raises(IllegalParameter):
            share.exchange(bytes([marker]) + peer[1:])
    with pytest.raises(IllegalParameter):
        share.exchange(b"\x00")  # point at infinity


@pytest.mark.parametrize("group", NIST, ids=str)
def test_kx_ec_point_not_on_curve_is_illegal_parameter(group: NamedGroup) -> None:
    share = generate_key_share(group, rng())
    peer = bytearray(generate_key_share(group, rng("peer")).public_bytes)
    peer[-1] ^= 1  # y changed: no longer on the curve
    with pytest.raises(IllegalParameter, match="not on the curve"):
        share.exchange(bytes(peer))
    with pytest.raises(IllegalParameter):
        server_key_share(group, bytes(peer), rng())
    coord = (len(peer) - 1) // 2
    with pytest.raises(IllegalParameter):
        share.exchange(b"\x04" + bytes(2 * coord))


@pytest.mark.parametrize("group", NIST, ids=str)
def test_kx_ec_order_constants(group: NamedGroup) -> None:
    curve = kx._CURVES[group]
    generator = ec.derive_private_key(1, curve.curve).public_key().public_numbers()
    minus_generator = ec.derive_private_key(curve.order - 1, curve.curve).public_key()
    numbers = minus_generator.public_numbers()
    assert (numbers.x, numbers.y != generator.y) == (generator.x, True)
    with pytest.raises(ValueError):
        ec.derive_private_key(curve.order, curve.curve)


@pytest.mark.parametrize("group", NIST, ids=str)
def test_kx_ec_public_bytes_is_uncompressed_point(group: NamedGroup) -> None:
    share = generate_key_share(group, rng())
    assert share.public_bytes[0] == 4
    point = ec.EllipticCurvePublicKey.from_encoded_point(
        kx._CURVES[group].curve, share.public_bytes)
    assert point.public_numbers().x == int.from_bytes(share.public_bytes[1:1 + (
        len(share.public_bytes) - 1) // 2], "big")


# -- FFDHE -------------------------------------------------------------------------------

def _rfc7919_hex(name: str, what: str) -> int:
    text = RFC7919.read_text()
    heading = re.search(rf"^A\.\d\.  {name}$", text, re.M)
    assert heading is not None
    start = text.index(f"The hexadecimal representation of {what} is:", heading.end())
    stop = text.index("The " + ("generator" if what == "p" else "estimated"), start)
    digits = re.findall(r"^ {4}((?:[0-9A-F]{8} ?)+)$", text[start:stop], re.M)
    return int("".join(digits).replace(" ", ""), 16)


@pytest.mark.parametrize("group", list(FFDHE_GROUPS), ids=str)
def test_kx_ffdhe_constants_match_rfc7919(group: NamedGroup) -> None:
    name = group.name.lower()
    p = _rfc7919_hex(name, "p")
    q = _rfc7919_hex(name, "q")
    params = FFDHE_GROUPS[group]
    assert params.p == p
    assert params.g == 2
    assert (p - 1) // 2 == q
    assert p.bit_length() == int(name.removeprefix("ffdhe"))
    assert ffdhe_params(group) == (p, 2)
    assert ffdhe_group_for_params(p, 2) == group
    # RFC 7919 Appendix A: minimum short-exponent sizes 225/275/325 bits.
    assert params.exponent_bits >= {2048: 225, 3072: 275, 4096: 325}[p.bit_length()]


def test_kx_ffdhe_custom_params_are_not_a_named_group() -> None:
    p, _ = ffdhe_params(NamedGroup.FFDHE2048)
    assert ffdhe_group_for_params(p, 5) is None
    assert ffdhe_group_for_params(23, 5) is None
    with pytest.raises(InternalError):
        ffdhe_params(NamedGroup.X25519)


@pytest.mark.parametrize("group", list(FFDHE_GROUPS), ids=str)
def test_kx_ffdhe_peer_value_range_is_checked(group: NamedGroup) -> None:
    p = FFDHE_GROUPS[group].p
    size = FFDHE_GROUPS[group].p_len
    share = generate_key_share(group, rng())
    # RFC 8446 §4.2.8.1: 1 < Y < p-1.
    for y in (0, 1, p - 1, p, 2**(8 * size) - 1):
        bad = y.to_bytes(size, "big")
        with pytest.raises(IllegalParameter, match="1 < Y < p-1"):
            share.exchange(bad)
        with pytest.raises(HandshakeFailure):  # RFC 7919 §3/§4 in TLS 1.2
            share.exchange(bad, tls12_dh_strip=True)
        with pytest.raises(IllegalParameter):
            server_key_share(group, bad, rng())
    share.exchange((2).to_bytes(size, "big"))
    share.exchange((p - 2).to_bytes(size, "big"))


def test_kx_ffdhe_tls12_strips_and_tls13_pads() -> None:
    group = NamedGroup.FFDHE2048
    a = generate_key_share(group, rng("a"))
    # Find a peer value whose shared secret has a leading zero byte (seed "b602" is the
    # first; starting near it keeps the test fast while staying a search).
    for i in range(600, 5600):
        b = generate_key_share(group, rng(f"b{i}"))
        padded = a.exchange(b.public_bytes)
        if padded[0] == 0:
            break
    else:  # pragma: no cover - probability (255/256)^5000
        pytest.fail("no shared secret with a leading zero byte found")
    assert len(padded) == 256
    stripped = a.exchange(b.public_bytes, tls12_dh_strip=True)
    assert stripped == padded.lstrip(b"\x00")
    assert int.from_bytes(stripped, "big") == int.from_bytes(padded, "big")
    # TLS 1.2 peers may send Y without padding; TLS 1.3 requires exactly len(p).
    small_y = b"\x04"
    assert a.exchange(small_y, tls12_dh_strip=True) == a.exchange(
        small_y.rjust(256, b"\x00"), tls12_dh_strip=True)
    with pytest.raises(IllegalParameter, match="expected 256"):
        a.exchange(small_y)


def test_kx_ffdhe_public_value_is_padded_to_p() -> None:
    for group, params in FFDHE_GROUPS.items():
        share = generate_key_share(group, rng(str(group)))
        assert len(share.public_bytes) == params.p_len
        assert 1 < int.from_bytes(share.public_bytes, "big") < params.p - 1


# -- X25519MLKEM768 ----------------------------------------------------------------------

def test_kx_x25519mlkem768_layout_and_round_trip() -> None:
    group = NamedGroup.X25519MLKEM768
    client = generate_key_share(group, rng("c"))
    assert len(client.public_bytes) == 1184 + 32
    server_share, secret = server_key_share(group, client.public_bytes, rng("s"))
    assert len(server_share) == 1088 + 32
    assert len(secret) == 64
    assert client.exchange(server_share) == secret
    # The last 32 bytes of the server share are an ordinary X25519 public key.
    classical = generate_key_share(NamedGroup.X25519, rng("x"))
    assert len(classical.exchange(server_share[1088:])) == 32


def test_kx_x25519mlkem768_secret_is_mlkem_then_x25519() -> None:
    group = NamedGroup.X25519MLKEM768
    source = rng("c")
    client = generate_key_share(group, source)
    server_share, secret = server_key_share(group, client.public_bytes, rng("s"))
    # Rebuild the client's private halves from the same stream.
    replay = rng("c")
    kem = MLKEM768PrivateKey.from_seed_bytes(replay(64))
    x = x25519.X25519PrivateKey.from_private_bytes(replay(32))
    assert client.public_bytes == (kem.public_key().public_bytes_raw()
                                   + x.public_key().public_bytes_raw())
    assert secret[:32] == kem.decapsulate(server_share[:1088])
    assert secret[32:] == x.exchange(
        x25519.X25519PublicKey.from_public_bytes(server_share[1088:]))


def test_kx_x25519mlkem768_tampered_ciphertext_gives_another_secret() -> None:
    group = NamedGroup.X25519MLKEM768
    client = generate_key_share(group, rng("c"))
    server_share, secret = server_key_share(group, client.public_bytes, rng("s"))
    tampered = bytes([server_share[0] ^ 1]) + server_share[1:]
    # ML-KEM implicit rejection: no error, but a different (useless) secret.
    assert client.exchange(tampered) != secret


def test_kx_x25519mlkem768_invalid_inputs() -> None:
    group = NamedGroup.X25519MLKEM768
    client = generate_key_share(group, rng("c"))
    # FIPS 203 §7.2 modulus check: coefficients >= q (all 0xFF) are not a valid key.
    bad_ek = b"\xff" * 1184 + client.public_bytes[1184:]
    with pytest.raises(IllegalParameter, match="encapsulation key"):
        server_key_share(group, bad_ek, rng("s"))
    # An all-zero X25519 half is rejected even though the ML-KEM half is fine.
    with pytest.raises(IllegalParameter, match="all-zero"):
        server_key_share(group, client.public_bytes[:1184] + bytes(32), rng("s"))
    server_share, _ = server_key_share(group, client.public_bytes, rng("s"))
    with pytest.raises(IllegalParameter, match="all-zero"):
        client.exchange(server_share[:1088] + bytes(32))
    # A client share is not a server share and vice versa.
    with pytest.raises(IllegalParameter):
        client.exchange(client.public_bytes)
    with pytest.raises(IllegalParameter):
        server_key_share(group, server_share, rng("s"))


# -- pure ML-KEM (draft-ietf-tls-mlkem) and the SecP*r1MLKEM* hybrids ----------------------

# (group, client share length, server share length, secret length)
KEM_LAYOUTS = [
    (NamedGroup.MLKEM768, 1184, 1088, 32),
    (NamedGroup.MLKEM1024, 1568, 1568, 32),
    (NamedGroup.SECP256R1MLKEM768, 65 + 1184, 65 + 1088, 32 + 32),
    (NamedGroup.SECP384R1MLKEM1024, 97 + 1568, 97 + 1568, 48 + 32),
]


@pytest.mark.parametrize(("group", "client_len", "server_len", "secret_len"), KEM_LAYOUTS)
def test_kx_mlkem_group_lengths_and_round_trip(
    group: NamedGroup, client_len: int, server_len: int, secret_len: int
) -> None:
    assert key_exchange_length(group) == client_len
    assert key_exchange_length(group, server=True) == server_len
    client = generate_key_share(group, rng(str(group)))
    assert len(client.public_bytes) == client_len
    server_share, secret = server_key_share(group, client.public_bytes, rng("s"))
    assert len(server_share) == server_len and len(secret) == secret_len
    assert client.exchange(server_share) == secret
    # Deterministic from the seed: the same stream gives the same client share.
    assert generate_key_share(group, rng(str(group))).public_bytes == client.public_bytes


def test_kx_mlkem1024_is_plain_fips203_with_cryptography() -> None:
    """The client share is the FIPS 203 encapsulation key of the 64-byte seed, the server
    share a ciphertext to it, and the secret ML-KEM's shared key (no extra KDF)."""
    client = generate_key_share(NamedGroup.MLKEM1024, rng("c"))
    private = MLKEM1024PrivateKey.from_seed_bytes(rng("c")(64))
    assert client.public_bytes == private.public_key().public_bytes_raw()
    server_share, secret = server_key_share(NamedGroup.MLKEM1024, client.public_bytes, rng())
    assert private.decapsulate(server_share) == secret
    # And the other way: a ciphertext made by cryptography directly.
    ss, ct = MLKEM1024PublicKey.from_public_bytes(client.public_bytes).encapsulate()
    assert client.exchange(ct) == ss


def test_kx_secp384r1mlkem1024_puts_the_ecdh_part_first() -> None:
    group = NamedGroup.SECP384R1MLKEM1024
    client = generate_key_share(group, rng("c"))
    replay = rng("c")
    kem = MLKEM1024PrivateKey.from_seed_bytes(replay(64))
    assert client.public_bytes[0] == 4  # an uncompressed P-384 point, then the ML-KEM key
    assert client.public_bytes[97:] == kem.public_key().public_bytes_raw()
    server_share, secret = server_key_share(group, client.public_bytes, rng("s"))
    assert secret[48:] == kem.decapsulate(server_share[97:])
    classical = generate_key_share(NamedGroup.SECP384R1, rng("x"))
    assert len(classical.exchange(server_share[:97])) == 48


@pytest.mark.parametrize("group", [g for g, *_ in KEM_LAYOUTS])
def test_kx_mlkem_malformed_shares_are_illegal_parameter(group: NamedGroup) -> None:
    client = generate_key_share(group, rng("c"))
    server_share, _ = server_key_share(group, client.public_bytes, rng("s"))
    for bad in (client.public_bytes[:-1], client.public_bytes + b"\x00", b""):
        with pytest.raises(IllegalParameter):
            server_key_share(group, bad, rng("s"))
    for bad in (server_share[:-1], server_share + b"\x00"):
        with pytest.raises(IllegalParameter):
            client.exchange(bad)
    # FIPS 203 §7.2 modulus check: coefficients >= q (all 0xFF) are not a valid key.
    params_ek = {NamedGroup.MLKEM768: 1184, NamedGroup.MLKEM1024: 1568,
                 NamedGroup.SECP256R1MLKEM768: 1184, NamedGroup.SECP384R1MLKEM1024: 1568}
    ek_len = params_ek[group]
    prefix = client.public_bytes[:len(client.public_bytes) - ek_len]
    with pytest.raises(IllegalParameter, match="encapsulation key"):
        server_key_share(group, prefix + b"\xff" * ek_len, rng("s"))
    if prefix:  # a hybrid: a point not on the curve
        with pytest.raises(IllegalParameter):
            server_key_share(group, b"\x04" + bytes(len(prefix) - 1)
                             + client.public_bytes[len(prefix):], rng("s"))


def test_kx_mlkem_groups_are_tls13_only() -> None:
    assert {NamedGroup.MLKEM768, NamedGroup.MLKEM1024, NamedGroup.X25519MLKEM768,
            NamedGroup.SECP384R1MLKEM1024} <= kx.TLS13_ONLY_GROUPS
    assert NamedGroup.SECP384R1 not in kx.TLS13_ONLY_GROUPS

"""ML-KEM key shares and ML-DSA CertificateVerify signatures, checked by implementations
that are not ours.

tlsmith does ML-KEM (FIPS 203) and ML-DSA (FIPS 204) with the ``cryptography`` package
(OpenSSL/AWS-LC underneath). No TLS peer on this machine offers pure MLKEM768 (0x0201),
MLKEM1024 (0x0202) or the ML-DSA schemes (0x0904-0x0906), so they are pinned here against
two independent pure-Python implementations:

* kyber-py (``kyber_py.ml_kem``) for ML-KEM, in both roles of draft-ietf-tls-mlkem: our
  client share (the encapsulation key) is encapsulated to by kyber-py and we decapsulate
  its ciphertext; a kyber-py encapsulation key gets our server share (a ciphertext) that
  kyber-py decapsulates. The same 64-byte seed (d || z) must give the same key pair in
  both, a tampered ciphertext the same implicit-rejection secret (FIPS 203 §6.3), and an
  encapsulation key failing the modulus check (§7.2) is refused by both. The hybrids of
  draft-ietf-tls-ecdhe-mlkem are checked the same way for their ML-KEM part and layout
  (X25519MLKEM768: ML-KEM first; SecP256r1MLKEM768/SecP384r1MLKEM1024: ECDH first), with
  the ECDH half done directly with ``cryptography``.
* dilithium-py (``dilithium_py.ml_dsa``) for ML-DSA: draft-ietf-tls-mldsa uses pure
  ML-DSA (FIPS 204 §5.2, not HashML-DSA) over the RFC 8446 §4.4.3 CertificateVerify
  content with an empty context string. Our signatures verify under dilithium-py with the
  raw public key (and not with another context or a flipped bit); dilithium-py's
  signatures verify under ``sig.verify`` (and a flipped bit, a non-empty context or a
  HashML-DSA signature is DecryptError).

Seeds are fixed: ML-KEM keys from ``from_seed_bytes``/``key_derive``, kyber-py's
encapsulation randomness from a seeded stream, ML-DSA keys from a 32-byte xi, and
dilithium-py signs deterministically. Only ``cryptography``'s own ML-KEM encapsulation
and ML-DSA signing draw fresh randomness (they offer no seed).
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, mldsa, x25519
from dilithium_py.ml_dsa import (  # type: ignore[import-untyped]
    HASH_ML_DSA_44_WITH_SHA512,
    HASH_ML_DSA_65_WITH_SHA512,
    HASH_ML_DSA_87_WITH_SHA512,
    ML_DSA_44,
    ML_DSA_65,
    ML_DSA_87,
)
from kyber_py.ml_kem import ML_KEM_768, ML_KEM_1024  # type: ignore[import-untyped]

from tlsmith.codec.enums import NamedGroup, SignatureScheme
from tlsmith.crypto import kx, sig
from tlsmith.errors import DecryptError, IllegalParameter
from tlsmith.x509.devca import DevCA

# -- ML-KEM -----------------------------------------------------------------------------

_SHARED_SECRET_LEN = 32  # FIPS 203: K is 32 bytes for every parameter set


@dataclass(frozen=True)
class _KEM:
    group: NamedGroup
    kyber: Any  # kyber_py.ml_kem.ML_KEM (the module-level instance: never mutated)
    ek_len: int  # FIPS 203 Table 3: encapsulation key
    ct_len: int  # FIPS 203 Table 3: ciphertext
    ecdh: NamedGroup | None = None
    ecdh_len: int = 0
    kem_first: bool = True
    client_len: int = 0  # draft-ietf-tls-ecdhe-mlkem §4.1 / draft-ietf-tls-mlkem
    server_len: int = 0


KEMS = [
    _KEM(NamedGroup.MLKEM768, ML_KEM_768, 1184, 1088, client_len=1184, server_len=1088),
    _KEM(NamedGroup.MLKEM1024, ML_KEM_1024, 1568, 1568, client_len=1568, server_len=1568),
    _KEM(NamedGroup.X25519MLKEM768, ML_KEM_768, 1184, 1088, NamedGroup.X25519, 32,
         client_len=1216, server_len=1120),
    _KEM(NamedGroup.SECP256R1MLKEM768, ML_KEM_768, 1184, 1088, NamedGroup.SECP256R1, 65,
         kem_first=False, client_len=1249, server_len=1153),
    _KEM(NamedGroup.SECP384R1MLKEM1024, ML_KEM_1024, 1568, 1568, NamedGroup.SECP384R1, 97,
         kem_first=False, client_len=1665, server_len=1665),
]
PURE = [k for k in KEMS if k.ecdh is None]


def _ids(k: _KEM) -> str:
    return k.group.name


def _kyber(k: _KEM, seed: bytes) -> Any:
    """A private copy of kyber-py's parameter set whose encapsulation randomness (``m``)
    comes from a seeded stream: the shared module-level instance (tlslite-ng uses it too)
    keeps ``os.urandom``."""
    kem = copy.copy(k.kyber)
    kem.random_bytes = kx.deterministic_random(seed)
    return kem


class _Recording:
    """A seeded ``kx.Random`` that remembers what it handed out."""

    def __init__(self, seed: bytes) -> None:
        self._random = kx.deterministic_random(seed)
        self.draws: list[bytes] = []

    def __call__(self, n: int) -> bytes:
        data = self._random(n)
        self.draws.append(data)
        return data


class _PeerECDH:
    """The hybrid's classical half, done directly with ``cryptography`` (not kx.py)."""

    def __init__(self, group: NamedGroup) -> None:
        if group == NamedGroup.X25519:
            self._x = x25519.X25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
            self.public = self._x.public_key().public_bytes_raw()
        else:
            curve = ec.SECP256R1() if group == NamedGroup.SECP256R1 else ec.SECP384R1()
            self._ec = ec.derive_private_key(0x1234567890ABCDEF, curve)
            self.public = self._ec.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        self._group = group

    def exchange(self, peer: bytes) -> bytes:
        if self._group == NamedGroup.X25519:
            return self._x.exchange(x25519.X25519PublicKey.from_public_bytes(peer))
        curve = self._ec.curve
        return self._ec.exchange(
            ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(curve, peer))


def _split(k: _KEM, data: bytes, kem_len: int) -> tuple[bytes, bytes]:
    """(ML-KEM part, ECDH part), per draft-ietf-tls-ecdhe-mlkem §3 -- written out here
    rather than borrowed from kx.py."""
    assert len(data) == kem_len + k.ecdh_len
    if k.kem_first:
        return data[:kem_len], data[kem_len:]
    return data[k.ecdh_len:], data[:k.ecdh_len]


def _join(k: _KEM, kem_part: bytes, ecdh_part: bytes) -> bytes:
    return kem_part + ecdh_part if k.kem_first else ecdh_part + kem_part


@pytest.mark.parametrize("k", KEMS, ids=_ids)
def test_wire_lengths(k: _KEM) -> None:
    """FIPS 203 Table 3 sizes (plus the ECDH share for the hybrids) are what kx.py expects,
    and what kyber-py produces."""
    assert kx.key_exchange_length(k.group) == k.client_len == k.ek_len + k.ecdh_len
    assert kx.key_exchange_length(k.group, server=True) == k.server_len == k.ct_len + k.ecdh_len
    ek, _ = k.kyber.key_derive(bytes(64))
    _, ct = _kyber(k, b"lengths").encaps(ek)
    assert (len(ek), len(ct)) == (k.ek_len, k.ct_len)


@pytest.mark.parametrize("k", KEMS, ids=_ids)
def test_our_client_share_kyber_encapsulates(k: _KEM) -> None:
    """tlsmith is the client: kyber-py encapsulates to the encapsulation key in our
    key_share, we decapsulate its ciphertext as if it were the ServerHello's share."""
    random = _Recording(b"pq-independent client " + k.group.name.encode())
    share = kx.generate_key_share(k.group, random)
    assert share.group == k.group
    assert len(share.public_bytes) == k.client_len
    ek, ecdh_public = _split(k, share.public_bytes, k.ek_len)

    # FIPS 203 §7.1 ML-KEM.KeyGen_internal(d, z): the 64-byte seed kx.py drew first gives
    # kyber-py the very same encapsulation key.
    seed = random.draws[0]
    assert len(seed) == 64
    kyber_ek, kyber_dk = k.kyber.key_derive(seed)
    assert kyber_ek == ek

    secret, ct = _kyber(k, b"encaps " + k.group.name.encode()).encaps(ek)
    assert len(secret) == _SHARED_SECRET_LEN and len(ct) == k.ct_len
    expected = secret
    server_share = ct
    peer = _PeerECDH(k.ecdh) if k.ecdh is not None else None
    if peer is not None:
        assert len(ecdh_public) == k.ecdh_len
        server_share = _join(k, ct, peer.public)
        expected = _join(k, secret, peer.exchange(ecdh_public))
    assert len(server_share) == k.server_len
    assert share.exchange(server_share) == expected

    # Implicit rejection (FIPS 203 §6.3, K-bar = J(z || c)): a ciphertext with one bit
    # flipped gives the same pseudorandom secret in both implementations, not an error.
    bad_ct = bytes([ct[0] ^ 0x01]) + ct[1:]
    rejected = k.kyber.decaps(kyber_dk, bad_ct)
    assert rejected != secret
    if peer is None:
        assert share.exchange(bad_ct) == rejected
    else:
        assert share.exchange(_join(k, bad_ct, peer.public)) == _join(
            k, rejected, peer.exchange(ecdh_public))


@pytest.mark.parametrize("k", KEMS, ids=_ids)
def test_kyber_client_our_server_encapsulates(k: _KEM) -> None:
    """tlsmith is the server: kyber-py's encapsulation key (from a fixed seed) is the
    ClientHello share, our server share's ciphertext is decapsulated by kyber-py."""
    ek, dk = k.kyber.key_derive(
        hashlib.shake_256(b"kyber client " + k.group.name.encode()).digest(64))
    peer = _PeerECDH(k.ecdh) if k.ecdh is not None else None
    client_share = _join(k, ek, peer.public if peer else b"")
    assert len(client_share) == k.client_len

    server_share, secret = kx.server_key_share(
        k.group, client_share, kx.deterministic_random(b"our server " + k.group.name.encode()))
    assert len(server_share) == k.server_len
    ct, ecdh_public = _split(k, server_share, k.ct_len)
    kem_secret = k.kyber.decaps(dk, ct)
    assert len(kem_secret) == _SHARED_SECRET_LEN
    if peer is None:
        assert secret == kem_secret
    else:
        assert secret == _join(k, kem_secret, peer.exchange(ecdh_public))


def _break_modulus(ek: bytes) -> bytes:
    """The encapsulation key with its first 12-bit coefficient set to 4095 >= q = 3329."""
    return bytes([0xFF, ek[1] | 0x0F]) + ek[2:]


@pytest.mark.parametrize("k", PURE, ids=_ids)
def test_modulus_check_refused_by_both(k: _KEM) -> None:
    """FIPS 203 §7.2 encapsulation input check: an ek whose coefficients do not all lie in
    [0, q) is refused by kyber-py (ValueError) and by our server (IllegalParameter)."""
    ek, _ = k.kyber.key_derive(bytes(range(64)))
    bad = _break_modulus(ek)
    with pytest.raises(ValueError):
        _kyber(k, b"bad ek").encaps(bad)
    with pytest.raises(IllegalParameter):
        kx.server_key_share(k.group, bad, kx.deterministic_random(b"bad ek"))


# -- ML-DSA -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _DSA:
    scheme: SignatureScheme
    private: type[mldsa.MLDSA44PrivateKey] | type[mldsa.MLDSA65PrivateKey] | type[
        mldsa.MLDSA87PrivateKey]
    public: type[mldsa.MLDSA44PublicKey] | type[mldsa.MLDSA65PublicKey] | type[
        mldsa.MLDSA87PublicKey]
    dilithium: Any  # dilithium_py.ml_dsa.ML_DSA
    prehash: Any  # the HashML-DSA (SHA-512) variant, which TLS must not accept
    pk_len: int  # FIPS 204 Table 2
    sig_len: int
    key_type: str  # DevCA's name


DSAS = [
    _DSA(SignatureScheme.MLDSA44, mldsa.MLDSA44PrivateKey, mldsa.MLDSA44PublicKey,
         ML_DSA_44, HASH_ML_DSA_44_WITH_SHA512, 1312, 2420, "mldsa-44"),
    _DSA(SignatureScheme.MLDSA65, mldsa.MLDSA65PrivateKey, mldsa.MLDSA65PublicKey,
         ML_DSA_65, HASH_ML_DSA_65_WITH_SHA512, 1952, 3309, "mldsa-65"),
    _DSA(SignatureScheme.MLDSA87, mldsa.MLDSA87PrivateKey, mldsa.MLDSA87PublicKey,
         ML_DSA_87, HASH_ML_DSA_87_WITH_SHA512, 2592, 4627, "mldsa-87"),
]


def _dsa_id(d: _DSA) -> str:
    return d.scheme.name


def _content(label: bytes, *, server: bool) -> bytes:
    """A CertificateVerify content (RFC 8446 §4.4.3) over a SHA-384 transcript hash."""
    return sig.certificate_verify_content(hashlib.sha384(label).digest(), server=server)


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1:]


def test_certificate_verify_content_layout() -> None:
    """The signed bytes, spelled out from RFC 8446 §4.4.3 independently of sig.py."""
    th = bytes(range(48))
    assert sig.certificate_verify_content(th, server=True) == (
        b"\x20" * 64 + b"TLS 1.3, server CertificateVerify" + b"\x00" + th)
    assert sig.certificate_verify_content(th, server=False) == (
        b"\x20" * 64 + b"TLS 1.3, client CertificateVerify" + b"\x00" + th)


@pytest.mark.parametrize("d", DSAS, ids=_dsa_id)
def test_same_seed_same_key(d: _DSA) -> None:
    """FIPS 204 §6.1 ML-DSA.KeyGen_internal(xi): cryptography and dilithium-py derive the
    same public key from the same 32-byte seed."""
    seed = hashlib.sha256(b"mldsa seed " + d.scheme.name.encode()).digest()
    ours = d.private.from_seed_bytes(seed).public_key().public_bytes_raw()
    theirs, _ = d.dilithium.key_derive(seed)
    assert len(ours) == d.pk_len
    assert ours == theirs


@pytest.mark.parametrize("d", DSAS, ids=_dsa_id)
def test_our_signature_verified_by_dilithium(d: _DSA) -> None:
    """sig.sign over a server CertificateVerify content verifies under dilithium-py as
    pure ML-DSA with an empty context -- and under nothing else."""
    key = d.private.from_seed_bytes(hashlib.sha256(b"signer " + d.scheme.name.encode()).digest())
    pk = key.public_key().public_bytes_raw()
    content = _content(b"transcript " + d.scheme.name.encode(), server=True)
    signature = sig.sign(d.scheme, key, content)
    assert len(signature) == d.sig_len

    dil = d.dilithium
    assert dil.verify(pk, content, signature)
    assert dil.verify(pk, content, signature, ctx=b"")
    assert not dil.verify(pk, content, signature, ctx=b"TLS")
    assert not dil.verify(pk, content, _flip(signature, 100))
    assert not dil.verify(pk, _flip(content, len(content) - 1), signature)
    # the server's content is not the client's
    assert not dil.verify(pk, _content(
        b"transcript " + d.scheme.name.encode(), server=False), signature)
    # nor is it HashML-DSA (FIPS 204 §5.4)
    assert not d.prehash.verify(pk, content, signature)


@pytest.mark.parametrize("d", DSAS, ids=_dsa_id)
def test_dilithium_signature_verified_by_us(d: _DSA) -> None:
    """A dilithium-py signature (deterministic, empty context) over a client
    CertificateVerify content is accepted by sig.verify in TLS 1.3; a flipped bit, a
    non-empty context or a HashML-DSA signature is DecryptError."""
    pk, sk = d.dilithium.key_derive(
        hashlib.sha256(b"dilithium " + d.scheme.name.encode()).digest())
    public = d.public.from_public_bytes(pk)
    content = _content(b"client transcript " + d.scheme.name.encode(), server=False)
    signature = d.dilithium.sign(sk, content, deterministic=True)
    assert len(signature) == d.sig_len

    sig.verify(d.scheme, public, content, signature, tls13=True)
    with pytest.raises(DecryptError):
        sig.verify(d.scheme, public, content, _flip(signature, len(signature) // 2), tls13=True)
    with pytest.raises(DecryptError):
        sig.verify(d.scheme, public, _flip(content, 64), signature, tls13=True)
    with_ctx = d.dilithium.sign(sk, content, ctx=b"TLS", deterministic=True)
    with pytest.raises(DecryptError):
        sig.verify(d.scheme, public, content, with_ctx, tls13=True)
    prehashed = d.prehash.sign(sk, content, deterministic=True)
    with pytest.raises(DecryptError):
        sig.verify(d.scheme, public, content, prehashed, tls13=True)
    # ML-DSA is TLS 1.3 only (draft-ietf-tls-mldsa)
    with pytest.raises(IllegalParameter):
        sig.verify(d.scheme, public, content, signature, tls13=False)


def test_devca_mldsa_leaf_signature_verified_by_dilithium() -> None:
    """The key and certificate DevCA issues for an ML-DSA-65 server: the raw public key
    from the certificate's SubjectPublicKeyInfo verifies our CertificateVerify."""
    d = DSAS[1]
    issued = DevCA.create().issue(key_type=d.key_type)
    public = issued.certificate.public_key()
    assert isinstance(public, d.public)
    pk = public.public_bytes_raw()
    content = _content(b"devca leaf", server=True)
    signature = sig.sign(d.scheme, issued.private_key, content)
    assert d.dilithium.verify(pk, content, signature)
    assert not d.dilithium.verify(pk, content, _flip(signature, 0))

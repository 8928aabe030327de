"""Signature schemes (RFC 8446 §4.2.3): sign, verify, and which scheme fits which key.

``verify`` raises ``DecryptError`` for a signature that does not verify (RFC 8446
§4.4.3) and ``IllegalParameter`` when the scheme cannot be used with the key at all.

RSASSA-PSS keys: ``cryptography`` loads a key with the id-RSASSA-PSS OID as a plain
RSA key, so the key object cannot tell rsa_pss_pss_* from rsa_pss_rsae_* apart. A
caller that knows the certificate's SubjectPublicKeyInfo algorithm passes
``rsa_pss_key=True`` (id-RSASSA-PSS) or ``False`` (rsaEncryption). When checking a
peer's key the default ``None`` means "unknown" and accepts both PSS variants; when
choosing our own schemes the default is rsaEncryption (rsa_pss_rsae_*).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeGuard, cast

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, mldsa, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    PrivateKeyTypes,
    PublicKeyTypes,
)

from tlsmith.codec.enums import SignatureScheme, member
from tlsmith.errors import DecryptError, IllegalParameter, InternalError

SigningKey = PrivateKeyTypes
VerifyingKey = PublicKeyTypes

_S = SignatureScheme


@dataclass(frozen=True)
class _SchemeInfo:
    family: str  # "ecdsa", "rsa_pss_rsae", "rsa_pss_pss", "rsa_pkcs1", "ed25519", "ed448",
    #              "mldsa44", "mldsa65", "mldsa87"
    hash: hashes.HashAlgorithm | None
    curve: str | None = None  # TLS 1.3 binds ECDSA schemes to one curve
    legacy: bool = False  # SHA-1: verify only, TLS 1.2 only
    tls13_only: bool = False  # ML-DSA, RFC 9963's PKCS#1 code points: not for TLS 1.2
    client_only: bool = False  # RFC 9963: a client's CertificateVerify only


_SCHEMES: dict[SignatureScheme, _SchemeInfo] = {
    _S.ECDSA_SECP256R1_SHA256: _SchemeInfo("ecdsa", hashes.SHA256(), "secp256r1"),
    _S.ECDSA_SECP384R1_SHA384: _SchemeInfo("ecdsa", hashes.SHA384(), "secp384r1"),
    _S.ECDSA_SECP521R1_SHA512: _SchemeInfo("ecdsa", hashes.SHA512(), "secp521r1"),
    _S.ED25519: _SchemeInfo("ed25519", None),
    _S.ED448: _SchemeInfo("ed448", None),
    _S.RSA_PSS_PSS_SHA256: _SchemeInfo("rsa_pss_pss", hashes.SHA256()),
    _S.RSA_PSS_PSS_SHA384: _SchemeInfo("rsa_pss_pss", hashes.SHA384()),
    _S.RSA_PSS_PSS_SHA512: _SchemeInfo("rsa_pss_pss", hashes.SHA512()),
    _S.RSA_PSS_RSAE_SHA256: _SchemeInfo("rsa_pss_rsae", hashes.SHA256()),
    _S.RSA_PSS_RSAE_SHA384: _SchemeInfo("rsa_pss_rsae", hashes.SHA384()),
    _S.RSA_PSS_RSAE_SHA512: _SchemeInfo("rsa_pss_rsae", hashes.SHA512()),
    _S.RSA_PKCS1_SHA256: _SchemeInfo("rsa_pkcs1", hashes.SHA256()),
    _S.RSA_PKCS1_SHA384: _SchemeInfo("rsa_pkcs1", hashes.SHA384()),
    _S.RSA_PKCS1_SHA512: _SchemeInfo("rsa_pkcs1", hashes.SHA512()),
    _S.RSA_PKCS1_SHA1: _SchemeInfo("rsa_pkcs1", hashes.SHA1(), legacy=True),
    _S.ECDSA_SHA1: _SchemeInfo("ecdsa", hashes.SHA1(), legacy=True),
    # RFC 9963 §3: PKCS#1 v1.5 in TLS 1.3, for client keys that cannot do PSS.
    _S.RSA_PKCS1_SHA256_LEGACY: _SchemeInfo(
        "rsa_pkcs1", hashes.SHA256(), tls13_only=True, client_only=True),
    _S.RSA_PKCS1_SHA384_LEGACY: _SchemeInfo(
        "rsa_pkcs1", hashes.SHA384(), tls13_only=True, client_only=True),
    _S.RSA_PKCS1_SHA512_LEGACY: _SchemeInfo(
        "rsa_pkcs1", hashes.SHA512(), tls13_only=True, client_only=True),
    # draft-ietf-tls-mldsa: pure ML-DSA (FIPS 204 §5.2) over the content, empty context.
    _S.MLDSA44: _SchemeInfo("mldsa44", None, tls13_only=True),
    _S.MLDSA65: _SchemeInfo("mldsa65", None, tls13_only=True),
    _S.MLDSA87: _SchemeInfo("mldsa87", None, tls13_only=True),
}
_MLDSA_FAMILIES = frozenset({"mldsa44", "mldsa65", "mldsa87"})
#: RFC 9963 §3: schemes a server never signs with (and a client never accepts from one).
CLIENT_ONLY_SCHEMES: frozenset[SignatureScheme] = frozenset(
    s for s, info in _SCHEMES.items() if info.client_only)


def legacy_pkcs1_schemes(key: PrivateKeyTypes) -> list[SignatureScheme]:
    """RFC 9963's TLS 1.3 PKCS#1 v1.5 schemes for an RSA key (a client uses them only
    when configured to: CertifiedKey.signing_schemes)."""
    if not isinstance(key, rsa.RSAPrivateKey):
        return []
    return [_S.RSA_PKCS1_SHA256_LEGACY, _S.RSA_PKCS1_SHA384_LEGACY, _S.RSA_PKCS1_SHA512_LEGACY]
_MLDSA_BY_FAMILY = {"mldsa44": _S.MLDSA44, "mldsa65": _S.MLDSA65, "mldsa87": _S.MLDSA87}

SUPPORTED_SIGNATURE_SCHEMES: frozenset[SignatureScheme] = frozenset(_SCHEMES)

# The TLS 1.3 offer, in OpenSSL's order. RFC 8446 §4.2.3: rsa_pkcs1_* are listed only
# for certificate signatures (and TLS 1.2 compatibility), never used in CertificateVerify.
# ML-DSA is opt-in (add the schemes to signature_schemes).
DEFAULT_SIGNATURE_SCHEMES: tuple[SignatureScheme, ...] = (
    _S.ECDSA_SECP256R1_SHA256,
    _S.ECDSA_SECP384R1_SHA384,
    _S.ECDSA_SECP521R1_SHA512,
    _S.ED25519,
    _S.ED448,
    _S.RSA_PSS_PSS_SHA256,
    _S.RSA_PSS_PSS_SHA384,
    _S.RSA_PSS_PSS_SHA512,
    _S.RSA_PSS_RSAE_SHA256,
    _S.RSA_PSS_RSAE_SHA384,
    _S.RSA_PSS_RSAE_SHA512,
    _S.RSA_PKCS1_SHA256,
    _S.RSA_PKCS1_SHA384,
    _S.RSA_PKCS1_SHA512,
)

_CERTIFICATE_VERIFY_CONTEXT = {
    True: b"TLS 1.3, server CertificateVerify",
    False: b"TLS 1.3, client CertificateVerify",
}


def certificate_verify_content(transcript_hash: bytes, *, server: bool) -> bytes:
    """The bytes a TLS 1.3 CertificateVerify signs (RFC 8446 §4.4.3): 64 spaces, the
    context string, a zero byte, then the transcript hash."""
    return b" " * 64 + _CERTIFICATE_VERIFY_CONTEXT[server] + b"\x00" + transcript_hash


def _info(scheme: SignatureScheme | int) -> _SchemeInfo | None:
    return _SCHEMES.get(scheme)  # type: ignore[arg-type]  # (an int hashes as its member)


_KIND_BY_TYPE: dict[type, str] = {}


def _key_kind(key: object) -> str:
    """"ecdsa", "ed25519", "ed448", "rsa", "mldsa44/65/87" or "" (none of them), remembered per key
    class: the isinstance tests go through ABC machinery (the key classes are
    cryptography's Rust types registered with its ABCs), ~1 µs each, per handshake."""
    t = type(key)
    kind = _KIND_BY_TYPE.get(t)
    if kind is None:
        if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
            kind = "ecdsa"
        elif isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
            kind = "ed25519"
        elif isinstance(key, ed448.Ed448PrivateKey | ed448.Ed448PublicKey):
            kind = "ed448"
        elif isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
            kind = "rsa"
        elif isinstance(key, mldsa.MLDSA44PrivateKey | mldsa.MLDSA44PublicKey):
            kind = "mldsa44"
        elif isinstance(key, mldsa.MLDSA65PrivateKey | mldsa.MLDSA65PublicKey):
            kind = "mldsa65"
        elif isinstance(key, mldsa.MLDSA87PrivateKey | mldsa.MLDSA87PublicKey):
            kind = "mldsa87"
        else:
            kind = ""
        _KIND_BY_TYPE[t] = kind
    return kind


_IS: dict[tuple[type, type], bool] = {}


def _is(key: object, cls: type) -> bool:
    """isinstance(key, cls), remembered per key class (an ABC test, as in _key_kind)."""
    pair = (type(key), cls)
    known = _IS.get(pair)
    if known is None:
        known = _IS[pair] = isinstance(key, cls)
    return known


def _is_ec_private(key: object) -> TypeGuard[ec.EllipticCurvePrivateKey]:
    return _is(key, ec.EllipticCurvePrivateKey)


def _is_ec_public(key: object) -> TypeGuard[ec.EllipticCurvePublicKey]:
    return _is(key, ec.EllipticCurvePublicKey)


def _is_rsa_private(key: object) -> TypeGuard[rsa.RSAPrivateKey]:
    return _is(key, rsa.RSAPrivateKey)


def _is_rsa_public(key: object) -> TypeGuard[rsa.RSAPublicKey]:
    return _is(key, rsa.RSAPublicKey)


def _family_fits_key(info: _SchemeInfo, key: object, rsa_pss_key: bool | None) -> bool:
    family = info.family
    kind = _key_kind(key)
    if family in ("ecdsa", "ed25519", "ed448") or family in _MLDSA_FAMILIES:
        return kind == family
    if kind != "rsa":
        return False
    if rsa_pss_key is None:
        return True  # rsaEncryption or RSASSA-PSS: cannot tell (see the module docstring)
    # RFC 8446 §4.2.3: rsa_pss_rsae_* (and PKCS#1) need an rsaEncryption key,
    # rsa_pss_pss_* a key with the RSASSA-PSS OID.
    return (family == "rsa_pss_pss") == rsa_pss_key


def _pss_fits(info: _SchemeInfo, key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> bool:
    # RFC 8017 §9.1.1: emLen >= hLen + sLen + 2, with sLen = hLen (RFC 8446 §4.2.3).
    assert info.hash is not None
    em_len = (key.key_size - 1 + 7) // 8
    return em_len >= 2 * info.hash.digest_size + 2


def scheme_matches_key(
    scheme: SignatureScheme | int,
    public_key: PublicKeyTypes | PrivateKeyTypes,
    *,
    tls13: bool,
    rsa_pss_key: bool | None = None,
) -> bool:
    """Whether ``scheme`` can be used for a handshake signature with this key.

    TLS 1.3 (RFC 8446 §4.2.3, §4.4.3): no rsa_pkcs1_* or SHA-1 in CertificateVerify,
    and an ECDSA scheme names the key's curve. TLS 1.2: ECDSA schemes are any curve with
    that hash, and the SHA-1 schemes are accepted (for verification only).
    """
    info = _info(scheme)
    if info is None or not _family_fits_key(info, public_key, rsa_pss_key):
        return False
    if tls13 and (info.legacy or (info.family == "rsa_pkcs1" and not info.tls13_only)):
        return False
    if info.tls13_only and not tls13:
        return False
    # (_family_fits_key has checked the key's kind; no second ABC isinstance test.)
    if info.family == "ecdsa" and tls13:
        ec_key = cast(ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey, public_key)
        return ec_key.curve.name == info.curve
    if info.family in ("rsa_pss_rsae", "rsa_pss_pss"):
        return _pss_fits(info, cast(rsa.RSAPrivateKey | rsa.RSAPublicKey, public_key))
    return True


_ECDSA_BY_CURVE = {
    "secp256r1": _S.ECDSA_SECP256R1_SHA256,
    "secp384r1": _S.ECDSA_SECP384R1_SHA384,
    "secp521r1": _S.ECDSA_SECP521R1_SHA512,
}


def schemes_for_private_key(
    key: PrivateKeyTypes, *, tls13: bool, rsa_pss_key: bool = False
) -> list[SignatureScheme]:
    """The schemes we can sign with using ``key``, most preferred first (never SHA-1).

    ECDSA: in TLS 1.3 only the scheme of the key's curve; in TLS 1.2 that one first,
    then the other hashes. RSA: PSS (SHA-256, -384, -512), then in TLS 1.2 PKCS#1 v1.5.
    """
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return [_S.ED25519]
    if isinstance(key, ed448.Ed448PrivateKey):
        return [_S.ED448]
    pq = _MLDSA_BY_FAMILY.get(_key_kind(key))
    if pq is not None:
        return [pq] if tls13 else []
    if isinstance(key, ec.EllipticCurvePrivateKey):
        own = _ECDSA_BY_CURVE.get(key.curve.name)
        if tls13:
            return [own] if own is not None else []
        others = [s for s in _ECDSA_BY_CURVE.values() if s != own]
        return ([own] if own is not None else []) + others
    if isinstance(key, rsa.RSAPrivateKey):
        if rsa_pss_key:
            pss = [_S.RSA_PSS_PSS_SHA256, _S.RSA_PSS_PSS_SHA384, _S.RSA_PSS_PSS_SHA512]
        else:
            pss = [_S.RSA_PSS_RSAE_SHA256, _S.RSA_PSS_RSAE_SHA384, _S.RSA_PSS_RSAE_SHA512]
        usable = [s for s in pss if _pss_fits(_SCHEMES[s], key)]
        if tls13 or rsa_pss_key:
            return usable
        return [*usable, _S.RSA_PKCS1_SHA256, _S.RSA_PKCS1_SHA384, _S.RSA_PKCS1_SHA512]
    return []


def _pss(h: hashes.HashAlgorithm) -> padding.PSS:
    # RFC 8446 §4.2.3: MGF1 with the same hash, salt length = hash length.
    pss = _PSS_BY_HASH.get(h.name)
    if pss is None:
        pss = _PSS_BY_HASH[h.name] = padding.PSS(mgf=padding.MGF1(h),
                                                 salt_length=h.digest_size)
    return pss


def _ecdsa(h: hashes.HashAlgorithm) -> ec.ECDSA:
    alg = _ECDSA_BY_HASH.get(h.name)
    if alg is None:
        alg = _ECDSA_BY_HASH[h.name] = ec.ECDSA(h)
    return alg


# The algorithm objects are immutable: built once per hash, not per handshake (~3 µs
# each: ECDSA() asks the backend about deterministic signing).
_PSS_BY_HASH: dict[str, padding.PSS] = {}
_ECDSA_BY_HASH: dict[str, ec.ECDSA] = {}
_PKCS1V15 = padding.PKCS1v15()


def sign(scheme: SignatureScheme | int, private_key: PrivateKeyTypes, data: bytes) -> bytes:
    """Sign ``data`` with ``scheme``. A scheme that does not fit the key, or a SHA-1
    scheme, is a local mistake: ``InternalError``."""
    # (No cache of checked signers: it saved ~0.6 us a handshake and kept private keys
    # alive in a module-level table.)
    return _signer(scheme, private_key)(data)


def _signer(scheme: SignatureScheme | int, private_key: PrivateKeyTypes
            ) -> Callable[[bytes], bytes]:
    """``sign``'s checks, and the backend call they lead to."""
    info = _info(scheme)
    if info is None or info.legacy:
        raise InternalError(f"refusing to sign with {SignatureScheme(scheme)}")
    if not _family_fits_key(info, private_key, None):
        raise InternalError(f"{SignatureScheme(scheme)} cannot be used with a "
                            f"{type(private_key).__name__}")
    h = info.hash
    if _is_ec_private(private_key):
        assert h is not None
        ec_key, ecdsa = private_key, _ecdsa(h)
        return lambda data: ec_key.sign(data, ecdsa)
    if _is_rsa_private(private_key):
        assert h is not None
        rsa_key, rsa_hash = private_key, h
        if info.family == "rsa_pkcs1":
            return lambda data: rsa_key.sign(data, _PKCS1V15, rsa_hash)
        if not _pss_fits(info, private_key):
            raise InternalError(f"a {private_key.key_size}-bit RSA key is too small for "
                                f"{SignatureScheme(scheme)}")
        pss = _pss(h)
        return lambda data: rsa_key.sign(data, pss, rsa_hash)
    if isinstance(private_key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return private_key.sign
    if isinstance(private_key, mldsa.MLDSA44PrivateKey | mldsa.MLDSA65PrivateKey
                  | mldsa.MLDSA87PrivateKey):
        return private_key.sign
    raise InternalError(f"unsupported private key type {type(private_key).__name__}")


def verify(
    scheme: SignatureScheme | int,
    public_key: PublicKeyTypes,
    data: bytes,
    signature: bytes,
    *,
    tls13: bool = False,
    rsa_pss_key: bool | None = None,
) -> None:
    """Check ``signature`` over ``data``; return None or raise.

    ``IllegalParameter`` if the scheme is unknown or cannot be used with this key (with
    ``tls13=True`` the TLS 1.3 rules of ``scheme_matches_key`` also apply);
    ``DecryptError`` if the signature is wrong (RFC 8446 §4.4.3). ``rsa_pss_key=None``
    accepts both PSS variants for RSA keys (the key object cannot tell them apart).
    """
    scheme = member(SignatureScheme, scheme)
    info = _info(scheme)
    if info is None:
        raise IllegalParameter(f"unsupported signature scheme {scheme}")
    if not _family_fits_key(info, public_key, rsa_pss_key) or (info.tls13_only and not tls13) or (
        tls13 and not scheme_matches_key(scheme, public_key, tls13=True, rsa_pss_key=rsa_pss_key)
    ):
        raise IllegalParameter(
            f"{scheme} cannot be used with a {type(public_key).__name__}"
            + (" in TLS 1.3" if tls13 else "")
        )
    _verify(scheme, info, public_key, data, signature)


def verify_fitting(scheme: SignatureScheme, public_key: PublicKeyTypes, data: bytes,
                   signature: bytes) -> None:
    """``verify`` for a scheme that ``scheme_matches_key`` has accepted for this key
    (with the same ``tls13``): the signature check alone. DecryptError if it is wrong."""
    info = _SCHEMES[scheme]
    _verify(scheme, info, public_key, data, signature)


def _verify(scheme: SignatureScheme, info: _SchemeInfo, public_key: PublicKeyTypes,
            data: bytes, signature: bytes) -> None:
    h = info.hash
    try:
        if _is_ec_public(public_key):
            assert h is not None
            public_key.verify(signature, data, _ecdsa(h))
        elif _is_rsa_public(public_key):
            assert h is not None
            pad = _PKCS1V15 if info.family == "rsa_pkcs1" else _pss(h)
            public_key.verify(signature, data, pad, h)
        elif isinstance(public_key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
                        | mldsa.MLDSA44PublicKey | mldsa.MLDSA65PublicKey
                        | mldsa.MLDSA87PublicKey):
            public_key.verify(signature, data)
        else:  # pragma: no cover - _family_fits_key admits no other type
            raise IllegalParameter(f"unsupported public key type {type(public_key).__name__}")
    except (InvalidSignature, ValueError):
        raise DecryptError(f"the {scheme} signature does not verify") from None

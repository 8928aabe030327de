"""The shim's raw public key flags (RFC 7250), mapped onto tlsmith's configuration.

``-accepted-peer-cert-types`` is the list of types we accept from the peer (a client:
server_certificate_type; a server: the client certificate types it asks for);
``-available-client-cert-types`` the client_certificate_type list a client offers;
``-expect-peer-rpk-sha256`` BoringSSL's custom verify callback that accepts the raw
public key whose SPKI hashes to it (here: ``raw_public_key_verifier``); ``-verify-fail``
a callback that refuses every key.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from tlsmith.bogo.flags import Options
from tlsmith.codec.enums import CertificateType
from tlsmith.events import HandshakeInfo

X509, RPK = CertificateType.X509, CertificateType.RAW_PUBLIC_KEY


class UnknownType(Exception):
    """A type the runner lists that tlsmith cannot be configured with."""


def _types(values: list[int] | None) -> tuple[CertificateType, ...] | None:
    if values is None:
        return None
    types = tuple(dict.fromkeys(CertificateType(v) for v in values))
    if any(t not in (X509, RPK) for t in types):
        raise UnknownType(f"certificate types {values}")
    return types


def accepted_types(o: Options) -> tuple[CertificateType, ...]:
    return _types(o.accepted_peer_cert_types) or (X509,)


def client_offered_types(o: Options) -> tuple[CertificateType, ...] | None:
    return _types(o.available_client_cert_types)


def verifier(o: Options) -> Callable[[bytes], bool] | None:
    """The SPKI check BoringSSL's shim installs, or None (no raw public key expected)."""
    if o.verify_fail:
        return lambda _spki: False
    want = o.expect_peer_rpk_sha256
    if want is None:
        if RPK in accepted_types(o):
            return lambda _spki: False  # no callback: BoringSSL accepts no raw key
        return None
    return lambda spki: hmac.compare_digest(hashlib.sha256(spki).digest(), want)


def check_peer_type(o: Options, info: HandshakeInfo) -> str | None:
    """What is wrong with the peer's certificate type, or None."""
    if o.expect_peer_certificate_type is None:
        return None
    got = info.client_certificate_type if o.server else info.server_certificate_type
    if got is None or int(got) != o.expect_peer_certificate_type:
        return (f"peer certificate type {got!r}, expected "
                f"{o.expect_peer_certificate_type}")
    return None

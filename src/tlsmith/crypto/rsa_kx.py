"""TLS 1.2 RSA key transport (RFC 5246 §7.4.7.1): the client encrypts a 48-byte
pre-master secret to the server's RSA key with PKCS #1 v1.5.

The server side resists Bleichenbacher / ROBOT: whatever goes wrong (padding, length,
version bytes), it continues with a random pre-master secret chosen *before* decrypting,
through one code path, so the only visible effect is a Finished that fails to verify.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tlsmith.errors import IllegalParameter, InternalError

PRE_MASTER_LEN = 48


def encrypt_pre_master_secret(public_key: object, pre_master_secret: bytes) -> bytes:
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise IllegalParameter("RSA key exchange needs an RSA certificate; the server's "
                               "certificate has a different key type")
    return public_key.encrypt(pre_master_secret, padding.PKCS1v15())


def decrypt_pre_master_secret(private_key: object, encrypted: bytes,
                              client_version: bytes, random: Callable[[int], bytes]) -> bytes:
    """RFC 5246 §7.4.7.1: the pre-master secret, or a random one on any failure."""
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise InternalError("RSA key exchange chose a certificate without an RSA key")
    # Chosen first, so failure and success take the same steps from here on.
    fallback = client_version + random(PRE_MASTER_LEN - 2)
    try:
        # OpenSSL ≥ 3.2 may return a synthetic plaintext instead of raising (implicit
        # rejection); both outcomes land in the same checks below.
        decrypted = private_key.decrypt(bytes(encrypted), padding.PKCS1v15())
    except ValueError:
        decrypted = b""
    good = len(decrypted) == PRE_MASTER_LEN
    # The version check (RFC 5246 §7.4.7.1, client_version of the ClientHello) is
    # folded into the same selection, without a separate early exit.
    good &= hmac.compare_digest(decrypted[:2], client_version)
    return decrypted if good else fallback

"""ML-DSA (FIPS 204) signature schemes for TLS 1.3 (draft-ietf-tls-mldsa): sign and
verify, TLS 1.2 refusal, key loading, and full handshakes with ML-DSA certificates
(alone and with the ML-KEM groups)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, mldsa

from pair import SecretSpy, handshake
from tlsmith.codec.enums import NamedGroup, ProtocolVersion, SignatureScheme
from tlsmith.config import (
    DEFAULT_SIGNATURE_SCHEMES,
    CertifiedKey,
    ClientConfig,
    ServerConfig,
)
from tlsmith.crypto import sig
from tlsmith.errors import (
    DecryptError,
    HandshakeFailure,
    IllegalParameter,
    InternalError,
    UsageError,
)
from tlsmith.x509.devca import MLDSA_KEY_TYPES, DevCA, generate_private_key
from tlsmith.x509.keys import key_description, load_private_key
from tlsmith.x509.verify import TrustStore

_S = SignatureScheme
# (scheme, key type, FIPS 204 Table 2 signature size, public key size)
SIZES = [
    (_S.MLDSA44, "mldsa-44", 2420, 1312),
    (_S.MLDSA65, "mldsa-65", 3309, 1952),
    (_S.MLDSA87, "mldsa-87", 4627, 2592),
]
CONTENT = sig.certificate_verify_content(b"\x01" * 32, server=True)


def test_mldsa_codepoints() -> None:
    # draft-ietf-tls-mldsa §6 (IANA): mldsa44/65/87.
    assert (int(_S.MLDSA44), int(_S.MLDSA65), int(_S.MLDSA87)) == (0x0904, 0x0905, 0x0906)


@pytest.mark.parametrize(("scheme", "key_type", "sig_len", "pub_len"), SIZES)
def test_mldsa_sign_verify_round_trip(scheme: SignatureScheme, key_type: str, sig_len: int,
                                      pub_len: int) -> None:
    key = generate_private_key(key_type)
    assert sig.schemes_for_private_key(key, tls13=True) == [scheme]
    assert sig.schemes_for_private_key(key, tls13=False) == []  # TLS 1.3 only
    signature = sig.sign(scheme, key, CONTENT)
    assert len(signature) == sig_len
    public = key.public_key()
    assert len(public.public_bytes_raw()) == pub_len
    sig.verify(scheme, public, CONTENT, signature, tls13=True)
    # Independently: pure ML-DSA with an empty context, straight from cryptography.
    assert isinstance(public, mldsa.MLDSA44PublicKey | mldsa.MLDSA65PublicKey
                      | mldsa.MLDSA87PublicKey)
    public.verify(signature, CONTENT)
    public.verify(signature, CONTENT, b"")
    with pytest.raises(InvalidSignature):
        public.verify(signature, CONTENT, b"context")  # a context would be another scheme
    # A signature made by cryptography directly verifies through tlsmith.
    sig.verify(scheme, public, CONTENT, key.sign(CONTENT), tls13=True)


@pytest.mark.parametrize(("scheme", "key_type"), [(s, k) for s, k, *_ in SIZES])
def test_mldsa_bad_signatures_and_mismatches(scheme: SignatureScheme, key_type: str) -> None:
    key = generate_private_key(key_type)
    public = key.public_key()
    signature = sig.sign(scheme, key, CONTENT)
    with pytest.raises(DecryptError):
        sig.verify(scheme, public, CONTENT + b"x", signature, tls13=True)
    with pytest.raises(DecryptError):
        sig.verify(scheme, public, CONTENT, bytes([signature[0] ^ 1]) + signature[1:],
                   tls13=True)
    with pytest.raises(DecryptError):
        sig.verify(scheme, public, CONTENT, signature[:-1], tls13=True)
    # draft-ietf-tls-mldsa: not in TLS 1.2.
    assert not sig.scheme_matches_key(scheme, public, tls13=False)
    with pytest.raises(IllegalParameter):
        sig.verify(scheme, public, CONTENT, signature, tls13=False)
    # Another parameter set's scheme, or an ECDSA key, does not fit.
    other = next(s for s, *_ in SIZES if s != scheme)
    assert not sig.scheme_matches_key(other, public, tls13=True)
    with pytest.raises(IllegalParameter):
        sig.verify(other, public, CONTENT, signature, tls13=True)
    ecdsa = ec.generate_private_key(ec.SECP256R1())
    assert not sig.scheme_matches_key(scheme, ecdsa.public_key(), tls13=True)
    with pytest.raises(InternalError):
        sig.sign(scheme, ecdsa, CONTENT)


def test_mldsa_not_offered_by_default() -> None:
    # Opt-in: the default offer (and what a server signs with by default) leaves it out.
    assert not {_S.MLDSA44, _S.MLDSA65, _S.MLDSA87} & set(sig.DEFAULT_SIGNATURE_SCHEMES)
    assert not {_S.MLDSA44, _S.MLDSA65, _S.MLDSA87} & set(DEFAULT_SIGNATURE_SCHEMES)


def test_mldsa_pkcs8_key_loads(tmp_path: Path) -> None:
    for key_type in MLDSA_KEY_TYPES:
        issued = DevCA.create().issue(key_type=key_type).write(tmp_path, key_type)
        assert issued.key_path is not None and issued.chain_path is not None
        assert b"BEGIN PRIVATE KEY" in Path(issued.key_path).read_bytes()
        key = load_private_key(issued.key_path)
        assert key_description(key) == key_type.upper().replace("MLDSA", "ML-DSA")
        ck = CertifiedKey.from_files(issued.chain_path, issued.key_path)
        assert len(ck.tls13_schemes) == 1 and ck.tls12_schemes == ()
        assert ck.key_type == ""  # no TLS 1.2 suite authenticates with it
    with pytest.raises(UsageError):
        generate_private_key("mldsa-1")


def _ml_configs(tmp_path: Path, key_type: str, scheme: SignatureScheme, **client_kw: object
                ) -> tuple[ClientConfig, ServerConfig]:
    ca = DevCA.create()  # an ECDSA CA issuing an ML-DSA leaf
    issued = ca.issue(key_type=key_type).write(tmp_path, key_type)
    assert issued.chain_path is not None and issued.key_path is not None
    ck = CertifiedKey.from_files(issued.chain_path, issued.key_path)
    trust = TrustStore.from_certificates([ca.certificate])
    client = ClientConfig(server_name="localhost", trust=trust,
                          signature_schemes=(scheme, _S.ECDSA_SECP256R1_SHA256),
                          session_tickets=False,
                          **client_kw)  # type: ignore[arg-type]
    server = ServerConfig(certificates=(ck,), signature_schemes=(scheme,))
    return client, server


@pytest.mark.parametrize(("scheme", "key_type"), [(s, k) for s, k, *_ in SIZES])
def test_mldsa_tls13_handshake(tmp_path: Path, scheme: SignatureScheme, key_type: str
                               ) -> None:
    client_cfg, server_cfg = _ml_configs(tmp_path, key_type, scheme)
    client, server, _, _ = handshake(client_cfg, server_cfg)
    assert client.info is not None and server.info is not None
    assert client.info.certificate_verified
    assert client.info.signature_scheme == scheme


def test_mldsa87_with_mlkem1024_and_secp384r1mlkem1024(tmp_path: Path) -> None:
    for group in (NamedGroup.MLKEM1024, NamedGroup.SECP384R1MLKEM1024, NamedGroup.MLKEM768,
                  NamedGroup.SECP256R1MLKEM768):
        client_cfg, server_cfg = _ml_configs(tmp_path / group.name, "mldsa-87", _S.MLDSA87,
                                             groups=(group,), key_share_groups=(group,))
        server_cfg = replace(server_cfg, groups=(group,))
        client, _server, cspy, sspy = handshake(client_cfg, server_cfg)
        assert isinstance(cspy, SecretSpy)
        assert client.info is not None and client.info.group == group
        assert cspy.secrets["exporter_master_secret"] == sspy.secrets["exporter_master_secret"]


def test_mldsa_server_refuses_tls12_only_client(tmp_path: Path) -> None:
    client_cfg, server_cfg = _ml_configs(tmp_path, "mldsa-44", _S.MLDSA44)
    client_cfg = replace(client_cfg, max_version=ProtocolVersion.TLS12)
    # No TLS 1.2 suite can authenticate with an ML-DSA key.
    with pytest.raises(HandshakeFailure, match=r"no TLS 1\.2 cipher suite in common"):
        handshake(client_cfg, server_cfg)


def test_mldsa_signed_chain_verifies() -> None:
    """cryptography's X.509 verifier (which tlsmith's chain checks use) accepts an
    ML-DSA-87 CA signing an ML-DSA-65 leaf, in both the lenient and strict profiles."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    from tlsmith.x509.keys import der_chain
    from tlsmith.x509.verify import verify_server_chain

    now = datetime.now(UTC)
    ca_key, leaf_key = mldsa.MLDSA87PrivateKey.generate(), mldsa.MLDSA65PrivateKey.generate()

    def build(subject: str, key: mldsa.MLDSA65PublicKey | mldsa.MLDSA87PublicKey,
              ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "PQ CA")]))
            .public_key(key).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False))
        if ca:
            builder = builder.add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
            ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                            critical=False)
        return builder.sign(ca_key, None)  # ML-DSA signs the message itself: no hash

    ca_cert = build("PQ CA", ca_key.public_key(), True)
    leaf = build("localhost", leaf_key.public_key(), False)
    trust = TrustStore.from_certificates([ca_cert])
    for strict in (False, True):
        verified = verify_server_chain(der_chain([leaf]), trust=trust, server_name="localhost",
                                       now=now, strict=strict)
        assert verified is not None

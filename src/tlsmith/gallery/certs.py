"""The gallery's certificates: one gallery CA (kept in the gallery directory) and, made
fresh on every start, each case's chain and key.

Only the gallery CA is meant to be trusted (``ca.pem``). Everything else a case needs --
an intermediate CA, another root nobody trusts, a self-signed leaf, an OCSP response --
is made here with ``cryptography``; validity windows are relative to now, so an
``expired`` certificate is expired whenever the gallery starts.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from tlsmith.x509.devca import (  # shared with the dev CA
    directory_lock,
    key_pem,
    write_atomic,
)
from tlsmith.x509.keys import PrivateKey

CA_FILE = "ca.pem"
CA_KEY_FILE = "ca.key"
INTERMEDIATE_FILE = "intermediate.der"
CA_NAME = "tlsmith gallery CA"
LEAF_NAMES = ("localhost", "127.0.0.1")
WRONG_HOST = "wrong.host.example"

_SKEW = timedelta(minutes=5)  # back-dated notBefore: a slightly slow client clock accepts
_CA_DAYS = 3650
_RENEW_BEFORE = timedelta(days=2)


@dataclass(frozen=True)
class Credential:
    """What one server presents: its chain (DER, leaf first), the leaf's key and an OCSP
    response to staple (or None)."""

    chain: tuple[bytes, ...]
    key: PrivateKey
    names: tuple[str, ...] = LEAF_NAMES
    ocsp_response: bytes | None = None


@dataclass(frozen=True)
class GalleryPKI:
    directory: Path
    cafile: Path
    ca_certificate: x509.Certificate
    intermediate_der: bytes
    #: case name -> what that server presents (cases without a certificate are absent).
    credentials: dict[str, Credential]


class _Issuer:
    def __init__(self, certificate: x509.Certificate, key: PrivateKey) -> None:
        self.certificate, self.key = certificate, key


def _ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tlsmith gallery")])


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_usage(*, ca: bool, key_encipherment: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=not ca, content_commitment=False,
                         key_encipherment=key_encipherment, data_encipherment=False,
                         key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                         encipher_only=False, decipher_only=False)


def _san(names: Sequence[str]) -> x509.SubjectAlternativeName:
    general: list[x509.GeneralName] = []
    for name in names:
        try:
            general.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            general.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(general)


def _ca(common_name: str, now: datetime, parent: _Issuer | None = None) -> _Issuer:
    """A root (no parent) or an intermediate. No pathLen limit on the root: it signs the
    intermediate of ``missing-intermediate``."""
    key = _ec_key()
    signer = parent.key if parent else key
    name = _name(common_name)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(parent.certificate.subject if parent else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _SKEW)
        .not_valid_after(now + timedelta(days=_CA_DAYS if parent is None else 365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None if parent is None
                                             else 0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            signer.public_key()), False)
        .sign(signer, hashes.SHA256())
    )
    return _Issuer(certificate, key)


def _leaf(issuer: _Issuer, now: datetime, *, names: Sequence[str] = LEAF_NAMES,
          key: PrivateKey | None = None, not_before: datetime | None = None,
          not_after: datetime | None = None,
          aia: str | None = None) -> tuple[x509.Certificate, PrivateKey]:
    key = key or _ec_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(issuer.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - _SKEW)
        .not_valid_after(not_after or now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False,
                                  key_encipherment=isinstance(key, rsa.RSAPrivateKey)),
                       critical=True)
        .add_extension(_san(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(
            key.public_key()), False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer.key.public_key()), False)
    )
    if aia is not None:
        builder = builder.add_extension(x509.AuthorityInformationAccess([
            x509.AccessDescription(AuthorityInformationAccessOID.CA_ISSUERS,
                                   x509.UniformResourceIdentifier(aia))]), critical=False)
    return builder.sign(issuer.key, hashes.SHA256()), key


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _der_tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(content)) + content


# AlgorithmIdentifier SEQUENCE { OID } for ecdsa-with-SHA256 and ecdsa-with-SHA1 (RFC 5758,
# RFC 3279: no parameters).
_ECDSA_SHA256 = _der_tlv(0x30, _der_tlv(0x06, bytes.fromhex("2a8648ce3d040302")))
_ECDSA_SHA1 = _der_tlv(0x30, _der_tlv(0x06, bytes.fromhex("2a8648ce3d0401")))


def _resign_sha1(cert: x509.Certificate, issuer: _Issuer) -> bytes:
    """``cert`` re-signed with ecdsa-with-SHA1, as DER. cryptography no longer signs
    certificates with SHA-1, so the TBS is edited (its signature algorithm) and signed
    with the raw ECDSA primitive, and the Certificate SEQUENCE is assembled by hand."""
    key = issuer.key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    tbs = cert.tbs_certificate_bytes
    # The TBS is SEQUENCE { [0] version, serial, signature AlgorithmIdentifier, ... }.
    header = 2 + (tbs[1] & 0x7F if tbs[1] & 0x80 else 0)
    content = tbs[header:]
    assert content.count(_ECDSA_SHA256) >= 1
    content = content.replace(_ECDSA_SHA256, _ECDSA_SHA1, 1)
    new_tbs = _der_tlv(0x30, content)
    signature = key.sign(new_tbs, ec.ECDSA(hashes.SHA1()))
    return _der_tlv(0x30, new_tbs + _ECDSA_SHA1 + _der_tlv(0x03, b"\x00" + signature))


def _self_signed(now: datetime) -> tuple[x509.Certificate, PrivateKey]:
    """What ``openssl req -x509 -subj /CN=localhost -addext subjectAltName=...`` makes."""
    key = _ec_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _SKEW)
        .not_valid_after(now + timedelta(days=30))
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                       False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_san(LEAF_NAMES), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _revoked_response(leaf: x509.Certificate, ca: _Issuer, now: datetime) -> bytes:
    """A DER OCSP response, signed by the CA itself (RFC 6960 §4.2.2.2): revoked."""
    response = (
        ocsp.OCSPResponseBuilder()
        .add_response(cert=leaf, issuer=ca.certificate, algorithm=hashes.SHA1(),
                      cert_status=ocsp.OCSPCertStatus.REVOKED,
                      this_update=now - timedelta(hours=1),
                      next_update=now + timedelta(days=7),
                      revocation_time=now - timedelta(days=1),
                      revocation_reason=x509.ReasonFlags.key_compromise)
        .responder_id(ocsp.OCSPResponderEncoding.HASH, ca.certificate)
        .sign(ca.key, hashes.SHA256())
    )
    return response.public_bytes(serialization.Encoding.DER)


# --- files -------------------------------------------------------------------------------


def _load_or_create_ca(directory: Path, now: datetime) -> _Issuer:
    """The gallery CA in ``directory``, kept across runs so a client that trusts
    ``ca.pem`` once keeps trusting it; created when missing, unreadable or expiring."""
    ca_path, key_path = directory / CA_FILE, directory / CA_KEY_FILE
    with directory_lock(directory):  # two galleries starting at once must agree on one CA
        return _load_or_create_ca_unlocked(ca_path, key_path, now)


def _load_or_create_ca_unlocked(ca_path: Path, key_path: Path, now: datetime) -> _Issuer:
    from tlsmith.x509.keys import load_private_key

    try:
        certificate = x509.load_pem_x509_certificate(ca_path.read_bytes())
        key = load_private_key(key_path)
        if (certificate.public_key() == key.public_key()
                and certificate.subject == _name(CA_NAME)
                and certificate.not_valid_after_utc - now > _RENEW_BEFORE):
            return _Issuer(certificate, key)
    except Exception:  # missing, unreadable, not ours: make a new one
        pass
    issuer = _ca(CA_NAME, now)
    write_atomic(key_path, key_pem(issuer.key), private=True)
    write_atomic(ca_path, _pem(issuer.certificate))
    return issuer


def build_pki(directory: str | os.PathLike[str], aia_url: str,
              now: datetime | None = None) -> GalleryPKI:
    """Every case's credentials, from the gallery CA in ``directory`` (created if
    needed). Writes ``ca.pem`` (the one file clients trust), and for inspection each
    case's ``<case>.pem`` (chain sent) and ``<case>.key``, plus ``intermediate.der``."""
    now = now or datetime.now(UTC)
    directory = Path(directory)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    ca = _load_or_create_ca(directory, now)

    def issued(**kwargs: object) -> Credential:
        cert, key = _leaf(ca, now, **kwargs)  # type: ignore[arg-type]
        return Credential((_der(cert),), key)

    good = issued()
    creds: dict[str, Credential] = {"good": good}
    creds["expired"] = issued(not_before=now - timedelta(days=60),
                              not_after=now - timedelta(days=1))
    creds["not-yet-valid"] = issued(not_before=now + timedelta(days=30),
                                    not_after=now + timedelta(days=90))
    wrong = issued(names=(WRONG_HOST,))
    creds["wrong-host"] = Credential(wrong.chain, wrong.key, (WRONG_HOST,))
    cert, key = _self_signed(now)
    creds["self-signed"] = Credential((_der(cert),), key)
    stranger = _ca("tlsmith gallery untrusted root", now)
    cert, key = _leaf(stranger, now)
    creds["untrusted-root"] = Credential((_der(cert), _der(stranger.certificate)), key)
    intermediate = _ca("tlsmith gallery intermediate CA", now, parent=ca)
    cert, key = _leaf(intermediate, now, aia=aia_url)
    creds["missing-intermediate"] = Credential((_der(cert),), key)  # no intermediate sent
    cert, key = _leaf(ca, now)
    creds["revoked"] = Credential((_der(cert),), key,
                                  ocsp_response=_revoked_response(cert, ca, now))
    # TLS 1.0/1.1 emulators offer only RSA key transport suites: an RSA-2048 leaf.
    rsa_leaf = issued(key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    creds["tls10-only"] = creds["tls11-only"] = rsa_leaf
    for name in ("tls12-only", "cbc-only", "client-cert-required", "hrr-required",
                 "alpn-mismatch", "0rtt-rejected"):
        creds[name] = good
    creds["weak-rsa-1024"] = issued(
        key=rsa.generate_private_key(public_exponent=65537, key_size=1024))
    cert, key = _leaf(ca, now)
    creds["sha1-signature"] = Credential((_resign_sha1(cert, ca),), key)

    for name, cred in creds.items():
        chain_pem = b"".join(_pem(x509.load_der_x509_certificate(d)) for d in cred.chain)
        write_atomic(directory / f"{name}.pem", chain_pem)
        write_atomic(directory / f"{name}.key", key_pem(cred.key), private=True)
    intermediate_der = _der(intermediate.certificate)
    write_atomic(directory / INTERMEDIATE_FILE, intermediate_der)
    return GalleryPKI(directory=directory, cafile=directory / CA_FILE,
                      ca_certificate=ca.certificate, intermediate_der=intermediate_der,
                      credentials=creds)

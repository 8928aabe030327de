"""A certificate gallery, built offline with ``cryptography`` (EC P-256 keys throughout).

Every good or broken server certificate the verifier must judge: each ``Exhibit`` holds
the chain the server would send (DER, leaf first), the trust store a client would use
and the name it would ask for. ``build_gallery`` makes them all at once (about a dozen
key generations), so a test module builds it once.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from tlsmith.x509.devca import DevCA
from tlsmith.x509.verify import TrustStore

AIA_URL = "http://ca.gallery.example/intermediate.der"

Key = ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Exhibit:
    """One case: what the server sends, what the client trusts and asks for."""

    chain: list[bytes]
    trust: TrustStore
    server_name: str | None
    certificates: list[x509.Certificate] = field(default_factory=list)


def _key() -> Key:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str, organization: str = "tlsmith gallery") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        ]
    )


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _san(names: Sequence[str]) -> x509.SubjectAlternativeName:
    general: list[x509.GeneralName] = []
    for name in names:
        try:
            general.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            general.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(general)


class _Issuer:
    """A CA (root or intermediate): a name, a key and its certificate."""

    def __init__(self, name: x509.Name, key: Key, certificate: x509.Certificate) -> None:
        self.name, self.key, self.certificate = name, key, certificate


def _ca(
    common_name: str,
    now: datetime,
    parent: _Issuer | None = None,
    *,
    key: Key | None = None,
    ca: bool = True,
) -> _Issuer:
    """A root (no parent) or an intermediate; ``ca=False`` makes a non-CA 'intermediate'."""
    key = key or _key()
    name = _name(common_name)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    signer_key = parent.key if parent else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(parent.name if parent else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=30))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(
            x509.BasicConstraints(ca=ca, path_length=None), critical=True
        )
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()),
            critical=False,
        )
    )
    return _Issuer(name, key, builder.sign(signer_key, hashes.SHA256()))


def _leaf(
    issuer: _Issuer,
    names: Sequence[str],
    now: datetime,
    *,
    key: Key | None = None,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    eku: Sequence[x509.ObjectIdentifier] = (ExtendedKeyUsageOID.SERVER_AUTH,),
    san_critical: bool = False,
    aki: bool = True,
    aia: str | None = None,
) -> x509.Certificate:
    key = key or _key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(issuer.name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(days=1))
        .not_valid_after(not_after or now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(_san(names), critical=san_critical)
        .add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    if aki:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), False
        )
    if aia:
        builder = builder.add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.CA_ISSUERS,
                        x509.UniformResourceIdentifier(aia),
                    )
                ]
            ),
            critical=False,
        )
    return builder.sign(issuer.key, hashes.SHA256())


def openssl_style_self_signed(
    now: datetime, name: str = "localhost", *, days: int = 30
) -> x509.Certificate:
    """What ``openssl req -x509 -newkey ec -subj /CN=localhost -addext
    subjectAltName=DNS:localhost`` makes: self-signed, basicConstraints CA:TRUE
    (critical), SKI, AKI, the SAN; no keyUsage, no extendedKeyUsage."""
    key = _key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_san([name]), critical=False)
        .sign(key, hashes.SHA256())
    )


def _malformed_versions(der: bytes) -> dict[str, bytes]:
    """Three broken encodings of a good certificate: version INTEGER 3 (X.509 "v4"),
    an issuer Name with a character a PrintableString may not hold, truncated DER."""
    version = bytes.fromhex("a003020102")  # [0] EXPLICIT INTEGER 2 (v3)
    assert der.count(version) == 1
    bad_version = der.replace(version, bytes.fromhex("a003020103"))
    # The issuer CN "Gallery Mid" as a UTF8String; same length as a PrintableString with '*'.
    issuer_cn = b"\x0c\x0bGallery Mid"
    assert issuer_cn in der
    bad_name = der.replace(issuer_cn, b"\x13\x0bGallery*Mid", 1)
    return {"version 3": bad_version, "issuer name": bad_name, "truncated": der[: len(der) // 2]}


@dataclass
class Gallery:
    """All the exhibits, by name (see build_gallery)."""

    now: datetime
    root: x509.Certificate
    exhibits: dict[str, Exhibit]
    malformed: dict[str, bytes]

    def __getitem__(self, name: str) -> Exhibit:
        return self.exhibits[name]


def build_gallery(now: datetime) -> Gallery:
    root = _ca("Gallery Root", now)
    mid = _ca("Gallery Mid", now, root)
    other_root = _ca("Stranger Root", now)
    other_mid = _ca("Stranger Mid", now, other_root)
    not_a_ca = _ca("Gallery Not-a-CA", now, root, ca=False)
    unrelated = _ca("Unrelated Root", now)
    trust = TrustStore.from_certificates([root.certificate])
    leaf_key = _key()  # reused for the leaves, which only differ in their fields

    def leaf(names: Sequence[str], issuer: _Issuer = mid, **kwargs: object) -> x509.Certificate:
        return _leaf(issuer, names, now, key=leaf_key, **kwargs)  # type: ignore[arg-type]

    def exhibit(
        certs: Sequence[x509.Certificate],
        server_name: str | None,
        store: TrustStore = trust,
    ) -> Exhibit:
        return Exhibit([_der(c) for c in certs], store, server_name, list(certs))

    good = leaf(["a.example.com", "b.example.com"])
    wildcard = leaf(["*.example.com"])
    self_signed = openssl_style_self_signed(now)
    pinned = TrustStore.from_certificates([self_signed])
    devca = DevCA.create(now=now)
    exhibits = {
        "valid": exhibit([good, mid.certificate], "a.example.com"),
        "out of order": exhibit([good, root.certificate, mid.certificate], "b.example.com"),
        "extra certificate": exhibit(
            [good, unrelated.certificate, mid.certificate], "a.example.com"
        ),
        "expired": exhibit(
            [
                leaf(
                    ["a.example.com"],
                    not_before=now - timedelta(days=90),
                    not_after=now - timedelta(days=3, hours=1),
                ),
                mid.certificate,
            ],
            "a.example.com",
        ),
        "not yet valid": exhibit(
            [
                leaf(
                    ["a.example.com"],
                    not_before=now + timedelta(days=2, hours=1),
                    not_after=now + timedelta(days=90),
                ),
                mid.certificate,
            ],
            "a.example.com",
        ),
        "wrong host": exhibit([good, mid.certificate], "c.example.com"),
        "wildcard match": exhibit([wildcard, mid.certificate], "www.example.com"),
        "wildcard non-match": exhibit([wildcard, mid.certificate], "a.b.example.com"),
        "ip san": exhibit([leaf(["192.0.2.7", "2001:db8::7"]), mid.certificate], "192.0.2.7"),
        "ip san mismatch": exhibit(
            [leaf(["192.0.2.7", "2001:db8::7"]), mid.certificate], "192.0.2.8"
        ),
        "self-signed untrusted": exhibit([self_signed], "localhost"),
        "self-signed trusted": exhibit([self_signed], "localhost", pinned),
        "self-signed trusted wrong host": exhibit([self_signed], "example.org", pinned),
        "unknown ca": exhibit(
            [leaf(["a.example.com"], other_mid), other_mid.certificate], "a.example.com"
        ),
        "unknown ca with root": exhibit(
            [
                leaf(["a.example.com"], other_mid),
                other_mid.certificate,
                other_root.certificate,
            ],
            "a.example.com",
        ),
        "dev ca untrusted": exhibit(
            [x509.load_pem_x509_certificate(devca.issue(now=now).cert_pem)], "localhost"
        ),
        "missing intermediate": exhibit([leaf(["a.example.com"], aia=AIA_URL)], "a.example.com"),
        "wrong eku": exhibit(
            [leaf(["a.example.com"], eku=[ExtendedKeyUsageOID.CLIENT_AUTH]), mid.certificate],
            "a.example.com",
        ),
        "ca:false intermediate": exhibit(
            [leaf(["a.example.com"], not_a_ca), not_a_ca.certificate], "a.example.com"
        ),
        "critical san": exhibit(
            [leaf(["a.example.com"], san_critical=True), mid.certificate], "a.example.com"
        ),
        "no aki": exhibit([leaf(["a.example.com"], aki=False), mid.certificate], "a.example.com"),
    }
    # The self-signed-and-expired exhibit must pin the very certificate it sends.
    old = openssl_style_self_signed(now - timedelta(days=40), days=10)
    exhibits["self-signed trusted expired"] = exhibit(
        [old], "localhost", TrustStore.from_certificates([old])
    )
    return Gallery(now, root.certificate, exhibits, _malformed_versions(_der(good)))

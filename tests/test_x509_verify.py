"""Chain verification: success for DNS/IP names, and each failure's error, alert and words."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tlsmith.codec.enums import AlertDescription
from tlsmith.errors import (
    BadCertificate,
    CertificateExpired,
    CertificateRequired,
    CertificateUnknown,
    UnknownCA,
    UnsupportedCertificate,
    UsageError,
)
from tlsmith.x509.devca import DevCA, Issued
from tlsmith.x509.keys import der_chain
from tlsmith.x509.verify import (
    SYSTEM_BUNDLE_PATHS,
    TrustStore,
    VerifiedChain,
    describe_certificate,
    verify_client_chain,
    verify_server_chain,
)

NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def trust(devca: DevCA) -> TrustStore:
    return TrustStore.from_pem_bytes(devca.ca_pem)


@pytest.fixture(scope="module")
def server(devca: DevCA) -> Issued:
    return devca.issue(("localhost", "127.0.0.1", "::1"), now=NOW)


def chain_of(issued: Issued) -> list[bytes]:
    return der_chain([issued.certificate])


# --- success -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server_name", "checked"),
    [
        ("localhost", "localhost"),
        ("LOCALHOST.", "localhost"),
        ("127.0.0.1", "127.0.0.1"),
        ("::1", "::1"),
        ("[::1]", "::1"),
        ("0:0:0:0:0:0:0:1", "::1"),
    ],
)
def test_verify_server_chain_accepts_dns_and_ip_names(
    server: Issued, trust: TrustStore, devca: DevCA, server_name: str, checked: str
) -> None:
    verified = verify_server_chain(
        chain_of(server), trust=trust, server_name=server_name, now=NOW
    )
    assert isinstance(verified, VerifiedChain)
    assert verified.hostname == checked
    assert verified.leaf == server.certificate
    assert verified.chain == (server.certificate, devca.certificate)


def test_verify_server_chain_accepts_chain_that_includes_the_root(
    server: Issued, trust: TrustStore
) -> None:
    chain = der_chain(x509.load_pem_x509_certificates(server.chain_pem))
    assert len(chain) == 2
    verified = verify_server_chain(chain, trust=trust, server_name="localhost", now=NOW)
    assert len(verified.chain) == 2


def test_verify_server_chain_without_name_checks_only_the_chain(
    server: Issued, trust: TrustStore
) -> None:
    verified = verify_server_chain(chain_of(server), trust=trust, server_name=None, now=NOW)
    assert verified.hostname is None


def test_verify_server_chain_accepts_naive_now_as_utc(server: Issued, trust: TrustStore) -> None:
    naive = NOW.replace(tzinfo=None)
    verify_server_chain(chain_of(server), trust=trust, server_name="localhost", now=naive)


@pytest.mark.parametrize("key_type", ["rsa-2048", "ecdsa-p384", "ecdsa-p521", "ed25519", "ed448"])
def test_verify_server_chain_accepts_every_leaf_key_type(
    devca: DevCA, trust: TrustStore, key_type: str
) -> None:
    issued = devca.issue(key_type=key_type, now=NOW)
    verify_server_chain(chain_of(issued), trust=trust, server_name="localhost", now=NOW)


@pytest.mark.parametrize("ca_key_type", ["rsa-2048", "ecdsa-p384", "ecdsa-p521"])
def test_verify_server_chain_accepts_other_ca_key_types(ca_key_type: str) -> None:
    ca = DevCA.create(key_type=ca_key_type, now=NOW)
    issued = ca.issue(now=NOW)
    trust = TrustStore.from_certificates([ca.certificate])
    verify_server_chain(chain_of(issued), trust=trust, server_name="::1", now=NOW)


def test_verify_server_chain_wildcard_matches_one_label(devca: DevCA, trust: TrustStore) -> None:
    issued = devca.issue(("*.example.com",), now=NOW)
    verify_server_chain(chain_of(issued), trust=trust, server_name="www.example.com", now=NOW)
    for name in ("example.com", "a.b.example.com"):
        with pytest.raises(CertificateUnknown, match=r"\*\.example\.com"):
            verify_server_chain(chain_of(issued), trust=trust, server_name=name, now=NOW)


# --- failures ----------------------------------------------------------------------------


def test_verify_server_chain_wrong_hostname_lists_the_sans(
    server: Issued, trust: TrustStore
) -> None:
    with pytest.raises(CertificateUnknown) as info:
        verify_server_chain(chain_of(server), trust=trust, server_name="example.org", now=NOW)
    message = str(info.value)
    assert "'example.org'" in message
    assert "localhost, 127.0.0.1, ::1" in message
    assert info.value.alert is AlertDescription.CERTIFICATE_UNKNOWN


def test_verify_server_chain_wrong_ip_is_a_mismatch(server: Issued, trust: TrustStore) -> None:
    with pytest.raises(CertificateUnknown, match="valid for localhost"):
        verify_server_chain(chain_of(server), trust=trust, server_name="10.0.0.1", now=NOW)


def test_verify_server_chain_expired_says_how_long_ago(devca: DevCA, trust: TrustStore) -> None:
    issued = devca.issue(not_after=NOW - timedelta(days=3, hours=1), now=NOW)
    with pytest.raises(CertificateExpired) as info:
        verify_server_chain(chain_of(issued), trust=trust, server_name="localhost", now=NOW)
    message = str(info.value)
    assert "expired 3 days ago" in message
    assert re.search(r"not_after \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", message)
    assert "renew" in message
    assert info.value.alert is AlertDescription.CERTIFICATE_EXPIRED


def test_verify_server_chain_just_expired_mentions_the_clock(
    devca: DevCA, trust: TrustStore
) -> None:
    issued = devca.issue(not_after=NOW - timedelta(minutes=10), now=NOW)
    with pytest.raises(CertificateExpired, match=r"expired 10 minutes ago.*clock"):
        verify_server_chain(chain_of(issued), trust=trust, server_name="localhost", now=NOW)


def test_verify_server_chain_not_yet_valid_blames_the_clock(
    devca: DevCA, trust: TrustStore
) -> None:
    issued = devca.issue(not_before=NOW + timedelta(minutes=2, seconds=30), now=NOW)
    with pytest.raises(CertificateExpired) as info:
        verify_server_chain(chain_of(issued), trust=trust, server_name="localhost", now=NOW)
    message = str(info.value)
    assert "not valid for another 2 minutes" in message
    assert "check the clock on this machine" in message


def test_verify_server_chain_validity_precedes_trust(devca: DevCA) -> None:
    other = DevCA.create("some other CA", now=NOW)
    issued = devca.issue(not_after=NOW - timedelta(days=400), now=NOW)
    trust = TrustStore.from_certificates([other.certificate])
    with pytest.raises(CertificateExpired, match="expired 1 year ago"):
        verify_server_chain(chain_of(issued), trust=trust, server_name="localhost", now=NOW)


def test_verify_server_chain_unknown_ca_names_the_issuer(devca: DevCA) -> None:
    stranger = DevCA.create("stranger CA", now=NOW)
    issued = stranger.issue(now=NOW)
    trust = TrustStore.from_certificates([devca.certificate])
    with pytest.raises(UnknownCA) as info:
        verify_server_chain(chain_of(issued), trust=trust, server_name="localhost", now=NOW)
    message = str(info.value)
    assert "CN=stranger CA" in message
    assert "--cafile" in message
    assert info.value.alert is AlertDescription.UNKNOWN_CA


def test_verify_server_chain_same_ca_name_other_key_is_unknown_ca(devca: DevCA) -> None:
    # A regenerated dev CA has the same name but a new key.
    twin = DevCA.create(now=NOW)
    issued = twin.issue(now=NOW)
    trust = TrustStore.from_certificates([devca.certificate])
    with pytest.raises(UnknownCA, match="different key"):
        verify_server_chain(chain_of(issued), trust=trust, server_name="localhost", now=NOW)


def test_verify_server_chain_self_signed_is_unknown_ca(trust: TrustStore) -> None:
    self_signed = DevCA.create("self-signed server", now=NOW).certificate
    with pytest.raises(UnknownCA, match="self-signed"):
        verify_server_chain(
            der_chain([self_signed]), trust=trust, server_name="localhost", now=NOW
        )


def test_verify_server_chain_expired_trusted_root(devca: DevCA) -> None:
    old = DevCA.create("old CA", now=NOW - timedelta(days=20), days=10)
    issued = old.issue(now=NOW)
    trust = TrustStore.from_certificates([old.certificate])
    with pytest.raises(CertificateExpired, match="trusted CA certificate 'O=tlsmith,CN=old CA'"):
        verify_server_chain(chain_of(issued), trust=trust, server_name="localhost", now=NOW)


def test_verify_server_chain_client_certificate_is_unsupported(
    devca: DevCA, trust: TrustStore
) -> None:
    issued = devca.issue(client=True, now=NOW)
    with pytest.raises(UnsupportedCertificate, match=r"clientAuth.*serverAuth"):
        verify_server_chain(chain_of(issued), trust=trust, server_name="localhost", now=NOW)


@pytest.mark.parametrize("garbage", [b"", b"\x30\x03\x02\x01", b"not a certificate at all"])
def test_verify_server_chain_garbage_der_is_bad_certificate(
    trust: TrustStore, garbage: bytes
) -> None:
    with pytest.raises(BadCertificate, match="not valid DER") as info:
        verify_server_chain([garbage], trust=trust, server_name="localhost", now=NOW)
    assert info.value.alert is AlertDescription.BAD_CERTIFICATE


def test_verify_server_chain_garbage_intermediate_is_bad_certificate(
    server: Issued, trust: TrustStore
) -> None:
    with pytest.raises(BadCertificate, match="certificate #1"):
        verify_server_chain(
            [*chain_of(server), b"\xff" * 10], trust=trust, server_name="localhost", now=NOW
        )


def test_verify_server_chain_empty_is_bad_certificate(trust: TrustStore) -> None:
    with pytest.raises(BadCertificate, match="sent no certificate"):
        verify_server_chain([], trust=trust, server_name="localhost", now=NOW)


def test_verify_server_chain_invalid_server_name_is_usage_error(
    server: Issued, trust: TrustStore
) -> None:
    with pytest.raises(UsageError):
        verify_server_chain(chain_of(server), trust=trust, server_name="a..b", now=NOW)


# --- client chains -----------------------------------------------------------------------


def test_verify_client_chain_accepts_client_certificate(devca: DevCA, trust: TrustStore) -> None:
    issued = devca.issue(("alice.example",), client=True, now=NOW)
    verified = verify_client_chain(chain_of(issued), trust=trust, now=NOW)
    assert verified.leaf == issued.certificate
    assert verified.hostname is None
    assert len(verified.chain) == 2


def test_verify_client_chain_rejects_server_certificate(
    server: Issued, trust: TrustStore
) -> None:
    with pytest.raises(UnsupportedCertificate, match="TLS client"):
        verify_client_chain(chain_of(server), trust=trust, now=NOW)


def test_verify_client_chain_empty_is_certificate_required(trust: TrustStore) -> None:
    with pytest.raises(CertificateRequired):
        verify_client_chain([], trust=trust, now=NOW)


def test_verify_client_chain_expired(devca: DevCA, trust: TrustStore) -> None:
    issued = devca.issue(client=True, not_after=NOW - timedelta(hours=5), now=NOW)
    with pytest.raises(CertificateExpired, match=r"client's certificate .* expired 5 hours ago"):
        verify_client_chain(chain_of(issued), trust=trust, now=NOW)


def _anonymous_client_leaf(
    key_usage: x509.KeyUsage | None = None,
) -> tuple[x509.Certificate, x509.Certificate]:
    """(root, leaf): a client leaf with an empty subject and a non-critical SAN."""
    root_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(2))
    root = _sign("Root", "Root", root_key, root_key, ca=True)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(root.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("test")]), False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
    )
    if key_usage is not None:
        builder = builder.add_extension(key_usage, True)
    return root, builder.sign(root_key, hashes.SHA256())


def test_verify_client_chain_lenient_by_default_strict_on_request() -> None:
    # BoringSSL's runner (and many private CAs) issue client certificates with an empty
    # subject and a non-critical subjectAltName: the strict Web PKI profile refuses
    # them (RFC 5280 §4.2.1.6), OpenSSL and the default policy accept them.
    root, leaf = _anonymous_client_leaf()
    trust = TrustStore.from_certificates([root])
    verified = verify_client_chain(der_chain([leaf]), trust=trust, now=NOW)
    assert verified.chain == (leaf, root)
    with pytest.raises(CertificateUnknown):
        verify_client_chain(der_chain([leaf]), trust=trust, now=NOW, strict=True)


def test_verify_client_chain_key_usage_must_allow_signing() -> None:
    # RFC 5280 §4.2.1.3: the client signs CertificateVerify with this key.
    encipher_only = x509.KeyUsage(False, False, True, False, False, False, False, False, False)
    root, leaf = _anonymous_client_leaf(encipher_only)
    trust = TrustStore.from_certificates([root])
    with pytest.raises(UnsupportedCertificate, match="does not allow this use"):
        verify_client_chain(der_chain([leaf]), trust=trust, now=NOW)


def test_verify_client_chain_lenient_still_requires_client_auth_eku(
    server: Issued, trust: TrustStore
) -> None:
    with pytest.raises(UnsupportedCertificate, match="TLS client"):
        verify_client_chain(chain_of(server), trust=trust, now=NOW, strict=False)


# --- trust stores ------------------------------------------------------------------------


def test_trust_store_from_pem_file(devca: DevCA) -> None:
    assert devca.ca_path is not None
    store = TrustStore.from_pem_file(devca.ca_path)
    assert len(store) == 1
    assert devca.certificate in store
    assert str(devca.ca_path) in repr(store)


def test_trust_store_errors_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read"):
        TrustStore.from_pem_file(tmp_path / "missing.pem")
    with pytest.raises(UsageError, match="no trusted certificates"):
        TrustStore.from_pem_bytes(b"")
    with pytest.raises(UsageError):
        TrustStore.from_certificates([])


def test_trust_store_system_loads_the_bundle() -> None:
    if not any(Path(p).is_file() for p in SYSTEM_BUNDLE_PATHS):
        pytest.skip("no system CA bundle on this machine")
    store = TrustStore.system()
    assert len(store) > 10
    assert TrustStore.system() is store  # parsed once


def test_trust_store_system_rejects_dev_leaf_as_unknown_ca(server: Issued) -> None:
    if not any(Path(p).is_file() for p in SYSTEM_BUNDLE_PATHS):
        pytest.skip("no system CA bundle on this machine")
    with pytest.raises(UnknownCA, match=r"tlsmith development CA.*--cafile"):
        verify_server_chain(
            chain_of(server), trust=TrustStore.system(), server_name="localhost", now=NOW
        )


# --- describe_certificate ----------------------------------------------------------------


def test_describe_certificate(server: Issued, devca: DevCA) -> None:
    info = describe_certificate(server.certificate)
    assert info["subject"] == "CN=localhost"
    assert info["issuer"] == devca.certificate.subject.rfc4514_string()
    assert isinstance(info["not_before"], str)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", str(info["not_after"]))
    assert info["subject_alt_names"] == ["DNS:localhost", "IP:127.0.0.1", "IP:::1"]
    assert info["public_key"] == "ECDSA P-256"
    assert info["signature_algorithm"] == "ecdsa-with-SHA256"
    assert int(str(info["serial"]), 16) == server.certificate.serial_number
    assert len(info["sha256_fingerprint"]) == 64


# --- three-level chains (root -> intermediate -> leaf), built by hand -----------------------


def _sign(
    subject: str,
    issuer_name: str,
    key: ec.EllipticCurvePrivateKey,
    signer: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    not_after: datetime = NOW + timedelta(days=30),
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=60))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), False
        )
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("leaf.example")]), False
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
    return builder.sign(signer, hashes.SHA256())


def _three_level(
    intermediate_not_after: datetime = NOW + timedelta(days=30),
) -> tuple[x509.Certificate, x509.Certificate, x509.Certificate]:
    root_key, mid_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = _sign("Root", "Root", root_key, root_key, ca=True)
    mid = _sign("Mid", "Root", mid_key, root_key, ca=True, not_after=intermediate_not_after)
    leaf = _sign("leaf.example", "Mid", leaf_key, mid_key, ca=False)
    return root, mid, leaf


def test_verify_server_chain_through_an_intermediate() -> None:
    root, mid, leaf = _three_level()
    trust = TrustStore.from_certificates([root])
    verified = verify_server_chain(
        der_chain([leaf, mid]), trust=trust, server_name="leaf.example", now=NOW
    )
    assert verified.chain == (leaf, mid, root)


def test_verify_server_chain_missing_intermediate_is_unknown_ca() -> None:
    root, _, leaf = _three_level()
    trust = TrustStore.from_certificates([root])
    with pytest.raises(UnknownCA, match=r"'CN=Mid'.*missing an intermediate"):
        verify_server_chain(der_chain([leaf]), trust=trust, server_name="leaf.example", now=NOW)


def test_verify_server_chain_untrusted_root_sent_by_server() -> None:
    root, mid, leaf = _three_level()
    trust = TrustStore.from_certificates([DevCA.create(now=NOW).certificate])
    with pytest.raises(UnknownCA, match="the root 'CN=Root' is self-signed"):
        verify_server_chain(
            der_chain([leaf, mid, root]), trust=trust, server_name="leaf.example", now=NOW
        )


def test_verify_server_chain_expired_intermediate() -> None:
    root, mid, leaf = _three_level(intermediate_not_after=NOW - timedelta(days=2))
    trust = TrustStore.from_certificates([root])
    expected = "intermediate certificate 'CN=Mid' expired 2 days"
    with pytest.raises(CertificateExpired, match=expected):
        verify_server_chain(
            der_chain([leaf, mid]), trust=trust, server_name="leaf.example", now=NOW
        )


# --- the per-store cache of verified server chains ---------------------------------------


def test_a_verified_server_chain_is_remembered_per_store_name_and_policy(
    devca: DevCA,
) -> None:
    trust = TrustStore.from_pem_bytes(devca.ca_pem)
    issued = devca.issue(("localhost",), not_after=NOW + timedelta(days=2), now=NOW)
    chain = chain_of(issued)
    first = verify_server_chain(chain, trust=trust, server_name="localhost", now=NOW)
    assert verify_server_chain(chain, trust=trust, server_name="localhost",
                               now=NOW + timedelta(hours=1)) is first
    # Another name, another policy or another store: verified afresh, and judged.
    with pytest.raises(CertificateUnknown):
        verify_server_chain(chain, trust=trust, server_name="example.com", now=NOW)
    assert verify_server_chain(chain, trust=trust, server_name="localhost", now=NOW,
                               strict=True) is not first
    other = TrustStore.from_pem_bytes(DevCA.create().ca_pem)
    with pytest.raises(UnknownCA):
        verify_server_chain(chain, trust=other, server_name="localhost", now=NOW)
    # Past the end of the leaf's validity the remembered verdict no longer counts.
    with pytest.raises(CertificateExpired):
        verify_server_chain(chain, trust=trust, server_name="localhost",
                            now=NOW + timedelta(days=3))
    with pytest.raises(CertificateExpired):
        verify_server_chain(chain, trust=trust, server_name="localhost",
                            now=NOW - timedelta(days=400))
    # A failure is not remembered: the same bad chain fails every time.
    for _ in range(2):
        with pytest.raises(CertificateUnknown):
            verify_server_chain(chain, trust=trust, server_name="example.com", now=NOW)


def test_the_verified_chain_cache_is_bounded(devca: DevCA) -> None:
    trust = TrustStore.from_pem_bytes(devca.ca_pem)
    issued = devca.issue(("localhost", "127.0.0.1"), now=NOW)
    chain = chain_of(issued)
    for i in range(200):
        verify_server_chain(chain, trust=trust, server_name="localhost",
                            now=NOW + timedelta(seconds=i))
        verify_server_chain(chain + chain[:1] * (i % 70), trust=trust,
                            server_name="localhost", now=NOW)
    assert len(trust._verified) <= 64

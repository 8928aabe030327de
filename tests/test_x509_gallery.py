"""The certificate gallery (tests/gallery.py): for each exhibit, verify_server_chain's
verdict, the failure ``reason``, the alert it sends and a sentence of the explanation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gallery import AIA_URL, Exhibit, Gallery, build_gallery
from tlsmith.codec.enums import AlertDescription
from tlsmith.errors import (
    CERTIFICATE_ERROR_FOR_REASON,
    CERTIFICATE_REASONS,
    ERROR_FOR_ALERT,
    BadCertificate,
    CertificateError,
    CertificateExpired,
    CertificateRevoked,
    CertificateUnknown,
    ProtocolError,
    UnknownCA,
    UnsupportedCertificate,
    certificate_error,
    error_for_alert,
)
from tlsmith.explain import explain, format_chain
from tlsmith.x509.verify import VerifiedChain, describe_chain, verify_server_chain

NOW = datetime.now(UTC)
A = AlertDescription


@pytest.fixture(scope="module")
def gallery() -> Gallery:
    return build_gallery(NOW)


def verify(exhibit: Exhibit, *, strict: bool = False) -> VerifiedChain:
    return verify_server_chain(
        exhibit.chain,
        trust=exhibit.trust,
        server_name=exhibit.server_name,
        now=NOW,
        strict=strict,
    )


# --- accepted ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "path_length"),
    [
        ("valid", 3),
        ("out of order", 3),
        ("extra certificate", 3),
        ("wildcard match", 3),
        ("ip san", 3),
        # As `openssl req -x509` makes it (CA:TRUE), and trusted with --cafile: like
        # Python's ssl, curl and gnutls-cli, the trusted certificate is the whole path.
        ("self-signed trusted", 1),
        # What OpenSSL and browsers accept: trustme's critical SAN, NSS's missing AKI.
        ("critical san", 3),
        ("no aki", 3),
    ],
)
def test_gallery_accepted(gallery: Gallery, name: str, path_length: int) -> None:
    exhibit = gallery[name]
    verified = verify(exhibit)
    assert verified.leaf == exhibit.certificates[0]
    assert len(verified.chain) == path_length
    assert verified.chain[-1] in exhibit.trust


def test_gallery_valid_chain_is_also_strictly_valid(gallery: Gallery) -> None:
    assert verify(gallery["valid"], strict=True).chain[-1] == gallery.root


# --- refused ---------------------------------------------------------------------------------

REFUSED = [
    # name, error class, reason, alert, fragments of the explanation
    ("expired", CertificateExpired, "expired", A.CERTIFICATE_EXPIRED,
     ["'CN=a.example.com' expired 3 days ago", "renewed"]),
    ("not yet valid", CertificateExpired, "not_yet_valid", A.CERTIFICATE_EXPIRED,
     ["not valid for another 2 days", "check the clock"]),
    ("wrong host", CertificateUnknown, "hostname_mismatch", A.CERTIFICATE_UNKNOWN,
     ["valid for a.example.com, b.example.com; we asked for 'c.example.com'"]),
    ("wildcard non-match", CertificateUnknown, "hostname_mismatch", A.CERTIFICATE_UNKNOWN,
     ["valid for *.example.com; we asked for 'a.b.example.com'", "exactly one"]),
    ("ip san mismatch", CertificateUnknown, "hostname_mismatch", A.CERTIFICATE_UNKNOWN,
     ["valid for 192.0.2.7, 2001:db8::7; we asked for '192.0.2.8'"]),
    ("self-signed untrusted", UnknownCA, "self_signed", A.UNKNOWN_CA,
     ["'CN=localhost' is self-signed", "--cafile"]),
    ("self-signed trusted wrong host", CertificateUnknown, "hostname_mismatch",
     A.CERTIFICATE_UNKNOWN, ["valid for localhost; we asked for 'example.org'"]),
    ("self-signed trusted expired", CertificateExpired, "expired", A.CERTIFICATE_EXPIRED,
     ["'CN=localhost' expired 30 days ago"]),
    ("unknown ca", UnknownCA, "unknown_issuer", A.UNKNOWN_CA,
     ["chains up to 'O=tlsmith gallery,CN=Stranger Root' (via 1 intermediate)",
      "not among the 1 trusted certificate", "--cafile"]),
    ("unknown ca with root", UnknownCA, "unknown_issuer", A.UNKNOWN_CA,
     ["ends at the CA 'O=tlsmith gallery,CN=Stranger Root'", "if you trust that CA, pass "
      "--cafile"]),
    ("dev ca untrusted", UnknownCA, "unknown_issuer", A.UNKNOWN_CA,
     ["tlsmith's development CA", "`tlsmith serve` keeps its CA in", "--cafile"]),
    ("missing intermediate", UnknownCA, "missing_intermediate", A.UNKNOWN_CA,
     ["'O=tlsmith gallery,CN=Gallery Mid', which the server did not send",
      f"downloaded from {AIA_URL}"]),
    ("wrong eku", UnsupportedCertificate, "wrong_usage", A.UNSUPPORTED_CERTIFICATE,
     ["not allowed for TLS server authentication", "allows: clientAuth", "serverAuth"]),
    ("ca:false intermediate", UnsupportedCertificate, "wrong_usage",
     A.UNSUPPORTED_CERTIFICATE,
     ["signed by 'O=tlsmith gallery,CN=Gallery Not-a-CA'", "not a CA certificate"]),
]


@pytest.mark.parametrize(
    ("name", "error", "reason", "alert", "fragments"), REFUSED, ids=[r[0] for r in REFUSED]
)
def test_gallery_refused(
    gallery: Gallery,
    name: str,
    error: type[CertificateError],
    reason: str,
    alert: AlertDescription,
    fragments: list[str],
) -> None:
    exhibit = gallery[name]
    with pytest.raises(CertificateError) as info:
        verify(exhibit)
    exc = info.value
    assert type(exc) is error
    assert exc.reason == reason
    assert exc.alert is alert
    assert exc.subject  # names the certificate at fault
    for fragment in fragments:
        assert fragment in exc.message
    assert "malformed" not in exc.message  # every exhibit here is well-formed
    # The chain the server sent is attached, for printing.
    assert [c["subject"] for c in exc.peer_chain] == [
        c.subject.rfc4514_string() for c in exhibit.certificates
    ]


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("critical san", "subjectAltName must not be critical"),
        ("no aki", "authorityKeyIdentifier is required"),
        ("self-signed trusted", "a server certificate must not be a CA"),
    ],
)
def test_gallery_strict_profile_names_the_rule(gallery: Gallery, name: str, rule: str) -> None:
    verify(gallery[name])  # the default policy accepts it ...
    with pytest.raises(CertificateUnknown) as info:  # ... the strict profile does not
        verify(gallery[name], strict=True)
    assert info.value.reason == "policy"
    assert info.value.alert is A.CERTIFICATE_UNKNOWN
    assert rule in info.value.message
    assert "without --strict accept it" in info.value.message


def test_gallery_strict_still_explains_real_failures(gallery: Gallery) -> None:
    with pytest.raises(UnknownCA) as info:
        verify(gallery["missing intermediate"], strict=True)
    assert info.value.reason == "missing_intermediate"


@pytest.mark.parametrize("kind", ["version 3", "issuer name", "truncated"])
@pytest.mark.parametrize("position", [0, 1])
def test_gallery_malformed_asn1_is_bad_certificate(
    gallery: Gallery, kind: str, position: int
) -> None:
    good = gallery["valid"]
    chain = list(good.chain)
    chain[position] = gallery.malformed[kind]
    with pytest.raises(BadCertificate) as info:
        verify_server_chain(chain, trust=good.trust, server_name="a.example.com", now=NOW)
    exc = info.value
    assert exc.reason == "malformed"
    assert exc.alert is A.BAD_CERTIFICATE
    assert "not valid DER X.509" in exc.message
    assert ("the server's certificate" if position == 0 else "certificate #1") in exc.message
    assert exc.peer_chain[position]["subject"] == "(unreadable)"
    assert "error" in exc.peer_chain[position]


# --- describe_chain, explain ---------------------------------------------------------------


def test_describe_chain(gallery: Gallery) -> None:
    exhibit = gallery["valid"]
    described = describe_chain([*exhibit.chain, b"\x30\x00"])
    assert [d["subject"] for d in described[:2]] == [
        "CN=a.example.com",
        "O=tlsmith gallery,CN=Gallery Mid",
    ]
    assert described[0]["issuer"] == "O=tlsmith gallery,CN=Gallery Mid"
    assert described[0]["subject_alt_names"] == ["DNS:a.example.com", "DNS:b.example.com"]
    assert str(described[0]["not_after"]).endswith("Z")
    assert all(len(str(d["sha256_fingerprint"])) == 64 for d in described)
    assert described[2]["subject"] == "(unreadable)"
    assert "not valid DER" in str(described[2]["error"])


def test_explain_names_reason_alert_and_prints_the_chain(gallery: Gallery) -> None:
    with pytest.raises(CertificateError) as info:
        verify(gallery["missing intermediate"])
    text = explain(info.value, host="a.example.com", port=443)
    assert "We sent the alert 'unknown_ca' (reason: missing_intermediate)" in text
    assert AIA_URL in text
    assert "Certificate chain the server sent:" in text
    assert " 0 s:CN=a.example.com" in text
    assert "i:O=tlsmith gallery,CN=Gallery Mid" in text
    assert "SAN: DNS:a.example.com" in text
    assert "malformed" not in text


def test_format_chain_shows_unreadable_certificates(gallery: Gallery) -> None:
    text = format_chain(describe_chain([gallery.malformed["truncated"]]))
    assert " 0 s:(unreadable)" in text and "not valid DER" in text


# --- the error family ---------------------------------------------------------------------


def test_certificate_error_for_each_reason_sends_the_right_alert() -> None:
    alerts = {
        "expired": A.CERTIFICATE_EXPIRED,
        "not_yet_valid": A.CERTIFICATE_EXPIRED,
        "hostname_mismatch": A.CERTIFICATE_UNKNOWN,
        "policy": A.CERTIFICATE_UNKNOWN,
        "self_signed": A.UNKNOWN_CA,
        "unknown_issuer": A.UNKNOWN_CA,
        "missing_intermediate": A.UNKNOWN_CA,
        "revoked": A.CERTIFICATE_REVOKED,
        "bad_signature": A.BAD_CERTIFICATE,
        "malformed": A.BAD_CERTIFICATE,
        "wrong_usage": A.UNSUPPORTED_CERTIFICATE,
        "weak_key": A.UNSUPPORTED_CERTIFICATE,
        "weak_signature": A.BAD_CERTIFICATE,
    }
    assert set(alerts) == set(CERTIFICATE_REASONS) == set(CERTIFICATE_ERROR_FOR_REASON)
    for reason, alert in alerts.items():
        exc = certificate_error(reason, "words", subject="CN=x")  # type: ignore[arg-type]
        assert exc.reason == reason and exc.alert is alert and exc.subject == "CN=x"
        assert isinstance(exc, ProtocolError)
    assert isinstance(certificate_error("revoked", "x"), CertificateRevoked)


def test_existing_certificate_errors_are_certificate_errors() -> None:
    # Old call sites (BadCertificate("...")) keep working and get a default reason.
    assert BadCertificate("x").reason == "malformed"
    assert UnknownCA("x").reason == "unknown_issuer"
    assert CertificateExpired("x").reason == "expired"
    assert str(UnknownCA("x")) == "x (alert unknown_ca)"
    with pytest.raises(ValueError):
        CertificateUnknown("x", reason="nonsense")  # type: ignore[arg-type]
    # error_for_alert still maps each alert to the class named after it.
    assert ERROR_FOR_ALERT[A.UNKNOWN_CA] is UnknownCA
    assert ERROR_FOR_ALERT[A.CERTIFICATE_UNKNOWN] is CertificateUnknown
    assert type(error_for_alert(A.BAD_CERTIFICATE, "x")) is BadCertificate
    assert CertificateError not in ERROR_FOR_ALERT.values()


def test_malformed_leaf_key_is_bad_certificate() -> None:
    """The TLS 1.2 client reads the leaf's key before the chain check: a malformed leaf
    must still end in bad_certificate there, never in a foreign exception."""
    from datetime import UTC, datetime

    from gallery import build_gallery
    from tlsmith.errors import BadCertificate
    from tlsmith.x509.leaf import leaf_public_key

    for name, der in build_gallery(datetime.now(UTC)).malformed.items():
        with pytest.raises(BadCertificate):
            leaf_public_key(der)
        assert name

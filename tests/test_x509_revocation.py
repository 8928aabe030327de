"""Revocation checks: stapled OCSP (RFC 6960), CRLs (RFC 5280 §6.3), must-staple, policy.

Everything is built offline with cryptography (EC P-256 keys: fast): a CA, a leaf, a
delegated OCSP responder with and without id-kp-OCSPSigning, a second CA with the same
name (a forger), OCSP responses and CRLs. OpenSSL cross-checks two responses and a CRL.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tlsmith.codec.enums import AlertDescription
from tlsmith.errors import UsageError
from tlsmith.x509.revocation import (
    NOT_CHECKED_SENTENCE,
    RevocationStatus,
    check_crls,
    check_ocsp_response,
    decide,
    load_crl,
    must_staple,
)

NOW = datetime.now(UTC).replace(microsecond=0)
REVOKED_AT = NOW - timedelta(days=2, hours=3)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    *,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    ca: bool = False,
    eku: list[x509.ObjectIdentifier] | None = None,
    staple: bool = False,
    serial: int | None = None,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=10))
        .not_valid_after(NOW + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    if staple:
        builder = builder.add_extension(
            x509.TLSFeature([x509.TLSFeatureType.status_request]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass
class Pki:
    ca_key: ec.EllipticCurvePrivateKey
    ca: x509.Certificate
    leaf: x509.Certificate
    other_leaf: x509.Certificate
    responder_key: ec.EllipticCurvePrivateKey
    responder: x509.Certificate
    rogue_responder: x509.Certificate  # issued by the CA, but no OCSPSigning EKU
    forger_key: ec.EllipticCurvePrivateKey  # a different CA with the same name


@pytest.fixture(scope="module")
def pki() -> Pki:
    ca_key, responder_key, forger_key = _key(), _key(), _key()
    ca = _cert(
        "Test Revocation CA", ca_key, issuer="Test Revocation CA", issuer_key=ca_key, ca=True
    )
    leaf = _cert(
        "leaf.example", _key(), issuer="Test Revocation CA", issuer_key=ca_key, serial=0x1234
    )
    other = _cert(
        "other.example", _key(), issuer="Test Revocation CA", issuer_key=ca_key, serial=0x99
    )
    responder = _cert(
        "Test OCSP Responder",
        responder_key,
        issuer="Test Revocation CA",
        issuer_key=ca_key,
        eku=[ExtendedKeyUsageOID.OCSP_SIGNING],
    )
    rogue = _cert(
        "Rogue OCSP Responder",
        responder_key,
        issuer="Test Revocation CA",
        issuer_key=ca_key,
        eku=[ExtendedKeyUsageOID.SERVER_AUTH],
    )
    return Pki(ca_key, ca, leaf, other, responder_key, responder, rogue, forger_key)


def _response(
    pki: Pki,
    *,
    status: ocsp.OCSPCertStatus = ocsp.OCSPCertStatus.GOOD,
    cert: x509.Certificate | None = None,
    this_update: datetime | None = None,
    next_update: datetime | None = NOW + timedelta(days=3),
    signer: x509.Certificate | None = None,
    signer_key: ec.EllipticCurvePrivateKey | None = None,
) -> bytes:
    revoked = status == ocsp.OCSPCertStatus.REVOKED
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=cert or pki.leaf,
        issuer=pki.ca,
        algorithm=hashes.SHA1(),
        cert_status=status,
        this_update=this_update or NOW - timedelta(hours=1),
        next_update=next_update,
        revocation_time=REVOKED_AT if revoked else None,
        revocation_reason=x509.ReasonFlags.key_compromise if revoked else None,
    )
    if signer is None:
        builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, pki.ca)
    else:
        builder = builder.responder_id(ocsp.OCSPResponderEncoding.NAME, signer)
        builder = builder.certificates([signer])
    response = builder.sign(signer_key or pki.ca_key, hashes.SHA256())
    return response.public_bytes(serialization.Encoding.DER)


def _crl(
    pki: Pki,
    serials: list[int],
    *,
    key: ec.EllipticCurvePrivateKey | None = None,
    issuer: str = "Test Revocation CA",
    next_update: datetime = NOW + timedelta(days=7),
    idp: x509.IssuingDistributionPoint | None = None,
) -> x509.CertificateRevocationList:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(_name(issuer))
        .last_update(NOW - timedelta(days=1))
        .next_update(next_update)
    )
    for serial in serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(REVOKED_AT)
            .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False)
            .build()
        )
    if idp is not None:
        builder = builder.add_extension(idp, critical=True)
    return builder.sign(key or pki.ca_key, hashes.SHA256())


def _check(pki: Pki, der: bytes, max_age: timedelta | None = None) -> RevocationStatus:
    return check_ocsp_response(der, pki.leaf, pki.ca, now=NOW, max_age=max_age)


# --------------------------------------------------------------------------- OCSP


def test_good_response_signed_by_the_ca(pki: Pki) -> None:
    result = _check(pki, _response(pki))
    assert result.state == "good"
    assert result.source == "ocsp-staple"
    assert "CN=Test Revocation CA" in result.detail
    assert result.next_update == NOW + timedelta(days=3)


def test_good_response_signed_by_a_delegated_responder(pki: Pki) -> None:
    der = _response(pki, signer=pki.responder, signer_key=pki.responder_key)
    result = _check(pki, der)
    assert result.state == "good", result.detail
    assert "delegated responder CN=Test OCSP Responder" in result.detail


def test_delegated_responder_without_ocsp_signing_eku_is_invalid(pki: Pki) -> None:
    der = _response(pki, signer=pki.rogue_responder, signer_key=pki.responder_key)
    result = _check(pki, der)
    assert result.state == "invalid"
    assert "id-kp-OCSPSigning" in result.detail


def test_responder_not_certified_by_the_issuer_is_invalid(pki: Pki) -> None:
    self_made = _cert(
        "Self OCSP",
        pki.responder_key,
        issuer="Self OCSP",
        issuer_key=pki.responder_key,
        eku=[ExtendedKeyUsageOID.OCSP_SIGNING],
    )
    result = _check(pki, _response(pki, signer=self_made, signer_key=pki.responder_key))
    assert result.state == "invalid"
    assert "not certified by the issuer" in result.detail


def test_response_signed_by_an_impostor_ca_is_invalid(pki: Pki) -> None:
    # ResponderID byName = the CA's name, but signed by another key with that name.
    impostor = _cert(
        "Test Revocation CA", pki.forger_key, issuer="X", issuer_key=pki.forger_key, ca=True
    )
    der = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=pki.leaf,
            issuer=pki.ca,
            algorithm=hashes.SHA1(),
            cert_status=ocsp.OCSPCertStatus.GOOD,
            this_update=NOW - timedelta(hours=1),
            next_update=NOW + timedelta(days=1),
            revocation_time=None,
            revocation_reason=None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.NAME, impostor)
        .sign(pki.forger_key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )
    result = _check(pki, der)
    assert result.state == "invalid"
    assert "signature does not verify" in result.detail


def test_response_for_another_serial_is_invalid(pki: Pki) -> None:
    result = _check(pki, _response(pki, cert=pki.other_leaf))
    assert result.state == "invalid"
    assert "0x99" in result.detail and "0x1234" in result.detail


def test_response_for_the_right_serial_from_another_issuer_is_invalid(pki: Pki) -> None:
    # The CertID hashes name the issuer: a response about serial 0x1234 of a CA with a
    # different key must not be accepted for our leaf.
    impostor = _cert("Test Revocation CA", pki.forger_key, issuer="X", issuer_key=pki.forger_key)
    fake_leaf = _cert(
        "leaf.example",
        _key(),
        issuer="Test Revocation CA",
        issuer_key=pki.forger_key,
        serial=0x1234,
    )
    der = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=fake_leaf,
            issuer=impostor,
            algorithm=hashes.SHA256(),
            cert_status=ocsp.OCSPCertStatus.GOOD,
            this_update=NOW - timedelta(hours=1),
            next_update=NOW + timedelta(days=1),
            revocation_time=None,
            revocation_reason=None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, pki.ca)
        .sign(pki.ca_key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )
    result = _check(pki, der)
    assert result.state == "invalid"
    assert "not about" in result.detail


def test_revoked_response_names_time_and_reason(pki: Pki) -> None:
    result = _check(pki, _response(pki, status=ocsp.OCSPCertStatus.REVOKED))
    assert result.state == "revoked"
    assert result.revoked_at == REVOKED_AT
    assert result.reason == "keyCompromise"
    assert f"revoked on {REVOKED_AT:%Y-%m-%d %H:%M} UTC (keyCompromise)" in result.detail
    assert "stapled OCSP response" in result.detail


def test_unknown_status(pki: Pki) -> None:
    result = _check(pki, _response(pki, status=ocsp.OCSPCertStatus.UNKNOWN))
    assert result.state == "unknown"
    assert "does not know" in result.detail


def test_next_update_in_the_past_is_stale(pki: Pki) -> None:
    der = _response(pki, this_update=NOW - timedelta(days=10), next_update=NOW - timedelta(days=3))
    result = _check(pki, der)
    assert result.state == "stale"
    assert "nextUpdate" in result.detail


def test_no_next_update_uses_max_age(pki: Pki) -> None:
    der = _response(pki, this_update=NOW - timedelta(days=8), next_update=None)
    assert _check(pki, der).state == "stale"  # default max_age: 7 days
    assert _check(pki, der, max_age=timedelta(days=30)).state == "good"
    fresh = _response(pki, this_update=NOW - timedelta(days=1), next_update=None)
    assert _check(pki, fresh).state == "good"


def test_this_update_in_the_future_is_invalid(pki: Pki) -> None:
    # RFC 6960 §4.2.2.1: such a response is unreliable; we call it invalid (a stapled
    # response that cannot be valid now), not stale (which means "too old").
    der = _response(pki, this_update=NOW + timedelta(days=1), next_update=NOW + timedelta(days=4))
    result = _check(pki, der)
    assert result.state == "invalid"
    assert "in the future" in result.detail


def test_small_clock_skew_is_tolerated(pki: Pki) -> None:
    der = _response(pki, this_update=NOW + timedelta(minutes=2))
    assert _check(pki, der).state == "good"


@pytest.mark.parametrize(
    "status",
    [ocsp.OCSPResponseStatus.TRY_LATER, ocsp.OCSPResponseStatus.INTERNAL_ERROR],
)
def test_unsuccessful_response_status_counts_as_not_checked(
    pki: Pki, status: ocsp.OCSPResponseStatus
) -> None:
    # RFC 6960 §2.3: error responses are unsigned and carry no certificate status, so they
    # are no information at all -- not_checked (must-staple/require then fail in decide).
    der = ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(
        serialization.Encoding.DER
    )
    result = _check(pki, der)
    assert result.state == "not_checked"
    assert result.source == "ocsp-staple"
    assert status.name.lower() in result.detail


def test_flipped_signature_byte_is_invalid(pki: Pki) -> None:
    der = bytearray(_response(pki))
    der[-1] ^= 0x01  # the last byte belongs to the signature (no certificates included)
    result = _check(pki, bytes(der))
    assert result.state == "invalid"
    assert "signature does not verify" in result.detail


def test_garbage_is_invalid(pki: Pki) -> None:
    result = _check(pki, b"\x30\x03\x0a\x01")
    assert result.state == "invalid"
    assert "not a DER OCSPResponse" in result.detail


def test_wrong_issuer_argument_is_invalid(pki: Pki) -> None:
    result = check_ocsp_response(_response(pki), pki.leaf, pki.responder, now=NOW)
    assert result.state == "invalid"


# --------------------------------------------------------------------------- CRLs


def test_crl_lists_the_certificate(pki: Pki) -> None:
    result = check_crls([_crl(pki, [0x5, 0x1234])], pki.leaf, pki.ca, now=NOW)
    assert result.state == "revoked"
    assert result.source == "crl"
    assert result.reason == "keyCompromise"
    assert result.revoked_at == REVOKED_AT
    assert (
        f"revoked on {REVOKED_AT:%Y-%m-%d %H:%M} UTC (keyCompromise) according to the CRL "
        "of CN=Test Revocation CA"
    ) in result.detail


def test_certificate_not_in_crl_is_good(pki: Pki) -> None:
    result = check_crls([_crl(pki, [0x5])], pki.leaf, pki.ca, now=NOW)
    assert result.state == "good"
    assert "not listed in the CRL of CN=Test Revocation CA" in result.detail


def test_crl_signed_by_another_ca_is_ignored(pki: Pki) -> None:
    forged = _crl(pki, [0x1234], key=pki.forger_key)  # same issuer name, other key
    foreign = _crl(pki, [0x1234], key=pki.forger_key, issuer="Another CA")
    result = check_crls([forged, foreign], pki.leaf, pki.ca, now=NOW)
    assert result.state == "not_checked"
    assert "signature does not verify" in result.detail
    assert "another issuer" in result.detail
    # An applicable CRL next to the forged one decides.
    result = check_crls([forged, _crl(pki, [])], pki.leaf, pki.ca, now=NOW)
    assert result.state == "good"


def test_stale_crl(pki: Pki) -> None:
    stale = _crl(pki, [0x5], next_update=NOW - timedelta(hours=1))
    result = check_crls([stale], pki.leaf, pki.ca, now=NOW)
    assert result.state == "stale"
    assert "nextUpdate" in result.detail
    # Revocation listed in a stale CRL still counts.
    listed = _crl(pki, [0x1234], next_update=NOW - timedelta(hours=1))
    assert check_crls([listed], pki.leaf, pki.ca, now=NOW).state == "revoked"


def test_crl_scope_only_ca_certs_is_ignored_for_a_leaf(pki: Pki) -> None:
    idp = x509.IssuingDistributionPoint(
        full_name=None,
        relative_name=None,
        only_contains_user_certs=False,
        only_contains_ca_certs=True,
        only_some_reasons=None,
        indirect_crl=False,
        only_contains_attribute_certs=False,
    )
    result = check_crls([_crl(pki, [0x1234], idp=idp)], pki.leaf, pki.ca, now=NOW)
    assert result.state == "not_checked"
    assert "only CA certificates" in result.detail


def test_no_crls(pki: Pki) -> None:
    result = check_crls([], pki.leaf, pki.ca, now=NOW)
    assert result.state == "not_checked" and result.source is None


def test_load_crl_pem_and_der(pki: Pki, tmp_path: Path) -> None:
    crl = _crl(pki, [0x1234])
    pem = tmp_path / "crl.pem"
    der = tmp_path / "crl.der"
    pem.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    der.write_bytes(crl.public_bytes(serialization.Encoding.DER))
    assert load_crl(pem) == crl
    assert load_crl(str(der)) == crl


def test_load_crl_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.crl"
    bad.write_bytes(b"-----BEGIN X509 CRL-----\nnope\n-----END X509 CRL-----\n")
    with pytest.raises(UsageError, match="not a certificate revocation list"):
        load_crl(bad)
    junk = tmp_path / "junk.der"
    junk.write_bytes(b"\x00\x01\x02")
    with pytest.raises(UsageError, match="DER"):
        load_crl(junk)
    with pytest.raises(UsageError, match="cannot read the CRL file"):
        load_crl(tmp_path / "missing.crl")


# --------------------------------------------------------------------------- must-staple


def test_must_staple_detection(pki: Pki) -> None:
    stapled = _cert(
        "ms.example", _key(), issuer="Test Revocation CA", issuer_key=pki.ca_key, staple=True
    )
    assert must_staple(stapled)
    assert not must_staple(pki.leaf)


# --------------------------------------------------------------------------- policy

GOOD_OCSP = RevocationStatus("good", "ocsp-staple", "ocsp good")
GOOD_CRL = RevocationStatus("good", "crl", "crl good")
REVOKED_CRL = RevocationStatus(
    "revoked", "crl", "revoked (crl)", revoked_at=REVOKED_AT, reason="keyCompromise"
)
REVOKED_OCSP = RevocationStatus("revoked", "ocsp-staple", "revoked (ocsp)")
INVALID_OCSP = RevocationStatus("invalid", "ocsp-staple", "bad signature")
STALE_OCSP = RevocationStatus("stale", "ocsp-staple", "stale staple")
STALE_CRL = RevocationStatus("stale", "crl", "stale crl")
UNKNOWN_OCSP = RevocationStatus("unknown", "ocsp-staple", "unknown")
ERROR_OCSP = RevocationStatus("not_checked", "ocsp-staple", "tryLater")
NO_CRL = RevocationStatus("not_checked", None, NOT_CHECKED_SENTENCE)

BCSR = AlertDescription.BAD_CERTIFICATE_STATUS_RESPONSE
REVOKED = AlertDescription.CERTIFICATE_REVOKED
UNKNOWN = AlertDescription.CERTIFICATE_UNKNOWN

# statuses, require, must_staple, stapled -> state, fatal alert (None: passes)
POLICY = [
    ([GOOD_OCSP, REVOKED_CRL], False, False, True, "revoked", REVOKED),
    ([REVOKED_OCSP], False, False, True, "revoked", REVOKED),
    ([INVALID_OCSP, GOOD_CRL], False, False, True, "invalid", BCSR),
    ([STALE_OCSP, GOOD_CRL], False, False, True, "stale", BCSR),
    ([GOOD_OCSP], False, False, True, "good", None),
    ([GOOD_OCSP], True, True, True, "good", None),
    ([GOOD_CRL], True, False, False, "good", None),
    ([GOOD_CRL], False, True, False, "not_checked", BCSR),  # must-staple, no staple
    ([ERROR_OCSP, GOOD_CRL], False, True, True, "not_checked", BCSR),  # unusable staple
    ([ERROR_OCSP, GOOD_CRL], False, False, True, "good", None),
    ([ERROR_OCSP], False, False, True, "not_checked", None),
    ([UNKNOWN_OCSP], False, False, True, "unknown", None),
    ([UNKNOWN_OCSP, GOOD_CRL], True, False, True, "good", None),
    ([UNKNOWN_OCSP], True, False, True, "unknown", UNKNOWN),
    ([STALE_CRL], False, False, False, "stale", None),
    ([STALE_CRL], True, False, False, "stale", UNKNOWN),
    ([], False, False, False, "not_checked", None),
    ([NO_CRL], True, False, False, "not_checked", UNKNOWN),
    ([], True, False, False, "not_checked", UNKNOWN),
]


@pytest.mark.parametrize(("statuses", "require", "staple", "stapled", "state", "alert"), POLICY)
def test_decide_policy(
    statuses: list[RevocationStatus],
    require: bool,
    staple: bool,
    stapled: bool,
    state: str,
    alert: AlertDescription | None,
) -> None:
    verdict = decide(statuses, require=require, must_staple=staple, stapled=stapled)
    assert verdict.state == state
    assert verdict.alert == alert
    assert verdict.fatal == (alert is not None)


def test_decide_sentences() -> None:
    nothing = decide([], require=False, must_staple=False, stapled=False)
    assert nothing.detail == "revocation: not checked — no stapled OCSP response and no CRL"
    revoked = decide([REVOKED_CRL], require=False, must_staple=False, stapled=False)
    assert revoked.revoked_at == REVOKED_AT and revoked.reason == "keyCompromise"
    missing = decide([], require=False, must_staple=True, stapled=False)
    assert "must-staple" in missing.detail and "RFC 7633" in missing.detail
    stale = decide([STALE_CRL], require=False, must_staple=False, stapled=False)
    assert stale.detail.startswith("revocation: not checked — ")


def test_end_to_end_revoked_staple_fails(pki: Pki) -> None:
    staple = _check(pki, _response(pki, status=ocsp.OCSPCertStatus.REVOKED))
    crl = check_crls([_crl(pki, [])], pki.leaf, pki.ca, now=NOW)
    verdict = decide([staple, crl], require=False, must_staple=False, stapled=True)
    assert verdict.state == "revoked" and verdict.alert == REVOKED
    assert "keyCompromise" in verdict.detail


# --------------------------------------------------------------------------- OpenSSL


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize(
    ("status", "word"),
    [(ocsp.OCSPCertStatus.GOOD, "good"), (ocsp.OCSPCertStatus.REVOKED, "revoked")],
)
def test_openssl_agrees_on_ocsp(
    pki: Pki,
    tmp_path: Path,
    require_peer: Callable[[str], str],
    status: ocsp.OCSPCertStatus,
    word: str,
) -> None:
    openssl = require_peer("openssl")
    der = _response(pki, status=status)
    assert _check(pki, der).state == word
    (tmp_path / "resp.der").write_bytes(der)
    (tmp_path / "ca.pem").write_bytes(_pem(pki.ca))
    (tmp_path / "leaf.pem").write_bytes(_pem(pki.leaf))
    done = subprocess.run(
        [openssl, "ocsp", "-respin", "resp.der", "-CAfile", "ca.pem", "-issuer", "ca.pem",
         "-cert", "leaf.pem", "-resp_text"],
        cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert "Response verify OK" in output, output
    assert f"leaf.pem: {word}" in output, output
    if word == "revoked":
        assert "Reason: keyCompromise" in output, output


def test_openssl_parses_our_crl(
    pki: Pki, tmp_path: Path, require_peer: Callable[[str], str]
) -> None:
    openssl = require_peer("openssl")
    path = tmp_path / "crl.pem"
    path.write_bytes(_crl(pki, [0x1234]).public_bytes(serialization.Encoding.PEM))
    (tmp_path / "ca.pem").write_bytes(_pem(pki.ca))
    done = subprocess.run(
        [openssl, "crl", "-in", str(path), "-noout", "-text", "-CAfile", str(tmp_path / "ca.pem")],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "verify OK" in output, output
    assert "Serial Number: 1234" in output, output
    assert "Key Compromise" in output, output

"""Revocation in the handshake, in memory, both versions: the client asks for a stapled
OCSP response (status_request, RFC 6066 §8), the server staples one (TLS 1.3: in the
leaf's CertificateEntry, RFC 8446 §4.4.2.1; TLS 1.2: a CertificateStatus message), and
the client decides with the stapled response, its CRLs (RFC 5280 §6.3) and must-staple
(RFC 7633): good / revoked / stale / not checked / required / must-staple.

The PKI (a dev CA, localhost leaves, OCSP responses, CRLs) is built offline with
``cryptography``; the helpers are module-level so the OpenSSL interop tests reuse them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tlsmith.codec.enums import AlertDescription, ExtensionType, ProtocolVersion
from tlsmith.config import CertifiedKey, ClientConfig, ServerConfig
from tlsmith.connection import TLSConnection
from tlsmith.errors import (
    AlertReceived,
    BadCertificateStatusResponse,
    CertificateRevoked,
    CertificateUnknown,
    TLSError,
    UsageError,
)
from tlsmith.events import Event, HandshakeComplete, HandshakeInfo
from tlsmith.observe import CheckTrace, MessageTrace, NoteTrace, TraceRecord
from tlsmith.x509.devca import DevCA
from tlsmith.x509.verify import TrustStore

VERSIONS = (ProtocolVersion.TLS13, ProtocolVersion.TLS12)
V_IDS = ("tls13", "tls12")
NOW = datetime.now(UTC).replace(microsecond=0)
REVOKED_AT = NOW - timedelta(days=2, hours=3)


# --------------------------------------------------------------------------- the PKI


@dataclass
class OcspPki:
    ca: DevCA
    leaf: x509.Certificate
    leaf_key: ec.EllipticCurvePrivateKey
    staple_leaf: x509.Certificate  # carries the RFC 7633 TLS Feature (must-staple)
    staple_key: ec.EllipticCurvePrivateKey

    @property
    def ca_pem(self) -> bytes:
        return self.ca.ca_pem

    def trust(self) -> TrustStore:
        return TrustStore.from_certificates([self.ca.certificate])


def make_leaf(ca: DevCA, *, must_staple: bool = False, name: str = "localhost"
              ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A serverAuth leaf for ``name`` and 127.0.0.1 issued by the dev CA."""
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False,
                                     decipher_only=False), critical=True)
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
            ca.subject_key_identifier), critical=False)
    )
    if must_staple:
        builder = builder.add_extension(
            x509.TLSFeature([x509.TLSFeatureType.status_request]), critical=False)
    ca_key = ca.private_key
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    return builder.sign(ca_key, hashes.SHA256()), key


def make_pki() -> OcspPki:
    ca = DevCA.create("tlsmith OCSP Test CA", "ecdsa-p256", NOW - timedelta(days=2))
    leaf, key = make_leaf(ca)
    staple_leaf, staple_key = make_leaf(ca, must_staple=True)
    return OcspPki(ca, leaf, key, staple_leaf, staple_key)


def ocsp_response(pki: OcspPki, cert: x509.Certificate, *,
                  status: ocsp.OCSPCertStatus = ocsp.OCSPCertStatus.GOOD,
                  this_update: datetime | None = None,
                  next_update: datetime | None = None) -> bytes:
    """A DER OCSPResponse about ``cert``, signed by the CA itself (RFC 6960 §4.2.2.2)."""
    revoked = status == ocsp.OCSPCertStatus.REVOKED
    ca_key = pki.ca.private_key
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    response = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=cert, issuer=pki.ca.certificate, algorithm=hashes.SHA1(),
            cert_status=status,
            this_update=this_update or NOW - timedelta(hours=1),
            next_update=next_update or NOW + timedelta(days=3),
            revocation_time=REVOKED_AT if revoked else None,
            revocation_reason=x509.ReasonFlags.key_compromise if revoked else None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, pki.ca.certificate)
        .sign(ca_key, hashes.SHA256())
    )
    return response.public_bytes(serialization.Encoding.DER)


def good_response(pki: OcspPki) -> bytes:
    return ocsp_response(pki, pki.leaf)


def revoked_response(pki: OcspPki) -> bytes:
    return ocsp_response(pki, pki.leaf, status=ocsp.OCSPCertStatus.REVOKED)


def stale_response(pki: OcspPki) -> bytes:
    return ocsp_response(pki, pki.leaf, this_update=NOW - timedelta(days=9),
                         next_update=NOW - timedelta(days=2))


def crl(pki: OcspPki, serials: list[int]) -> x509.CertificateRevocationList:
    ca_key = pki.ca.private_key
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(pki.ca.certificate.subject)
        .last_update(NOW - timedelta(days=1))
        .next_update(NOW + timedelta(days=7))
    )
    for serial in serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(REVOKED_AT)
            .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False)
            .build())
    return builder.sign(ca_key, hashes.SHA256())


def write_files(pki: OcspPki, directory: Path, *, must_staple: bool = False
                ) -> tuple[Path, Path, Path]:
    """(ca.pem, chain.pem (leaf + CA), key.pem) for a server on disk."""
    leaf, key = (pki.staple_leaf, pki.staple_key) if must_staple else (pki.leaf, pki.leaf_key)
    ca_path, chain_path, key_path = (directory / "ca.pem", directory / "chain.pem",
                                     directory / "key.pem")
    ca_path.write_bytes(pki.ca_pem)
    chain_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM) + pki.ca_pem)
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ca_path, chain_path, key_path


@pytest.fixture(scope="module")
def pki() -> OcspPki:
    return make_pki()


# --------------------------------------------------------------------------- driving


@dataclass
class Outcome:
    client_events: list[Event] = field(default_factory=list)
    client_error: TLSError | None = None
    server_error: TLSError | None = None
    client_trace: list[TraceRecord] = field(default_factory=list)

    @property
    def info(self) -> HandshakeInfo:
        done = [e for e in self.client_events if isinstance(e, HandshakeComplete)]
        assert done, f"the client did not complete the handshake: {self.client_error!r}"
        return done[0].info

    def check(self, name: str) -> CheckTrace:
        found = [r for r in self.client_trace if isinstance(r, CheckTrace) and r.name == name]
        assert len(found) == 1, found
        return found[0]

    def noted(self, text: str) -> bool:
        return any(isinstance(r, NoteTrace) and r.text == text for r in self.client_trace)

    def received(self, name: str) -> bool:
        return any(isinstance(r, MessageTrace) and r.name == name
                   and r.direction == "received" for r in self.client_trace)


def configs(pki: OcspPki, version: ProtocolVersion, *, staple: bytes | None,
            must_staple: bool = False, **client_kw: object
            ) -> tuple[ClientConfig, ServerConfig]:
    leaf, key = (pki.staple_leaf, pki.staple_key) if must_staple else (pki.leaf, pki.leaf_key)
    certified = CertifiedKey((leaf.public_bytes(serialization.Encoding.DER),
                              pki.ca.certificate.public_bytes(serialization.Encoding.DER)),
                             key, ("localhost",), ocsp_response=staple)
    client = ClientConfig(server_name="localhost", trust=pki.trust(), min_version=version,
                          max_version=version, **client_kw)  # type: ignore[arg-type]
    server = ServerConfig(certificates=(certified,), min_version=version,
                          max_version=version)
    return client, server


def run(client_cfg: ClientConfig, server_cfg: ServerConfig) -> Outcome:
    out = Outcome()
    client = TLSConnection(replace(client_cfg, observer=out.client_trace.append))
    server = TLSConnection(server_cfg)
    while True:
        moved = False
        data = client.data_to_send()
        if data:
            server.receive_data(data)
            moved = True
        if out.server_error is None:
            try:
                server.events()
            except TLSError as exc:
                out.server_error = exc
        data = server.data_to_send()
        if data:
            client.receive_data(data)
            moved = True
        if out.client_error is None:
            try:
                out.client_events += client.events()
            except TLSError as exc:
                out.client_error = exc
        if not moved:
            return out


def assert_alert(out: Outcome, error: type[TLSError], alert: AlertDescription) -> TLSError:
    assert isinstance(out.client_error, error), out.client_error
    assert isinstance(out.server_error, AlertReceived), out.server_error
    assert out.server_error.description == alert
    assert not any(isinstance(e, HandshakeComplete) for e in out.client_events)
    return out.client_error


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_good_staple(pki: OcspPki, version: ProtocolVersion) -> None:
    out = run(*configs(pki, version, staple=good_response(pki)))
    assert out.client_error is None and out.server_error is None
    assert out.info.revocation_state == "good"
    assert out.info.revocation is not None
    assert out.info.revocation.startswith("not revoked: the stapled OCSP response")
    assert out.check("revocation").ok
    if version == ProtocolVersion.TLS12:
        assert out.received("CertificateStatus")  # RFC 6066 §8


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_revoked_staple(pki: OcspPki, version: ProtocolVersion) -> None:
    out = run(*configs(pki, version, staple=revoked_response(pki)))
    exc = assert_alert(out, CertificateRevoked, AlertDescription.CERTIFICATE_REVOKED)
    assert isinstance(exc, CertificateRevoked) and exc.reason == "revoked"
    message = str(exc)
    assert REVOKED_AT.strftime("%Y-%m-%d %H:%M UTC") in message
    assert "keyCompromise" in message
    assert not out.check("revocation").ok


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_stale_staple(pki: OcspPki, version: ProtocolVersion) -> None:
    out = run(*configs(pki, version, staple=stale_response(pki)))
    exc = assert_alert(out, BadCertificateStatusResponse,
                       AlertDescription.BAD_CERTIFICATE_STATUS_RESPONSE)
    assert "stale" in str(exc)


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_staple_about_another_certificate(pki: OcspPki, version: ProtocolVersion) -> None:
    other = ocsp_response(pki, pki.staple_leaf)
    out = run(*configs(pki, version, staple=other))
    exc = assert_alert(out, BadCertificateStatusResponse,
                       AlertDescription.BAD_CERTIFICATE_STATUS_RESPONSE)
    assert "invalid stapled OCSP response" in str(exc)


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_crl_revokes_the_leaf(pki: OcspPki, version: ProtocolVersion) -> None:
    crls = (crl(pki, [pki.leaf.serial_number]),)
    out = run(*configs(pki, version, staple=None, crls=crls))
    exc = assert_alert(out, CertificateRevoked, AlertDescription.CERTIFICATE_REVOKED)
    assert "according to the CRL of" in str(exc)
    assert "keyCompromise" in str(exc)


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_crl_revocation_wins_over_a_good_staple(pki: OcspPki, version: ProtocolVersion
                                                ) -> None:
    crls = (crl(pki, [pki.leaf.serial_number]),)
    out = run(*configs(pki, version, staple=good_response(pki), crls=crls))
    assert_alert(out, CertificateRevoked, AlertDescription.CERTIFICATE_REVOKED)


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_crl_not_listing_the_leaf_is_good(pki: OcspPki, version: ProtocolVersion) -> None:
    crls = (crl(pki, [0x4242]),)
    out = run(*configs(pki, version, staple=None, crls=crls))
    assert out.client_error is None
    assert out.info.revocation_state == "good"
    assert out.info.revocation is not None and "not listed in the CRL" in out.info.revocation


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_no_information_soft_fails_and_says_so(pki: OcspPki, version: ProtocolVersion
                                               ) -> None:
    out = run(*configs(pki, version, staple=None))
    assert out.client_error is None and out.server_error is None
    assert out.info.certificate_verified
    assert out.info.revocation_state == "not_checked"
    assert out.info.revocation == ("revocation: not checked — no stapled OCSP response "
                                   "and no CRL")
    # Soft-fail: a note saying so, neither a passed nor a failed check.
    assert not [r for r in out.client_trace
                if isinstance(r, CheckTrace) and r.name == "revocation"]
    assert out.noted("revocation: not checked — no stapled OCSP response and no CRL")
    # The server had nothing to staple: no CertificateStatus, no echoed status_request.
    assert not out.received("CertificateStatus")


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_require_revocation_without_information_fails(pki: OcspPki, version: ProtocolVersion
                                                      ) -> None:
    out = run(*configs(pki, version, staple=None, require_revocation=True))
    exc = assert_alert(out, CertificateUnknown, AlertDescription.CERTIFICATE_UNKNOWN)
    assert "not checked" in str(exc)


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_require_revocation_with_a_good_staple(pki: OcspPki, version: ProtocolVersion
                                               ) -> None:
    out = run(*configs(pki, version, staple=good_response(pki), require_revocation=True))
    assert out.client_error is None
    assert out.info.revocation_state == "good"


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_must_staple_without_a_staple_fails(pki: OcspPki, version: ProtocolVersion) -> None:
    out = run(*configs(pki, version, staple=None, must_staple=True))
    exc = assert_alert(out, BadCertificateStatusResponse,
                       AlertDescription.BAD_CERTIFICATE_STATUS_RESPONSE)
    assert "must-staple" in str(exc)


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_must_staple_with_a_good_staple(pki: OcspPki, version: ProtocolVersion) -> None:
    staple = ocsp_response(pki, pki.staple_leaf)
    out = run(*configs(pki, version, staple=staple, must_staple=True))
    assert out.client_error is None
    assert out.info.revocation_state == "good"


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_client_that_does_not_ask_gets_no_staple(pki: OcspPki, version: ProtocolVersion
                                                 ) -> None:
    """RFC 6066 §8: the server staples only in answer to status_request."""
    out = run(*configs(pki, version, staple=revoked_response(pki), request_ocsp=False))
    assert out.client_error is None
    assert out.info.revocation_state == "not_checked"
    assert not out.received("CertificateStatus")


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_verification_disabled_skips_revocation(pki: OcspPki, version: ProtocolVersion
                                                ) -> None:
    out = run(*configs(pki, version, staple=revoked_response(pki),
                       verify_certificates=False))
    assert out.client_error is None
    assert out.info.revocation_state == "not_checked"
    assert out.info.revocation is not None
    assert "certificate verification is disabled" in out.info.revocation


def test_client_hello_carries_status_request(pki: OcspPki) -> None:
    client_cfg, _ = configs(pki, ProtocolVersion.TLS13, staple=None)
    trace: list[TraceRecord] = []
    client = TLSConnection(replace(client_cfg, observer=trace.append))
    client.data_to_send()
    hello = next(r for r in trace if isinstance(r, MessageTrace) and r.name == "ClientHello")
    types = {e.extension_type for e in hello.message.extensions}
    assert ExtensionType.STATUS_REQUEST in types


def test_require_revocation_needs_verification(pki: OcspPki) -> None:
    with pytest.raises(UsageError, match="require_revocation"):
        ClientConfig(require_revocation=True, verify_certificates=False)


def test_strict_is_passed_to_the_verifier(pki: OcspPki) -> None:
    """strict=True applies the CA/B Forum profile; the dev-CA leaf passes both ways."""
    for strict in (False, True):
        out = run(*configs(pki, ProtocolVersion.TLS13, staple=good_response(pki),
                           strict=strict))
        assert out.client_error is None, (strict, out.client_error)


def test_verdict_on_the_accepted_chain_keeps_every_field() -> None:
    """check_revocation builds the ChainAccepted it returns field by field (not with
    dataclasses.replace): these must be all its fields, and the result the same."""
    import dataclasses

    from tlsmith.handshake import proofs
    from tlsmith.x509 import revocation

    assert [f.name for f in dataclasses.fields(proofs.ChainAccepted)] == [
        "verified", "chain", "_mint", "revocation", "raw_public_key", "key_trusted",
        "ocsp_response", "by_callback"]
    before = proofs.ChainAccepted(None, (b"leaf",), proofs._MINT, None, True, True, None,
                                  True)
    status = revocation.decide([], require=False, must_staple=False, stapled=False)
    after = proofs._with_revocation(before, b"staple", status)
    assert after == replace(before, ocsp_response=b"staple", revocation=status)
    assert (after.raw_public_key, after.key_trusted, after.by_callback) == (True, True, True)


@pytest.mark.parametrize("require", [False, True])
def test_decide_on_nothing(require: bool) -> None:
    """No status at all (no staple, no CRL): the soft-fail verdict (fatal if required);
    must-staple still fails."""
    from tlsmith.x509 import revocation

    got = revocation.decide([], require=require, must_staple=False, stapled=False)
    assert got == revocation.RevocationStatus("not_checked", None,
                                              revocation.NOT_CHECKED_SENTENCE, fatal=require)
    stapled = revocation.decide([], require=require, must_staple=True, stapled=False)
    assert stapled.fatal and stapled.source == "ocsp-staple"


def test_proof_tokens_are_made_by_their_checks_only() -> None:
    from tlsmith.handshake import proofs

    with pytest.raises(TypeError, match="can only be made by the check"):
        proofs.ChainAccepted(None, ())
    with pytest.raises(TypeError, match="can only be made by the check"):
        proofs.FinishedVerified("server", object())

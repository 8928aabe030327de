"""Choosing credentials: a client with several (ClientConfig.certificates, certificate_callback,
CertifiedKey.must_match_issuer), the server's certificate_authorities, and the OCSP hooks
(ClientConfig.ocsp_unchecked / ocsp_callback, ServerConfig.ocsp_callback), and the
server's certificate_callback: selection units, in-memory handshakes in both versions,
malformed CA lists."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from helpers import CertFiles
from pair import configs
from tlsmith.codec import extensions as ext
from tlsmith.codec.enums import (
    AlertDescription,
    ClientCertificateType,
    ProtocolVersion,
    SignatureScheme,
)
from tlsmith.codec.extensions_base import ExtensionContext
from tlsmith.codec.messages12 import CertificateRequest12
from tlsmith.config import CertifiedKey, ClientConfig, ServerConfig
from tlsmith.connection import TLSConnection
from tlsmith.errors import (
    AlertReceived,
    BadCertificateStatusResponse,
    DecodeError,
    HandshakeFailure,
    InternalError,
    TLSError,
)
from tlsmith.events import Event, HandshakeComplete, HandshakeInfo
from tlsmith.handshake.client_auth import (
    CertificateRequestInfo,
    ClientCredential,
    NoClientCredential,
    choose_client_credential,
)
from tlsmith.handshake.negotiate import ClientHelloInfo
from tlsmith.x509.devca import DevCA
from tlsmith.x509.verify import TrustStore

VERSIONS = (ProtocolVersion.TLS13, ProtocolVersion.TLS12)
V_IDS = ("tls13", "tls12")
_SS = SignatureScheme


def _key(ca: DevCA, key_type: str, *, must_match: bool = False) -> CertifiedKey:
    issued = ca.issue(("alice.example",), key_type=key_type, client=True)
    chain = tuple(c.public_bytes(serialization.Encoding.DER)
                  for c in x509.load_pem_x509_certificates(issued.chain_pem))
    return CertifiedKey(chain, issued.private_key, must_match_issuer=must_match)


@pytest.fixture(scope="module")
def other_ca() -> DevCA:
    return DevCA.create("tlsmith test: another CA")


@pytest.fixture(scope="module")
def keys(devca: DevCA, other_ca: DevCA) -> dict[str, CertifiedKey]:
    return {
        "ecdsa": _key(devca, "ecdsa-p256"),
        "rsa": _key(devca, "rsa-2048"),
        "ecdsa-pinned": _key(devca, "ecdsa-p256", must_match=True),
        "other-pinned": _key(other_ca, "ecdsa-p256", must_match=True),
        "other": _key(other_ca, "ecdsa-p256"),
    }


def _name(ca: DevCA) -> bytes:
    return ca.certificate.subject.public_bytes()


# -- choose_client_credential -------------------------------------------------------------


def test_the_first_credential_that_fits_wins(keys: dict[str, CertifiedKey]) -> None:
    both = (_SS.ECDSA_SECP256R1_SHA256, _SS.RSA_PSS_RSAE_SHA256)
    chosen = choose_client_credential((keys["rsa"], keys["ecdsa"]), tls13=True, schemes=both)
    assert isinstance(chosen, ClientCredential) and chosen.credential is keys["rsa"]
    assert chosen.scheme == _SS.RSA_PSS_RSAE_SHA256


def test_signature_algorithms_rule_out_a_credential(keys: dict[str, CertifiedKey]) -> None:
    chosen = choose_client_credential((keys["rsa"], keys["ecdsa"]), tls13=True,
                                      schemes=(_SS.ECDSA_SECP256R1_SHA256,))
    assert isinstance(chosen, ClientCredential) and chosen.credential is keys["ecdsa"]
    none = choose_client_credential((keys["rsa"],), tls13=True,
                                    schemes=(_SS.ECDSA_SECP256R1_SHA256,))
    assert none == NoClientCredential("client_cert_sigalg", none.reason)  # type: ignore[union-attr]


def test_tls12_certificate_types_rule_out_a_key_type(keys: dict[str, CertifiedKey]) -> None:
    schemes = (_SS.ECDSA_SECP256R1_SHA256, _SS.RSA_PKCS1_SHA256)
    chosen = choose_client_credential((keys["ecdsa"], keys["rsa"]), tls13=False,
                                      schemes=schemes,
                                      certificate_types=(ClientCertificateType.RSA_SIGN,))
    assert isinstance(chosen, ClientCredential) and chosen.credential is keys["rsa"]
    none = choose_client_credential((keys["ecdsa"],), tls13=False, schemes=schemes,
                                    certificate_types=(ClientCertificateType.RSA_SIGN,))
    assert isinstance(none, NoClientCredential) and none.check == "client_cert_type"


def test_must_match_issuer_needs_the_issuer_among_the_ca_names(
        keys: dict[str, CertifiedKey], devca: DevCA, other_ca: DevCA) -> None:
    creds = (keys["other-pinned"], keys["ecdsa-pinned"])
    schemes = (_SS.ECDSA_SECP256R1_SHA256,)
    chosen = choose_client_credential(creds, tls13=True, schemes=schemes,
                                      ca_names=(_name(devca),))
    assert isinstance(chosen, ClientCredential) and chosen.credential is keys["ecdsa-pinned"]
    chosen = choose_client_credential(creds, tls13=True, schemes=schemes,
                                      ca_names=(_name(other_ca),))
    assert isinstance(chosen, ClientCredential) and chosen.credential is keys["other-pinned"]
    for names in (None, (b"\x30\x00",)):  # no list, or no name in common
        none = choose_client_credential(creds, tls13=True, schemes=schemes, ca_names=names)
        assert isinstance(none, NoClientCredential) and none.check == "client_cert_issuer"
    # A credential without the flag does not look at the names: the fallback.
    chosen = choose_client_credential((*creds, keys["other"]), tls13=True, schemes=schemes,
                                      ca_names=None)
    assert isinstance(chosen, ClientCredential) and chosen.credential is keys["other"]


def test_no_credentials_at_all() -> None:
    none = choose_client_credential((), tls13=True, schemes=(_SS.ED25519,))
    assert isinstance(none, NoClientCredential)


# -- in memory ----------------------------------------------------------------------------


@dataclass
class Outcome:
    client_events: list[Event] = field(default_factory=list)
    server_events: list[Event] = field(default_factory=list)
    client_error: TLSError | None = None
    server_error: TLSError | None = None

    def info(self, side: str) -> HandshakeInfo:
        events = self.client_events if side == "client" else self.server_events
        done = [e for e in events if isinstance(e, HandshakeComplete)]
        assert done, f"the {side} did not complete: {self.client_error!r} {self.server_error!r}"
        return done[0].info


def run(ccfg: ClientConfig, scfg: ServerConfig) -> Outcome:
    """Drive both until quiet (a TLS 1.3 server answers the client's certificate after
    the client's Finished, so one round of data makes the verdict visible)."""
    client, server = TLSConnection(ccfg), TLSConnection(scfg)
    out = Outcome()
    sent = False
    while True:
        moved = False
        for src, dst, side in ((client, server, "server"), (server, client, "client")):
            data = src.data_to_send()
            if data:
                dst.receive_data(data)
                moved = True
            if getattr(out, f"{side}_error") is None:
                try:
                    getattr(out, f"{side}_events").extend(dst.events())
                except TLSError as exc:
                    setattr(out, f"{side}_error", exc)
        if not moved:
            if not sent and client.handshake_complete and out.client_error is None:
                sent = True
                client.send_data(b"ping")
                continue
            return out


def _pair(certs: dict[str, CertFiles], version: ProtocolVersion, **client_kw: object
          ) -> tuple[ClientConfig, ServerConfig]:
    files = certs["ecdsa-p256"]
    ccfg, scfg = configs(files, min_version=version, max_version=version, **client_kw)
    return ccfg, replace(scfg, client_auth="request",
                         client_trust=TrustStore.from_pem_file(files.ca_path))


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_the_client_sends_the_credential_whose_issuer_the_server_names(
        certs: dict[str, CertFiles], keys: dict[str, CertifiedKey],
        version: ProtocolVersion) -> None:
    # The server's CertificateRequest names the dev CA (its client_trust).
    ccfg, scfg = _pair(certs, version,
                       certificates=(keys["other-pinned"], keys["ecdsa-pinned"]))
    out = run(ccfg, scfg)
    assert out.info("client").client_certificate_sent
    server = out.info("server")
    assert server.client_certificates[:1] == keys["ecdsa-pinned"].chain[:1]
    assert server.client_certificate_verified


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_no_fitting_credential_sends_an_empty_certificate_or_aborts(
        certs: dict[str, CertFiles], keys: dict[str, CertifiedKey],
        version: ProtocolVersion) -> None:
    ccfg, scfg = _pair(certs, version, certificates=(keys["other-pinned"],))
    out = run(ccfg, scfg)
    assert not out.info("client").client_certificate_sent
    assert out.info("server").client_certificates == ()
    out = run(replace(ccfg, fail_without_matching_certificate=True), scfg)
    assert isinstance(out.client_error, HandshakeFailure)
    assert out.client_error.check == "client_cert_issuer"
    assert isinstance(out.server_error, AlertReceived)
    assert out.server_error.description == AlertDescription.HANDSHAKE_FAILURE


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_certificate_callback_sees_the_request_and_picks(
        certs: dict[str, CertFiles], keys: dict[str, CertifiedKey], devca: DevCA,
        version: ProtocolVersion) -> None:
    seen: list[CertificateRequestInfo] = []

    def pick(info: CertificateRequestInfo) -> tuple[CertifiedKey, ...]:
        seen.append(info)
        return (keys["rsa"],)

    ccfg, scfg = _pair(certs, version, certificate_callback=pick)
    out = run(ccfg, scfg)
    assert out.info("server").client_certificates[:1] == keys["rsa"].chain[:1]
    (info,) = seen
    assert info.version == version
    assert info.certificate_authorities == (_name(devca),)
    assert (info.certificate_types is None) == (version == ProtocolVersion.TLS13)
    assert SignatureScheme.ECDSA_SECP256R1_SHA256 in info.signature_schemes
    # The server's explicit list replaces its trust store's subjects; () names none.
    for names, expected in (((b"\x30\x00",), (b"\x30\x00",)), ((), None)):
        seen.clear()
        run(ccfg, replace(scfg, certificate_authorities=names))
        assert seen[0].certificate_authorities == expected


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_a_failing_certificate_callback_is_an_internal_error(
        certs: dict[str, CertFiles], version: ProtocolVersion) -> None:
    def fail(info: CertificateRequestInfo) -> None:
        raise RuntimeError("no smartcard")

    ccfg, scfg = _pair(certs, version, certificate_callback=fail)
    out = run(ccfg, scfg)
    assert isinstance(out.client_error, InternalError)
    assert out.client_error.check == "certificate_callback"
    assert isinstance(out.server_error, AlertReceived)
    assert out.server_error.description == AlertDescription.INTERNAL_ERROR


def test_a_tls12_certificate_request_with_a_malformed_ca_list_is_a_decode_error(
        certs: dict[str, CertFiles]) -> None:
    """RFC 5246 §7.4.4: each DistinguishedName is <1..2^16-1>; a zero-length one (and the
    list's bytes running past it) is a decode_error (RFC 8446 §6.2 / RFC 5246 §7.2.2)."""
    marker = b"\x30\x06ZZZZZZ"
    ccfg, scfg = _pair(certs, ProtocolVersion.TLS12)
    scfg = replace(scfg, certificate_authorities=(marker,))
    client, server = TLSConnection(ccfg), TLSConnection(scfg)
    server.receive_data(client.data_to_send())
    server.events()
    flight = server.data_to_send()
    assert flight.count(b"\x00\x08" + marker) == 1
    client.receive_data(flight.replace(b"\x00\x08" + marker, b"\x00\x00" + marker))
    with pytest.raises(DecodeError):
        client.events()
    assert client.data_to_send()[-2:] == bytes([2, AlertDescription.DECODE_ERROR])


@pytest.mark.parametrize("body", [
    b"\x00\x00",                    # empty list (<3..2^16-1>)
    b"\x00\x03\x00\x00\x00",        # a zero-length name
    b"\x00\x05\x00\x04\x30\x02",    # a name running past the list
])
def test_malformed_certificate_authorities_extension_is_a_decode_error(body: bytes) -> None:
    with pytest.raises(DecodeError):
        ext.CertificateAuthorities.parse_body(body, ExtensionContext.CERTIFICATE_REQUEST)


def test_malformed_tls12_ca_names_are_a_decode_error() -> None:
    good = CertificateRequest12((ClientCertificateType.ECDSA_SIGN,),
                                (_SS.ECDSA_SECP256R1_SHA256,), (b"\x30\x00",)).serialize()[4:]
    assert CertificateRequest12.parse_body(good).certificate_authorities == (b"\x30\x00",)
    with pytest.raises(DecodeError):
        CertificateRequest12.parse_body(good[:-4] + b"\x00\x00\x30\x00")


# -- OCSP ----------------------------------------------------------------------------------

STAPLE = b"\x01\x02\x03\x04"  # not even DER: what BoGo staples


def _ocsp_pair(certs: dict[str, CertFiles], version: ProtocolVersion, **client_kw: object
               ) -> tuple[ClientConfig, ServerConfig]:
    files = certs["ecdsa-p256"]
    ccfg, scfg = configs(files, min_version=version, max_version=version, **client_kw)
    cert = replace(scfg.certificates[0], ocsp_response=STAPLE)
    return ccfg, replace(scfg, certificates=(cert,))


@pytest.mark.parametrize("verify", [False, True], ids=["insecure", "verifying"])
@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_ocsp_unchecked_hands_the_staple_over_unchecked(
        certs: dict[str, CertFiles], version: ProtocolVersion, verify: bool) -> None:
    ccfg, scfg = _ocsp_pair(certs, version, verify_certificates=verify,
                            ocsp_unchecked=True)
    info = run(ccfg, scfg).info("client")
    assert info.ocsp_response == STAPLE
    assert info.revocation_state == "not_checked"
    assert info.revocation is not None and "not checked" in info.revocation
    assert "stapled OCSP response was received, not checked" in info.revocation


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_without_verification_no_staple_is_asked_for_by_default(
        certs: dict[str, CertFiles], version: ProtocolVersion) -> None:
    ccfg, scfg = _ocsp_pair(certs, version, verify_certificates=False)
    assert not ccfg.sends_status_request
    assert run(ccfg, scfg).info("client").ocsp_response is None


@pytest.mark.parametrize("stapled", [True, False], ids=["stapled", "no-staple"])
@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_client_ocsp_callback_decides(certs: dict[str, CertFiles], version: ProtocolVersion,
                                      stapled: bool) -> None:
    calls: list[tuple[tuple[bytes, ...], bytes | None]] = []

    def refuse(chain: tuple[bytes, ...], staple: bytes | None) -> bool:
        calls.append((chain, staple))
        return False

    ccfg, scfg = _ocsp_pair(certs, version, verify_certificates=False, ocsp_callback=refuse)
    if not stapled:
        scfg = replace(scfg, certificates=(replace(scfg.certificates[0], ocsp_response=None),))
    out = run(ccfg, scfg)
    assert isinstance(out.client_error, BadCertificateStatusResponse)
    assert out.client_error.check == "ocsp_callback"
    assert calls and calls[0][1] == (STAPLE if stapled else None)
    assert calls[0][0] == scfg.certificates[0].chain
    assert isinstance(out.server_error, AlertReceived)
    assert out.server_error.description == AlertDescription.BAD_CERTIFICATE_STATUS_RESPONSE
    ok = run(replace(ccfg, ocsp_callback=lambda chain, staple: True), scfg)
    assert ok.info("client").ocsp_response == (STAPLE if stapled else None)

    def fail(chain: tuple[bytes, ...], staple: bytes | None) -> bool:
        raise OSError("responder unreachable")

    failed = run(replace(ccfg, ocsp_callback=fail), scfg)
    assert isinstance(failed.client_error, InternalError)
    assert failed.client_error.check == "ocsp_callback"


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_server_ocsp_callback_staples_or_fails(certs: dict[str, CertFiles],
                                               version: ProtocolVersion) -> None:
    ccfg, scfg = _ocsp_pair(certs, version, verify_certificates=False, ocsp_unchecked=True)
    fresh = run(ccfg, replace(scfg, ocsp_callback=lambda ck: b"fresh"))
    assert fresh.info("client").ocsp_response == b"fresh"
    declined = run(ccfg, replace(scfg, ocsp_callback=lambda ck: None))
    assert declined.info("client").ocsp_response is None

    def fail(ck: CertifiedKey) -> bytes:
        raise OSError("responder unreachable")

    out = run(ccfg, replace(scfg, ocsp_callback=fail))
    assert isinstance(out.server_error, InternalError)
    assert out.server_error.check == "ocsp_callback"
    assert isinstance(out.client_error, AlertReceived)
    assert out.client_error.description == AlertDescription.INTERNAL_ERROR


# -- the server's certificate callback ------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_server_certificate_callback_picks_per_hello(certs: dict[str, CertFiles],
                                                     version: ProtocolVersion) -> None:
    rsa = certs["rsa-2048"]
    rsa_key = CertifiedKey.from_files(rsa.chain_path, rsa.key_path)
    seen: list[ClientHelloInfo] = []

    def pick(info: ClientHelloInfo) -> tuple[CertifiedKey, ...]:
        seen.append(info)
        return (rsa_key,)

    ccfg, scfg = configs(certs["ecdsa-p256"], min_version=version, max_version=version)
    out = run(ccfg, replace(scfg, certificate_callback=pick))
    assert out.info("client").peer_certificates[:1] == rsa_key.chain[:1]
    (info,) = seen
    assert (info.version, info.server_name) == (version, "localhost")
    assert info.certificate_authorities is None and info.signature_schemes
    # None keeps the configured certificates.
    kept = run(ccfg, replace(scfg, certificate_callback=lambda info: None))
    assert kept.info("client").peer_certificates[:1] == scfg.certificates[0].chain[:1]


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_a_failing_server_certificate_callback_is_an_internal_error(
        certs: dict[str, CertFiles], version: ProtocolVersion) -> None:
    def fail(info: ClientHelloInfo) -> None:
        raise KeyError("no certificate for this name")

    ccfg, scfg = configs(certs["ecdsa-p256"], min_version=version, max_version=version)
    out = run(ccfg, replace(scfg, certificate_callback=fail))
    assert isinstance(out.server_error, InternalError)
    assert out.server_error.check == "certificate_callback"
    assert isinstance(out.client_error, AlertReceived)
    assert out.client_error.description == AlertDescription.INTERNAL_ERROR

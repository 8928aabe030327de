"""Mutual TLS in memory, both versions (RFC 8446 §4.3.2, §4.4.2, §4.4.3; RFC 5246 §7.4.4,
§7.4.6, §7.4.8): a server that requests or requires a client certificate, a client that
sends one (or not), and every way the client's side of it can be wrong."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509

from helpers import CertFiles
from pair import configs
from tlsmith.codec.enums import AlertDescription, ProtocolVersion
from tlsmith.config import CertifiedKey, ClientConfig, ServerConfig
from tlsmith.connection import TLSConnection
from tlsmith.errors import (
    AlertReceived,
    BadCertificate,
    CertificateRequired,
    DecryptError,
    HandshakeFailure,
    TLSError,
    UnknownCA,
    UnsupportedCertificate,
    UsageError,
)
from tlsmith.events import ApplicationData, Event, HandshakeComplete, HandshakeInfo
from tlsmith.observe import MessageTrace
from tlsmith.x509.devca import DevCA
from tlsmith.x509.verify import TrustStore

VERSIONS = (ProtocolVersion.TLS13, ProtocolVersion.TLS12)
V_IDS = ("tls13", "tls12")


@pytest.fixture(scope="module")
def client_certs(devca: DevCA, tmp_path_factory: pytest.TempPathFactory
                 ) -> dict[str, CertifiedKey]:
    """Client certificates (clientAuth EKU) from the dev CA, one per key type, plus a
    serverAuth-only one and one from a CA the server does not trust."""
    directory = tmp_path_factory.mktemp("client-certs")
    out: dict[str, CertifiedKey] = {}
    for key_type in ("ecdsa-p256", "rsa-2048", "ed25519"):
        issued = devca.issue(("alice.example",), key_type=key_type, client=True).write(
            directory, f"alice-{key_type}")
        assert issued.chain_path and issued.key_path
        out[key_type] = CertifiedKey.from_files(issued.chain_path, issued.key_path)
    server_only = devca.issue(("bob.example",), client=False).write(directory, "bob")
    assert server_only.chain_path and server_only.key_path
    out["server-eku"] = CertifiedKey.from_files(server_only.chain_path, server_only.key_path)
    other = DevCA.create("Some Other CA", "ecdsa-p256", datetime.now(tz=UTC))
    rogue = other.issue(("mallory.example",), client=True)
    rogue_dir = Path(directory) / "rogue"
    rogue_dir.mkdir()
    written = rogue.write(rogue_dir, "mallory")
    assert written.chain_path and written.key_path
    out["untrusted"] = CertifiedKey.from_files(written.chain_path, written.key_path)
    return out


@dataclass
class Outcome:
    client_events: list[Event] = field(default_factory=list)
    server_events: list[Event] = field(default_factory=list)
    client_error: TLSError | None = None
    server_error: TLSError | None = None

    def info(self, side: str) -> HandshakeInfo:
        events = self.client_events if side == "client" else self.server_events
        done = [e for e in events if isinstance(e, HandshakeComplete)]
        assert done, f"the {side} did not complete the handshake"
        return done[0].info


def run(client_cfg: ClientConfig, server_cfg: ServerConfig, *, exchange_data: bool = True
        ) -> Outcome:
    """Drive a pair until both are quiet, recording each side's error (if any); then, if
    both completed, send one message each way (a TLS 1.3 client learns of a rejected
    certificate only after its Finished)."""
    client, server = TLSConnection(client_cfg), TLSConnection(server_cfg)
    out = Outcome()

    def drain(conn: TLSConnection, events: list[Event], side: str) -> None:
        if getattr(out, f"{side}_error") is not None:
            return
        try:
            events += conn.events()
        except TLSError as exc:
            setattr(out, f"{side}_error", exc)

    sent_data = False
    while True:
        moved = False
        data = client.data_to_send()
        if data:
            server.receive_data(data)
            moved = True
        drain(server, out.server_events, "server")
        data = server.data_to_send()
        if data:
            client.receive_data(data)
            moved = True
        drain(client, out.client_events, "client")
        if not moved:
            if (exchange_data and not sent_data and out.client_error is None
                    and out.server_error is None and client.handshake_complete):
                sent_data = True
                client.send_data(b"ping")
                if server.handshake_complete:
                    server.send_data(b"pong")
                continue
            return out


@pytest.fixture
def pair_cfg(certs: dict[str, CertFiles]):  # type: ignore[no-untyped-def]
    def make(version: ProtocolVersion, client_auth: str, client_cert: CertifiedKey | None
             ) -> tuple[ClientConfig, ServerConfig]:
        files = certs["ecdsa-p256"]
        ccfg, scfg = configs(files, min_version=version, max_version=version,
                             certificate=client_cert)
        scfg = replace(scfg, client_auth=client_auth,
                       client_trust=TrustStore.from_pem_file(files.ca_path))
        return ccfg, scfg
    return make


# -- configuration ---------------------------------------------------------------------


def test_client_auth_needs_a_trust_store(certs: dict[str, CertFiles]) -> None:
    _, scfg = configs(certs["ecdsa-p256"])
    with pytest.raises(UsageError, match="client_trust"):
        replace(scfg, client_auth="require")
    with pytest.raises(UsageError, match="client_auth"):
        replace(scfg, client_auth="sometimes")


# -- the happy paths ---------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
@pytest.mark.parametrize("key_type", ["ecdsa-p256", "rsa-2048", "ed25519"])
@pytest.mark.parametrize("mode", ["request", "require"])
def test_client_certificate_accepted(pair_cfg, client_certs, version, key_type,  # type: ignore[no-untyped-def]
                                     mode) -> None:
    cert = client_certs[key_type]
    out = run(*pair_cfg(version, mode, cert))
    assert out.client_error is None and out.server_error is None
    sinfo, cinfo = out.info("server"), out.info("client")
    assert sinfo.version == version
    assert sinfo.client_certificates == cert.chain
    assert sinfo.client_certificate_verified is True
    assert cinfo.client_certificate_requested and cinfo.client_certificate_sent
    leaf = x509.load_der_x509_certificate(sinfo.client_certificates[0])
    assert "alice.example" in leaf.subject.rfc4514_string()
    assert ApplicationData(b"ping") in out.server_events
    assert ApplicationData(b"pong") in out.client_events


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_request_without_client_certificate(pair_cfg, version) -> None:  # type: ignore[no-untyped-def]
    out = run(*pair_cfg(version, "request", None))
    assert out.client_error is None and out.server_error is None
    sinfo, cinfo = out.info("server"), out.info("client")
    assert sinfo.client_certificates == ()
    assert sinfo.client_certificate_verified is False
    assert cinfo.client_certificate_requested and not cinfo.client_certificate_sent
    assert ApplicationData(b"ping") in out.server_events


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_no_request_no_certificate_sent(pair_cfg, client_certs, version) -> None:  # type: ignore[no-untyped-def]
    out = run(*pair_cfg(version, "none", client_certs["ecdsa-p256"]))
    assert out.client_error is None and out.server_error is None
    assert out.info("server").client_certificates == ()
    cinfo = out.info("client")
    assert not cinfo.client_certificate_requested and not cinfo.client_certificate_sent


# -- failures ----------------------------------------------------------------------------


def _alerted(out: Outcome, server_exc: type[TLSError], alert: AlertDescription) -> None:
    assert isinstance(out.server_error, server_exc), out.server_error
    assert isinstance(out.client_error, AlertReceived), out.client_error
    assert out.client_error.description == alert
    assert not any(isinstance(e, ApplicationData) for e in out.server_events)


@pytest.mark.parametrize(("version", "exc", "alert"), [
    (ProtocolVersion.TLS13, CertificateRequired, AlertDescription.CERTIFICATE_REQUIRED),
    (ProtocolVersion.TLS12, HandshakeFailure, AlertDescription.HANDSHAKE_FAILURE),
], ids=V_IDS)
def test_require_without_client_certificate(pair_cfg, version, exc, alert) -> None:  # type: ignore[no-untyped-def]
    out = run(*pair_cfg(version, "require", None))
    _alerted(out, exc, alert)


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_untrusted_client_ca(pair_cfg, client_certs, version) -> None:  # type: ignore[no-untyped-def]
    out = run(*pair_cfg(version, "request", client_certs["untrusted"]))
    _alerted(out, UnknownCA, AlertDescription.UNKNOWN_CA)


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_server_auth_only_certificate_as_client_certificate(pair_cfg, client_certs, version  # type: ignore[no-untyped-def]
                                                            ) -> None:
    out = run(*pair_cfg(version, "require", client_certs["server-eku"]))
    assert isinstance(out.server_error, UnsupportedCertificate | BadCertificate)
    assert isinstance(out.client_error, AlertReceived)
    assert out.client_error.description == out.server_error.alert
    assert out.client_error.description in (AlertDescription.UNSUPPORTED_CERTIFICATE,
                                            AlertDescription.BAD_CERTIFICATE)


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_bad_client_certificate_verify(pair_cfg, client_certs, version) -> None:  # type: ignore[no-untyped-def]
    """A trusted certificate presented with another key: the CertificateVerify does not
    verify under the certificate's public key (decrypt_error, RFC 8446 §4.4.3)."""
    good, other = client_certs["ecdsa-p256"], client_certs["untrusted"]  # both P-256
    mismatched = CertifiedKey(good.chain, other.private_key, good.names)
    out = run(*pair_cfg(version, "require", mismatched))
    _alerted(out, DecryptError, AlertDescription.DECRYPT_ERROR)


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_certificate_request_position(pair_cfg, client_certs, version) -> None:  # type: ignore[no-untyped-def]
    """RFC 8446 §4.3.2: CertificateRequest right after EncryptedExtensions; RFC 5246
    §7.3: right before ServerHelloDone. The client answers Certificate first (1.3:
    then CertificateVerify, Finished; 1.2: then ClientKeyExchange, CertificateVerify)."""
    server_sent: list[str] = []
    client_sent: list[str] = []

    def spy(into: list[str]):  # type: ignore[no-untyped-def]
        def observer(record: object) -> None:
            if isinstance(record, MessageTrace) and record.direction == "sent" and (
                    record.name not in ("ChangeCipherSpec", "Alert")):
                into.append(record.name)
        return observer

    ccfg, scfg = pair_cfg(version, "require", client_certs["ecdsa-p256"])
    out = run(replace(ccfg, observer=spy(client_sent)), replace(scfg, observer=spy(server_sent)),
              exchange_data=False)
    assert out.server_error is None and out.client_error is None
    if version == ProtocolVersion.TLS13:
        assert server_sent[:3] == ["ServerHello", "EncryptedExtensions", "CertificateRequest"]
        assert client_sent[1:] == ["Certificate", "CertificateVerify", "Finished"]
    else:
        done = server_sent.index("ServerHelloDone")
        assert server_sent[done - 1] == "CertificateRequest12"
        assert client_sent[1] == "Certificate12" and client_sent[3] == "CertificateVerify"


def test_certified_key_signing_schemes_restrict_and_order(client_certs) -> None:  # type: ignore[no-untyped-def]
    """CertifiedKey.signing_schemes: the schemes the key signs with, in that order;
    those the key cannot make are ignored."""
    from tlsmith.codec.enums import SignatureScheme as S

    rsa = client_certs["rsa-2048"]
    assert rsa.signing_schemes is None and S.RSA_PSS_RSAE_SHA256 in rsa.tls13_schemes
    prefs = replace(rsa, signing_schemes=(S.ECDSA_SECP256R1_SHA256, S.RSA_PKCS1_SHA384,
                                          S.RSA_PSS_RSAE_SHA512))
    assert prefs.tls12_schemes == (S.RSA_PKCS1_SHA384, S.RSA_PSS_RSAE_SHA512)
    assert prefs.tls13_schemes == frozenset({S.RSA_PSS_RSAE_SHA512})


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_client_signs_with_its_signing_schemes(pair_cfg, client_certs, version) -> None:  # type: ignore[no-untyped-def]
    """BoGo Client-Sign-*: the client's own signing preference (apart from the
    signature_schemes it accepts from the server) picks its CertificateVerify scheme."""
    from tlsmith.codec.enums import SignatureScheme as S

    sent: list[object] = []

    def observer(record: object) -> None:
        if (isinstance(record, MessageTrace) and record.direction == "sent"
                and record.name == "CertificateVerify"):
            sent.append(record.message)

    cert = replace(client_certs["rsa-2048"], signing_schemes=(S.RSA_PSS_RSAE_SHA384,))
    ccfg, scfg = pair_cfg(version, "require", cert)
    out = run(replace(ccfg, observer=observer), scfg)
    assert out.client_error is None and out.server_error is None
    assert [getattr(m, "algorithm", None) for m in sent] == [S.RSA_PSS_RSAE_SHA384]

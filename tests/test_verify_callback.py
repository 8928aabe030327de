"""The application's certificate-verification hook (tlsmith.x509.callback), both sides and
both versions, in memory: accept, refuse (its alert and typed error), a failing callback
(internal_error), the honest wording of a chain the callback alone accepted, resumption
(sessions remember it; ``reverify_on_resume`` asks again)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from helpers import CertFiles
from pair import configs
from tlsmith.codec.enums import AlertDescription, ProtocolVersion
from tlsmith.config import CertifiedKey, ClientConfig, ServerConfig
from tlsmith.connection import TLSConnection
from tlsmith.errors import (
    AlertReceived,
    BadCertificate,
    CertificateUnknown,
    HandshakeFailure,
    InternalError,
    TLSError,
    UnknownCA,
    UsageError,
)
from tlsmith.events import Event, HandshakeComplete, HandshakeInfo, SessionTicketReceived
from tlsmith.observe import CheckTrace, TraceRecord
from tlsmith.session import Session, Session12, Session13, session_from_pem
from tlsmith.stores import MemoryStore
from tlsmith.tickets import ServerSessionState
from tlsmith.x509.callback import (
    ACCEPTED_UNVERIFIED,
    ERROR_CHECK,
    REFUSED_CHECK,
    PeerCertificates,
    Verdict,
    accept,
    refuse,
)
from tlsmith.x509.devca import DevCA
from tlsmith.x509.verify import TrustStore

pytestmark = pytest.mark.timeout(60)
VERSIONS = (ProtocolVersion.TLS13, ProtocolVersion.TLS12)
V_IDS = ("tls13", "tls12")


@dataclass
class Recorder:
    """A verify callback that records what it was asked and answers ``verdict``."""

    verdict: Verdict = field(default_factory=accept)
    raises: Exception | None = None
    seen: list[PeerCertificates] = field(default_factory=list)

    def __call__(self, peer: PeerCertificates) -> Verdict:
        self.seen.append(peer)
        if self.raises is not None:
            raise self.raises
        return self.verdict


@dataclass
class Outcome:
    client_events: list[Event] = field(default_factory=list)
    server_events: list[Event] = field(default_factory=list)
    client_error: TLSError | None = None
    server_error: TLSError | None = None
    client_checks: list[CheckTrace] = field(default_factory=list)
    server_checks: list[CheckTrace] = field(default_factory=list)

    def info(self, side: str) -> HandshakeInfo:
        events = self.client_events if side == "client" else self.server_events
        done = [e for e in events if isinstance(e, HandshakeComplete)]
        assert done, f"the {side} did not complete the handshake"
        return done[0].info

    def sessions(self) -> list[Session]:
        return [e.session for e in self.client_events if isinstance(e, SessionTicketReceived)]


def run(ccfg: ClientConfig, scfg: ServerConfig, session: Session | None = None) -> Outcome:
    """Drive a pair until quiet (each side's error kept); then one message each way (a
    TLS 1.3 client learns of a refused certificate only after its Finished)."""
    out = Outcome()

    def spy(checks: list[CheckTrace]):  # type: ignore[no-untyped-def]
        def observe(record: TraceRecord) -> None:
            if isinstance(record, CheckTrace):
                checks.append(record)
        return observe

    client = TLSConnection(replace(ccfg, observer=spy(out.client_checks)), session=session)
    server = TLSConnection(replace(scfg, observer=spy(out.server_checks)))

    def drain(conn: TLSConnection, side: str) -> None:
        if getattr(out, f"{side}_error") is None:
            try:
                getattr(out, f"{side}_events").extend(conn.events())
            except TLSError as exc:
                setattr(out, f"{side}_error", exc)

    sent = False
    while True:
        moved = False
        for src, dst, side in ((client, server, "server"), (server, client, "client")):
            data = src.data_to_send()
            if data:
                dst.receive_data(data)
                moved = True
            drain(dst, side)
        if not moved:
            if (not sent and out.client_error is None and out.server_error is None
                    and client.handshake_complete and server.handshake_complete):
                sent = True
                client.send_data(b"ping")
                server.send_data(b"pong")
                continue
            return out


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> CertifiedKey:
    """A client certificate from a CA nobody here trusts."""
    other = DevCA.create("Some Other CA", "ecdsa-p256", datetime.now(tz=UTC))
    directory = Path(tmp_path_factory.mktemp("stranger"))
    written = other.issue(("mallory.example",), client=True).write(directory, "mallory")
    assert written.chain_path and written.key_path
    return CertifiedKey.from_files(written.chain_path, written.key_path)


def client_side(files: CertFiles, version: ProtocolVersion, callback: Recorder, *,
                verify: bool, **kw: object) -> tuple[ClientConfig, ServerConfig]:
    ccfg, scfg = configs(files, min_version=version, max_version=version,
                         verify_certificates=verify, verify_callback=callback, **kw)
    return ccfg, scfg


def server_side(files: CertFiles, version: ProtocolVersion, callback: Recorder,
                client_cert: CertifiedKey, client_auth: str = "require"
                ) -> tuple[ClientConfig, ServerConfig]:
    ccfg, scfg = configs(files, min_version=version, max_version=version,
                         certificate=client_cert)
    return ccfg, replace(scfg, client_auth=client_auth, verify_callback=callback)


# -- configuration -----------------------------------------------------------------------


def test_configuration(certs: dict[str, CertFiles]) -> None:
    ccfg, scfg = configs(certs["ecdsa-p256"])
    with pytest.raises(UsageError, match="reverify_on_resume"):
        replace(ccfg, reverify_on_resume=True)
    replace(ccfg, verify_callback=Recorder(), reverify_on_resume=True)
    with pytest.raises(UsageError, match="reverify_on_resume"):
        replace(scfg, reverify_on_resume=True)
    # A server may judge client certificates with its callback alone (no client_trust).
    assert replace(scfg, client_auth="require", verify_callback=Recorder()).client_trust is None
    with pytest.raises(UsageError, match="client_trust"):
        replace(scfg, client_auth="require")
    with pytest.raises(ValueError, match="refusal sends one of"):
        refuse("no", alert=AlertDescription.DECODE_ERROR)
    assert accept().accepted and not refuse("no").accepted
    assert refuse("no").alert == AlertDescription.CERTIFICATE_UNKNOWN


# -- client side -------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_client_callback_alone_is_not_verification(certs: dict[str, CertFiles],
                                                   version: ProtocolVersion) -> None:
    cb = Recorder(accept("pinned"))
    out = run(*client_side(certs["ecdsa-p256"], version, cb, verify=False))
    assert out.client_error is None and out.server_error is None
    info = out.info("client")
    assert info.certificate_verified is False
    assert info.certificate_accepted_by_callback is True
    [peer] = cb.seen
    assert peer.peer == "server" and peer.verified is None and not peer.resumed
    assert peer.chain == info.peer_certificates and peer.server_name == "localhost"
    chain_lines = [c for c in out.client_checks if c.name == "certificate chain"]
    assert [(c.ok, c.detail) for c in chain_lines] == [(False, ACCEPTED_UNVERIFIED + " (pinned)")]
    assert not any("verified" in c.detail and "not verified" not in c.detail
                   for c in out.client_checks if "certificate" in c.name)


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_client_callback_after_verification(certs: dict[str, CertFiles],
                                            version: ProtocolVersion) -> None:
    cb = Recorder()
    out = run(*client_side(certs["ecdsa-p256"], version, cb, verify=True))
    assert out.client_error is None
    info = out.info("client")
    assert info.certificate_verified and info.certificate_accepted_by_callback
    [peer] = cb.seen
    assert peer.verified is not None and peer.verified.hostname == "localhost"
    names = [(c.name, c.ok) for c in out.client_checks]
    assert ("certificate chain", True) in names and ("application callback", True) in names


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_client_callback_cannot_accept_what_verification_refused(
        certs: dict[str, CertFiles], version: ProtocolVersion) -> None:
    other = DevCA.create("Not The Server's CA", "ecdsa-p256", datetime.now(tz=UTC))
    cb = Recorder()
    ccfg, scfg = client_side(certs["ecdsa-p256"], version, cb, verify=True)
    out = run(replace(ccfg, trust=TrustStore.from_certificates([other.certificate])), scfg)
    assert isinstance(out.client_error, UnknownCA)
    assert cb.seen == []


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
@pytest.mark.parametrize(("alert", "exc"), [
    (AlertDescription.CERTIFICATE_UNKNOWN, CertificateUnknown),
    (AlertDescription.BAD_CERTIFICATE, BadCertificate),
    (AlertDescription.HANDSHAKE_FAILURE, HandshakeFailure),
])
def test_client_callback_refuses(certs: dict[str, CertFiles], version: ProtocolVersion,
                                 alert: AlertDescription, exc: type[TLSError]) -> None:
    cb = Recorder(refuse("not our pinned key", alert=alert))
    out = run(*client_side(certs["ecdsa-p256"], version, cb, verify=False))
    assert isinstance(out.client_error, exc), out.client_error
    assert getattr(out.client_error, "check", None) == REFUSED_CHECK
    assert "not our pinned key" in str(out.client_error)
    assert isinstance(out.server_error, AlertReceived)
    assert out.server_error.description == alert
    assert out.client_checks[-1].ok is False
    assert not any(isinstance(e, HandshakeComplete) for e in out.client_events)


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_client_callback_that_raises(certs: dict[str, CertFiles],
                                     version: ProtocolVersion) -> None:
    boom = RuntimeError("database down")
    out = run(*client_side(certs["ecdsa-p256"], version, Recorder(raises=boom),
                           verify=False))
    assert isinstance(out.client_error, InternalError)
    assert out.client_error.check == ERROR_CHECK and out.client_error.__cause__ is boom
    assert isinstance(out.server_error, AlertReceived)
    assert out.server_error.description == AlertDescription.INTERNAL_ERROR


def test_client_callback_returning_garbage(certs: dict[str, CertFiles]) -> None:
    def bad(peer: PeerCertificates) -> Verdict:
        return True  # type: ignore[return-value]

    ccfg, scfg = configs(certs["ecdsa-p256"], verify_certificates=False, verify_callback=bad)
    out = run(ccfg, scfg)
    assert isinstance(out.client_error, InternalError)
    assert out.client_error.check == ERROR_CHECK


# -- server side -------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_server_callback_accepts_any_client_certificate(
        certs: dict[str, CertFiles], stranger: CertifiedKey,
        version: ProtocolVersion) -> None:
    cb = Recorder()
    out = run(*server_side(certs["ecdsa-p256"], version, cb, stranger))
    assert out.client_error is None and out.server_error is None
    info = out.info("server")
    assert info.client_certificates == stranger.chain
    assert info.client_certificate_verified is False
    assert info.client_certificate_accepted_by_callback is True
    [peer] = cb.seen
    assert peer.peer == "client" and peer.verified is None and peer.chain == stranger.chain
    assert [(c.ok, c.detail) for c in out.server_checks
            if c.name == "client certificate chain"] == [
        (False, ACCEPTED_UNVERIFIED)]


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_server_callback_refuses(certs: dict[str, CertFiles], stranger: CertifiedKey,
                                 version: ProtocolVersion) -> None:
    cb = Recorder(refuse("not on the allow-list"))
    out = run(*server_side(certs["ecdsa-p256"], version, cb, stranger))
    assert isinstance(out.server_error, CertificateUnknown)
    assert out.server_error.check == REFUSED_CHECK
    assert isinstance(out.client_error, AlertReceived)
    assert out.client_error.description == AlertDescription.CERTIFICATE_UNKNOWN


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_server_callback_that_raises(certs: dict[str, CertFiles], stranger: CertifiedKey,
                                     version: ProtocolVersion) -> None:
    out = run(*server_side(certs["ecdsa-p256"], version, Recorder(raises=KeyError("x")),
                           stranger))
    assert isinstance(out.server_error, InternalError)
    assert out.server_error.check == ERROR_CHECK
    assert isinstance(out.client_error, AlertReceived)
    assert out.client_error.description == AlertDescription.INTERNAL_ERROR


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_server_resumes_a_callback_accepted_client(certs: dict[str, CertFiles],
                                                   stranger: CertifiedKey,
                                                   version: ProtocolVersion) -> None:
    """client_auth="require" resumes only sessions with an accepted client certificate:
    one the callback accepted counts (and is reported so on resumption)."""
    cb = Recorder()
    ccfg, scfg = server_side(certs["ecdsa-p256"], version, cb, stranger)
    ccfg = replace(ccfg, session_tickets=True)
    scfg = replace(scfg, session_store=MemoryStore())
    first = run(ccfg, scfg)
    assert first.client_error is None
    session = first.sessions()[-1]
    again = run(ccfg, scfg, session=session)
    assert again.server_error is None
    info = again.info("server")
    assert info.resumed
    assert info.client_certificate_accepted_by_callback and not info.client_certificate_verified
    assert len(cb.seen) == 1  # not asked again on resumption


# -- resumption on the client --------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
@pytest.mark.parametrize("reverify", [False, True])
def test_client_reverify_on_resume(certs: dict[str, CertFiles], version: ProtocolVersion,
                                   reverify: bool) -> None:
    cb = Recorder()
    ccfg, scfg = client_side(certs["ecdsa-p256"], version, cb, verify=False,
                             session_tickets=True, reverify_on_resume=reverify)
    scfg = replace(scfg, session_store=MemoryStore())
    first = run(ccfg, scfg)
    session = first.sessions()[-1]
    assert session.certificate_accepted_by_callback and not session.certificate_verified
    # The session's verdict survives serialisation (bit 1 of the verdict byte).
    back = session_from_pem(session.to_pem())
    assert back.certificate_accepted_by_callback and not back.certificate_verified
    cb.verdict = refuse("revoked meanwhile")
    again = run(ccfg, scfg, session=session)
    if not reverify:
        assert again.client_error is None and again.info("client").resumed
        assert again.info("client").certificate_accepted_by_callback
        assert len(cb.seen) == 1
        return
    assert isinstance(again.client_error, CertificateUnknown)
    assert again.client_error.check == REFUSED_CHECK
    assert isinstance(again.server_error, AlertReceived)
    assert again.server_error.description == AlertDescription.CERTIFICATE_UNKNOWN
    resumed = cb.seen[-1]
    assert resumed.resumed and resumed.verified is None
    assert resumed.chain == session.peer_certificates
    cb.verdict = accept()
    ok = run(ccfg, scfg, session=session)
    assert ok.client_error is None and ok.info("client").resumed
    assert ok.info("client").certificate_accepted_by_callback


def test_session_verdict_bytes_are_compatible() -> None:
    s13 = Session13(ticket=b"t", psk=b"p" * 32, cipher_suite=0x1301, ticket_age_add=1,  # type: ignore[arg-type]
                    lifetime=60, received_at=1.0, certificate_verified=True,
                    certificate_accepted_by_callback=True)
    s12 = Session12(session_id=b"i", ticket=b"", master_secret=b"m" * 48,
                    cipher_suite=0xC02B, extended_master_secret=True,  # type: ignore[arg-type]
                    received_at=1.0, certificate_accepted_by_callback=True)
    for s in (s13, s12):
        raw = s.to_bytes()
        assert session_from_pem(s.to_pem()) == s
        assert raw != replace(s, certificate_accepted_by_callback=False).to_bytes()
    state = ServerSessionState(version=ProtocolVersion.TLS13, cipher_suite=0x1301,  # type: ignore[arg-type]
                               secret=b"s" * 32, issued_at=1.0, lifetime=60,
                               client_certificates=(b"der",),
                               client_certificate_accepted_by_callback=True)
    back = ServerSessionState.from_bytes(state.to_bytes())
    assert back.client_certificate_accepted_by_callback and not back.client_certificate_verified


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
@pytest.mark.parametrize("refuse_on_resume", [False, True])
def test_server_reverify_on_resume(certs: dict[str, CertFiles], stranger: CertifiedKey,
                                   version: ProtocolVersion, refuse_on_resume: bool) -> None:
    """ServerConfig.reverify_on_resume: the callback is asked about the session's client
    chain before resuming; a refusal means a full handshake (which asks again)."""
    seen: list[PeerCertificates] = []

    def judge(peer: PeerCertificates) -> Verdict:
        seen.append(peer)
        return refuse("re-check failed") if refuse_on_resume and peer.resumed else accept()

    ccfg, scfg = configs(certs["ecdsa-p256"], min_version=version, max_version=version,
                         certificate=stranger, session_tickets=True)
    scfg = replace(scfg, client_auth="require", verify_callback=judge,
                   reverify_on_resume=True, session_store=MemoryStore())
    first = run(ccfg, scfg)
    assert first.server_error is None
    again = run(ccfg, scfg, session=first.sessions()[-1])
    assert again.server_error is None and again.client_error is None
    info = again.info("server")
    assert [p.resumed for p in seen] == [False, True, *([False] if refuse_on_resume else [])]
    assert info.resumed is not refuse_on_resume
    assert info.client_certificate_accepted_by_callback
    assert seen[1].chain == stranger.chain and seen[1].peer == "client"

"""TLS 1.2 session resumption in memory: session IDs (RFC 5246 §7.3) and RFC 5077
tickets, the RFC 7627 §5.3 extended-master-secret rules, ticket-key rotation, and the
server's fallback to a full handshake whenever a session cannot be used."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from helpers import CertFiles
from mitm import body_of, handshake_message, handshake_record, split_messages
from mitm12 import CCS, Flight12, expect_alert12, patch_client_hello, without_extensions
from mitm12 import Session12 as Keys12
from pair import SecretSpy, configs, pump
from tlsmith.codec.enums import (
    CipherSuite,
    ContentType,
    ExtensionType,
    HandshakeType,
    ProtocolVersion,
)
from tlsmith.codec.messages import ClientHello, ServerHello
from tlsmith.config import CertifiedKey, ClientConfig, ServerConfig
from tlsmith.connection import TLSConnection
from tlsmith.crypto.suites import suite_info
from tlsmith.errors import HandshakeFailure, IllegalParameter, UnexpectedMessage
from tlsmith.events import ApplicationData, Event, HandshakeInfo, SessionTicketReceived
from tlsmith.observe import NoteTrace
from tlsmith.session import Session12, session_from_bytes
from tlsmith.stores import MemoryStore, StoreUnavailable
from tlsmith.tickets import TicketKeys
from tlsmith.x509.devca import DevCA
from tlsmith.x509.verify import TrustStore

TLS12 = ProtocolVersion.TLS12
ECDHE_AES128 = CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
ECDHE_AES256 = CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
ECDHE_CHACHA = CipherSuite.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def tls12(cert: CertFiles, *, server: dict[str, Any] | None = None, **client: Any
          ) -> tuple[ClientConfig, ServerConfig]:
    # Explicit: resumption on (whatever defaults other tests' helpers choose).
    server_kw: dict[str, Any] = {"max_version": TLS12, "session_ids": True, "tickets": 2,
                                 **(server or {})}
    client.setdefault("session_tickets", True)
    return configs(cert, max_version=TLS12, server=server_kw, **client)


class Run:
    """One connection's outcome."""

    def __init__(self, client: TLSConnection, server: TLSConnection, cev: list[Event],
                 sev: list[Event], cspy: SecretSpy, sspy: SecretSpy) -> None:
        self.client, self.server = client, server
        self.cev, self.sev = cev, sev
        self.cspy, self.sspy = cspy, sspy

    @property
    def cinfo(self) -> HandshakeInfo:
        assert self.client.info is not None
        return self.client.info

    @property
    def sinfo(self) -> HandshakeInfo:
        assert self.server.info is not None
        return self.server.info

    @property
    def sessions(self) -> list[Session12]:
        out = [e.session for e in self.cev if isinstance(e, SessionTicketReceived)]
        assert all(isinstance(s, Session12) for s in out)
        return [s for s in out if isinstance(s, Session12)]

    @property
    def session(self) -> Session12:
        sessions = self.sessions
        assert len(sessions) == 1, sessions
        return sessions[0]

    def notes(self) -> str:
        return "\n".join(r.text for r in self.sspy.records if isinstance(r, NoteTrace))


def connect(ccfg: ClientConfig, scfg: ServerConfig, session: Session12 | None = None
            ) -> Run:
    cspy, sspy = SecretSpy(), SecretSpy()
    client = TLSConnection(replace(ccfg, observer=cspy), session=session)
    server = TLSConnection(replace(scfg, observer=sspy))
    cev, sev = pump(client, server)
    assert client.handshake_complete and server.handshake_complete
    client.send_data(b"ping")
    cev2, sev2 = pump(client, server)
    assert ApplicationData(b"ping") in sev2
    return Run(client, server, cev + cev2, sev + sev2, cspy, sspy)


def messages_from(data: bytes) -> list[HandshakeType]:
    """The handshake message types in the plaintext part of a flight."""
    flight = Flight12.parse(data)
    return [HandshakeType(m[0]) for m in flight.messages]


@pytest.fixture
def cert(certs: dict[str, CertFiles]) -> CertFiles:
    return certs["ecdsa-p256"]


# -- session IDs ------------------------------------------------------------------------
def test_session_id_resumption(cert: CertFiles) -> None:
    ccfg, scfg = tls12(cert, session_tickets=False)
    first = connect(ccfg, scfg)
    assert not first.cinfo.resumed and first.cinfo.resumed_with is None
    s = first.session
    assert len(s.session_id) == 32 and s.ticket == b""
    assert s.cipher_suite == first.cinfo.cipher_suite and s.extended_master_secret
    assert s.server_name == "localhost" and s.peer_certificates
    assert s.master_secret == first.cspy.secrets["master_secret"]
    second = connect(ccfg, scfg, session=s)
    for info in (second.cinfo, second.sinfo):
        assert info.resumed and info.resumed_with == "session_id"
        assert info.cipher_suite == s.cipher_suite and info.extended_master_secret
    assert second.cinfo.peer_certificates == s.peer_certificates
    assert second.cinfo.certificate_verified
    # The same master secret, new randoms.
    assert second.cspy.secrets["master_secret"] == s.master_secret
    assert second.cinfo.client_random != first.cinfo.client_random
    # Still valid: handed back so a third connection can resume too.
    assert second.session == s
    third = connect(ccfg, scfg, session=second.session)
    assert third.cinfo.resumed and third.sinfo.resumed_with == "session_id"
    assert "session id" in third.notes()


def test_abbreviated_flight_has_no_certificate(cert: CertFiles) -> None:
    ccfg, scfg = tls12(cert, session_tickets=False)
    s = connect(ccfg, scfg).session
    client = TLSConnection(ccfg, session=s)
    server = TLSConnection(scfg)
    server.receive_data(client.data_to_send())
    server.events()
    flight = server.data_to_send()
    assert messages_from(flight) == [HandshakeType.SERVER_HELLO]
    assert Flight12.parse(flight).has_ccs


def test_tls12_session_round_trips_through_bytes(cert: CertFiles) -> None:
    ccfg, scfg = tls12(cert)
    s = connect(ccfg, scfg).session
    again = session_from_bytes(s.to_bytes())
    assert isinstance(again, Session12)
    assert abs(again.received_at - s.received_at) < 0.002  # stored in milliseconds
    assert again == replace(s, received_at=again.received_at)
    assert connect(ccfg, scfg, session=again).cinfo.resumed


# -- tickets ----------------------------------------------------------------------------
def test_ticket_resumption(cert: CertFiles) -> None:
    ccfg, scfg = tls12(cert, server={"session_ids": False})
    first = connect(ccfg, scfg)
    s = first.session
    assert s.session_id == b"" and s.ticket and s.lifetime == scfg.ticket_lifetime
    second = connect(ccfg, scfg, session=s)
    for info in (second.cinfo, second.sinfo):
        assert info.resumed and info.resumed_with == "ticket"
    assert "ticket" in second.notes()
    # No renewal under the current key: the same session comes back.
    assert second.session.ticket == s.ticket


def test_ticket_and_session_id_together_prefers_the_ticket(cert: CertFiles) -> None:
    ccfg, scfg = tls12(cert)
    s = connect(ccfg, scfg).session
    assert s.session_id and s.ticket
    second = connect(ccfg, scfg, session=s)
    assert second.sinfo.resumed_with == "ticket"


def test_ticket_under_previous_key_is_accepted_and_renewed(cert: CertFiles) -> None:
    store = MemoryStore()
    ccfg, scfg = tls12(cert, server={"session_store": store, "session_ids": False})
    s = connect(ccfg, scfg).session
    store.rotate()
    second = connect(ccfg, scfg, session=s)
    assert second.cinfo.resumed and second.sinfo.resumed_with == "ticket"
    renewed = second.session
    assert renewed.ticket != s.ticket and renewed.master_secret == s.master_secret
    assert "renew" in second.notes()
    # The renewed ticket survives the next rotation; the old one does not.
    store.rotate()
    assert connect(ccfg, scfg, session=renewed).cinfo.resumed
    again = connect(ccfg, scfg, session=s)
    assert not again.cinfo.resumed and not again.sinfo.resumed
    assert "not ours" in again.notes()


def test_ticket_two_rotations_old_means_full_handshake(cert: CertFiles) -> None:
    store = MemoryStore()
    ccfg, scfg = tls12(cert, server={"session_store": store})
    s = connect(ccfg, scfg).session
    store.rotate()
    store.rotate()
    # The session ID is random for a ticket offer: nothing to fall back to.
    second = connect(ccfg, scfg, session=s)
    assert not second.cinfo.resumed and second.cinfo.resumed_with is None
    assert second.session.ticket and second.session.ticket != s.ticket


@pytest.mark.parametrize("mangle", [
    pytest.param(lambda t: t[:20], id="truncated"),
    pytest.param(lambda t: t[:-1] + bytes([t[-1] ^ 1]), id="altered-tag"),
    pytest.param(lambda t: t[:30] + bytes([t[30] ^ 0x80]) + t[31:], id="altered-body"),
    pytest.param(lambda t: bytes(16) + t[16:], id="unknown-key-name"),
    pytest.param(lambda t: b"\x00" * len(t), id="zeros"),
    pytest.param(lambda t: b"x", id="one-byte"),
])
def test_bad_ticket_means_full_handshake(cert: CertFiles, mangle: Any) -> None:
    ccfg, scfg = tls12(cert)
    s = connect(ccfg, scfg).session
    second = connect(ccfg, scfg, session=replace(s, ticket=mangle(s.ticket)))
    assert not second.cinfo.resumed and not second.sinfo.resumed
    assert second.session.ticket  # a fresh ticket for the new session


def test_forged_ticket_under_a_key_we_do_not_have(cert: CertFiles) -> None:
    from tlsmith.tickets import ServerSessionState, TicketKey, seal_ticket

    ccfg, scfg = tls12(cert)
    s = connect(ccfg, scfg).session
    state = ServerSessionState(TLS12, s.cipher_suite, bytes(48), 1_000, 10**9,
                               server_name="localhost")
    forged = seal_ticket(TicketKeys(TicketKey(bytes(16), bytes(32))), state, bytes(12))
    second = connect(ccfg, scfg, session=replace(s, ticket=forged, master_secret=bytes(48)))
    assert not second.cinfo.resumed


# -- when a session cannot be used -------------------------------------------------------
@pytest.mark.parametrize("tickets", [True, False])
def test_expired_session_means_full_handshake(cert: CertFiles, tickets: bool) -> None:
    clock = Clock()
    ccfg, scfg = tls12(cert, session_tickets=tickets,
                       server={"clock": clock, "ticket_lifetime": 100})
    s = connect(ccfg, scfg).session
    clock.now += 101
    # The client's copy of the session has no expiry it knows of: make it offer.
    second = connect(ccfg, scfg, session=replace(s, lifetime=0))
    assert not second.cinfo.resumed and not second.sinfo.resumed


def test_client_does_not_offer_an_expired_ticket(cert: CertFiles) -> None:
    clock = Clock()
    ccfg, scfg = tls12(cert, clock=clock, server={"ticket_lifetime": 100})
    s = connect(ccfg, scfg).session
    assert s.lifetime == 100
    clock.now += 101
    second = connect(ccfg, scfg, session=s)
    assert not second.cinfo.resumed


def test_sni_mismatch_means_full_handshake(cert: CertFiles) -> None:
    ccfg, scfg = tls12(cert)
    s = connect(ccfg, scfg).session
    # A client that (wrongly) offers the session under another name: the server refuses.
    other = replace(ccfg, server_name="other.localhost", verify_certificates=False)
    second = connect(other, scfg, session=replace(s, server_name="other.localhost"))
    assert not second.sinfo.resumed
    assert "another server name" in second.notes()


def test_suite_no_longer_configured_means_full_handshake(cert: CertFiles) -> None:
    ccfg, scfg = tls12(cert, server={"cipher_suites": (ECDHE_AES256, ECDHE_AES128)})
    s = connect(ccfg, scfg).session
    assert s.cipher_suite == ECDHE_AES256
    second = connect(ccfg, replace(scfg, cipher_suites=(ECDHE_AES128,)), session=s)
    assert not second.sinfo.resumed and second.sinfo.cipher_suite == ECDHE_AES128


class DownStore:
    """A store that cannot answer (e.g. Redis is down)."""

    def get(self, session_id: bytes, now: float) -> bytes | None:
        raise StoreUnavailable("down")

    def put(self, session_id: bytes, state: bytes, lifetime: int, now: float) -> None:
        raise StoreUnavailable("down")

    def take_once(self, key: bytes, lifetime: float, now: float) -> bool:
        raise StoreUnavailable("down")

    def ticket_keys(self, now: float) -> TicketKeys:
        raise StoreUnavailable("down")


@pytest.mark.parametrize("tickets", [True, False])
def test_store_unavailable_means_full_handshake(cert: CertFiles, tickets: bool) -> None:
    ccfg, scfg = tls12(cert, session_tickets=tickets)
    s = connect(ccfg, scfg).session
    down = replace(scfg, session_store=DownStore())
    second = connect(ccfg, down, session=s)
    assert not second.sinfo.resumed and not second.cinfo.resumed
    assert "unavailable" in second.notes()
    if tickets:
        # The ticket promised in the ServerHello is empty (RFC 5077 §3.3).
        assert all(not x.ticket for x in second.sessions)


def test_tickets_zero_issues_no_ticket(cert: CertFiles) -> None:
    ccfg, scfg = tls12(cert, server={"tickets": 0})
    first = connect(ccfg, scfg)
    s = first.session
    assert s.ticket == b"" and s.session_id
    second = connect(ccfg, scfg, session=s)
    assert second.sinfo.resumed_with == "session_id"
    # A server with tickets off ignores a ticket (and cannot look up a random ID).
    with_ticket = connect(*tls12(cert), session=None).session
    assert not connect(ccfg, scfg, session=with_ticket).sinfo.resumed


def test_session_ids_off_and_no_tickets_gives_nothing_to_resume(cert: CertFiles) -> None:
    ccfg, scfg = tls12(cert, server={"tickets": 0, "session_ids": False})
    first = connect(ccfg, scfg)
    assert first.sessions == []


def test_session_ids_off_ignores_a_cached_id(cert: CertFiles) -> None:
    ccfg, scfg = tls12(cert, session_tickets=False)
    s = connect(ccfg, scfg).session
    second = connect(ccfg, replace(scfg, session_ids=False), session=s)
    assert not second.sinfo.resumed


def test_client_without_ticket_extension_gets_no_ticket(cert: CertFiles) -> None:
    ccfg, scfg = tls12(cert, session_tickets=False)
    first = connect(ccfg, scfg)
    assert first.session.ticket == b""


def test_resume_by_id_with_ticket_request_issues_a_ticket(cert: CertFiles) -> None:
    no_tickets, scfg = tls12(cert, session_tickets=False)
    s = connect(no_tickets, scfg).session
    ccfg = replace(no_tickets, session_tickets=True)
    second = connect(ccfg, scfg, session=s)
    assert second.sinfo.resumed_with == "session_id"
    assert second.session.ticket and second.session.session_id == s.session_id
    third = connect(ccfg, scfg, session=second.session)
    assert third.sinfo.resumed_with == "ticket"


def test_unknown_session_id_means_full_handshake(cert: CertFiles) -> None:
    ccfg, scfg = tls12(cert, session_tickets=False)
    s = connect(ccfg, scfg).session
    fresh_server = replace(scfg, session_store=MemoryStore())
    assert not connect(ccfg, fresh_server, session=s).sinfo.resumed


def test_damaged_cache_entry_means_full_handshake(cert: CertFiles) -> None:
    store = MemoryStore()
    ccfg, scfg = tls12(cert, session_tickets=False, server={"session_store": store})
    s = connect(ccfg, scfg).session
    store.put(s.session_id, b"\x01garbage", 100, time.time())
    second = connect(ccfg, scfg, session=s)
    assert not second.sinfo.resumed and "damaged" in second.notes()


# -- RFC 7627 §5.3 -----------------------------------------------------------------------
def test_server_aborts_when_ems_session_resumed_without_ems(
        cert: CertFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    ccfg, scfg = tls12(cert, session_tickets=False)
    s = connect(ccfg, scfg).session
    assert s.extended_master_secret
    patch_client_hello(monkeypatch, without_extensions(ExtensionType.EXTENDED_MASTER_SECRET))
    client = TLSConnection(replace(ccfg, require_extended_master_secret=False), session=s)
    # A server that would accept a full handshake without EMS: only the resumption rule
    # (not require_extended_master_secret) can refuse this hello.
    server = TLSConnection(replace(scfg, require_extended_master_secret=False))
    expect_alert12(server, client.data_to_send(), HandshakeFailure, match="RFC 7627",
                   check="resumed_ems_dropped")


def test_server_does_full_handshake_when_non_ems_session_offered_with_ems(
        cert: CertFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    ccfg, scfg = tls12(cert, session_tickets=False, require_extended_master_secret=False,
                       server={"require_extended_master_secret": False})
    with monkeypatch.context() as mp:
        patch_client_hello(mp, without_extensions(ExtensionType.EXTENDED_MASTER_SECRET))
        s = connect(ccfg, scfg).session
    assert not s.extended_master_secret
    second = connect(ccfg, scfg, session=s)
    assert not second.sinfo.resumed and second.sinfo.extended_master_secret
    assert "RFC 7627" in second.notes()


def test_client_aborts_when_server_drops_ems_on_resumption(cert: CertFiles) -> None:
    ccfg, scfg = tls12(cert, session_tickets=False)
    s = connect(ccfg, scfg).session
    sh = _resumed_server_hello(ccfg, scfg, s)
    no_ems = replace(sh, extensions=tuple(
        e for e in sh.extensions if e.extension_type != ExtensionType.EXTENDED_MASTER_SECRET))
    client = TLSConnection(replace(ccfg, require_extended_master_secret=False), session=s)
    client.data_to_send()
    expect_alert12(client, _record(no_ems), HandshakeFailure, match="RFC 7627",
                   check="resumed_ems_dropped")


def test_client_aborts_when_server_adds_ems_to_non_ems_session(cert: CertFiles) -> None:
    ccfg, scfg = tls12(cert, session_tickets=False)
    s = connect(ccfg, scfg).session
    sh = _resumed_server_hello(ccfg, scfg, s)
    client = TLSConnection(ccfg, session=replace(s, extended_master_secret=False))
    client.data_to_send()
    expect_alert12(client, _record(sh), HandshakeFailure, match="RFC 7627",
                   check="resumed_ems_added")


def _resumed_server_hello(ccfg: ClientConfig, scfg: ServerConfig, s: Session12
                          ) -> ServerHello:
    """What a resuming server answers, with its session ID echo fixed up for whichever
    client reads it next (clients with the same session send the same ID)."""
    client = TLSConnection(ccfg, session=s)
    server = TLSConnection(scfg)
    server.receive_data(client.data_to_send())
    server.events()
    flight = Flight12.parse(server.data_to_send())
    return ServerHello.parse_body(body_of(flight.get(HandshakeType.SERVER_HELLO)))


def _record(sh: ServerHello) -> bytes:
    return handshake_record(sh.serialize())


def test_client_rejects_resumption_with_another_suite(cert: CertFiles) -> None:
    ccfg, scfg = tls12(cert, session_tickets=False)
    s = connect(ccfg, scfg).session
    sh = _resumed_server_hello(ccfg, scfg, s)
    other = ECDHE_AES256 if s.cipher_suite != ECDHE_AES256 else ECDHE_AES128
    client = TLSConnection(ccfg, session=s)
    client.data_to_send()
    expect_alert12(client, _record(replace(sh, cipher_suite=other)), IllegalParameter,
                   match="resumed our session")


def test_client_rejects_echo_of_an_id_it_did_not_offer_a_session_for(
        cert: CertFiles) -> None:
    ccfg, scfg = tls12(cert, session_tickets=False)
    s = connect(ccfg, scfg).session
    sh = _resumed_server_hello(ccfg, scfg, s)
    # A TLS 1.3-capable client's random compat ID echoed: never offered a session.
    client = TLSConnection(replace(ccfg, max_version=ProtocolVersion.TLS13))
    hello = client.data_to_send()
    ch = ClientHello.parse_body(body_of(split_messages(
        Flight12.parse(hello).records[0].fragment)[0]))
    expect_alert12(client, _record(replace(sh, legacy_session_id_echo=ch.legacy_session_id)),
                   IllegalParameter, match="never offered")


# -- client certificates across resumption ---------------------------------------------
def test_client_certificate_carried_across_resumption(
        certs: dict[str, CertFiles], devca: DevCA, tmp_path: Path) -> None:
    files = certs["ecdsa-p256"]
    issued = devca.issue(("alice.example",), client=True).write(tmp_path, "alice")
    assert issued.chain_path and issued.key_path
    mine = CertifiedKey.from_files(issued.chain_path, issued.key_path)
    for tickets in (True, False):
        ccfg, scfg = tls12(files, session_tickets=tickets)
        ccfg = replace(ccfg, certificate=mine)
        scfg = replace(scfg, client_auth="require",
                       client_trust=TrustStore.from_pem_file(files.ca_path))
        first = connect(ccfg, scfg)
        assert first.sinfo.client_certificates and first.sinfo.client_certificate_verified
        second = connect(ccfg, scfg, session=first.session)
        assert second.sinfo.resumed
        assert second.sinfo.client_certificates == first.sinfo.client_certificates
        assert second.sinfo.client_certificate_verified


def test_session_without_client_certificate_not_resumed_when_now_required(
        certs: dict[str, CertFiles], devca: DevCA, tmp_path: Path) -> None:
    files = certs["ecdsa-p256"]
    issued = devca.issue(("alice.example",), client=True).write(tmp_path, "alice")
    assert issued.chain_path and issued.key_path
    ccfg, scfg = tls12(files)
    s = connect(ccfg, scfg).session
    ccfg = replace(ccfg, certificate=CertifiedKey.from_files(issued.chain_path,
                                                             issued.key_path))
    strict = replace(scfg, client_auth="require",
                     client_trust=TrustStore.from_pem_file(files.ca_path))
    second = connect(ccfg, strict, session=s)
    assert not second.sinfo.resumed and second.sinfo.client_certificate_verified
    assert "requires" in second.notes()


# -- messages where they do not belong -------------------------------------------------
def _nst(ticket: bytes = b"t" * 40) -> bytes:
    return handshake_message(HandshakeType.NEW_SESSION_TICKET,
                             (7200).to_bytes(4, "big") + len(ticket).to_bytes(2, "big")
                             + ticket)


@dataclass
class After:
    client: TLSConnection
    server: TLSConnection
    answer: bytes  # the server's next flight, not delivered
    keys: Keys12  # both sides' record keys, to open a protected alert


def _after_flight(ccfg: ClientConfig, scfg: ServerConfig, session: Session12 | None = None
                  ) -> After:
    """A client that has sent its Finished (or, resuming, nothing after its ClientHello)
    and the server's answer to it (not delivered)."""
    cspy = SecretSpy()
    client = TLSConnection(replace(ccfg, observer=cspy), session=session)
    server = TLSConnection(scfg)
    hello = client.data_to_send()
    server.receive_data(hello)
    server.events()
    first = server.data_to_send()
    ch = ClientHello.parse_body(body_of(split_messages(
        Flight12.parse(hello).records[0].fragment)[0]))
    sh = ServerHello.parse_body(body_of(Flight12.parse(first).get(
        HandshakeType.SERVER_HELLO)))
    info = suite_info(sh.cipher_suite)
    assert info is not None
    if session is not None:
        return After(client, server, first, Keys12(info, session.master_secret, ch.random,
                                                   sh.random))
    client.receive_data(first)
    client.events()
    server.receive_data(client.data_to_send())
    server.events()
    return After(client, server, server.data_to_send(),
                 Keys12(info, cspy.secrets["master_secret"], ch.random, sh.random))


def test_new_session_ticket_without_the_extension_is_unexpected(cert: CertFiles) -> None:
    ccfg, scfg = tls12(cert, session_tickets=False)
    a = _after_flight(ccfg, scfg)
    assert messages_from(a.answer) == []  # no ticket promised: CCS Finished
    expect_alert12(a.client, handshake_record(_nst()), UnexpectedMessage, a.keys)


def test_ccs_instead_of_promised_ticket_is_unexpected(cert: CertFiles) -> None:
    a = _after_flight(*tls12(cert))
    assert messages_from(a.answer) == [HandshakeType.NEW_SESSION_TICKET]
    ccs = next(r for r in Flight12.parse(a.answer).records
               if r.content_type == ContentType.CHANGE_CIPHER_SPEC)
    expect_alert12(a.client, ccs.to_bytes(), UnexpectedMessage, a.keys)


def test_finished_instead_of_promised_ticket_is_unexpected(cert: CertFiles) -> None:
    a = _after_flight(*tls12(cert))
    expect_alert12(a.client, handshake_record(handshake_message(HandshakeType.FINISHED,
                                                                bytes(12))),
                   UnexpectedMessage, a.keys)


def test_second_ticket_is_unexpected(cert: CertFiles) -> None:
    a = _after_flight(*tls12(cert))
    nst = Flight12.parse(a.answer).get(HandshakeType.NEW_SESSION_TICKET)
    expect_alert12(a.client, handshake_record(nst, nst), UnexpectedMessage, a.keys)


def test_resuming_client_rejects_certificate_and_misplaced_tickets(cert: CertFiles) -> None:
    ccfg, scfg = tls12(cert, session_tickets=False)
    s = connect(ccfg, scfg).session
    # A Certificate after a resuming ServerHello.
    a = _after_flight(ccfg, scfg, session=s)
    sh = Flight12.parse(a.answer).get(HandshakeType.SERVER_HELLO)
    expect_alert12(a.client, handshake_record(sh, handshake_message(
        HandshakeType.CERTIFICATE, bytes(3))), UnexpectedMessage, a.keys)
    # A NewSessionTicket that the ServerHello did not announce.
    a = _after_flight(ccfg, scfg, session=s)
    sh = Flight12.parse(a.answer).get(HandshakeType.SERVER_HELLO)
    expect_alert12(a.client, handshake_record(sh, _nst()), UnexpectedMessage, a.keys)


def test_resuming_client_expects_the_announced_ticket(cert: CertFiles) -> None:
    store = MemoryStore()
    ccfg, scfg = tls12(cert, server={"session_store": store})
    s = connect(ccfg, scfg).session
    store.rotate()  # the server will renew: SessionTicket in its ServerHello
    a = _after_flight(ccfg, scfg, session=s)
    flight = Flight12.parse(a.answer)
    assert [HandshakeType(m[0]) for m in flight.messages] == [
        HandshakeType.SERVER_HELLO, HandshakeType.NEW_SESSION_TICKET]
    sh = flight.get(HandshakeType.SERVER_HELLO)
    ccs = next(r for r in flight.records if r.content_type == ContentType.CHANGE_CIPHER_SPEC)
    expect_alert12(a.client, handshake_record(sh) + ccs.to_bytes(), UnexpectedMessage,
                   a.keys)


def test_new_session_ticket_instead_of_resumed_finished(cert: CertFiles) -> None:
    ccfg, scfg = tls12(cert, session_tickets=False)
    s = connect(ccfg, scfg).session
    # Client: after the server's ChangeCipherSpec, only its Finished.
    a = _after_flight(ccfg, scfg, session=s)
    sh = Flight12.parse(a.answer).get(HandshakeType.SERVER_HELLO)
    data = handshake_record(sh) + CCS + a.keys.channel(client=False).handshake(_nst())
    expect_alert12(a.client, data, UnexpectedMessage, a.keys)
    # Server: after the client's ChangeCipherSpec, only its Finished.
    a = _after_flight(ccfg, scfg, session=s)
    data = CCS + a.keys.channel(client=True).handshake(_nst())
    expect_alert12(a.server, data, UnexpectedMessage, a.keys)


def test_resumed_server_hello_does_not_acknowledge_sni(cert: CertFiles) -> None:
    ccfg, scfg = tls12(cert, session_tickets=False)
    s = connect(ccfg, scfg).session
    sh = _resumed_server_hello(ccfg, scfg, s)
    # RFC 6066 §3: no server_name in the ServerHello of a resumed session.
    assert ExtensionType.SERVER_NAME not in [e.extension_type for e in sh.extensions]
    assert sh.legacy_session_id_echo == s.session_id


def test_resuming_server_rejects_messages_other_than_ccs(cert: CertFiles) -> None:
    ccfg, scfg = tls12(cert, session_tickets=False)
    s = connect(ccfg, scfg).session
    for msg in (_nst(), handshake_message(HandshakeType.CLIENT_KEY_EXCHANGE, b"\x01\x04"),
                handshake_message(HandshakeType.CERTIFICATE, bytes(3))):
        a = _after_flight(ccfg, scfg, session=s)
        expect_alert12(a.server, handshake_record(msg), UnexpectedMessage, a.keys)


def test_full_handshake_server_rejects_new_session_ticket(cert: CertFiles) -> None:
    ccfg, scfg = tls12(cert)
    client = TLSConnection(ccfg)
    server = TLSConnection(scfg)
    server.receive_data(client.data_to_send())
    server.events()
    server.data_to_send()
    expect_alert12(server, handshake_record(_nst()), UnexpectedMessage)


# -- secrets stay out of repr ----------------------------------------------------------
def test_secrets_never_in_repr(cert: CertFiles) -> None:
    ccfg, scfg = tls12(cert)
    first = connect(ccfg, scfg)
    s = first.session
    texts = [repr(s), str(s), repr(first.cev), repr(first.client.info),
             repr(first.server.info)]
    for text in texts:
        assert s.master_secret.hex() not in text and repr(s.master_secret) not in text
        assert s.ticket.hex() not in text and repr(s.ticket) not in text


def test_tickets_seal_under_the_shared_store(cert: CertFiles) -> None:
    """Two servers sharing one store resume each other's tickets and IDs."""
    store = MemoryStore()
    ccfg, scfg = tls12(cert, server={"session_store": store})
    s = connect(ccfg, scfg).session
    other = replace(scfg, session_store=store, cipher_suites=scfg.cipher_suites)
    assert connect(ccfg, other, session=s).sinfo.resumed_with == "ticket"

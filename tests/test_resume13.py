"""TLS 1.3 resumption in memory: tickets, PSK binders, psk_ke, external PSKs and 0-RTT
(RFC 8446 §2.2, §2.3, §4.2.9-§4.2.11, §4.6.1, §8)."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest

from helpers import CertFiles
from pair import configs, pump
from tlsmith.codec.enums import NamedGroup, ProtocolVersion
from tlsmith.config import ClientConfig, ServerConfig
from tlsmith.connection import TLSConnection
from tlsmith.errors import CertificateRequired, DecryptError, UnexpectedMessage, UsageError
from tlsmith.events import ApplicationData, Event, HandshakeComplete, SessionTicketReceived
from tlsmith.session import ExternalPsk, Session13, session_from_pem
from tlsmith.stores import MemoryStore

pytestmark = pytest.mark.timeout(60)


class Clock:
    """A clock the test moves by hand (both sides share it)."""

    def __init__(self) -> None:
        self.t = time.time()

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def pair(certs: dict[str, CertFiles]) -> tuple[ClientConfig, ServerConfig, Clock]:
    clock = Clock()
    client, server = configs(certs["ecdsa-p256"], clock=clock,
                             server={"clock": clock, "max_early_data": 4096,
                                     "session_store": MemoryStore()})
    return client, server, clock


def connect(client_cfg: ClientConfig, server_cfg: ServerConfig, **kw: Any
            ) -> tuple[TLSConnection, TLSConnection, list[Event], list[Event]]:
    client = TLSConnection(client_cfg, **kw)
    server = TLSConnection(server_cfg)
    cev, sev = pump(client, server)
    return client, server, cev, sev


def sessions(events: list[Event]) -> list[Session13]:
    out = [e.session for e in events if isinstance(e, SessionTicketReceived)]
    assert all(isinstance(s, Session13) for s in out)
    return out  # type: ignore[return-value]


def data(events: list[Event]) -> list[ApplicationData]:
    return [e for e in events if isinstance(e, ApplicationData)]


def first_session(pair: tuple[ClientConfig, ServerConfig, Clock]) -> Session13:
    client_cfg, server_cfg, _ = pair
    client, _server, cev, _ = connect(client_cfg, server_cfg)
    assert client.info is not None and not client.info.resumed
    got = sessions(cev)
    assert len(got) == 2  # RFC 8446 §4.6.1; our default is two tickets
    assert got[0].ticket != got[1].ticket and got[0].psk != got[1].psk
    assert got[0].max_early_data == 4096
    return got[0]


def test_resume_with_a_ticket(pair: Any) -> None:
    session = first_session(pair)
    client_cfg, server_cfg, clock = pair
    clock.t += 30
    client, server, cev, sev = connect(client_cfg, server_cfg, session=session)
    assert client.info is not None and server.info is not None
    for info in (client.info, server.info):
        assert info.resumed and info.resumed_with == "psk_dhe_ke"
        assert info.group == NamedGroup.X25519
        assert info.signature_scheme is None  # no CertificateVerify when resuming
        assert info.early_data_accepted is None
    # The resumed connection still reports the server's chain from the session, and
    # gets fresh tickets of its own.
    assert client.info.peer_certificates == session.peer_certificates
    assert client.info.certificate_verified
    assert len(sessions(cev)) == 2
    client.send_data(b"ping")
    _, sev = pump(client, server)
    assert [d.data for d in data(sev)] == [b"ping"]


def test_psk_ke_when_both_allow_it(pair: Any) -> None:
    session = first_session(pair)
    client_cfg, server_cfg, _ = pair
    client, server, _, _ = connect(replace(client_cfg, offer_psk_ke=True),
                                   replace(server_cfg, allow_psk_ke=True), session=session)
    assert client.info is not None and server.info is not None
    assert client.info.resumed_with == server.info.resumed_with == "psk_ke"
    assert client.info.group is None
    # Without the server's consent, psk_dhe_ke (forward secrecy) is chosen.
    client, _, _, _ = connect(replace(client_cfg, offer_psk_ke=True), server_cfg,
                              session=session)
    assert client.info is not None and client.info.resumed_with == "psk_dhe_ke"


def test_early_data_accepted_once(pair: Any) -> None:
    session = first_session(pair)
    client_cfg, server_cfg, clock = pair
    clock.t += 2
    client, server, _cev, sev = connect(client_cfg, server_cfg, session=session,
                                       early_data=b"GET / HTTP/1.1\r\n\r\n")
    assert client.info is not None and server.info is not None
    assert client.info.early_data_accepted is True
    assert server.info.early_data_accepted is True
    assert [(d.data, d.early) for d in data(sev)] == [(b"GET / HTTP/1.1\r\n\r\n", True)]
    # The same ticket again: a replay. The early data is refused (and skipped), the
    # handshake completes, and the client sends the data again as ordinary data.
    client, server, _cev, sev = connect(client_cfg, server_cfg, session=session,
                                       early_data=b"GET / HTTP/1.1\r\n\r\n")
    assert client.info is not None and server.info is not None
    assert client.info.resumed and client.info.early_data_accepted is False
    assert server.info.early_data_accepted is False
    assert [(d.data, d.early) for d in data(sev)] == [(b"GET / HTTP/1.1\r\n\r\n", False)]


def test_early_data_rejected_by_a_server_that_never_accepts(pair: Any) -> None:
    session = first_session(pair)
    client_cfg, server_cfg, _ = pair
    client, _server, _, sev = connect(
        replace(client_cfg, resend_rejected_early_data=False),
        replace(server_cfg, max_early_data=0), session=session, early_data=b"x" * 3000)
    assert client.info is not None and client.info.early_data_accepted is False
    assert client.info.resumed
    assert data(sev) == []  # skipped, and not resent


def test_early_data_after_hello_retry_request_is_skipped(pair: Any) -> None:
    session = first_session(pair)
    client_cfg, server_cfg, _ = pair
    client, server, _, sev = connect(
        client_cfg, replace(server_cfg, groups=(NamedGroup.SECP256R1,)), session=session,
        early_data=b"early")
    assert client.info is not None and server.info is not None
    assert client.info.hello_retry_request and client.info.resumed
    assert client.info.early_data_accepted is False
    assert [(d.data, d.early) for d in data(sev)] == [(b"early", False)]


def test_early_data_beyond_the_limit_is_unexpected_message(pair: Any) -> None:
    session = first_session(pair)
    client_cfg, server_cfg, _ = pair
    big = replace(session, max_early_data=100_000)
    client = TLSConnection(client_cfg, session=big, early_data=b"z" * 10_000)
    server = TLSConnection(server_cfg)
    server.receive_data(client.data_to_send())
    with pytest.raises(UnexpectedMessage, match="max_early_data_size"):
        server.events()


def test_early_data_needs_a_ticket_that_allows_it(pair: Any) -> None:
    session = first_session(pair)
    client_cfg, _, _ = pair
    with pytest.raises(UsageError):
        TLSConnection(client_cfg, session=replace(session, max_early_data=0),
                      early_data=b"x")
    with pytest.raises(UsageError):
        TLSConnection(client_cfg, session=session, early_data=b"x" * 5000)
    with pytest.raises(UsageError):
        TLSConnection(client_cfg, early_data=b"x")


def test_a_stale_ticket_age_rejects_early_data_but_resumes(pair: Any) -> None:
    session = first_session(pair)
    client_cfg, server_cfg, _ = pair
    # The client believes the ticket is 100 s older than it is (RFC 8446 §8.3).
    skewed = replace(session, received_at=session.received_at - 100)
    client, _server, _, _sev = connect(client_cfg, server_cfg, session=skewed,
                                     early_data=b"hello")
    assert client.info is not None and client.info.resumed
    assert client.info.early_data_accepted is False


def test_altered_binder_is_decrypt_error(pair: Any) -> None:
    session = first_session(pair)
    client_cfg, server_cfg, _ = pair
    client = TLSConnection(client_cfg, session=session)
    hello = bytearray(client.data_to_send())
    hello[-1] ^= 1  # the last byte of the ClientHello is the last binder's
    server = TLSConnection(server_cfg)
    server.receive_data(bytes(hello))
    with pytest.raises(DecryptError, match="binder"):
        server.events()
    assert server.data_to_send()[-2:] == bytes((2, 51))  # fatal decrypt_error alert


@pytest.mark.parametrize("ticket", [b"\x00" * 100, b"short", "truncated", "flipped"],
                         ids=["zeros", "short", "truncated", "flipped"])
def test_a_ticket_that_is_not_ours_means_a_full_handshake(pair: Any, ticket: Any) -> None:
    session = first_session(pair)
    if ticket == "truncated":
        ticket = session.ticket[:-1]
    elif ticket == "flipped":
        ticket = session.ticket[:20] + bytes((session.ticket[20] ^ 1,)) + session.ticket[21:]
    client_cfg, server_cfg, _ = pair
    client, server, _, _ = connect(client_cfg, server_cfg,
                                   session=replace(session, ticket=ticket))
    assert client.info is not None and server.info is not None
    assert not client.info.resumed and not server.info.resumed
    assert client.info.certificate_verified


def test_ticket_key_rotation(pair: Any) -> None:
    client_cfg, server_cfg, _ = pair
    store = server_cfg.session_store
    assert isinstance(store, MemoryStore)
    session = first_session(pair)
    store.rotate(pair[2].t)
    client, _, cev, _ = connect(client_cfg, server_cfg, session=session)
    assert client.info is not None and client.info.resumed  # previous key: accepted
    renewed = sessions(cev)[0]
    store.rotate(pair[2].t)
    store.rotate(pair[2].t)
    client, _, _, _ = connect(client_cfg, server_cfg, session=session)
    assert client.info is not None and not client.info.resumed  # two keys ago: full
    store.rotate(pair[2].t)
    client, _, _, _ = connect(client_cfg, server_cfg, session=renewed)
    assert client.info is not None and not client.info.resumed


def test_expired_ticket_is_not_offered_nor_accepted(pair: Any) -> None:
    session = first_session(pair)
    client_cfg, server_cfg, clock = pair
    clock.t += server_cfg.ticket_lifetime + 1
    client, _, _, _ = connect(client_cfg, server_cfg, session=session)
    assert client.info is not None and not client.info.resumed
    # A client that does not check (its clock is behind) is refused by the server.
    client, _, _, _ = connect(replace(client_cfg, clock=lambda: session.received_at + 1),
                              server_cfg, session=session)
    assert client.info is not None and not client.info.resumed


def test_ticket_for_another_server_name_is_not_offered(pair: Any) -> None:
    session = first_session(pair)
    client_cfg, server_cfg, _ = pair
    client, _, _, _ = connect(replace(client_cfg, server_name="127.0.0.1",
                                      verify_certificates=False),
                              server_cfg, session=session)
    assert client.info is not None and not client.info.resumed
    # The server also refuses a ticket whose SNI differs (a client that does not check).
    forged = replace(session, server_name=None)
    client, _, _, _ = connect(replace(client_cfg, server_name="127.0.0.1",
                                      verify_certificates=False),
                              server_cfg, session=forged)
    assert client.info is not None and not client.info.resumed


def test_external_psk_both_sides(pair: Any) -> None:
    client_cfg, server_cfg, _ = pair
    psk = ExternalPsk(b"client-7", bytes(range(32)))
    client, server, _, _ = connect(replace(client_cfg, external_psks=(psk,)),
                                   replace(server_cfg, external_psks=(psk,)))
    assert client.info is not None and server.info is not None
    assert client.info.resumed_with == server.info.resumed_with == "external_psk"
    # A different key under the same identity: the binder fails.
    wrong = ExternalPsk(b"client-7", bytes(32))
    client = TLSConnection(replace(client_cfg, external_psks=(wrong,)))
    server = TLSConnection(replace(server_cfg, external_psks=(psk,)))
    server.receive_data(client.data_to_send())
    with pytest.raises(DecryptError):
        server.events()


def test_tls13_ticket_to_a_tls12_server_is_a_full_tls12_handshake(pair: Any) -> None:
    session = first_session(pair)
    client_cfg, server_cfg, _ = pair
    client, _, _, _ = connect(client_cfg, replace(server_cfg,
                                                  max_version=ProtocolVersion.TLS12),
                              session=session)
    assert client.info is not None and client.info.version == ProtocolVersion.TLS12
    assert not client.info.resumed


def test_tickets_count_and_none(pair: Any) -> None:
    client_cfg, server_cfg, _ = pair
    _, _, cev, _ = connect(client_cfg, replace(server_cfg, tickets=5))
    assert len(sessions(cev)) == 5
    _, _, cev, _ = connect(client_cfg, replace(server_cfg, tickets=0))
    assert sessions(cev) == []


def test_session_values_keep_secrets_out_of_repr_and_round_trip(pair: Any) -> None:
    session = first_session(pair)
    text = repr(session)
    assert session.psk.hex() not in text and session.ticket.hex() not in text
    again = session_from_pem(session.to_pem())
    assert again.received_at == pytest.approx(session.received_at, abs=0.001)
    assert replace(again, received_at=session.received_at) == session
    client_cfg, server_cfg, _ = pair
    client, _, _, _ = connect(client_cfg, server_cfg,
                              session=session_from_pem(session.to_pem()))
    assert client.info is not None and client.info.resumed


def test_handshake_complete_is_the_first_event(pair: Any) -> None:
    session = first_session(pair)
    client_cfg, server_cfg, _ = pair
    _, _, cev, sev = connect(client_cfg, server_cfg, session=session, early_data=b"e")
    assert isinstance(cev[0], HandshakeComplete)
    # Server: early data arrives before the handshake completes.
    assert isinstance(sev[0], ApplicationData) and sev[0].early
    assert isinstance(sev[1], HandshakeComplete)


def test_early_data_that_could_not_be_offered_is_sent_after_the_handshake(pair: Any
                                                                          ) -> None:
    session = first_session(pair)
    client_cfg, server_cfg, clock = pair
    clock.t += server_cfg.ticket_lifetime + 1  # the ticket expired: not offered at all
    client, _, _, sev = connect(client_cfg, server_cfg, session=session,
                                early_data=b"GET /")
    assert client.info is not None and not client.info.resumed
    assert client.info.early_data_accepted is False  # never a silent None
    assert [(d.data, d.early) for d in data(sev)] == [(b"GET /", False)]
    _, _, _, sev = connect(replace(client_cfg, resend_rejected_early_data=False), server_cfg,
                           session=session, early_data=b"GET /")
    assert data(sev) == []


def test_a_server_requiring_client_certificates_does_not_resume_without_one(
        pair: Any, certs: dict[str, CertFiles]) -> None:
    from tlsmith.x509.verify import TrustStore

    session = first_session(pair)  # made without a client certificate
    client_cfg, server_cfg, _ = pair
    strict = replace(server_cfg, client_auth="require",
                     client_trust=TrustStore.from_pem_file(certs["ecdsa-p256"].ca_path))
    client = TLSConnection(client_cfg, session=session)
    server = TLSConnection(strict)
    # Not resumed: a full handshake asks for the certificate the client does not have.
    with pytest.raises(CertificateRequired):
        pump(client, server)
    assert server.info is None


@pytest.mark.parametrize("grease", [False, True])
def test_bound_client_hello_bytes_are_its_serialization(pair: Any, monkeypatch: Any,
                                                        grease: bool) -> None:
    """psk13.bind returns the bound ClientHello with its bytes (the truncated hello and
    the binders): they must be exactly what serializing it gives, with a ticket and an
    external PSK, before and after a HelloRetryRequest."""
    from tlsmith.handshake import psk13

    session = first_session(pair)
    client_cfg, server_cfg, _ = pair
    psk = ExternalPsk(b"client-7", bytes(range(32)))
    real_bind = psk13.bind
    seen = []

    def bind(*args: Any) -> Any:
        hello, raw = real_bind(*args)
        assert raw == hello.serialize()
        seen.append(len(hello.extensions[-1].binders))  # type: ignore[attr-defined]
        return hello, raw

    monkeypatch.setattr(psk13, "bind", bind)
    client, _, _, _ = connect(
        replace(client_cfg, external_psks=(psk,), grease=grease),
        replace(server_cfg, groups=(NamedGroup.SECP256R1,), external_psks=(psk,)),
        session=session)
    assert client.info is not None and client.info.resumed
    assert client.info.hello_retry_request
    assert seen == [2, 2]


def test_bind_builds_the_hello_from_all_of_its_fields() -> None:
    """psk13.bind constructs the bound ClientHello field by field: these must be all."""
    import dataclasses

    from tlsmith.codec.messages import ClientHello

    assert [f.name for f in dataclasses.fields(ClientHello)] == [
        "legacy_version", "random", "legacy_session_id", "cipher_suites",
        "legacy_compression_methods", "extensions", "has_extensions_block"]

"""Hostile input against TLS 1.3 resumption, PSKs and 0-RTT, in memory (RFC 8446 §4.2.9-
§4.2.11, §4.5, §4.6.1, §8).

Each attack checks the typed exception, the alert on the wire (opened with the victim's
own write secret when it is protected) and that the connection is dead afterwards
(``mitm.expect_alert``). Tickets that are merely unusable (forged, truncated, from
another server, too old) are never errors: they mean a full handshake or rejected 0-RTT.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest

from helpers import CertFiles
from mitm import (
    CCS,
    Channel,
    Flight,
    Mitm,
    body_of,
    drop_extension,
    edit_server_hello,
    expect_alert,
    handshake_record,
    plaintext_record,
    replace_extension,
    server_first_flight,
    suite_of,
)
from pair import SecretSpy, configs, pump
from tlsmith.codec import extensions as ext
from tlsmith.codec.enums import (
    CipherSuite,
    ContentType,
    ExtensionType,
    HandshakeType,
    NamedGroup,
    ProtocolVersion,
    PskKeyExchangeMode,
)
from tlsmith.codec.messages import (
    Certificate,
    CertificateEntry,
    ClientHello,
    EncryptedExtensions,
    EndOfEarlyData,
    NewSessionTicket,
    ServerHello,
)
from tlsmith.config import ClientConfig, ServerConfig
from tlsmith.connection import TLSConnection
from tlsmith.crypto.suites import SuiteInfo, suite_info
from tlsmith.crypto.transcript import Transcript
from tlsmith.errors import (
    BadRecordMac,
    DecodeError,
    DecryptError,
    IllegalParameter,
    MissingExtension,
    ProtocolVersionError,
    UnexpectedMessage,
    UnsupportedExtension,
)
from tlsmith.events import ApplicationData, Event, SessionTicketReceived
from tlsmith.handshake import psk13
from tlsmith.session import ExternalPsk, Session13
from tlsmith.stores import MemoryStore
from tlsmith.tickets import ServerSessionState, seal_ticket

pytestmark = pytest.mark.timeout(60)

EARLY = b"GET /0rtt HTTP/1.1\r\n\r\n"


class Clock:
    def __init__(self) -> None:
        self.t = time.time()

    def __call__(self) -> float:
        return self.t


Setup = tuple[ClientConfig, ServerConfig, Session13]


@pytest.fixture
def setup(certs: dict[str, CertFiles]) -> Setup:
    """Configs sharing a clock and a store, and a ticket (early data allowed, 4096)."""
    clock = Clock()
    client, server = configs(certs["ecdsa-p256"], clock=clock,
                             server={"clock": clock, "max_early_data": 4096,
                                     "session_store": MemoryStore()})
    return client, server, ticket_from(client, server)


def ticket_from(client_cfg: ClientConfig, server_cfg: ServerConfig) -> Session13:
    client = TLSConnection(client_cfg)
    server = TLSConnection(server_cfg)
    cev, _ = pump(client, server)
    got = [e.session for e in cev if isinstance(e, SessionTicketReceived)
           and isinstance(e.session, Session13)]
    assert got, "no ticket"
    return got[0]


class PskMitm(Mitm):
    """``mitm.Mitm`` whose client resumes (``session=``, ``early_data=``)."""

    def __init__(self, client_cfg: ClientConfig, server_cfg: ServerConfig, **kw: Any
                 ) -> None:
        self.cspy, self.sspy = SecretSpy(), SecretSpy()
        self.client = TLSConnection(replace(client_cfg, observer=self.cspy), **kw)
        self.server = TLSConnection(replace(server_cfg, observer=self.sspy))
        self.client_first = Flight.parse(self.client.data_to_send())
        self.client_hello = self.client_first.plaintext_messages[0]


def parsed_hello(raw: bytes) -> ClientHello:
    return ClientHello.parse_body(body_of(raw))


def psk_of(hello: ClientHello) -> ext.PreSharedKeyClientHello:
    found = ext.find_extension(hello.extensions, ext.PreSharedKeyClientHello)
    assert found is not None
    return found


def rebind(hello: ClientHello, session: Session13, transcript: Transcript | None = None
           ) -> bytes:
    """``hello`` (one PSK identity: ``session``'s ticket) with a correct binder again."""
    offered = psk13.OfferedPsk(session.ticket, 0, session.psk, "sha256", external=False,
                               session=session)
    return psk13.bind(hello, (offered,), transcript or Transcript())[1]


def with_extensions(hello: ClientHello, extensions: tuple[ext.Extension, ...]) -> ClientHello:
    return replace(hello, extensions=extensions)


def early_records(flight: Flight) -> int:
    """How many protected (0-RTT) records followed the ClientHello."""
    return len(flight.protected)


def events_data(events: list[Event]) -> list[tuple[bytes, bool]]:
    return [(e.data, e.early) for e in events if isinstance(e, ApplicationData)]


def suite(name: CipherSuite) -> SuiteInfo:
    info = suite_info(name)
    assert info is not None
    return info


# == the server as the victim ===================================================================
def test_altered_binder_is_decrypt_error(setup: Setup) -> None:
    client_cfg, server_cfg, session = setup
    m = PskMitm(client_cfg, server_cfg, session=session)
    hello = parsed_hello(m.client_hello)
    psk = psk_of(hello)
    binder = bytearray(psk.binders[0])
    binder[0] ^= 0x80
    forged = with_extensions(hello, replace_extension(hello.extensions, replace(
        psk, binders=(bytes(binder),))))
    expect_alert(m.server, m.sspy, handshake_record(forged.serialize()), DecryptError,
                 protected=False, check="binder_mismatch")


@pytest.mark.parametrize(("binders", "error"), [
    ((b"\x01" * 31,), DecodeError),  # below PskBinderEntry<32..255>
    ((b"\x01" * 48,), DecryptError),  # well-formed, but not a SHA-256 HMAC: no match
    ((b"\x01" * 32, b"\x02" * 32), IllegalParameter),  # two binders, one identity
    ((), DecodeError),  # binders<33..2^16-1>: never empty
], ids=["short", "wrong-hash-length", "count-mismatch", "none"])
def test_malformed_binders(setup: Setup, binders: tuple[bytes, ...],
                           error: type[Exception]) -> None:
    client_cfg, server_cfg, session = setup
    m = PskMitm(client_cfg, server_cfg, session=session)
    hello = parsed_hello(m.client_hello)
    forged = with_extensions(hello, replace_extension(hello.extensions, replace(
        psk_of(hello), binders=binders)))
    expect_alert(m.server, m.sspy, handshake_record(forged.serialize()),
                 error, protected=False)  # type: ignore[arg-type]


def test_pre_shared_key_not_last_is_illegal_parameter(setup: Setup) -> None:
    client_cfg, server_cfg, session = setup
    m = PskMitm(client_cfg, server_cfg, session=session)
    hello = parsed_hello(m.client_hello)
    exts = hello.extensions
    assert exts[-1].extension_type == ExtensionType.PRE_SHARED_KEY
    moved = with_extensions(hello, (*exts[:-2], exts[-1], exts[-2]))
    # (The binder covers the reordered hello: it is the position that is refused.)
    expect_alert(m.server, m.sspy, handshake_record(moved.serialize()),
                 IllegalParameter, protected=False)


def test_pre_shared_key_without_psk_modes_is_missing_extension(setup: Setup) -> None:
    client_cfg, server_cfg, session = setup
    m = PskMitm(client_cfg, server_cfg, session=session)
    hello = parsed_hello(m.client_hello)
    stripped = with_extensions(hello, drop_extension(hello.extensions,
                                                     ExtensionType.PSK_KEY_EXCHANGE_MODES))
    raw = rebind(stripped, session)  # a valid binder: only the missing modes are wrong
    expect_alert(m.server, m.sspy, handshake_record(raw), MissingExtension, protected=False)


def test_psk_modes_with_nothing_the_server_takes_means_a_full_handshake(setup: Setup
                                                                         ) -> None:
    """Only psk_ke offered, to a server that does not allow it: no PSK, a full handshake
    (RFC 8446 §4.2.9), not an error."""
    client_cfg, server_cfg, session = setup
    m = PskMitm(client_cfg, server_cfg, session=session)
    hello = parsed_hello(m.client_hello)
    only_ke = with_extensions(hello, replace_extension(hello.extensions, ext.PskKeyExchangeModes(
        (PskKeyExchangeMode.PSK_KE,))))
    m.to_server(handshake_record(rebind(only_ke, session)))
    sh = ServerHello.parse_body(body_of(m.from_server().plaintext_messages[0]))
    assert ext.find_extension(sh.extensions, ext.PreSharedKeyServerHello) is None
    assert ext.find_extension(sh.extensions, ext.KeyShareServerHello) is not None


def test_early_data_beyond_max_early_data_size_when_accepted(setup: Setup) -> None:
    client_cfg, server_cfg, session = setup
    greedy = replace(session, max_early_data=100_000)  # the client ignores the limit
    m = PskMitm(client_cfg, server_cfg, session=greedy, early_data=b"z" * 5000)
    expect_alert(m.server, m.sspy, m.client_first.data, UnexpectedMessage, protected=True)


def test_early_data_beyond_the_skip_limit_when_rejected(setup: Setup) -> None:
    """RFC 8446 §4.2.10: a server that rejects 0-RTT skips undecryptable records only up
    to a limit; beyond it, unexpected_message (as for accepted data, §4.6.1)."""
    client_cfg, server_cfg, session = setup
    greedy = replace(session, max_early_data=100_000)
    m = PskMitm(client_cfg, replace(server_cfg, max_early_data=0), session=greedy,
                early_data=b"z" * 40_000)
    expect_alert(m.server, m.sspy, m.client_first.data, UnexpectedMessage, protected=True)


def test_end_of_early_data_without_accepted_0rtt_is_unexpected_message(setup: Setup
                                                                        ) -> None:
    client_cfg, server_cfg, session = setup
    m = PskMitm(client_cfg, server_cfg, session=session)  # no 0-RTT at all
    f = server_first_flight(m)
    chts = m.secret("client_handshake_traffic_secret")
    eoed = Channel(f.suite, chts).handshake(EndOfEarlyData().serialize())
    expect_alert(m.server, m.sspy, eoed, UnexpectedMessage, protected=True)


def test_end_of_early_data_after_rejected_0rtt_is_unexpected_message(setup: Setup) -> None:
    client_cfg, server_cfg, session = setup
    m = PskMitm(client_cfg, replace(server_cfg, max_early_data=0), session=session,
                early_data=EARLY)
    f = server_first_flight(m)
    assert m.server.info is None
    chts = m.secret("client_handshake_traffic_secret")
    eoed = Channel(f.suite, chts).handshake(EndOfEarlyData().serialize())
    expect_alert(m.server, m.sspy, eoed, UnexpectedMessage, protected=True)


def test_0rtt_data_under_the_early_key_after_end_of_early_data(setup: Setup) -> None:
    client_cfg, server_cfg, session = setup
    m = PskMitm(client_cfg, server_cfg, session=session, early_data=EARLY)
    assert events_data(m.to_server(m.client_first.data)) == [(EARLY, True)]
    n_early = early_records(m.client_first)
    m.to_client(m.from_server().data)
    assert m.client.info is not None and m.client.info.early_data_accepted
    second = m.from_client().protected
    eoed = plaintext_record(ContentType.APPLICATION_DATA, second[0].fragment)
    cets = m.secret("client_early_traffic_secret")
    more = Channel(suite(session.cipher_suite), cets, seq=n_early + 1).record(
        ContentType.APPLICATION_DATA, b"sneaked in after EndOfEarlyData")
    expect_alert(m.server, m.sspy, eoed + more, BadRecordMac, protected=True)


def test_end_of_early_data_and_finished_in_one_early_record(setup: Setup) -> None:
    """RFC 8446 §5.1: a key change (EndOfEarlyData -> handshake key) must fall on a
    record boundary; the client Finished in the same 0-RTT record is unexpected_message."""
    client_cfg, server_cfg, session = setup
    m = PskMitm(client_cfg, server_cfg, session=session, early_data=EARLY)
    m.to_server(m.client_first.data)
    n_early = early_records(m.client_first)
    m.to_client(m.from_server().data)
    second = m.from_client()
    info = suite(session.cipher_suite)
    # (the first protected record is EndOfEarlyData, under the early key: skip it)
    fin = next(p for _, p in Flight(second.data, second.protected[1:]).decrypt(
        info, m.secret("client_handshake_traffic_secret")))
    assert fin[0] == HandshakeType.FINISHED
    together = Channel(info, m.secret("client_early_traffic_secret"),
                       seq=n_early).handshake_together(EndOfEarlyData().serialize(), fin)
    expect_alert(m.server, m.sspy, together, UnexpectedMessage, protected=True)


def test_0rtt_records_without_the_early_data_extension_are_bad_record_mac(setup: Setup
                                                                          ) -> None:
    """Only a client that offered early_data may have records skipped (RFC 8446
    §4.2.10); otherwise a record the handshake key cannot open is bad_record_mac."""
    client_cfg, server_cfg, session = setup
    m = PskMitm(client_cfg, server_cfg, session=session, early_data=EARLY)
    hello = parsed_hello(m.client_hello)
    stripped = with_extensions(hello, drop_extension(hello.extensions,
                                                     ExtensionType.EARLY_DATA))
    rest = m.client_first.data[len(handshake_record(m.client_hello)):]
    assert early_records(m.client_first) >= 1
    expect_alert(m.server, m.sspy, handshake_record(rebind(stripped, session)) + rest,
                 BadRecordMac, protected=True)


def test_0rtt_beyond_the_skip_limit_after_hello_retry_request(setup: Setup) -> None:
    client_cfg, server_cfg, session = setup
    greedy = replace(session, max_early_data=100_000)
    m = PskMitm(client_cfg, replace(server_cfg, groups=(NamedGroup.SECP256R1,)),
                session=greedy, early_data=b"z" * 40_000)
    expect_alert(m.server, m.sspy, m.client_first.data, UnexpectedMessage,
                 protected=False)


def test_tls12_server_hello_after_0rtt_is_protocol_version(setup: Setup) -> None:
    """RFC 8446 §D.3: a client that sent 0-RTT data MUST fail on a TLS 1.2 ServerHello
    (its alert in the clear: the server has no early keys)."""
    client_cfg, server_cfg, session = setup
    m = PskMitm(client_cfg, replace(server_cfg, max_version=ProtocolVersion.TLS12),
                session=session, early_data=EARLY)
    m.to_server(handshake_record(m.client_hello))
    flight = m.from_server()
    sh = ServerHello.parse_body(body_of(flight.plaintext_messages[0]))
    assert sh.legacy_version == ProtocolVersion.TLS12
    expect_alert(m.client, m.cspy, flight.data, ProtocolVersionError, protected=False)


def test_early_data_accepted_with_the_second_identity(setup: Setup) -> None:
    """0-RTT is keyed to the first identity; a server that resumes with the second and
    says it read our early data is lying: illegal_parameter (RFC 8446 §4.2.10)."""
    client_cfg, server_cfg, session = setup
    epsk = ExternalPsk(b"device-42", bytes(range(32)))
    m = PskMitm(replace(client_cfg, external_psks=(epsk,)),
                replace(server_cfg, external_psks=(epsk,)),
                session=replace(session, ticket=b"y" * 80), early_data=EARLY)
    f = server_first_flight(m)
    sh = ServerHello.parse_body(body_of(f.server_hello))
    selected = ext.find_extension(sh.extensions, ext.PreSharedKeyServerHello)
    assert selected is not None and selected.selected_identity == 1
    ee = EncryptedExtensions.parse_body(body_of(f.get(HandshakeType.ENCRYPTED_EXTENSIONS)))
    forged = replace(ee, extensions=(*ee.extensions, ext.EarlyDataIndication()))
    expect_alert(m.client, m.cspy, _with_ee(m, f, forged), IllegalParameter)


def test_end_of_early_data_sent_to_a_client_is_unexpected_message(setup: Setup) -> None:
    m, f = resumed_flight(setup, early_data=EARLY)
    ee = EncryptedExtensions.parse_body(body_of(f.get(HandshakeType.ENCRYPTED_EXTENSIONS)))
    expect_alert(m.client, m.cspy, _with_ee(m, f, ee, EndOfEarlyData().serialize()),
                 UnexpectedMessage)


def test_early_data_in_the_second_client_hello_is_illegal_parameter(setup: Setup) -> None:
    client_cfg, server_cfg, session = setup
    m = PskMitm(client_cfg, replace(server_cfg, groups=(NamedGroup.SECP256R1,)),
                session=session, early_data=EARLY)
    m.to_server(m.client_first.data)
    hrr_flight = m.from_server()
    hrr = hrr_flight.plaintext_messages[0]
    assert ServerHello.parse_body(body_of(hrr)).is_hello_retry_request
    m.to_client(hrr_flight.data)
    ch2_raw = m.from_client().plaintext_messages[0]
    ch2 = parsed_hello(ch2_raw)
    assert ext.find_extension(ch2.extensions, ext.EarlyDataIndication) is None
    with_early = with_extensions(ch2, (*ch2.extensions[:-1], ext.EarlyDataIndication(),
                                       ch2.extensions[-1]))
    transcript = Transcript()
    transcript.update(m.client_hello)
    transcript.set_hash("sha256")
    transcript.restart_for_hello_retry_request()
    transcript.update(hrr)
    raw = rebind(with_early, session, transcript)  # binders cover message_hash + HRR
    expect_alert(m.server, m.sspy, handshake_record(raw), IllegalParameter,
                 protected=False)


def test_no_skipping_after_the_second_client_hello(setup: Setup) -> None:
    """After a HelloRetryRequest the server skips the client's 0-RTT records (RFC 8446
    §4.2.10), which all come before the second ClientHello; a record the handshake key
    cannot open after it is bad_record_mac, not more 'early data' to skip."""
    client_cfg, server_cfg, session = setup
    m = PskMitm(client_cfg, replace(server_cfg, groups=(NamedGroup.SECP256R1,)),
                session=session, early_data=EARLY)
    assert m.to_server(m.client_first.data) == []  # the early data: skipped
    m.to_client(m.from_server().data)
    m.to_server(m.from_client().data)  # the second ClientHello
    junk = plaintext_record(ContentType.APPLICATION_DATA, b"\x17" * 64)
    expect_alert(m.server, m.sspy, junk, BadRecordMac, protected=True)


def test_new_session_ticket_sent_to_a_server_is_unexpected_message(setup: Setup) -> None:
    client_cfg, server_cfg, _ = setup
    m = Mitm(client_cfg, server_cfg)
    m.to_server(m.client_first.data)
    pump(m.client, m.server)
    assert m.server.handshake_complete
    info = m.client.info
    assert info is not None
    nst = NewSessionTicket(3600, 1, b"\x00", b"ticket").serialize()
    record = Channel(suite(info.cipher_suite),
                     m.secret("client_application_traffic_secret_0")).handshake(nst)
    expect_alert(m.server, m.sspy, record, UnexpectedMessage, protected=True)


# -- tickets that are merely unusable: never an error -----------------------------------------
def _forged(session: Session13, how: str) -> Session13:
    t = session.ticket
    if how == "truncated":
        return replace(session, ticket=t[:-5])
    if how == "flipped":
        return replace(session, ticket=t[:-1] + bytes((t[-1] ^ 1,)))
    if how == "random":
        return replace(session, ticket=bytes(range(len(t) % 256)) or b"x")
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["truncated", "flipped", "random"])
def test_forged_ticket_with_0rtt_means_a_full_handshake(setup: Setup, how: str) -> None:
    client_cfg, server_cfg, session = setup
    client = TLSConnection(client_cfg, session=_forged(session, how), early_data=EARLY)
    server = TLSConnection(server_cfg)
    _, sev = pump(client, server)
    assert client.info is not None and server.info is not None
    assert not client.info.resumed and not server.info.resumed
    assert client.info.certificate_verified
    assert client.info.early_data_accepted is False
    assert server.info.early_data_accepted is False
    assert events_data(sev) == [(EARLY, False)]  # skipped, then resent as 1-RTT


@pytest.mark.parametrize("skew", [-60.0, 30.0, 3600.0])
def test_wrong_ticket_age_rejects_0rtt_but_resumes(setup: Setup, skew: float) -> None:
    """RFC 8446 §8.3: an obfuscated age far from the server's view rejects 0-RTT; the
    PSK itself is still good."""
    client_cfg, server_cfg, session = setup
    assert isinstance(server_cfg.clock, Clock)
    server_cfg.clock.t += 100  # both sides: the ticket is 100 s old
    skewed = replace(session, received_at=session.received_at - skew)
    client = TLSConnection(client_cfg, session=skewed, early_data=EARLY)
    server = TLSConnection(server_cfg)
    _, sev = pump(client, server)
    assert client.info is not None and server.info is not None
    assert client.info.resumed and server.info.resumed
    assert client.info.early_data_accepted is False
    assert events_data(sev) == [(EARLY, False)]


def test_forged_obfuscated_age_on_the_wire_rejects_0rtt(setup: Setup) -> None:
    """The age is covered by the binder, so the forger re-binds (it would need the PSK;
    this shows that the server's age check, not the binder, rejects 0-RTT)."""
    client_cfg, server_cfg, session = setup
    m = PskMitm(client_cfg, server_cfg, session=session, early_data=EARLY)
    hello = parsed_hello(m.client_hello)
    psk = psk_of(hello)
    ident = psk.identities[0]
    aged = replace(psk, identities=(replace(
        ident, obfuscated_ticket_age=(ident.obfuscated_ticket_age + 500_000) % 2**32),))
    raw = rebind(with_extensions(hello, replace_extension(hello.extensions, aged)), session)
    rest = m.client_first.data[len(handshake_record(m.client_hello)):]
    events = m.to_server(handshake_record(raw) + rest)
    assert events_data(events) == []  # the 0-RTT records are skipped
    flight = m.from_server()
    sh = ServerHello.parse_body(body_of(flight.plaintext_messages[0]))
    assert ext.find_extension(sh.extensions, ext.PreSharedKeyServerHello) is not None
    ee = flight.protected_messages(suite_of(flight.plaintext_messages[0]),
                                   m.secret("server_handshake_traffic_secret"))[0]
    assert ee[0] == HandshakeType.ENCRYPTED_EXTENSIONS
    parsed = EncryptedExtensions.parse_body(body_of(ee))
    assert ext.find_extension(parsed.extensions, ext.EarlyDataIndication) is None


def test_unknown_identity_with_a_garbage_binder_is_ignored(setup: Setup) -> None:
    """RFC 8446 §4.2.11: the server validates only the binder of the PSK it selects; an
    identity it does not recognise (and its binder) is skipped: a full handshake."""
    client_cfg, server_cfg, session = setup
    m = PskMitm(client_cfg, server_cfg, session=replace(session, ticket=b"not-a-ticket"))
    hello = parsed_hello(m.client_hello)
    psk = psk_of(hello)
    garbage = with_extensions(hello, replace_extension(hello.extensions, replace(
        psk, binders=(b"\xee" * 32,))))
    m.to_server(handshake_record(garbage.serialize()))
    flight = m.from_server()
    sh = ServerHello.parse_body(body_of(flight.plaintext_messages[0]))
    assert ext.find_extension(sh.extensions, ext.PreSharedKeyServerHello) is None


def test_a_bad_first_identity_does_not_hide_a_good_second_one(setup: Setup) -> None:
    """Identity 0 is not ours, identity 1 (an external PSK) is: the server resumes with
    1 and rejects the 0-RTT (only the first identity may carry it, RFC 8446 §4.2.10)."""
    client_cfg, server_cfg, session = setup
    epsk = ExternalPsk(b"device-42", bytes(range(32)))
    client = TLSConnection(replace(client_cfg, external_psks=(epsk,)),
                           session=replace(session, ticket=b"x" * 80), early_data=EARLY)
    server = TLSConnection(replace(server_cfg, external_psks=(epsk,)))
    _, sev = pump(client, server)
    assert client.info is not None and server.info is not None
    assert client.info.resumed_with == server.info.resumed_with == "external_psk"
    assert client.info.early_data_accepted is False
    assert events_data(sev) == [(EARLY, False)]


@pytest.mark.parametrize("why", ["other-store", "other-sni", "server-expired",
                                 "sha384-ticket", "tls12-ticket"])
def test_unusable_ticket_never_prevents_a_full_handshake(setup: Setup, why: str) -> None:
    client_cfg, server_cfg, session = setup
    if why == "other-store":
        server_cfg = replace(server_cfg, session_store=MemoryStore())
    elif why == "other-sni":
        # A client that does not check the SNI of its ticket (the server does).
        session = replace(session, server_name="elsewhere.example")
        client_cfg = replace(client_cfg, server_name="elsewhere.example",
                             verify_certificates=False)
    elif why == "server-expired":
        assert isinstance(server_cfg.clock, Clock)
        server_cfg.clock.t += server_cfg.ticket_lifetime + 10
        session = replace(session, received_at=server_cfg.clock.t - 5)  # client disagrees
    elif why == "sha384-ticket":
        session = ticket_from(replace(client_cfg, cipher_suites=(
            CipherSuite.TLS_AES_256_GCM_SHA384, CipherSuite.TLS_AES_128_GCM_SHA256)),
            replace(server_cfg, cipher_suites=(CipherSuite.TLS_AES_256_GCM_SHA384,)))
        server_cfg = replace(server_cfg, cipher_suites=(CipherSuite.TLS_AES_128_GCM_SHA256,))
    elif why == "tls12-ticket":
        # A TLS 1.2 session state sealed under the same store's ticket keys, carrying
        # the very PSK the client holds (so the binder verifies): the version mismatch
        # alone must keep the server from resuming with it.
        store = server_cfg.session_store
        state = ServerSessionState(ProtocolVersion.TLS12, session.cipher_suite, session.psk,
                                   issued_at=session.received_at, lifetime=3600,
                                   server_name="localhost")
        sealed = seal_ticket(store.ticket_keys(session.received_at), state, bytes(12))
        session = replace(session, ticket=sealed)
    client = TLSConnection(client_cfg, session=session)
    server = TLSConnection(server_cfg)
    pump(client, server)
    assert client.info is not None and server.info is not None, (client.state_name,
                                                                 server.state_name)
    assert not client.info.resumed and not server.info.resumed
    assert client.info.certificate_verified or why == "other-sni"


# == the client as the victim ===================================================================
def resumed_flight(setup: Setup, **kw: Any) -> tuple[PskMitm, Any]:
    client_cfg, server_cfg, session = setup
    m = PskMitm(client_cfg, server_cfg, session=session, **kw)
    return m, server_first_flight(m)


def test_server_selecting_an_identity_we_did_not_offer(setup: Setup) -> None:
    m, f = resumed_flight(setup)
    sh = ServerHello.parse_body(body_of(f.server_hello))
    forged = edit_server_hello(f.server_hello, extensions=replace_extension(
        sh.extensions, ext.PreSharedKeyServerHello(1)))
    expect_alert(m.client, m.cspy, handshake_record(forged), IllegalParameter,
                 protected=False, check="psk_index_not_offered")


def test_server_selecting_a_psk_of_another_hash(setup: Setup) -> None:
    """Our ticket is SHA-256 (AES-128-GCM); a ServerHello choosing AES-256-GCM-SHA384
    with it is illegal_parameter (RFC 8446 §4.2.11)."""
    m, f = resumed_flight(setup)
    assert suite_of(f.server_hello).hash_name == "sha256"
    forged = edit_server_hello(f.server_hello,
                               cipher_suite=CipherSuite.TLS_AES_256_GCM_SHA384)
    expect_alert(m.client, m.cspy, handshake_record(forged), IllegalParameter,
                 protected=False, check="psk_hash_mismatch")


def test_server_selecting_a_psk_when_we_offered_none(setup: Setup) -> None:
    client_cfg, server_cfg, _ = setup
    m = Mitm(client_cfg, server_cfg)
    f = server_first_flight(m)
    sh = ServerHello.parse_body(body_of(f.server_hello))
    forged = edit_server_hello(f.server_hello, extensions=(
        *sh.extensions, ext.PreSharedKeyServerHello(0)))
    # The generic "responses only to what was offered" check fires first; the client13
    # psk_not_offered check behind it is defence in depth.
    expect_alert(m.client, m.cspy, handshake_record(forged), UnsupportedExtension,
                 protected=False, check="extension_not_offered")


def test_psk_ke_without_our_offer_is_illegal_parameter(setup: Setup) -> None:
    """RFC 8446 §4.2.11: "Clients MUST verify ... that a server "key_share" extension is
    present if required by the ClientHello "psk_key_exchange_modes" extension. If these
    values are not consistent, the client MUST abort the handshake with an
    "illegal_parameter" alert." (Not missing_extension.)"""
    m, f = resumed_flight(setup)  # offer_psk_ke is off
    sh = ServerHello.parse_body(body_of(f.server_hello))
    forged = edit_server_hello(f.server_hello, extensions=drop_extension(
        sh.extensions, ExtensionType.KEY_SHARE))
    expect_alert(m.client, m.cspy, handshake_record(forged), IllegalParameter,
                 protected=False)


def test_neither_key_share_nor_pre_shared_key_is_missing_extension(setup: Setup) -> None:
    """Without a PSK the ServerHello's key_share is mandatory (RFC 8446 §9.2)."""
    client_cfg, server_cfg, _ = setup
    m = Mitm(replace(client_cfg, offer_psk_ke=True), server_cfg)
    f = server_first_flight(m)
    sh = ServerHello.parse_body(body_of(f.server_hello))
    forged = edit_server_hello(f.server_hello, extensions=drop_extension(
        sh.extensions, ExtensionType.KEY_SHARE))
    expect_alert(m.client, m.cspy, handshake_record(forged), MissingExtension,
                 protected=False)


def _with_ee(m: Mitm, f: Any, ee: EncryptedExtensions, *rest: bytes) -> bytes:
    shts = m.secret("server_handshake_traffic_secret")
    return (handshake_record(f.server_hello) + (CCS if f.ccs else b"")
            + Channel(f.suite, shts).handshake(ee.serialize(), *rest))


def test_early_data_in_encrypted_extensions_when_we_sent_none(setup: Setup) -> None:
    """RFC 8446 §4.2: an extension response the client never requested is an
    unsupported_extension."""
    m, f = resumed_flight(setup)
    ee = EncryptedExtensions.parse_body(body_of(f.get(HandshakeType.ENCRYPTED_EXTENSIONS)))
    forged = replace(ee, extensions=(*ee.extensions, ext.EarlyDataIndication()))
    expect_alert(m.client, m.cspy, _with_ee(m, f, forged), UnsupportedExtension,
                 protected=True)


def test_early_data_accepted_with_another_suite(setup: Setup) -> None:
    """Our 0-RTT went out under the ticket's AES-128-GCM; a server that picks
    CHACHA20-POLY1305 cannot have read it (RFC 8446 §4.2.10): illegal_parameter."""
    client_cfg, server_cfg, session = setup
    assert session.cipher_suite == CipherSuite.TLS_AES_128_GCM_SHA256
    m = PskMitm(client_cfg, replace(server_cfg, prefer_server_cipher_order=True,
                                    cipher_suites=(CipherSuite.TLS_CHACHA20_POLY1305_SHA256,
                                                   CipherSuite.TLS_AES_128_GCM_SHA256)),
                session=session, early_data=EARLY)
    f = server_first_flight(m)
    assert f.suite.suite == CipherSuite.TLS_CHACHA20_POLY1305_SHA256
    ee = EncryptedExtensions.parse_body(body_of(f.get(HandshakeType.ENCRYPTED_EXTENSIONS)))
    assert ext.find_extension(ee.extensions, ext.EarlyDataIndication) is None
    forged = replace(ee, extensions=(*ee.extensions, ext.EarlyDataIndication()))
    expect_alert(m.client, m.cspy, _with_ee(m, f, forged), IllegalParameter)


def test_certificate_in_a_psk_handshake_is_unexpected_message(
        setup: Setup, certs: dict[str, CertFiles]) -> None:
    m, f = resumed_flight(setup)
    ee = EncryptedExtensions.parse_body(body_of(f.get(HandshakeType.ENCRYPTED_EXTENSIONS)))
    der = server_der(certs["ecdsa-p256"])
    cert = Certificate(b"", (CertificateEntry(der, ()),)).serialize()
    expect_alert(m.client, m.cspy, _with_ee(m, f, ee, cert), UnexpectedMessage,
                 protected=True)


def server_der(cert: CertFiles) -> bytes:
    from tlsmith.config import CertifiedKey

    return CertifiedKey.from_files(cert.chain_path, cert.key_path).chain[0]


def _connected_without_tickets(setup: Setup) -> Mitm:
    client_cfg, server_cfg, _ = setup
    m = Mitm(client_cfg, replace(server_cfg, tickets=0))
    m.to_server(m.client_first.data)
    pump(m.client, m.server)
    assert m.client.handshake_complete
    return m


def _ticket_record(m: Mitm, lifetime: int) -> bytes:
    info = m.client.info
    assert info is not None
    nst = NewSessionTicket(lifetime, 7, b"\x01", b"opaque-ticket",
                           (ext.EarlyDataIndication(1024),)).serialize()
    return Channel(suite(info.cipher_suite),
                   m.secret("server_application_traffic_secret_0")).handshake(nst)


def test_new_session_ticket_lifetime_above_seven_days(setup: Setup) -> None:
    m = _connected_without_tickets(setup)
    expect_alert(m.client, m.cspy, _ticket_record(m, 604801), IllegalParameter,
                 protected=True)


def test_new_session_ticket_lifetime_of_exactly_seven_days(setup: Setup) -> None:
    m = _connected_without_tickets(setup)
    events = m.to_client(_ticket_record(m, 604800))
    (got,) = [e for e in events if isinstance(e, SessionTicketReceived)]
    assert got.lifetime == 604800 and got.max_early_data_size == 1024


@pytest.mark.parametrize(("server_suite", "expected"), [
    (CipherSuite.TLS_AES_128_GCM_SHA256, "external_psk"),
    (CipherSuite.TLS_AES_256_GCM_SHA384, "psk_dhe_ke"),
])
def test_binders_of_two_hashes_in_one_client_hello(setup: Setup, server_suite: CipherSuite,
                                                   expected: str) -> None:
    """A SHA-384 ticket (48-byte binder) and a SHA-256 external PSK (32-byte binder):
    each binder covers the same truncated ClientHello (RFC 8446 §4.2.11.2), and the
    server verifies the one of the PSK that fits its suite."""
    client_cfg, server_cfg, _ = setup
    epsk = ExternalPsk(b"device-7", bytes(range(40, 72)))
    both = (CipherSuite.TLS_AES_256_GCM_SHA384, CipherSuite.TLS_AES_128_GCM_SHA256)
    ticket384 = ticket_from(replace(client_cfg, cipher_suites=both),
                            replace(server_cfg, cipher_suites=(both[0],)))
    assert ticket384.cipher_suite == both[0]
    client = TLSConnection(replace(client_cfg, cipher_suites=both, external_psks=(epsk,)),
                           session=ticket384)
    hello = parsed_hello(Flight.parse(client.data_to_send()).plaintext_messages[0])
    assert [len(b) for b in psk_of(hello).binders] == [48, 32]
    client = TLSConnection(replace(client_cfg, cipher_suites=both, external_psks=(epsk,)),
                           session=ticket384)
    server = TLSConnection(replace(server_cfg, cipher_suites=(server_suite,),
                                   external_psks=(epsk,)))
    pump(client, server)
    assert client.info is not None and server.info is not None
    assert client.info.resumed_with == server.info.resumed_with == expected


@pytest.mark.parametrize("extra", [ext.PreSharedKeyServerHello(0), ext.EarlyDataIndication()],
                         ids=["pre_shared_key", "early_data"])
def test_psk_extensions_in_a_hello_retry_request(setup: Setup, extra: ext.Extension) -> None:
    """RFC 8446 §4.2: pre_shared_key and early_data are not HelloRetryRequest extensions:
    illegal_parameter."""
    client_cfg, server_cfg, session = setup
    m = PskMitm(client_cfg, replace(server_cfg, groups=(NamedGroup.SECP256R1,)),
                session=session, early_data=EARLY)
    m.to_server(m.client_first.data)
    hrr = m.from_server().plaintext_messages[0]
    sh = ServerHello.parse_body(body_of(hrr))
    assert sh.is_hello_retry_request
    forged = edit_server_hello(hrr, extensions=(*sh.extensions, extra))
    expect_alert(m.client, m.cspy, handshake_record(forged), IllegalParameter,
                 protected=False)


def test_pre_shared_key_in_encrypted_extensions(setup: Setup) -> None:
    m, f = resumed_flight(setup)
    ee = EncryptedExtensions.parse_body(body_of(f.get(HandshakeType.ENCRYPTED_EXTENSIONS)))
    forged = replace(ee, extensions=(*ee.extensions, ext.UnknownExtension(
        ExtensionType.PRE_SHARED_KEY, b"\x00\x00")))
    expect_alert(m.client, m.cspy, _with_ee(m, f, forged), IllegalParameter, protected=True)


def _raw_ticket_record(m: Mitm, body: bytes) -> bytes:
    info = m.client.info
    assert info is not None
    raw = bytes((HandshakeType.NEW_SESSION_TICKET,)) + len(body).to_bytes(3, "big") + body
    return Channel(suite(info.cipher_suite),
                   m.secret("server_application_traffic_secret_0")).handshake(raw)


_NST_HEAD = (3600).to_bytes(4, "big") + (7).to_bytes(4, "big") + b"\x01\x00"


@pytest.mark.parametrize(("body", "error"), [
    (_NST_HEAD + b"\x00\x00" + b"\x00\x00", DecodeError),  # ticket<1..2^16-1> empty
    (_NST_HEAD + b"\x00\x02tk" + b"\x00\x06" + b"\x00\x2a\x00\x02\x00\x00",
     DecodeError),  # early_data: uint32 max_early_data_size, not 2 bytes
    (_NST_HEAD + b"\x00\x02tk" + b"\x00\x10" + b"\x00\x2a\x00\x04\x00\x00\x04\x00" * 2,
     IllegalParameter),  # early_data twice
    (_NST_HEAD + b"\x00\x02tk" + b"\x00\x04" + b"\x00\x33\x00\x00",
     IllegalParameter),  # key_share is not a NewSessionTicket extension
], ids=["empty-ticket", "short-early-data", "duplicate-early-data", "key-share"])
def test_malformed_new_session_ticket(setup: Setup, body: bytes,
                                      error: type[Exception]) -> None:
    m = _connected_without_tickets(setup)
    expect_alert(m.client, m.cspy, _raw_ticket_record(m, body),
                 error, protected=True)  # type: ignore[arg-type]


def test_new_session_ticket_before_the_server_finished(setup: Setup) -> None:
    """RFC 8446 §4.6.1: a NewSessionTicket comes only after the handshake."""
    m, f = resumed_flight(setup)
    ee = EncryptedExtensions.parse_body(body_of(f.get(HandshakeType.ENCRYPTED_EXTENSIONS)))
    nst = NewSessionTicket(3600, 1, b"\x00", b"early-ticket").serialize()
    expect_alert(m.client, m.cspy, _with_ee(m, f, ee, nst), UnexpectedMessage,
                 protected=True)

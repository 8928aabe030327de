"""Every TLS 1.3 handshake state against every handshake message type, and the record
layer's rules about what may arrive when (RFC 8446 §4, §5).

Each test drives a real client/server pair to a state, then, standing in the middle
with the traffic secrets (tests/mitm.py), delivers a message the state does not accept
under the keys the peer would use at that moment. The answer must be
``UnexpectedMessage``, a fatal unexpected_message alert on the wire, and a dead
connection.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import pytest

from helpers import CertFiles
from mitm import (
    CCS,
    Channel,
    Mitm,
    ServerFirstFlight,
    alert,
    expect_alert,
    handshake_message,
    handshake_record,
    plaintext_record,
    run,
    server_first_flight,
)
from pair import SecretSpy, configs, pump
from tlsmith.codec.enums import (
    AlertDescription,
    AlertLevel,
    CertificateStatusType,
    CipherSuite,
    ContentType,
    ECCurveType,
    HandshakeType,
    KeyUpdateRequest,
    NamedGroup,
    SignatureScheme,
)
from tlsmith.codec.extensions import SignatureAlgorithms
from tlsmith.codec.messages import (
    CertificateRequest,
    CertificateStatus,
    ClientKeyExchangeECDHE,
    EndOfEarlyData,
    HelloRequest,
    KeyUpdate,
    NewSessionTicket,
    ServerHelloDone,
    ServerKeyExchangeECDHE,
)
from tlsmith.connection import TLSConnection
from tlsmith.crypto.suites import suite_info
from tlsmith.errors import UnexpectedMessage
from tlsmith.events import HandshakeComplete, KeyUpdated, SessionTicketReceived
from tlsmith.handshake import client, client13, common13, server, server13

H = HandshakeType
UNKNOWN_TYPE = H(99)  # no registered handshake type: still "not expected"
ALL_TYPES: tuple[HandshakeType, ...] = (*H, UNKNOWN_TYPE)

# What RFC 8446 allows next in each state, for this configuration (no PSK, no early
# data, no post-handshake auth, no certificate compression offered). Written out from
# the RFC (§2 Figure 1, §4.1.4, §4.3, §4.4, §4.6), not read from the code.
CLIENT_STATES: dict[str, frozenset[HandshakeType]] = {
    "ExpectServerHello": frozenset({H.SERVER_HELLO}),  # a HelloRetryRequest is one too
    "ExpectEncryptedExtensions": frozenset({H.ENCRYPTED_EXTENSIONS}),
    "ExpectCertificateOrRequest": frozenset({H.CERTIFICATE, H.CERTIFICATE_REQUEST}),
    "ExpectCertificate": frozenset({H.CERTIFICATE}),  # after a CertificateRequest
    "ExpectCertificateVerify": frozenset({H.CERTIFICATE_VERIFY}),
    "ExpectFinished": frozenset({H.FINISHED}),
    "Connected13": frozenset({H.NEW_SESSION_TICKET, H.KEY_UPDATE}),
}
SERVER_STATES: dict[str, frozenset[HandshakeType]] = {
    "ExpectClientHello": frozenset({H.CLIENT_HELLO}),
    "ExpectClientHelloAgain": frozenset({H.CLIENT_HELLO}),
    "ExpectClientFinished": frozenset({H.FINISHED}),
    "Connected13": frozenset({H.KEY_UPDATE}),
}


# -- getting a victim into a state --------------------------------------------------------
@dataclass
class Reached:
    """A victim in a known state, and how to talk to it as its peer would right now."""

    m: Mitm
    victim: TLSConnection
    spy: SecretSpy
    channel: Channel | None  # None: the victim still reads plaintext
    flight: ServerFirstFlight | None = None  # the server's genuine first flight, if any

    def records(self, *messages: bytes) -> bytes:
        """Each handshake message in its own record, under the peer's current keys."""
        if self.channel is None:
            return b"".join(handshake_record(msg) for msg in messages)
        return self.channel.handshake(*messages)

    def record(self, content_type: ContentType, payload: bytes) -> bytes:
        if self.channel is None:
            return plaintext_record(content_type, payload)
        return self.channel.record(content_type, payload)


def state_name(state: str) -> str:
    return state


def certificate_request() -> bytes:
    return CertificateRequest(
        b"", (SignatureAlgorithms((SignatureScheme.ECDSA_SECP256R1_SHA256,)),)).serialize()


def client_at(state: str, cert: CertFiles) -> Reached:
    m = Mitm(*configs(cert))
    if state == "ExpectServerHello":
        return Reached(m, m.client, m.cspy, None)
    f = server_first_flight(m)
    # No CCS: the client must not need one, and tests may want to send their own.
    assert m.to_client(handshake_record(f.server_hello)) == []
    channel = m.channel("server_handshake_traffic_secret", f.suite)
    ee, cert_msg, cv, fin = f.messages
    prefix = {
        "ExpectEncryptedExtensions": [],
        "ExpectCertificateOrRequest": [ee],
        "ExpectCertificate": [ee, certificate_request()],
        "ExpectCertificateVerify": [ee, cert_msg],
        "ExpectFinished": [ee, cert_msg, cv],
        "Connected13": [ee, cert_msg, cv, fin],
    }[state]
    events = m.to_client(channel.handshake(*prefix))
    if state == "Connected13":
        assert isinstance(events[0], HandshakeComplete)
        channel = m.channel("server_application_traffic_secret_0", f.suite)
    reached = Reached(m, m.client, m.cspy, channel, f)
    assert m.client.state_name == state_name(state)
    return reached


def server_at(state: str, cert: CertFiles) -> Reached:
    server_kw = {"groups": (NamedGroup.SECP384R1,)} if state == "ExpectClientHelloAgain" else {}
    m = Mitm(*configs(cert, server=server_kw))
    if state == "ExpectClientHello":
        return Reached(m, m.server, m.sspy, None)
    if state == "ExpectClientHelloAgain":
        m.to_server(m.client_first.data)
        m.from_server()  # the HelloRetryRequest
        reached = Reached(m, m.server, m.sspy, None)
    else:
        f = server_first_flight(m)
        channel = m.channel("client_handshake_traffic_secret", f.suite)
        if state == "Connected13":
            m.to_client(f.data)
            events = m.to_server(m.from_client().data)
            assert isinstance(events[0], HandshakeComplete)
            channel = m.channel("client_application_traffic_secret_0", f.suite)
        reached = Reached(m, m.server, m.sspy, channel, f)
    assert m.server.state_name == state
    return reached


def reach(role: str, state: str, certs: dict[str, CertFiles]) -> Reached:
    cert = certs["ecdsa-p256"]
    return client_at(state, cert) if role == "client" else server_at(state, cert)


# -- a syntactically valid message of every type -----------------------------------------
@pytest.fixture(scope="module")
def samples(certs: dict[str, CertFiles]) -> dict[HandshakeType, bytes]:
    """One well-formed message per handshake type; real ones from a handshake where
    there are real ones."""
    m = Mitm(*configs(certs["ecdsa-p256"]))
    f = server_first_flight(m)
    leaf = b"\x30\x03\x02\x01\x00"
    compressed = zlib.compress(leaf)
    url = b"http://example.invalid/c"
    url_and_hash = len(url).to_bytes(2, "big") + url + b"\x01" + bytes(20)
    supplemental = (1).to_bytes(2, "big") + (1).to_bytes(2, "big") + b"x"
    out = {
        H.HELLO_REQUEST: HelloRequest().serialize(),
        H.CLIENT_HELLO: m.client_hello,
        H.SERVER_HELLO: f.server_hello,
        # DTLS HelloVerifyRequest (RFC 6347 §4.2.1): server_version, cookie<0..2^8-1>
        H.HELLO_VERIFY_REQUEST: handshake_message(H.HELLO_VERIFY_REQUEST, b"\xfe\xfd\x01c"),
        H.NEW_SESSION_TICKET: NewSessionTicket(7200, 1, b"\x00", b"ticket").serialize(),
        H.END_OF_EARLY_DATA: EndOfEarlyData().serialize(),
        H.HELLO_RETRY_REQUEST: handshake_message(H.HELLO_RETRY_REQUEST, b""),
        H.ENCRYPTED_EXTENSIONS: f.get(H.ENCRYPTED_EXTENSIONS),
        H.CERTIFICATE: f.get(H.CERTIFICATE),
        H.SERVER_KEY_EXCHANGE: ServerKeyExchangeECDHE(
            ECCurveType.NAMED_CURVE, NamedGroup.X25519, bytes(range(1, 33)),
            SignatureScheme.ECDSA_SECP256R1_SHA256, b"\x30\x00").serialize(),
        H.CERTIFICATE_REQUEST: certificate_request(),
        H.SERVER_HELLO_DONE: ServerHelloDone().serialize(),
        H.CERTIFICATE_VERIFY: f.get(H.CERTIFICATE_VERIFY),
        H.CLIENT_KEY_EXCHANGE: ClientKeyExchangeECDHE(bytes(range(1, 33))).serialize(),
        H.FINISHED: f.get(H.FINISHED),
        # RFC 6066 §5: CertChainType type; URLAndHash url_and_hash_list<1..2^16-1>
        H.CERTIFICATE_URL: handshake_message(
            H.CERTIFICATE_URL, b"\x00" + len(url_and_hash).to_bytes(2, "big") + url_and_hash),
        H.CERTIFICATE_STATUS: CertificateStatus(CertificateStatusType.OCSP,
                                                b"\x30\x00").serialize(),
        H.NEXT_PROTOCOL: handshake_message(H.NEXT_PROTOCOL, b"\x02h2" + bytes(29)),
        # RFC 4680 §2: SupplementalDataEntry supp_data<1..2^24-1>
        H.SUPPLEMENTAL_DATA: handshake_message(
            H.SUPPLEMENTAL_DATA, len(supplemental).to_bytes(3, "big") + supplemental),
        H.KEY_UPDATE: KeyUpdate(KeyUpdateRequest.UPDATE_NOT_REQUESTED).serialize(),
        # RFC 8879 §4: algorithm, uncompressed_length, compressed_certificate_message
        H.COMPRESSED_CERTIFICATE: handshake_message(
            H.COMPRESSED_CERTIFICATE, b"\x00\x01" + len(leaf).to_bytes(3, "big")
            + len(compressed).to_bytes(3, "big") + compressed),
        H.MESSAGE_HASH: handshake_message(H.MESSAGE_HASH, bytes(32)),
        UNKNOWN_TYPE: handshake_message(UNKNOWN_TYPE, b"\x00"),
    }
    assert set(out) == set(ALL_TYPES)
    for msg_type, raw in out.items():
        assert raw[0] == msg_type
    return out


# -- the matrix ----------------------------------------------------------------------------
def _cases() -> list[pytest.param]:  # type: ignore[valid-type]
    cases = []
    for role, states in (("client", CLIENT_STATES), ("server", SERVER_STATES)):
        for state, allowed in states.items():
            for msg_type in ALL_TYPES:
                if msg_type not in allowed:
                    cases.append(pytest.param(role, state, msg_type,
                                              id=f"{role}-{state}-{msg_type.name}"))
    return cases


@pytest.mark.parametrize(("role", "state", "msg_type"), _cases())
def test_state_rejects_unexpected_message(certs: dict[str, CertFiles],
                                          samples: dict[HandshakeType, bytes],
                                          role: str, state: str,
                                          msg_type: HandshakeType) -> None:
    r = reach(role, state, certs)
    exc = expect_alert(r.victim, r.spy, r.records(samples[msg_type]), UnexpectedMessage)
    assert msg_type.name in str(exc)


def test_state_expects_match_the_rfc() -> None:
    """What each state class declares is exactly what RFC 8446 allows there."""
    declared_client = {
        "ExpectServerHello": client.ExpectServerHello.expects,
        "ExpectEncryptedExtensions": client13.ExpectEncryptedExtensions.expects,
        "ExpectCertificateOrRequest": client13.ExpectCertificateOrRequest.expects,
        "ExpectCertificate": client13.ExpectCertificate.expects,
        "ExpectCertificateVerify": client13.ExpectCertificateVerify.expects,
        "ExpectFinished": client13.ExpectFinished.expects,
    }
    for name, expects in declared_client.items():
        assert expects == CLIENT_STATES[name], name
    assert server.ExpectClientHello.expects == SERVER_STATES["ExpectClientHello"]
    assert server13.ExpectClientHelloAgain.expects == SERVER_STATES["ExpectClientHelloAgain"]
    assert server13.ExpectClientFinished.expects == SERVER_STATES["ExpectClientFinished"]
    for is_client, role in ((True, CLIENT_STATES), (False, SERVER_STATES)):
        connected = common13.Connected13(
            common13.TrafficSecrets(suite_info(CipherSuite.TLS_AES_128_GCM_SHA256),  # type: ignore[arg-type]
                                    read_secret=bytes(32), write_secret=bytes(32)),
            is_client=is_client, resumption_master_secret=bytes(32),
            exporter_master_secret=bytes(32))
        assert connected.expects == role["Connected13"], is_client


@pytest.mark.parametrize("role", ["client", "server"])
def test_connected_state_accepts_key_update(certs: dict[str, CertFiles], role: str) -> None:
    """Control: in Connected13 the injected records are under the right keys (so the
    unexpected_message answers above are about the message type, nothing else)."""
    r = reach(role, "Connected13", certs)
    assert r.channel is not None
    update = KeyUpdate(KeyUpdateRequest.UPDATE_NOT_REQUESTED).serialize()
    r.victim.receive_data(r.records(update))
    assert run(r.victim) == [KeyUpdated(update_requested=False)]


def test_client_connected_accepts_new_session_ticket(certs: dict[str, CertFiles]) -> None:
    r = reach("client", "Connected13", certs)
    ticket = NewSessionTicket(7200, 1, b"\x00", b"ticket").serialize()
    r.victim.receive_data(r.records(ticket))
    events = run(r.victim)
    assert len(events) == 1 and isinstance(events[0], SessionTicketReceived)


# -- application data, change_cipher_spec, record types ----------------------------------
PRE_HANDSHAKE = [
    ("client", "ExpectServerHello"),
    ("client", "ExpectEncryptedExtensions"),
    ("client", "ExpectCertificateVerify"),
    ("client", "ExpectFinished"),
    ("server", "ExpectClientHello"),
    ("server", "ExpectClientHelloAgain"),
    ("server", "ExpectClientFinished"),
]


@pytest.mark.parametrize(("role", "state"), PRE_HANDSHAKE, ids="-".join)
def test_application_data_before_handshake_completes(certs: dict[str, CertFiles], role: str,
                                                     state: str) -> None:
    """RFC 8446 §5.1/§2: application data only after the handshake (protected, under
    application keys); earlier it is unexpected_message."""
    r = reach(role, state, certs)
    expect_alert(r.victim, r.spy, r.record(ContentType.APPLICATION_DATA, b"too early"),
                 UnexpectedMessage)


CCS_STATES = [
    ("client", "ExpectServerHello"),
    ("client", "ExpectEncryptedExtensions"),
    ("client", "ExpectFinished"),
    ("server", "ExpectClientHelloAgain"),
    ("server", "ExpectClientFinished"),
]


@pytest.mark.parametrize("value", [b"\x00", b"\x02", b"\xff", b"\x01\x01", b""],
                         ids=lambda v: v.hex() or "empty")
@pytest.mark.parametrize(("role", "state"), CCS_STATES, ids="-".join)
def test_change_cipher_spec_other_than_0x01(certs: dict[str, CertFiles], role: str,
                                           state: str, value: bytes) -> None:
    """RFC 8446 §5: any change_cipher_spec value other than a single 0x01 byte is
    unexpected_message."""
    r = reach(role, state, certs)
    record = plaintext_record(ContentType.CHANGE_CIPHER_SPEC, value)
    expect_alert(r.victim, r.spy, record, UnexpectedMessage)


@pytest.mark.parametrize(("role", "state"), CCS_STATES, ids="-".join)
def test_change_cipher_spec_0x01_is_ignored_during_the_handshake(
        certs: dict[str, CertFiles], role: str, state: str) -> None:
    """Control: the compatibility CCS (RFC 8446 §5, §D.4) is dropped silently."""
    r = reach(role, state, certs)
    r.victim.receive_data(CCS)
    assert run(r.victim) == []
    assert r.victim.state_name == state_name(state)


@pytest.mark.parametrize("role", ["client", "server"])
def test_change_cipher_spec_after_the_handshake(certs: dict[str, CertFiles],
                                                role: str) -> None:
    """RFC 8446 §5: a CCS after the peer's Finished is an unexpected record type."""
    r = reach(role, "Connected13", certs)
    expect_alert(r.victim, r.spy, CCS, UnexpectedMessage)


def test_change_cipher_spec_before_the_client_hello(certs: dict[str, CertFiles]) -> None:
    """RFC 8446 §5: a CCS before the first ClientHello is an unexpected record type."""
    r = reach("server", "ExpectClientHello", certs)
    expect_alert(r.victim, r.spy, CCS, UnexpectedMessage)


def test_change_cipher_spec_flood(certs: dict[str, CertFiles]) -> None:
    """RFC 8446 §D.4 needs at most one compatibility CCS per flight; tlsmith drops a few
    and cuts a flood off with unexpected_message."""
    r = reach("client", "ExpectEncryptedExtensions", certs)
    r.victim.receive_data(CCS)
    assert run(r.victim) == []
    expect_alert(r.victim, r.spy, CCS * 16, UnexpectedMessage)


@pytest.mark.parametrize(("role", "state"), [("client", "ExpectEncryptedExtensions"),
                                             ("server", "ExpectClientFinished"),
                                             ("client", "Connected13")], ids="-".join)
def test_protected_change_cipher_spec(certs: dict[str, CertFiles], role: str,
                                      state: str) -> None:
    """RFC 8446 §5: a protected change_cipher_spec record is unexpected_message."""
    r = reach(role, state, certs)
    assert r.channel is not None
    record = r.channel.sealed_inner(b"\x01" + bytes((ContentType.CHANGE_CIPHER_SPEC,)))
    expect_alert(r.victim, r.spy, record, UnexpectedMessage)


def _split(raw: bytes, at: int) -> tuple[bytes, bytes]:
    return raw[:at], raw[at:]


@pytest.mark.parametrize("between", ["alert", "application_data", "change_cipher_spec"])
def test_fragmented_handshake_message_interleaved_protected(
        certs: dict[str, CertFiles], samples: dict[HandshakeType, bytes],
        between: str) -> None:
    """RFC 8446 §5.1: handshake messages MUST NOT be interleaved with other record types:
    a Certificate split over two records with another record between them."""
    r = reach("client", "ExpectCertificateOrRequest", certs)
    assert r.channel is not None
    first, second = _split(samples[H.CERTIFICATE], 100)
    data = r.channel.record(ContentType.HANDSHAKE, first)
    if between == "alert":
        data += r.channel.record(ContentType.ALERT,
                                 alert(AlertDescription.CLOSE_NOTIFY, AlertLevel.WARNING))
    elif between == "application_data":
        data += r.channel.record(ContentType.APPLICATION_DATA, b"data")
    else:
        data += CCS
    data += r.channel.record(ContentType.HANDSHAKE, second)
    expect_alert(r.victim, r.spy, data, UnexpectedMessage)


@pytest.mark.parametrize("between", ["alert", "application_data"])
def test_fragmented_client_hello_interleaved(certs: dict[str, CertFiles], between: str
                                             ) -> None:
    r = reach("server", "ExpectClientHello", certs)
    first, second = _split(r.m.client_hello, 60)
    middle = {
        "alert": plaintext_record(ContentType.ALERT,
                                  alert(AlertDescription.USER_CANCELED, AlertLevel.WARNING)),
        "application_data": plaintext_record(ContentType.APPLICATION_DATA, b"data"),
    }[between]
    data = (plaintext_record(ContentType.HANDSHAKE, first) + middle
            + plaintext_record(ContentType.HANDSHAKE, second))
    expect_alert(r.victim, r.spy, data, UnexpectedMessage)


@pytest.mark.parametrize(("role", "msg_type"), [("server", H.KEY_UPDATE),
                                                ("client", H.NEW_SESSION_TICKET)])
def test_fragmented_post_handshake_message_interleaved_with_data(
        certs: dict[str, CertFiles], samples: dict[HandshakeType, bytes], role: str,
        msg_type: HandshakeType) -> None:
    """Even where application data is allowed, not in the middle of a handshake message."""
    r = reach(role, "Connected13", certs)
    assert r.channel is not None
    first, second = _split(samples[msg_type], 3)
    data = (r.channel.record(ContentType.HANDSHAKE, first)
            + r.channel.record(ContentType.APPLICATION_DATA, b"data")
            + r.channel.record(ContentType.HANDSHAKE, second))
    expect_alert(r.victim, r.spy, data, UnexpectedMessage)


RECORD_STATES = [("server", "ExpectClientHello"), ("client", "ExpectServerHello"),
                 ("client", "ExpectEncryptedExtensions"), ("server", "ExpectClientFinished"),
                 ("client", "Connected13")]


@pytest.mark.parametrize("content_type", [0, 19, 24, 25, 99, 255])
@pytest.mark.parametrize(("role", "state"), RECORD_STATES, ids="-".join)
def test_unknown_record_content_type(certs: dict[str, CertFiles], role: str, state: str,
                                     content_type: int) -> None:
    """RFC 8446 §5: a record of an unexpected type is unexpected_message (24, heartbeat,
    is not negotiated)."""
    r = reach(role, state, certs)
    expect_alert(r.victim, r.spy, plaintext_record(content_type, b"\x01\x02\x03"),
                 UnexpectedMessage)


@pytest.mark.parametrize("inner_type", [0x00, 0x19, 0x20, 0xFF])
@pytest.mark.parametrize(("role", "state"), [("client", "ExpectEncryptedExtensions"),
                                             ("server", "ExpectClientFinished"),
                                             ("server", "Connected13")], ids="-".join)
def test_unknown_protected_content_type(certs: dict[str, CertFiles], role: str, state: str,
                                        inner_type: int) -> None:
    """RFC 8446 §5.2/§5.4: an unknown inner type, or an all-zero TLSInnerPlaintext (no
    type at all), is unexpected_message."""
    r = reach(role, state, certs)
    assert r.channel is not None
    inner = b"hello" + bytes((inner_type,)) if inner_type else bytes(8)
    expect_alert(r.victim, r.spy, r.channel.sealed_inner(inner), UnexpectedMessage)


@pytest.mark.parametrize(("role", "state"), [*RECORD_STATES, ("server", "Connected13")],
                         ids="-".join)
def test_zero_length_handshake_record(certs: dict[str, CertFiles], role: str,
                                      state: str) -> None:
    """RFC 8446 §5.1/§5.4: zero-length handshake fragments MUST NOT be sent; receiving
    one is unexpected_message (plaintext, or protected with only padding after it)."""
    r = reach(role, state, certs)
    if r.channel is None:
        record = plaintext_record(ContentType.HANDSHAKE, b"")
    else:
        record = r.channel.sealed_inner(bytes((ContentType.HANDSHAKE,)) + bytes(7))
    expect_alert(r.victim, r.spy, record, UnexpectedMessage)


# -- key changes on record boundaries (RFC 8446 §5.1) -------------------------------------
def test_client_server_hello_and_more_in_one_record(certs: dict[str, CertFiles],
                                                    samples: dict[HandshakeType, bytes]
                                                    ) -> None:
    """Handshake data after the ServerHello in the same record would cross the key
    change: unexpected_message."""
    m = Mitm(*configs(certs["ecdsa-p256"]))
    f = server_first_flight(m)
    record = handshake_record(f.server_hello, samples[H.ENCRYPTED_EXTENSIONS])
    expect_alert(m.client, m.cspy, record, UnexpectedMessage)


def test_server_client_hello_and_more_in_one_record(certs: dict[str, CertFiles],
                                                    samples: dict[HandshakeType, bytes]
                                                    ) -> None:
    r = reach("server", "ExpectClientHello", certs)
    record = handshake_record(r.m.client_hello, samples[H.FINISHED])
    expect_alert(r.victim, r.spy, record, UnexpectedMessage)


def test_client_server_finished_and_key_update_in_one_record(
        certs: dict[str, CertFiles], samples: dict[HandshakeType, bytes]) -> None:
    r = reach("client", "ExpectFinished", certs)
    assert r.channel is not None
    assert r.flight is not None
    fin = r.flight.get(H.FINISHED)
    record = r.channel.handshake_together(fin, samples[H.KEY_UPDATE])
    expect_alert(r.victim, r.spy, record, UnexpectedMessage)


def test_server_client_finished_and_key_update_in_one_record(
        certs: dict[str, CertFiles], samples: dict[HandshakeType, bytes]) -> None:
    m = Mitm(*configs(certs["ecdsa-p256"]))
    f = server_first_flight(m)
    m.to_client(f.data)
    client_flight = m.from_client()
    suite = f.suite
    opened = client_flight.protected_messages(suite, m.secret("client_handshake_traffic_secret"))
    assert [raw[0] for raw in opened] == [H.FINISHED]
    channel = m.channel("client_handshake_traffic_secret", suite)
    record = channel.handshake_together(opened[0], samples[H.KEY_UPDATE])
    expect_alert(m.server, m.sspy, record, UnexpectedMessage)


def test_key_update_and_more_in_one_record(certs: dict[str, CertFiles],
                                           samples: dict[HandshakeType, bytes]) -> None:
    r = reach("server", "Connected13", certs)
    assert r.channel is not None
    record = r.channel.handshake_together(samples[H.KEY_UPDATE], samples[H.KEY_UPDATE])
    expect_alert(r.victim, r.spy, record, UnexpectedMessage)


# -- after a fatal error nothing more comes out -----------------------------------------
def test_no_event_is_delivered_after_a_fatal_error(certs: dict[str, CertFiles],
                                                   samples: dict[HandshakeType, bytes]
                                                   ) -> None:
    """design.md §8 / RFC 8446 §6.2: after a fatal error the connection is dead. A
    valid NewSessionTicket followed, in the same record, by a ClientHello: the
    ClientHello is fatal, and the ticket event queued just before must not come out of
    next_event() afterwards."""
    r = reach("client", "Connected13", certs)
    assert r.channel is not None
    record = r.channel.handshake_together(
        NewSessionTicket(7200, 1, b"\x00", b"ticket").serialize(), samples[H.CLIENT_HELLO])
    expect_alert(r.victim, r.spy, record, UnexpectedMessage)


def test_offer_gives_every_field(certs: dict[str, CertFiles]) -> None:
    """negotiate.offer fills Offered's __dict__ itself (no __init__): every field of the
    dataclass, nothing else, as the constructor would."""
    from dataclasses import fields, replace

    from tlsmith.codec.enums import ProtocolVersion
    from tlsmith.codec.messages import ClientHello
    from tlsmith.handshake.negotiate import Offered, offer

    for version in (ProtocolVersion.TLS13, ProtocolVersion.TLS12):
        client_cfg, _ = configs(certs["ecdsa-p256"], max_version=version)
        raw = TLSConnection(client_cfg).data_to_send()
        offered = offer(ClientHello.parse_body(memoryview(raw)[9:]))
        assert set(vars(offered)) == {f.name for f in fields(Offered)}
        assert replace(offered) == offered
        assert offered.versions[0] == version


@pytest.mark.parametrize("resumed", [False, True])
def test_choose_gives_every_field(certs: dict[str, CertFiles], resumed: bool,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """server13.choose fills Choice's __dict__ itself (no __init__): every field of the
    dataclass, as the constructor would, whether it resumes or not."""
    from dataclasses import fields, replace

    from tlsmith.handshake import server13

    client_cfg, server_cfg = configs(certs["ecdsa-p256"])
    session = None
    if resumed:
        cev, _ = pump(TLSConnection(client_cfg), TLSConnection(server_cfg))
        session = next(e.session for e in cev if isinstance(e, SessionTicketReceived))
    seen: list[server13.Choice] = []
    original = server13.choose

    def spy(*args: Any, **kw: Any) -> server13.Choice:
        seen.append(original(*args, **kw))
        return seen[-1]

    monkeypatch.setattr(server13, "choose", spy)
    client = TLSConnection(client_cfg, session=session)
    server = TLSConnection(server_cfg)
    server.receive_data(client.data_to_send())
    server.events()
    assert len(seen) == 1
    choice = seen[0]
    assert set(vars(choice)) == {f.name for f in fields(server13.Choice)}
    assert replace(choice) == choice
    assert (choice.psk is not None) == resumed

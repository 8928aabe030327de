"""Every TLS 1.2 handshake state against every handshake message type, and where a
ChangeCipherSpec may come (RFC 5246 §7.1, §7.3, §7.4).

Each test drives a real TLS 1.2 client/server pair to a state, then, standing in the
middle with the master secret (tests/mitm12.py), delivers a message the state does not
accept, in the clear or under the keys the peer would use at that moment. The answer
must be ``UnexpectedMessage``, a fatal unexpected_message alert on the wire, and a dead
connection.

Note (RFC 5246 §7.4.1.1): a client "will ignore" a HelloRequest while negotiating; tlsmith
is stricter and answers unexpected_message there (as rustls does); after the handshake
it answers no_renegotiation (test_handshake12_memory.py).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest

from helpers import CertFiles
from mitm import handshake_message, plaintext_record
from mitm12 import CCS, Channel12, Mitm12, Session12, expect_alert12, handshake_record
from pair import configs
from tlsmith.codec.enums import (
    CertificateStatusType,
    ClientCertificateType,
    ContentType,
    HandshakeType,
    KeyUpdateRequest,
    ProtocolVersion,
    SignatureScheme,
)
from tlsmith.codec.messages import CertificateVerify, EncryptedExtensions, KeyUpdate
from tlsmith.codec.messages12 import (
    CertificateRequest12,
    CertificateStatus,
    HelloRequest,
    NewSessionTicket12,
    NextProtocol,
)
from tlsmith.config import ClientConfig, ServerConfig
from tlsmith.connection import TLSConnection
from tlsmith.errors import UnexpectedMessage
from tlsmith.events import HandshakeComplete
from tlsmith.handshake import client, client12, common12, server, server12

H = HandshakeType
TLS12 = ProtocolVersion.TLS12
UNKNOWN_TYPE = H(99)  # no registered handshake type: still "not expected"
ALL_TYPES: tuple[HandshakeType, ...] = (*H, UNKNOWN_TYPE)

# What RFC 5246 §7.3 (Figure 1) allows next in each state, for this configuration: full
# handshakes only (no session ids or tickets offered, so no abbreviated handshake and no
# NewSessionTicket), no status_request (no CertificateStatus), the server never asks for
# a client certificate (so no client Certificate / CertificateVerify), and
# renegotiation answered with no_renegotiation. Written from the RFC, not the code.
CLIENT_STATES: dict[str, frozenset[HandshakeType]] = {
    "ExpectServerHello": frozenset({H.SERVER_HELLO}),
    "ExpectCertificate": frozenset({H.CERTIFICATE}),  # §7.4.2: every suite here has one
    "ExpectServerKeyExchange": frozenset({H.SERVER_KEY_EXCHANGE}),  # ECDHE/DHE: §7.4.3
    "ExpectServerHelloDone": frozenset({H.CERTIFICATE_REQUEST, H.SERVER_HELLO_DONE}),
    "ExpectServerHelloDone+CR": frozenset({H.SERVER_HELLO_DONE}),  # one request only
    "AwaitChangeCipherSpec": frozenset(),  # §7.1: only the CCS record itself
    "ExpectFinished": frozenset({H.FINISHED}),  # §7.4.9: right after the CCS
    "Connected12": frozenset({H.HELLO_REQUEST}),  # §7.4.1.1 (answered: no_renegotiation)
}
SERVER_STATES: dict[str, frozenset[HandshakeType]] = {
    "ExpectClientKeyExchange": frozenset({H.CLIENT_KEY_EXCHANGE}),  # §7.4.7
    "AwaitChangeCipherSpec": frozenset(),  # no CertificateVerify without a client cert
    "ExpectFinished": frozenset({H.FINISHED}),
    "Connected12": frozenset({H.CLIENT_HELLO}),  # §7.4.1.2 (answered: no_renegotiation)
}


def state_name(state: str) -> str:
    return state.split("+")[0]


def configs12(cert: CertFiles, **kw: Any) -> tuple[ClientConfig, ServerConfig]:
    server_kw = {"max_version": TLS12, **kw.pop("server", {})}
    return configs(cert, max_version=TLS12, server=server_kw, **kw)


def certificate_request() -> bytes:
    return CertificateRequest12((ClientCertificateType.ECDSA_SIGN,),
                                (SignatureScheme.ECDSA_SECP256R1_SHA256,)).serialize()


# -- getting a victim into a state --------------------------------------------------------
@dataclass
class Reached:
    m: Mitm12
    victim: TLSConnection
    channel: Channel12 | None  # None: the victim still reads plaintext
    session: Session12 | None  # the keys, once any side has them

    def records(self, *messages: bytes) -> bytes:
        """Each handshake message in its own record, as the peer would send it now."""
        if self.channel is None:
            return b"".join(handshake_record(msg) for msg in messages)
        return self.channel.handshake(*messages)

    def record(self, content_type: ContentType, payload: bytes) -> bytes:
        if self.channel is None:
            return plaintext_record(content_type, payload)
        return self.channel.record(content_type, payload)


def client_at(state: str, cert: CertFiles) -> Reached:
    m = Mitm12(*configs12(cert))
    if state == "ExpectServerHello":
        return Reached(m, m.client, None, None)
    f = m.server_hello_flight()
    sh, crt, ske, shd = f.messages
    prefix = {
        "ExpectCertificate": [sh],
        "ExpectServerKeyExchange": [sh, crt],
        "ExpectServerHelloDone": [sh, crt, ske],
        "ExpectServerHelloDone+CR": [sh, crt, ske, certificate_request()],
    }.get(state, [sh, crt, ske, shd])
    assert m.to_client(b"".join(handshake_record(msg) for msg in prefix)) == []
    channel: Channel12 | None = None
    session: Session12 | None = None
    if state in ("AwaitChangeCipherSpec", "ExpectFinished", "Connected12"):
        session = m.session()
    if state == "ExpectFinished":
        assert m.to_client(CCS) == []
        channel = session.channel(client=False, seq=0)  # type: ignore[union-attr]
    elif state == "Connected12":
        m.to_server(m.client_flight().data)
        events = m.to_client(m.server.data_to_send())
        assert isinstance(events[0], HandshakeComplete)
        channel = session.channel(client=False, seq=1)  # type: ignore[union-attr]
    assert m.client.state_name == state_name(state)
    return Reached(m, m.client, channel, session)


def server_at(state: str, cert: CertFiles) -> Reached:
    m = Mitm12(*configs12(cert))
    if state == "ExpectClientHello":
        return Reached(m, m.server, None, None)
    f = m.server_hello_flight()
    if state == "ExpectClientKeyExchange":
        return Reached(m, m.server, None, None)
    m.to_client(f.data)
    cf = m.client_flight()
    assert m.to_server(cf.plaintext_data) == []  # the ClientKeyExchange
    session = m.session()
    channel: Channel12 | None = None
    if state == "ExpectFinished":
        assert m.to_server(CCS) == []
        channel = session.channel(client=True, seq=0)
    elif state == "Connected12":
        events = m.to_server(CCS + cf.protected_data)
        assert isinstance(events[0], HandshakeComplete)
        channel = session.channel(client=True, seq=1)
    assert m.server.state_name == state
    return Reached(m, m.server, channel, session)


def reach(role: str, state: str, certs: dict[str, CertFiles]) -> Reached:
    cert = certs["ecdsa-p256"]
    return client_at(state, cert) if role == "client" else server_at(state, cert)


# -- a syntactically valid message of every type -----------------------------------------
@pytest.fixture(scope="module")
def samples(certs: dict[str, CertFiles]) -> dict[HandshakeType, bytes]:
    """One well-formed message per handshake type; TLS 1.2 forms from a real TLS 1.2
    handshake where there are real ones."""
    m = Mitm12(*configs12(certs["ecdsa-p256"]))
    f = m.server_hello_flight()
    m.to_client(f.data)
    cf = m.client_flight()
    leaf = b"\x30\x03\x02\x01\x00"
    compressed = zlib.compress(leaf)
    url = b"http://example.invalid/c"
    url_and_hash = len(url).to_bytes(2, "big") + url + b"\x01" + bytes(20)
    supplemental = (1).to_bytes(2, "big") + (1).to_bytes(2, "big") + b"x"
    out = {
        H.HELLO_REQUEST: HelloRequest().serialize(),
        H.CLIENT_HELLO: m.client_hello,
        H.SERVER_HELLO: f.get(H.SERVER_HELLO),
        H.HELLO_VERIFY_REQUEST: handshake_message(H.HELLO_VERIFY_REQUEST, b"\xfe\xfd\x01c"),
        H.NEW_SESSION_TICKET: NewSessionTicket12(7200, b"ticket").serialize(),
        H.END_OF_EARLY_DATA: handshake_message(H.END_OF_EARLY_DATA, b""),
        H.HELLO_RETRY_REQUEST: handshake_message(H.HELLO_RETRY_REQUEST, b""),
        H.ENCRYPTED_EXTENSIONS: EncryptedExtensions(()).serialize(),
        H.CERTIFICATE: f.get(H.CERTIFICATE),
        H.SERVER_KEY_EXCHANGE: f.get(H.SERVER_KEY_EXCHANGE),
        H.CERTIFICATE_REQUEST: certificate_request(),
        H.SERVER_HELLO_DONE: f.get(H.SERVER_HELLO_DONE),
        H.CERTIFICATE_VERIFY: CertificateVerify(SignatureScheme.ECDSA_SECP256R1_SHA256,
                                                b"\x30\x00").serialize(),
        H.CLIENT_KEY_EXCHANGE: cf.get(H.CLIENT_KEY_EXCHANGE),
        H.FINISHED: handshake_message(H.FINISHED, bytes(12)),
        H.CERTIFICATE_URL: handshake_message(
            H.CERTIFICATE_URL, b"\x00" + len(url_and_hash).to_bytes(2, "big") + url_and_hash),
        H.CERTIFICATE_STATUS: CertificateStatus(CertificateStatusType.OCSP,
                                                b"\x30\x00").serialize(),
        H.NEXT_PROTOCOL: NextProtocol(b"h2").serialize(),
        H.SUPPLEMENTAL_DATA: handshake_message(
            H.SUPPLEMENTAL_DATA, len(supplemental).to_bytes(3, "big") + supplemental),
        H.KEY_UPDATE: KeyUpdate(KeyUpdateRequest.UPDATE_NOT_REQUESTED).serialize(),
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
def _cases() -> list[Any]:
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
    exc = expect_alert12(r.victim, r.records(samples[msg_type]), UnexpectedMessage,
                         r.session)
    assert msg_type.name in str(exc)


def test_state_expects_match_the_rfc() -> None:
    """What each state class declares is exactly the table above (RFC 5246 §7.3)."""
    assert client.ExpectServerHello.expects == CLIENT_STATES["ExpectServerHello"]
    assert client12.ExpectCertificate.expects == CLIENT_STATES["ExpectCertificate"]
    assert client12.ExpectServerKeyExchange.expects == CLIENT_STATES["ExpectServerKeyExchange"]
    assert client12.ExpectServerHelloDone.expects == CLIENT_STATES["ExpectServerHelloDone"]
    after_request = client12.ExpectServerHelloDone(
        SimpleNamespace(cert_requested=True), None)  # type: ignore[arg-type]
    assert after_request.expects == CLIENT_STATES["ExpectServerHelloDone+CR"]
    assert client12.ExpectFinished.expects == CLIENT_STATES["ExpectFinished"]
    assert server12.ExpectClientKeyExchange.expects == SERVER_STATES["ExpectClientKeyExchange"]
    assert server12.ExpectFinished.expects == SERVER_STATES["ExpectFinished"]
    assert server.ExpectClientHello.expects == frozenset({H.CLIENT_HELLO})
    ccs = common12.AwaitChangeCipherSpec(None, None)  # type: ignore[arg-type]
    assert ccs.expects == CLIENT_STATES["AwaitChangeCipherSpec"] == (
        SERVER_STATES["AwaitChangeCipherSpec"])
    for is_client, role in ((True, CLIENT_STATES), (False, SERVER_STATES)):
        connected: Any = common12.Connected12(None, is_client=is_client)  # type: ignore[arg-type]
        assert connected.expects == role["Connected12"], is_client


# -- ChangeCipherSpec ----------------------------------------------------------------------
CCS_TOO_EARLY_OR_LATE = [
    ("client", "ExpectCertificate"),
    ("client", "ExpectServerKeyExchange"),
    ("client", "ExpectServerHelloDone"),
    ("client", "ExpectServerHelloDone+CR"),
    ("client", "ExpectFinished"),  # a second one
    ("client", "Connected12"),
    ("server", "ExpectClientHello"),
    ("server", "ExpectClientKeyExchange"),  # before the ClientKeyExchange
    ("server", "ExpectFinished"),  # a second one
    ("server", "Connected12"),
]


@pytest.mark.parametrize(("role", "state"), CCS_TOO_EARLY_OR_LATE, ids="-".join)
def test_change_cipher_spec_in_the_wrong_place(certs: dict[str, CertFiles], role: str,
                                               state: str) -> None:
    """RFC 5246 §7.1/§7.3: a ChangeCipherSpec only right before the peer's Finished."""
    r = reach(role, state, certs)
    expect_alert12(r.victim, CCS, UnexpectedMessage, r.session)


@pytest.mark.parametrize(("role", "state"), [("client", "ExpectFinished"),
                                             ("client", "Connected12"),
                                             ("server", "ExpectFinished"),
                                             ("server", "Connected12")], ids="-".join)
def test_protected_change_cipher_spec(certs: dict[str, CertFiles], role: str,
                                      state: str) -> None:
    """After the switch a CCS record, even under the right keys, is unexpected."""
    r = reach(role, state, certs)
    assert r.channel is not None
    record = r.channel.record(ContentType.CHANGE_CIPHER_SPEC, b"\x01")
    expect_alert12(r.victim, record, UnexpectedMessage, r.session)


def test_tls12_only_client_refuses_ccs_before_server_hello(certs: dict[str, CertFiles]
                                                           ) -> None:
    """A client that offered only TLS 1.2 has no TLS 1.3 compatibility CCS to drop
    (RFC 8446 §5 applies to TLS 1.3): a CCS before the ServerHello is unexpected."""
    r = reach("client", "ExpectServerHello", certs)
    expect_alert12(r.victim, CCS, UnexpectedMessage)


def test_tls13_capable_client_drops_ccs_before_server_hello(certs: dict[str, CertFiles]
                                                            ) -> None:
    """Control: a client that offered TLS 1.3 drops it (RFC 8446 §5), and a TLS 1.2
    handshake can still follow."""
    m = Mitm12(*configs(certs["ecdsa-p256"], server={"max_version": TLS12}))
    f = m.server_hello_flight()
    assert m.to_client(CCS) == []
    assert m.to_client(f.data) == []
    m.to_server(m.client_flight().data)
    events = m.to_client(m.server.data_to_send())
    assert isinstance(events[0], HandshakeComplete)


@pytest.mark.parametrize("value", [b"\x00", b"\x02", b"\x01\x01", b""],
                         ids=lambda v: v.hex() or "empty")
@pytest.mark.parametrize("role", ["client", "server"])
def test_change_cipher_spec_other_than_0x01(certs: dict[str, CertFiles], role: str,
                                           value: bytes) -> None:
    """RFC 5246 §7.1: the ChangeCipherSpec message is a single byte of value 1."""
    r = reach(role, "AwaitChangeCipherSpec", certs)
    expect_alert12(r.victim, plaintext_record(ContentType.CHANGE_CIPHER_SPEC, value),
                   UnexpectedMessage, r.session)


@pytest.mark.parametrize("role", ["client", "server"])
def test_finished_before_change_cipher_spec(certs: dict[str, CertFiles], role: str,
                                            samples: dict[HandshakeType, bytes]) -> None:
    """RFC 5246 §7.1/§7.4.9: Finished comes after the CCS; a plaintext Finished in its
    place is unexpected."""
    r = reach(role, "AwaitChangeCipherSpec", certs)
    expect_alert12(r.victim, handshake_record(samples[H.FINISHED]), UnexpectedMessage,
                   r.session)


@pytest.mark.parametrize(("role", "state"), [("client", "ExpectServerHelloDone"),
                                             ("server", "ExpectClientKeyExchange")],
                         ids="-".join)
def test_change_cipher_spec_inside_a_fragmented_message(
        certs: dict[str, CertFiles], samples: dict[HandshakeType, bytes], role: str,
        state: str) -> None:
    r = reach(role, state, certs)
    msg = samples[H.SERVER_HELLO_DONE if role == "client" else H.CLIENT_KEY_EXCHANGE]
    data = handshake_record(msg[:2]) + CCS + handshake_record(msg[2:])
    expect_alert12(r.victim, data, UnexpectedMessage, r.session)


# -- application data before the handshake completes --------------------------------------
@pytest.mark.parametrize(("role", "state"), [
    ("client", "ExpectServerHello"), ("client", "ExpectCertificate"),
    ("client", "ExpectServerHelloDone"), ("client", "AwaitChangeCipherSpec"),
    ("client", "ExpectFinished"), ("server", "ExpectClientKeyExchange"),
    ("server", "AwaitChangeCipherSpec"), ("server", "ExpectFinished"),
], ids="-".join)
def test_application_data_before_finished(certs: dict[str, CertFiles], role: str,
                                          state: str) -> None:
    """RFC 5246 §7.3/§7.4.9: application data only after the peer's Finished."""
    r = reach(role, state, certs)
    expect_alert12(r.victim, r.record(ContentType.APPLICATION_DATA, b"too early"),
                   UnexpectedMessage, r.session)


@pytest.mark.parametrize("content_type", [0, 24, 99, 255])
@pytest.mark.parametrize(("role", "state"), [("client", "ExpectCertificate"),
                                             ("server", "ExpectClientKeyExchange"),
                                             ("client", "Connected12")], ids="-".join)
def test_unknown_record_content_type(certs: dict[str, CertFiles], role: str, state: str,
                                     content_type: int) -> None:
    """RFC 5246 §6: an unexpected record type is unexpected_message (heartbeat, 24, was
    never negotiated)."""
    r = reach(role, state, certs)
    expect_alert12(r.victim, plaintext_record(content_type, b"\x01\x02\x03"),
                   UnexpectedMessage, r.session)


def test_handshake12_but_is_replace() -> None:
    """Handshake12.but builds the copy field by field: these must be all the fields, and
    the copy what dataclasses.replace gives."""
    import dataclasses

    from tlsmith.handshake.client12 import Handshake12

    names = [f.name for f in dataclasses.fields(Handshake12)]
    assert names == [
        "hello", "server_random", "suite", "transcript", "ems", "etm", "alpn", "group",
        "server_public", "dh_params", "cert_requested", "cert_request", "status_requested",
        "ticket_expected", "session_id", "new_ticket", "ticket_lifetime", "psk_hint",
        "psk_identity", "next_protocol", "cert_types"]
    base = Handshake12(*[object() for _ in names])  # type: ignore[arg-type]
    changes: dict[str, object] = {
        "group": None, "server_public": b"p", "dh_params": (23, 5), "cert_requested": True,
        "cert_request": None, "psk_hint": b"h", "psk_identity": None, "new_ticket": b"t",
        "ticket_lifetime": 7}
    assert base.but() == base
    for name, value in changes.items():
        assert base.but(**{name: value}) == dataclasses.replace(base, **{name: value})  # type: ignore[arg-type]
    assert base.but(**changes) == dataclasses.replace(base, **changes)  # type: ignore[arg-type]

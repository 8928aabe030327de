"""The core's limits (tlsmith.config.Limits): floods that make no progress, KeyUpdates,
handshake fragments, ClientHello list sizes -- and the send path's error handling.

Each flood is the limit plus one record, fed to a real tlsmith client or server in
memory: the typed error names the limit, the RFC's alert is the victim's last record
(opened with the victim's own write secret, or by the real peer), and the connection is
dead afterwards. Nothing here is timed; the floods are small enough to be instant.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from helpers import CertFiles
from mitm import (
    Channel,
    Mitm,
    alert,
    assert_dead,
    body_of,
    edit_client_hello,
    expect_alert,
    handshake_message,
    plaintext_record,
    run,
)
from pair import SecretSpy, configs, handshake, pump
from tlsmith.codec import extensions as ext
from tlsmith.codec.enums import (
    AlertDescription,
    AlertLevel,
    CipherSuite,
    ContentType,
    ExtensionType,
    HandshakeType,
    KeyUpdateRequest,
    NamedGroup,
    ProtocolVersion,
)
from tlsmith.codec.messages import ClientHello, KeyUpdate
from tlsmith.config import ClientConfig, Limits, ServerConfig
from tlsmith.connection import TLSConnection
from tlsmith.crypto import schedule13
from tlsmith.crypto.suites import suite_info
from tlsmith.errors import (
    AlertReceived,
    ConnectionClosedError,
    IllegalParameter,
    InternalError,
    TLSError,
    UnexpectedMessage,
    UsageError,
)
from tlsmith.events import ApplicationData, KeyUpdated, WarningAlert
from tlsmith.handshake.server import CHECK_AFTER_PARSING_MAX
from tlsmith.record.framing import HandshakeReassembler
from tlsmith.record.protection import TLS13Encrypter

pytestmark = pytest.mark.timeout(60)

LIMITS = Limits()
AES128 = suite_info(CipherSuite.TLS_AES_128_GCM_SHA256)
assert AES128 is not None


def _cfgs(certs: dict[str, CertFiles], **kw: Any) -> tuple[ClientConfig, ServerConfig]:
    # TLS 1.3, one suite (known keys), no tickets (the server's write sequence is 0).
    server_kw = {"tickets": 0, "cipher_suites": (CipherSuite.TLS_AES_128_GCM_SHA256,),
                 **kw.pop("server", {})}
    return configs(certs["ecdsa-p256"], min_version=ProtocolVersion.TLS13, server=server_kw, **kw)


def connected(certs: dict[str, CertFiles], **kw: Any
              ) -> tuple[TLSConnection, TLSConnection, SecretSpy, SecretSpy]:
    client, server, cspy, sspy = handshake(*_cfgs(certs, **kw))
    assert client.handshake_complete and server.handshake_complete
    return client, server, cspy, sspy


def as_client(cspy: SecretSpy) -> Channel:
    """Protected records as the client writes them next (it sent none after Finished)."""
    assert AES128 is not None
    return Channel(AES128, cspy.secrets["client_application_traffic_secret_0"])


def as_server(sspy: SecretSpy) -> Channel:
    assert AES128 is not None
    return Channel(AES128, sspy.secrets["server_application_traffic_secret_0"])


def names_limit(exc: TLSError, name: str, value: int) -> None:
    assert f"Limits.{name}={value}" in str(exc), str(exc)


# -- records without progress -------------------------------------------------------------
@pytest.mark.parametrize("victim", ["server", "client"])
def test_empty_application_data_records_flood(certs: dict[str, CertFiles], victim: str
                                              ) -> None:
    client, server, cspy, sspy = connected(certs)
    limit = LIMITS.max_records_without_progress
    if victim == "server":
        ch, conn, spy = as_client(cspy), server, sspy
    else:
        ch, conn, spy = as_server(sspy), client, cspy
    # The limit itself is fine, and data resets the count.
    for _ in range(2):
        conn.receive_data(b"".join(ch.record(ContentType.APPLICATION_DATA, b"")
                                   for _ in range(limit)))
        assert run(conn) == []
        conn.receive_data(ch.record(ContentType.APPLICATION_DATA, b"x"))
        assert run(conn) == [ApplicationData(b"x")]
    flood = b"".join(ch.record(ContentType.APPLICATION_DATA, b"") for _ in range(limit + 1))
    exc = expect_alert(conn, spy, flood, UnexpectedMessage, protected=True)
    names_limit(exc, "max_records_without_progress", limit)
    assert "empty application_data" in str(exc)


def test_application_data_after_close_notify_is_not_delivered(certs: dict[str, CertFiles]
                                                               ) -> None:
    """Records after the peer's close_notify take the checked path (not the bulk path of
    next_event): no ApplicationData, and they count as records without progress."""
    client_cfg, server_cfg = _cfgs(certs)
    cspy = SecretSpy()
    client = TLSConnection(replace(client_cfg, observer=cspy))
    server = TLSConnection(server_cfg)  # (no observer: next_event's bulk path is on)
    pump(client, server)
    assert server.handshake_complete
    ch = as_client(cspy)
    server.receive_data(ch.record(ContentType.APPLICATION_DATA, b"before"))
    assert run(server) == [ApplicationData(b"before")]
    server.receive_data(ch.record(ContentType.ALERT, bytes((1, 0))))  # close_notify
    assert [type(e).__name__ for e in run(server)] == ["ConnectionClosed"]
    limit = LIMITS.max_records_without_progress
    server.receive_data(b"".join(ch.record(ContentType.APPLICATION_DATA, b"after")
                                 for _ in range(limit)))
    assert run(server) == []
    server.receive_data(ch.record(ContentType.APPLICATION_DATA, b"after"))
    with pytest.raises(UnexpectedMessage, match="max_records_without_progress"):
        run(server)


def test_warning_alert_flood_tls13(certs: dict[str, CertFiles]) -> None:
    """TLS 1.3: user_canceled is the one warning that is not fatal (RFC 8446 §6.1)."""
    _client, server, cspy, sspy = connected(certs)
    ch = as_client(cspy)
    limit = LIMITS.max_records_without_progress
    warning = alert(AlertDescription.USER_CANCELED, AlertLevel.WARNING)
    server.receive_data(b"".join(ch.record(ContentType.ALERT, warning) for _ in range(limit)))
    assert run(server) == [WarningAlert(AlertDescription.USER_CANCELED)] * limit
    exc = expect_alert(server, sspy, ch.record(ContentType.ALERT, warning),
                       UnexpectedMessage, protected=True)
    names_limit(exc, "max_records_without_progress", limit)
    assert "warning alerts" in str(exc)


def test_warning_alert_flood_before_the_hello(certs: dict[str, CertFiles]) -> None:
    """In clear, before any ClientHello: the flood is refused all the same."""
    _client_cfg, server_cfg = _cfgs(certs)
    spy = SecretSpy()
    server = TLSConnection(replace(server_cfg, observer=spy))
    warning = plaintext_record(ContentType.ALERT,
                               alert(AlertDescription.USER_CANCELED, AlertLevel.WARNING))
    exc = expect_alert(server, spy, warning * (LIMITS.max_records_without_progress + 1),
                       UnexpectedMessage, protected=False)
    names_limit(exc, "max_records_without_progress", LIMITS.max_records_without_progress)


def test_new_session_ticket_flood(certs: dict[str, CertFiles]) -> None:
    """Tickets move nothing forward: a client takes the limit's worth in a row."""
    client, _server, cspy, sspy = connected(certs, session_tickets=True)
    ch = as_server(sspy)
    limit = LIMITS.max_records_without_progress
    # RFC 8446 §4.6.1: lifetime, age_add, nonce<0..255>, ticket<1..2^16-1>, extensions.
    body = bytes(4) + bytes(4) + b"\x00" + b"\x00\x01T" + b"\x00\x00"
    ticket = bytes((4, 0, 0, len(body))) + body
    client.receive_data(b"".join(ch.record(ContentType.HANDSHAKE, ticket)
                                 for _ in range(limit)))
    assert len(run(client)) == limit  # SessionTicketReceived each
    exc = expect_alert(client, cspy, ch.record(ContentType.HANDSHAKE, ticket),
                       UnexpectedMessage, protected=True)
    names_limit(exc, "max_records_without_progress", limit)
    assert "NEW_SESSION_TICKET messages" in str(exc)


def test_limit_is_configurable(certs: dict[str, CertFiles]) -> None:
    limits = Limits(max_records_without_progress=3)
    _client, server, cspy, sspy = connected(certs, limits=limits,
                                           server={"limits": limits})
    ch = as_client(cspy)
    flood = b"".join(ch.record(ContentType.APPLICATION_DATA, b"") for _ in range(4))
    exc = expect_alert(server, sspy, flood, UnexpectedMessage)
    names_limit(exc, "max_records_without_progress", 3)


def test_limits_are_validated() -> None:
    with pytest.raises(UsageError, match="max_key_updates_without_data"):
        Limits(max_key_updates_without_data=0)


# -- KeyUpdate ----------------------------------------------------------------------------
def _key_updates(ch: Channel, n: int, request: KeyUpdateRequest
                 ) -> tuple[bytes, Channel]:
    """``n`` KeyUpdates, each under the key the one before it announced."""
    assert AES128 is not None
    out = []
    for _ in range(n):
        out.append(ch.record(ContentType.HANDSHAKE, KeyUpdate(request).serialize()))
        ch = Channel(AES128, schedule13.next_traffic_secret(AES128.hash_name, ch.secret))
    return b"".join(out), ch


def test_key_update_flood(certs: dict[str, CertFiles]) -> None:
    _client, server, cspy, sspy = connected(certs)
    limit = LIMITS.max_key_updates_without_data
    data, ch = _key_updates(as_client(cspy), limit, KeyUpdateRequest.UPDATE_NOT_REQUESTED)
    server.receive_data(data)
    assert run(server) == [KeyUpdated(update_requested=False)] * limit
    # Application data resets the count.
    server.receive_data(ch.record(ContentType.APPLICATION_DATA, b"hello"))
    assert run(server) == [ApplicationData(b"hello")]
    data, ch = _key_updates(ch, limit, KeyUpdateRequest.UPDATE_NOT_REQUESTED)
    server.receive_data(data)
    assert len(run(server)) == limit
    data, _ = _key_updates(ch, 1, KeyUpdateRequest.UPDATE_NOT_REQUESTED)
    exc = expect_alert(server, sspy, data, UnexpectedMessage, protected=True)
    names_limit(exc, "max_key_updates_without_data", limit)


def test_key_update_requests_flood_one_reply(certs: dict[str, CertFiles]) -> None:
    """33 update_requested in one flight: one reply (coalesced), then the limit; the
    real client opens both (the reply and the alert under the updated key)."""
    client, server, _cspy, _sspy = connected(certs)
    limit = LIMITS.max_key_updates_without_data
    for _ in range(limit + 1):
        client.key_update(request_peer=True)
    server.receive_data(client.data_to_send())
    with pytest.raises(UnexpectedMessage) as info:
        run(server)
    names_limit(info.value, "max_key_updates_without_data", limit)
    client.receive_data(server.data_to_send())
    with pytest.raises(AlertReceived) as received:
        run(client)
    assert received.value.description == AlertDescription.UNEXPECTED_MESSAGE
    assert_dead(server)


def test_key_update_requests_coalesced(certs: dict[str, CertFiles]) -> None:
    """RFC 8446 §4.6.3: two update_requested in one flight get one KeyUpdate back."""
    client, server, _cspy, _sspy = connected(certs)
    client.key_update(request_peer=True)
    client.key_update(request_peer=True)
    server.receive_data(client.data_to_send())
    assert run(server) == [KeyUpdated(update_requested=True)] * 2
    reply = server.data_to_send()
    records = []
    pos = 0
    while pos < len(reply):
        n = int.from_bytes(reply[pos + 3 : pos + 5], "big")
        records.append(reply[pos : pos + 5 + n])
        pos += 5 + n
    assert len(records) == 1, "one KeyUpdate answers both requests"
    client.receive_data(reply)
    assert run(client) == [KeyUpdated(update_requested=False)]
    # Both directions still work, under the new keys.
    client.send_data(b"ping")
    server.send_data(b"pong")
    cev, sev = pump(client, server)
    assert cev == [ApplicationData(b"pong")] and sev == [ApplicationData(b"ping")]
    # Once our reply went out, a new request gets a new reply.
    client.key_update(request_peer=True)
    server.receive_data(client.data_to_send())
    assert run(server) == [KeyUpdated(update_requested=True)]
    assert server.data_to_send() != b""


def test_key_update_requests_while_silent_one_reply_across_flushes(
    certs: dict[str, CertFiles],
) -> None:
    """RFC 8446 §4.6.3: update_requested KeyUpdates that arrive one by one, each
    flushed, while we send no application data get a single KeyUpdate in total (a
    flush is not data: BoGo's KeyUpdate burst tests)."""
    client, server, _cspy, _sspy = connected(certs)
    replies = []
    for _ in range(3):
        client.key_update(request_peer=True)
        server.receive_data(client.data_to_send())
        assert run(server) == [KeyUpdated(update_requested=True)]
        replies.append(server.data_to_send())
    assert replies[0] != b"" and replies[1:] == [b"", b""]
    client.receive_data(replies[0])
    assert run(client) == [KeyUpdated(update_requested=False)]
    server.send_data(b"pong")
    client.send_data(b"ping")
    cev, sev = pump(client, server)
    assert cev == [ApplicationData(b"pong")] and sev == [ApplicationData(b"ping")]
    # After our application data, a new request gets a new reply.
    client.key_update(request_peer=True)
    server.receive_data(client.data_to_send())
    assert run(server) == [KeyUpdated(update_requested=True)]
    assert server.data_to_send() != b""


def test_answers_to_our_requests_do_not_count(certs: dict[str, CertFiles]) -> None:
    """A server that keeps asking a silent client for new keys is not flooded by the
    answers (a long download: only the server sends data). RFC 8446 §4.6.3: the silent
    client answers once; after it sends data, it answers again."""
    client, server, _cspy, _sspy = connected(certs)
    for round_ in range(2):
        for i in range(LIMITS.max_key_updates_without_data + 5):
            server.key_update(request_peer=True)
            server.send_data(b"chunk")
            cev, sev = pump(client, server)
            assert ApplicationData(b"chunk") in cev
            assert sev == ([KeyUpdated(update_requested=False)] if i == 0 else [])
        if round_ == 0:
            client.send_data(b"ack")
            _, sev = pump(client, server)
            assert sev == [ApplicationData(b"ack")]


# -- handshake fragments ------------------------------------------------------------------
def test_client_hello_in_one_byte_records_refused(certs: dict[str, CertFiles]) -> None:
    """A 64 KiB ClientHello as 65,540 one-byte records: refused after 1025 records."""
    _client_cfg, server_cfg = _cfgs(certs)
    spy = SecretSpy()
    server = TLSConnection(replace(server_cfg, observer=spy))
    message = handshake_message(HandshakeType.CLIENT_HELLO, bytes(65536))
    allowed = -(-len(message) // 64)
    assert allowed == 1025
    flood = b"".join(plaintext_record(ContentType.HANDSHAKE, message[i : i + 1])
                     for i in range(allowed + 1))
    exc = expect_alert(server, spy, flood, UnexpectedMessage, protected=False)
    names_limit(exc, "max_handshake_fragments_per_message",
                LIMITS.max_handshake_fragments_per_message)


def test_real_hello_in_small_records_accepted(certs: dict[str, CertFiles]) -> None:
    """A genuine ClientHello cut into 64 records of any size, or into 64-byte records
    however many, still completes the handshake."""
    for size in (None, 64):
        client_cfg, server_cfg = _cfgs(certs)
        m = Mitm(client_cfg, server_cfg)
        hello = m.client_hello
        step = size or -(-len(hello) // 64)
        pieces = [hello[i : i + step] for i in range(0, len(hello), step)]
        assert len(pieces) <= max(64, -(-len(hello) // 64))
        m.to_server(b"".join(plaintext_record(ContentType.HANDSHAKE, p) for p in pieces))
        m.to_client(m.from_server().data)
        pump(m.client, m.server)
        assert m.client.handshake_complete and m.server.handshake_complete


def test_reassembler_fragment_budget() -> None:
    message = handshake_message(HandshakeType.CERTIFICATE, bytes(8192))  # 8196 bytes
    ok = HandshakeReassembler()
    for i in range(0, len(message), 64):  # 129 records: one per 64 bytes
        ok.feed(message[i : i + 64])
    assert ok.next_message() is not None
    small = HandshakeReassembler()
    with pytest.raises(UnexpectedMessage, match="max_handshake_fragments_per_message=64"):
        for i in range(0, len(message), 63):
            small.feed(message[i : i + 63])
    # Two messages in a record: the second one's count starts with that record.
    two = HandshakeReassembler(max_fragments=4)
    finished = handshake_message(HandshakeType.FINISHED, bytes(32))
    two.feed(finished + finished[:1])
    assert two.next_message() is not None
    for i in range(1, 4):
        two.feed(finished[i : i + 1])
    with pytest.raises(UnexpectedMessage):
        two.feed(finished[4:5])


# -- ClientHello lists ---------------------------------------------------------------------
def _hello_with(m: Mitm, **changes: Any) -> bytes:
    return plaintext_record(ContentType.HANDSHAKE, edit_client_hello(m.client_hello, **changes))


def _parsed(m: Mitm) -> ClientHello:
    return ClientHello.parse_body(body_of(m.client_hello))


# Suites: the default is the structural maximum (a legal 128 KiB hello is accepted,
# tests/test_rfc_rules.py); a server that wants fewer sets it.
HELLO_LIMITS = Limits(max_client_hello_cipher_suites=100)


# A hello up to CHECK_AFTER_PARSING_MAX bytes is bounded after parsing, a bigger one on
# its raw bytes before: this extension pushes one over.
_PADDING = ext.UnknownExtension(ExtensionType(0xFEFF), bytes(CHECK_AFTER_PARSING_MAX))


@pytest.mark.parametrize("padded", [False, True], ids=["parsed", "raw"])
@pytest.mark.parametrize("what", ["suites", "extensions", "groups", "key_shares"])
def test_client_hello_lists_bounded(certs: dict[str, CertFiles], what: str,
                                    padded: bool) -> None:
    m = Mitm(*_cfgs(certs, server={"limits": HELLO_LIMITS}))
    hello = _parsed(m)
    if padded:
        hello = replace(hello, extensions=(_PADDING, *hello.extensions))
    if what == "suites":
        n = HELLO_LIMITS.max_client_hello_cipher_suites + 1
        changes: dict[str, Any] = {"cipher_suites": tuple(
            CipherSuite(0x0A0A + i) for i in range(n - len(hello.cipher_suites))
        ) + tuple(hello.cipher_suites)}
        name = "max_client_hello_cipher_suites"
    elif what == "extensions":
        n = LIMITS.max_client_hello_extensions + 1
        extra = tuple(ext.UnknownExtension(ExtensionType(0xFE00 + i), b"")
                      for i in range(n - len(hello.extensions)))
        changes = {"extensions": extra + tuple(hello.extensions)}
        name = "max_client_hello_extensions"
    elif what == "groups":
        n = LIMITS.max_client_hello_groups + 1
        groups = (*tuple(NamedGroup(65024 + i) for i in range(n - 1)), NamedGroup.X25519)
        changes = {"extensions": tuple(
            ext.SupportedGroups(groups) if isinstance(e, ext.SupportedGroups) else e
            for e in hello.extensions)}
        name = "max_client_hello_groups"
    else:
        n = LIMITS.max_client_hello_key_shares + 1
        changes = {"extensions": tuple(
            ext.KeyShareClientHello(tuple(
                ext.KeyShareEntry(NamedGroup(0xFE00 + i), b"\x01") for i in range(n - 1)
            ) + tuple(e.client_shares)) if isinstance(e, ext.KeyShareClientHello) else e
            for e in hello.extensions)}
        name = "max_client_hello_key_shares"
    raw = replace(hello, **changes).serialize()
    assert (len(raw) - 4 > CHECK_AFTER_PARSING_MAX) == padded
    exc = expect_alert(m.server, m.sspy, plaintext_record(ContentType.HANDSHAKE, raw),
                       IllegalParameter, protected=False)
    names_limit(exc, name, getattr(HELLO_LIMITS, name))


def test_client_hello_limit_before_its_other_errors(certs: dict[str, CertFiles]) -> None:
    """A small hello is bounded after parsing, but its limit error still comes first:
    before a body that does not decode, and before an extension a ClientHello may not
    carry (what the check on the raw bytes, before parsing, gave)."""
    groups = tuple(NamedGroup(65024 + i) for i in range(LIMITS.max_client_hello_groups + 1))
    for bad in (ext.UnknownExtension(ExtensionType.SUPPORTED_VERSIONS, b"\x05"),
                ext.UnknownExtension(ExtensionType.OID_FILTERS, b"\x00\x00")):
        m = Mitm(*_cfgs(certs))
        hello = _parsed(m)
        exts = tuple(ext.SupportedGroups(groups) if isinstance(e, ext.SupportedGroups) else e
                     for e in hello.extensions if e.extension_type != bad.extension_type)
        raw = replace(hello, extensions=(bad, *exts)).serialize()
        assert len(raw) - 4 <= CHECK_AFTER_PARSING_MAX
        exc = expect_alert(m.server, m.sspy, plaintext_record(ContentType.HANDSHAKE, raw),
                           IllegalParameter, protected=False)
        names_limit(exc, "max_client_hello_groups", LIMITS.max_client_hello_groups)
        assert exc.__context__ is None


def test_second_client_hello_lists_bounded(certs: dict[str, CertFiles]) -> None:
    """The ClientHello after a HelloRetryRequest is bounded too."""
    m = Mitm(*_cfgs(certs, server={"groups": (NamedGroup.SECP384R1,)}))
    m.to_server(m.client_first.data)
    m.to_client(m.from_server().data)
    hello2 = ClientHello.parse_body(body_of(m.from_client().plaintext_messages[0]))
    assert m.server.state_name == "ExpectClientHelloAgain"
    extra = tuple(ext.UnknownExtension(ExtensionType(0xFE00 + i), b"") for i in range(
        LIMITS.max_client_hello_extensions + 1 - len(hello2.extensions)))
    raw = replace(hello2, extensions=extra + tuple(hello2.extensions)).serialize()
    exc = expect_alert(m.server, m.sspy, plaintext_record(ContentType.HANDSHAKE, raw),
                       IllegalParameter)
    names_limit(exc, "max_client_hello_extensions", LIMITS.max_client_hello_extensions)


def test_client_hello_at_the_limits_accepted(certs: dict[str, CertFiles]) -> None:
    m = Mitm(*_cfgs(certs, server={"limits": HELLO_LIMITS}))
    hello = _parsed(m)
    extra = tuple(ext.UnknownExtension(ExtensionType(0xFE00 + i), b"")
                  for i in range(LIMITS.max_client_hello_extensions - len(hello.extensions)))
    suites = tuple(CipherSuite(0x0A0A + i) for i in range(
        HELLO_LIMITS.max_client_hello_cipher_suites - len(hello.cipher_suites)))
    m.to_server(_hello_with(m, extensions=extra + tuple(hello.extensions),
                            cipher_suites=suites + tuple(hello.cipher_suites)))
    assert m.server.state_name != "ExpectClientHello"


# -- the send path -------------------------------------------------------------------------
def _break_protect(monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    """Application data cannot be protected; alerts still can."""
    original = TLS13Encrypter.protect

    def protect(self: TLS13Encrypter, content_type: ContentType, data: Any) -> bytes:
        if content_type == ContentType.APPLICATION_DATA:
            raise error
        return original(self, content_type, data)

    monkeypatch.setattr(TLS13Encrypter, "protect", protect)


@pytest.mark.parametrize("error, expected, alert_sent", [
    (InternalError("forced"), InternalError, AlertDescription.INTERNAL_ERROR),
    (UnexpectedMessage("forced"), UnexpectedMessage, AlertDescription.UNEXPECTED_MESSAGE),
    (RuntimeError("a bug"), InternalError, AlertDescription.INTERNAL_ERROR),
])
def test_send_data_error_becomes_alert(certs: dict[str, CertFiles],
                                       monkeypatch: pytest.MonkeyPatch, error: Exception,
                                       expected: type[TLSError],
                                       alert_sent: AlertDescription) -> None:
    client, server, _cspy, _sspy = connected(certs)
    _break_protect(monkeypatch, error)
    with pytest.raises(expected) as info:
        client.send_data(b"data")
    if isinstance(error, RuntimeError):
        assert info.value.__cause__ is error
    monkeypatch.undo()
    server.receive_data(client.data_to_send())
    with pytest.raises(AlertReceived) as received:
        run(server)
    assert received.value.description == alert_sent
    with pytest.raises(ConnectionClosedError):
        client.send_data(b"more")
    with pytest.raises(ConnectionClosedError):
        client.next_event()
    with pytest.raises(ConnectionClosedError):
        client.key_update()
    assert client.data_to_send() == b""


def test_key_update_error_becomes_alert(certs: dict[str, CertFiles],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    client, server, _cspy, _sspy = connected(certs)
    original = TLS13Encrypter.protect
    calls = []

    def protect(self: TLS13Encrypter, content_type: ContentType, data: Any) -> bytes:
        calls.append(content_type)
        if content_type == ContentType.HANDSHAKE:
            raise ValueError("broken")
        return original(self, content_type, data)

    monkeypatch.setattr(TLS13Encrypter, "protect", protect)
    with pytest.raises(InternalError):
        client.key_update()
    assert calls[-1] == ContentType.ALERT
    monkeypatch.undo()
    server.receive_data(client.data_to_send())
    with pytest.raises(AlertReceived) as received:
        run(server)
    assert received.value.description == AlertDescription.INTERNAL_ERROR
    assert_dead(client)


def test_usage_errors_do_not_kill(certs: dict[str, CertFiles]) -> None:
    """UsageError is the caller's mistake: nothing is sent, the connection lives on."""
    client_cfg, server_cfg = _cfgs(certs)
    client, server = TLSConnection(client_cfg), TLSConnection(server_cfg)
    with pytest.raises(UsageError):
        client.send_data(b"too early")
    with pytest.raises(UsageError):
        client.key_update()
    with pytest.raises(UsageError):
        client.request_client_certificate()
    pump(client, server)
    assert client.handshake_complete
    client.send_data(b"hi")
    assert pump(client, server)[1] == [ApplicationData(b"hi")]
    with pytest.raises(UsageError):
        server.request_client_certificate()  # the client did not offer post_handshake_auth
    server.send_data(b"still alive")
    assert pump(client, server)[0] == [ApplicationData(b"still alive")]
    client.close()
    with pytest.raises(UsageError):
        client.send_data(b"after close")


# -- TLS 1.2 ------------------------------------------------------------------------------
def _connected12(certs: dict[str, CertFiles], limits: Limits = LIMITS) -> Any:
    from mitm12 import Mitm12

    client_cfg, server_cfg = configs(certs["ecdsa-p256"], max_version=ProtocolVersion.TLS12,
                                     limits=limits,
                                     server={"max_version": ProtocolVersion.TLS12,
                                             "limits": limits})
    m = Mitm12(client_cfg, server_cfg)
    m.to_client(m.server_hello_flight().data)
    m.to_server(m.client.data_to_send())
    m.to_client(m.server.data_to_send())
    assert m.client.handshake_complete and m.server.handshake_complete
    return m


def test_tls12_warning_alert_flood(certs: dict[str, CertFiles]) -> None:
    """TLS 1.2 warnings are not fatal (RFC 5246 §7.2.2); a stream of them is a flood."""
    from mitm12 import expect_alert12

    m = _connected12(certs)
    session = m.session()
    ch = session.channel(client=True, seq=1)  # after the client's Finished
    limit = LIMITS.max_records_without_progress
    warning = alert(AlertDescription.USER_CANCELED, AlertLevel.WARNING)
    m.server.receive_data(b"".join(ch.record(ContentType.ALERT, warning)
                                   for _ in range(limit)))
    assert len(run(m.server)) == limit
    exc = expect_alert12(m.server, ch.record(ContentType.ALERT, warning), UnexpectedMessage,
                         session, protected=True)
    names_limit(exc, "max_records_without_progress", limit)


def test_tls12_hello_request_flood(certs: dict[str, CertFiles]) -> None:
    """Each HelloRequest is refused with a no_renegotiation warning: at most the limit
    (a small one here: the victim's alert follows its warnings, and the helper opens
    sequence numbers up to 16)."""
    from mitm12 import expect_alert12

    limit = 8
    m = _connected12(certs, Limits(max_records_without_progress=limit))
    session = m.session()
    ch = session.channel(client=False, seq=1)  # after the server's Finished
    hello_request = handshake_message(HandshakeType.HELLO_REQUEST, b"")
    flood = b"".join(ch.record(ContentType.HANDSHAKE, hello_request) for _ in range(limit + 1))
    exc = expect_alert12(m.client, flood, UnexpectedMessage, session, protected=True)
    names_limit(exc, "max_records_without_progress", limit)
    assert "HELLO_REQUEST" in str(exc)


def test_tls12_renegotiation_client_hello_flood(certs: dict[str, CertFiles]) -> None:
    """A server refuses renegotiation with a no_renegotiation warning: at most the limit."""
    from mitm12 import expect_alert12

    limit = 8
    m = _connected12(certs, Limits(max_records_without_progress=limit))
    session = m.session()
    ch = session.channel(client=True, seq=1)  # after the client's Finished
    flood = b"".join(ch.record(ContentType.HANDSHAKE, m.client_hello)
                     for _ in range(limit + 1))
    exc = expect_alert12(m.server, flood, UnexpectedMessage, session, protected=True)
    names_limit(exc, "max_records_without_progress", limit)
    assert "CLIENT_HELLO" in str(exc)


def test_tls12_renegotiation_client_hello_lists_bounded(certs: dict[str, CertFiles]) -> None:
    """A ClientHello after the handshake (refused renegotiation), small as it is, is
    bounded on its raw bytes before anything else: illegal_parameter, not the warning."""
    from mitm12 import expect_alert12

    m = _connected12(certs, LIMITS)
    session = m.session()
    ch = session.channel(client=True, seq=1)  # after the client's Finished
    hello = ClientHello.parse_body(body_of(m.client_hello))
    extra = tuple(ext.UnknownExtension(ExtensionType(0xFE00 + i), b"") for i in range(
        LIMITS.max_client_hello_extensions + 1 - len(hello.extensions)))
    raw = replace(hello, extensions=extra + tuple(hello.extensions)).serialize()
    assert len(raw) - 4 <= CHECK_AFTER_PARSING_MAX
    exc = expect_alert12(m.server, ch.record(ContentType.HANDSHAKE, raw), IllegalParameter,
                         session, protected=True)
    names_limit(exc, "max_client_hello_extensions", LIMITS.max_client_hello_extensions)

"""A key-aware man in the middle for TLS 1.3 handshake tests.

The test runs a real tlsmith client and server in memory, each with a ``SecretSpy``
observer, so it knows every traffic secret. It then stands between them:

* ``Flight.parse`` cuts what one side wrote into records; ``Flight.decrypt`` opens the
  protected ones with the sender's secret and splits them into handshake messages;
* ``Channel`` protects chosen messages (changed, reordered, substituted) into records
  the way the sender would, under the right key with the sequence numbers continuing;
* ``expect_alert`` feeds the victim, checks the typed error it raises, finds the alert
  it wrote (decrypting it with the victim's own write secret if it is protected) and
  checks that the connection stays dead.

Nothing here reaches into the connection's private state.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import pytest

from pair import SecretSpy
from tlsmith.codec.enums import (
    AlertDescription,
    AlertLevel,
    CipherSuite,
    ContentType,
    HandshakeType,
    SignatureScheme,
)
from tlsmith.codec.extensions import Extension
from tlsmith.codec.messages import ClientHello, Finished, ServerHello
from tlsmith.config import ClientConfig, ServerConfig
from tlsmith.connection import TLSConnection
from tlsmith.crypto import schedule13, sig
from tlsmith.crypto.suites import SuiteInfo, suite_info
from tlsmith.errors import AlertReceived, ConnectionClosedError, ProtocolError, TLSError
from tlsmith.events import NEED_DATA, Event
from tlsmith.record.framing import Record
from tlsmith.record.protection import TLS13Decrypter, TLS13Encrypter

TLS13_SUITES: tuple[SuiteInfo, ...] = tuple(
    info for s in CipherSuite if (info := suite_info(s)) is not None and info.tls13
)

_HEADER = struct.Struct(">BHH")


# -- records -----------------------------------------------------------------------------
@dataclass(frozen=True)
class WireRecord:
    content_type: int
    version: int
    fragment: bytes

    def to_bytes(self) -> bytes:
        return _HEADER.pack(self.content_type, self.version, len(self.fragment)) + self.fragment


def split_records(data: bytes) -> list[WireRecord]:
    """Every record in ``data`` (which must hold whole records only)."""
    out: list[WireRecord] = []
    pos = 0
    while pos < len(data):
        assert len(data) - pos >= 5, f"truncated record header at {pos}"
        content_type, version, length = _HEADER.unpack_from(data, pos)
        assert len(data) - pos - 5 >= length, f"truncated record at {pos}"
        out.append(WireRecord(content_type, version, data[pos + 5 : pos + 5 + length]))
        pos += 5 + length
    return out


def plaintext_record(content_type: int, payload: bytes, version: int = 0x0303) -> bytes:
    """A TLSPlaintext record (any type, any length: the caller may want it wrong)."""
    return _HEADER.pack(content_type, version, len(payload)) + payload


def alert(description: int, level: int = AlertLevel.FATAL) -> bytes:
    """An alert record's payload."""
    return bytes((level, description))


# -- handshake messages ----------------------------------------------------------------
def handshake_message(msg_type: int, body: bytes) -> bytes:
    """A handshake message: type, 24-bit length, body."""
    return bytes((msg_type,)) + len(body).to_bytes(3, "big") + body


def split_messages(data: bytes) -> list[bytes]:
    """Whole handshake messages (headers included) from concatenated handshake data."""
    out: list[bytes] = []
    pos = 0
    while pos < len(data):
        assert len(data) - pos >= 4, "truncated handshake header"
        length = int.from_bytes(data[pos + 1 : pos + 4], "big")
        assert len(data) - pos - 4 >= length, "truncated handshake message"
        out.append(data[pos : pos + 4 + length])
        pos += 4 + length
    return out


def message_type(raw: bytes) -> HandshakeType:
    return HandshakeType(raw[0])


def body_of(raw: bytes) -> bytes:
    return raw[4:]


def find_message(messages: Iterable[bytes], msg_type: HandshakeType) -> bytes:
    for raw in messages:
        if raw[0] == msg_type:
            return raw
    raise AssertionError(f"no {msg_type.name} in the flight")


def replace_extension(extensions: tuple[Extension, ...], new: Extension
                      ) -> tuple[Extension, ...]:
    """``extensions`` with the one of ``new``'s type replaced (or appended)."""
    out = [new if e.extension_type == new.extension_type else e for e in extensions]
    if not any(e.extension_type == new.extension_type for e in extensions):
        out.append(new)
    return tuple(out)


def drop_extension(extensions: tuple[Extension, ...], extension_type: int
                   ) -> tuple[Extension, ...]:
    return tuple(e for e in extensions if e.extension_type != extension_type)


def edit_server_hello(raw: bytes, **changes: Any) -> bytes:
    """Re-serialize a ServerHello (or HelloRetryRequest) with fields replaced."""
    return replace(ServerHello.parse_body(body_of(raw)), **changes).serialize()


def edit_client_hello(raw: bytes, **changes: Any) -> bytes:
    return replace(ClientHello.parse_body(body_of(raw)), **changes).serialize()


# -- keys ------------------------------------------------------------------------------
def _keys(suite: SuiteInfo, secret: bytes) -> tuple[bytes, bytes]:
    return schedule13.traffic_keys(suite.hash_name, secret, suite.key_len, suite.iv_len)


def encrypter(suite: SuiteInfo, secret: bytes, seq: int = 0) -> TLS13Encrypter:
    key, iv = _keys(suite, secret)
    return TLS13Encrypter(suite, key, iv, seq=seq)


def decrypter(suite: SuiteInfo, secret: bytes, seq: int = 0) -> TLS13Decrypter:
    key, iv = _keys(suite, secret)
    return TLS13Decrypter(suite, key, iv, seq=seq)


def transcript_hash(suite: SuiteInfo, *messages: bytes) -> bytes:
    return hashlib.new(suite.hash_name, b"".join(messages)).digest()


def forged_finished(suite: SuiteInfo, base_key: bytes, *transcript: bytes) -> bytes:
    """The Finished a peer holding ``base_key`` would send after ``transcript``."""
    verify_data = schedule13.finished_verify_data(
        suite.hash_name, base_key, transcript_hash(suite, *transcript))
    return Finished(verify_data).serialize()


def forged_certificate_verify(suite: SuiteInfo, scheme: SignatureScheme, private_key: Any,
                              *transcript: bytes, server: bool = True) -> bytes:
    """A CertificateVerify (RFC 8446 §4.4.3) signed with ``private_key`` -- even with a
    scheme tlsmith would never choose (``sig.sign`` still refuses SHA-1)."""
    from tlsmith.codec.messages import CertificateVerify

    content = sig.certificate_verify_content(transcript_hash(suite, *transcript),
                                             server=server)
    return CertificateVerify(scheme, sig.sign(scheme, private_key, content)).serialize()


class Channel:
    """One direction of TLS 1.3 protected records, written as the sender would write
    them: one traffic secret, sequence numbers continuing from ``seq``."""

    def __init__(self, suite: SuiteInfo, secret: bytes, seq: int = 0) -> None:
        self.suite = suite
        self.secret = secret
        self._enc = encrypter(suite, secret, seq)
        key, iv = _keys(suite, secret)
        self._key, self._iv = key, iv

    @property
    def seq(self) -> int:
        return self._enc.seq

    def record(self, content_type: ContentType, payload: bytes) -> bytes:
        """One protected record of ``content_type`` carrying ``payload``."""
        return self._enc.protect(content_type, payload)

    def handshake(self, *messages: bytes) -> bytes:
        """Each message in its own protected handshake record."""
        return b"".join(self.record(ContentType.HANDSHAKE, m) for m in messages)

    def handshake_together(self, *messages: bytes) -> bytes:
        """All the messages in one protected handshake record."""
        return self.record(ContentType.HANDSHAKE, b"".join(messages))

    def sealed_inner(self, inner: bytes, *, outer_type: int = ContentType.APPLICATION_DATA,
                     version: int = 0x0303) -> bytes:
        """Seal an arbitrary TLSInnerPlaintext (content || type || zeros), for records a
        correct sender never writes (unknown inner type, all zeros, too long)."""
        from tlsmith.crypto.aead import Aead

        seq = self._enc.seq
        # Keep the real encrypter's sequence in step.
        self._enc = encrypter(self.suite, self.secret, seq + 1)
        header = _HEADER.pack(outer_type, version, len(inner) + self.suite.tag_len)
        nonce = (int.from_bytes(self._iv, "big") ^ seq).to_bytes(len(self._iv), "big")
        aead = Aead(self.suite.aead, self._key, self.suite.tag_len)
        return header + aead.seal(nonce, inner, header)


@dataclass
class Flight:
    """What one side wrote, cut into records."""

    data: bytes
    records: list[WireRecord]

    @classmethod
    def parse(cls, data: bytes) -> Flight:
        return cls(data, split_records(data))

    @property
    def plaintext_messages(self) -> list[bytes]:
        joined = b"".join(r.fragment for r in self.records
                          if r.content_type == ContentType.HANDSHAKE)
        return split_messages(joined)

    @property
    def ccs_count(self) -> int:
        return sum(1 for r in self.records if r.content_type == ContentType.CHANGE_CIPHER_SPEC)

    @property
    def protected(self) -> list[WireRecord]:
        return [r for r in self.records if r.content_type == ContentType.APPLICATION_DATA]

    def decrypt(self, suite: SuiteInfo, secret: bytes, seq: int = 0
                ) -> list[tuple[ContentType, bytes]]:
        dec = decrypter(suite, secret, seq)
        return [dec.unprotect(Record(ContentType(r.content_type), r.version, r.fragment))
                for r in self.protected]

    def protected_messages(self, suite: SuiteInfo, secret: bytes, seq: int = 0
                           ) -> list[bytes]:
        opened = self.decrypt(suite, secret, seq)
        assert all(t == ContentType.HANDSHAKE for t, _ in opened), opened
        return split_messages(b"".join(p for _, p in opened))


# -- the victim's answer ----------------------------------------------------------------
def _suites_for(secret: bytes) -> list[SuiteInfo]:
    return [s for s in TLS13_SUITES if s.hash_len == len(secret)]


def read_alert(data: bytes, secrets: Iterable[bytes], max_seq: int = 16
               ) -> tuple[AlertLevel, AlertDescription, bool]:
    """(level, description, protected) of the alert that ends ``data``.

    A protected alert is opened by trying each of the victim's write ``secrets`` at
    sequence numbers 0..max_seq: the AEAD tag proves which key and number it used."""
    records = split_records(data)
    assert records, "the victim wrote nothing: no alert"
    last = records[-1]
    if last.content_type == ContentType.ALERT:
        assert len(last.fragment) == 2, last
        return AlertLevel(last.fragment[0]), AlertDescription(last.fragment[1]), False
    assert last.content_type == ContentType.APPLICATION_DATA, (
        f"the victim's last record is of type {last.content_type}, not an alert")
    record = Record(ContentType.APPLICATION_DATA, last.version, last.fragment)
    for secret in secrets:
        for suite in _suites_for(secret):
            for seq in range(max_seq):
                try:
                    content_type, payload = decrypter(suite, secret, seq).unprotect(record)
                except ProtocolError:
                    continue
                assert content_type == ContentType.ALERT, (
                    f"the victim's last record is {content_type.name}, not an alert")
                assert len(payload) == 2
                return AlertLevel(payload[0]), AlertDescription(payload[1]), True
    raise AssertionError("the victim's last record opens under none of its write secrets")


def write_secrets(spy: SecretSpy, is_client: bool) -> list[bytes]:
    """The secrets the spied side writes with (newest first)."""
    side = "client_" if is_client else "server_"
    names = [n for n in spy.secrets if n.startswith(side) and "traffic" in n]
    return [spy.secrets[n] for n in reversed(names)]


def run(conn: TLSConnection, limit: int = 64) -> list[Event]:
    """next_event() until NeedData; at most ``limit`` events (a loop would be a hang)."""
    events: list[Event] = []
    for _ in range(limit):
        ev = conn.next_event()
        if ev is NEED_DATA:
            return events
        events.append(ev)
    raise AssertionError(f"no NeedData after {limit} events: the connection loops")


def assert_dead(conn: TLSConnection) -> None:
    """After a fatal error: next_event and send_data raise, nothing more is written."""
    for _ in range(2):
        try:
            event = conn.next_event()
        except ConnectionClosedError:
            continue
        raise AssertionError(f"next_event() returned {repr(event)[:80]}... after a fatal "
                             "error, instead of raising ConnectionClosedError")
    with pytest.raises(TLSError):
        conn.send_data(b"after death")
    conn.receive_data(b"\x16\x03\x03\x00\x01\x00")
    with pytest.raises(ConnectionClosedError):
        conn.next_event()
    assert conn.data_to_send() == b""


def expect_alert(victim: TLSConnection, spy: SecretSpy, data: bytes,
                 error: type[ProtocolError], *, protected: bool | None = None,
                 check: str | None = None) -> ProtocolError:
    """Feed ``data`` to ``victim``: it must raise ``error`` (whose ``.alert`` is the RFC's
    alert), write exactly that fatal alert last, and stay dead. With ``check``, the error
    must also name that check (``ProtocolError.check``): another check raising the same
    class and alert does not pass."""
    victim.data_to_send()  # anything written before the attack is not the answer
    victim.receive_data(data)
    try:
        events = run(victim)
    except ProtocolError as caught:
        exc = caught
    else:
        raise AssertionError(
            f"expected {error.__name__}, but the victim accepted the input: events "
            f"{[type(e).__name__ for e in events]}, now in state {victim.state_name}")
    assert isinstance(exc, error), f"expected {error.__name__}, got {type(exc).__name__}: {exc}"
    assert exc.alert == error.alert
    if check is not None:
        assert exc.check == check, f"expected check {check!r}, got {exc.check!r}: {exc}"
    level, description, was_protected = read_alert(
        victim.data_to_send(), write_secrets(spy, victim.is_client))
    assert (level, description) == (AlertLevel.FATAL, error.alert), (
        f"sent {level.name} {description.name}, expected fatal {error.alert.name}")
    if protected is not None:
        assert was_protected == protected
    assert_dead(victim)
    return exc


def expect_alert_received(victim: TLSConnection, data: bytes,
                          description: AlertDescription) -> AlertReceived:
    """The peer's fatal alert: AlertReceived, no alert sent back, the connection dead."""
    victim.data_to_send()
    victim.receive_data(data)
    with pytest.raises(AlertReceived) as info:
        run(victim)
    assert info.value.description == description
    assert victim.data_to_send() == b"", "an alert was answered with bytes"
    assert_dead(victim)
    return info.value


# -- the pair, with the test in the middle -----------------------------------------------
class Mitm:
    """A real client and a real server whose bytes only move when the test moves them."""

    def __init__(self, client_cfg: ClientConfig, server_cfg: ServerConfig) -> None:
        self.cspy, self.sspy = SecretSpy(), SecretSpy()
        self.client = TLSConnection(replace(client_cfg, observer=self.cspy))
        self.server = TLSConnection(replace(server_cfg, observer=self.sspy))
        self.client_first = Flight.parse(self.client.data_to_send())
        self.client_hello = self.client_first.plaintext_messages[0]

    # moving bytes
    def to_server(self, data: bytes) -> list[Event]:
        self.server.receive_data(data)
        return run(self.server)

    def to_client(self, data: bytes) -> list[Event]:
        self.client.receive_data(data)
        return run(self.client)

    def from_server(self) -> Flight:
        return Flight.parse(self.server.data_to_send())

    def from_client(self) -> Flight:
        return Flight.parse(self.client.data_to_send())

    # secrets
    def secret(self, name: str) -> bytes:
        value = self.sspy.secrets.get(name) or self.cspy.secrets.get(name)
        assert value is not None, f"no {name} yet"
        return value

    def channel(self, name: str, suite: SuiteInfo, seq: int = 0) -> Channel:
        return Channel(suite, self.secret(name), seq)


@dataclass
class ServerFirstFlight:
    """The server's answer to a ClientHello, opened: ServerHello (plaintext), whether a
    CCS came, and the protected messages EE ... Finished."""

    data: bytes  # the flight as the server wrote it
    server_hello: bytes
    ccs: bool
    messages: list[bytes]
    suite: SuiteInfo

    def get(self, msg_type: HandshakeType) -> bytes:
        return find_message(self.messages, msg_type)


def server_first_flight(m: Mitm) -> ServerFirstFlight:
    """Give the server the client's hello; open the flight it answers with."""
    m.to_server(m.client_first.data)
    flight = m.from_server()
    server_hello = flight.plaintext_messages[0]
    sh = ServerHello.parse_body(body_of(server_hello))
    assert not sh.is_hello_retry_request, "the server asked for a HelloRetryRequest"
    suite = suite_info(sh.cipher_suite)
    assert suite is not None
    messages = flight.protected_messages(suite, m.secret("server_handshake_traffic_secret"))
    return ServerFirstFlight(flight.data, server_hello, flight.ccs_count > 0, messages, suite)


def suite_of(server_hello: bytes) -> SuiteInfo:
    info = suite_info(ServerHello.parse_body(body_of(server_hello)).cipher_suite)
    assert info is not None
    return info


def handshake_record(*messages: bytes) -> bytes:
    """A plaintext handshake record holding ``messages``."""
    return plaintext_record(ContentType.HANDSHAKE, b"".join(messages))


CCS = plaintext_record(ContentType.CHANGE_CIPHER_SPEC, b"\x01")

"""TLS 1.2 helpers for handshake tests, on top of tests/mitm.py.

* ``Session12`` holds what a SecretSpy saw ("master_secret") and the two randoms, and
  derives the record keys of either side (RFC 5246 §6.3; RFC 5288 / RFC 7905 AEAD,
  RFC 5246 §6.2.3.2 / RFC 7366 CBC): ``channel`` writes records as that side would,
  ``decrypter`` opens them.
* ``Mitm12`` is ``mitm.Mitm`` with the TLS 1.2 flights cut into messages.
* ``expect_alert12`` feeds a victim, checks the typed error, the fatal alert it wrote last
  (opening it with the victim's own write keys when it is protected) and a dead
  connection.
* ``patch_client_hello`` edits the ClientHello a real client builds, so that its own
  transcript holds the edited hello (a handshake can still complete).

Nothing here reaches into a connection's private state.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest

from mitm import (
    CCS,
    Mitm,
    WireRecord,
    assert_dead,
    body_of,
    find_message,
    handshake_record,
    run,
    split_messages,
    split_records,
)
from tlsmith.codec import extensions as ext
from tlsmith.codec.enums import AlertDescription, AlertLevel, ContentType, HandshakeType
from tlsmith.codec.messages import ClientHello, ServerHello
from tlsmith.config import ClientConfig, ServerConfig
from tlsmith.connection import TLSConnection
from tlsmith.crypto import prf12
from tlsmith.crypto.kx import deterministic_random
from tlsmith.crypto.suites import SuiteInfo, suite_info
from tlsmith.errors import ProtocolError
from tlsmith.record.framing import Record
from tlsmith.record.protection import (
    RecordDecrypter,
    RecordEncrypter,
    TLS12AeadDecrypter,
    TLS12AeadEncrypter,
)
from tlsmith.record.protection_cbc import TLS12CbcDecrypter, TLS12CbcEncrypter

__all__ = [
    "CCS",
    "Channel12",
    "Flight12",
    "Mitm12",
    "Session12",
    "deterministic",
    "expect_alert12",
    "handshake_record",
    "patch_client_hello",
    "read_alert12",
    "with_extension",
    "without_extensions",
]


# -- keys ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Session12:
    """A TLS 1.2 session's keys as both sides derive them."""

    suite: SuiteInfo
    master_secret: bytes
    client_random: bytes
    server_random: bytes
    etm: bool = False

    def _parts(self, client: bool) -> tuple[bytes, bytes, bytes]:
        kb = prf12.derive_key_block(self.suite, self.master_secret, self.client_random,
                                    self.server_random)
        if client:
            return kb.client_write_key, kb.client_write_mac_key, kb.client_write_iv
        return kb.server_write_key, kb.server_write_mac_key, kb.server_write_iv

    def mac_key(self, *, client: bool) -> bytes:
        return self._parts(client)[1]

    def enc_key(self, *, client: bool) -> bytes:
        return self._parts(client)[0]

    def encrypter(self, *, client: bool, seq: int = 0) -> RecordEncrypter:
        """What ``client`` (True: the client, False: the server) writes with."""
        key, mac_key, iv = self._parts(client)
        if self.suite.cipher == "cbc":
            return TLS12CbcEncrypter(self.suite, key, mac_key, encrypt_then_mac=self.etm,
                                     random=os.urandom, seq=seq)
        return TLS12AeadEncrypter(self.suite, key, iv, seq=seq)

    def decrypter(self, *, client: bool, seq: int = 0) -> RecordDecrypter:
        """Opens what ``client`` (True: the client, False: the server) wrote."""
        key, mac_key, iv = self._parts(client)
        if self.suite.cipher == "cbc":
            return TLS12CbcDecrypter(self.suite, key, mac_key, encrypt_then_mac=self.etm,
                                     seq=seq)
        return TLS12AeadDecrypter(self.suite, key, iv, seq=seq)

    def channel(self, *, client: bool, seq: int = 0) -> Channel12:
        return Channel12(self.encrypter(client=client, seq=seq))

    def open(self, records: list[WireRecord], *, client: bool, seq: int = 0
             ) -> list[tuple[ContentType, bytes]]:
        dec = self.decrypter(client=client, seq=seq)
        return [dec.unprotect(Record(ContentType(r.content_type), r.version, r.fragment))
                for r in records]

    def finished(self, transcript: bytes, *, client: bool) -> bytes:
        """The Finished message ``client`` would send after ``transcript`` (RFC 5246
        §7.4.9)."""
        digest = hashlib.new(self.suite.hash_name, transcript).digest()
        verify_data = prf12.finished_verify_data(self.suite.hash_name, self.master_secret,
                                                 client=client, handshake_hash=digest)
        return bytes((HandshakeType.FINISHED,)) + len(verify_data).to_bytes(3, "big") + (
            verify_data)


class Channel12:
    """One direction of protected TLS 1.2 records, sequence numbers continuing."""

    def __init__(self, encrypter: RecordEncrypter) -> None:
        self._enc = encrypter

    @property
    def seq(self) -> int:
        return self._enc.seq

    def record(self, content_type: ContentType, payload: bytes) -> bytes:
        return self._enc.protect(content_type, payload)

    def handshake(self, *messages: bytes) -> bytes:
        """Each message in its own protected record."""
        return b"".join(self.record(ContentType.HANDSHAKE, m) for m in messages)

    def handshake_together(self, *messages: bytes) -> bytes:
        return self.record(ContentType.HANDSHAKE, b"".join(messages))


# -- flights -------------------------------------------------------------------------------
@dataclass
class Flight12:
    """What one side wrote: plaintext handshake messages, whether a CCS came, and the
    protected records after it."""

    data: bytes
    records: list[WireRecord]

    @classmethod
    def parse(cls, data: bytes) -> Flight12:
        return cls(data, split_records(data))

    def _ccs_index(self) -> int:
        for i, r in enumerate(self.records):
            if r.content_type == ContentType.CHANGE_CIPHER_SPEC:
                return i
        return len(self.records)

    @property
    def messages(self) -> list[bytes]:
        """Handshake messages sent before the ChangeCipherSpec (in the clear)."""
        before = self.records[: self._ccs_index()]
        return split_messages(b"".join(r.fragment for r in before
                                       if r.content_type == ContentType.HANDSHAKE))

    @property
    def has_ccs(self) -> bool:
        return self._ccs_index() < len(self.records)

    @property
    def plaintext_data(self) -> bytes:
        return b"".join(r.to_bytes() for r in self.records[: self._ccs_index()])

    @property
    def protected(self) -> list[WireRecord]:
        return self.records[self._ccs_index() + 1:]

    @property
    def protected_data(self) -> bytes:
        return b"".join(r.to_bytes() for r in self.protected)

    def get(self, msg_type: HandshakeType) -> bytes:
        return find_message(self.messages, msg_type)


class Mitm12(Mitm):
    """A real TLS 1.2 client and server; bytes move only when the test moves them."""

    def __init__(self, client_cfg: ClientConfig, server_cfg: ServerConfig) -> None:
        super().__init__(client_cfg, server_cfg)
        self.server_flight: Flight12 | None = None

    def server_hello_flight(self) -> Flight12:
        """Give the server the ClientHello; the flight it answers (not delivered)."""
        self.to_server(self.client_first.data)
        self.server_flight = Flight12.parse(self.server.data_to_send())
        return self.server_flight

    @property
    def server_hello(self) -> ServerHello:
        assert self.server_flight is not None
        return ServerHello.parse_body(body_of(self.server_flight.get(HandshakeType.SERVER_HELLO)))

    @property
    def suite(self) -> SuiteInfo:
        info = suite_info(self.server_hello.cipher_suite)
        assert info is not None and not info.tls13
        return info

    def session(self) -> Session12:
        """The keys from whichever side has derived its master secret."""
        master = self.cspy.secrets.get("master_secret") or self.sspy.secrets.get(
            "master_secret")
        assert master is not None, "no master_secret yet"
        sh = self.server_hello
        etm = ext.find_extension(sh.extensions, ext.EncryptThenMac) is not None
        ch = ClientHello.parse_body(body_of(self.client_hello))
        return Session12(self.suite, master, ch.random, sh.random,
                         etm and self.suite.cipher == "cbc")

    def client_flight(self) -> Flight12:
        """The client's [Certificate] ClientKeyExchange, CCS, Finished (after it has had
        the server's first flight)."""
        return Flight12.parse(self.client.data_to_send())


def deterministic(client: ClientConfig, server: ServerConfig, seed: bytes = b"seed"
                  ) -> tuple[ClientConfig, ServerConfig]:
    """Both configs with fresh reproducible randomness: two pairs built from the same
    seed write the same bytes, so a flight recorded once replays to a fresh victim."""
    return (replace(client, random=deterministic_random(seed + b" client")),
            replace(server, random=deterministic_random(seed + b" server")))


# -- the victim's answer ----------------------------------------------------------------
def read_alert12(data: bytes, session: Session12 | None, *, client: bool, max_seq: int = 16
                 ) -> tuple[AlertLevel, AlertDescription, bool]:
    """(level, description, protected) of the alert record that ends ``data``, which
    ``client`` (True: the client) wrote. A protected alert is opened with that side's
    write keys at sequence numbers 0..max_seq: the MAC proves which one it used."""
    records = split_records(data)
    assert records, "the victim wrote nothing: no alert"
    last = records[-1]
    assert last.content_type == ContentType.ALERT, (
        f"the victim's last record is of type {last.content_type}, not an alert")
    if len(last.fragment) == 2:
        return AlertLevel(last.fragment[0]), AlertDescription(last.fragment[1]), False
    assert session is not None, "a protected alert, but no keys to open it"
    record = Record(ContentType.ALERT, last.version, last.fragment)
    for seq in range(max_seq):
        try:
            content_type, payload = session.decrypter(client=client, seq=seq).unprotect(record)
        except ProtocolError:
            continue
        assert content_type == ContentType.ALERT and len(payload) == 2, payload
        return AlertLevel(payload[0]), AlertDescription(payload[1]), True
    raise AssertionError("the victim's alert opens under none of its write keys")


def expect_alert12(victim: TLSConnection, data: bytes, error: type[ProtocolError],
                   session: Session12 | None = None, *, protected: bool | None = None,
                   match: str | None = None, check: str | None = None) -> ProtocolError:
    """Feed ``data`` to ``victim``: it must raise ``error`` (nothing else), write that
    fatal alert as its last record, and stay dead."""
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
    assert type(exc) is error, f"expected {error.__name__}, got {type(exc).__name__}: {exc}"
    if match is not None:
        assert match in str(exc), str(exc)
    if check is not None:
        assert exc.check == check, f"expected check {check!r}, got {exc.check!r}: {exc}"
    level, description, was_protected = read_alert12(victim.data_to_send(), session,
                                                     client=victim.is_client)
    assert (level, description) == (AlertLevel.FATAL, error.alert), (
        f"sent {level.name} {description.name}, expected fatal {error.alert.name}")
    if protected is not None:
        assert was_protected == protected
    assert_dead(victim)
    return exc


# -- editing what a real client offers ---------------------------------------------------
def patch_client_hello(monkeypatch: pytest.MonkeyPatch,
                       edit: Callable[[ClientHello], ClientHello]) -> None:
    """Every ClientHello a client builds from now on goes through ``edit`` first (so
    the client's transcript holds the edited hello)."""
    from tlsmith.handshake import client as client_mod

    original = client_mod.build_client_hello

    def build(*args: Any, **kwargs: Any) -> ClientHello:
        return edit(original(*args, **kwargs))

    monkeypatch.setattr(client_mod, "build_client_hello", build)


def without_extensions(*types: int) -> Callable[[ClientHello], ClientHello]:
    def edit(hello: ClientHello) -> ClientHello:
        return replace(hello, extensions=tuple(e for e in hello.extensions
                                               if e.extension_type not in types))
    return edit


def with_extension(new: ext.Extension) -> Callable[[ClientHello], ClientHello]:
    """Replace the extension of ``new``'s type (or append it)."""
    def edit(hello: ClientHello) -> ClientHello:
        exts = [new if e.extension_type == new.extension_type else e for e in hello.extensions]
        if not any(e.extension_type == new.extension_type for e in hello.extensions):
            exts.append(new)
        return replace(hello, extensions=tuple(exts))
    return edit

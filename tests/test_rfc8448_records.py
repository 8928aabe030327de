"""RFC 8448 §3, §4 and §5 on the wire: records and handshake messages, byte for byte.

(a) Every encrypted record the traces print is rebuilt with
    ``tlsmith.record.protection.TLS13Encrypter`` from the payload and keys derived by
    ``tlsmith.crypto.schedule13``, and ``TLS13Decrypter`` turns it back into the payload.
    The plaintext records (ClientHello, ServerHello) are rebuilt from their header.
(b) Every handshake message of those traces is decoded with
    ``tlsmith.codec.messages.decode_handshake`` and serializes back to the same bytes.

All bytes come from the RFC text (tests/rfc8448.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from rfc8448 import (
    SECTION_HELLO_RETRY_REQUEST,
    SECTION_RESUMED_0RTT,
    SECTION_SIMPLE_1RTT,
    Record,
    load_section,
)
from test_schedule13_rfc8448 import handshake
from tlsmith.codec import messages
from tlsmith.codec.enums import CipherSuite, ContentType, HandshakeType
from tlsmith.crypto import schedule13 as ks
from tlsmith.crypto.suites import SuiteInfo, suite_info
from tlsmith.errors import BadRecordMac
from tlsmith.record import framing
from tlsmith.record.protection import TLS13Decrypter, TLS13Encrypter

SECTIONS = [SECTION_SIMPLE_1RTT, SECTION_RESUMED_0RTT, SECTION_HELLO_RETRY_REQUEST]

# Which traffic secret protects each encrypted record an actor sends, in trace order
# (RFC 8446 §2 figures; §2.3 and §4.5 for 0-RTT data and EndOfEarlyData).
RECORD_SECRETS: dict[int, dict[str, list[str]]] = {
    SECTION_SIMPLE_1RTT: {
        # Finished; application data; close_notify
        "client": ["c hs traffic", "c ap traffic", "c ap traffic"],
        # EE..Finished; NewSessionTicket; application data; close_notify
        "server": ["s hs traffic", "s ap traffic", "s ap traffic", "s ap traffic"],
    },
    SECTION_RESUMED_0RTT: {
        # 0-RTT data; EndOfEarlyData; Finished; application data; close_notify
        "client": ["c e traffic", "c e traffic", "c hs traffic", "c ap traffic",
                   "c ap traffic"],
        # EE + Finished; application data; close_notify
        "server": ["s hs traffic", "s ap traffic", "s ap traffic"],
    },
    SECTION_HELLO_RETRY_REQUEST: {
        # Finished; close_notify
        "client": ["c hs traffic", "c ap traffic"],
        # EE..Finished; close_notify
        "server": ["s hs traffic", "s ap traffic"],
    },
}

INNER_TYPE = {
    "handshake": ContentType.HANDSHAKE,
    "application_data": ContentType.APPLICATION_DATA,
    "alert": ContentType.ALERT,
}


@dataclass
class ProtectedRecord:
    section: int
    index: int  # position among the section's records
    record: Record
    secret_name: str
    sequence: int  # the record's sequence number under that secret (RFC 8446 §5.3)

    @property
    def id(self) -> str:
        return (f"§{self.section}-{self.index}-{self.record.actor}-{self.record.kind}-"
                f"{self.secret_name.replace(' ', '_')}#{self.sequence}")


def protected_records(section: int) -> Iterator[ProtectedRecord]:
    trace = load_section(section)
    plan = {actor: iter(names) for actor, names in RECORD_SECRETS[section].items()}
    sequence: dict[str, int] = {}
    for index, record in enumerate(trace.records()):
        if record.complete_record[0] != ContentType.APPLICATION_DATA:
            continue  # a plaintext record (ClientHello, ServerHello)
        name = next(plan[record.actor])
        seq = sequence.get(name, 0)
        sequence[name] = seq + 1
        yield ProtectedRecord(section, index, record, name, seq)
    for actor, rest in plan.items():
        assert list(rest) == [], f"§{section}: {actor} sent fewer records than planned"


PROTECTED = [p for section in SECTIONS for p in protected_records(section)]
PLAINTEXT = [
    (section, record)
    for section in SECTIONS
    for record in load_section(section).records()
    if record.complete_record[0] != ContentType.APPLICATION_DATA
]


def _suite() -> SuiteInfo:
    info = suite_info(CipherSuite.TLS_AES_128_GCM_SHA256)
    assert info is not None
    return info


# All three traces negotiate TLS_AES_128_GCM_SHA256 (see test_schedule13_rfc8448).
SUITE = _suite()


def keys_for(section: int, secret_name: str) -> tuple[bytes, bytes]:
    secret = handshake(section).secrets[secret_name]
    return ks.traffic_keys(SUITE.hash_name, secret, SUITE.key_len, SUITE.iv_len)


def read_record(data: bytes) -> framing.Record:
    reader = framing.RecordReader()
    reader.feed(data)
    record = reader.next_record()
    assert record is not None
    assert reader.next_record() is None
    return record


def test_every_section_has_protected_records() -> None:
    counts = {s: sum(p.section == s for p in PROTECTED) for s in SECTIONS}
    assert counts == {s: sum(map(len, RECORD_SECRETS[s].values())) for s in SECTIONS}
    assert SUITE.suite == CipherSuite.TLS_AES_128_GCM_SHA256


@pytest.mark.parametrize("p", PROTECTED, ids=lambda p: p.id)
def test_record_encrypts_byte_for_byte(p: ProtectedRecord) -> None:
    key, iv = keys_for(p.section, p.secret_name)
    enc = TLS13Encrypter(SUITE, key, iv, seq=p.sequence)
    assert enc.protect(INNER_TYPE[p.record.kind], p.record.payload) == p.record.complete_record
    assert enc.seq == p.sequence + 1


@pytest.mark.parametrize("p", PROTECTED, ids=lambda p: p.id)
def test_record_decrypts_to_payload(p: ProtectedRecord) -> None:
    key, iv = keys_for(p.section, p.secret_name)
    dec = TLS13Decrypter(SUITE, key, iv, seq=p.sequence)
    content_type, payload = dec.unprotect(read_record(p.record.complete_record))
    assert content_type == INNER_TYPE[p.record.kind]
    assert payload == p.record.payload


@pytest.mark.parametrize("section", SECTIONS)
def test_records_in_sequence(section: int) -> None:
    """One encrypter and one decrypter per traffic secret, fed the records in trace order:
    the sequence numbers advance by themselves (RFC 8446 §5.3)."""
    encrypters: dict[str, TLS13Encrypter] = {}
    decrypters: dict[str, TLS13Decrypter] = {}
    for p in protected_records(section):
        if p.secret_name not in encrypters:
            key, iv = keys_for(section, p.secret_name)
            encrypters[p.secret_name] = TLS13Encrypter(SUITE, key, iv)
            decrypters[p.secret_name] = TLS13Decrypter(SUITE, key, iv)
        inner = INNER_TYPE[p.record.kind]
        assert encrypters[p.secret_name].protect(inner, p.record.payload) == \
            p.record.complete_record
        opened = decrypters[p.secret_name].unprotect(read_record(p.record.complete_record))
        assert opened == (inner, p.record.payload)


def test_tampered_record_is_bad_record_mac() -> None:
    p = PROTECTED[0]
    key, iv = keys_for(p.section, p.secret_name)
    wire = bytearray(p.record.complete_record)
    wire[-1] ^= 0x01  # RFC 8446 §5.2: a failed AEAD open is bad_record_mac
    with pytest.raises(BadRecordMac):
        TLS13Decrypter(SUITE, key, iv, seq=p.sequence).unprotect(read_record(bytes(wire)))
    with pytest.raises(BadRecordMac):  # the right bytes under the wrong sequence number
        TLS13Decrypter(SUITE, key, iv, seq=p.sequence + 1).unprotect(
            read_record(p.record.complete_record)
        )


@pytest.mark.parametrize(
    ("section", "record"), PLAINTEXT,
    ids=[f"§{s}-{r.actor}-{r.kind}-{n}" for n, (s, r) in enumerate(PLAINTEXT)],
)
def test_plaintext_record_framing(section: int, record: Record) -> None:
    parsed = read_record(record.complete_record)
    assert parsed.content_type == ContentType.HANDSHAKE
    assert bytes(parsed.fragment) == record.payload
    header = framing.encode_record_header(
        ContentType.HANDSHAKE, parsed.legacy_version, len(record.payload)
    )
    assert header + record.payload == record.complete_record


# -- (b) handshake messages ---------------------------------------------------------------


def split_messages(data: bytes) -> Iterator[bytes]:
    """Handshake messages in a handshake record's payload (RFC 8446 §4: type, u24 length)."""
    while data:
        msg_type, length = messages.parse_handshake_header(data)
        assert len(data) >= 4 + length, f"truncated {msg_type}"
        yield data[: 4 + length]
        data = data[4 + length :]


def trace_messages() -> list[tuple[str, bytes]]:
    """Every distinct handshake message of §3-§5: those the traces construct and those
    inside handshake records (which gives §4's ClientHello with its binders)."""
    seen: dict[bytes, str] = {}
    for section in SECTIONS:
        trace = load_section(section)
        for message in trace.handshake_messages():
            _, length = messages.parse_handshake_header(message.raw)
            if len(message.raw) == 4 + length:  # not §4's truncated ClientHello
                seen.setdefault(message.raw, f"§{section}-{message.actor}-{message.name}")
        for index, record in enumerate(trace.records()):
            if record.kind == "handshake":
                for n, raw in enumerate(split_messages(record.payload)):
                    seen.setdefault(raw, f"§{section}-{record.actor}-record{index}.{n}")
    return [(label, raw) for raw, label in seen.items()]


MESSAGES = trace_messages()


def test_all_message_types_present() -> None:
    types = {HandshakeType(raw[0]) for _, raw in MESSAGES}
    assert types == {
        HandshakeType.CLIENT_HELLO, HandshakeType.SERVER_HELLO,
        HandshakeType.ENCRYPTED_EXTENSIONS, HandshakeType.CERTIFICATE,
        HandshakeType.CERTIFICATE_VERIFY, HandshakeType.FINISHED,
        HandshakeType.NEW_SESSION_TICKET, HandshakeType.END_OF_EARLY_DATA,
    }


@pytest.mark.parametrize(("label", "raw"), MESSAGES, ids=[label for label, _ in MESSAGES])
def test_handshake_message_round_trip(label: str, raw: bytes) -> None:
    msg_type, length = messages.parse_handshake_header(raw)
    body = raw[4:]
    assert len(body) == length
    message = messages.decode_handshake(msg_type, body)
    assert not isinstance(message, messages.RawHandshakeMessage), label
    assert message.serialize() == raw
    assert message.serialize_body() == body

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tlsmith.codec import extensions as x
from tlsmith.codec.enums import (
    AlertDescription,
    AlertLevel,
    CipherSuite,
    ContentType,
    HandshakeType,
    NamedGroup,
    ProtocolVersion,
)
from tlsmith.codec.messages import ClientHello
from tlsmith.errors import DecodeError, IllegalParameter, RecordOverflow, UnexpectedMessage
from tlsmith.record.framing import (
    DEFAULT_MAX_HANDSHAKE_BODY,
    DEFAULT_MAX_HANDSHAKE_MESSAGE,
    DEFAULT_MAX_UNKNOWN_HANDSHAKE_BODY,
    HANDSHAKE_BODY_RANGES,
    MAX_CIPHERTEXT_12,
    MAX_CIPHERTEXT_13,
    MAX_HANDSHAKE_BODY,
    MAX_PLAINTEXT,
    HandshakeReassembler,
    Record,
    RecordReader,
    encode_record_header,
    fragment,
    parse_alert,
)

HS = ContentType.HANDSHAKE
H = HandshakeType


def record(content_type: int, payload: bytes, version: int = 0x0303) -> bytes:
    return encode_record_header(content_type, version, len(payload)) + payload


def handshake(msg_type: int, body: bytes) -> bytes:
    return bytes([msg_type]) + len(body).to_bytes(3, "big") + body


def drain(reader: RecordReader) -> list[Record]:
    out = []
    while (rec := reader.next_record()) is not None:
        out.append(rec)
    return out


# -- constants and headers -------------------------------------------------------------

def test_framing_limits() -> None:
    assert MAX_PLAINTEXT == 16384
    assert MAX_CIPHERTEXT_13 == 16384 + 256
    assert MAX_CIPHERTEXT_12 == 16384 + 2048


def test_framing_encode_record_header() -> None:
    assert encode_record_header(ContentType.HANDSHAKE, 0x0301, 0x1234) == bytes.fromhex(
        "1603011234")
    assert encode_record_header(23, 0x0303, 0) == bytes.fromhex("1703030000")


# -- RecordReader ----------------------------------------------------------------------

def test_framing_reader_single_record() -> None:
    reader = RecordReader()
    assert reader.next_record() is None
    reader.feed(record(22, b"hello", 0x0301))
    rec = reader.next_record()
    assert rec is not None
    assert rec.content_type is ContentType.HANDSHAKE
    assert rec.legacy_version == 0x0301
    assert bytes(rec.fragment) == b"hello"
    assert reader.next_record() is None
    assert reader.buffered() == 0


def test_framing_reader_coalesced_records_in_one_feed() -> None:
    reader = RecordReader()
    stream = record(22, b"a" * 10) + record(20, b"\x01") + record(23, b"") + record(21, b"\x01\x00")
    reader.feed(stream)
    records = drain(reader)
    assert [(r.content_type, bytes(r.fragment)) for r in records] == [
        (ContentType.HANDSHAKE, b"a" * 10), (ContentType.CHANGE_CIPHER_SPEC, b"\x01"),
        (ContentType.APPLICATION_DATA, b""), (ContentType.ALERT, b"\x01\x00")]


def test_framing_reader_byte_by_byte() -> None:
    reader = RecordReader()
    stream = record(22, bytes(range(200))) + record(23, b"xyz")
    got: list[Record] = []
    for i in range(len(stream)):
        reader.feed(stream[i : i + 1])
        got.extend(drain(reader))
        consumed = sum(5 + len(r.fragment) for r in got)
        assert reader.buffered() == i + 1 - consumed
    assert [bytes(r.fragment) for r in got] == [bytes(range(200)), b"xyz"]
    assert reader.buffered() == 0


def test_framing_reader_needs_whole_record() -> None:
    reader = RecordReader()
    data = record(22, b"x" * 100)
    reader.feed(data[:3])
    assert reader.next_record() is None  # header incomplete
    reader.feed(data[3:50])
    assert reader.next_record() is None  # body incomplete
    assert reader.buffered() == 50
    reader.feed(bytearray(data[50:]))  # mutable input is fine
    rec = reader.next_record()
    assert rec is not None and bytes(rec.fragment) == b"x" * 100


def test_framing_reader_single_chunk_records_are_not_copied() -> None:
    reader = RecordReader()
    stream = record(23, b"A" * 1000) + record(23, b"B" * 10)
    reader.feed(stream)
    first, second = drain(reader)
    for rec in (first, second):
        assert isinstance(rec.fragment, memoryview)
        assert rec.fragment.obj is stream  # a view into the fed bytes


def test_framing_reader_mutating_the_fed_buffer_does_not_change_records() -> None:
    reader = RecordReader()
    buf = bytearray(record(22, b"abc"))
    reader.feed(buf)
    buf[5:8] = b"XYZ"
    rec = reader.next_record()
    assert rec is not None and bytes(rec.fragment) == b"abc"


@pytest.mark.parametrize("type_byte", [0, 19, 24, 25, 0x80, 0xFF, ord("G")])
def test_framing_reader_unknown_content_type_is_unexpected_message(type_byte: int) -> None:
    reader = RecordReader()
    reader.feed(bytes([type_byte]) + b"\x03\x03\x00\x01\x00")
    with pytest.raises(UnexpectedMessage, match="unknown content type"):
        reader.next_record()


def test_framing_reader_overflow_detected_from_the_header() -> None:
    reader = RecordReader()
    reader.feed(encode_record_header(23, 0x0303, MAX_CIPHERTEXT_12 + 1))
    with pytest.raises(RecordOverflow):
        reader.next_record()


def test_framing_reader_limit_is_configurable() -> None:
    reader = RecordReader(max_ciphertext=MAX_CIPHERTEXT_13)
    reader.feed(record(23, bytes(MAX_CIPHERTEXT_13)))
    assert reader.next_record() is not None
    reader.feed(encode_record_header(23, 0x0303, MAX_CIPHERTEXT_13 + 1))
    with pytest.raises(RecordOverflow):
        reader.next_record()
    reader = RecordReader()
    reader.max_ciphertext = MAX_PLAINTEXT
    reader.feed(encode_record_header(22, 0x0303, MAX_PLAINTEXT + 1))
    with pytest.raises(RecordOverflow):
        reader.next_record()


def test_framing_reader_accepts_maximum_size_records() -> None:
    reader = RecordReader()
    reader.feed(record(23, bytes(MAX_CIPHERTEXT_12)))
    rec = reader.next_record()
    assert rec is not None and len(rec.fragment) == MAX_CIPHERTEXT_12


@given(
    payloads=st.lists(st.tuples(st.sampled_from([20, 21, 22, 23]), st.binary(max_size=300)),
                      max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=12),
)
def test_framing_reader_any_split_gives_the_same_records(
    payloads: list[tuple[int, bytes]], cuts: list[int]
) -> None:
    stream = b"".join(record(t, p) for t, p in payloads)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    reader = RecordReader()
    got: list[tuple[int, bytes]] = []
    for start, end in itertools.pairwise(points):
        reader.feed(stream[start:end])
        got.extend((r.content_type, bytes(r.fragment)) for r in drain(reader))
    assert got == payloads
    assert reader.buffered() == 0


# -- HandshakeReassembler --------------------------------------------------------------

def test_framing_reassembler_one_message() -> None:
    ra = HandshakeReassembler()
    raw = handshake(1, b"client hello body")
    ra.feed(raw)
    item = ra.next_message()
    assert item is not None
    msg_type, body, whole = item
    assert msg_type is HandshakeType.CLIENT_HELLO
    assert bytes(body) == b"client hello body"
    assert whole == raw and isinstance(whole, bytes)
    assert ra.next_message() is None
    assert not ra.has_partial()


def test_framing_reassembler_coalesced_messages() -> None:
    ra = HandshakeReassembler()
    msgs = [handshake(8, b"ee"), handshake(11, b"c" * 300), handshake(15, b"cv"),
            handshake(20, b"f" * 32)]
    ra.feed(b"".join(msgs))
    out = []
    while (item := ra.next_message()) is not None:
        out.append(item[2])
    assert out == msgs
    assert not ra.has_partial()


def test_framing_reassembler_message_split_over_records() -> None:
    ra = HandshakeReassembler()
    raw = handshake(11, bytes(range(256)) * 40)
    pieces = [raw[:2], raw[2:3], raw[3:1000], raw[1000:]]  # header itself split too
    for piece in pieces[:-1]:
        ra.feed(piece)
        assert ra.next_message() is None
        assert ra.has_partial()
    ra.feed(pieces[-1])
    item = ra.next_message()
    assert item is not None and item[2] == raw
    assert not ra.has_partial()


def test_framing_reassembler_split_and_coalesced_together() -> None:
    ra = HandshakeReassembler()
    a, b, c = handshake(2, b"A" * 50), handshake(8, b"B" * 10), handshake(11, b"C" * 70)
    stream = a + b + c
    ra.feed(stream[:60])  # all of a, part of b
    item = ra.next_message()
    assert item is not None and item[2] == a
    assert ra.next_message() is None
    assert ra.has_partial()  # the connection must refuse a key change or other type now
    ra.feed(stream[60:])
    assert [ra.next_message(), ra.next_message()] == [
        (HandshakeType.ENCRYPTED_EXTENSIONS, memoryview(b"B" * 10), b),
        (HandshakeType.CERTIFICATE, memoryview(b"C" * 70), c)]
    assert not ra.has_partial()
    assert ra.buffered() == 0


def test_framing_reassembler_complete_but_unread_counts_as_pending() -> None:
    ra = HandshakeReassembler()
    ra.feed(handshake(20, b"f" * 32) + handshake(1, b"x"))
    assert ra.next_message() is not None
    # RFC 8446 §5.1: data after a key-changing message in the same record.
    assert ra.has_partial()


def test_framing_reassembler_empty_fragment_is_unexpected_message() -> None:
    ra = HandshakeReassembler()
    with pytest.raises(UnexpectedMessage, match="zero-length"):
        ra.feed(b"")


def test_framing_reassembler_empty_body_message() -> None:
    ra = HandshakeReassembler()
    ra.feed(handshake(14, b""))  # ServerHelloDone has an empty body
    item = ra.next_message()
    assert item is not None
    assert item[0] is HandshakeType.SERVER_HELLO_DONE and bytes(item[1]) == b""


def test_framing_reassembler_unknown_type_is_passed_on() -> None:
    ra = HandshakeReassembler()
    ra.feed(handshake(0x7E, b"??"))
    item = ra.next_message()
    assert item is not None and int(item[0]) == 0x7E and not item[0].known


def test_framing_reassembler_oversized_message() -> None:
    ra = HandshakeReassembler()
    ra.feed(b"\x0b" + (2**18 + 1).to_bytes(3, "big"))  # detected from the header alone
    with pytest.raises(IllegalParameter, match="exceeds") as excinfo:
        ra.next_message()
    assert excinfo.value.alert == AlertDescription.ILLEGAL_PARAMETER
    ra = HandshakeReassembler(max_message_size=100)
    ra.feed(handshake(11, b"x" * 96))
    assert ra.next_message() is not None
    ra.feed(handshake(11, b"x" * 97))
    with pytest.raises(IllegalParameter):
        ra.next_message()


def test_framing_reassembler_default_accepts_64k_body() -> None:
    ra = HandshakeReassembler()
    ra.feed(handshake(11, bytes(65536)))
    item = ra.next_message()
    assert item is not None and len(item[1]) == 65536


# -- HandshakeReassembler: per-type length limits ----------------------------------------

def _header(msg_type: int, length: int) -> bytes:
    return bytes([msg_type]) + length.to_bytes(3, "big")


def test_framing_structural_maxima() -> None:
    # RFC 8446 §4.1.2: 2 + 32 + (1+32) + (2+65534) + (1+255) + (2+65535)
    assert HANDSHAKE_BODY_RANGES[H.CLIENT_HELLO] == (0, 131396)
    assert HANDSHAKE_BODY_RANGES[H.SERVER_HELLO] == (0, 65607)
    assert HANDSHAKE_BODY_RANGES[H.FINISHED] == (12, 64)
    assert HANDSHAKE_BODY_RANGES[H.KEY_UPDATE] == (1, 1)
    for t in (H.HELLO_REQUEST, H.SERVER_HELLO_DONE, H.END_OF_EARLY_DATA):
        assert HANDSHAKE_BODY_RANGES[t] == (0, 0)
    assert DEFAULT_MAX_HANDSHAKE_BODY[H.CERTIFICATE] == 2**18
    assert DEFAULT_MAX_HANDSHAKE_MESSAGE == 4 + MAX_HANDSHAKE_BODY


def test_framing_reassembler_70k_client_hello() -> None:
    # RFC 8446 §4.1.2: cipher_suites<2..2^16-2> and extensions<8..2^16-1> together allow
    # a ClientHello well over 64 KiB.
    hello = ClientHello(
        ProtocolVersion.TLS12, bytes(range(32)), bytes(32),
        tuple(CipherSuite(0x2000 + i) for i in range(16000)), (0,),
        (x.SupportedGroups((NamedGroup.X25519,)), x.Padding(40000)))
    raw = hello.serialize()
    assert len(raw) > 70 * 1024
    ra = HandshakeReassembler()
    pieces = list(fragment(raw))
    for piece in pieces[:-1]:
        ra.feed(piece)
        assert ra.next_message() is None
    ra.feed(pieces[-1])
    item = ra.next_message()
    assert item is not None and item[0] is H.CLIENT_HELLO and item[2] == raw
    assert ClientHello.parse_body(item[1]) == hello


def test_framing_reassembler_huge_finished_fails_at_the_header() -> None:
    ra = HandshakeReassembler()
    ra.feed(_header(H.FINISHED, 2**24 - 1)[:3])
    assert ra.next_message() is None  # header incomplete
    ra.feed(_header(H.FINISHED, 2**24 - 1)[3:])
    with pytest.raises(DecodeError, match="finished") as excinfo:
        ra.next_message()
    assert excinfo.value.alert == AlertDescription.DECODE_ERROR
    assert ra.buffered() == 4


@pytest.mark.parametrize(("msg_type", "length"), [
    (H.HELLO_REQUEST, 1), (H.HELLO_REQUEST, 2**24 - 1),
    (H.SERVER_HELLO_DONE, 1), (H.SERVER_HELLO_DONE, 70000),
    (H.END_OF_EARLY_DATA, 1), (H.END_OF_EARLY_DATA, 32),
    (H.KEY_UPDATE, 0), (H.KEY_UPDATE, 2), (H.KEY_UPDATE, 65536),
    (H.FINISHED, 0), (H.FINISHED, 11), (H.FINISHED, 65), (H.FINISHED, 10 * 2**20),
])
def test_framing_reassembler_fixed_length_wrong_is_decode_error(
    msg_type: HandshakeType, length: int
) -> None:
    ra = HandshakeReassembler()
    ra.feed(_header(msg_type, length))
    with pytest.raises(DecodeError, match=msg_type.name.lower()):
        ra.next_message()


@pytest.mark.parametrize(("msg_type", "length"), [
    (H.HELLO_REQUEST, 0), (H.SERVER_HELLO_DONE, 0), (H.END_OF_EARLY_DATA, 0),
    (H.KEY_UPDATE, 1), (H.FINISHED, 12), (H.FINISHED, 32), (H.FINISHED, 48),
    (H.FINISHED, 64),
])
def test_framing_reassembler_fixed_length_right(msg_type: HandshakeType, length: int) -> None:
    ra = HandshakeReassembler()
    raw = handshake(msg_type, bytes(length))
    ra.feed(raw)
    item = ra.next_message()
    assert item is not None and item[2] == raw


@pytest.mark.parametrize("msg_type", sorted(DEFAULT_MAX_HANDSHAKE_BODY),
                         ids=lambda t: t.name)
def test_framing_reassembler_per_type_limit(msg_type: HandshakeType) -> None:
    limit = DEFAULT_MAX_HANDSHAKE_BODY[msg_type]
    structural = HANDSHAKE_BODY_RANGES[msg_type][1]
    ra = HandshakeReassembler()
    ra.feed(_header(msg_type, limit))
    if limit:
        assert ra.next_message() is None  # accepted: waits for the body
    else:
        assert ra.next_message() is not None
    ra = HandshakeReassembler()
    ra.feed(_header(msg_type, limit + 1))
    error = DecodeError if limit == structural else IllegalParameter
    with pytest.raises(error) as excinfo:
        ra.next_message()
    assert type(excinfo.value) is error
    assert ra.buffered() == 4


@pytest.mark.parametrize("msg_type", [0x7E, 0xFF, int(H.HELLO_RETRY_REQUEST),
                                      int(H.SUPPLEMENTAL_DATA)])
def test_framing_reassembler_unknown_type_small_cap(msg_type: int) -> None:
    ra = HandshakeReassembler()
    raw = handshake(msg_type, bytes(DEFAULT_MAX_UNKNOWN_HANDSHAKE_BODY))
    ra.feed(raw)
    item = ra.next_message()
    assert item is not None and item[2] == raw
    ra.feed(_header(msg_type, DEFAULT_MAX_UNKNOWN_HANDSHAKE_BODY + 1))
    with pytest.raises(IllegalParameter, match="exceeds"):
        ra.next_message()


def test_framing_reassembler_limits_are_configurable() -> None:
    ra = HandshakeReassembler(max_body={H.CERTIFICATE: 2**20}, max_unknown_body=10)
    ra.feed(_header(H.CERTIFICATE, 2**20))
    assert ra.next_message() is None
    ra = HandshakeReassembler(max_body={H.CERTIFICATE: 2**20}, max_unknown_body=10)
    ra.feed(_header(H.CERTIFICATE, 2**20 + 1))
    with pytest.raises(IllegalParameter):
        ra.next_message()
    ra = HandshakeReassembler(max_unknown_body=10)
    ra.feed(_header(0x7E, 11))
    with pytest.raises(IllegalParameter):
        ra.next_message()
    # a cap above the structure changes nothing: the structure still decides
    ra = HandshakeReassembler(max_body={H.KEY_UPDATE: 100, H.CLIENT_HELLO: 2**24 - 1})
    ra.feed(_header(H.KEY_UPDATE, 2))
    with pytest.raises(DecodeError):
        ra.next_message()
    ra = HandshakeReassembler(max_body={H.CLIENT_HELLO: 2**24 - 1})
    ra.feed(_header(H.CLIENT_HELLO, 131397))
    with pytest.raises(DecodeError):
        ra.next_message()
    # a lower per-type cap
    ra = HandshakeReassembler(max_body={H.CLIENT_HELLO: 1000})
    ra.feed(_header(H.CLIENT_HELLO, 1001))
    with pytest.raises(IllegalParameter):
        ra.next_message()


def test_framing_reassembler_overall_cap_applies_to_every_type() -> None:
    ra = HandshakeReassembler(max_message_size=65536 + 4)  # the old global default
    ra.feed(_header(H.CLIENT_HELLO, 65536))
    assert ra.next_message() is None
    ra = HandshakeReassembler(max_message_size=65536 + 4)
    ra.feed(_header(H.CLIENT_HELLO, 70 * 1024))
    with pytest.raises(IllegalParameter, match="exceeds the limit of 65540"):
        ra.next_message()
    ra = HandshakeReassembler()
    ra.max_message_size = 40  # still a plain, settable attribute
    ra.feed(_header(H.FINISHED, 48))
    with pytest.raises(IllegalParameter):
        ra.next_message()


# -- outbound fragmentation ------------------------------------------------------------

@pytest.mark.parametrize(("size", "limit", "expected"), [
    (0, MAX_PLAINTEXT, []),
    (1, MAX_PLAINTEXT, [1]),
    (MAX_PLAINTEXT, MAX_PLAINTEXT, [MAX_PLAINTEXT]),
    (MAX_PLAINTEXT + 1, MAX_PLAINTEXT, [MAX_PLAINTEXT, 1]),
    (3 * MAX_PLAINTEXT, MAX_PLAINTEXT, [MAX_PLAINTEXT] * 3),
    (1000, 512, [512, 488]),
    (5, 1, [1] * 5),
])
def test_framing_fragment_sizes(size: int, limit: int, expected: list[int]) -> None:
    data = bytes(i % 251 for i in range(size))
    pieces = list(fragment(data, limit))
    assert [len(p) for p in pieces] == expected
    assert b"".join(pieces) == data
    assert all(isinstance(p, memoryview) for p in pieces)


def test_framing_fragment_default_limit_and_bad_limit() -> None:
    assert [len(p) for p in fragment(bytes(40000))] == [16384, 16384, 7232]
    with pytest.raises(ValueError):
        list(fragment(b"abc", 0))


# -- alerts ----------------------------------------------------------------------------

def test_framing_parse_alert() -> None:
    assert parse_alert(b"\x02\x28") == (AlertLevel.FATAL, AlertDescription.HANDSHAKE_FAILURE)
    assert parse_alert(memoryview(b"\x01\x00")) == (
        AlertLevel.WARNING, AlertDescription.CLOSE_NOTIFY)
    level, description = parse_alert(b"\x07\xee")
    assert int(level) == 7 and int(description) == 0xEE


@pytest.mark.parametrize("payload", [b"", b"\x02", b"\x02\x28\x02", b"\x02\x28\x02\x28"])
def test_framing_parse_alert_wrong_length_is_decode_error(payload: bytes) -> None:
    with pytest.raises(DecodeError):
        parse_alert(payload)

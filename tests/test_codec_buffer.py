"""Reader / Writer (tlsmith.codec.buffer): integers, vectors, bounds, exact consumption."""

from __future__ import annotations

from typing import Any

import pytest

from tlsmith.codec.buffer import Reader, Writer
from tlsmith.codec.enums import AlertDescription
from tlsmith.errors import DecodeError


def _decode_error(excinfo: pytest.ExceptionInfo[DecodeError]) -> None:
    assert excinfo.value.alert == AlertDescription.DECODE_ERROR


@pytest.mark.parametrize(
    ("method", "size", "value"),
    [("u8", 1, 0xAB), ("u16", 2, 0xABCD), ("u24", 3, 0xABCDEF), ("u32", 4, 0xDEADBEEF),
     ("u64", 8, 0x0102030405060708)],
)
def test_buffer_integers_round_trip(method: str, size: int, value: int) -> None:
    w = Writer()
    getattr(w, method)(value)
    data = w.getvalue()
    assert data == value.to_bytes(size, "big")
    assert len(w) == size
    r = Reader(data)
    assert getattr(r, method)() == value
    r.finish()


@pytest.mark.parametrize(("method", "size"), [("u8", 1), ("u16", 2), ("u24", 3), ("u32", 4),
                                              ("u64", 8)])
def test_buffer_integers_truncated(method: str, size: int) -> None:
    for n in range(size):
        with pytest.raises(DecodeError) as excinfo:
            getattr(Reader(bytes(n)), method)()
        _decode_error(excinfo)


def test_buffer_reader_accepts_bytes_bytearray_memoryview() -> None:
    for data in (b"\x01\x02", bytearray(b"\x01\x02"), memoryview(b"\x01\x02")):
        r = Reader(data)
        assert r.u16() == 0x0102
        assert r.at_end()


def test_buffer_reader_position_and_remaining() -> None:
    r = Reader(b"\x00\x01\x02\x03")
    assert (r.position, r.remaining) == (0, 4)
    r.u8()
    assert (r.position, r.remaining) == (1, 3)
    assert r.raw(2) == b"\x01\x02"
    assert (r.position, r.remaining, r.at_end()) == (3, 1, False)
    assert r.rest() == b"\x03"
    assert r.at_end()


def test_buffer_finish_rejects_trailing_bytes() -> None:
    r = Reader(b"\x01\x02", "Thing")
    r.u8()
    with pytest.raises(DecodeError, match="Thing: 1 trailing byte") as excinfo:
        r.finish()
    _decode_error(excinfo)


def test_buffer_context_manager_finishes() -> None:
    with pytest.raises(DecodeError):
        with Reader(b"\x01\x02") as r:
            r.u8()
    with Reader(b"\x01") as r:
        assert r.u8() == 1


def test_buffer_context_manager_does_not_mask_errors() -> None:
    with pytest.raises(KeyError):
        with Reader(b"\x01\x02"):
            raise KeyError("inner")


def test_buffer_view_does_not_copy() -> None:
    data = bytearray(b"abcdef")
    r = Reader(data)
    v = r.view(3)
    assert isinstance(v, memoryview)
    assert bytes(v) == b"abc"
    assert isinstance(r.raw(3), bytes)


def test_buffer_opaque_bounds() -> None:
    assert Reader(b"\x02ab").opaque(1) == b"ab"
    assert Reader(b"\x00\x00").opaque(2) == b""
    with pytest.raises(DecodeError, match="outside the allowed range"):
        Reader(b"\x00").opaque(1, min_len=1)
    with pytest.raises(DecodeError, match="outside the allowed range"):
        Reader(b"\x03abc").opaque(1, max_len=2)
    with pytest.raises(DecodeError, match="truncated"):
        Reader(b"\x03ab").opaque(1)
    with pytest.raises(DecodeError):
        Reader(b"\x00\x00").opaque(3)


def test_buffer_vector_sub_reader_must_be_consumed() -> None:
    r = Reader(b"\x00\x03\x01\x02\x03\x09")
    with r.vector(2) as sub:
        assert sub.u8() == 1
        assert sub.u16() == 0x0203
    assert r.u8() == 9
    r.finish()
    with pytest.raises(DecodeError, match="trailing"):
        with Reader(b"\x02\x01\x02").vector(1) as sub:
            sub.u8()


def test_buffer_vector_bounds() -> None:
    with pytest.raises(DecodeError, match="minimum 2"):
        Reader(b"\x01\x00").vector(1, min_len=2)
    with pytest.raises(DecodeError, match="truncated"):
        Reader(b"\x05\x00").vector(1)
    # a sub-reader cannot read past its own end even when the parent has more
    sub = Reader(b"\x01\xaa\xbb").vector(1)
    assert sub.u8() == 0xAA
    with pytest.raises(DecodeError):
        sub.u8()


def test_buffer_vector_names_what() -> None:
    with pytest.raises(DecodeError, match="inner thing"):
        Reader(b"\x01\xaa").vector(1, what="inner thing").u16()


def test_buffer_u16_list() -> None:
    assert Reader(b"\x00\x04\x13\x01\x13\x02").u16_list() == [0x1301, 0x1302]
    with pytest.raises(DecodeError, match="odd length"):
        Reader(b"\x00\x03\x13\x01\x13").u16_list()
    with pytest.raises(DecodeError, match="minimum"):
        Reader(b"\x00\x00").u16_list(min_len=2)


def test_buffer_u8_list() -> None:
    assert Reader(b"\x02\x00\x01").u8_list() == [0, 1]
    with pytest.raises(DecodeError):
        Reader(b"\x00").u8_list(min_len=1)


def test_buffer_writer_vectors_fill_lengths() -> None:
    w = Writer()
    with w.vector(2):
        w.u8(1)
        with w.vector(1):
            w.raw(b"xyz")
        with w.vector(3):
            pass
    assert w.getvalue() == b"\x00\x08\x01\x03xyz\x00\x00\x00"


def test_buffer_writer_opaque_and_lists() -> None:
    w = Writer()
    w.opaque(1, b"ab")
    w.opaque(2, memoryview(b"c"))
    w.u16_list([0x1301, 0x0A0A])
    w.u8_list((0, 1))
    assert w.getvalue() == b"\x02ab\x00\x01c\x00\x04\x13\x01\x0a\x0a\x02\x00\x01"


def test_buffer_writer_overflow_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        Writer().opaque(1, bytes(256))
    w = Writer()
    with pytest.raises(ValueError):
        with w.vector(1):
            w.raw(bytes(256))
    Writer().opaque(1, bytes(255))


def test_buffer_writer_reader_round_trip() -> None:
    w = Writer()
    w.u16(0x0303)
    w.opaque(3, b"cert")
    with w.vector(2):
        w.u32(7)
    r = Reader(w.getvalue())
    assert r.u16() == 0x0303
    assert r.opaque(3) == b"cert"
    with r.vector(2) as sub:
        assert sub.u32() == 7
    r.finish()


def test_buffer_vector_2_inline_matches_the_length_path() -> None:
    """vector(2) reads its length inline: the same sub-reader, position and errors as
    the general path (_length) gives."""
    import random

    from tlsmith.errors import DecodeError as Err

    def reference(r: Reader, min_len: int) -> Reader:
        n = r._length(2)
        if n < min_len:
            raise Err(f"{r._what}: vector of {n} byte(s), minimum {min_len}")
        pos = r._pos
        end = pos + n
        if end > r._end:
            raise r._truncated(n, pos)
        r._pos = end
        return Reader(r._data[pos:end], r._what)

    def outcome(read: Any, data: bytes, start: int, min_len: int) -> tuple[Any, ...]:
        r = Reader(data, "thing")
        r._pos = start
        try:
            sub = read(r, min_len)
        except Err as exc:
            return ("error", str(exc), r._pos)
        return ("ok", bytes(sub._data), sub._what, r._pos)

    rng = random.Random(2)
    for _ in range(3000):
        data = bytes(rng.randrange(256) if rng.random() < 0.3 else rng.randrange(4)
                     for _ in range(rng.randrange(0, 8)))
        start = rng.randrange(len(data) + 1)
        min_len = rng.randrange(3)
        assert outcome(lambda r, m: r.vector(2, min_len=m), data, start, min_len) == \
            outcome(reference, data, start, min_len)

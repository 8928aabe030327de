"""Reader and Writer for the TLS presentation language (RFC 8446 §3).

Length prefixes come from the structure: ``Writer.vector(n)`` fills the prefix when
its block ends, ``Reader.vector(n)`` hands back a sub-reader that must be consumed.
Every read past the end, and every unconsumed byte, is a ``DecodeError``.
"""

from __future__ import annotations

from types import TracebackType

from tlsmith.errors import DecodeError

_FROM = int.from_bytes
# 2^(8 * prefix): the first length a ``prefix``-byte length field cannot hold.
_PREFIX_LIMITS = (1, 1 << 8, 1 << 16, 1 << 24, 1 << 32, 1 << 40, 1 << 48, 1 << 56, 1 << 64)
_ZEROS = tuple(bytes(n) for n in range(len(_PREFIX_LIMITS)))  # a length's placeholder


class Reader:
    """Reads big-endian integers and vectors from a byte string without copying."""

    __slots__ = ("_data", "_end", "_pos", "_what")

    def __init__(self, data: bytes | bytearray | memoryview, what: str = "message") -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._end = len(self._data)
        self._what = what

    # -- position -----------------------------------------------------------------
    @property
    def remaining(self) -> int:
        return self._end - self._pos

    @property
    def position(self) -> int:
        return self._pos

    def at_end(self) -> bool:
        return self._pos >= self._end

    def finish(self) -> None:
        """Require that everything was consumed (trailing bytes are a decode_error)."""
        if self._pos != self._end:
            raise DecodeError(
                f"{self._what}: {self._end - self._pos} trailing byte(s) after the structure"
            )

    def _take(self, n: int) -> memoryview:
        pos = self._pos
        end = pos + n
        if end > self._end:
            raise self._truncated(n, pos)
        self._pos = end
        return self._data[pos:end]

    def _truncated(self, n: int, pos: int) -> DecodeError:
        return DecodeError(
            f"{self._what}: truncated, needed {n} byte(s) but only {self._end - pos} left")

    # -- integers -----------------------------------------------------------------
    def u8(self) -> int:
        pos = self._pos
        if pos >= self._end:
            raise DecodeError(f"{self._what}: truncated, needed 1 byte but none left")
        self._pos = pos + 1
        return self._data[pos]

    def u16(self) -> int:
        pos = self._pos
        end = pos + 2
        if end > self._end:
            raise self._truncated(2, pos)
        self._pos = end
        data = self._data
        return (data[pos] << 8) | data[pos + 1]

    def u24(self) -> int:
        return _FROM(self._take(3), "big")

    def u32(self) -> int:
        return _FROM(self._take(4), "big")

    def u64(self) -> int:
        return _FROM(self._take(8), "big")

    # -- bytes and vectors --------------------------------------------------------
    def raw(self, n: int) -> bytes:
        """Exactly ``n`` bytes (a fixed-length opaque field)."""
        return bytes(self._take(n))

    def view(self, n: int) -> memoryview:
        """Exactly ``n`` bytes, without copying."""
        return self._take(n)

    def rest(self) -> bytes:
        return bytes(self._take(self._end - self._pos))

    def _length(self, prefix: int) -> int:
        # (u8/u16/u24/u32 inlined: a length is read for every vector.)
        pos = self._pos
        if prefix == 1:
            if pos >= self._end:
                raise DecodeError(f"{self._what}: truncated, needed 1 byte but none left")
            self._pos = pos + 1
            return self._data[pos]
        if not 2 <= prefix <= 4:
            raise ValueError(f"unsupported length prefix size {prefix}")
        end = pos + prefix
        if end > self._end:
            raise self._truncated(prefix, pos)
        self._pos = end
        return _FROM(self._data[pos:end], "big")

    def opaque(self, prefix: int, *, min_len: int = 0, max_len: int | None = None) -> bytes:
        """``opaque x<min..max>`` with a ``prefix``-byte length."""
        n = self._length(prefix)
        if n < min_len or (max_len is not None and n > max_len):
            raise DecodeError(
                f"{self._what}: vector length {n} outside the allowed range "
                f"{min_len}..{max_len if max_len is not None else 'max'}"
            )
        pos = self._pos
        end = pos + n
        if end > self._end:
            raise self._truncated(n, pos)
        self._pos = end
        return bytes(self._data[pos:end])

    def vector(self, prefix: int, *, min_len: int = 0, what: str | None = None) -> Reader:
        """A sub-reader over a length-prefixed vector; call ``finish()`` on it (or use
        it as a context manager) so unconsumed bytes are caught."""
        pos = self._pos
        if prefix == 2:  # (_length inlined for the usual prefix: every extension block)
            end = pos + 2
            if end > self._end:
                raise self._truncated(2, pos)
            self._pos = pos = end
            data = self._data
            n = data[end - 2] << 8 | data[end - 1]
        else:
            n = self._length(prefix)
            pos = self._pos
        if n < min_len:
            raise DecodeError(f"{what or self._what}: vector of {n} byte(s), minimum {min_len}")
        end = pos + n
        if end > self._end:
            raise self._truncated(n, pos)
        self._pos = end
        return Reader(self._data[pos:end], what or self._what)

    def u16_list(self, prefix: int = 2, *, min_len: int = 0) -> list[int]:
        """A vector of uint16 values (e.g. cipher suites, groups, schemes)."""
        n = self._length(prefix)
        if n % 2:
            raise DecodeError(f"{self._what}: odd length {n} for a list of 16-bit values")
        if n < min_len:
            raise DecodeError(f"{self._what}: list of {n} byte(s), minimum {min_len}")
        view = self._take(n)
        return [(view[i] << 8) | view[i + 1] for i in range(0, n, 2)]

    def u8_list(self, prefix: int = 1, *, min_len: int = 0) -> list[int]:
        n = self._length(prefix)
        if n < min_len:
            raise DecodeError(f"{self._what}: list of {n} byte(s), minimum {min_len}")
        return list(self._take(n))

    def __enter__(self) -> Reader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.finish()


class Writer:
    """Builds a byte string; length prefixes are filled in when a vector block ends."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def getvalue(self) -> bytes:
        return bytes(self._buf)

    def __len__(self) -> int:
        return len(self._buf)

    def u8(self, v: int) -> None:
        self._buf.append(v)

    def u16(self, v: int) -> None:
        self._buf += v.to_bytes(2, "big")

    def u24(self, v: int) -> None:
        self._buf += v.to_bytes(3, "big")

    def u32(self, v: int) -> None:
        self._buf += v.to_bytes(4, "big")

    def u64(self, v: int) -> None:
        self._buf += v.to_bytes(8, "big")

    def raw(self, data: bytes | bytearray | memoryview) -> None:
        self._buf += data

    def opaque(self, prefix: int, data: bytes | bytearray | memoryview) -> None:
        """A length-prefixed opaque vector."""
        n = len(data)
        if n >= _PREFIX_LIMITS[prefix]:
            raise ValueError(f"{n} bytes do not fit a {prefix}-byte length prefix")
        buf = self._buf
        buf += n.to_bytes(prefix, "big")
        buf += data

    def u16_list(self, values: list[int] | tuple[int, ...], prefix: int = 2) -> None:
        with self.vector(prefix):
            for v in values:
                self._buf += v.to_bytes(2, "big")

    def u8_list(self, values: list[int] | tuple[int, ...], prefix: int = 1) -> None:
        with self.vector(prefix):
            self._buf += bytes(values)

    def vector(self, prefix: int) -> _VectorBlock:
        """``with w.vector(n):`` -- everything written inside the block gets an ``n``-byte
        length in front (filled in when the block ends)."""
        buf = self._buf
        start = len(buf)
        buf += _ZEROS[prefix]
        return _VectorBlock(buf, start, prefix)


class _VectorBlock:
    """The context manager behind ``Writer.vector`` (a class: cheaper than a generator)."""

    __slots__ = ("_buf", "_prefix", "_start")

    def __init__(self, buf: bytearray, start: int, prefix: int) -> None:
        self._buf = buf
        self._start = start
        self._prefix = prefix

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            return
        buf = self._buf
        start = self._start
        prefix = self._prefix
        n = len(buf) - start - prefix
        if n >= _PREFIX_LIMITS[prefix]:
            raise ValueError(f"{n} bytes do not fit a {prefix}-byte length prefix")
        buf[start : start + prefix] = n.to_bytes(prefix, "big")

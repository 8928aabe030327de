"""A cursor over bytes that records a labelled span for everything it reads.

Like the codec's Reader, lengths come from the structure (``vector`` reads the length
prefix and hands back a sub-walker bounded by it); unlike it, every read leaves a
``Span`` behind, so the explainer can say which bytes are which field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tlsmith.explainer.spans import Span

E = TypeVar("E")


class Truncated(Exception):
    """The bytes end before the structure does (the annotation falls back to hex)."""


def hexs(data: bytes, limit: int = 32) -> str:
    """Hex, elided in the middle with a count past ``limit`` bytes (never silently)."""
    if len(data) <= limit:
        return data.hex()
    half = limit // 2
    return f"{data[:half].hex()}…({len(data) - limit} more bytes)…{data[-half:].hex()}"


def _follow(n: int) -> str:
    return "1 byte follows" if n == 1 else f"{n} bytes follow"


class Walker:
    """Reads ``data[start:end]``; every read appends a span to ``node``."""

    def __init__(self, data: bytes, start: int, end: int, node: Span) -> None:
        self.data = data
        self.pos = start
        self.end = end
        self.node = node

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def take(self, n: int, label: str, meaning: str = "", rfc: str = "") -> bytes:
        """A fixed-length field of ``n`` bytes (no span when ``n`` is 0)."""
        if n > self.remaining:
            raise Truncated(f"{label}: needed {n} byte(s), {self.remaining} left")
        value = self.data[self.pos:self.pos + n]
        if n:
            self.node.children.append(Span(self.pos, n, label, meaning, rfc))
        self.pos += n
        return value

    def uint(self, n: int, label: str, meaning: str | Callable[[int], str] = "",
             rfc: str = "") -> int:
        """A big-endian integer of ``n`` bytes; ``meaning`` may be computed from it."""
        if n > self.remaining:
            raise Truncated(f"{label}: needed {n} byte(s), {self.remaining} left")
        value = int.from_bytes(self.data[self.pos:self.pos + n], "big")
        text = meaning(value) if callable(meaning) else meaning
        self.take(n, label, text, rfc)
        return value

    def vector(self, prefix: int, label: str, meaning: str = "", rfc: str = "") -> Walker:
        """A length-prefixed vector: a node holding a "length" leaf; returns the walker
        over its content (which the caller must consume: see ``finish``)."""
        if prefix > self.remaining:
            raise Truncated(f"{label}: needed a {prefix}-byte length, {self.remaining} left")
        length = int.from_bytes(self.data[self.pos:self.pos + prefix], "big")
        if prefix + length > self.remaining:
            raise Truncated(f"{label}: says {length} byte(s), only "
                            f"{self.remaining - prefix} left")
        node = Span(self.pos, prefix + length, label, meaning, rfc)
        node.children.append(Span(self.pos, prefix, "length", _follow(length)))
        self.node.children.append(node)
        self.pos += prefix + length
        return Walker(self.data, node.offset + prefix, node.end, node)

    def opaque(self, prefix: int, label: str, meaning: str | Callable[[bytes], str] = "",
               rfc: str = "") -> bytes:
        """A length-prefixed opaque vector: length leaf and one content leaf."""
        sub = self.vector(prefix, label, "", rfc)
        value = sub.data[sub.pos:sub.end]
        text = meaning(value) if callable(meaning) else meaning
        sub.node.meaning = text
        if value:
            sub.take(len(value), "content", text or hexs(value))
        return value

    def rest(self, label: str, meaning: str = "", rfc: str = "") -> bytes:
        """Everything left, as one field."""
        return self.take(self.remaining, label, meaning, rfc)

    def each(self, item: Callable[[Walker], E]) -> list[E]:
        """Call ``item`` until the content is consumed."""
        out: list[E] = []
        while self.remaining > 0:
            out.append(item(self))
        return out

    def finish(self, what: str = "") -> None:
        """Label bytes the structure did not consume (a decoder would reject them)."""
        if self.remaining:
            self.rest("trailing bytes", f"{self.remaining} byte(s) after the end of "
                      f"{what or self.node.label}: not part of the structure")

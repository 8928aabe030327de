"""Labelled byte ranges: the tree the explainer draws over a record's bytes.

A ``Span`` names ``length`` bytes at ``offset`` (relative to the byte string it was
built over); its children, when it has any, split it into smaller named ranges. The
leaves of a record's tree cover every byte of the record exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


def rfc_url(ref: str) -> str:
    """``"8446#4.1.2"`` -> the RFC Editor's link to that section (a link, not a fetch)."""
    number, _, section = ref.partition("#")
    url = f"https://www.rfc-editor.org/rfc/rfc{number}"
    return f"{url}#section-{section}" if section else url


def rfc_text(ref: str) -> str:
    """``"8446#4.1.2"`` -> ``"RFC 8446 §4.1.2"``."""
    number, _, section = ref.partition("#")
    return f"RFC {number} §{section}" if section else f"RFC {number}"


@dataclass
class Span:
    """``length`` bytes at ``offset``: what the field is (``label``), what its value
    means here (``meaning``) and where the RFC defines it (``rfc``, e.g. "8446#4.1.2")."""

    offset: int
    length: int
    label: str
    meaning: str = ""
    rfc: str = ""
    children: list[Span] = field(default_factory=list)

    @property
    def end(self) -> int:
        return self.offset + self.length

    def leaves(self) -> Iterator[Span]:
        if not self.children:
            yield self
            return
        for child in self.children:
            yield from child.leaves()

    def walk(self, depth: int = 0) -> Iterator[tuple[int, Span]]:
        yield depth, self
        for child in self.children:
            yield from child.walk(depth + 1)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"offset": self.offset, "length": self.length,
                               "label": self.label}
        if self.meaning:
            out["meaning"] = self.meaning
        if self.rfc:
            out["rfc"] = self.rfc
        if self.children:
            out["children"] = [c.to_json() for c in self.children]
        return out


def clip(span: Span, lo: int, hi: int, shift: int) -> Span | None:
    """The part of ``span`` inside [lo, hi), moved by ``shift``; None if outside. A
    message split over records is cut this way, each part marked as a part."""
    start, end = max(span.offset, lo), min(span.end, hi)
    if start >= end:
        return None
    whole = start == span.offset and end == span.end
    label = span.label if whole else f"{span.label} (part: {end - start} of {span.length} bytes)"
    out = Span(start + shift, end - start, label, span.meaning, span.rfc)
    for child in span.children:
        part = clip(child, lo, hi, shift)
        if part is not None:
            out.children.append(part)
    return out


def covers_exactly(root: Span, length: int, start: int = 0) -> str | None:
    """None if the leaves of ``root`` cover [start, length) once each, in order; else what
    is wrong (for the property test and as a self-check before rendering)."""
    pos = start
    for leaf in root.leaves():
        if leaf.offset != pos:
            return f"leaf {leaf.label!r} starts at {leaf.offset}, expected {pos}"
        if leaf.length <= 0:
            return f"leaf {leaf.label!r} is empty"
        pos = leaf.end
    if pos != length:
        return f"leaves end at {pos}, expected {length}"
    return None

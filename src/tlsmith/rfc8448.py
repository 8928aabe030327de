"""A parser for the example handshake traces of RFC 8448 ("Example Handshake Traces for
TLS 1.3"), read from the RFC's own text so test vectors are never copied by hand.

The RFC prints each trace as a sequence of steps::

   {server}  derive secret "tls13 c hs traffic":

      PRK (32 octets):  1d c8 26 e9 ...
         04 6a a6 b9 ...

Each step has an actor (``client`` or ``server``), a description (which may wrap onto
the next line) and labelled values, mostly hex, which may run across a page break.
``parse`` strips the page furniture (footer, form feed, running header) and returns
one ``Trace`` per numbered section that holds steps (3 to 7).

This module only reads text; it is used by the test-suite and by
``tlsmith.demo_keyschedule``, never by the protocol core.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

#: Environment variable naming a directory that holds ``rfc8448.txt``.
ENV_RFC_DIR = "TLSMITH_RFC_DIR"
RFC8448_FILENAME = "rfc8448.txt"

#: The sections of RFC 8448 that hold traces.
SECTION_SIMPLE_1RTT = 3
SECTION_RESUMED_0RTT = 4
SECTION_HELLO_RETRY_REQUEST = 5
SECTION_CLIENT_AUTH = 6
SECTION_COMPATIBILITY_MODE = 7

_PAGE_FOOTER = re.compile(r"^\S.*\[Page \d+\]\s*$")
_PAGE_HEADER = re.compile(r"^RFC \d+\s.*\d{4}\s*$")
_SECTION = re.compile(r"^(\d+)\.\s+(\S.*?)\s*$")
_STEP = re.compile(r"^ {3}\{(client|server)\}\s+(\S.*?)\s*$")
_PROSE = re.compile(r"^ {3}\S")
_LABEL = re.compile(
    r"^ {6}(?P<label>[A-Za-z][A-Za-z0-9 ]*?)(?: \((?P<octets>\d+) octets\))?:\s+(?P<rest>\S.*?)\s*$"
)
_INDENT6 = re.compile(r"^ {6}(\S.*?)\s*$")
_CONTINUATION = re.compile(r"^ {9,}(\S.*?)\s*$")
_HEX = re.compile(r"^(?:[0-9a-f]{2})(?: [0-9a-f]{2})*$")
_CONSTRUCT = re.compile(r"^construct an? (\w+) handshake message$")
_SEND = re.compile(r"^send (\w+) record$")


class RFC8448FormatError(ValueError):
    """The RFC text did not have the shape this parser expects."""


def normalize_description(description: str) -> str:
    """Collapse whitespace and drop the trailing colon (``'derive secret "x":'`` and
    ``'derive secret "x"'`` name the same step)."""
    return " ".join(description.split()).rstrip(":").rstrip()


def normalize_actor(actor: str) -> str:
    """``'{server}'`` and ``'server'`` both name the server."""
    name = actor.strip().strip("{}").lower()
    if name not in ("client", "server"):
        raise ValueError(f"actor must be client or server, not {actor!r}")
    return name


@dataclass(frozen=True)
class Step:
    """One ``{actor}  description`` block with its labelled values."""

    actor: str
    description: str
    #: Hex values by label (``"PRK"``, ``"expanded"``, ``"key expanded"``, ...);
    #: ``(empty)`` is ``b""``.
    values: Mapping[str, bytes]
    #: Values that are not hex, e.g. ``{"salt": "0 (all zero octets)"}``.
    notes: Mapping[str, str] = field(default_factory=dict)
    #: 1-based line of the RFC text where the step starts.
    line: int = 0

    def __getitem__(self, label: str) -> bytes:
        try:
            return self.values[label]
        except KeyError:
            raise KeyError(
                f"step {{{self.actor}}} {self.description!r} (line {self.line}) has no "
                f"value {label!r}; it has {sorted(self.values)}"
            ) from None

    def __contains__(self, label: object) -> bool:
        return label in self.values

    def get(self, label: str, default: bytes | None = None) -> bytes | None:
        return self.values.get(label, default)

    @property
    def same_as(self) -> str | None:
        """For steps the RFC does not repeat -- ``(same as server)`` -- the reference."""
        match = re.search(r"\((same as [^)]*)\)", self.description)
        return match.group(1) if match else None


@dataclass(frozen=True)
class HandshakeMessage:
    """A ``construct a X handshake message`` step: the raw message, header included."""

    actor: str
    name: str
    raw: bytes
    step: Step


@dataclass(frozen=True)
class Record:
    """A ``send X record`` step: the plaintext payload and the record on the wire."""

    actor: str
    kind: str  # "handshake", "application_data" or "alert"
    payload: bytes
    complete_record: bytes
    step: Step


@dataclass(frozen=True)
class Trace:
    """The steps of one section of RFC 8448, in the order the RFC prints them."""

    section: int
    title: str
    steps: tuple[Step, ...]

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    def find_all(self, actor: str, description: str) -> list[Step]:
        """Every step of ``actor`` whose description is ``description`` (whitespace and
        a trailing colon do not matter)."""
        who = normalize_actor(actor)
        want = normalize_description(description)
        return [s for s in self.steps if s.actor == who and s.description == want]

    def find(self, actor: str, description: str, nth: int = 0) -> Step:
        """The ``nth`` (0-based) step of ``actor`` with that description; ``KeyError``
        listing the actor's descriptions if there is none."""
        found = self.find_all(actor, description)
        if nth < len(found):
            return found[nth]
        who = normalize_actor(actor)
        known = sorted({s.description for s in self.steps if s.actor == who})
        raise KeyError(
            f"RFC 8448 §{self.section}: no step #{nth} {{{who}}} "
            f"{normalize_description(description)!r} ({len(found)} found); "
            f"the {who}'s steps are: {known}"
        )

    def handshake_messages(self) -> list[HandshakeMessage]:
        """Every ``construct a/an X handshake message`` step, in trace order."""
        out: list[HandshakeMessage] = []
        for step in self.steps:
            match = _CONSTRUCT.match(step.description)
            if match:
                name = match.group(1)
                out.append(HandshakeMessage(step.actor, name, step[name], step))
        return out

    def message(self, actor: str, name: str, nth: int = 0) -> bytes:
        """The raw bytes of the ``nth`` handshake message ``name`` the actor constructs."""
        article = "an" if name[0] in "AEIOU" else "a"
        return self.find(actor, f"construct {article} {name} handshake message", nth)[name]

    def records(self) -> list[Record]:
        """Every ``send X record`` step, in trace order."""
        out: list[Record] = []
        for step in self.steps:
            match = _SEND.match(step.description)
            if match:
                out.append(
                    Record(
                        step.actor,
                        match.group(1),
                        step["payload"],
                        step["complete record"],
                        step,
                    )
                )
        return out


# -- parsing --------------------------------------------------------------------------


class _StepBuilder:
    def __init__(self, actor: str, description: str, line: int) -> None:
        self.actor = actor
        self.description = description
        self.line = line
        self.values: dict[str, bytes] = {}
        self.notes: dict[str, str] = {}
        self._label: str | None = None
        self._octets: int | None = None
        self._text: list[str] = []

    @property
    def takes_description(self) -> bool:
        # A description that wraps has no value yet and does not end with ":".
        return not self.values and self._label is None and not self.description.endswith(":")

    def start_value(self, label: str, octets: int | None, text: str, line: int) -> None:
        self.end_value()
        if label in self.values or label in self.notes:
            raise RFC8448FormatError(f"line {line}: value {label!r} appears twice in a step")
        self._label, self._octets, self._text = label, octets, [text]

    def continue_value(self, text: str) -> bool:
        if self._label is None:
            return False
        self._text.append(text)
        return True

    def end_value(self) -> None:
        if self._label is None:
            return
        label, octets = self._label, self._octets
        text = " ".join(self._text)
        self._label, self._octets, self._text = None, None, []
        if text == "(empty)":
            data = b""
        elif _HEX.match(text):
            data = bytes.fromhex(text)
        else:
            self.notes[label] = text
            return
        if octets is not None and len(data) != octets:
            raise RFC8448FormatError(
                f"step at line {self.line}: {label!r} announces {octets} octets but "
                f"{len(data)} were parsed"
            )
        self.values[label] = data

    def build(self) -> Step:
        self.end_value()
        return Step(
            self.actor,
            normalize_description(self.description),
            dict(self.values),
            dict(self.notes),
            self.line,
        )


def parse(text: str) -> dict[int, Trace]:
    """Parse the whole RFC 8448 text into ``{section number: Trace}`` for every section
    that holds trace steps."""
    sections: dict[int, tuple[str, list[Step]]] = {}
    current_section: int | None = None
    step: _StepBuilder | None = None

    def close_step() -> None:
        nonlocal step
        if step is not None and current_section is not None:
            sections[current_section][1].append(step.build())
        step = None

    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.replace("\f", "").rstrip()
        if not line or _PAGE_FOOTER.match(line) or _PAGE_HEADER.match(line):
            continue  # blank lines and page furniture never end a value
        section = _SECTION.match(line)
        if section:
            close_step()
            current_section = int(section.group(1))
            sections[current_section] = (section.group(2), [])
            continue
        if current_section is None:
            continue
        match = _STEP.match(line)
        if match:
            close_step()
            step = _StepBuilder(match.group(1), match.group(2), number)
            continue
        if _PROSE.match(line):
            close_step()  # a paragraph ("Note: ...") ends any step
            continue
        if step is None:
            continue  # the continuation of a paragraph
        label = _LABEL.match(line)
        if label:
            octets = label.group("octets")
            step.start_value(
                label.group("label"), int(octets) if octets else None, label.group("rest"), number
            )
            continue
        indent6 = _INDENT6.match(line)
        if indent6:
            if step.takes_description:
                step.description += " " + indent6.group(1)
                continue
            raise RFC8448FormatError(f"line {number}: unexpected text {line.strip()!r}")
        continuation = _CONTINUATION.match(line)
        if continuation and step.continue_value(continuation.group(1)):
            continue
        raise RFC8448FormatError(f"line {number}: cannot place {line.strip()!r}")
    close_step()
    return {
        num: Trace(num, title, tuple(steps)) for num, (title, steps) in sections.items() if steps
    }


# -- finding and loading the RFC ------------------------------------------------------


def bundled_path() -> Path:
    """The copy of RFC 8448 shipped inside the package (``tlsmith/data/rfc8448.txt``,
    the RFC as published by the RFC Editor, unmodified)."""
    return Path(__file__).resolve().parent / "data" / RFC8448_FILENAME


def candidate_paths(filename: str = RFC8448_FILENAME) -> list[Path]:
    """Where the RFC text is looked for: ``$TLSMITH_RFC_DIR`` if set, then the copy
    shipped with the package. Nothing outside the package is read by default."""
    out: list[Path] = []
    env = os.environ.get(ENV_RFC_DIR)
    if env:
        out.append(Path(env) / filename)
    out.append(bundled_path().with_name(filename))
    return out


def locate(filename: str = RFC8448_FILENAME) -> Path:
    """The first existing candidate path; ``FileNotFoundError`` naming where it looked."""
    candidates = candidate_paths(filename)
    for path in candidates:
        if path.is_file():
            return path
    tried = ", ".join(str(p) for p in candidates)
    raise FileNotFoundError(f"{filename} not found; tried {tried}")


def default_rfc8448_path() -> Path | None:
    """``locate()`` for RFC 8448, or None when the text is nowhere to be found."""
    try:
        return locate(RFC8448_FILENAME)
    except FileNotFoundError:
        return None


@cache
def _load_cached(path: Path) -> dict[int, Trace]:
    return parse(path.read_text(encoding="utf-8"))


def load(path: Path | None = None) -> dict[int, Trace]:
    """All traces of the RFC at ``path`` (default: ``locate()``), parsed once per path."""
    return _load_cached((path or locate()).resolve())


def load_section(section: int, path: Path | None = None) -> Trace:
    """The trace of one section, e.g. ``load_section(3)`` for the Simple 1-RTT Handshake."""
    traces = load(path)
    try:
        return traces[section]
    except KeyError:
        raise KeyError(
            f"RFC 8448 has no trace in section {section}; traces: {sorted(traces)}"
        ) from None


__all__ = [
    "ENV_RFC_DIR",
    "SECTION_CLIENT_AUTH",
    "SECTION_COMPATIBILITY_MODE",
    "SECTION_HELLO_RETRY_REQUEST",
    "SECTION_RESUMED_0RTT",
    "SECTION_SIMPLE_1RTT",
    "HandshakeMessage",
    "RFC8448FormatError",
    "Record",
    "Step",
    "Trace",
    "bundled_path",
    "candidate_paths",
    "default_rfc8448_path",
    "load",
    "load_section",
    "locate",
    "normalize_actor",
    "normalize_description",
    "parse",
]

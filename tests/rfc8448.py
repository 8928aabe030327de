"""Test helper (not a test file): the RFC 8448 traces, parsed from the RFC's own text.

The one parser lives in ``tlsmith.rfc8448``; this module only decides where the RFC is
for the test-suite: the RFC text shipped inside the package
(``src/tlsmith/data/rfc8448.txt``, the RFC as published), so the tests need nothing
outside the repository. Hand-copied hex is not allowed in the tests: every vector comes
from here.

Usage::

    from rfc8448 import load_section
    trace = load_section(3)
    trace.find("{server}", 'derive secret "tls13 s hs traffic"')["expanded"]
"""

from __future__ import annotations

from pathlib import Path

from tlsmith.rfc8448 import (
    SECTION_HELLO_RETRY_REQUEST,
    SECTION_RESUMED_0RTT,
    SECTION_SIMPLE_1RTT,
    HandshakeMessage,
    Record,
    Step,
    Trace,
    bundled_path,
    load,
)


def rfc_path() -> Path:
    """The RFC 8448 text the tests read: the copy shipped inside the package."""
    return bundled_path()


def load_section(section: int) -> Trace:
    """The parsed trace of one RFC 8448 section (3, 4, 5, 6 or 7)."""
    return load(rfc_path())[section]


__all__ = [
    "SECTION_HELLO_RETRY_REQUEST",
    "SECTION_RESUMED_0RTT",
    "SECTION_SIMPLE_1RTT",
    "HandshakeMessage",
    "Record",
    "Step",
    "Trace",
    "load_section",
    "rfc_path",
]

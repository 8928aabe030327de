"""Test helper (not a test file): the RFC 8448 traces, parsed from the RFC's own text.

The one parser lives in ``tlsmith.rfc8448``; this module only decides where the RFC is
for the test-suite: ``$TLSMITH_RFC_DIR/rfc8448.txt`` if that variable is set, else
``shared/rfcs/rfc8448.txt`` beside the repository root (``/work/shared`` for the repo in
``/work/main``). Hand-copied hex is not allowed in the tests: every vector comes from here.

Usage::

    from rfc8448 import load_section
    trace = load_section(3)
    trace.find("{server}", 'derive secret "tls13 s hs traffic"')["expanded"]
"""

from __future__ import annotations

import os
from pathlib import Path

from tlsmith.rfc8448 import (
    ENV_RFC_DIR,
    SECTION_HELLO_RETRY_REQUEST,
    SECTION_RESUMED_0RTT,
    SECTION_SIMPLE_1RTT,
    HandshakeMessage,
    Record,
    Step,
    Trace,
    load,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


def rfc_path(filename: str = "rfc8448.txt") -> Path:
    """The RFC text the tests read (``$TLSMITH_RFC_DIR`` wins over the sibling ``shared``)."""
    env = os.environ.get(ENV_RFC_DIR)
    if env:
        return Path(env) / filename
    return REPO_ROOT.parent / "shared" / "rfcs" / filename


def load_section(section: int) -> Trace:
    """The parsed trace of one RFC 8448 section (3, 4, 5, 6 or 7)."""
    path = rfc_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"RFC 8448 text not found at {path}; set ${ENV_RFC_DIR} to the directory "
            "holding rfc8448.txt"
        )
    return load(path)[section]


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

"""Turning the names people type into code points."""

from __future__ import annotations

import click

from tlsmith.codec.enums import CipherSuite, NamedGroup
from tlsmith.crypto.suites import suite_info

_GROUP_ALIASES = {
    "p-256": NamedGroup.SECP256R1, "prime256v1": NamedGroup.SECP256R1,
    "p-384": NamedGroup.SECP384R1, "p-521": NamedGroup.SECP521R1,
    "x25519mlkem768": NamedGroup.X25519MLKEM768, "mlkem": NamedGroup.X25519MLKEM768,
}


def parse_group(name: str) -> NamedGroup:
    key = name.strip().lower()
    if key in _GROUP_ALIASES:
        return _GROUP_ALIASES[key]
    for g in NamedGroup:
        if g.name.lower() == key:
            return g
    raise click.BadParameter(
        f"unknown group {name!r}; try one of: "
        + ", ".join(g.name.lower() for g in NamedGroup))


def parse_suite(name: str) -> CipherSuite:
    key = name.strip().upper().replace("-", "_")
    if not key.startswith("TLS_"):
        key = "TLS_" + key
    for s in CipherSuite:
        if s.name == key:
            return s
    raise click.BadParameter(f"unknown cipher suite {name!r}; use IANA names such as "
                             "TLS_AES_128_GCM_SHA256")


def suites_for(named: list[CipherSuite], defaults: tuple[CipherSuite, ...]
               ) -> tuple[CipherSuite, ...]:
    """The suites to configure: the ones named on the command line, and for a version
    (TLS 1.3 / 1.2) none of them belongs to, that version's defaults (as OpenSSL keeps
    -ciphersuites and -cipher apart)."""
    if not named:
        return defaults
    for s in named:
        if suite_info(s) is None:
            raise click.BadParameter(f"{s.name} is not a cipher suite tlsmith implements")

    def tls13(s: CipherSuite) -> bool:
        info = suite_info(s)
        return info is not None and info.tls13

    named13 = [s for s in named if tls13(s)]
    named12 = [s for s in named if not tls13(s)]
    return (tuple(named13 or [s for s in defaults if tls13(s)])
            + tuple(named12 or [s for s in defaults if not tls13(s)]))

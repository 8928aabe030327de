"""Turning the names people type into code points."""

from __future__ import annotations

import click

from tlsmith.codec.enums import CipherSuite, NamedGroup

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

"""Guided walks through TLS key schedules, every value recomputed and checked.

``walkthrough``: the TLS 1.3 key schedule of RFC 8448 §3 (Simple 1-RTT Handshake). Every
value is computed by tlsmith (``crypto.schedule13``, ``crypto.transcript``,
``crypto.kx``) from the inputs the RFC prints -- the ephemeral private keys and the
handshake messages -- and compared with the value the RFC prints next to it::

    from rich.console import Console
    from tlsmith.demo_keyschedule import walkthrough
    from tlsmith.rfc8448 import bundled_path
    walkthrough(bundled_path(), Console())

The same walk for a live handshake (``tlsmith demo``) is in ``tlsmith.demo_walk``.

This module sits above the core: the core never imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from tlsmith.codec.buffer import Reader
from tlsmith.codec.enums import NamedGroup
from tlsmith.crypto import kx
from tlsmith.crypto import schedule13 as ks
from tlsmith.crypto.transcript import Transcript
from tlsmith.rfc8448 import SECTION_SIMPLE_1RTT, Trace, load

# RFC 8448 §3 negotiates TLS_AES_128_GCM_SHA256 (RFC 8446 §B.4): SHA-256, 16-byte key,
# 12-byte IV.
_HASH = "sha256"
_KEY_LEN = 16
_IV_LEN = 12


@dataclass(frozen=True)
class Row:
    """One value of the walk: its RFC 8446 name, how it is derived, tlsmith's value and
    the RFC's."""

    phase: str
    name: str
    how: str
    computed: bytes
    expected: bytes

    @property
    def matches(self) -> bool:
        return self.computed == self.expected


def _fixed_random(value: bytes) -> Callable[[int], bytes]:
    """A ``kx.Random`` that hands out the RFC's private key, so kx builds that key."""

    def random(n: int) -> bytes:
        if n != len(value):
            raise ValueError(f"expected a request for {len(value)} bytes, got {n}")
        return value

    return random


def _ticket_nonce(new_session_ticket: bytes) -> bytes:
    # RFC 8446 §4.6.1: ticket_lifetime u32, ticket_age_add u32, ticket_nonce<0..255>, ...
    reader = Reader(new_session_ticket[4:], "NewSessionTicket")
    reader.u32()
    reader.u32()
    return reader.opaque(1)


def walkthrough_rows(trace: Trace) -> list[Row]:
    """Compute RFC 8448 §3's key schedule with tlsmith and pair each value with the RFC's."""
    rows: list[Row] = []

    def add(phase: str, name: str, how: str, computed: bytes, expected: bytes) -> None:
        rows.append(Row(phase, name, how, computed, expected))

    def add_keys(phase: str, who: str, kind: str, secret: bytes, short: str,
                 step: dict[str, bytes]) -> None:
        """The write key and IV of one traffic secret (RFC 8446 §7.3)."""
        key, iv = ks.traffic_keys(_HASH, secret, _KEY_LEN, _IV_LEN)
        add(phase, f"{who}_write_key ({kind})",
            f'HKDF-Expand-Label({short}, "key", "", {_KEY_LEN})', key, step["key expanded"])
        add(phase, f"{who}_write_iv ({kind})",
            f'HKDF-Expand-Label({short}, "iv", "", {_IV_LEN})', iv, step["iv expanded"])

    def server(description: str) -> dict[str, bytes]:
        return dict(trace.find("server", description).values)

    def client(description: str) -> dict[str, bytes]:
        return dict(trace.find("client", description).values)

    # -- (EC)DHE ------------------------------------------------------------------------
    phase = "(EC)DHE, RFC 8446 §7.4.2"
    client_kp = client("create an ephemeral x25519 key pair")
    server_kp = server("create an ephemeral x25519 key pair")
    client_share = kx.generate_key_share(NamedGroup.X25519, _fixed_random(client_kp["private key"]))
    server_share = kx.generate_key_share(NamedGroup.X25519, _fixed_random(server_kp["private key"]))
    add(phase, "client key_share", "X25519(client private key, 9)",
        client_share.public_bytes, client_kp["public key"])
    add(phase, "server key_share", "X25519(server private key, 9)",
        server_share.public_bytes, server_kp["public key"])
    shared = client_share.exchange(server_kp["public key"])
    add(phase, "(EC)DHE shared secret", "X25519(client private, server public)",
        shared, server('extract secret "handshake"')["IKM"])

    # -- Early Secret -------------------------------------------------------------------
    phase = "Early Secret, RFC 8446 §7.1"
    early = ks.EarlySecret.derive(_HASH, None)
    add(phase, "Early Secret", "HKDF-Extract(0, 0)  -- no PSK",
        early.secret, server('extract secret "early"')["secret"])
    derived_hs = ks.derive_secret(_HASH, early.secret, ks.LABEL_DERIVED, ks.empty_hash(_HASH))
    add(phase, "derived", 'Derive-Secret(Early Secret, "derived", "")',
        derived_hs, server('derive secret for handshake "tls13 derived"')["expanded"])

    # -- Handshake Secret ---------------------------------------------------------------
    phase = "Handshake Secret, RFC 8446 §7.1"
    hs = early.handshake_secret(shared)
    add(phase, "Handshake Secret", "HKDF-Extract(derived, (EC)DHE)",
        hs.secret, server('extract secret "handshake"')["secret"])
    transcript = Transcript()
    transcript.update(trace.message("client", "ClientHello"))
    transcript.set_hash(_HASH)
    transcript.update(trace.message("server", "ServerHello"))
    th_hello = transcript.digest()
    add(phase, "Transcript-Hash(ClientHello..ServerHello)", "SHA-256 of the two messages",
        th_hello, server('derive secret "tls13 c hs traffic"')["hash"])
    chts = hs.client_handshake_traffic_secret(th_hello)
    shts = hs.server_handshake_traffic_secret(th_hello)
    add(phase, "client_handshake_traffic_secret", 'Derive-Secret(HS, "c hs traffic", CH..SH)',
        chts, server('derive secret "tls13 c hs traffic"')["expanded"])
    add(phase, "server_handshake_traffic_secret", 'Derive-Secret(HS, "s hs traffic", CH..SH)',
        shts, server('derive secret "tls13 s hs traffic"')["expanded"])

    phase = "Handshake traffic keys, RFC 8446 §7.3"
    add_keys(phase, "server", "handshake", shts, "shts",
             server("derive write traffic keys for handshake data"))
    add_keys(phase, "client", "handshake", chts, "chts",
             server("derive read traffic keys for handshake data"))

    phase = "Server Finished, RFC 8446 §4.4.4"
    for name in ("EncryptedExtensions", "Certificate", "CertificateVerify"):
        transcript.update(trace.message("server", name))
    server_fin = server('calculate finished "tls13 finished"')
    add(phase, "finished_key (server)", 'HKDF-Expand-Label(shts, "finished", "", 32)',
        ks.finished_key(_HASH, shts), server_fin["expanded"])
    add(phase, "verify_data (server Finished)", "HMAC(finished_key, CH..CertificateVerify)",
        ks.finished_verify_data(_HASH, shts, transcript.digest()), server_fin["finished"])
    transcript.update(trace.message("server", "Finished"))

    # -- Master Secret ------------------------------------------------------------------
    phase = "Master Secret, RFC 8446 §7.1"
    derived_ms = ks.derive_secret(_HASH, hs.secret, ks.LABEL_DERIVED, ks.empty_hash(_HASH))
    add(phase, "derived", 'Derive-Secret(Handshake Secret, "derived", "")',
        derived_ms, server('derive secret for master "tls13 derived"')["expanded"])
    master = hs.master_secret()
    add(phase, "Master Secret", "HKDF-Extract(derived, 0)",
        master.secret, server('extract secret "master"')["secret"])
    th_sfin = transcript.digest()
    add(phase, "Transcript-Hash(ClientHello..server Finished)", "SHA-256 of the messages",
        th_sfin, server('derive secret "tls13 c ap traffic"')["hash"])
    cats = master.client_application_traffic_secret_0(th_sfin)
    sats = master.server_application_traffic_secret_0(th_sfin)
    add(phase, "client_application_traffic_secret_0", 'Derive-Secret(MS, "c ap traffic", ..)',
        cats, server('derive secret "tls13 c ap traffic"')["expanded"])
    add(phase, "server_application_traffic_secret_0", 'Derive-Secret(MS, "s ap traffic", ..)',
        sats, server('derive secret "tls13 s ap traffic"')["expanded"])
    add(phase, "exporter_master_secret", 'Derive-Secret(MS, "exp master", CH..server Fin)',
        master.exporter_master_secret(th_sfin),
        server('derive secret "tls13 exp master"')["expanded"])

    phase = "Application traffic keys, RFC 8446 §7.3"
    add_keys(phase, "server", "application", sats, "sats",
             server("derive write traffic keys for application data"))
    add_keys(phase, "client", "application", cats, "cats",
             client("derive write traffic keys for application data"))

    phase = "Client Finished, RFC 8446 §4.4.4"
    client_fin = client('calculate finished "tls13 finished"')
    add(phase, "finished_key (client)", 'HKDF-Expand-Label(chts, "finished", "", 32)',
        ks.finished_key(_HASH, chts), client_fin["expanded"])
    add(phase, "verify_data (client Finished)", "HMAC(finished_key, CH..server Finished)",
        ks.finished_verify_data(_HASH, chts, th_sfin), client_fin["finished"])
    transcript.update(trace.message("client", "Finished"))

    phase = "Resumption, RFC 8446 §7.1 and §4.6.1"
    rms = master.resumption_master_secret(transcript.digest())
    add(phase, "resumption_master_secret", 'Derive-Secret(MS, "res master", CH..client Fin)',
        rms, client('derive secret "tls13 res master"')["expanded"])
    nonce = _ticket_nonce(trace.message("server", "NewSessionTicket"))
    add(phase, "PSK of the ticket", 'HKDF-Expand-Label(rms, "resumption", ticket_nonce, 32)',
        ks.resumption_psk(_HASH, rms, nonce),
        server('generate resumption secret "tls13 resumption"')["expanded"])
    return rows


def _short(value: bytes) -> str:
    text = value.hex(" ")
    return text if len(value) <= 12 else f"{value[:8].hex(' ')} … {value[-3:].hex(' ')}"


def walkthrough(rfc8448_path: Path, console: Console) -> None:
    """Print RFC 8448 §3's key schedule step by step, with ✓ where tlsmith's value
    equals the RFC's and ✗ where it does not."""
    trace = load(rfc8448_path)[SECTION_SIMPLE_1RTT]
    rows = walkthrough_rows(trace)
    console.print(
        Text.assemble(
            ("RFC 8448 §3 ", "bold"), (trace.title, "bold cyan"),
            " -- the TLS 1.3 key schedule (RFC 8446 §7), TLS_AES_128_GCM_SHA256",
        )
    )
    phase = None
    table: Table | None = None
    for row in rows:
        if row.phase != phase:
            if table is not None:
                console.print(table)
            phase = row.phase
            table = Table(title=phase, title_justify="left", show_lines=False, expand=False)
            table.add_column("", width=1)
            table.add_column("RFC 8446 name / derived as", overflow="fold")
            table.add_column("value", no_wrap=True)
        assert table is not None
        mark = Text("✓", style="green") if row.matches else Text("✗", style="bold red")
        label = Text.assemble((row.name, "bold"), "\n", (row.how, "dim"))
        table.add_row(mark, label, _short(row.computed))
        if not row.matches:
            table.add_row("", Text("RFC 8448 says", style="red"),
                          Text(_short(row.expected), style="red"))
    if table is not None:
        console.print(table)
    good = sum(row.matches for row in rows)
    style = "bold green" if good == len(rows) else "bold red"
    console.print(Text(f"{good}/{len(rows)} values match RFC 8448 byte for byte", style=style))


__all__ = ["Row", "walkthrough", "walkthrough_rows"]

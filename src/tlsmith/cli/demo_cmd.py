"""``tlsmith demo``: full handshakes between tlsmith's client and server, in memory and
offline, narrated step by step -- by default TLS 1.3, then TLS 1.2 with ECDHE, then TLS 1.2
with RSA key transport. For each: the ladder, the key derivation chain recomputed from
that handshake's own values, and one protected application record opened by hand."""

from __future__ import annotations

import hashlib
import inspect
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from tlsmith.codec.enums import CipherSuite, NamedGroup, ProtocolVersion
from tlsmith.config import DEFAULT_SUITES, CertifiedKey, ClientConfig, ServerConfig
from tlsmith.connection import TLSConnection
from tlsmith.crypto import kx as kx_mod
from tlsmith.crypto.suites import suite_info
from tlsmith.demo_walk import (
    HIDDEN,
    Narrator,
    RandomTape,
    explain_record,
    explain_tls12_keys,
    explain_tls13_keys,
    pick_record,
    print_wrapped,
)
from tlsmith.events import (
    ApplicationData,
    ConnectionClosed,
    HandshakeComplete,
    KeyUpdated,
    WarningAlert,
)
from tlsmith.observe import TraceRecord
from tlsmith.trace import TraceCollector, render_ladder

if TYPE_CHECKING:
    from tlsmith.x509.keys import PrivateKey

__all__ = ["DEFAULT_RUNS", "HIDDEN", "demo_runs", "run_demo"]

# What ``tlsmith demo`` shows with no option: (version, key exchange).
DEFAULT_RUNS: tuple[tuple[str, str], ...] = (("1.3", "ecdhe"), ("1.2", "ecdhe"), ("1.2", "rsa"))

# --kx for TLS 1.2: the suite and the certificate key it needs.
_TLS12_KX: dict[str, tuple[CipherSuite, str]] = {
    "ecdhe": (CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "ecdsa-p256"),
    "dhe": (CipherSuite.TLS_DHE_RSA_WITH_AES_128_GCM_SHA256, "rsa-2048"),
    "rsa": (CipherSuite.TLS_RSA_WITH_AES_128_GCM_SHA256, "rsa-2048"),
}

_KX_INTRO = {
    ("1.3", "ecdhe"): "Key exchange: [bold]ECDHE[/bold] over X25519. The client guesses the "
                      "group and sends its key share in the very first message, so the "
                      "handshake takes one round trip and everything after ServerHello is "
                      "encrypted.",
    ("1.3", "dhe"): "Key exchange: finite-field [bold]DHE[/bold] over ffdhe2048 (RFC 7919), "
                    "the only group the client offers: the same flow as ECDHE with bigger "
                    "numbers (256-byte key shares).",
    ("1.2", "ecdhe"): "Key exchange: [bold]ECDHE[/bold]. Each side makes an elliptic-curve "
                      "key pair for this connection only, and the server signs its public "
                      "half with its certificate's key. Forward secret: stealing the "
                      "server's key later does not decrypt a recording of this connection.",
    ("1.2", "dhe"): "Key exchange: [bold]DHE[/bold]. Finite-field Diffie-Hellman over the "
                    "RFC 7919 group ffdhe2048: the same idea as ECDHE with bigger numbers "
                    "(256-byte public values instead of 32), signed with the server's RSA "
                    "key. Forward secret too.",
    ("1.2", "rsa"): "Key exchange: [bold]RSA key transport[/bold]. There is no "
                    "ServerKeyExchange: the client invents the pre-master secret and "
                    "encrypts it to the RSA key in the server's certificate. "
                    "[yellow]Not forward secret[/yellow]: whoever gets the server's private "
                    "key, even years later, can decrypt every recorded connection. TLS 1.3 "
                    "removed it; tlsmith's server accepts it only when told to "
                    "(allow_rsa_key_exchange=True, or tlsmith serve --allow-rsa-kx).",
}

_REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"

# --seed: a fixed clock from 2026-01-01T00:00:00Z, a quarter millisecond per reading.
_SEED_EPOCH = 1_767_225_600.0
_SEED_TICK = 0.00025


def demo_runs(version: str | None, kx: str | None) -> list[tuple[str, str]]:
    """The handshakes ``tlsmith demo`` runs for ``--version`` / ``--kx`` (None: not
    given). ``--kx rsa`` exists only in TLS 1.2 (the CLI refuses it with ``--version
    1.3``)."""
    if kx is None:
        return [run for run in DEFAULT_RUNS if version in (None, run[0])]
    versions = [version] if version else ["1.3", "1.2"]
    return [(v, kx) for v in versions if not (v == "1.3" and kx == "rsa")]


class _StepClock:
    """A clock that starts at a fixed instant and moves a fixed step per reading: with
    seeded randomness, every run of the demo is the same, trace times included."""

    def __init__(self, start: float = _SEED_EPOCH, tick: float = _SEED_TICK) -> None:
        self._now = start
        self._tick = tick

    def __call__(self) -> float:
        now = self._now
        self._now += self._tick
        return now


def _make_pause(console: Console, enabled: bool) -> Callable[[], None] | None:
    """``--step``: before each step, wait for Enter. Without a terminal, read a line
    from stdin (a script can pipe newlines) and stop waiting at end of input."""
    if not enabled:
        return None
    state = {"eof": False, "first": True}

    def pause() -> None:
        if state["first"]:  # nothing to wait for before the first step
            state["first"] = False
            return
        if state["eof"]:
            return
        console.print("[dim]⏎  Enter for the next step[/dim]", end="")
        stdin = sys.stdin
        line = stdin.readline() if stdin is not None and not stdin.closed else ""
        if stdin is None or stdin.closed or not stdin.isatty():
            console.print()
        if not line:
            state["eof"] = True

    return pause


# ------------------------------------------------------------------------ credentials
def _credentials(tmp: str, key_type: str) -> tuple[bytes, CertifiedKey]:
    """A throw-away development CA (in ``tmp``) and a localhost certificate with a
    ``key_type`` key: the CA's PEM and the server's certificate and key."""
    from tlsmith.x509.devca import DevCA

    ca = DevCA.create().save(Path(tmp) / "ca")
    issued = ca.issue(("localhost", "127.0.0.1"), key_type=key_type)
    cert = Path(tmp) / "cert.pem"
    key = Path(tmp) / "key.pem"
    cert.write_bytes(issued.chain_pem)
    key.write_bytes(issued.key_pem)
    return ca.ca_pem, CertifiedKey.from_files(cert, key)


def _seeded_credentials(seed: bytes, key_type: str) -> tuple[bytes, CertifiedKey]:
    """Reproducible credentials for ``--seed``: the CA's P-256 key and the leaf's key
    derived from the seed, certificates with fixed serials and validity, signed with
    deterministic ECDSA (RFC 6979). The ECDSA leaf becomes Ed25519, whose signatures are
    deterministic too (RFC 8032), so the whole handshake repeats byte for byte; an RSA
    key cannot be derived from a seed, so an RSA leaf is fresh (and RSA-PSS signatures
    and the RSA-encrypted pre-master secret vary)."""
    from datetime import UTC, datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def derive(label: bytes) -> bytes:
        return hashlib.sha256(seed + label).digest()

    # 254 bits: always below the P-256 group order.
    ca_key = ec.derive_private_key(int.from_bytes(derive(b" ca"), "big") >> 2, ec.SECP256R1())
    leaf_key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if key_type.startswith("rsa"):
        leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        leaf_key = ed25519.Ed25519PrivateKey.from_private_bytes(derive(b" leaf"))
    start, end = datetime(2025, 1, 1, tzinfo=UTC), datetime(2125, 1, 1, tzinfo=UTC)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tlsmith demo CA (seeded)")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())

    def usage(*, cert_sign: bool = False, encipher: bool = False) -> x509.KeyUsage:
        return x509.KeyUsage(digital_signature=not cert_sign, content_commitment=False,
                             key_encipherment=encipher, data_encipherment=False,
                             key_agreement=False, key_cert_sign=cert_sign,
                             crl_sign=cert_sign, encipher_only=False, decipher_only=False)

    ca_cert = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(1)
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage(cert_sign=True), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256(), ecdsa_deterministic=True)
    )
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    leaf_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name).public_key(leaf_key.public_key()).serial_number(2)
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage(encipher=isinstance(leaf_key, rsa.RSAPrivateKey)), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                       critical=False)
        .sign(ca_key, hashes.SHA256(), ecdsa_deterministic=True)
    )
    der = serialization.Encoding.DER
    private: PrivateKey = leaf_key
    certified = CertifiedKey((leaf_cert.public_bytes(der), ca_cert.public_bytes(der)),
                             private, names=("localhost",))
    return ca_cert.public_bytes(serialization.Encoding.PEM), certified


# ------------------------------------------------------------------------- the pump
def _pump(client: TLSConnection, server: TLSConnection) -> list[tuple[str, object]]:
    """Move bytes both ways until neither side has anything to say; the events, each
    with the side that saw it."""
    events: list[tuple[str, object]] = []
    while True:
        moved = False
        for src, dst, name in ((client, server, "server"), (server, client, "client")):
            data = src.data_to_send()
            if data:
                dst.receive_data(data)
                moved = True
            events.extend((name, ev) for ev in dst.events())
        if not moved:
            return events


def _report(console: Console, events: list[tuple[str, object]]) -> None:
    for side, ev in events:
        if isinstance(ev, ApplicationData):
            console.print(f"{side} received {len(ev.data)} bytes: {escape(repr(ev.data[:64]))}")
        elif isinstance(ev, KeyUpdated):
            asked = " and was asked to update its own" if ev.update_requested else ""
            console.print(f"{side} saw the peer switch to new keys (KeyUpdate){asked}")
        elif isinstance(ev, WarningAlert):
            console.print(f"{side} received a warning alert: {ev.description.name.lower()}")
        elif isinstance(ev, ConnectionClosed):
            console.print(f"{side} received close_notify: the peer closed cleanly")


def _prose(console: Console, text: str) -> None:
    """A paragraph, wrapped to the terminal's width (the CLI's console soft-wraps)."""
    for paragraph in text.split("\n"):
        print_wrapped(console, paragraph)


def _complete(events: list[tuple[str, object]]) -> bool:
    return sum(isinstance(e, HandshakeComplete) for _, e in events) == 2


def _ladder(collector: TraceCollector, console: Console, *, show_secrets: bool,
            verbose: bool) -> None:
    """``render_ladder`` with the options its signature has (it grows: terminal width,
    ``verbose`` fields, ``show_secrets``)."""
    accepted = inspect.signature(render_ladder).parameters
    options: dict[str, Any] = {"show_secrets": show_secrets, "verbose": verbose}
    render_ladder(collector, console, **{k: v for k, v in options.items() if k in accepted})


# ------------------------------------------------------------------------- one run
@dataclass
class DemoRun:
    """One narrated handshake: what the client's observer saw and whether every
    recomputed value matched."""

    version: str
    kx: str
    records: list[TraceRecord]
    ok: bool


@dataclass
class _Pair:
    """A client and a server for one demo handshake, and what the demo keeps aside."""

    client: TLSConnection
    server: TLSConnection
    trace: TraceCollector  # what the client's observer saw
    tape: RandomTape  # the client's random draws (to rebuild its ephemeral key)
    certified: CertifiedKey  # the server's certificate and key
    suite: CipherSuite | None  # the one TLS 1.2 suite offered (None: TLS 1.3 defaults)


def _pair(version: str, kx: str, seed: bytes | None) -> _Pair:
    from tlsmith.x509.verify import TrustStore

    tls13 = version == "1.3"
    suite, key_type = (None, "ecdsa-p256") if tls13 else _TLS12_KX[kx]
    with tempfile.TemporaryDirectory(prefix="tlsmith-demo-") as tmp:
        ca_pem, certified = (_seeded_credentials(seed, key_type) if seed is not None
                             else _credentials(tmp, key_type))
    clock: Callable[[], float] = _StepClock() if seed is not None else time.time

    def random_for(role: bytes) -> Callable[[int], bytes]:
        return (kx_mod.deterministic_random(seed + b" " + role) if seed is not None
                else os.urandom)

    tape = RandomTape(random_for(b"client"))
    trace = TraceCollector()
    client_kw: dict[str, Any] = {}
    server_kw: dict[str, Any] = {}
    if tls13 and kx == "dhe":
        client_kw = {"groups": (NamedGroup.FFDHE2048,),
                     "key_share_groups": (NamedGroup.FFDHE2048,)}
    if suite is not None:
        client_kw = {"cipher_suites": (suite,), "min_version": ProtocolVersion.TLS12,
                     "max_version": ProtocolVersion.TLS12}
        server_kw = {"cipher_suites": DEFAULT_SUITES + ((suite,) if suite not in DEFAULT_SUITES
                                                        else ()),
                     "allow_rsa_key_exchange": kx == "rsa"}
    if seed is not None:
        from tlsmith.stores import MemoryStore

        # The HRR cookie key and the ticket keys too: a TLS 1.2 NewSessionTicket is part
        # of the transcript the server's Finished covers.
        server_kw["cookie_secret"] = hashlib.sha256(seed + b" cookie").digest()
        server_kw["session_store"] = MemoryStore(random=random_for(b"tickets"))
    client = TLSConnection(ClientConfig(
        server_name="localhost", alpn_protocols=("h2", "http/1.1"),
        trust=TrustStore.from_pem_bytes(ca_pem), observer=trace, random=tape,
        clock=clock, **client_kw))
    server = TLSConnection(ServerConfig(
        certificates=(certified,), alpn_protocols=("http/1.1",), random=random_for(b"server"),
        clock=clock, **server_kw))
    return _Pair(client, server, trace, tape, certified, suite)


def _run_one(n: Narrator, number: str, version: str, kx: str, *, seed: bytes | None,
             verbose: bool) -> DemoRun:
    console = n.console
    tls13 = version == "1.3"
    pair = _pair(version, kx, seed)
    client, server, client_trace, suite = pair.client, pair.server, pair.trace, pair.suite
    title = f"TLS {version}, {'RSA key transport' if kx == 'rsa' else kx.upper()}"
    heading = f"tlsmith demo {number}".rstrip()
    n.rule(f"[bold]{heading}: {title}", pause=True)
    leaf = _key_words(pair.certified.private_key)
    offer = (f" The client offers only TLS 1.2 and {suite.rfc_name}." if suite is not None
             else "")
    origin = " (derived from --seed)." if seed is not None else "."
    _prose(console, "Both ends are tlsmith, talking through memory (no network); the ladder "
           f"shows the handshake from the client's side.{offer} The server's {leaf} "
           f"certificate comes from a throw-away development CA{origin}")
    _prose(console, _KX_INTRO[(version, kx)] + "\n")
    events = _pump(client, server)
    _ladder(client_trace, console, show_secrets=n.show_secrets, verbose=verbose)
    if not _complete(events):
        console.print("[red]the handshake did not complete[/red]")
        return DemoRun(version, kx, client_trace.records, False)
    info = client.info
    assert info is not None
    group = f" over {info.group.name.lower()}" if info.group else ""
    exchange = (f"key exchange {info.key_exchange}{group}" if info.key_exchange
                else f"key exchange {info.group.name.lower() if info.group else 'PSK'}")
    sig = (f", signed {info.signature_scheme.name.lower()}" if info.signature_scheme
           else ", no signature (the certificate's key decrypts instead)")
    ems = ("" if tls13 else ", extended master secret "
           + ("yes" if info.extended_master_secret else "no"))
    console.print()
    _prose(console, f"[bold green]Handshake complete:[/bold green] {info.version_label}, "
           f"{info.cipher_suite.name}, {exchange}{sig}{ems}, ALPN {info.alpn}")
    negotiated = suite_info(info.cipher_suite)
    assert negotiated is not None
    if tls13:
        secrets = explain_tls13_keys(n, client_trace.records, negotiated, tape=pair.tape)
    else:
        secrets = explain_tls12_keys(n, client_trace.records, negotiated, info, tape=pair.tape,
                                     server_private_key=pair.certified.private_key)

    n.rule("application data")
    client.send_data(_REQUEST)
    _report(console, _pump(client, server))
    server.send_data(_RESPONSE)
    _report(console, _pump(client, server))
    picked = pick_record(client_trace.records, "received")
    if picked is None:
        n.check(False, "no protected application record from the server to open")
    else:
        record, seq, earlier = picked
        if tls13:
            from tlsmith.crypto import schedule13

            write_key, write_iv = schedule13.traffic_keys(
                negotiated.hash_name, secrets["server_application_traffic_secret_0"],
                negotiated.key_len, negotiated.iv_len)
            key_from = "the keys of server_application_traffic_secret_0"
        else:
            write_key, write_iv = secrets["server_write_key"], secrets["server_write_iv"]
            key_from = "the server_write keys of the key block"
        explain_record(n, record, seq, earlier, negotiated, write_key=write_key,
                       write_iv=write_iv, tls13=tls13, key_from=key_from, sender="server")

    n.rule("KeyUpdate, close_notify" if tls13 else "close_notify")
    if tls13:
        client.key_update(request_peer=True)
        server.send_data(b"bye")
        _report(console, _pump(client, server))
    else:
        _prose(console, "[dim]TLS 1.2 has no KeyUpdate: the keys from the key block protect "
               "every record until the connection ends.[/dim]")
    client.close()
    server.close()
    _report(console, _pump(client, server))
    checks = ("every recomputed value matched" if n.ok
              else "[red]a recomputed value differed[/red]")
    _prose(console, f"\n[bold]{title}:[/bold] {checks}. Try it on the network: "
           f"[bold]{_try_it(version, kx, suite)}[/bold]")
    return DemoRun(version, kx, client_trace.records, n.ok)


def _key_words(key: Any) -> str:
    from tlsmith.x509.keys import key_kind

    size = getattr(key, "key_size", None)
    if key_kind(key) == "rsa":
        return f"RSA-{size}"
    curve = getattr(key, "curve", None)
    if curve is not None:
        return "ECDSA P-256" if curve.name == "secp256r1" else f"ECDSA {curve.name}"
    return type(key).__name__.removesuffix("PrivateKey")


def _try_it(version: str, kx: str, suite: CipherSuite | None) -> str:
    if version == "1.3":
        return ("tlsmith serve, then tlsmith connect localhost:8443 --cafile <CA> --trace"
                + (" --group ffdhe2048" if kx == "dhe" else ""))
    cipher = f" --cipher {suite.rfc_name}" if suite is not None and kx != "ecdhe" else ""
    extra = f" --allow-rsa-kx{cipher}" if kx == "rsa" else cipher
    return (f"tlsmith serve{extra}, then tlsmith connect localhost:8443 --cafile <CA> "
            f"--tls1.2{cipher} --trace")


# ------------------------------------------------------------------------ entry point
def run_demo(console: Console, *, rfc8448: bool = False, show_secrets: bool = False,
             version: str | None = None, kx: str | None = None, step: bool = False,
             seed: str | None = None, verbose: bool = False,
             explain: str | None = None) -> int:
    """Run the handshakes ``demo_runs(version, kx)`` picks and narrate each; 0 when every
    handshake completed and every recomputed value matched, else 1. ``seed`` fixes the
    randomness, the clock and the credentials (reproducible output, for tests).
    ``explain``: also write the byte-level explainer page of the first handshake there."""
    if rfc8448:
        return _rfc8448(console)
    pause = _make_pause(console, step)
    seed_bytes = seed.encode() if seed is not None else None
    runs = demo_runs(version, kx)
    results: list[DemoRun] = []
    for i, (v, k) in enumerate(runs, start=1):
        narrator = Narrator(console, show_secrets=show_secrets, pause=pause)
        number = f"{i}/{len(runs)}" if len(runs) > 1 else ""
        results.append(_run_one(narrator, number, v, k, seed=seed_bytes, verbose=verbose))
    if explain is not None and results:
        _write_explainer(console, explain, results[0].records)
    if len(results) > 1:
        console.print()
        console.rule("summary")
        for r in results:
            mark = "[green]✓[/green]" if r.ok else "[bold red]✗[/bold red]"
            console.print(f"  {mark} TLS {r.version} {r.kx}")
    return 0 if all(r.ok for r in results) else 1


def _write_explainer(console: Console, path: str, records: Sequence[TraceRecord]) -> None:
    from tlsmith.explainer import write_explainer

    write_explainer(path, records, local="client")
    console.print(f"\nwrote the byte-level explainer of the first handshake to {path}")


def _rfc8448(console: Console) -> int:
    from tlsmith.demo_keyschedule import walkthrough
    from tlsmith.rfc8448 import default_rfc8448_path

    path = default_rfc8448_path()
    if path is None or not path.exists():
        console.print("[red]RFC 8448 text not found[/red] (set TLSMITH_RFC_DIR)")
        return 1
    walkthrough(path, console)
    return 0

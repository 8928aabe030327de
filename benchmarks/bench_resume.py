"""Full vs resumed handshakes per second, tlsmith vs Python's ssl (OpenSSL), in one run.

Same setup as ``bench_handshake.py`` (whose helpers this script imports): client and
server of both stacks in one process over memory (tlsmith: two ``TLSConnection`` objects
pumping bytes; ssl: ``SSLObject`` over ``MemoryBIO`` pairs), an ECDSA P-256 certificate
from the development CA, X25519 and AES-128-GCM -- TLS 1.3 (TLS_AES_128_GCM_SHA256) and
TLS 1.2 (TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, EMS). Python's ssl has no way to
choose TLS 1.3 suites and OpenSSL then picks TLS_AES_256_GCM_SHA384, so the script runs
itself again in a child process with ``OPENSSL_CONF`` naming a file that narrows
OpenSSL's TLS 1.3 suites to TLS_AES_128_GCM_SHA256; the report shows the suite each
stack negotiated (and a note if ssl's is not the intended one).

Unlike ``bench_handshake.py`` both servers here issue session tickets, in the full and in
the resumed handshake alike, and the client always reads everything the server sent
(including the post-handshake NewSessionTicket of TLS 1.3), so a "full" handshake here
costs a little more than there:

* TLS 1.3: exactly **one** NewSessionTicket per handshake on both sides
  (``ServerConfig.tickets=1``, ``SSLContext.num_tickets = 1``; OpenSSL sends 2 by
  default, tlsmith 2). Stateless tickets on both (tlsmith seals the state under its
  ticket key; OpenSSL too, since ``OP_NO_TICKET`` is cleared). Resumption is
  psk_dhe_ke (a fresh X25519 exchange, no certificate, no signature).
* TLS 1.2: RFC 5077 tickets (the client asks with an empty SessionTicket extension,
  both stacks do by default); resumption is the abbreviated handshake by ticket. Both
  servers also keep their default server-side session-ID cache switched on.

Which ticket the resumed loop uses: always the *newest* session the client received,
as a client with a session cache would. In TLS 1.3 that is the fresh ticket from the
previous resumed handshake (both servers issue a new one on every resumption), so each
ticket is used once as RFC 8446 §C.4 asks, and the cost of issuing and reading that
ticket is part of every resumed handshake on both sides. In TLS 1.2 neither server
renews a ticket it accepted (RFC 5077 §3.1 makes that a MAY; both renew only when the
ticket key has been rotated), so the client keeps resuming with the same ticket, which
RFC 5077 does not forbid.

Every resumed handshake is checked (tlsmith: ``info.resumed``; ssl:
``SSLObject.session_reused``); a warm-up asserts it once per variant before timing, and
a stack that cannot resume shows "not resumed" in its row instead of a number. Full
handshakes are checked the other way round (not resumed).

The variants are interleaved: each measurement runs in ``--rounds`` rounds, and every
round gives each of the four variants of a version (tlsmith full, tlsmith resumed, ssl
full, ssl resumed) one time slice of ``--seconds / --rounds``, starting with a different
variant each round; the report gives medians over rounds, the resumed/full speed-up of
each stack, and tlsmith/ssl ratios of the medians. Many short rounds (25 of 0.32 s by
default) keep a burst of load elsewhere on the machine out of the medians; the report
says when a variant's rounds spread by more than x1.3 (``--json`` lists every round).

Usage: python benchmarks/bench_resume.py [--seconds 8] [--rounds 25] [--quick] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import ssl
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import cryptography
from bench_handshake import _rate, rerun_with_aes128, ssl_setup, tlsmith_setup
from bench_handshake import ssl_handshake as full_ssl_handshake

from tlsmith.codec.enums import ProtocolVersion
from tlsmith.config import ClientConfig, ServerConfig
from tlsmith.connection import TLSConnection
from tlsmith.events import SessionTicketReceived
from tlsmith.session import Session
from tlsmith.stores import MemoryStore
from tlsmith.x509.devca import DevCA

TICKETS = 1  # TLS 1.3 NewSessionTickets per handshake, on both stacks
VARIANTS = ("tlsmith full", "tlsmith resumed", "ssl full", "ssl resumed")
NOISY = 1.3  # a variant's fastest round over its slowest: above this, say so
SUITES = {ProtocolVersion.TLS13: "TLS_AES_128_GCM_SHA256",
          ProtocolVersion.TLS12: "ECDHE-ECDSA-AES128-GCM-SHA256"}  # OpenSSL's names

class NotResumed(AssertionError):
    """A handshake that should have resumed was a full one (or the reverse)."""


# ------------------------------------------------------------------------ tlsmith
def tlsmith_configs(cert: Path, key: Path, ca_pem: bytes, version: ProtocolVersion
                    ) -> tuple[ClientConfig, ServerConfig]:
    client, server = tlsmith_setup(cert, key, ca_pem, version)
    server = dataclasses.replace(server, tickets=TICKETS, session_store=MemoryStore(),
                                 session_ids=True)
    return dataclasses.replace(client, session_tickets=True), server


def tlsmith_handshake(ccfg: ClientConfig, scfg: ServerConfig, session: Session | None
                      ) -> tuple[TLSConnection, Session | None]:
    """One handshake, both sides, until neither has anything left to send; the client
    and the newest session it received (None: none)."""
    client = TLSConnection(ccfg, session=session)
    server = TLSConnection(scfg)
    newest: Session | None = None
    data = client.data_to_send()
    while data:
        server.receive_data(data)
        server.events()
        data = server.data_to_send()
        if not data:
            break
        client.receive_data(data)
        for event in client.events():
            if isinstance(event, SessionTicketReceived):
                newest = event.session
        data = client.data_to_send()
    assert client.handshake_complete and server.handshake_complete
    return client, newest


class TlsmithRunner:
    def __init__(self, ccfg: ClientConfig, scfg: ServerConfig) -> None:
        self.ccfg, self.scfg = ccfg, scfg
        self.session: Session | None = None
        self.fallbacks = 0  # resumed-loop handshakes that were full ones

    def full(self) -> int:
        client, newest = tlsmith_handshake(self.ccfg, self.scfg, None)
        assert client.info is not None and not client.info.resumed
        if newest is not None:
            self.session = newest
        return 1

    def resumed(self) -> int:
        client, newest = tlsmith_handshake(self.ccfg, self.scfg, self.session)
        assert client.info is not None
        if not client.info.resumed:
            self.fallbacks += 1
        if newest is not None:
            self.session = newest
        return 1

    def suite(self) -> str:
        client, _ = tlsmith_handshake(self.ccfg, self.scfg, None)
        assert client.info is not None
        return client.info.cipher_suite.name

    def check(self) -> str:
        """Warm-up: a full handshake, then a resumed one that must resume."""
        self.full()
        if self.session is None:
            raise NotResumed("tlsmith: no session after a full handshake")
        client, newest = tlsmith_handshake(self.ccfg, self.scfg, self.session)
        assert client.info is not None
        if not client.info.resumed:
            raise NotResumed("tlsmith: offered a session, got a full handshake")
        if newest is not None:
            self.session = newest
        return client.info.resumed_with or "?"


# ---------------------------------------------------------------------------- ssl
def ssl_contexts(cert: Path, key: Path, ca: Path, version: ProtocolVersion
                 ) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    cctx, sctx = ssl_setup(cert, key, ca, version)
    # bench_handshake.py switches tickets off; here they are the point.
    sctx.options &= ~ssl.OP_NO_TICKET  # stateless tickets (TLS 1.3) / RFC 5077 (TLS 1.2)
    sctx.num_tickets = TICKETS
    return cctx, sctx


def ssl_handshake(cctx: ssl.SSLContext, sctx: ssl.SSLContext,
                  session: ssl.SSLSession | None) -> ssl.SSLObject:
    """One handshake (bench_handshake.ssl_handshake), then the client reads what the
    server sent after it (TLS 1.3 NewSessionTicket) so ``client.session`` has it."""
    c = full_ssl_handshake(cctx, sctx, session)[0]
    try:
        c.read(1)  # processes the NewSessionTicket(s); no application data comes
    except ssl.SSLWantReadError:
        pass
    return c


class SslRunner:
    def __init__(self, cctx: ssl.SSLContext, sctx: ssl.SSLContext) -> None:
        self.cctx, self.sctx = cctx, sctx
        self.session: ssl.SSLSession | None = None
        self.fallbacks = 0

    def full(self) -> int:
        c = ssl_handshake(self.cctx, self.sctx, None)
        assert not c.session_reused
        self.session = c.session
        return 1

    def resumed(self) -> int:
        c = ssl_handshake(self.cctx, self.sctx, self.session)
        if not c.session_reused:
            self.fallbacks += 1
        self.session = c.session
        return 1

    def check(self) -> str:
        self.full()
        if self.session is None:
            raise NotResumed("ssl: no session after a full handshake")
        c = ssl_handshake(self.cctx, self.sctx, self.session)
        if not c.session_reused:
            raise NotResumed("ssl: offered a session, got a full handshake")
        self.session = c.session
        return "ticket" if c.session is not None and c.session.has_ticket else "session_id"

    def suite(self) -> str:
        cipher = ssl_handshake(self.cctx, self.sctx, None).cipher()
        return cipher[0] if cipher is not None else "?"


def tickets_per_handshake(runner: SslRunner) -> tuple[int, int]:
    """NewSessionTickets the ssl client receives in a full and a resumed handshake
    (through ssl's private message callback; (-1, -1) if it is not available)."""
    seen: list[int] = []

    def callback(conn: object, direction: str, version: object, content_type: object,
                 msg_type: object, data: bytes) -> None:
        if (direction == "read" and content_type == ssl._TLSContentType.HANDSHAKE  # type: ignore[attr-defined]
                and msg_type == ssl._TLSMessageType.NEWSESSION_TICKET):  # type: ignore[attr-defined]
            seen.append(1)

    try:
        runner.cctx._msg_callback = callback  # type: ignore[attr-defined]
    except AttributeError:
        return -1, -1
    try:
        runner.full()
        full = len(seen)
        seen.clear()
        runner.resumed()
        return full, len(seen)
    finally:
        runner.cctx._msg_callback = None  # type: ignore[attr-defined]


# --------------------------------------------------------------------- measuring
def interleaved_all(fns: dict[str, Callable[[], int]], seconds: float, rounds: int
                    ) -> dict[str, list[float]]:
    """Rates of each of ``fns``, measured in ``rounds`` rounds in which each gets one
    slice of ``seconds / rounds``; each round starts with the next variant."""
    for fn in fns.values():
        fn()  # warm up
    names = list(fns)
    rates: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for i in range(len(names)):
            name = names[(r + i) % len(names)]
            rates[name].append(_rate(fns[name], seconds / rounds))
    return rates


def machine_info() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "cryptography": cryptography.__version__,
        "ssl": ssl.OPENSSL_VERSION,
        "cryptography_openssl": _cryptography_openssl(),
        "cpus": str(os.cpu_count()),
        "platform": platform.platform(),
        "machine": platform.machine(),
    }


def _cryptography_openssl() -> str:
    try:
        from cryptography.hazmat.backends.openssl.backend import backend
        return str(backend.openssl_version_text())
    except Exception:  # informational only
        return "?"


def _fmt(rate: float | None, width: int) -> str:
    return f"{rate:{width}.0f}" if rate is not None else f"{'not resumed':>{width}}"


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b is not None and b > 0 else None


def _fmt_ratio(r: float | None, width: int) -> str:
    return f"{r:{width}.2f}" if r is not None else f"{'-':>{width}}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=8.0,
                    help="time per variant per version (split over the rounds)")
    ap.add_argument("--rounds", type=int, default=25, help="alternations per measurement")
    ap.add_argument("--quick", action="store_true",
                    help="short run (--seconds 1.5 --rounds 8): under 20 s")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    status = rerun_with_aes128(__file__)
    if status is not None:
        return status
    if args.quick:
        args.seconds, args.rounds = 1.5, 8
    info = machine_info()
    results: dict[str, object] = {"machine": info, "seconds": args.seconds,
                                  "rounds": args.rounds, "tls13_tickets_per_handshake":
                                  TICKETS}
    tables: list[tuple[str, dict[str, float | None], dict[str, str], dict[str, str],
                       list[str]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        ca = DevCA.create()
        issued = ca.issue(("localhost",), key_type="ecdsa-p256")
        cert, key, ca_path = Path(tmp, "c.pem"), Path(tmp, "k.pem"), Path(tmp, "ca.pem")
        cert.write_bytes(issued.chain_pem)
        key.write_bytes(issued.key_pem)
        ca_path.write_bytes(ca.ca_pem)
        for version, tag in ((ProtocolVersion.TLS13, "tls13"), (ProtocolVersion.TLS12, "tls12")):
            ours = TlsmithRunner(*tlsmith_configs(cert, key, ca.ca_pem, version))
            theirs = SslRunner(*ssl_contexts(cert, key, ca_path, version))
            fns: dict[str, Callable[[], int]] = {"tlsmith full": ours.full,
                                                 "ssl full": theirs.full}
            how: dict[str, str] = {}
            notes: list[str] = []
            suites = {"tlsmith": ours.suite(), "ssl": theirs.suite()}
            for stack, suite in suites.items():
                results[f"{tag}_{stack}_suite"] = suite
            if suites["ssl"] != SUITES[version]:
                notes.append(f"ssl negotiated {suites['ssl']}, not {SUITES[version]}")
            for stack, runner in (("tlsmith", ours), ("ssl", theirs)):
                try:
                    how[stack] = runner.check()
                    fns[f"{stack} resumed"] = runner.resumed
                except Exception as exc:  # reported, not fatal
                    how[stack] = "not resumed"
                    notes.append(f"{stack} {version.label}: resumption failed in the "
                                 f"warm-up check ({type(exc).__name__}: {exc})")
            nst = tickets_per_handshake(theirs)
            if version == ProtocolVersion.TLS13 and nst[0] >= 0 and nst != (TICKETS, TICKETS):
                notes.append(f"ssl sent {nst[0]} ticket(s) in a full and {nst[1]} in a "
                             f"resumed handshake, not {TICKETS}")
            ours.fallbacks = theirs.fallbacks = 0
            fns = {name: fns[name] for name in VARIANTS if name in fns}
            per_round = interleaved_all(fns, args.seconds, args.rounds)
            rates: dict[str, float | None] = {
                name: statistics.median(per_round[name]) if name in per_round else None
                for name in VARIANTS}
            spread = max(max(v) / min(v) for v in per_round.values() if min(v) > 0)
            results[f"{tag}_max_round_spread"] = spread
            if spread > NOISY:
                notes.append(f"rates varied up to x{spread:.2f} between rounds (a busy "
                             "machine?): take the ratios as rough")
            for stack, runner in (("tlsmith", ours), ("ssl", theirs)):
                if runner.fallbacks:
                    notes.append(f"{stack} {version.label}: {runner.fallbacks} handshakes "
                                 "of the resumed loop were full handshakes")
            for name, rate in rates.items():
                results[f"{tag}_{name.replace(' ', '_')}_per_s"] = rate
                results[f"{tag}_{name.replace(' ', '_')}_rounds"] = per_round.get(name, [])
            for stack in ("tlsmith", "ssl"):
                results[f"{tag}_{stack}_resumed_speedup"] = _div(
                    rates[f"{stack} resumed"], rates[f"{stack} full"])
                results[f"{tag}_{stack}_resumed_with"] = how[stack]
                results[f"{tag}_{stack}_fallbacks"] = (ours if stack == "tlsmith"
                                                       else theirs).fallbacks
            results[f"{tag}_ssl_nst_full_resumed"] = list(nst)
            for kind in ("full", "resumed"):
                results[f"{tag}_{kind}_ratio"] = _div(rates[f"tlsmith {kind}"],
                                                      rates[f"ssl {kind}"])
            results[f"{tag}_notes"] = notes
            tables.append((version.label, rates, how, suites, notes))
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"python {info['python']} ({info['implementation']}), cryptography "
          f"{info['cryptography']} ({info['cryptography_openssl']}), ssl: {info['ssl']}, "
          f"{info['cpus']} CPUs, {info['platform']}")
    for label, rates, how, suites, notes in tables:
        print()
        print(f"{label:18}{'full/s':>10}{'resumed/s':>12}{'speed-up':>10}  resumed by")
        for stack in ("tlsmith", "ssl"):
            full, resumed = rates[f"{stack} full"], rates[f"{stack} resumed"]
            print(f"{stack if stack == 'tlsmith' else 'ssl (OpenSSL)':18}{_fmt(full, 10)}"
                  f"{_fmt(resumed, 12)}{_fmt_ratio(_div(resumed, full), 10)}  {how[stack]}")
        print(f"{'tlsmith / ssl':18}"
              f"{_fmt_ratio(_div(rates['tlsmith full'], rates['ssl full']), 10)}"
              f"{_fmt_ratio(_div(rates['tlsmith resumed'], rates['ssl resumed']), 12)}")
        print(f"  suites: tlsmith {suites['tlsmith']}, ssl {suites['ssl']}")
        for note in notes:
            print(f"  note: {note}")
    print()
    print(f"medians of {args.rounds} interleaved rounds of {args.seconds / args.rounds:.2f} s "
          "per variant; speed-up = resumed/s / full/s; ratio = tlsmith / ssl "
          f"(1.0 = as fast as OpenSSL through Python's ssl); TLS 1.3: {TICKETS} "
          "NewSessionTicket per handshake on both stacks, a fresh ticket per resumption")
    return 0


if __name__ == "__main__":
    sys.exit(main())

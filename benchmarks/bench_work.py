"""Deterministic work per handshake side: Python opcodes executed, Python calls, C calls.

Timings on a shared, loaded machine swing by +-10-20% from round to round; these counts
do not move at all, so they show a change of a few percent in the protocol's own Python
work that no timing can resolve (crypto runs in C and counts only as calls). One
connection, in memory, as in bench_sockets.py: the handshake, a 9-byte request, a 1-byte
answer, and the client reading the server's NewSessionTicket.

Compare two trees by running it with each on PYTHONPATH:

    PYTHONPATH=/old/src python benchmarks/bench_work.py
    PYTHONPATH=src      python benchmarks/bench_work.py

Usage: python benchmarks/bench_work.py [--version 1.3|1.2] [--kind ecdsa|rsa] [--resumed]
       [--observed] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

from tlsmith.codec.enums import CipherSuite, ProtocolVersion
from tlsmith.config import CertifiedKey, ClientConfig, ServerConfig
from tlsmith.connection import TLSConnection
from tlsmith.events import SessionTicketReceived
from tlsmith.x509.devca import DevCA
from tlsmith.x509.verify import TrustStore


def configs(version: str, kind: str, observed: bool) -> tuple[ClientConfig, ServerConfig]:
    ca = DevCA.create()
    issued = ca.issue(("localhost",), key_type="ecdsa-p256" if kind == "ecdsa" else "rsa-2048")
    pv = ProtocolVersion.TLS13 if version == "1.3" else ProtocolVersion.TLS12
    suite = (CipherSuite.TLS_AES_128_GCM_SHA256 if version == "1.3"
             else CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 if kind == "ecdsa"
             else CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)
    client = ClientConfig(server_name="localhost", trust=TrustStore.from_pem_bytes(ca.ca_pem),
                          cipher_suites=(suite,), min_version=pv, max_version=pv)
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = Path(tmp, "c.pem"), Path(tmp, "k.pem")
        cert.write_bytes(issued.chain_pem)
        key.write_bytes(issued.key_pem)
        certified = CertifiedKey.from_files(cert, key)
    server = ServerConfig(certificates=(certified,), cipher_suites=(suite,), min_version=pv,
                          max_version=pv, tickets=1)
    if observed:  # as tlsmith serve's HTTP mode: every trace record kept
        records: list[Any] = []
        server = replace(server, observer=records.append)
    return client, server


class Counter:
    """Counts opcodes (sys.settrace) and calls (sys.setprofile) while ``side`` is set."""

    def __init__(self) -> None:
        self.side: str | None = None
        self.counts = {"client": [0, 0, 0], "server": [0, 0, 0]}

    def _trace(self, frame: FrameType, event: str, arg: object) -> Any:
        if self.side is None:
            return None
        frame.f_trace_opcodes = True
        if event == "opcode":
            self.counts[self.side][0] += 1
        return self._trace

    def _profile(self, frame: FrameType, event: str, arg: object) -> None:
        if self.side is not None:
            if event == "call":
                self.counts[self.side][1] += 1
            elif event == "c_call":
                self.counts[self.side][2] += 1

    def run(self, side: str, fn: Callable[[], Any]) -> Any:
        self.side = side
        try:
            return fn()
        finally:
            self.side = None

    def start(self) -> None:
        sys.settrace(self._trace)
        sys.setprofile(self._profile)

    def stop(self) -> None:
        sys.settrace(None)
        sys.setprofile(None)


def connection(ccfg: ClientConfig, scfg: ServerConfig, session: Any, count: Counter
               ) -> Any:
    """One connection; returns the newest session the client received."""
    run = count.run
    got = None
    c: TLSConnection = run("client", lambda: TLSConnection(ccfg, session=session))
    data: bytes = run("client", c.data_to_send)
    s: TLSConnection = run("server", lambda: TLSConnection(scfg))

    def server_step(d: bytes) -> bytes:
        s.receive_data(d)
        s.events()
        return s.data_to_send()

    def client_step(d: bytes) -> tuple[bytes, Any]:
        c.receive_data(d)
        tickets = [e.session for e in c.events() if isinstance(e, SessionTicketReceived)]
        return c.data_to_send(), tickets[-1] if tickets else None

    def request() -> bytes:
        c.send_data(b"x" * 9)
        return c.data_to_send()

    def answer(d: bytes) -> bytes:
        s.receive_data(d)
        s.events()
        s.send_data(b"k")
        return s.data_to_send()

    while data:
        data = run("server", partial(server_step, data))
        if not data:
            break
        data, ticket = run("client", partial(client_step, data))
        got = ticket or got
    assert c.handshake_complete and s.handshake_complete
    data = run("client", request)
    data = run("server", partial(answer, data))
    _, ticket = run("client", partial(client_step, data))
    return ticket or got


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", choices=("1.3", "1.2"), default="1.3")
    ap.add_argument("--kind", choices=("ecdsa", "rsa"), default="ecdsa")
    ap.add_argument("--resumed", action="store_true")
    ap.add_argument("--observed", action="store_true", help="an observer on the server")
    ap.add_argument("--connections", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    ccfg, scfg = configs(args.version, args.kind, args.observed)
    count = Counter()
    session = None
    for _ in range(20):  # warm up (first-use caches), and a session to resume
        session = connection(ccfg, scfg, session if args.resumed else None, count) or session
    count.start()
    for _ in range(args.connections):
        newer = connection(ccfg, scfg, session if args.resumed else None, count)
        session = newer or session
    count.stop()
    n = args.connections
    out = {side: {"opcodes": v[0] // n, "python_calls": v[1] // n, "c_calls": v[2] // n}
           for side, v in count.counts.items()}
    if args.json:
        print(json.dumps(out))
        return 0
    what = (f"TLS {args.version} {args.kind.upper()} {'resumed' if args.resumed else 'full'}"
            + (", observed server" if args.observed else ""))
    print(f"per connection ({what}):  opcodes  python calls  C calls")
    for side, v in out.items():
        print(f"  {side:8}{v['opcodes']:15}{v['python_calls']:14}{v['c_calls']:9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""tlsmith vs Python's ssl (OpenSSL) over real loopback sockets, interleaved, with CPU.

Each stack runs its server in its own process (``--worker``), serving one connection at
a time on 127.0.0.1, and its client in this process; both stacks use the same dev-CA
certificate (ECDSA P-256 or RSA-2048), X25519 and AES-128-GCM (TLS_AES_128_GCM_SHA256 /
TLS_ECDHE_*_WITH_AES_128_GCM_SHA256 with EMS). Every measurement runs in ``--rounds``
rounds, and each round gives tlsmith then ssl (ssl first on odd rounds) one slice of
``--seconds / --rounds``: A B B A A B ..., so a change in machine load lands on both.
Reported per figure: each stack's median over rounds, the spread [min-max] of the
per-round ratios, and the ratio of the medians.

Figures:
* full and resumed handshakes/s (TLS 1.3 and 1.2; ECDSA and RSA-2048) -- one
  connection = TCP connect, handshake, a 9-byte request, a 1-byte answer, close, so the
  TLS 1.3 client also reads the server's one NewSessionTicket (both servers issue one);
* CPU per handshake on each side (``time.process_time`` of the client process and of
  the server worker), in ms, and tlsmith's client+server CPU as a multiple of the
  *crypto floor*: the sum of what the ``cryptography`` primitive calls one tlsmith
  handshake makes cost when called directly (calls counted once with cProfile, each
  primitive then timed on its own; see ``crypto_floor``);
* bulk MiB/s client -> server and server -> client (16 KiB writes, 8 MiB per transfer).

``--serve`` adds ``tlsmith serve`` vs ``openssl s_server`` (both HTTP-less handshakes:
connect, handshake, close) driven by 1 and by 50 concurrent Python ``ssl`` clients, with
each server process's CPU per handshake (from /proc). Both servers are one process;
s_server is single-threaded and serves one connection at a time, tlsmith serve a
connection per (pooled) thread under the GIL. The clients are threads of this one
Python process, so at 50 clients the rate can be bounded by the clients (and by the
machine's two cores, shared by clients and server): the CPU per handshake is the figure
that does not depend on that.

Usage: python benchmarks/bench_sockets.py [--seconds 6] [--rounds 6] [--quick] [--json]
       [--serve]
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import os
import pstats
import shutil
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_handshake import rerun_with_aes128  # noqa: E402  (one copy of the rerun)

_REQ = struct.Struct("!cQ")  # op, length
BULK = 8 << 20
BLOCK = bytes(16384)


# ----------------------------------------------------------------------- credentials
@dataclass(frozen=True)
class Creds:
    cert: Path
    key: Path
    ca: Path


def make_creds(tmp: Path) -> dict[str, Creds]:
    from tlsmith.x509.devca import DevCA

    ca = DevCA.create()
    (tmp / "ca.pem").write_bytes(ca.ca_pem)
    out = {}
    for kind, key_type in (("ecdsa", "ecdsa-p256"), ("rsa", "rsa-2048")):
        issued = ca.issue(("localhost",), key_type=key_type)
        cert, key = tmp / f"{kind}.pem", tmp / f"{kind}-key.pem"
        cert.write_bytes(issued.chain_pem)
        key.write_bytes(issued.key_pem)
        out[kind] = Creds(cert, key, tmp / "ca.pem")
    return out


def _suite12(kind: str) -> str:
    return ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" if kind == "ecdsa"
            else "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")


# --------------------------------------------------------------------- server worker
def _serve_conn(read_exactly: Callable[[int], bytes], read_some: Callable[[], bytes],
                send: Callable[[bytes], None]) -> None:
    op, n = _REQ.unpack(read_exactly(_REQ.size))
    if op == b"u":
        got = 0
        while got < n:
            data = read_some()
            if not data:
                raise EOFError
            got += len(data)
        send(b"k")
    elif op == b"d":
        left = n
        while left:
            chunk = BLOCK if left >= len(BLOCK) else BLOCK[:left]
            send(chunk)
            left -= len(chunk)
    else:
        send(b"k")


def worker(stack: str, version: str, kind: str, creds: Creds) -> None:
    """A server of one stack: prints its port, serves connections one at a time, and
    answers "cpu" on stdin with its process CPU seconds."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    print(listener.getsockname()[1], flush=True)

    def control() -> None:
        for line in sys.stdin:
            if line.strip() == "cpu":
                print(f"{time.process_time():.9f}", flush=True)
        os._exit(0)

    threading.Thread(target=control, daemon=True).start()
    if stack == "ssl":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        v = ssl.TLSVersion.TLSv1_3 if version == "1.3" else ssl.TLSVersion.TLSv1_2
        ctx.minimum_version = ctx.maximum_version = v
        ctx.load_cert_chain(creds.cert, creds.key)
        ctx.num_tickets = 1
        while True:
            raw, _ = listener.accept()
            # As TLSSocket does: no Nagle delay on small handshake writes.
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                with ctx.wrap_socket(raw, server_side=True) as s:

                    def read(n: int, s: ssl.SSLSocket = s) -> bytes:
                        buf = bytearray()
                        while len(buf) < n:  # (the request comes alone: no read-ahead)
                            data = s.recv(n - len(buf))
                            if not data:
                                raise EOFError
                            buf += data
                        return bytes(buf)

                    _serve_conn(read, lambda s=s: s.recv(65536), s.sendall)
            except (OSError, EOFError, ssl.SSLError):
                pass
    from tlsmith.codec.enums import CipherSuite, ProtocolVersion
    from tlsmith.config import CertifiedKey, ServerConfig
    from tlsmith.connection import TLSConnection
    from tlsmith.io.blocking import TLSSocket

    pv = ProtocolVersion.TLS13 if version == "1.3" else ProtocolVersion.TLS12
    suite = (CipherSuite.TLS_AES_128_GCM_SHA256 if version == "1.3"
             else CipherSuite[_suite12(kind)])
    cfg = ServerConfig(certificates=(CertifiedKey.from_files(creds.cert, creds.key),),
                       cipher_suites=(suite,), min_version=pv, max_version=pv, tickets=1)
    while True:
        raw, _ = listener.accept()
        try:
            with TLSSocket(raw, TLSConnection(cfg)) as t:
                t.do_handshake()
                _serve_conn(t.recv_exactly, lambda t=t: t.recv(65536), t.sendall)
        except Exception:  # a benchmark server keeps serving
            pass


@dataclass
class Server:
    proc: subprocess.Popen[str]
    port: int

    @classmethod
    def start(cls, stack: str, version: str, kind: str, tmp: Path) -> Server:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", stack, version, kind, str(tmp)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=os.environ)
        assert proc.stdout is not None
        return cls(proc, int(proc.stdout.readline()))

    def cpu(self) -> float:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("cpu\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(5)


# ----------------------------------------------------------------------------- clients
class Client:
    """One stack's client: ``connect(session) -> (conn, session)``."""

    def __init__(self, stack: str, version: str, kind: str, creds: Creds) -> None:
        self.stack = stack
        if stack == "ssl":
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            v = ssl.TLSVersion.TLSv1_3 if version == "1.3" else ssl.TLSVersion.TLSv1_2
            ctx.minimum_version = ctx.maximum_version = v
            ctx.load_verify_locations(creds.ca)
            if version == "1.2":
                ctx.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256" if kind == "ecdsa"
                                else "ECDHE-RSA-AES128-GCM-SHA256")
            self.ctx = ctx
        else:
            from tlsmith.codec.enums import CipherSuite, ProtocolVersion
            from tlsmith.config import ClientConfig
            from tlsmith.x509.verify import TrustStore

            pv = ProtocolVersion.TLS13 if version == "1.3" else ProtocolVersion.TLS12
            suite = (CipherSuite.TLS_AES_128_GCM_SHA256 if version == "1.3"
                     else CipherSuite[_suite12(kind)])
            self.cfg = ClientConfig(server_name="localhost",
                                    trust=TrustStore.from_pem_file(creds.ca),
                                    cipher_suites=(suite,), min_version=pv, max_version=pv)

    def open(self, port: int, session: Any = None) -> Any:
        if self.stack == "ssl":
            # The same socket setup as tlsmith.connect: a 10 s timeout, TCP_NODELAY.
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return self.ctx.wrap_socket(raw, server_hostname="localhost", session=session)
        import tlsmith

        return tlsmith.connect("127.0.0.1", port, self.cfg, session=session)

    def handshake(self, port: int, session: Any = None) -> tuple[Any, bool]:
        """One connection; returns (the newest session, whether this one resumed)."""
        conn = self.open(port, session)
        try:
            conn.sendall(_REQ.pack(b"h", 0))
            assert conn.recv(1) == b"k"
            if self.stack == "ssl":
                return conn.session, conn.session_reused
            return conn.session, bool(conn.info.resumed)
        finally:
            conn.close()

    def bulk(self, port: int, direction: str) -> int:
        conn = self.open(port)
        try:
            if direction == "up":
                conn.sendall(_REQ.pack(b"u", BULK))
                for _ in range(BULK // len(BLOCK)):
                    conn.sendall(BLOCK)
                assert conn.recv(1) == b"k"
            else:
                conn.sendall(_REQ.pack(b"d", BULK))
                got = 0
                while got < BULK:
                    data = conn.recv(65536)
                    assert data
                    got += len(data)
            return BULK
        finally:
            conn.close()


# ------------------------------------------------------------------------ measurement
@dataclass
class Sample:
    rate: float
    client_cpu: float  # seconds per unit
    server_cpu: float


@dataclass
class Figure:
    label: str
    unit: str
    ours: list[Sample] = field(default_factory=list)
    theirs: list[Sample] = field(default_factory=list)

    def med(self, which: str, attr: str) -> float:
        return statistics.median(getattr(s, attr) for s in getattr(self, which))

    @property
    def ratio(self) -> float:
        return self.med("ours", "rate") / self.med("theirs", "rate")

    @property
    def spread(self) -> tuple[float, float]:
        r = [a.rate / b.rate for a, b in zip(self.ours, self.theirs, strict=True)]
        return min(r), max(r)


def _slice(fn: Callable[[], int], server: Server, seconds: float) -> Sample:
    s0, c0, w0 = server.cpu(), time.process_time(), time.perf_counter()
    units = 0
    while time.perf_counter() - w0 < seconds:
        units += fn()
    wall = time.perf_counter() - w0
    c1, s1 = time.process_time(), server.cpu()
    return Sample(units / wall, (c1 - c0) / units, (s1 - s0) / units)


def interleave(fig: Figure, ours: Callable[[], int], theirs: Callable[[], int],
               servers: tuple[Server, Server], seconds: float, rounds: int) -> Figure:
    ours()
    theirs()  # warm-up (and a check that both work)
    for r in range(rounds):
        order = [(fig.ours, ours, servers[0]), (fig.theirs, theirs, servers[1])]
        if r % 2:
            order.reverse()
        for samples, fn, server in order:
            samples.append(_slice(fn, server, seconds / rounds))
    return fig


def handshake_fn(client: Client, port: int, resumed: bool) -> Callable[[], int]:
    state: dict[str, Any] = {"session": None}
    if resumed:
        state["session"], _ = client.handshake(port)

    def run() -> int:
        session, reused = client.handshake(port, state["session"] if resumed else None)
        if resumed:
            if not reused:
                raise SystemExit(f"{client.stack}: the handshake did not resume")
            state["session"] = session
        elif reused:
            raise SystemExit(f"{client.stack}: a full handshake resumed")
        return 1

    return run


# ------------------------------------------------------------------------ crypto floor
def _classify(name: str) -> str | None:
    """Which priced primitive a C function seen by cProfile is (None: not crypto)."""
    if "hmac_digest" in name:
        return "hmac"
    if "_hashlib" in name or "HASH' objects" in name:
        return "hash"
    if "x25519" in name and ("from_private_bytes" in name or "generate" in name):
        return "x25519_keygen"
    if "cryptography" not in name:
        return None
    if "ServerVerifier" in name:
        return "chain"
    for prim in ("exchange", "sign", "verify", "encrypt", "decrypt"):
        if f"'{prim}'" in name:
            return prim
    return None


def crypto_floor(version: str, kind: str, creds: Creds) -> tuple[float, dict[str, int]]:
    """Seconds of ``cryptography``/hashlib primitive work in one tlsmith handshake (both
    sides, full): the calls a handshake makes, counted with cProfile, each priced by
    timing the primitive alone (median of many calls)."""
    import hmac as _hmac

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, x25519
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.x509.verification import PolicyBuilder, Store

    from tlsmith.codec.enums import CipherSuite, ProtocolVersion
    from tlsmith.config import CertifiedKey, ClientConfig, ServerConfig
    from tlsmith.connection import TLSConnection
    from tlsmith.x509.verify import TrustStore

    pv = ProtocolVersion.TLS13 if version == "1.3" else ProtocolVersion.TLS12
    suite = (CipherSuite.TLS_AES_128_GCM_SHA256 if version == "1.3"
             else CipherSuite[_suite12(kind)])
    ccfg = ClientConfig(server_name="localhost", trust=TrustStore.from_pem_file(creds.ca),
                        cipher_suites=(suite,), min_version=pv, max_version=pv,
                        session_tickets=False)
    scfg = ServerConfig(certificates=(CertifiedKey.from_files(creds.cert, creds.key),),
                        cipher_suites=(suite,), min_version=pv, max_version=pv,
                        tickets=0, session_ids=False)

    def one() -> None:
        c, s = TLSConnection(ccfg), TLSConnection(scfg)
        for _ in range(3):
            s.receive_data(c.data_to_send())
            s.events()
            c.receive_data(s.data_to_send())
            c.events()
        assert c.handshake_complete and s.handshake_complete

    one()
    prof = cProfile.Profile()
    n = 20
    prof.enable()
    for _ in range(n):
        one()
    prof.disable()
    counts: dict[str, int] = {}
    for (filename, _line, name), row in pstats.Stats(prof).stats.items():  # type: ignore[attr-defined]
        if filename == "~" and _classify(name) is not None:
            counts[name] = counts.get(name, 0) + round(row[0] / n)
    # Chain verification: cryptography's X.509 verifier, once per handshake.
    leaf, *rest = x509.load_pem_x509_certificates(creds.cert.read_bytes())
    roots = x509.load_pem_x509_certificates(creds.ca.read_bytes())
    verifier = PolicyBuilder().store(Store(roots)).build_server_verifier(
        x509.DNSName("localhost"))
    key = serialization.load_pem_private_key(creds.key.read_bytes(), None)
    pub = leaf.public_key()
    data = bytes(130)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        signature = key.sign(data, ec.ECDSA(hashes.SHA256()))

        def do_sign() -> None:
            key.sign(data, ec.ECDSA(hashes.SHA256()))  # type: ignore[union-attr]

        def do_verify() -> None:
            pub.verify(signature, data, ec.ECDSA(hashes.SHA256()))  # type: ignore[union-attr,call-arg]
    else:
        assert isinstance(key, rsa.RSAPrivateKey)
        pss = padding.PSS(padding.MGF1(hashes.SHA256()), 32)
        signature = key.sign(data, pss, hashes.SHA256())

        def do_sign() -> None:
            key.sign(data, pss, hashes.SHA256())  # type: ignore[union-attr,call-arg]

        def do_verify() -> None:
            pub.verify(signature, data, pss, hashes.SHA256())  # type: ignore[union-attr,call-arg]
    peer = x25519.X25519PrivateKey.generate().public_key()
    priv = x25519.X25519PrivateKey.generate()
    gcm = AESGCM(bytes(16))
    sealed = gcm.encrypt(bytes(12), bytes(1024), b"")
    prk = bytes(32)
    sha = hashlib.sha256(bytes(200))
    costs = {
        "hmac": lambda: _hmac.digest(prk, bytes(64), "sha256"),
        "hash": lambda: sha.copy().digest(),
        "exchange": lambda: priv.exchange(peer),
        "x25519_keygen": lambda: x25519.X25519PrivateKey.from_private_bytes(bytes(32)),
        "encrypt": lambda: gcm.encrypt(bytes(12), bytes(1024), b""),
        "decrypt": lambda: gcm.decrypt(bytes(12), sealed, b""),
        "sign": do_sign,
        "chain": lambda: verifier.verify(leaf, rest),
    }

    def price(fn: Callable[[], object]) -> float:
        runs = []
        for _ in range(7):
            t0 = time.perf_counter()
            for _ in range(50):
                fn()
            runs.append((time.perf_counter() - t0) / 50)
        return statistics.median(runs)

    priced = {k: price(v) for k, v in costs.items()}
    priced["verify"] = price(do_verify)
    floor = 0.0
    summary: dict[str, int] = {}
    for name, count in counts.items():
        prim = _classify(name)
        if prim is None or (prim == "verify" and "Certificate" in name):
            continue  # (a certificate's own verify is part of the chain verification)
        floor += count * priced[prim]
        summary[prim] = summary.get(prim, 0) + count
    return floor, summary


# ----------------------------------------------------------------- serve vs s_server
def _process_cpu(pid: int) -> float | None:
    """A process's user + system CPU seconds (Linux /proc), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serve_vs_s_server(creds: Creds, seconds: float, rounds: int, clients: int
                      ) -> tuple[list[float], list[float], list[float], list[float]]:
    """Handshakes/s completed by `tlsmith serve` and by `openssl s_server` (TLS 1.3,
    ECDSA), each driven by ``clients`` concurrent Python ssl clients that connect, finish
    the handshake and close; and each server's CPU seconds per handshake (empty lists
    where /proc is not there)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise SystemExit("openssl not found")
    tlsmith_bin = str(Path(sys.executable).with_name("tlsmith"))

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    p1, p2 = free_port(), free_port()
    ours = subprocess.Popen([tlsmith_bin, "serve", "--host", "127.0.0.1", "--port", str(p1),
                             "--cert", str(creds.cert), "--key", str(creds.key), "--tls1.3",
                             "--tickets", "0", "--max-concurrent", "256"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    theirs = subprocess.Popen([openssl, "s_server", "-accept", f"127.0.0.1:{p2}", "-quiet",
                               "-cert", str(creds.cert), "-key", str(creds.key),
                               "-tls1_3", "-num_tickets", "0", "-naccept", "100000000"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(creds.ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    try:
        for port in (p1, p2):
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"server on {port} did not start") from None
                    time.sleep(0.05)

        def drive(port: int, span: float, pid: int) -> tuple[float, float | None]:
            cpu0 = _process_cpu(pid)
            stop = time.perf_counter() + span
            done = [0] * clients

            def one(i: int) -> None:
                while time.perf_counter() < stop:
                    try:
                        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                                ctx.wrap_socket(raw, server_hostname="localhost"):
                            done[i] += 1
                    except OSError:
                        pass

            threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            rate = sum(done) / (time.perf_counter() - t0)
            cpu1 = _process_cpu(pid)
            per = ((cpu1 - cpu0) / sum(done) if cpu0 is not None and cpu1 is not None
                   and sum(done) else None)
            return rate, per

        drive(p1, 0.3, ours.pid)
        drive(p2, 0.3, theirs.pid)
        a: list[float] = []
        b: list[float] = []
        cpu: tuple[list[float], list[float]] = ([], [])
        for r in range(rounds):
            pair = [(a, p1, ours.pid, cpu[0]), (b, p2, theirs.pid, cpu[1])]
            if r % 2:
                pair.reverse()
            for out, port, pid, cpu_out in pair:
                rate, per = drive(port, seconds / rounds, pid)
                out.append(rate)
                if per is not None:
                    cpu_out.append(per)
        return a, b, *cpu
    finally:
        ours.kill()
        theirs.kill()
        ours.wait(5)
        theirs.wait(5)


# ------------------------------------------------------------------------------- main
def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        stack, version, kind, tmp = sys.argv[2:6]
        creds = make_creds_from(Path(tmp), kind)
        worker(stack, version, kind, creds)
        return 0
    # Python's ssl cannot choose TLS 1.3 suites: run again with OpenSSL's narrowed to
    # AES-128-GCM (as bench_handshake.py does); the server workers inherit it.
    status = rerun_with_aes128(__file__)
    if status is not None:
        return status
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=6.0, help="time per figure")
    ap.add_argument("--rounds", type=int, default=6, help="interleaved rounds per figure")
    ap.add_argument("--quick", action="store_true", help="1.3 ECDSA only, short")
    ap.add_argument("--serve", action="store_true",
                    help="also tlsmith serve vs openssl s_server at 1 and 50 clients")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.seconds, args.rounds = min(args.seconds, 1.2), min(args.rounds, 2)
    results: dict[str, Any] = {"rounds": args.rounds, "seconds": args.seconds, "figures": []}
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        creds = make_creds(tmp)
        combos = [("1.3", "ecdsa")] if args.quick else [
            ("1.3", "ecdsa"), ("1.3", "rsa"), ("1.2", "ecdsa"), ("1.2", "rsa")]
        for version, kind in combos:
            servers = (Server.start("tlsmith", version, kind, tmp),
                       Server.start("ssl", version, kind, tmp))
            try:
                ours = Client("tlsmith", version, kind, creds[kind])
                theirs = Client("ssl", version, kind, creds[kind])
                tag = f"TLS {version} {kind.upper() if kind == 'rsa' else 'ECDSA'}"
                if kind == "rsa":
                    tag = f"TLS {version} RSA-2048"
                figs = [
                    interleave(Figure(f"{tag} full handshakes/s", "hs/s"),
                               handshake_fn(ours, servers[0].port, False),
                               handshake_fn(theirs, servers[1].port, False), servers,
                               args.seconds, args.rounds),
                    interleave(Figure(f"{tag} resumed handshakes/s", "hs/s"),
                               handshake_fn(ours, servers[0].port, True),
                               handshake_fn(theirs, servers[1].port, True), servers,
                               args.seconds, args.rounds),
                ]
                if kind == "ecdsa":
                    for direction in ("up", "down"):
                        figs.append(interleave(
                            Figure(f"{tag} bulk {direction} MiB/s", "MiB/s"),
                            partial(ours.bulk, servers[0].port, direction),
                            partial(theirs.bulk, servers[1].port, direction), servers,
                            args.seconds, args.rounds))
                floor, calls = crypto_floor(version, kind, creds[kind])
            finally:
                for s in servers:
                    s.stop()
            for fig in figs:
                scale = 1 / 2**20 if fig.unit == "MiB/s" else 1.0
                lo, hi = fig.spread
                entry = {
                    "figure": fig.label, "tlsmith": fig.med("ours", "rate") * scale,
                    "ssl": fig.med("theirs", "rate") * scale, "ratio": fig.ratio,
                    "ratio_min": lo, "ratio_max": hi,
                }
                if fig.unit == "hs/s":
                    cc, sc = fig.med("ours", "client_cpu"), fig.med("ours", "server_cpu")
                    entry |= {
                        "tlsmith_client_cpu_ms": cc * 1e3, "tlsmith_server_cpu_ms": sc * 1e3,
                        "ssl_client_cpu_ms": fig.med("theirs", "client_cpu") * 1e3,
                        "ssl_server_cpu_ms": fig.med("theirs", "server_cpu") * 1e3,
                    }
                    if "full" in fig.label:
                        entry |= {"crypto_floor_ms": floor * 1e3,
                                  "cpu_over_floor": (cc + sc) / floor,
                                  "floor_calls": calls}
                results["figures"].append(entry)
                lines.append(_row(entry))
        if args.serve:
            for n in (1, 50):
                a, b, cpu_a, cpu_b = serve_vs_s_server(creds["ecdsa"], args.seconds,
                                                       args.rounds, n)
                entry = {"figure": f"serve vs s_server, {n} client(s), hs/s",
                         "tlsmith": statistics.median(a), "openssl": statistics.median(b),
                         "ratio": statistics.median(a) / statistics.median(b),
                         "ratio_min": min(x / y for x, y in zip(a, b, strict=True)),
                         "ratio_max": max(x / y for x, y in zip(a, b, strict=True))}
                if cpu_a and cpu_b:
                    entry |= {"tlsmith_server_cpu_ms": statistics.median(cpu_a) * 1e3,
                              "openssl_server_cpu_ms": statistics.median(cpu_b) * 1e3}
                results["figures"].append(entry)
                lines.append(_row(entry))
    if args.json:
        print(json.dumps(results, indent=2, default=str))
        return 0
    print(f"{'figure':44}{'tlsmith':>10}{'ssl':>10}{'ratio [min-max]':>20}  CPU ms/hs "
          "(client+server: tlsmith | ssl; tlsmith / crypto floor)")
    for line in lines:
        print(line)
    print(f"over loopback sockets; medians of {args.rounds} interleaved rounds "
          f"({args.seconds:g} s per figure); ratio = tlsmith / ssl")
    return 0


def _row(e: dict[str, Any]) -> str:
    other = e.get("ssl", e.get("openssl"))
    text = (f"{e['figure']:44}{e['tlsmith']:10.0f}{other:10.0f}"
            f"{e['ratio']:8.2f} [{e['ratio_min']:.2f}-{e['ratio_max']:.2f}]")
    if "tlsmith_client_cpu_ms" in e:
        text += (f"  {e['tlsmith_client_cpu_ms']:.2f}+{e['tlsmith_server_cpu_ms']:.2f} | "
                 f"{e['ssl_client_cpu_ms']:.2f}+{e['ssl_server_cpu_ms']:.2f}")
    if "openssl_server_cpu_ms" in e:
        text += (f"  server CPU ms/hs {e['tlsmith_server_cpu_ms']:.2f} | "
                 f"{e['openssl_server_cpu_ms']:.2f}")
    if "cpu_over_floor" in e:
        text += f"; {e['cpu_over_floor']:.1f}x floor ({e['crypto_floor_ms']:.2f} ms)"
    return text


def make_creds_from(tmp: Path, kind: str) -> Creds:
    return Creds(tmp / f"{kind}.pem", tmp / f"{kind}-key.pem", tmp / "ca.pem")


if __name__ == "__main__":
    sys.exit(main())

"""tlsmith vs Python's ssl (OpenSSL), side by side, in one run.

Both stacks run client and server in one process over memory (no sockets), with X25519,
an ECDSA P-256 certificate from the development CA and AES-128-GCM, in TLS 1.3
(TLS_AES_128_GCM_SHA256) and TLS 1.2 (TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, EMS):

* handshakes per second (full handshake, both sides' work together);
* bulk throughput (application data client -> server in 16 KiB records, 64 KiB
  handed over per round, like a socket write).

Python's ssl cannot choose TLS 1.3 suites and OpenSSL prefers AES-256-GCM, so the
script runs itself again with an ``OPENSSL_CONF`` that narrows OpenSSL's TLS 1.3 suites
to AES-128-GCM, and checks the suite each stack negotiated.

The stacks are interleaved: each measurement runs in ``--rounds`` short rounds, tlsmith
then ssl in every round, so a change in machine load touches both alike; the report
gives each stack's median and the ratio of the medians.

Usage: python benchmarks/bench_handshake.py [--seconds 2] [--rounds 10] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from tlsmith.codec.enums import CipherSuite, ProtocolVersion
from tlsmith.config import CertifiedKey, ClientConfig, ServerConfig
from tlsmith.connection import TLSConnection
from tlsmith.events import ApplicationData
from tlsmith.x509.devca import DevCA
from tlsmith.x509.verify import TrustStore


def _rate(fn: Callable[[], int], seconds: float) -> float:
    """Units per second of ``fn`` (which returns how many units it did)."""
    done = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        done += fn()
    return done / elapsed


def _once(fn: Callable[[], object]) -> Callable[[], int]:
    """``fn`` as a rate function doing one unit per call."""
    def run() -> int:
        fn()
        return 1
    return run


def interleaved(ours: Callable[[], int], theirs: Callable[[], int], seconds: float,
                rounds: int) -> tuple[float, float]:
    """Median rates of both, measured alternately in ``rounds`` rounds."""
    ours()
    theirs()  # warm up
    a: list[float] = []
    b: list[float] = []
    for _ in range(rounds):
        a.append(_rate(ours, seconds / rounds))
        b.append(_rate(theirs, seconds / rounds))
    return statistics.median(a), statistics.median(b)


# ------------------------------------------------------------------------ tlsmith
def tlsmith_setup(cert: Path, key: Path, ca_pem: bytes, version: ProtocolVersion
                  ) -> tuple[ClientConfig, ServerConfig]:
    suite = (CipherSuite.TLS_AES_128_GCM_SHA256 if version == ProtocolVersion.TLS13
             else CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)
    # No session tickets or session IDs on either stack (ssl_setup sets OP_NO_TICKET):
    # this measures the full handshake itself; bench_resume.py measures resumption.
    client = ClientConfig(server_name="localhost", trust=TrustStore.from_pem_bytes(ca_pem),
                          cipher_suites=(suite,), min_version=version, max_version=version,
                          session_tickets=False)
    server = ServerConfig(certificates=(CertifiedKey.from_files(cert, key),), tickets=0,
                          session_ids=False)
    return client, server


def tlsmith_handshake(ccfg: ClientConfig, scfg: ServerConfig) -> tuple[TLSConnection,
                                                                      TLSConnection]:
    client = TLSConnection(ccfg)
    server = TLSConnection(scfg)
    server.receive_data(client.data_to_send())
    server.events()
    client.receive_data(server.data_to_send())
    client.events()
    server.receive_data(client.data_to_send())
    server.events()
    # TLS 1.2: the server's ChangeCipherSpec + Finished complete the client.
    client.receive_data(server.data_to_send())
    client.events()
    assert client.handshake_complete and server.handshake_complete
    return client, server


def tlsmith_bulk(client: TLSConnection, server: TLSConnection, block: bytes, n: int) -> int:
    for _ in range(n):
        client.send_data(block)
    server.receive_data(client.data_to_send())
    got = sum(len(e.data) for e in server.events() if isinstance(e, ApplicationData))
    assert got == n * len(block)
    return got


# ---------------------------------------------------------------------------- ssl
def ssl_setup(cert: Path, key: Path, ca: Path, version: ProtocolVersion
              ) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    v = ssl.TLSVersion.TLSv1_3 if version == ProtocolVersion.TLS13 else ssl.TLSVersion.TLSv1_2
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.minimum_version = sctx.maximum_version = v
    sctx.load_cert_chain(cert, key)
    sctx.num_tickets = 0  # neither stack sends tickets here: compare like with like
    sctx.options |= ssl.OP_NO_TICKET
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.minimum_version = cctx.maximum_version = v
    cctx.load_verify_locations(ca)
    if version == ProtocolVersion.TLS12:
        cctx.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
    return cctx, sctx


def _ssl_step(obj: ssl.SSLObject) -> bool:
    try:
        obj.do_handshake()
        return True
    except ssl.SSLWantReadError:
        return False


def ssl_handshake(cctx: ssl.SSLContext, sctx: ssl.SSLContext,
                  session: ssl.SSLSession | None = None
                  ) -> tuple[ssl.SSLObject, ssl.SSLObject, ssl.MemoryBIO, ssl.MemoryBIO,
                             ssl.MemoryBIO, ssl.MemoryBIO]:
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = cctx.wrap_bio(c_in, c_out, server_hostname="localhost", session=session)
    s = sctx.wrap_bio(s_in, s_out, server_side=True)
    c_done = s_done = False
    while not (c_done and s_done):
        c_done = c_done or _ssl_step(c)
        s_in.write(c_out.read())
        s_done = s_done or _ssl_step(s)
        c_in.write(s_out.read())
    c_done = _ssl_step(c)
    s_in.write(c_out.read())
    return c, s, c_in, c_out, s_in, s_out


def ssl_bulk(pair: tuple, block: bytes, n: int) -> int:  # type: ignore[type-arg]
    c, s, _c_in, c_out, s_in, _s_out = pair
    for _ in range(n):
        c.write(block)
    s_in.write(c_out.read())
    got = 0
    try:
        while True:
            got += len(s.read(1 << 20))
    except ssl.SSLWantReadError:
        pass
    assert got == n * len(block), got
    return got


# Python's ssl cannot choose TLS 1.3 suites (no SSL_CTX_set_ciphersuites), and OpenSSL
# prefers TLS_AES_256_GCM_SHA384; its configuration file can, but is read once, when
# ssl is imported: so the script runs itself again with OPENSSL_CONF pointing to this.
_OPENSSL_CONF = """\
openssl_conf = bench_conf
[bench_conf]
ssl_conf = bench_ssl
[bench_ssl]
system_default = bench_tls
[bench_tls]
Ciphersuites = TLS_AES_128_GCM_SHA256
"""
_CHILD = "TLSMITH_BENCH_AES128_CHILD"


def ssl_tls13_suites() -> list[str]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return [c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.3"]


def rerun_with_aes128(script: str) -> int | None:
    """Run ``script`` again with OpenSSL's TLS 1.3 suites narrowed to AES-128-GCM;
    its exit status, or None if this process is already that run (or needs none)."""
    if os.environ.get(_CHILD) or ssl_tls13_suites() == ["TLS_AES_128_GCM_SHA256"]:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp, "openssl.cnf")
        conf.write_text(_OPENSSL_CONF)
        env = {**os.environ, "OPENSSL_CONF": str(conf), _CHILD: "1"}
        return subprocess.run([sys.executable, script, *sys.argv[1:]], env=env,
                              check=False).returncode


def main() -> int:
    status = rerun_with_aes128(__file__)
    if status is not None:
        return status
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    ap.add_argument("--rounds", type=int, default=10, help="alternations per measurement")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results: dict[str, float] = {}
    rows: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        ca = DevCA.create()
        issued = ca.issue(("localhost",), key_type="ecdsa-p256")
        cert, key, ca_path = Path(tmp, "c.pem"), Path(tmp, "k.pem"), Path(tmp, "ca.pem")
        cert.write_bytes(issued.chain_pem)
        key.write_bytes(issued.key_pem)
        ca_path.write_bytes(ca.ca_pem)
        block = bytes(16384)
        for version, tag in ((ProtocolVersion.TLS13, "tls13"), (ProtocolVersion.TLS12, "tls12")):
            ccfg, scfg = tlsmith_setup(cert, key, ca.ca_pem, version)
            cctx, sctx = ssl_setup(cert, key, ca_path, version)
            ours, theirs = interleaved(_once(partial(tlsmith_handshake, ccfg, scfg)),
                                       _once(partial(ssl_handshake, cctx, sctx)),
                                       args.seconds, args.rounds)
            results[f"{tag}_tlsmith_handshakes_per_s"] = ours
            results[f"{tag}_ssl_handshakes_per_s"] = theirs
            results[f"{tag}_handshake_ratio"] = ours / theirs
            rows.append((f"{version.label} handshakes/s", ours, theirs))
            pair = tlsmith_handshake(ccfg, scfg)
            spair = ssl_handshake(cctx, sctx)
            ssl_suite = spair[0].cipher()
            ours_suite = pair[0].info.cipher_suite.name if pair[0].info else "?"
            if ssl_suite is None or ("AES128-GCM" not in ssl_suite[0]
                                     and "AES_128_GCM" not in ssl_suite[0]):
                raise SystemExit(f"ssl negotiated {ssl_suite}, not AES-128-GCM ({ours_suite} "
                                 "for tlsmith): the comparison would be unfair")
            ours, theirs = interleaved(partial(tlsmith_bulk, *pair, block, 4),
                                       partial(ssl_bulk, spair, block, 4),
                                       args.seconds, args.rounds)
            ours, theirs = ours / 2**20, theirs / 2**20
            results[f"{tag}_tlsmith_bulk_MiB_per_s"] = ours
            results[f"{tag}_ssl_bulk_MiB_per_s"] = theirs
            results[f"{tag}_bulk_ratio"] = ours / theirs
            rows.append((f"{version.label} bulk MiB/s", ours, theirs))
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{'':24}{'tlsmith':>12}{'ssl (OpenSSL)':>16}{'ratio':>9}")
    for label, ours, theirs in rows:
        print(f"{label:24}{ours:12.0f}{theirs:16.0f}{ours / theirs:9.2f}")
    print(f"medians of {args.rounds} interleaved rounds; "
          "ratio = tlsmith / ssl (1.0 = as fast as OpenSSL through Python's ssl)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

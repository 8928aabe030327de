"""tlsmith vs Python's ssl (OpenSSL), side by side, in one run.

Both stacks run client and server in one process over memory (no sockets), TLS 1.3,
X25519, an ECDSA P-256 certificate from the development CA, and AES-128-GCM:

* handshakes per second (full 1-RTT handshake, both sides' work together);
* bulk throughput (application data client -> server in 16 KiB records, 64 KiB
  handed over per round, like a socket write).

Usage: python benchmarks/bench_handshake.py [--seconds 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import ssl
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tlsmith.codec.enums import CipherSuite
from tlsmith.config import CertifiedKey, ClientConfig, ServerConfig
from tlsmith.connection import TLSConnection
from tlsmith.events import ApplicationData
from tlsmith.x509.devca import DevCA
from tlsmith.x509.verify import TrustStore


def _rate(fn: Callable[[], int], seconds: float) -> float:
    """Units per second of ``fn`` (which returns how many units it did)."""
    fn()  # warm up
    done = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        done += fn()
    return done / elapsed


# ------------------------------------------------------------------------ tlsmith
def tlsmith_setup(cert: Path, key: Path, ca_pem: bytes) -> tuple[ClientConfig, ServerConfig]:
    client = ClientConfig(server_name="localhost", trust=TrustStore.from_pem_bytes(ca_pem),
                          cipher_suites=(CipherSuite.TLS_AES_128_GCM_SHA256,))
    server = ServerConfig(certificates=(CertifiedKey.from_files(cert, key),))
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
def ssl_setup(cert: Path, key: Path, ca: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.minimum_version = ssl.TLSVersion.TLSv1_3
    sctx.load_cert_chain(cert, key)
    sctx.num_tickets = 0  # tlsmith's server sends no tickets yet: compare like with like
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.minimum_version = ssl.TLSVersion.TLSv1_3
    cctx.load_verify_locations(ca)
    return cctx, sctx


def _ssl_step(obj: ssl.SSLObject) -> bool:
    try:
        obj.do_handshake()
        return True
    except ssl.SSLWantReadError:
        return False


def ssl_handshake(cctx: ssl.SSLContext, sctx: ssl.SSLContext
                  ) -> tuple[ssl.SSLObject, ssl.SSLObject, ssl.MemoryBIO, ssl.MemoryBIO,
                             ssl.MemoryBIO, ssl.MemoryBIO]:
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = cctx.wrap_bio(c_in, c_out, server_hostname="localhost")
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ca = DevCA.create()
        issued = ca.issue(("localhost",), key_type="ecdsa-p256")
        cert, key, ca_path = Path(tmp, "c.pem"), Path(tmp, "k.pem"), Path(tmp, "ca.pem")
        cert.write_bytes(issued.chain_pem)
        key.write_bytes(issued.key_pem)
        ca_path.write_bytes(ca.ca_pem)
        ccfg, scfg = tlsmith_setup(cert, key, ca.ca_pem)
        cctx, sctx = ssl_setup(cert, key, ca_path)

        results: dict[str, float] = {}
        results["tlsmith_handshakes_per_s"] = _rate(
            lambda: (tlsmith_handshake(ccfg, scfg), 1)[1], args.seconds)
        results["ssl_handshakes_per_s"] = _rate(
            lambda: (ssl_handshake(cctx, sctx), 1)[1], args.seconds)
        block = bytes(16384)
        pair = tlsmith_handshake(ccfg, scfg)
        results["tlsmith_bulk_MiB_per_s"] = _rate(
            lambda: tlsmith_bulk(*pair, block, 4), args.seconds) / 2**20
        spair = ssl_handshake(cctx, sctx)
        results["ssl_bulk_MiB_per_s"] = _rate(
            lambda: ssl_bulk(spair, block, 4), args.seconds) / 2**20
    hs_ratio = results["tlsmith_handshakes_per_s"] / results["ssl_handshakes_per_s"]
    bulk_ratio = results["tlsmith_bulk_MiB_per_s"] / results["ssl_bulk_MiB_per_s"]
    results["handshake_ratio"] = hs_ratio
    results["bulk_ratio"] = bulk_ratio
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{'':24}{'tlsmith':>12}{'ssl (OpenSSL)':>16}{'ratio':>9}")
    print(f"{'handshakes/s':24}{results['tlsmith_handshakes_per_s']:12.0f}"
          f"{results['ssl_handshakes_per_s']:16.0f}{hs_ratio:9.2f}")
    print(f"{'  ms per handshake':24}{1000 / results['tlsmith_handshakes_per_s']:12.2f}"
          f"{1000 / results['ssl_handshakes_per_s']:16.2f}")
    print(f"{'bulk MiB/s':24}{results['tlsmith_bulk_MiB_per_s']:12.0f}"
          f"{results['ssl_bulk_MiB_per_s']:16.0f}{bulk_ratio:9.2f}")
    print("ratio = tlsmith / ssl (1.0 = as fast as OpenSSL through Python's ssl)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

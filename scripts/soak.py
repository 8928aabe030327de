"""Soak the servers' limits (``make soak``): slowloris, garbage and valid clients at once.

For each target -- ``tlsmith serve`` (a subprocess) and an in-process ``TLSServer`` --
a load process (this script, ``load`` mode, asyncio) runs for ``--seconds``:

* ``--slow`` (300) slowloris connections, kept up all the time (one ends, the next
  starts): half silent (connect, send nothing), half trickling a ClientHello one byte
  every ``--trickle`` seconds; each must be closed by the server within the handshake
  deadline (``--deadline``) plus ``--slack``;
* ``--garbage`` connections in a loop: random bytes, random bytes in a TLS record
  header, ClientHellos truncated and then half-closed -- each must be closed by the
  server (an alert or EOF), within the deadline plus slack;
* ``--valid`` clients in a loop: a full TLS handshake and an HTTP GET, each must get
  "200 OK".

Meanwhile the server process's threads and RSS (/proc/PID/status) are sampled; after
the load they must come back near the baseline (measured after a warm-up). Prints a
summary per target and exits 1 if any check failed.

    .venv/bin/python scripts/soak.py --seconds 60            # the make soak run
    .venv/bin/python scripts/soak.py --seconds 20 --target inproc
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REQUEST = b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n"


# --------------------------------------------------------------------------- /proc
def proc_stats(pid: int) -> tuple[int, int]:
    """(threads, RSS in KiB) of a process, from /proc/PID/status."""
    threads = rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            threads = int(line.split()[1])
        elif line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return threads, rss


def fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


# --------------------------------------------------------------------------- load
@dataclass
class LoadResult:
    valid_ok: int = 0
    valid_failed: int = 0
    valid_errors: list[str] = field(default_factory=list)
    valid_max_seconds: float = 0.0
    slow_total: int = 0
    slow_cut_in_time: int = 0
    slow_late: list[float] = field(default_factory=list)  # closed, but after deadline+slack
    slow_hung: int = 0  # still open at deadline + slack + 5 s: given up
    slow_early: int = 0  # closed well before the deadline (unexpected)
    slow_max_seconds: float = 0.0
    garbage_total: int = 0
    garbage_closed: int = 0
    garbage_hung: int = 0
    garbage_max_seconds: float = 0.0


async def _closed_within(reader: asyncio.StreamReader, timeout: float) -> bool:
    """Read (and drop) until EOF/reset; True if that happened within ``timeout``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while (left := end - loop.time()) > 0:
        try:
            chunk = await asyncio.wait_for(reader.read(65536), left)
        except TimeoutError:
            return False
        except OSError:
            return True
        if not chunk:
            return True
    return False


async def _slowloris(n: int, args: argparse.Namespace, hellos: list[bytes],
                     result: LoadResult, end: float) -> None:
    loop = asyncio.get_running_loop()
    give_up = args.deadline + args.slack + 5
    await asyncio.sleep(random.random() * 1.0)  # spread the first wave over a second
    kind = "silent" if n % 2 == 0 else "trickle"
    while loop.time() < end:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", args.port), 30)
        except (OSError, TimeoutError) as exc:
            result.valid_errors.append(f"slowloris connect: {exc!r}")
            await asyncio.sleep(0.5)
            continue
        start = loop.time()
        closed = False
        if kind == "silent":
            closed = await _closed_within(reader, give_up)
        else:
            hello = random.choice(hellos)
            for byte in hello:
                if loop.time() - start > give_up:
                    break
                try:
                    writer.write(bytes([byte]))
                    await writer.drain()
                except OSError:
                    closed = True
                    break
                if await _closed_within(reader, args.trickle):
                    closed = True
                    break
        took = loop.time() - start
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
        result.slow_total += 1
        result.slow_max_seconds = max(result.slow_max_seconds, took)
        if not closed:
            result.slow_hung += 1
        elif took > args.deadline + args.slack:
            result.slow_late.append(round(took, 2))
        else:
            result.slow_cut_in_time += 1
            if took < args.deadline - 0.5:
                result.slow_early += 1


async def _garbage(args: argparse.Namespace, hellos: list[bytes], result: LoadResult,
                   end: float) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < end:
        hello = random.choice(hellos)
        kind = random.choice(["random", "record", "truncated"])
        if kind == "random":
            payload = os.urandom(random.randint(1, 3000))
        elif kind == "record":  # a plausible handshake record header, then junk
            body = os.urandom(random.randint(0, 2000))
            payload = b"\x16\x03\x01" + len(body).to_bytes(2, "big") + body
        else:
            payload = hello[:random.randint(1, len(hello) - 1)]
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", args.port), 30)
        except (OSError, TimeoutError) as exc:
            result.valid_errors.append(f"garbage connect: {exc!r}")
            await asyncio.sleep(0.5)
            continue
        start = loop.time()
        try:
            writer.write(payload)
            await writer.drain()
            if kind == "truncated":
                writer.write_eof()  # the server sees EOF mid-ClientHello
        except OSError:
            pass
        closed = await _closed_within(reader, args.deadline + args.slack)
        took = loop.time() - start
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
        result.garbage_total += 1
        result.garbage_max_seconds = max(result.garbage_max_seconds, took)
        if closed:
            result.garbage_closed += 1
        else:
            result.garbage_hung += 1


async def _valid(args: argparse.Namespace, result: LoadResult, end: float) -> None:
    from tlsmith import aio
    from tlsmith.config import ClientConfig
    from tlsmith.x509.verify import TrustStore

    config = ClientConfig(server_name="localhost", trust=TrustStore.from_pem_file(args.ca),
                          alpn_protocols=("http/1.1",))
    loop = asyncio.get_running_loop()
    while loop.time() < end:
        start = loop.time()
        try:
            reader, writer = await aio.open_connection("127.0.0.1", args.port, config,
                                                       timeout=args.deadline + 20)
            try:
                writer.write(REQUEST)
                reply = await asyncio.wait_for(reader.read(-1), 20)
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
            if not reply.startswith(b"HTTP/1.0 200 OK"):
                raise AssertionError(f"unexpected reply {reply[:60]!r}")
            result.valid_ok += 1
        except Exception as exc:
            result.valid_failed += 1
            if len(result.valid_errors) < 20:
                result.valid_errors.append(repr(exc))
        result.valid_max_seconds = max(result.valid_max_seconds, loop.time() - start)
        await asyncio.sleep(random.random() * 0.1)


async def run_load(args: argparse.Namespace) -> LoadResult:
    from tlsmith.config import ClientConfig
    from tlsmith.connection import TLSConnection
    from tlsmith.x509.verify import TrustStore

    trust = TrustStore.from_pem_file(args.ca)
    hellos = [TLSConnection(ClientConfig(server_name="localhost", trust=trust)
                            ).data_to_send() for _ in range(4)]
    result = LoadResult()
    loop = asyncio.get_running_loop()
    end = loop.time() + args.seconds
    tasks = [_slowloris(n, args, hellos, result, end) for n in range(args.slow)]
    tasks += [_garbage(args, hellos, result, end) for _ in range(args.garbage)]
    tasks += [_valid(args, result, end) for _ in range(args.valid)]
    await asyncio.gather(*tasks)
    return result


# --------------------------------------------------------------------------- targets
def dev_credentials(home: Path) -> tuple[str, str, str]:
    """(chain, key, ca) for localhost, made in ``home`` (a throwaway TLSMITH_HOME)."""
    from tlsmith.x509.devca import ensure_dev_credentials

    creds = ensure_dev_credentials(home, key_types=("ecdsa-p256",))
    cert, key = creds["ecdsa-p256"]
    chain = cert.parent / "localhost-ecdsa-p256-chain.pem"
    return str(chain if chain.exists() else cert), str(key), str(home / "ca.pem")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def warm_up(port: int, ca: str, n: int = 5) -> None:
    import tlsmith
    from tlsmith.config import ClientConfig
    from tlsmith.x509.verify import TrustStore

    config = ClientConfig(server_name="localhost", trust=TrustStore.from_pem_file(ca))
    for _ in range(n):
        with tlsmith.connect("127.0.0.1", port, config, timeout=10) as tls:
            tls.sendall(REQUEST)
            while tls.recv():
                pass


@contextlib.contextmanager
def serve_target(args: argparse.Namespace, chain: str, key: str, log: Path) -> Any:
    port = free_port()
    cmd = [sys.executable, "-m", "tlsmith.cli.main", "serve", "--host", "127.0.0.1",
           "--port", str(port), "--cert", chain, "--key", key,
           "--handshake-timeout", str(args.deadline),
           "--max-concurrent", str(args.max_concurrent)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 20
            while "tlsmith serving" not in log.read_text(errors="replace"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"tlsmith serve did not start:\n{log.read_text()}")
                time.sleep(0.1)
            yield port, proc.pid
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@contextlib.contextmanager
def inproc_target(args: argparse.Namespace, chain: str, key: str, log: Path) -> Any:
    from tlsmith.config import CertifiedKey, ServerConfig
    from tlsmith.io.blocking import TLSServer, TLSSocket

    def handler(tls: TLSSocket, peer: tuple[Any, ...]) -> None:
        request = b""
        while b"\r\n\r\n" not in request and len(request) < 65536:
            chunk = tls.recv()
            if not chunk:
                return
            request += chunk
        tls.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n")

    lock = threading.Lock()
    cuts = [0]

    def on_error(peer: tuple[Any, ...], exc: BaseException) -> None:
        with lock:
            cuts[0] += 1

    config = ServerConfig(certificates=(CertifiedKey.from_files(chain, key),))
    server = TLSServer(config, ("127.0.0.1", 0), handler, on_error=on_error,
                       handshake_timeout=args.deadline, max_concurrent=args.max_concurrent)
    server.start()
    try:
        yield server.server_address[1], os.getpid()
    finally:
        server.shutdown()
        log.write_text(f"on_error calls: {cuts[0]}\n")


def soak_one(name: str, args: argparse.Namespace, chain: str, key: str, ca: str,
             workdir: Path) -> bool:
    target = serve_target if name == "serve" else inproc_target
    log = workdir / f"{name}.log"
    with target(args, chain, key, log) as (port, pid):
        warm_up(port, ca)
        time.sleep(0.5)
        base_threads, base_rss = proc_stats(pid)
        base_fds = fds(pid)
        cmd = [sys.executable, __file__, "load", "--port", str(port), "--ca", ca,
               "--seconds", str(args.seconds), "--slow", str(args.slow),
               "--garbage", str(args.garbage), "--valid", str(args.valid),
               "--deadline", str(args.deadline), "--slack", str(args.slack),
               "--trickle", str(args.trickle)]
        load = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        peak_threads, peak_rss, peak_fds = base_threads, base_rss, base_fds
        limit = time.monotonic() + args.seconds + args.deadline + args.slack + 60
        while load.poll() is None and time.monotonic() < limit:
            threads, rss = proc_stats(pid)
            peak_threads, peak_rss = max(peak_threads, threads), max(peak_rss, rss)
            peak_fds = max(peak_fds, fds(pid))
            time.sleep(0.5)
        if load.poll() is None:
            load.kill()
        out, err = load.communicate(timeout=10)
        # Afterwards: everything the load opened is gone within the deadline.
        settle = time.monotonic() + args.deadline + args.slack + 5
        while True:
            threads, rss = proc_stats(pid)
            if threads <= base_threads + 2 or time.monotonic() > settle:
                break
            time.sleep(0.5)
        time.sleep(1.0)
        end_threads, end_rss = proc_stats(pid)
        end_fds = fds(pid)
        served_after = True
        try:
            warm_up(port, ca, 2)  # still serving
        except Exception:
            served_after = False
    try:
        result = LoadResult(**json.loads(out))
    except Exception:
        print(f"[{name}] the load process failed:\n{err.decode(errors='replace')}")
        return False
    rss_slack_kib = args.rss_slack_mb * 1024
    checks = {
        "every valid client served": result.valid_failed == 0 and result.valid_ok > 0,
        "every slow connection cut by the deadline":
            result.slow_hung == 0 and not result.slow_late and result.slow_total > 0,
        "every garbage connection closed": result.garbage_hung == 0,
        "threads back near baseline": end_threads <= base_threads + 2,
        f"RSS back near baseline (+{args.rss_slack_mb} MiB)":
            end_rss <= base_rss + rss_slack_kib,
        "still serving afterwards": served_after,
        f"threads bounded by max_concurrent ({args.max_concurrent})":
            peak_threads <= base_threads + args.max_concurrent + 2,
    }
    print(f"== {name}: {args.seconds:g} s, deadline {args.deadline:g} s, "
          f"max_concurrent {args.max_concurrent}, server pid {pid}")
    print(f"   valid clients: {result.valid_ok} served, {result.valid_failed} failed, "
          f"slowest {result.valid_max_seconds:.2f} s")
    for error in result.valid_errors[:5]:
        print(f"     error: {error}")
    print(f"   slowloris: {result.slow_total} connections ({args.slow} at a time), "
          f"{result.slow_cut_in_time} cut within {args.deadline + args.slack:g} s, "
          f"{len(result.slow_late)} late {result.slow_late[:5]}, {result.slow_hung} hung, "
          f"longest {result.slow_max_seconds:.2f} s")
    print(f"   garbage: {result.garbage_total} connections, {result.garbage_closed} closed, "
          f"{result.garbage_hung} hung, longest {result.garbage_max_seconds:.2f} s")
    print(f"   threads: baseline {base_threads}, peak {peak_threads}, after {end_threads}")
    print(f"   RSS: baseline {base_rss / 1024:.1f} MiB, peak {peak_rss / 1024:.1f} MiB, "
          f"after {end_rss / 1024:.1f} MiB")
    print(f"   fds: baseline {base_fds}, peak {peak_fds}, after {end_fds}")
    for check, ok in checks.items():
        print(f"   [{'ok' if ok else 'FAIL'}] {check}")
    return all(checks.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", nargs="?", choices=["soak", "load"], default="soak",
                        help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--slow", type=int, default=300,
                        help="slowloris connections kept open at a time")
    parser.add_argument("--garbage", type=int, default=10,
                        help="garbage connections at a time")
    parser.add_argument("--valid", type=int, default=4, help="valid clients at a time")
    parser.add_argument("--deadline", type=float, default=10.0,
                        help="the server's handshake deadline, in seconds")
    parser.add_argument("--slack", type=float, default=2.0,
                        help="how late after the deadline a cut may come")
    parser.add_argument("--trickle", type=float, default=1.0,
                        help="seconds between the bytes a trickling slowloris sends")
    parser.add_argument("--max-concurrent", type=int, default=512,
                        help="the server's cap (above --slow: slowloris are all accepted "
                        "at once, so their cut time is the deadline)")
    parser.add_argument("--rss-slack-mb", type=float, default=48.0)
    parser.add_argument("--target", choices=["serve", "inproc", "both"], default="both")
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--ca", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.mode == "load":
        result = asyncio.run(run_load(args))
        print(json.dumps(asdict(result)))
        return 0
    with tempfile.TemporaryDirectory(prefix="tlsmith-soak-") as tmp:
        workdir = Path(tmp)
        chain, key, ca = dev_credentials(workdir / "home")
        targets = ["serve", "inproc"] if args.target == "both" else [args.target]
        ok = True
        for name in targets:
            ok = soak_one(name, args, chain, key, ca, workdir) and ok
            if name == "serve":
                text = (workdir / "serve.log").read_text(errors="replace")
                lines = text.splitlines()
                cut = sum("closed: handshake deadline exceeded" in line for line in lines)
                failed = sum(" failed: " in line for line in lines)
                print(f"   serve log: {cut} 'closed: handshake deadline exceeded' lines, "
                      f"{failed} 'failed' lines (garbage, truncated ClientHellos)")
    print("soak: OK" if ok else "soak: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

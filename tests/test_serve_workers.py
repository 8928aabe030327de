"""``tlsmith serve --workers N``: N processes on one port (SO_REUSEPORT) under a parent.

Both workers take connections; a ticket from one resumes on any worker (the parent
gives every worker's memory store the same ticket keys); 0-RTT with workers needs a
shared Redis (its anti-replay marks); 500 concurrent asyncio handshakes all complete; a
worker killed with SIGKILL is reported and restarted; workers orphaned by a killed
parent stop by themselves; --max-connections counts over all workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

import tlsmith.aio
from helpers import CertFiles
from peers import PeerProcess, start_tlsmith_serve_cli, wait_until
from redis_server import redis_server
from tlsmith.codec.enums import ProtocolVersion
from tlsmith.config import ClientConfig
from tlsmith.io.blocking import TLSSocket, connect
from tlsmith.session import Session
from tlsmith.x509.verify import TrustStore

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.skipif(not sys.platform.startswith("linux"),
                                 reason="SO_REUSEPORT spreads connections on Linux only")]

TIMEOUT = 10.0
REQUEST = b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n"
WORKER_LINE = re.compile(r"^\[worker (\d+)\] \S+ 127\.0\.0\.1:\d+ (.*)$", re.MULTILINE)
LISTENING = re.compile(r"^worker (\d+) \(pid (\d+)\) listening$", re.MULTILINE)


@pytest.fixture
def cert(certs: dict[str, CertFiles]) -> CertFiles:
    return certs["ecdsa-p256"]


@pytest.fixture
def start(cert: CertFiles, tmp_path: Path) -> Iterator[Callable[..., PeerProcess]]:
    """``start(*args)``: ``tlsmith serve ARGS`` (returns once its banner is out, i.e.
    once every worker listens); all are stopped afterwards."""
    started: list[PeerProcess] = []

    def run(*args: str) -> PeerProcess:
        serve = start_tlsmith_serve_cli(cert, *args, log_dir=tmp_path)
        started.append(serve)
        return serve

    yield run
    for serve in started:
        serve.stop()


def client_config(cert: CertFiles, **kw: object) -> ClientConfig:
    return ClientConfig(server_name="localhost", trust=TrustStore.from_pem_file(cert.ca_path),
                        **kw)  # type: ignore[arg-type]


def get(tls: TLSSocket, *, send: bool = True) -> bytes:
    if send:
        tls.sendall(REQUEST)
    reply = b""
    while chunk := tls.recv(65536):
        reply += chunk
    tls.close()
    assert reply.startswith(b"HTTP/1.0 200 OK"), reply[:200]
    return reply


def worker_pids(serve: PeerProcess) -> dict[int, int]:
    """worker number -> pid of its latest process, from the "listening" lines."""
    return {int(n): int(pid) for n, pid in LISTENING.findall(serve.output())}


def worker_lines(serve: PeerProcess, count: int, *, since: int = 0) -> list[tuple[int, str]]:
    """(worker number, rest of the line) for the first ``count`` handshake log lines."""
    serve.wait_for("[worker ", since=since, count=count)
    return [(int(n), rest) for n, rest in WORKER_LINE.findall(serve.output_since(since))]


def gone(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie nobody reaps counts as exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


# ------------------------------------------------------------------ spreading and tickets
def test_both_workers_serve_and_tickets_resume_on_any_worker(
        start: Callable[..., PeerProcess], cert: CertFiles) -> None:
    serve = start("--workers", "2")
    assert "2 workers" in serve.output()
    assert set(worker_pids(serve)) == {1, 2}
    port = serve.port

    for _ in range(40):
        get(connect("127.0.0.1", port, client_config(cert), timeout=TIMEOUT))
    served = worker_lines(serve, 40)
    # The kernel spreads by a hash of the 4-tuple: never even, but 40 of 40 on one
    # worker would mean only one listens.
    assert {n for n, _ in served} == {1, 2}, served

    # TLS 1.3: one ticket, 20 resumptions on whichever worker takes each.
    mark = serve.mark()
    first = connect("127.0.0.1", port, client_config(cert), timeout=TIMEOUT)
    session = first.wait_for_session(TIMEOUT)
    get(first)
    assert session is not None
    for _ in range(20):
        tls = connect("127.0.0.1", port, client_config(cert), timeout=TIMEOUT,
                      session=session)
        assert tls.info.resumed, "a ticket from one worker did not resume on another"
        get(tls)
    resumed = [(n, rest) for n, rest in worker_lines(serve, 21, since=mark)
               if "resumed" in rest]
    assert len(resumed) == 20
    assert {n for n, _ in resumed} == {1, 2}, resumed


def test_tls12_tickets_resume_on_any_worker_without_session_ids(
        start: Callable[..., PeerProcess], cert: CertFiles) -> None:
    serve = start("--workers", "2", "--tls1.2")
    config = client_config(cert, max_version=ProtocolVersion.TLS12)
    first = connect("127.0.0.1", serve.port, config, timeout=TIMEOUT)
    session: Session | None = first.wait_for_session(TIMEOUT)
    get(first)
    assert session is not None
    for _ in range(16):
        tls = connect("127.0.0.1", serve.port, config, timeout=TIMEOUT, session=session)
        assert tls.info.resumed
        get(tls)
    resumed = [(n, rest) for n, rest in worker_lines(serve, 17) if "resumed" in rest]
    assert len(resumed) == 16
    # A ticket, not a session ID: the per-process session-ID cache is off with workers.
    assert all("ticket" in rest for _, rest in resumed), resumed
    assert {n for n, _ in resumed} == {1, 2}, resumed


# ------------------------------------------------------------------------------ 0-RTT
def test_early_data_with_workers_needs_redis(cert: CertFiles) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tlsmith.cli.main", "serve", "--host", "127.0.0.1",
         "--port", "0", "--cert", str(cert.chain_path), "--key", str(cert.key_path),
         "--workers", "2", "--early-data"],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 2, result
    assert "--early-data with --workers needs --store redis://" in result.stderr
    assert "tlsmith serving" not in result.stdout


def test_early_data_with_workers_and_redis(start: Callable[..., PeerProcess],
                                           cert: CertFiles) -> None:
    with redis_server() as redis:
        serve = start("--workers", "2", "--store", redis.url, "--early-data")
        port = serve.port
        first = connect("127.0.0.1", port, client_config(cert), timeout=TIMEOUT)
        session = first.wait_for_session(TIMEOUT)
        get(first)
        assert session is not None
        # Each fresh ticket's 0-RTT is accepted, whichever worker takes it ...
        for _ in range(8):
            tls = connect("127.0.0.1", port, client_config(cert), timeout=TIMEOUT,
                          session=session, early_data=REQUEST)
            assert tls.info.resumed and tls.early_data_accepted is True
            session = tls.wait_for_session(TIMEOUT)
            get(tls, send=False)
            assert session is not None
        # ... and once used, a ticket's 0-RTT is refused by every worker (shared marks).
        used = session
        get(connect("127.0.0.1", port, client_config(cert), timeout=TIMEOUT,
                    session=used, early_data=REQUEST), send=False)
        for _ in range(8):
            tls = connect("127.0.0.1", port, client_config(cert), timeout=TIMEOUT,
                          session=used, early_data=REQUEST)
            assert tls.info.resumed and tls.early_data_accepted is False
            get(tls, send=False)
        lines = worker_lines(serve, 18)
        accepted = {n for n, rest in lines if "0-RTT accepted" in rest}
        rejected = {n for n, rest in lines if "0-RTT rejected" in rest}
        assert accepted and rejected and accepted | rejected == {1, 2}, lines


# ------------------------------------------------------------------------ 500 at once
async def _get(port: int, config: ClientConfig) -> bytes:
    """One connection over tlsmith.aio: handshake, GET, read to the end."""
    reader, writer = await tlsmith.aio.open_connection("127.0.0.1", port, config,
                                                       timeout=60)
    try:
        assert writer.get_extra_info("tlsmith") is not None
        writer.write(REQUEST)
        await writer.drain()
        return await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()


async def _many(port: int, config: ClientConfig, n: int
                ) -> list[bytes | BaseException]:
    return await asyncio.wait_for(
        asyncio.gather(*(_get(port, config) for _ in range(n)),
                       return_exceptions=True), timeout=120)


def test_500_concurrent_asyncio_handshakes(start: Callable[..., PeerProcess],
                                           cert: CertFiles) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2048:  # 500 client sockets plus the test's own files
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(2048, hard), hard))
    serve = start("--workers", "2")
    config = client_config(cert, alpn_protocols=("http/1.1",))
    results = asyncio.run(_many(serve.port, config, 500))
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, f"{len(errors)} of 500 failed, e.g. {errors[:3]!r}"
    assert all(r.startswith(b"HTTP/1.0 200 OK") for r in results if isinstance(r, bytes))
    assert {n for n, _ in worker_lines(serve, 500)} == {1, 2}
    assert "failed" not in serve.output()


# ------------------------------------------------------------------------ supervision
def test_a_killed_worker_is_reported_and_restarted(start: Callable[..., PeerProcess],
                                                   cert: CertFiles) -> None:
    serve = start("--workers", "2")
    pids = worker_pids(serve)
    os.kill(pids[1], signal.SIGKILL)
    serve.wait_for(f"worker 1 (pid {pids[1]}) was killed by SIGKILL; restarting it")
    assert wait_until(lambda: worker_pids(serve)[1] != pids[1], TIMEOUT), serve.output()
    new = worker_pids(serve)
    assert new[2] == pids[2] and gone(pids[1])
    # Still one port, still both workers, still the same ticket keys.
    first = connect("127.0.0.1", serve.port, client_config(cert), timeout=TIMEOUT)
    session = first.wait_for_session(TIMEOUT)
    get(first)
    for _ in range(12):
        tls = connect("127.0.0.1", serve.port, client_config(cert), timeout=TIMEOUT,
                      session=session)
        assert tls.info.resumed
        get(tls)
    mark_lines = worker_lines(serve, 13)
    assert {n for n, _ in mark_lines} == {1, 2}, mark_lines
    assert serve.proc.poll() is None
    # SIGTERM to the parent stops everything cleanly.
    serve.proc.terminate()
    assert serve.wait(TIMEOUT) == 0, serve.output()
    assert wait_until(lambda: all(gone(p) for p in new.values()), TIMEOUT)


def test_workers_that_keep_dying_stop_the_server(start: Callable[..., PeerProcess]) -> None:
    """The restart policy's limit: more than 5 deaths within 60 s and the parent gives
    up, stops the rest and exits 1 (a crash loop is not served around forever)."""
    serve = start("--workers", "2")
    killed: set[int] = set()

    def kill_listening() -> bool:
        for pid in set(worker_pids(serve).values()) - killed:
            killed.add(pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return serve.proc.poll() is not None

    assert wait_until(kill_listening, 30.0, interval=0.05), serve.output()
    assert serve.proc.returncode == 1
    assert "6 worker deaths within 60 s: stopping" in serve.output()
    assert wait_until(lambda: all(gone(p) for p in worker_pids(serve).values()), TIMEOUT)


def test_max_connections_counts_over_all_workers(start: Callable[..., PeerProcess],
                                                 cert: CertFiles) -> None:
    serve = start("--workers", "2", "--max-connections", "6")
    pids = worker_pids(serve)
    for _ in range(6):
        get(connect("127.0.0.1", serve.port, client_config(cert), timeout=TIMEOUT))
    assert serve.wait(TIMEOUT) == 0, serve.output()
    assert wait_until(lambda: all(gone(p) for p in pids.values()), TIMEOUT)


def test_max_concurrent_and_orphaned_workers_stop(start: Callable[..., PeerProcess],
                                                 cert: CertFiles) -> None:
    serve = start("--workers", "2", "--max-concurrent", "4")
    assert "at most 4 connections at once per worker" in serve.output()
    config = replace(client_config(cert), alpn_protocols=("http/1.1",))
    results = asyncio.run(_many(serve.port, config, 40))
    assert not [r for r in results if isinstance(r, BaseException)], results
    # Workers orphaned by a parent killed outright stop by themselves (within ~0.5 s).
    pids = worker_pids(serve)
    serve.proc.kill()
    serve.proc.wait(timeout=TIMEOUT)
    assert wait_until(lambda: all(gone(p) for p in pids.values()), TIMEOUT), pids

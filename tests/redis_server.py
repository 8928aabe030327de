"""A throwaway redis-server on the loopback for tests (import as ``from redis_server
import redis_server``).

``with redis_server() as server:`` starts ``redis-server`` on a free 127.0.0.1 port with
no persistence, waits (at most 5 s) until it answers PING and kills it on exit.
``url, port, stop = server`` also works; ``server.stop()`` kills it mid-test (Redis
going away), ``server.start()`` brings it back on the same port, ``server.pause()`` /
``resume()`` freeze it (SIGSTOP/SIGCONT: a Redis that accepts but never answers).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from helpers import free_port, require_peer

_START_TIMEOUT = 5.0


def ping(port: int, timeout: float = 0.5) -> bool:
    """Whether a Redis on 127.0.0.1:``port`` answers PING within ``timeout``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server process (restartable on the same port)."""

    def __init__(self, binary: str, port: int, directory: Path) -> None:
        self.binary = binary
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.directory = directory
        self.log_path = directory / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __iter__(self) -> Iterator[object]:
        stop: Callable[[], None] = self.stop
        return iter((self.url, self.port, stop))

    @property
    def pid(self) -> int:
        assert self.proc is not None, "redis-server is not running"
        return self.proc.pid

    def start(self) -> None:
        """Start (or restart) redis-server on ``self.port`` and wait until it answers."""
        assert self.proc is None, "redis-server is already running"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "--bind", "127.0.0.1", "--port", str(self.port),
                 "--save", "", "--appendonly", "no", "--daemonize", "no",
                 "--dir", str(self.directory)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if ping(self.port, timeout=0.2):
                return
            time.sleep(0.02)
        log_tail = self.log_path.read_text(errors="replace")[-2000:]
        self.stop()
        raise RuntimeError(f"redis-server did not answer PING on port {self.port} within "
                           f"{_START_TIMEOUT} s; its log:\n{log_tail}")

    def stop(self) -> None:
        """Kill redis-server (SIGKILL: it goes away as in a crash); idempotent."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout=5)

    def pause(self) -> None:
        """Freeze redis-server: connections are accepted by the kernel, nothing answers."""
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    """A running redis-server on a free loopback port, killed on exit (skips, or fails
    under CI=true, when redis-server is not installed)."""
    binary = require_peer("redis-server")
    with tempfile.TemporaryDirectory(prefix="tlsmith-redis-") as directory:
        server: RedisServer | None = None
        for attempt in range(3):  # the free port may be taken in between: try another
            server = RedisServer(binary, free_port(), Path(directory))
            try:
                server.start()
                break
            except RuntimeError:
                if attempt == 2:
                    raise
        assert server is not None
        try:
            yield server
        finally:
            server.stop()

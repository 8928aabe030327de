"""``tlsmith serve --workers N`` (N > 1): the process becomes a supervisor of N
*spawned* worker processes, each with its own TLSServer on its own socket bound to the
same HOST:PORT with SO_REUSEPORT (the kernel spreads connections over them). The parent checks the
configuration once, holds the port while the workers start, prints the banner once all
listen, counts --max-connections over all of them, restarts a worker that dies (and exits
1 if more than 5 die within 60 s, or one dies before it listens) and stops them all on
Ctrl-C / SIGTERM. Workers stop by themselves if the parent disappears.

Shared state across workers: with ``--store redis://`` every worker opens its own
RedisStore and all of it is shared. With the memory store the parent draws one set of
ticket keys that every worker uses (rotating in lockstep, ``_SharedKeysStore``), so
tickets resume on any worker; the TLS 1.2 session-ID cache and 0-RTT single-use marks
would be per process, so session IDs are off and ``--early-data`` is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from tlsmith.cli.serve_cmd import (
    ServeOptions,
    _banner,
    _build_config,
    _credential_files,
    _reuse_port_socket,
    _serve,
    _session_store,
)
from tlsmith.config import ServerConfig
from tlsmith.errors import UsageError
from tlsmith.explain import explain
from tlsmith.stores import MemoryStore
from tlsmith.tickets import TicketKey, TicketKeys

# -- --workers N: a parent supervising N serving processes --------------------------------

#: How long the workers get to start listening (spawned interpreters import everything).
_STARTUP_TIMEOUT = 60.0
#: A worker that dies is restarted, unless this many die within _RESTART_WINDOW seconds.
_MAX_RESTARTS = 5
_RESTART_WINDOW = 60.0
#: How long a stopping worker gets before it is killed (of which it waits
#: serve_cmd._DRAIN_SECONDS for the connections it is answering).
_STOP_GRACE = 5.0


class _SharedKeysStore(MemoryStore):
    """A worker's MemoryStore with the fleet's ticket keys: the parent's key, then keys
    derived from it for each rotation period, so all workers rotate to the same keys at
    the same time without talking to each other (a plain MemoryStore would draw a random
    key of its own at its first rotation, and tickets would stop resuming across
    workers). Session IDs and 0-RTT single-use marks stay per process."""

    def __init__(self, keys: TicketKeys) -> None:
        super().__init__(ticket_keys=keys)
        self._base = keys.current
        self._periods: dict[int, TicketKey] = {0: keys.current}

    def ticket_keys(self, now: float) -> TicketKeys:
        period = max(0, int((now - self._base.created_at) // self.rotate_after))
        if period == 0:
            return TicketKeys(self._base)
        return TicketKeys(self._key(period), self._key(period - 1))

    def _key(self, period: int) -> TicketKey:
        with self._lock:
            key = self._periods.get(period)
            if key is None:
                def mac(label: bytes) -> bytes:
                    return hmac.new(self._base.key, label + period.to_bytes(8, "big"),
                                    hashlib.sha256).digest()

                key = TicketKey(mac(b"tlsmith ticket key name")[:16],
                                mac(b"tlsmith ticket key"),
                                self._base.created_at + period * self.rotate_after)
                self._periods = {p: k for p, k in self._periods.items() if p >= period - 1}
                self._periods[period] = key
            return key

    def rotate(self, now: float | None = None) -> TicketKeys:
        raise UsageError("the workers' shared ticket keys rotate on a schedule only")


def _worker_main(number: int, opts: ServeOptions, keys: TicketKeys | None,
                 conn: Connection) -> None:
    """One ``--workers`` process (spawned: a fresh interpreter runs this)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the parent, which stops us
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    parent = os.getppid()
    send_lock = threading.Lock()

    def send(*message: Any) -> None:
        with send_lock, contextlib.suppress(OSError):
            conn.send(message)

    console = Console(highlight=False, soft_wrap=True)
    quiet = Console(file=io.StringIO())  # the parent has said it all once already
    try:
        config = _build_config(
            opts, quiet,
            (lambda: _SharedKeysStore(keys)) if keys is not None
            else (lambda: _session_store(opts.store_url, quiet)),
            session_ids=keys is None)
    except Exception as exc:
        send("failed", explain(exc))
        sys.exit(2)
    sys.exit(_serve(config, opts, console, prefix=f"[worker {number}] ", done=done,
                    listening=lambda port: send("listening", os.getpid()),
                    served_one=lambda: send("served"),
                    # Orphaned (the parent was killed): stop rather than serve forever.
                    still_wanted=lambda: os.getppid() == parent))


@dataclass
class _Worker:
    number: int
    process: BaseProcess
    conn: Connection | None
    listening: bool = False


def run_fleet(opts: ServeOptions, workers: int, max_connections: int,
               console: Console) -> int:
    """The parent of ``--workers N``: check the configuration once, reserve the port,
    spawn the workers, print the banner once they all listen, then supervise: a worker
    that dies is reported and restarted (the parent gives up, exit 1, when workers die
    before listening or keep dying); Ctrl-C / SIGTERM stop them all."""
    memory = opts.store_url == "memory"
    if opts.max_early_data and memory:
        raise click.UsageError(
            "--early-data with --workers needs --store redis://…: 0-RTT anti-replay marks "
            "must be shared by all workers (a memory store keeps them per process, so a "
            "replay sent to another worker would be accepted)",
            ctx=click.get_current_context(silent=True))
    if not hasattr(socket, "SO_REUSEPORT"):
        console.print("[bold red]error:[/bold red] --workers needs SO_REUSEPORT, which "
                      "this platform lacks")
        return 2
    keys = TicketKeys(TicketKey.generate(os.urandom, time.time())) if memory else None
    try:
        pairs = _credential_files(list(opts.cert_key_pairs), console)
        opts = replace(opts, cert_key_pairs=tuple(pairs))
        if keys is not None:
            config = _build_config(opts, console, lambda: _SharedKeysStore(keys),
                                   session_ids=False)
        else:
            config = _build_config(opts, console,
                                   lambda: _session_store(opts.store_url, console))
    except Exception as exc:
        console.print(f"[bold red]error:[/bold red] {explain(exc)}")
        return 2
    close = getattr(config.session_store, "close", None)
    if close is not None:
        close()  # the parent serves nothing: each worker opens its own RedisStore
    try:
        # Held (bound, not listening) until the workers listen: port 0 picks one port
        # for all of them, and a port in use is reported here, once.
        reservation = _reuse_port_socket(opts.host, opts.port, listen=False)
    except OSError as exc:
        console.print(f"[bold red]error:[/bold red] cannot listen on {opts.host}:{opts.port}"
                      f": {exc}")
        return 1
    opts = replace(opts, port=reservation.getsockname()[1])
    stop = [False]

    def on_sigterm(*_: Any) -> None:
        stop[0] = True

    previous_term = signal.signal(signal.SIGTERM, on_sigterm)
    previous_int = signal.getsignal(signal.SIGINT)
    fleet = _Fleet(opts, keys, console)
    try:
        return fleet.run(workers, max_connections, reservation, config, stop)
    except KeyboardInterrupt:
        return 0
    finally:
        reservation.close()
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut this short
        fleet.stop_all()
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)


class _Fleet:
    def __init__(self, opts: ServeOptions, keys: TicketKeys | None, console: Console
                 ) -> None:
        import multiprocessing

        # spawn, not fork: a fresh interpreter per worker inherits no threads or locks
        # from the parent (fork of a threaded process is unsafe and deprecated), and
        # behaves the same on every platform.
        self.context = multiprocessing.get_context("spawn")
        self.opts = opts
        self.keys = keys
        self.console = console
        self.workers: dict[int, _Worker] = {}

    def say(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def start(self, number: int) -> None:
        reader, writer = self.context.Pipe(duplex=False)
        process = self.context.Process(
            target=_worker_main, args=(number, self.opts, self.keys, writer),
            name=f"tlsmith-serve-worker-{number}", daemon=True)
        process.start()
        writer.close()  # the worker holds the only writer: its death is EOF here
        self.workers[number] = _Worker(number, process, reader)

    def run(self, count: int, max_connections: int, reservation: socket.socket,
            config: ServerConfig, stop: list[bool]) -> int:
        for number in range(1, count + 1):
            self.start(number)
        deadline = time.monotonic() + _STARTUP_TIMEOUT
        serving = False
        served = 0
        deaths: list[float] = []
        while not stop[0]:
            owners: dict[Any, _Worker] = {}
            for worker in self.workers.values():
                owners[worker.process.sentinel] = worker
                if worker.conn is not None:
                    owners[worker.conn] = worker
            for ready in wait(list(owners), timeout=0.5):
                worker = owners[ready]
                if self.workers.get(worker.number) is not worker:
                    continue  # already replaced, earlier in this batch
                if ready is worker.conn:
                    try:
                        message = worker.conn.recv()
                    except (EOFError, OSError):
                        worker.conn.close()
                        worker.conn = None
                        continue
                    if message[0] == "listening":
                        worker.listening = True
                        self.say(f"worker {worker.number} (pid {message[1]}) listening")
                    elif message[0] == "served":
                        served += 1
                    elif message[0] == "failed":
                        self.console.print(f"[bold red]error:[/bold red] worker "
                                           f"{worker.number}: {escape(message[1])}")
                    continue
                if ready is not worker.process.sentinel:
                    continue  # a message pipe closed in this batch: handled above
                worker.process.join(timeout=1)
                how = _exit_description(worker.process.exitcode)
                if worker.conn is not None:
                    worker.conn.close()
                    worker.conn = None
                if not serving or not worker.listening:
                    self.say(f"worker {worker.number} (pid {worker.process.pid}) {how} "
                             "before listening: stopping")
                    del self.workers[worker.number]
                    return 1
                now = time.monotonic()
                deaths = [t for t in deaths if now - t < _RESTART_WINDOW] + [now]
                if len(deaths) > _MAX_RESTARTS:
                    self.say(f"worker {worker.number} (pid {worker.process.pid}) {how}; "
                             f"{len(deaths)} worker deaths within {_RESTART_WINDOW:.0f} s: "
                             "stopping")
                    del self.workers[worker.number]
                    return 1
                self.say(f"worker {worker.number} (pid {worker.process.pid}) {how}; "
                         "restarting it")
                self.start(worker.number)
            if not serving:
                if all(w.listening for w in self.workers.values()):
                    serving = True
                    reservation.close()
                    self.console.print(_banner(config, self.opts, self.opts.port, count),
                                       markup=False)
                elif time.monotonic() > deadline:
                    self.say(f"the workers did not all listen within {_STARTUP_TIMEOUT:.0f}"
                             " s: stopping")
                    return 1
            if max_connections and served >= max_connections:
                time.sleep(0.2)  # as with one process: let the last reply's close go out
                break
        return 0

    def stop_all(self) -> None:
        """SIGTERM every worker (each finishes its accept loop and exits), then SIGKILL
        any still there after the grace period."""
        for worker in self.workers.values():
            if worker.process.is_alive():
                worker.process.terminate()
        deadline = time.monotonic() + _STOP_GRACE
        for worker in self.workers.values():
            worker.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(timeout=_STOP_GRACE)
            if worker.conn is not None:
                worker.conn.close()
                worker.conn = None


def _exit_description(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"



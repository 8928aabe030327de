"""``tlsmith serve``: a TLS server that answers HTTP with a page about the handshake.

``--workers N`` (N > 1): the process becomes a supervisor of N *spawned* worker
processes, each with its own TLSServer on its own socket bound to the same HOST:PORT with
SO_REUSEPORT (the kernel spreads connections over them). The parent checks the
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
import html
import io
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from tlsmith.cli.names import suites_for
from tlsmith.codec.enums import CipherSuite, NamedGroup, ProtocolVersion
from tlsmith.config import (
    DEFAULT_SERVER_GROUPS,
    DEFAULT_SUITES,
    CertifiedKey,
    ServerConfig,
)
from tlsmith.crypto.suites import TLS12_SUITES, suite_info
from tlsmith.errors import UsageError
from tlsmith.events import HandshakeInfo
from tlsmith.explain import explain
from tlsmith.io.blocking import Handler, TLSServer, TLSSocket
from tlsmith.stores import MemoryStore, SessionStore
from tlsmith.tickets import TicketKey, TicketKeys
from tlsmith.trace import TraceCollector, render_ladder


def describe_page(info: HandshakeInfo, peer: tuple[Any, ...]) -> str:
    rows = [
        ("Client", f"{peer[0]}:{peer[1]}"),
        ("Protocol", info.version_label),
        ("Cipher suite", info.cipher_suite.name),
        ("Key exchange (TLS 1.2)", info.key_exchange or "-"),
        ("Extended master secret", "-" if info.extended_master_secret is None
         else "yes" if info.extended_master_secret else "no"),
        ("Key exchange group", info.group.name.lower() if info.group else "-"),
        ("Signature scheme", info.signature_scheme.name.lower()
         if info.signature_scheme else "-"),
        ("ALPN", info.alpn or "-"),
        ("Server name (SNI)", info.server_name or "-"),
        ("HelloRetryRequest", "yes" if info.hello_retry_request else "no"),
        ("Resumed", f"yes ({info.resumed_with})" if info.resumed else "no"),
        ("Early data (0-RTT)", "-" if info.early_data_accepted is None
         else "accepted" if info.early_data_accepted else "rejected"),
        ("Client random", info.client_random.hex()),
        ("Client certificate", client_identity(info)),
    ]
    body = "\n".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                     for k, v in rows)
    return ("<!doctype html>\n<html><head><title>tlsmith</title></head><body>\n"
            "<h1>tlsmith: your TLS handshake</h1>\n"
            f"<table>\n{body}\n</table>\n</body></html>\n")


def log_line(info: HandshakeInfo, peer: tuple[Any, ...], early_bytes: int = 0) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (f"{stamp} {peer[0]}:{peer[1]} {info.version_label} {info.cipher_suite.name} "
            f"group={info.group.name.lower() if info.group else '-'} "
            f"sni={info.server_name or '-'} alpn={info.alpn or '-'} "
            f"hrr={'yes' if info.hello_retry_request else 'no'}"
            + (f" kx={info.key_exchange} ems={'yes' if info.extended_master_secret else 'no'}"
               if info.key_exchange else "")
            + (f" resumed ({info.resumed_with})" if info.resumed else "")
            + (f" 0-RTT accepted, {early_bytes} bytes" if info.early_data_accepted
               else " 0-RTT rejected" if info.early_data_accepted is False else "")
            + (f" client={client_identity(info)}" if info.client_certificates else ""))


def client_identity(info: HandshakeInfo) -> str:
    """Mutual TLS: the client certificate's subject (and whether it verified), or "-"."""
    if not info.client_certificates:
        return "-"
    from tlsmith.x509.leaf import parse_der

    try:
        subject = parse_der(info.client_certificates[0]).subject.rfc4514_string()
    except Exception:  # verified chains always parse; be safe for display
        subject = "(unreadable certificate)"
    return f"{subject or '(empty subject)'}" + (
        " (verified)" if info.client_certificate_verified else " (NOT verified)")


def _credentials(cert_key_pairs: list[tuple[str, str]], console: Console
                 ) -> tuple[CertifiedKey, ...]:
    return tuple(CertifiedKey.from_files(c, k)
                 for c, k in _credential_files(cert_key_pairs, console))


def _credential_files(cert_key_pairs: list[tuple[str, str]], console: Console
                      ) -> list[tuple[str, str]]:
    """The (chain, key) files to serve: those given, else the development ones (made
    here, once: --workers processes get the paths, not a race to create them)."""
    if cert_key_pairs:
        return cert_key_pairs
    from tlsmith.x509.devca import default_data_dir, ensure_dev_credentials

    creds = ensure_dev_credentials()
    ca = default_data_dir() / "ca.pem"
    console.print(f"[dim]using development certificates; clients can trust the CA at[/dim] "
                  f"{ca}")
    return [(str(c), str(k)) for c, k in creds.values()]


def _with_staple(certificates: tuple[CertifiedKey, ...], path: str, console: Console
                 ) -> tuple[CertifiedKey, ...]:
    """--ocsp FILE: staple the DER OCSP response to every certificate (RFC 6066 §8) --
    whatever it says, so clients can be tested with good, revoked or stale responses --
    and print what it says about each leaf."""
    from pathlib import Path

    from tlsmith.errors import UsageError
    from tlsmith.x509.leaf import parse_der
    from tlsmith.x509.revocation import check_ocsp_response

    try:
        der = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the OCSP response ({exc.strerror or exc})"
                         ) from exc
    if not der:
        raise UsageError(f"{path}: the OCSP response file is empty")
    for certified in certificates:
        leaf = parse_der(certified.chain[0])
        name = leaf.subject.rfc4514_string() or "(empty subject)"
        if len(certified.chain) > 1:
            said = check_ocsp_response(der, leaf, parse_der(certified.chain[1]),
                                       now=datetime.now(UTC)).detail
        else:
            said = "not checked here: the chain has no issuer certificate"
        console.print(f"[dim]stapling {escape(path)} for {escape(name)}: "
                      f"{escape(said)}[/dim]")
    return tuple(replace(c, ocsp_response=der) for c in certificates)


def _with_rsa_kx(suites: tuple[CipherSuite, ...], allow: bool) -> tuple[CipherSuite, ...]:
    """--allow-rsa-kx alone adds the RSA key transport suites, least preferred."""
    if not allow or any(
            (i := suite_info(s)) is not None and i.key_exchange == "rsa" for s in suites):
        return suites
    return suites + tuple(s for s, i in TLS12_SUITES.items() if i.key_exchange == "rsa")


@dataclass(frozen=True)
class ServeOptions:
    """What one server process needs to build its config: plain, picklable values (each
    ``--workers`` process gets a copy and builds its own config, keys and store)."""

    host: str
    port: int
    cert_key_pairs: tuple[tuple[str, str], ...]
    ciphers: tuple[CipherSuite, ...]
    groups: tuple[NamedGroup, ...]
    alpn: tuple[str, ...]
    keylog: str | None
    echo: bool
    trace: bool
    min_version: ProtocolVersion
    max_version: ProtocolVersion
    allow_no_ems: bool
    allow_rsa_kx: bool
    client_ca: str | None
    require_client_cert: bool
    ocsp_file: str | None
    post_handshake_auth: bool
    tickets: int
    max_early_data: int
    store_url: str
    max_concurrent: int | None


def run_serve(*, host: str, port: int, cert_key_pairs: list[tuple[str, str]],
              ciphers: list[CipherSuite], groups: list[NamedGroup], alpn: list[str],
              keylog: str | None, echo: bool, trace: bool, max_connections: int,
              min_version: ProtocolVersion = ProtocolVersion.TLS12,
              max_version: ProtocolVersion = ProtocolVersion.TLS13,
              allow_no_ems: bool = False, allow_rsa_kx: bool = False,
              console: Console, client_ca: str | None = None,
              require_client_cert: bool = False, ocsp_file: str | None = None,
              post_handshake_auth: bool = False, tickets: int = 2,
              max_early_data: int = 0, store_url: str = "memory",
              workers: int = 1, max_concurrent: int | None = None) -> int:
    opts = ServeOptions(
        host=host, port=port, cert_key_pairs=tuple(cert_key_pairs), ciphers=tuple(ciphers),
        groups=tuple(groups), alpn=tuple(alpn), keylog=keylog, echo=echo, trace=trace,
        min_version=min_version, max_version=max_version, allow_no_ems=allow_no_ems,
        allow_rsa_kx=allow_rsa_kx, client_ca=client_ca,
        require_client_cert=require_client_cert, ocsp_file=ocsp_file,
        post_handshake_auth=post_handshake_auth, tickets=tickets,
        max_early_data=max_early_data, store_url=store_url, max_concurrent=max_concurrent)
    if workers > 1:
        return _run_fleet(opts, workers, max_connections, console)
    try:
        config = _build_config(opts, console, lambda: _session_store(store_url, console))
    except Exception as exc:
        console.print(f"[bold red]error:[/bold red] {explain(exc)}")
        return 2
    return _serve(config, opts, console, max_connections=max_connections)


def _build_config(opts: ServeOptions, console: Console, store: Callable[[], SessionStore],
                  *, session_ids: bool = True) -> ServerConfig:
    client_trust = None
    if opts.client_ca is not None:
        from tlsmith.x509.verify import TrustStore

        client_trust = TrustStore.from_pem_file(opts.client_ca)
    certificates = _credentials(list(opts.cert_key_pairs), console)
    if opts.ocsp_file is not None:
        certificates = _with_staple(certificates, opts.ocsp_file, console)
    config = ServerConfig(
        certificates=certificates,
        # --post-handshake-auth: ask after the handshake (RFC 8446 §4.6.2), not in it.
        client_auth=("none" if client_trust is None
                     or (opts.post_handshake_auth and not opts.require_client_cert)
                     else "require" if opts.require_client_cert else "request"),
        client_trust=client_trust,
        cipher_suites=_with_rsa_kx(suites_for(list(opts.ciphers), DEFAULT_SUITES),
                                   opts.allow_rsa_kx),
        groups=opts.groups or DEFAULT_SERVER_GROUPS,
        alpn_protocols=opts.alpn,
        min_version=opts.min_version,
        max_version=opts.max_version,
        require_extended_master_secret=not opts.allow_no_ems,
        allow_rsa_key_exchange=opts.allow_rsa_kx,
        session_store=store(),
        session_ids=session_ids,
        tickets=opts.tickets,
        max_early_data=opts.max_early_data,
    )
    if opts.post_handshake_auth and client_trust is None:
        raise UsageError("--post-handshake-auth needs --client-ca FILE (the CAs the "
                         "client certificates must chain to)")
    return config


def _serve(config: ServerConfig, opts: ServeOptions, console: Console, *,
           max_connections: int = 0, prefix: str = "",
           done: threading.Event | None = None,
           listening: Callable[[int], None] | None = None,
           served_one: Callable[[], None] | None = None,
           still_wanted: Callable[[], bool] | None = None) -> int:
    """Serve in this process until ``done`` is set (or ``max_connections``, or Ctrl-C).
    A ``--workers`` process passes ``listening`` (called instead of printing the banner:
    the parent prints it once all workers listen) and a log-line ``prefix``."""
    lock = threading.Lock()
    done = done or threading.Event()
    served = [0]
    post_handshake_auth, echo = opts.post_handshake_auth, opts.echo

    def say(text: str) -> None:
        with lock:
            console.print(prefix + text, markup=False, highlight=False)

    def count() -> None:
        if served_one is not None:
            served_one()
        with lock:
            served[0] += 1
            if max_connections and served[0] >= max_connections:
                done.set()

    idle = threading.Condition(lock)
    active = [0]  # connections in the handler (a stopping worker lets them finish)

    def handler(tls: TLSSocket, peer: tuple[Any, ...]) -> None:
        with lock:
            active[0] += 1
        try:
            handle(tls, peer)
        finally:
            count()
            with lock:
                active[0] -= 1
                idle.notify_all()

    def handle(tls: TLSSocket, peer: tuple[Any, ...]) -> None:
        info = tls.info
        say(log_line(info, peer, len(tls.early_data)))
        if post_handshake_auth and tls.conn.post_handshake_auth_offered and (
                info.version == ProtocolVersion.TLS13):
            answer = tls.request_client_certificate()
            assert answer is not None
            # The page and the log show the post-handshake identity.
            info = replace(info, client_certificates=answer.chain,
                           client_certificate_verified=answer.verified)
            say(f"{peer[0]}:{peer[1]} post-handshake client certificate: "
                f"{client_identity(info)}")
        if echo:
            # 0-RTT data is the head of the stream recv() returns: echoed like the rest.
            while True:
                data = tls.recv()
                if not data:
                    break
                tls.sendall(data)
        else:
            _answer_http(tls, info, peer)

    def on_error(peer: tuple[Any, ...], exc: BaseException) -> None:
        say(f"{peer[0]}:{peer[1]} failed: {explain(exc)}")
        count()

    cfg = config
    if opts.trace:
        cfg = _with_trace(config, console, lock, prefix)
    try:
        server = _make_server(cfg, opts, handler, on_error, reuse_port=listening is not None)
    except OSError as exc:
        console.print(f"{escape(prefix)}[bold red]error:[/bold red] cannot listen on "
                      f"{opts.host}:{opts.port}: {exc}")
        return 1
    port = server.server_address[1]
    if listening is None:
        console.print(_banner(config, opts, port), markup=False)
    server.start()
    if listening is not None:
        listening(port)
    try:
        while not done.wait(0.5):
            if still_wanted is not None and not still_wanted():
                break
        if max_connections:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        if listening is not None:
            # A worker told to stop (a rolling restart, Ctrl-C): no new connections now;
            # give those being answered a moment, not forever (--echo ones may idle).
            with lock:
                idle.wait_for(lambda: active[0] == 0, timeout=_DRAIN_SECONDS)
    return 0


def _banner(config: ServerConfig, opts: ServeOptions, port: int, workers: int = 1) -> str:
    versions = " and ".join(v.label for v in config.versions)
    extras = [f"tickets={opts.tickets}"]
    if opts.max_early_data:
        extras.append(f"0-RTT up to {opts.max_early_data} bytes")
    if opts.store_url != "memory":
        extras.append(f"store={config.session_store!r}")
    if workers > 1:
        extras.append(f"{workers} workers")
        if opts.store_url == "memory":
            extras.append("shared ticket keys, no session IDs")
    if opts.max_concurrent:
        extras.append(f"at most {opts.max_concurrent} connections at once"
                      + (" per worker" if workers > 1 else ""))
    return (f"tlsmith serving {versions} on {opts.host}:{port} "
            f"({'echo' if opts.echo else 'HTTP'}; {', '.join(extras)}) — Ctrl-C to stop")


def _make_server(cfg: ServerConfig, opts: ServeOptions, handler: Handler,
                 on_error: Callable[[tuple[Any, ...], BaseException], None], *,
                 reuse_port: bool) -> TLSServer:
    kwargs: dict[str, Any] = {"on_error": on_error, "keylog": opts.keylog,
                              "max_concurrent": opts.max_concurrent}
    if not reuse_port:
        return TLSServer(cfg, (opts.host, opts.port), handler, **kwargs)
    # One of the workers' sockets sharing the port.
    sock = _reuse_port_socket(opts.host, opts.port, listen=True)
    try:
        return TLSServer(cfg, (opts.host, opts.port), handler, sock=sock, **kwargs)
    except BaseException:
        sock.close()
        raise


def _reuse_port_socket(host: str, port: int, *, listen: bool) -> socket.socket:
    """A socket bound with SO_REUSEPORT: every worker binds one to the same address and
    the kernel spreads incoming connections over those that listen."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        if listen:
            # A burst of connections is split over the workers' queues: make them deep.
            sock.listen(1024)
    except BaseException:
        sock.close()
        raise
    return sock


# -- --workers N: a parent supervising N serving processes --------------------------------

#: How long the workers get to start listening (spawned interpreters import everything).
_STARTUP_TIMEOUT = 60.0
#: A worker that dies is restarted, unless this many die within _RESTART_WINDOW seconds.
_MAX_RESTARTS = 5
_RESTART_WINDOW = 60.0
#: How long a stopping worker gets before it is killed, and how long of that it waits
#: for the connections it is answering.
_STOP_GRACE = 5.0
_DRAIN_SECONDS = 2.0


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


def _run_fleet(opts: ServeOptions, workers: int, max_connections: int,
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


def _session_store(url: str, console: Console) -> Any:
    """--store: the process's MemoryStore, or a RedisStore shared by a fleet. A Redis
    that does not answer at startup is only a warning: handshakes fall back to full
    ones (and 0-RTT is refused) until it does."""
    from tlsmith.stores import MemoryStore, StoreUnavailable

    if url == "memory":
        return MemoryStore()
    from tlsmith.stores_redis import RedisStore

    store = RedisStore.from_url(url)
    try:
        store.ticket_keys(time.time())
    except StoreUnavailable as exc:
        console.print(f"[bold yellow]warning:[/bold yellow] {escape(str(exc))}: serving "
                      "anyway, with full handshakes and no 0-RTT until it answers")
    return store


def _with_trace(config: ServerConfig, console: Console, lock: threading.Lock,
                prefix: str = "") -> ServerConfig:
    """One ladder per connection: the observer is per-connection via a thread local."""
    from dataclasses import replace

    local = threading.local()

    def observer(record: Any) -> None:
        collector = getattr(local, "collector", None)
        if collector is None:
            collector = local.collector = TraceCollector()
        collector(record)
        if getattr(record, "name", "") == "Finished":
            # The handshake ends when both Finished messages have crossed: the client's
            # last in TLS 1.3, the server's last in TLS 1.2.
            seen = local.finished = getattr(local, "finished", frozenset()) | {
                getattr(record, "direction", "")}
            if len(seen) == 2:
                with lock:
                    if prefix:
                        console.print(f"{prefix}handshake ladder:", markup=False)
                    render_ladder(collector, console, local_is_left=False)
                local.collector = None
                local.finished = frozenset()

    return replace(config, observer=observer)


#: Methods safe to act on when they may be a replay (RFC 8446 §8, RFC 8470 §3).
_EARLY_OK = (b"GET", b"HEAD")


def _answer_http(tls: TLSSocket, info: HandshakeInfo, peer: tuple[Any, ...]) -> None:
    request = bytearray()
    while b"\r\n\r\n" not in request and len(request) < 65536:
        try:
            chunk = tls.recv()
        except TimeoutError:
            break
        if not chunk:
            break
        request += chunk
    if not request and tls.closed_cleanly is not None:
        return  # the client closed without asking anything (e.g. connect --resume)
    # Early data is the head of the stream: a request that began in it may be a replay.
    if tls.early_data and request.split(b" ", 1)[0] not in _EARLY_OK:
        body = b"Too Early: send this request again after the handshake (RFC 8470)\n"
        tls.sendall(b"HTTP/1.0 425 Too Early\r\nContent-Type: text/plain\r\n"
                    b"Content-Length: " + str(len(body)).encode()
                    + b"\r\nConnection: close\r\n\r\n" + body)
        return
    page = describe_page(info, peer).encode()
    head = (f"HTTP/1.0 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
            f"Content-Length: {len(page)}\r\nConnection: close\r\n\r\n").encode()
    tls.sendall(head + page)

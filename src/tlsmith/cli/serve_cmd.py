"""``tlsmith serve``: a TLS server that answers HTTP with a page about the handshake
(``--workers N``: see serve_workers.py)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.markup import escape

from tlsmith.cli.names import suites_for
from tlsmith.cli.serve_page import ConnectionTraces, Request
from tlsmith.cli.serve_page import answer as answer_page
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
from tlsmith.fingerprint import cached_ja4
from tlsmith.io.blocking import Handler, TLSServer, TLSSocket
from tlsmith.observe import combine_observers
from tlsmith.stores import MemoryStore, SessionStore
from tlsmith.trace import TraceCollector, render_ladder

#: The log lines' UTC timestamp of the current second: (second, text), made once a second.
_stamp: tuple[int, str] = (-1, "")


def _timestamp() -> str:
    global _stamp
    second = int(time.time())
    if _stamp[0] != second:
        _stamp = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return _stamp[1]


#: HandshakeInfo.version_label by version, made once (an enum lookup and a property).
_VERSION_LABELS: dict[int, str] = {}


def log_line(info: HandshakeInfo, peer: tuple[Any, ...], early_bytes: int = 0, *,
             ja4: str | None = None) -> str:
    stamp = _timestamp()
    version = _VERSION_LABELS.get(info.version)
    if version is None:
        version = _VERSION_LABELS[info.version] = info.version_label
    # (``_name_`` is what enum's ``name`` property returns, without the property.)
    return (f"{stamp} {peer[0]}:{peer[1]} {version} {info.cipher_suite._name_} "
            f"group={info.group._name_.lower() if info.group else '-'} "
            f"sni={info.server_name or '-'} alpn={info.alpn or '-'} "
            + (f"ja4={ja4} " if ja4 else "")
            + f"hrr={'yes' if info.hello_retry_request else 'no'}"
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
    handshake_timeout: float | None = 10.0
    idle_timeout: float | None = 30.0
    trace_json: str | None = None  # --trace-json FILE: JSON lines, one set per handshake


#: How long a stopping server waits for the connections it is answering.
_DRAIN_SECONDS = 2.0


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
              workers: int = 1, max_concurrent: int | None = 256,
              handshake_timeout: float | None = 10.0,
              idle_timeout: float | None = 30.0, trace_json: str | None = None) -> int:
    opts = ServeOptions(
        host=host, port=port, cert_key_pairs=tuple(cert_key_pairs), ciphers=tuple(ciphers),
        groups=tuple(groups), alpn=tuple(alpn), keylog=keylog, echo=echo, trace=trace,
        min_version=min_version, max_version=max_version, allow_no_ems=allow_no_ems,
        allow_rsa_kx=allow_rsa_kx, client_ca=client_ca,
        require_client_cert=require_client_cert, ocsp_file=ocsp_file,
        post_handshake_auth=post_handshake_auth, tickets=tickets,
        max_early_data=max_early_data, store_url=store_url, max_concurrent=max_concurrent,
        handshake_timeout=handshake_timeout, idle_timeout=idle_timeout,
        trace_json=trace_json)
    if workers > 1:
        from tlsmith.cli.serve_workers import run_fleet

        return run_fleet(opts, workers, max_connections, console)
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

    plain = _plain_output(console)
    # Plain output to a real file and nothing else printing meanwhile (--trace prints
    # ladders): one os.write per line, no lock -- lines stay whole (one write each) and
    # the connections' threads do not queue behind each other's writes.
    fd = _fileno(console.file) if plain and not opts.trace else None
    encoding = getattr(console.file, "encoding", None) or "utf-8"

    def say(text: str) -> None:
        if fd is not None:
            data = (prefix + text + "\n").encode(encoding, "replace")
            while data:
                data = data[os.write(fd, data):]
            return
        with lock:
            if plain:
                # The same text rich would print (no markup, no highlighting, soft
                # wrap), without rich's rendering: a log line per handshake adds up.
                out = console.file
                out.write(prefix + text + "\n")
                out.flush()
            else:
                console.print(prefix + text, markup=False, highlight=False)

    # ``lock`` orders the output (log lines, ladders); ``state`` guards the counters.
    # Both are taken only when needed: every connection's thread contends for them.
    state = threading.Lock()

    def count() -> None:
        if served_one is not None:
            served_one()
        if not max_connections:
            return
        with state:
            served[0] += 1
            if served[0] >= max_connections:
                done.set()

    idle = threading.Condition(state)
    active = [0]  # connections in the handler (a stopping worker lets them finish)
    track_active = listening is not None  # (only a --workers process waits for them)

    def handler(tls: TLSSocket, peer: tuple[Any, ...]) -> None:
        if not track_active:
            try:
                handle(tls, peer)
            finally:
                count()
            return
        with state:
            active[0] += 1
        try:
            handle(tls, peer)
        finally:
            count()
            with state:
                active[0] -= 1
                idle.notify_all()

    def handle(tls: TLSSocket, peer: tuple[Any, ...]) -> None:
        info = tls.info
        say(log_line(info, peer, len(tls.early_data), ja4=cached_ja4(tls.conn.first_client_hello)))
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
            assert pages is not None
            _answer_http(tls, info, peer, pages)

    def on_error(peer: tuple[Any, ...], exc: BaseException) -> None:
        cut = _cut_reason(exc, opts)
        if cut is not None:
            say(f"{peer[0]}:{peer[1]} closed: {cut}")
        else:
            say(f"{peer[0]}:{peer[1]} failed: {explain(exc)}")
        count()

    cfg = config
    # Per-connection observer state lives in thread locals; TLSServer reuses its
    # threads, so each is reset before every connection's handshake.
    begins: list[Callable[[], None]] = []
    if opts.trace:
        cfg = _with_trace(config, console, lock, prefix, begins)
    if opts.trace_json:
        cfg = _with_trace_json(cfg, opts.trace_json, fleet=bool(prefix), begins=begins)
    # HTTP mode: each connection's trace, for its page and its /explain/<id>.
    pages = None if echo else ConnectionTraces(config)
    if pages is not None:
        cfg = replace(cfg, observer=combine_observers(cfg.observer, pages))
        begins.append(pages.begin)

    def on_connection() -> None:
        for begin in begins:
            begin()

    try:
        server = _make_server(cfg, opts, handler, on_error, reuse_port=listening is not None,
                              on_connection=on_connection if begins else None)
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
            with state:
                idle.wait_for(lambda: active[0] == 0, timeout=_DRAIN_SECONDS)
    return 0


def _plain_output(console: Console) -> bool:
    """Whether serve's log lines can go to the console's file as plain text: it is not a
    terminal (no styles, no width to fit) and the console neither records nor wraps
    (``soft_wrap``), so rich would write the text unchanged."""
    return bool(console.soft_wrap and not console.is_terminal and not console.record
                and not console.is_jupyter)


def _fileno(file: Any) -> int | None:
    """The descriptor under a text file (flushed first), or None (e.g. a StringIO)."""
    try:
        fd = file.fileno()
        file.flush()
    except (AttributeError, OSError, ValueError):  # (io.UnsupportedOperation: OSError)
        return None
    return fd if isinstance(fd, int) else None


def _cut_reason(exc: BaseException, opts: ServeOptions) -> str | None:
    """A connection the server's limits cut: why, for the log line (None: not a cut)."""
    from tlsmith.aio import IdleTimeout
    from tlsmith.io.blocking import HandshakeTimeout

    if isinstance(exc, HandshakeTimeout):
        return str(exc)
    if isinstance(exc, IdleTimeout):
        return str(exc)
    if isinstance(exc, TimeoutError):
        # A socket timeout: in the handshake (per read) or, after it, the idle timeout.
        return (f"idle or read timeout (nothing received for {opts.idle_timeout:g} s)"
                if opts.idle_timeout is not None else "read timeout")
    return None


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
    if opts.handshake_timeout:
        extras.append(f"handshake deadline {opts.handshake_timeout:g} s")
    return (f"tlsmith serving {versions} on {opts.host}:{port} "
            f"({'echo' if opts.echo else 'HTTP'}; {', '.join(extras)}) — Ctrl-C to stop")


def _make_server(cfg: ServerConfig, opts: ServeOptions, handler: Handler,
                 on_error: Callable[[tuple[Any, ...], BaseException], None], *,
                 reuse_port: bool, on_connection: Callable[[], None] | None = None
                 ) -> TLSServer:
    kwargs: dict[str, Any] = {"on_error": on_error, "keylog": opts.keylog,
                              "on_connection": on_connection,
                              "max_concurrent": opts.max_concurrent,
                              "handshake_timeout": opts.handshake_timeout,
                              "idle_timeout": opts.idle_timeout}
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


def _session_store(url: str, console: Console) -> Any:
    """--store: the process's MemoryStore, or a RedisStore shared by a fleet. A Redis
    that does not answer at startup is only a warning: handshakes fall back to full
    ones (and 0-RTT is refused) until it does."""
    from tlsmith.stores import StoreUnavailable

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
                prefix: str = "", begins: list[Callable[[], None]] | None = None
                ) -> ServerConfig:
    """One ladder per connection: the observer is per-connection via a thread local
    (reset by the function added to ``begins``, before each connection)."""
    from dataclasses import replace

    from tlsmith.observe import CompleteTrace

    local = threading.local()
    if begins is not None:
        begins.append(lambda: setattr(local, "collector", None))

    def observer(record: Any) -> None:
        collector = getattr(local, "collector", None)
        if collector is None:
            collector = local.collector = TraceCollector()
        collector(record)
        if isinstance(record, CompleteTrace):  # the ladder ends with "handshake complete"
            with lock:
                if prefix:
                    console.print(f"{prefix}handshake ladder:", markup=False)
                render_ladder(collector, console, local_is_left=False)
            local.collector = None

    return replace(config, observer=observer)


def _with_trace_json(config: ServerConfig, path: str, *, fleet: bool,
                     begins: list[Callable[[], None]] | None = None) -> ServerConfig:
    """--trace-json FILE: each handshake's trace as JSON lines (docs/trace-schema.md),
    appended once it completes, numbered by ``connection`` ("PID:N" with --workers, whose
    processes append to the same file: one write per connection keeps lines whole)."""
    import itertools
    import json
    import os

    from tlsmith.observe import CompleteTrace, MessageTrace, combine_observers
    from tlsmith.trace import records_to_json

    local = threading.local()
    numbers = itertools.count(1)

    def begin() -> None:
        local.collector, local.complete = None, True

    if begins is not None:
        begins.append(begin)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def observer(record: Any) -> None:
        if isinstance(record, MessageTrace) and record.name == "ClientHello" and (
                record.direction == "received" and getattr(local, "complete", True)):
            local.collector, local.complete = TraceCollector(), False  # a new connection
        collector = getattr(local, "collector", None)
        if collector is None:
            return
        collector(record)
        if isinstance(record, CompleteTrace):
            n = next(numbers)
            items = records_to_json(collector, connection=f"{os.getpid()}:{n}" if fleet
                                    else n)
            os.write(fd, "".join(json.dumps(i, ensure_ascii=False) + "\n"
                                 for i in items).encode())
            local.collector, local.complete = None, True

    return replace(config, observer=combine_observers(config.observer, observer))


#: Methods safe to act on when they may be a replay (RFC 8446 §8, RFC 8470 §3).
_EARLY_OK = (b"GET", b"HEAD")


def _answer_http(tls: TLSSocket, info: HandshakeInfo, peer: tuple[Any, ...],
                 pages: ConnectionTraces) -> None:
    request = bytearray()
    while b"\r\n\r\n" not in request and len(request) < 65536:
        try:
            chunk = tls.recv()
        except TimeoutError:
            break
        if not chunk:
            break
        request += chunk
    if not request and (tls.closed_cleanly is not None or tls.driver.eof):
        # The client closed without asking anything (e.g. connect --resume, or a client
        # that only handshakes): no page to build. (``driver.eof``: a bare EOF ends
        # recv() before the core reports it, so ``closed_cleanly`` may still be None.)
        return
    # Early data is the head of the stream: a request that began in it may be a replay.
    if tls.early_data and request.split(b" ", 1)[0] not in _EARLY_OK:
        body = b"Too Early: send this request again after the handshake (RFC 8470)\n"
        tls.sendall(b"HTTP/1.0 425 Too Early\r\nContent-Type: text/plain\r\n"
                    b"Content-Length: " + str(len(body)).encode()
                    + b"\r\nConnection: close\r\n\r\n" + body)
        return
    # The page of this connection's own handshake (serve_page.py).
    parsed = Request.parse(bytes(request))
    captured = pages.capture(info, peer, client_identity(info))
    reply = answer_page(parsed, captured, pages)
    tls.sendall(reply.to_bytes(head_only=parsed.method == "HEAD"))

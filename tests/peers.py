"""Drive real TLS peers on 127.0.0.1 for the interop tests (import as ``from peers import ...``).

* ``start_s_server`` / ``PeerProcess``: a long-lived ``openssl s_server`` (or an
  interactive ``openssl s_client``) whose stdin is a pipe we write commands to and whose
  output goes to a file we poll (a file, not a pipe, so a chatty ``-msg`` peer can never
  block on a full pipe).
* ``run_s_client``: a one-shot ``openssl s_client`` with input and a timeout.
* ``tlsmith_server``: an in-process tlsmith ``TLSServer`` in a thread, with an HTTP or an
  echo handler that records what each connection saw.
* ``python_ssl_server``: an echo server on Python's ``ssl`` module (TLS 1.3-only unless
  told otherwise).
* ``start_tlsmith_serve_cli``: the ``tlsmith serve`` command as a subprocess.
* ``OPENSSL_TLS12_CIPHER`` (IANA -> OpenSSL suite names), ``openssl_conf_env`` (an
  ``OPENSSL_CONF`` for settings without a switch, e.g. no extended master secret) and
  ``openssl_msg_bytes`` (a handshake message's bytes from ``-msg`` output).
* ``next_event`` / ``read_until_closed``: drive a ``TLSSocket``'s sans-IO core directly,
  so a test can see events (``ConnectionClosed(clean=...)``, ``KeyUpdated``) that the
  socket-like API folds away.

Everything is bounded: every subprocess has a timeout, every socket has one, and every
``stop()`` ends with a kill.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import hashlib
import itertools
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Any

from helpers import CertFiles, free_port, require_peer
from tlsmith.codec.enums import CipherSuite
from tlsmith.config import ServerConfig
from tlsmith.errors import ConnectionClosedError
from tlsmith.events import (
    NEED_DATA,
    ApplicationData,
    ConnectionClosed,
    Event,
    HandshakeInfo,
    KeyUpdated,
)
from tlsmith.io.blocking import TLSServer, TLSSocket

#: Every TLS 1.3 suite, as OpenSSL's ``-ciphersuites`` wants it.
OPENSSL_ALL_SUITES = ("TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
                      "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_CCM_SHA256")
#: The groups of the matrix, as OpenSSL's ``-groups`` wants them.
OPENSSL_MATRIX_GROUPS = "x25519:P-256:P-384:x448:ffdhe2048"

STARTUP_TIMEOUT = 5.0
IO_TIMEOUT = 10.0


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def port_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


# ----------------------------------------------------------------------------- processes
class PeerProcess:
    """A running peer (openssl s_server / s_client, tlsmith serve) with stdin on a pipe and
    stdout+stderr in a log file."""

    def __init__(self, args: Sequence[str], log_path: Path, *, port: int = 0,
                 env: dict[str, str] | None = None) -> None:
        self.args = list(args)
        self.log_path = log_path
        self.port = port
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=self._log,
                                     stderr=subprocess.STDOUT, env=env)

    # -- output -----------------------------------------------------------------------
    def output(self) -> str:
        return self.log_path.read_bytes().decode("utf-8", "replace")

    def mark(self) -> int:
        """An offset into output(); ``output_since(mark)`` is what came after it."""
        return len(self.output())

    def output_since(self, mark: int) -> str:
        return self.output()[mark:]

    def wait_for(self, text: str, *, since: int = 0, timeout: float = IO_TIMEOUT,
                 count: int = 1) -> str:
        """Wait until ``text`` occurs ``count`` times in the output after ``since``."""
        if not wait_until(lambda: self.output_since(since).count(text) >= count, timeout):
            raise AssertionError(f"{text!r} (x{count}) did not appear within {timeout} s in "
                                 f"the output of {' '.join(self.args)}:\n"
                                 f"{self.output_since(since)[-4000:]}")
        return self.output_since(since)

    # -- input ------------------------------------------------------------------------
    def send(self, text: str | bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode() if isinstance(text, str) else text)
        self.proc.stdin.flush()

    def close_stdin(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()

    # -- lifetime ---------------------------------------------------------------------
    def wait(self, timeout: float = IO_TIMEOUT) -> int:
        """Wait for the process to exit by itself; kill it (and fail) after ``timeout``."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"{' '.join(self.args)} did not exit within {timeout} s:\n"
                                 f"{self.output()[-4000:]}") from None

    def stop(self) -> None:
        self.close_stdin()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=3)
        self._log.close()

    def __enter__(self) -> PeerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def openssl() -> str:
    return require_peer("openssl")


def start_s_server(cert: CertFiles, *extra: str, log_dir: Path, name: str = "s_server",
                   tls13_only: bool = True, env: dict[str, str] | None = None,
                   line_buffered: bool = False) -> PeerProcess:
    """Start ``openssl s_server`` with ``cert`` on a free 127.0.0.1 port.

    Returns once the port accepts connections (polled for up to 5 s). The server keeps
    accepting connections one after another until ``stop()``. Its stdin stays open (at EOF
    a non-``-www`` s_server would quit), so ``send("k\\n")`` etc. reach it. ``env``: the
    environment of the process (e.g. with ``OPENSSL_CONF``, see ``openssl_conf_env``).
    ``line_buffered``: run it under ``stdbuf -oL``. Its output goes to a file through C
    stdio, which s_server flushes in its console mode but not with ``-www``: without this
    a ``-www -trace`` server's log lags by up to 4 KiB.
    """
    binary = openssl()
    prefix = [require_peer("stdbuf"), "-oL"] if line_buffered else []
    last = ""
    for attempt in range(3):  # another process may grab the free port first: retry
        port = free_port()
        args = [*prefix, binary, "s_server", "-accept", f"127.0.0.1:{port}",
                "-cert", str(cert.cert_path), "-key", str(cert.key_path)]
        if tls13_only:
            args.append("-tls1_3")
        args += extra
        peer = PeerProcess(args, log_dir / f"{name}-{port}-{attempt}.log", port=port,
                           env=env)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline and peer.proc.poll() is None:
            # "ACCEPT" is printed once s_server listens (so the probe is not answered by
            # whoever else might have taken the port); then its port must accept.
            if "ACCEPT" in peer.output() and port_accepts(port):
                return peer
            time.sleep(0.05)
        last = peer.output()
        peer.stop()
    raise AssertionError(f"openssl s_server did not start:\n{last}")


@dataclass
class ProcessResult:
    """What a finished peer process printed."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout + self.stderr


def run_process_group(cmd: Sequence[str], *, timeout: float, what: str,
                      env: dict[str, str] | None = None) -> ProcessResult:
    """Run ``cmd`` in its own process group with no stdin; the whole group is killed when
    it ends (helpers it left behind) or after ``timeout`` seconds (and the test fails)."""
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=5)
        raise AssertionError(f"{what} did not finish within {timeout} s:\n"
                             f"{out.decode(errors='replace')[-3000:]}"
                             f"{err.decode(errors='replace')[-3000:]}") from None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    return ProcessResult(proc.returncode, out.decode("utf-8", "replace"),
                         err.decode("utf-8", "replace"))


def run_s_client(port: int, *args: str, stdin: bytes = b"",
                 timeout: float = IO_TIMEOUT, env: dict[str, str] | None = None
                 ) -> ProcessResult:
    """``openssl s_client -connect 127.0.0.1:PORT ARGS`` fed ``stdin``; killed (and
    subprocess.TimeoutExpired raised) after ``timeout`` seconds."""
    cmd = [openssl(), "s_client", "-connect", f"127.0.0.1:{port}", *args]
    done = subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout, check=False,
                          env=env)
    return ProcessResult(done.returncode, done.stdout.decode("utf-8", "replace"),
                         done.stderr.decode("utf-8", "replace"))


def start_s_client(port: int, *args: str, log_dir: Path, name: str = "s_client"
                   ) -> PeerProcess:
    """An interactive ``openssl s_client`` (commands such as ``K\\n`` go to its stdin)."""
    cmd = [openssl(), "s_client", "-connect", f"127.0.0.1:{port}", *args]
    return PeerProcess(cmd, log_dir / f"{name}-{port}-{time.monotonic_ns()}.log", port=port)


# ------------------------------------------------------------------ sans-IO event pumping
def next_event(tls: TLSSocket) -> Event:
    """The next event of ``tls.conn`` (never NEED_DATA), reading from the socket when the
    core needs bytes and flushing whatever it wants to send (KeyUpdate answers...).

    Honours the socket's timeout; raises ConnectionClosedError if the transport ends
    after the core has already reported the close."""
    eof = False
    while True:
        event = tls.conn.next_event()
        out = tls.conn.data_to_send()
        if out:
            tls.sock.sendall(out)
        if event is not NEED_DATA:
            return event
        if eof:
            raise ConnectionClosedError("the transport is at EOF")
        chunk = tls.sock.recv(65536)
        tls.conn.receive_data(chunk)
        eof = not chunk


@dataclass
class Drained:
    data: bytes
    closed: ConnectionClosed | None
    key_updates: list[KeyUpdated]


def read_until_closed(tls: TLSSocket) -> Drained:
    """Application data until the peer's close (close_notify or EOF)."""
    data = bytearray()
    updates: list[KeyUpdated] = []
    while True:
        event = next_event(tls)
        if isinstance(event, ApplicationData):
            data += event.data
        elif isinstance(event, KeyUpdated):
            updates.append(event)
        elif isinstance(event, ConnectionClosed):
            return Drained(bytes(data), event, updates)


def send_close_notify(tls: TLSSocket) -> None:
    """Send our close_notify but keep the socket open (to read the peer's answer)."""
    tls.conn.close()
    out = tls.conn.data_to_send()
    if out:
        tls.sock.sendall(out)


# ------------------------------------------------------------------ in-process tlsmith
def info_line(info: HandshakeInfo) -> str:
    """One line describing a handshake, as our test HTTP handler sends it."""
    return (f"tlsmith-info version={info.version_label} suite={info.cipher_suite.name} "
            f"group={info.group.name if info.group else '-'} "
            f"sig={info.signature_scheme.name if info.signature_scheme else '-'} "
            f"alpn={info.alpn or '-'} sni={info.server_name or '-'} "
            f"hrr={'yes' if info.hello_retry_request else 'no'}")


@dataclass
class Served:
    """What one connection to a ``tlsmith_server`` saw."""

    peer: tuple[Any, ...]
    #: Accept order (0, 1, ...): handlers of successive connections may start out of
    #: order (a resumed handshake can finish before the previous connection's handler
    #: is scheduled), so ``served`` is kept sorted by it.
    seq: int = -1
    info: HandshakeInfo | None = None
    received: bytearray = field(default_factory=bytearray)
    key_updates: list[KeyUpdated] = field(default_factory=list)
    closed: ConnectionClosed | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


# (s_client takes a line starting with K, k, R or Q as a command: avoid those.)
KEY_UPDATE_TRIGGER = b"please-send-KeyUpdate"


def http_handler(tls: TLSSocket, served: Served) -> None:
    """Read one request (up to the blank line), answer with the handshake described in
    plain text, then close (the server sends close_notify)."""
    assert served.info is not None
    while b"\r\n\r\n" not in served.received and b"\n\n" not in served.received:
        event = next_event(tls)
        if isinstance(event, ApplicationData):
            served.received += event.data
        elif isinstance(event, KeyUpdated):
            served.key_updates.append(event)
        elif isinstance(event, ConnectionClosed):
            served.closed = event
            return
    body = (info_line(served.info) + "\n").encode()
    tls.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
                + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)


def echo_handler(tls: TLSSocket, served: Served) -> None:
    """Echo application data until the peer closes. Data containing KEY_UPDATE_TRIGGER
    makes the server send KeyUpdate(update_requested) before the echo."""
    # One sendall per record echoed: without TCP_NODELAY, Nagle + delayed ACKs stall
    # every 64 KiB round trip of a bulk test by ~40 ms.
    tls.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while True:
        event = next_event(tls)
        if isinstance(event, ApplicationData):
            served.received += event.data
            if KEY_UPDATE_TRIGGER in event.data:
                tls.key_update(request_peer=True)
            tls.sendall(event.data)
        elif isinstance(event, KeyUpdated):
            served.key_updates.append(event)
        elif isinstance(event, ConnectionClosed):
            served.closed = event
            return


HANDLERS: dict[str, Callable[[TLSSocket, Served], None]] = {
    "http": http_handler,
    "echo": echo_handler,
}


class TlsmithServerHandle:
    def __init__(self, server: TLSServer) -> None:
        self.server = server
        self.port: int = server.server_address[1]
        self.served: list[Served] = []
        self.lock = threading.Lock()

    def count(self) -> int:
        with self.lock:
            return len(self.served)

    def wait_served(self, index: int, timeout: float = IO_TIMEOUT) -> Served:
        """The ``index``-th connection accepted, once its handler has finished."""
        def find() -> Served | None:
            with self.lock:
                return next((s for s in self.served if s.seq == index), None)

        if not wait_until(lambda: find() is not None, timeout):
            raise AssertionError(f"connection #{index} never reached the tlsmith server")
        served = find()
        assert served is not None
        if not served.done.wait(timeout):
            raise AssertionError(f"the handler of connection #{index} did not finish")
        return served


@contextlib.contextmanager
def tlsmith_server(config: ServerConfig, handler: str = "http", *,
                   timeout: float = IO_TIMEOUT) -> Iterator[TlsmithServerHandle]:
    """A tlsmith TLSServer on 127.0.0.1:<free port> in a thread, recording every connection
    (including failed handshakes: ``Served.error``) in ``handle.served``."""
    handle_fn = HANDLERS[handler]
    holder: list[TlsmithServerHandle] = []
    local = threading.local()
    accepted = itertools.count()

    def numbered() -> None:  # (TLSServer's on_connection: before the handshake)
        local.seq = next(accepted)
        local.served = None

    def new_served(addr: tuple[Any, ...]) -> Served:
        served = Served(peer=addr, seq=local.seq)
        with holder[0].lock:
            bisect.insort(holder[0].served, served, key=attrgetter("seq"))
        return served

    def on_connection(tls: TLSSocket, addr: tuple[Any, ...]) -> None:
        served = new_served(addr)
        local.served = served
        served.info = tls.info
        try:
            handle_fn(tls, served)
        except BaseException as exc:
            served.error = exc
            raise
        finally:
            served.done.set()

    def on_error(addr: tuple[Any, ...], exc: BaseException) -> None:
        served = local.served
        if served is None:  # the handshake itself failed
            served = new_served(addr)
            served.error = exc
            served.done.set()

    server = TLSServer(config, ("127.0.0.1", 0), on_connection, timeout=timeout,
                       on_error=on_error, on_connection=numbered)
    holder.append(TlsmithServerHandle(server))
    server.start()
    try:
        yield holder[0]
    finally:
        server.shutdown()


# ------------------------------------------------------------------ Python's ssl module
@dataclass
class SSLServed:
    version: str | None = None
    cipher: str | None = None  # OpenSSL's name of the suite (``SSLSocket.cipher()[0]``)
    received: int = 0
    peer_closed_cleanly: bool | None = None
    unwrapped: bool = False
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


@contextlib.contextmanager
def python_ssl_server(cert: CertFiles, mode: str = "echo", *, timeout: float = IO_TIMEOUT,
                      minimum_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3,
                      maximum_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3,
                      ciphers: str | None = None, keylog: Path | None = None,
                      dh_params: Path | None = None,
                      ) -> Iterator[tuple[int, list[SSLServed]]]:
    """A server on Python's ``ssl`` (OpenSSL) in a thread, TLS 1.3-only unless told
    otherwise: yields ``(port, served)``. Modes: ``echo`` (echo until the client's
    close_notify, then answer it) and ``close-first`` (send b"bye", then close_notify
    first, then wait for the client's). ``ciphers``: an OpenSSL TLS 1.2 cipher string;
    ``keylog``: the NSS key log file OpenSSL writes; ``dh_params``: a PEM file of DH
    parameters, without which Python's server does no TLS 1.2 DHE."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = minimum_version
    ctx.maximum_version = maximum_version
    if ciphers is not None:
        ctx.set_ciphers(ciphers)
    if keylog is not None:
        ctx.keylog_filename = str(keylog)
    if dh_params is not None:
        ctx.load_dh_params(str(dh_params))
    ctx.load_cert_chain(str(cert.chain_path), str(cert.key_path))
    ctx.num_tickets = 0
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    stop = threading.Event()
    served: list[SSLServed] = []

    def serve_one(raw: socket.socket) -> None:
        record = SSLServed()
        served.append(record)
        raw.settimeout(timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle stalls
        try:
            with ctx.wrap_socket(raw, server_side=True, suppress_ragged_eofs=False) as tls:
                record.version = tls.version()
                suite = tls.cipher()
                record.cipher = suite[0] if suite else None
                if mode == "echo":
                    while True:
                        data = tls.recv(65536)
                        if not data:  # close_notify (a bare EOF raises SSLEOFError)
                            record.peer_closed_cleanly = True
                            break
                        record.received += len(data)
                        tls.sendall(data)
                    tls.unwrap()
                    record.unwrapped = True
                else:
                    tls.sendall(b"bye")
                    tls.unwrap()  # sends close_notify, then waits for the client's
                    record.unwrapped = True
                    record.peer_closed_cleanly = True
        except BaseException as exc:
            record.error = exc
        finally:
            record.done.set()

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve_one, args=(raw,), daemon=True).start()

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    try:
        yield port, served
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def environ_without(*names: str) -> dict[str, str]:
    env = dict(os.environ)
    for name in names:
        env.pop(name, None)
    return env


# ------------------------------------------------------------------ TLS 1.2 and the CLI
#: OpenSSL's names of the TLS 1.2 suites tlsmith implements (``-cipher``, ``s_client``'s
#: "Cipher is ...", ``SSLSocket.cipher()``).
OPENSSL_TLS12_CIPHER: dict[CipherSuite, str] = {
    CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: "ECDHE-ECDSA-AES128-GCM-SHA256",
    CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: "ECDHE-ECDSA-AES256-GCM-SHA384",
    CipherSuite.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: "ECDHE-ECDSA-CHACHA20-POLY1305",
    CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: "ECDHE-RSA-AES128-GCM-SHA256",
    CipherSuite.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: "ECDHE-RSA-AES256-GCM-SHA384",
    CipherSuite.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: "ECDHE-RSA-CHACHA20-POLY1305",
    CipherSuite.TLS_DHE_RSA_WITH_AES_128_GCM_SHA256: "DHE-RSA-AES128-GCM-SHA256",
    CipherSuite.TLS_DHE_RSA_WITH_AES_256_GCM_SHA384: "DHE-RSA-AES256-GCM-SHA384",
    CipherSuite.TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256: "DHE-RSA-CHACHA20-POLY1305",
    CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256: "ECDHE-ECDSA-AES128-SHA256",
    CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384: "ECDHE-ECDSA-AES256-SHA384",
    CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256: "ECDHE-RSA-AES128-SHA256",
    CipherSuite.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384: "ECDHE-RSA-AES256-SHA384",
    CipherSuite.TLS_RSA_WITH_AES_128_GCM_SHA256: "AES128-GCM-SHA256",
    CipherSuite.TLS_RSA_WITH_AES_256_GCM_SHA384: "AES256-GCM-SHA384",
}


def openssl_conf_env(directory: Path, *lines: str) -> dict[str, str]:
    """An environment whose ``OPENSSL_CONF`` applies ``lines`` (SSL_CONF commands such as
    ``Options = -ExtendedMasterSecret``) to every SSL_CTX an OpenSSL program makes: for
    settings that have no command-line switch. The file is written to ``directory``."""
    path = directory / f"openssl-{hashlib.sha256(repr(lines).encode()).hexdigest()[:12]}.cnf"
    path.write_text("openssl_conf = openssl_init\n"
                    "[openssl_init]\nssl_conf = ssl_sect\n"
                    "[ssl_sect]\nsystem_default = system_default_sect\n"
                    "[system_default_sect]\n" + "".join(f"{line}\n" for line in lines))
    return {**environ_without("OPENSSL_CONF"), "OPENSSL_CONF": str(path)}


def start_tlsmith_serve_cli(cert: CertFiles, *args: str, log_dir: Path,
                            env: dict[str, str] | None = None) -> PeerProcess:
    """``tlsmith serve --host 127.0.0.1 --port <free> --cert CHAIN --key KEY ARGS`` as a
    subprocess; returns once its "tlsmith serving ..." banner (printed once it listens)
    has appeared. ``stop()`` it (it serves until then unless ``--max-connections``)."""
    output = ""
    for attempt in range(3):  # the free port may be taken by someone else: retry
        port = free_port()
        cmd = [sys.executable, "-m", "tlsmith.cli.main", "serve", "--host", "127.0.0.1",
               "--port", str(port), "--cert", str(cert.chain_path), "--key",
               str(cert.key_path), *args]
        serve = PeerProcess(cmd, log_dir / f"tlsmith-serve-{port}-{attempt}.log", port=port,
                            env=env)
        # No probe connection: it would count against --max-connections.
        wait_until(functools.partial(_serving_or_exited, serve), 10.0)
        if serve.proc.poll() is None and "tlsmith serving " in serve.output():
            return serve
        serve.stop()
        output = serve.output()
    raise AssertionError(f"tlsmith serve did not start:\n{output}")


def _serving_or_exited(serve: PeerProcess) -> bool:
    return serve.proc.poll() is not None or "tlsmith serving " in serve.output()


def openssl_msg_bytes(output: str, direction: str, message: str) -> list[bytes]:
    """The bytes of every ``message`` (e.g. "ServerHello") that ``-msg`` printed in
    ``direction`` ("<<<" received, ">>>" sent), header included, in order."""
    found: list[bytes] = []
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(direction) and line.rstrip().endswith(f", {message}"):
            data = bytearray()
            for hex_line in lines[i + 1:]:
                if not hex_line.startswith("    "):
                    break
                data += bytes.fromhex(hex_line.strip())
            found.append(bytes(data))
    return found

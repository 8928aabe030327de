"""Running the gallery: one listener per case, all in this process (threads).

Most cases are real tlsmith ``TLSServer``s with a particular configuration or
certificate. Three cannot be played by tlsmith, which speaks only TLS 1.2 and 1.3 and
only groups it implements, so small raw responders emulate them -- each reads the
ClientHello and answers exactly what such a server would send first, then hangs up:

* ``tls10-only`` / ``tls11-only``: modelled on OpenSSL 1.1.1+ configured with only that
  version. A ClientHello whose supported_versions (or, without it, legacy_version) does
  not allow the version gets a protocol_version alert; one that does gets ServerHello
  (legacy_version 0x0301/0x0302, an RSA key-transport CBC suite the client offered),
  Certificate and ServerHelloDone -- or handshake_failure if no such suite was offered.
* ``no-common-group``: a server whose only group is ffdhe8192 (tlsmith implements
  ffdhe2048-4096). A ClientHello without ffdhe8192 gets handshake_failure; a TLS 1.3 one
  offering it without a key share gets a HelloRetryRequest for it (proof the server
  would use it); one with a share gets internal_error (the emulation cannot compute it).

A plain-HTTP listener after the last case serves the intermediate certificate of
``missing-intermediate`` at the leaf's AIA caIssuers URL.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tlsmith.codec.enums import CipherSuite, NamedGroup, ProtocolVersion
from tlsmith.config import CertifiedKey, ServerConfig
from tlsmith.errors import UsageError
from tlsmith.gallery.cases import (
    CASES,
    HOST,
    SERVER_NAME,
    aia_port,
    default_gallery_dir,
)
from tlsmith.gallery.certs import INTERMEDIATE_FILE, Credential, build_pki
from tlsmith.io.blocking import TLSServer, TLSSocket
from tlsmith.stores import MemoryStore

Log = Callable[[str], None]

_IO_TIMEOUT = 10.0  # seconds a client may keep a gallery connection idle
_RAW_TIMEOUT = 5.0  # seconds a raw responder waits for a ClientHello
_LINGER = 2.0  # after answering, read (and drop) what the client sends before closing


@dataclass(frozen=True)
class GalleryServer:
    """A running case: connect to ``host:port`` asking for ``server_name`` and trusting
    ``cafile`` (the gallery CA, for every case)."""

    name: str
    port: int
    cafile: Path
    expect: str | None
    description: str
    host: str = HOST
    server_name: str = SERVER_NAME
    emulated: bool = False  # a raw responder, not a tlsmith TLSServer


# --- the tlsmith servers ----------------------------------------------------------------


class _RejectEarlyDataStore(MemoryStore):
    """Tickets work, but the 0-RTT anti-replay check says every ticket was already used
    (as a server whose replay cache is shared and full would): early data is rejected."""

    def take_once(self, key: bytes, lifetime: float, now: float) -> bool:
        return False


def _certified(cred: Credential) -> CertifiedKey:
    return CertifiedKey(cred.chain, cred.key, cred.names, ocsp_response=cred.ocsp_response)


def _server_config(name: str, cred: Credential, ca_pem: bytes) -> ServerConfig:
    certificates = (_certified(cred),)
    tls12 = ProtocolVersion.TLS12
    if name == "tls12-only":
        return ServerConfig(certificates, min_version=tls12, max_version=tls12)
    if name == "cbc-only":
        # Only CBC with a SHA-1 HMAC: default clients offer CBC only with SHA-256/384.
        return ServerConfig(certificates, min_version=tls12, max_version=tls12,
                            cipher_suites=(CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
                                           CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA))
    if name == "client-cert-required":
        from tlsmith.x509.verify import TrustStore

        return ServerConfig(certificates, client_auth="require",
                            client_trust=TrustStore.from_pem_bytes(ca_pem,
                                                                   source="the gallery CA"))
    if name == "hrr-required":
        return ServerConfig(certificates, groups=(NamedGroup.SECP384R1,))
    if name == "alpn-mismatch":
        return ServerConfig(certificates, alpn_protocols=("h2",))
    if name == "0rtt-rejected":
        return ServerConfig(certificates, max_early_data=16384,
                            session_store=_RejectEarlyDataStore())
    return ServerConfig(certificates)


def _handler(name: str, log: Log | None) -> Callable[[TLSSocket, tuple[Any, ...]], None]:
    """HTTP requests get a one-line page naming the case; anything else is echoed."""

    def handle(tls: TLSSocket, peer: tuple[Any, ...]) -> None:
        if log is not None:
            info = tls.info
            log(f"{name}: {peer[0]}:{peer[1]} connected, {info.version_label} "
                f"{info.cipher_suite.name}")
        tls.settimeout(_IO_TIMEOUT)
        data = tls.recv()
        if data.split(b" ", 1)[0] in (b"GET", b"HEAD", b"POST", b"PUT", b"OPTIONS"):
            body = f"tlsmith gallery: {name}\n".encode()
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
                        + (b"" if data.startswith(b"HEAD") else body))
            return
        while data:
            tls.sendall(data)
            data = tls.recv()

    return handle


# --- raw responders ---------------------------------------------------------------------


_HANDSHAKE, _ALERT, _CCS = 22, 21, 20
_PROTOCOL_VERSION, _HANDSHAKE_FAILURE, _INTERNAL_ERROR = 70, 40, 80
_FFDHE8192 = int(NamedGroup.FFDHE8192)
_TLS13 = int(ProtocolVersion.TLS13)
_HRR_RANDOM = bytes.fromhex(
    "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")
# What an OpenSSL built for TLS 1.0/1.1 would pick from, most preferred first:
# TLS_RSA_WITH_AES_128_CBC_SHA, TLS_RSA_WITH_AES_256_CBC_SHA, TLS_RSA_WITH_3DES_EDE_CBC_SHA.
_LEGACY_SUITES = (0x002F, 0x0035, 0x000A)
_TLS13_SUITES = (0x1301, 0x1302, 0x1303)


@dataclass
class _ClientHello:
    version: int
    session_id: bytes
    suites: list[int]
    extensions: dict[int, bytes] = field(default_factory=dict)

    def _u16_list(self, data: bytes) -> list[int]:
        return [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data) - 1, 2)]

    @property
    def supported_versions(self) -> list[int] | None:
        data = self.extensions.get(0x002B)
        if data is None:
            return None
        return self._u16_list(data[1:1 + data[0]]) if data else []

    @property
    def groups(self) -> list[int]:
        data = self.extensions.get(0x000A, b"\x00\x00")
        return self._u16_list(data[2:])

    @property
    def key_share_groups(self) -> list[int]:
        data, out, i = self.extensions.get(0x0033, b"\x00\x00"), [], 2
        while i + 4 <= len(data):
            out.append(int.from_bytes(data[i:i + 2], "big"))
            i += 4 + int.from_bytes(data[i + 2:i + 4], "big")
        return out


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return bytes(out)


def _read_client_hello(sock: socket.socket) -> _ClientHello | None:
    """The first handshake message, if it is a ClientHello (None for anything else)."""
    buf = bytearray()
    while len(buf) < 4 or len(buf) < 4 + int.from_bytes(buf[1:4], "big"):
        header = _recv_exactly(sock, 5)
        payload = _recv_exactly(sock, int.from_bytes(header[3:5], "big"))
        if header[0] == _CCS:
            continue
        if header[0] != _HANDSHAKE or len(buf) > 1 << 17:
            return None
        buf += payload
    if buf[0] != 1:
        return None
    body = bytes(buf[4:4 + int.from_bytes(buf[1:4], "big")])
    try:
        at = 34
        session_id = body[at + 1:at + 1 + body[at]]
        at += 1 + body[at]
        n = int.from_bytes(body[at:at + 2], "big")
        suites = [int.from_bytes(body[i:i + 2], "big") for i in range(at + 2, at + 2 + n, 2)]
        at += 2 + n
        at += 1 + body[at]  # compression methods
        extensions: dict[int, bytes] = {}
        if at + 2 <= len(body):
            end = at + 2 + int.from_bytes(body[at:at + 2], "big")
            at += 2
            while at + 4 <= end:
                kind = int.from_bytes(body[at:at + 2], "big")
                size = int.from_bytes(body[at + 2:at + 4], "big")
                extensions[kind] = body[at + 4:at + 4 + size]
                at += 4 + size
    except IndexError:
        return None
    return _ClientHello(int.from_bytes(body[:2], "big"), session_id, suites, extensions)


def _record(content_type: int, version: int, payload: bytes) -> bytes:
    return bytes([content_type]) + version.to_bytes(2, "big") + len(payload).to_bytes(
        2, "big") + payload


def _alert(description: int, version: int = 0x0303) -> bytes:
    return _record(_ALERT, version, bytes([2, description]))


def _handshake(msg_type: int, body: bytes) -> bytes:
    return bytes([msg_type]) + len(body).to_bytes(3, "big") + body


def _linger(sock: socket.socket) -> None:
    """Stop sending, then read until the client closes (or _LINGER passes): closing with
    unread data would reset the connection and could destroy our last record."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + _LINGER
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            if not sock.recv(4096):
                break


def _legacy_version_responder(version: int, chain: tuple[bytes, ...]
                              ) -> Callable[[socket.socket], None]:
    def respond(sock: socket.socket) -> None:
        hello = _read_client_hello(sock)
        if hello is None:
            sock.sendall(_alert(_PROTOCOL_VERSION, version))  # not TLS we understand
            return
        offered = hello.supported_versions
        if not (version in offered if offered is not None else hello.version >= version):
            sock.sendall(_alert(_PROTOCOL_VERSION, version))
            return
        suite = next((s for s in _LEGACY_SUITES if s in hello.suites), None)
        if suite is None:
            sock.sendall(_alert(_HANDSHAKE_FAILURE, version))
            return
        extensions = b""
        if 0xFF01 in hello.extensions or 0x00FF in hello.suites:
            extensions = b"\xff\x01\x00\x01\x00"  # RFC 5746: empty renegotiation_info
        server_hello = (version.to_bytes(2, "big") + os.urandom(32) + b"\x20"
                        + os.urandom(32) + suite.to_bytes(2, "big") + b"\x00"
                        + len(extensions).to_bytes(2, "big") + extensions)
        certs = b"".join(len(d).to_bytes(3, "big") + d for d in chain)
        sock.sendall(_record(_HANDSHAKE, version,
                             _handshake(2, server_hello)
                             + _handshake(11, len(certs).to_bytes(3, "big") + certs)
                             + _handshake(14, b"")))

    return respond


def _no_common_group_responder(sock: socket.socket) -> None:
    hello = _read_client_hello(sock)
    if hello is None:
        sock.sendall(_alert(_HANDSHAKE_FAILURE))
        return
    if _FFDHE8192 not in hello.groups:
        sock.sendall(_alert(_HANDSHAKE_FAILURE))  # RFC 8446 §4.1.1 / RFC 7919 §4
        return
    suite = next((s for s in hello.suites if s in _TLS13_SUITES), None)
    tls13 = _TLS13 in (hello.supported_versions or [])
    if tls13 and suite is not None and _FFDHE8192 not in hello.key_share_groups:
        extensions = (b"\x00\x2b\x00\x02" + _TLS13.to_bytes(2, "big")
                      + b"\x00\x33\x00\x02" + _FFDHE8192.to_bytes(2, "big"))
        hrr = (b"\x03\x03" + _HRR_RANDOM + bytes([len(hello.session_id)]) + hello.session_id
               + suite.to_bytes(2, "big") + b"\x00" + len(extensions).to_bytes(2, "big")
               + extensions)
        sock.sendall(_record(_HANDSHAKE, 0x0303, _handshake(2, hrr)))
        _read_client_hello(sock)  # the second ClientHello
    sock.sendall(_alert(_INTERNAL_ERROR))  # the emulation cannot do ffdhe8192 itself


class _RawServer:
    """Accepts connections and runs ``respond`` on each, in its own thread."""

    def __init__(self, sock: socket.socket, respond: Callable[[socket.socket], None],
                 log: Log | None, name: str) -> None:
        self.sock, self.respond, self.log, self.name = sock, respond, log, name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> _RawServer:
        self._thread = threading.Thread(target=self._serve, daemon=True,
                                        name=f"gallery-{self.name}")
        self._thread.start()
        return self

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, peer = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            threading.Thread(target=self._one, args=(conn, peer), daemon=True).start()

    def _one(self, conn: socket.socket, peer: tuple[Any, ...]) -> None:
        try:
            conn.settimeout(_RAW_TIMEOUT)
            self.respond(conn)
            _linger(conn)
            if self.log is not None:
                self.log(f"{self.name}: {peer[0]}:{peer[1]} answered (emulated)")
        except Exception:  # a broken or vanished client ends only its own connection
            pass
        finally:
            conn.close()

    def shutdown(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self.sock.close()


def _aia_responder(intermediate_der: bytes) -> Callable[[socket.socket], None]:
    """Plain HTTP/1.0: GET /intermediate.der gives the DER certificate, anything else 404."""

    def respond(sock: socket.socket) -> None:
        request = bytearray()
        while b"\r\n\r\n" not in request and len(request) < 8192:
            chunk = sock.recv(4096)
            if not chunk:
                break
            request += chunk
        path = bytes(request).split(b" ", 2)[1] if request.count(b" ") >= 2 else b""
        if path == b"/" + INTERMEDIATE_FILE.encode():
            head = (b"HTTP/1.0 200 OK\r\nContent-Type: application/pkix-cert\r\n"
                    b"Content-Length: %d\r\n\r\n" % len(intermediate_der))
            sock.sendall(head + intermediate_der)
        else:
            sock.sendall(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n")

    return respond


# --- the gallery ------------------------------------------------------------------------


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


class Gallery:
    """The running gallery: ``servers`` in CASES order; ``stop()`` closes everything."""

    def __init__(self, servers: tuple[GalleryServer, ...], directory: Path, cafile: Path,
                 aia_url: str, runners: list[TLSServer | _RawServer]) -> None:
        self.servers = servers
        self.directory = directory
        self.cafile = cafile
        self.aia_url = aia_url
        self._runners = runners

    def server(self, name: str) -> GalleryServer:
        for s in self.servers:
            if s.name == name:
                return s
        raise KeyError(name)

    def stop(self) -> None:
        runners, self._runners = self._runners, []
        for runner in runners:
            with contextlib.suppress(Exception):
                runner.shutdown()

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_gallery(base_port: int = 0, directory: str | os.PathLike[str] | None = None, *,
                  host: str = HOST, log: Log | None = None) -> Gallery:
    """Start every case on ``host`` (127.0.0.1): case i of CASES on ``base_port + i``, the
    AIA HTTP listener after them; ``base_port`` 0 takes free ports. Certificates come from
    the gallery CA in ``directory`` (default ``default_gallery_dir()``), created there on
    first use. ``log`` gets one line per connection. Returns once all listen."""
    if not 0 <= base_port <= 65535 - len(CASES):
        raise UsageError(f"base port {base_port} leaves no room for {len(CASES) + 1} ports")
    directory = Path(directory) if directory is not None else default_gallery_dir()
    sockets: list[socket.socket] = []
    runners: list[TLSServer | _RawServer] = []
    try:
        # Listen first: the AIA URL baked into a certificate needs the real port.
        for i in range(len(CASES) + 1):
            sockets.append(_listen(host, base_port + i if base_port else 0))
        aia_sock = sockets[-1]
        aia_url = f"http://{host}:{aia_sock.getsockname()[1]}/{INTERMEDIATE_FILE}"
        pki = build_pki(directory, aia_url)
        ca_pem = pki.cafile.read_bytes()
        servers: list[GalleryServer] = []
        for c, sock in zip(CASES, sockets, strict=False):
            emulated = c.emulated
            runner: TLSServer | _RawServer
            if c.name == "no-common-group":
                runner = _RawServer(sock, _no_common_group_responder, log, c.name)
            elif emulated:
                version = 0x0301 if c.name == "tls10-only" else 0x0302
                runner = _RawServer(sock, _legacy_version_responder(
                    version, pki.credentials[c.name].chain), log, c.name)
            else:
                config = _server_config(c.name, pki.credentials[c.name], ca_pem)
                on_error = None
                if log is not None:
                    def on_error(peer: tuple[Any, ...], exc: BaseException,
                                 name: str = c.name, write: Log = log) -> None:
                        write(f"{name}: {peer[0]}:{peer[1]} failed: {exc}")
                runner = TLSServer(config, (host, 0), _handler(c.name, log),
                                   timeout=_IO_TIMEOUT, on_error=on_error, sock=sock)
            runners.append(runner.start())
            servers.append(GalleryServer(c.name, sock.getsockname()[1], pki.cafile,
                                         c.expect, c.description, host=host,
                                         emulated=emulated))
        runners.append(_RawServer(aia_sock, _aia_responder(pki.intermediate_der), log,
                                  "aia").start())
    except BaseException:
        for runner in runners:
            with contextlib.suppress(Exception):
                runner.shutdown()
        for sock in sockets:
            sock.close()
        raise
    return Gallery(tuple(servers), directory, pki.cafile, aia_url, runners)


__all__ = ["Gallery", "GalleryServer", "aia_port", "default_gallery_dir", "start_gallery"]

"""``TLSServer``'s thread pool and ``tlsmith serve``'s per-handshake shortcuts (the
performance issue): pooled threads serve one connection after another, so per-connection
thread-local state is reset in ``on_connection`` (the page's trace starts empty for each
connection); the log line's JA4 comes from a cache keyed on what JA4 reads."""

from __future__ import annotations

import random
import socket
import threading
import time
from dataclasses import replace
from typing import Any

import pytest

from helpers import CertFiles
from pair import configs
from tlsmith import fingerprint
from tlsmith.cli.serve_cmd import _timestamp
from tlsmith.cli.serve_page import ConnectionTraces
from tlsmith.codec.enums import ProtocolVersion
from tlsmith.connection import TLSConnection
from tlsmith.fingerprint import _ja4_key, cached_ja4, ja4
from tlsmith.io.blocking import TLSServer, TLSSocket, connect
from tlsmith.observe import MessageTrace

TIMEOUT = 10.0


@pytest.fixture
def ecdsa(certs: dict[str, CertFiles]) -> CertFiles:
    return certs["ecdsa-p256"]


@pytest.mark.parametrize("client_kw", [
    {}, {"alpn_protocols": ("h2", "http/1.1")}, {"max_version": ProtocolVersion.TLS12},
    {"server_name": None},
])
def test_log_ja4_cache_matches_the_fingerprint(ecdsa: CertFiles, client_kw: Any) -> None:
    client_cfg, _ = configs(ecdsa)
    hellos = [TLSConnection(replace(client_cfg, **client_kw)).first_client_hello
              for _ in range(3)]  # (other randoms and key shares: the same key)
    assert len({_ja4_key(h) for h in hellos}) == 1
    for hello in hellos:
        assert cached_ja4(hello) == ja4(hello)
    assert cached_ja4(b"") is None
    assert cached_ja4(b"\x01\x00\x00\x05junk") is None  # unreadable: no JA4, no cache entry


def test_log_timestamp_format() -> None:
    stamp = _timestamp()
    assert len(stamp) == 20 and stamp[10] == "T" and stamp.endswith("Z")


def test_pool_reuses_threads_and_each_connection_gets_its_own_trace(
        ecdsa: CertFiles) -> None:
    client_cfg, server_cfg = configs(ecdsa)
    traces = ConnectionTraces(server_cfg)
    seen: list[tuple[int, list[Any]]] = []
    done = threading.Semaphore(0)

    def handler(tls: TLSSocket, peer: tuple[Any, ...]) -> None:
        captured = traces.capture(tls.info, peer)
        seen.append((threading.get_ident(), list(captured.records)))
        tls.sendall(b"ok")
        done.release()

    server = TLSServer(replace(server_cfg, observer=traces), ("127.0.0.1", 0), handler,
                       on_connection=traces.begin)
    with server.start():
        port = server.server_address[1]
        for i in range(3):
            if i:  # let the last connection's thread go idle: the next one reuses it
                deadline = time.monotonic() + TIMEOUT
                while not server._idle and time.monotonic() < deadline:
                    time.sleep(0.01)
            with connect("127.0.0.1", port, client_cfg, timeout=TIMEOUT) as tls:
                assert tls.recv_exactly(2) == b"ok"
            assert done.acquire(timeout=TIMEOUT)
            # A connection that fails its handshake leaves records behind in its thread.
            with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
                raw.sendall(b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00")
                raw.recv(100)
    assert len(seen) == 3
    for _, records in seen:
        hellos = [r for r in records if isinstance(r, MessageTrace)
                  and r.name == "ClientHello"]
        assert len(hellos) == 1  # this connection's own, nothing from the one before
        assert not [r for r in records if isinstance(r, MessageTrace) and r.name == "Alert"]
    assert len({ident for ident, _ in seen}) < 3  # threads were reused


def _python_ssl_hello() -> bytes:
    """The ClientHello handshake message Python's ssl sends (``tlsmith serve``'s usual
    client in the benchmarks)."""
    import ssl

    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    record = outgoing.read()
    return record[5:5 + int.from_bytes(record[3:5])]


def _direct_ja4(hello: bytes) -> str | None:
    try:
        return ja4(hello) if hello else None
    except ValueError:
        return None


def test_cached_ja4_template_matches_the_fingerprint(ecdsa: CertFiles) -> None:
    """Differential: cached_ja4's template fast path (and the key cache behind it) give
    what a full fingerprint gives, for hellos of several clients and for random
    mutations of them -- anywhere, or only where the template does not compare."""
    client_cfg, _ = configs(ecdsa)
    hellos = [_python_ssl_hello(), _python_ssl_hello()]
    for kw in ({}, {"alpn_protocols": ("h2", "http/1.1")},
               {"max_version": ProtocolVersion.TLS12}, {"server_name": None}):
        hellos += [TLSConnection(replace(client_cfg, **kw)).first_client_hello
                   for _ in range(2)]
    known = {_ja4_key(h): ja4(h) for h in hellos}
    rng = random.Random(10)
    fingerprint._TEMPLATES.clear()
    fingerprint._JA4_CACHE.clear()
    for _ in range(3000):
        hello = bytearray(rng.choice(hellos))
        for _ in range(rng.choice((0, 1, 1, 2, 5))):
            if rng.random() < 0.5:  # anywhere
                hello[rng.randrange(len(hello))] = rng.randrange(256)
            else:  # in the random or the session ID, which the template skips
                hello[rng.randrange(6, min(len(hello), 6 + 32 + 33))] = rng.randrange(256)
        if rng.random() < 0.05:
            hello = hello[:rng.randrange(len(hello))]
        data = bytes(hello)
        direct, got = _direct_ja4(data), fingerprint.cached_ja4(data)
        if direct is not None:
            assert got == direct, data.hex()
        else:  # (as the key cache always did: a hello unreadable only where JA4 does
            # not read may get the JA4 of the readable one it shares its key with)
            assert got is None or got == known.get(_ja4_key(data)), data.hex()
    assert fingerprint._TEMPLATES  # (the fast path was taken)


def test_cached_ja4_template_skips_key_shares(ecdsa: CertFiles,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Two hellos of one client differ in their random, session ID and key shares: the
    second is answered by the first's template (no walk, no fingerprint)."""
    client_cfg, _ = configs(ecdsa)
    first, second = (TLSConnection(client_cfg).first_client_hello for _ in range(2))
    assert first != second and len(first) == len(second)
    fingerprint._TEMPLATES.clear()
    fingerprint._JA4_CACHE.clear()
    assert fingerprint.cached_ja4(first) == ja4(first)
    parts, value = fingerprint._TEMPLATES[len(first)]
    assert value == ja4(first) and sum(e - s for s, e, _ in parts) < len(first) - 64

    def unexpected(*_: Any) -> None:
        raise AssertionError("the template should have answered")

    monkeypatch.setattr(fingerprint, "_ja4_key", unexpected)
    monkeypatch.setattr(fingerprint, "ja4", unexpected)
    assert fingerprint.cached_ja4(second) == value

"""Deterministic in-memory handshakes for the trace golden tests: fixed certificates
(tests/vectors/trace: an ECDSA CA and an Ed25519 leaf, whose signatures are
deterministic), seeded randomness and a clock that ticks 1 ms per reading, so the same
handshake gives the same bytes, secrets and times on every run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from pair import pump
from tlsmith.codec.enums import CipherSuite, NamedGroup, ProtocolVersion
from tlsmith.config import CertifiedKey, ClientConfig, ServerConfig
from tlsmith.connection import TLSConnection
from tlsmith.crypto.kx import deterministic_random
from tlsmith.events import SessionTicketReceived
from tlsmith.session import Session
from tlsmith.stores import MemoryStore
from tlsmith.trace import TraceCollector
from tlsmith.x509.verify import TrustStore

VECTORS = Path(__file__).parent / "vectors" / "trace"
#: 2026-06-01T00:00:00Z: inside the fixed certificates' validity.
START = 1780272000.0
TLS12, TLS13 = ProtocolVersion.TLS12, ProtocolVersion.TLS13


def ticking_clock(start: float = START, step: float = 0.001) -> Callable[[], float]:
    """A clock that advances ``step`` seconds on every reading."""
    now = start - step

    def clock() -> float:
        nonlocal now
        now += step
        return now

    return clock


def _configs(seed: bytes, clock: Callable[[], float], **client_kw: Any
             ) -> tuple[ClientConfig, ServerConfig]:
    server_kw = client_kw.pop("server", {})
    store = MemoryStore(random=deterministic_random(seed + b" store"))
    client = ClientConfig(server_name="localhost",
                          trust=TrustStore.from_pem_file(VECTORS / "ca.pem"),
                          random=deterministic_random(seed + b" client"), clock=clock,
                          alpn_protocols=("h2", "http/1.1"), **client_kw)
    server = ServerConfig(
        certificates=(CertifiedKey.from_files(VECTORS / "localhost-ed25519.chain.pem",
                                              VECTORS / "localhost-ed25519.key.pem"),),
        random=deterministic_random(seed + b" server"), clock=clock,
        cookie_secret=b"\x42" * 32, session_store=store, alpn_protocols=("http/1.1",),
        **server_kw)
    return client, server


#: [client events, client, server] of the latest ``connect``.
LAST: list[Any] = []


def connect(client_cfg: ClientConfig, server_cfg: ServerConfig, *,
            session: Session | None = None, early_data: bytes | None = None
            ) -> tuple[TraceCollector, list[Session]]:
    """One handshake, a request and its answer, a close; returns the client's trace and
    the sessions the server gave (every event and both ends are in ``LAST``)."""
    trace = TraceCollector()
    client = TLSConnection(replace(client_cfg, observer=trace), session=session,
                           early_data=early_data)
    server = TLSConnection(server_cfg)
    events = pump(client, server)[0]
    assert client.handshake_complete and server.handshake_complete
    if early_data is None:
        client.send_data(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    events += pump(client, server)[0]
    server.send_data(b"HTTP/1.1 204 No Content\r\n\r\n")
    events += pump(client, server)[0]
    client.close()
    events += pump(client, server)[0]
    LAST[:] = [events, client, server]
    return trace, [e.session for e in events if isinstance(e, SessionTicketReceived)]


def run(name: str, **client_kw: Any) -> TraceCollector:
    """The handshake named ``name`` (its seed) with these client settings."""
    return connect(*_configs(name.encode(), ticking_clock(), **client_kw))[0]


def tls13() -> TraceCollector:
    return run("tls13", max_version=TLS13, min_version=TLS13)


def tls12() -> TraceCollector:
    return run("tls12", max_version=TLS12, min_version=TLS12,
               cipher_suites=(CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,))


def hrr() -> TraceCollector:
    return run("hrr", groups=(NamedGroup.X25519, NamedGroup.SECP256R1),
               key_share_groups=(NamedGroup.X25519,),
               server={"groups": (NamedGroup.SECP256R1,)})


def resumed(version: ProtocolVersion = TLS13, *, early_data: bytes | None = None
            ) -> TraceCollector:
    """The second connection of two: it resumes the first one's session (TLS 1.3 with
    ``early_data`` sent as 0-RTT)."""
    name = f"resume {version.label} {early_data is not None}"
    client_cfg, server_cfg = _configs(name.encode(), ticking_clock(), min_version=version,
                                      max_version=version,
                                      server={"max_early_data": 4096} if early_data else {})
    _, sessions = connect(client_cfg, server_cfg)
    assert sessions, "the first connection got no session to resume"
    return connect(client_cfg, server_cfg, session=sessions[0], early_data=early_data)[0]

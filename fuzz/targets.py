"""Fuzz targets for tlsmith: one function per target, each taking ``bytes``.

The oracle (``check_exception``): an input may end only in a tlsmith error --
``ProtocolError`` (which carries the alert sent), ``AlertReceived`` or
``ConnectionClosedError``. Anything else is a finding (``Finding``), and so is an
``InternalError`` that wraps a foreign exception: that is ``TLSConnection.next_event``'s
catch-all saving the day for a bug below it. After a ``ProtocolError`` the connection must
stay dead (``ConnectionClosedError`` on the next ``next_event``), and the event loop must
reach ``NeedData`` within ``MAX_EVENTS`` (else: a hang).

Targets (``TARGETS``), each with its own seed corpus in ``fuzz/corpus/<name>/``:

* ``deframer``: ``RecordReader`` + ``HandshakeReassembler`` + ``parse_alert`` on a raw
  byte stream (the first byte picks chunk sizes and the record-size limit);
* ``handshake13`` / ``handshake12``: every handshake message parser (``decode_handshake``;
  the first byte(s) pick the type and, for TLS 1.2, the key-exchange kind);
* ``extensions``: ``parse_extensions`` for each ``ExtensionContext`` (first byte);
* ``server``: a fresh server fed arbitrary bytes;
* ``client13`` / ``client12``: a client (TLS 1.3-or-1.2 / TLS 1.2 only) fed arbitrary
  bytes after its ClientHello;
* ``client13_flight``: the server's *decrypted* flight (EncryptedExtensions, Certificate,
  CertificateVerify, Finished), mutated as plaintext and re-encrypted under the real
  server handshake traffic key, after the real ServerHello;
* ``client13_flight_resealed``: the same, with the CertificateVerify signed anew and
  the Finished recomputed after the mutation (``reseal``);
* ``server13_client_flight``: likewise the client's decrypted second flight (Certificate,
  CertificateVerify, Finished of a mutual-TLS handshake) re-encrypted under the real
  client handshake traffic key, after the real ClientHello;
* ``server12``: a TLS 1.2 server fed arbitrary bytes after a real ClientHello.
* ``client13_hrr`` / ``client13_hrr_flight`` / ``server13_hrr``: both sides after a real
  HelloRetryRequest (raw bytes; the re-encrypted server flight after the second
  ServerHello);
* ``server13_psk``: a server with the fixed ticket keys fed a ClientHello offering the
  recorded ticket, optionally with the binders recomputed after the mutation;
* ``server13_early_skip``: a server skipping the 0-RTT data it will not read (after a
  HelloRetryRequest, or a replayed ticket), fed raw bytes;
* ``client13_resume``: a client resuming with 0-RTT, fed raw bytes (seeds: accepted,
  HRR, replay-refused answers);
* ``client13_resume_flight``: that client's decrypted server flight after the
  ServerHello, re-encrypted under the real server handshake key;
* ``server13_early``: raw inner plaintexts sealed under the real client_early_traffic key
  after a ClientHello whose 0-RTT was accepted;
* ``client13_pha``: raw inner plaintexts sealed under the real server application key,
  fed to a connected client that offered post_handshake_auth;
* ``server13_pha``: the same under the client's application key, fed to a server
  that sent a post-handshake CertificateRequest;
* ``client12_resume`` / ``server12_resume``: TLS 1.2 abbreviated handshakes (session ID
  or RFC 5077 ticket).

Everything is deterministic: fixed randomness (``deterministic_random``), a fixed clock
and a fixed Ed25519 certificate (``fuzz/creds``; deterministic signatures), so the
recorded flights in the corpus replay byte for byte against fresh connections.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tlsmith
from tlsmith.codec import extensions as ext
from tlsmith.codec.buffer import Reader
from tlsmith.codec.enums import (
    CipherSuite,
    ContentType,
    HandshakeType,
    NamedGroup,
    ProtocolVersion,
    SignatureScheme,
)
from tlsmith.codec.extensions import parse_extensions
from tlsmith.codec.extensions_base import ExtensionContext
from tlsmith.codec.messages import (
    Certificate,
    CertificateRequest,
    ClientHello,
    EncryptedExtensions,
    Finished,
    NewSessionTicket,
    ServerHello,
    decode_handshake,
)
from tlsmith.config import CertifiedKey, ClientConfig, ServerConfig
from tlsmith.connection import TLSConnection
from tlsmith.crypto import schedule13, sig
from tlsmith.crypto.aead import Aead
from tlsmith.crypto.kx import deterministic_random
from tlsmith.crypto.suites import SuiteInfo, suite_info
from tlsmith.crypto.transcript import message_hash
from tlsmith.errors import (
    AlertReceived,
    ConnectionClosedError,
    InternalError,
    ProtocolError,
    TLSError,
    UsageError,
)
from tlsmith.events import NEED_DATA, ConnectionClosed, SessionTicketReceived
from tlsmith.observe import SecretTrace, TraceRecord
from tlsmith.record.framing import (
    MAX_CIPHERTEXT_12,
    MAX_CIPHERTEXT_13,
    MAX_PLAINTEXT,
    HandshakeReassembler,
    RecordReader,
    parse_alert,
)
from tlsmith.record.protection import TLS13Encrypter
from tlsmith.session import ExternalPsk, Session, Session12, Session13
from tlsmith.stores import MemoryStore
from tlsmith.tickets import TicketKey, TicketKeys
from tlsmith.x509.verify import TrustStore

_TLSMITH_DIR = str(Path(tlsmith.__file__).resolve().parent)
FUZZ_DIR = Path(__file__).resolve().parent
CORPUS_DIR = FUZZ_DIR / "corpus"
CREDS_DIR = FUZZ_DIR / "creds"
CRASH_DIR = FUZZ_DIR / "crashes"

#: The fixed "now" of every fuzzed connection (2026-06-01T00:00:00Z); the certificates in
#: fuzz/creds are valid 2026-01-01 .. 2036-01-01.
FIXED_NOW = datetime(2026, 6, 1, tzinfo=UTC).timestamp()
CREDS_NOT_BEFORE = datetime(2026, 1, 1, tzinfo=UTC)
CREDS_NOT_AFTER = datetime(2036, 1, 1, tzinfo=UTC)

MAX_EVENTS = 256
"""More events than this from one input without NeedData is a hang."""


class Finding(AssertionError):
    """An input broke the oracle (an exception that must not escape, a hang, a
    connection that came back to life)."""


# -- the oracle ------------------------------------------------------------------------
def foreign_cause(exc: BaseException) -> BaseException | None:
    """The first non-tlsmith exception in ``exc``'s ``__cause__``/``__context__`` chain."""
    seen: set[int] = set()
    cur: BaseException | None = exc.__cause__ or exc.__context__
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if not isinstance(cur, TLSError):
            return cur
        cur = cur.__cause__ or cur.__context__
    return None


#: Findings already tracked by an xfail test in tests/test_fuzz_regressions.py, named by
#: the tlsmith function the foreign exception escaped from. The runner and the in-suite
#: properties tolerate (and count) them, so one known bug does not hide the others; remove
#: the entry together with the xfail marker when the bug is fixed.
KNOWN_FINDINGS: frozenset[str] = frozenset()


def root_function(finding: BaseException) -> str:
    """The innermost tlsmith function on the traceback of ``finding``'s root cause."""
    import traceback

    root = finding
    seen = {id(root)}
    while (nxt := root.__cause__ or root.__context__) is not None and id(nxt) not in seen:
        seen.add(id(nxt))
        root = nxt
    frames = [f for f in traceback.extract_tb(root.__traceback__)
              if f.filename.startswith(_TLSMITH_DIR)]
    return frames[-1].name if frames else ""


def is_known(finding: BaseException) -> bool:
    return root_function(finding) in KNOWN_FINDINGS


def check_exception(exc: BaseException) -> None:
    """Raise ``Finding`` unless ``exc`` is an exception an input may end in."""
    if isinstance(exc, Finding):
        raise exc
    if not isinstance(exc, TLSError):
        raise Finding(f"foreign exception escaped: {type(exc).__name__}: {exc}") from exc
    if isinstance(exc, UsageError):
        raise Finding(f"UsageError on peer input: {exc}") from exc
    if isinstance(exc, InternalError):
        foreign = foreign_cause(exc)
        if foreign is not None:
            raise Finding(
                f"InternalError wraps a foreign exception ({type(foreign).__name__}: "
                f"{foreign}): {exc}") from exc
    if isinstance(exc, ProtocolError) and not hasattr(exc, "alert"):
        raise Finding(f"ProtocolError without an alert: {exc!r}") from exc


def _guard(fn: Callable[[], object]) -> None:
    """Run ``fn``; any exception goes through the oracle."""
    try:
        fn()
    except BaseException as exc:
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        check_exception(exc)


# -- connections -----------------------------------------------------------------------
def _drain(conn: TLSConnection) -> None:
    """next_event() until NeedData; the oracle judges what it raises. After a fatal
    error the connection must stay dead."""
    for _ in range(MAX_EVENTS):
        try:
            event = conn.next_event()
            conn.data_to_send()
        except (ProtocolError, AlertReceived) as exc:
            check_exception(exc)
            conn.data_to_send()
            _assert_dead(conn)
            raise
        except BaseException as exc:
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            check_exception(exc)
            raise
        if event is NEED_DATA or isinstance(event, ConnectionClosed):
            return
    raise Finding(f"no NeedData after {MAX_EVENTS} events: the connection loops")


def _assert_dead(conn: TLSConnection) -> None:
    try:
        event = conn.next_event()
    except ConnectionClosedError:
        return
    raise Finding(f"next_event() returned {type(event).__name__} after a fatal error")


def feed(conn: TLSConnection, data: bytes, *, eof: bool = True) -> None:
    """Give ``conn`` the bytes ``data`` (then EOF): every outcome goes through the oracle;
    a tlsmith error just ends the run."""
    try:
        conn.receive_data(data)
        _drain(conn)
        if eof:
            conn.receive_data(b"")
            _drain(conn)
    except TLSError as exc:
        check_exception(exc)


class _SecretSpy:
    """An observer remembering every secret by its RFC name."""

    def __init__(self) -> None:
        self.secrets: dict[str, bytes] = {}

    def __call__(self, record: TraceRecord) -> None:
        if isinstance(record, SecretTrace):
            self.secrets[record.name] = record.value


@dataclass(frozen=True)
class Creds:
    ca_pem: bytes
    server: CertifiedKey
    client: CertifiedKey


def ensure_creds() -> None:
    """Write fuzz/creds (an ECDSA dev CA, Ed25519 server and client leaves) if missing.
    Fixed validity, so the files never need renewing during the fuzzing horizon."""
    if (CREDS_DIR / "ca.pem").exists():
        return
    from tlsmith.x509.devca import DevCA

    CREDS_DIR.mkdir(parents=True, exist_ok=True)
    ca = DevCA.create("tlsmith fuzz CA", "ecdsa-p256", CREDS_NOT_BEFORE, days=3652)
    (CREDS_DIR / "ca.pem").write_bytes(ca.ca_pem)
    for stem, client in (("server", False), ("client", True)):
        ca.issue(key_type="ed25519", not_before=CREDS_NOT_BEFORE,
                 not_after=CREDS_NOT_AFTER, client=client).write_bundle(CREDS_DIR, stem)


@functools.cache
def creds() -> Creds:
    ensure_creds()

    def certified(stem: str) -> CertifiedKey:
        return CertifiedKey.from_files(CREDS_DIR / f"{stem}.pem", CREDS_DIR / f"{stem}-key.pem")

    return Creds((CREDS_DIR / "ca.pem").read_bytes(), certified("server"),
                 certified("client"))


def _clock() -> float:
    return FIXED_NOW


@functools.cache
def _base_configs(kind: str) -> tuple[ClientConfig, ServerConfig]:
    """Deterministic client and server configs. ``kind``: "13" (client offers 1.3 and
    1.2), "12" (client TLS 1.2 only), "mtls" (1.3, client certificate required)."""
    c = creds()
    trust = TrustStore.from_pem_bytes(c.ca_pem, source="fuzz/creds/ca.pem")
    client_kw: dict[str, Any] = {}
    server_kw: dict[str, Any] = {}
    if kind == "12":
        client_kw["max_version"] = ProtocolVersion.TLS12
    if kind == "mtls":
        client_kw["certificate"] = c.client
        server_kw.update(client_auth="require", client_trust=trust)
    client = ClientConfig(server_name="localhost", trust=trust, session_tickets=False,
                          clock=_clock, **client_kw)
    server = ServerConfig(certificates=(c.server,), session_ids=False, tickets=0,
                          cookie_secret=b"\x42" * 32, clock=_clock, **server_kw)
    return client, server


def new_client(kind: str, observer: Any = None) -> TLSConnection:
    cfg = _base_configs(kind)[0]
    return TLSConnection(replace(cfg, random=deterministic_random(b"fuzz client " + kind.encode()),
                                 observer=observer))


def new_server(kind: str, observer: Any = None) -> TLSConnection:
    cfg = _base_configs(kind)[1]
    return TLSConnection(replace(cfg, random=deterministic_random(b"fuzz server " + kind.encode()),
                                 observer=observer))


@dataclass(frozen=True)
class Recording:
    """A recorded deterministic handshake: what each side wrote, flight by flight, and
    the secrets (by RFC name)."""

    client_flights: tuple[bytes, ...]
    server_flights: tuple[bytes, ...]
    secrets: dict[str, bytes]


@functools.cache
def recording(kind: str) -> Recording:
    """Run a deterministic client/server pair of ``kind`` to completion."""
    cspy, sspy = _SecretSpy(), _SecretSpy()
    client, server = new_client(kind, cspy), new_server(kind, sspy)
    cflights, sflights, _ = run_flights(client, server)
    if not (client.handshake_complete and server.handshake_complete):
        raise RuntimeError(f"the {kind} fuzz handshake did not complete")
    return Recording(tuple(cflights), tuple(sflights), {**cspy.secrets, **sspy.secrets})


def run_flights(client: TLSConnection, server: TLSConnection
                ) -> tuple[list[bytes], list[bytes], list[Any]]:
    """Move bytes both ways until both sides are quiet (at most 8 rounds); returns the
    client's flights, the server's flights and the client's events."""
    cflights: list[bytes] = []
    sflights: list[bytes] = []
    events: list[Any] = []
    for _ in range(8):
        moved = False
        data = client.data_to_send()
        if data:
            cflights.append(data)
            server.receive_data(data)
            server.events()
            moved = True
        data = server.data_to_send()
        if data:
            sflights.append(data)
            client.receive_data(data)
            events += client.events()
            moved = True
        if not moved:
            break
    return cflights, sflights, events


def split_records(data: bytes) -> list[tuple[int, bytes]]:
    """(content type, whole record) for each complete record in ``data``."""
    out: list[tuple[int, bytes]] = []
    pos = 0
    while pos + 5 <= len(data):
        length = int.from_bytes(data[pos + 3 : pos + 5], "big")
        out.append((data[pos], data[pos : pos + 5 + length]))
        pos += 5 + length
    return out


def _open_records(records: list[bytes], suite: SuiteInfo, secret: bytes) -> bytes:
    from tlsmith.record.framing import Record
    from tlsmith.record.protection import TLS13Decrypter

    key, iv = schedule13.traffic_keys(suite.hash_name, secret, suite.key_len, suite.iv_len)
    dec = TLS13Decrypter(suite, key, iv)
    out = b""
    for rec in records:
        content_type, payload = dec.unprotect(
            Record(ContentType.APPLICATION_DATA, 0x0303, rec[5:]))
        assert content_type == ContentType.HANDSHAKE
        out += payload
    return out


@dataclass(frozen=True)
class Protected:
    """A plaintext prefix, then a handshake stream that is re-encrypted per input."""

    prefix: bytes
    plaintext: bytes  # the real decrypted handshake messages (the seed)
    suite: SuiteInfo
    key: bytes
    iv: bytes

    def protect(self, data: bytes) -> bytes:
        enc = TLS13Encrypter(self.suite, self.key, self.iv)
        return b"".join(enc.protect(ContentType.HANDSHAKE, data[i : i + MAX_PLAINTEXT])
                        for i in range(0, len(data), MAX_PLAINTEXT))


def _suite_of(server_flight: bytes) -> SuiteInfo:
    first = split_records(server_flight)[0][1]
    sh = ServerHello.parse_body(first[5 + 4 :])
    info = suite_info(sh.cipher_suite)
    assert info is not None
    return info


@functools.cache
def server_flight13() -> Protected:
    """The TLS 1.3 server flight: ServerHello + CCS in plaintext, the rest decrypted."""
    rec = recording("13")
    return _open_server_flight(rec.server_flights[0],
                               rec.secrets["server_handshake_traffic_secret"])


def _open_server_flight(flight: bytes, secret: bytes) -> Protected:
    """A server flight: its plaintext records as they are, the protected ones opened
    under ``secret`` (the server handshake traffic secret)."""
    records = split_records(flight)
    prefix = b"".join(r for t, r in records if t != ContentType.APPLICATION_DATA)
    protected = [r for t, r in records if t == ContentType.APPLICATION_DATA]
    suite = _suite_of(flight)
    key, iv = schedule13.traffic_keys(suite.hash_name, secret, suite.key_len, suite.iv_len)
    return Protected(prefix, _open_records(protected, suite, secret), suite, key, iv)


@functools.cache
def client_flight13_mtls() -> Protected:
    """The client's second TLS 1.3 flight of a mutual-TLS handshake: the CCS in
    plaintext, Certificate/CertificateVerify/Finished decrypted."""
    rec = recording("mtls")
    flight = rec.client_flights[1]
    records = split_records(flight)
    prefix = b"".join(r for t, r in records if t != ContentType.APPLICATION_DATA)
    protected = [r for t, r in records if t == ContentType.APPLICATION_DATA]
    suite = _suite_of(rec.server_flights[0])
    secret = rec.secrets["client_handshake_traffic_secret"]
    key, iv = schedule13.traffic_keys(suite.hash_name, secret, suite.key_len, suite.iv_len)
    # Keep only the handshake records (the client's Finished flight, not app data).
    return Protected(prefix, _open_records(protected, suite, secret), suite, key, iv)


# -- resumption, 0-RTT, HelloRetryRequest and post-handshake recordings ----------------
#: The fixed ticket keys of every resuming server (a fresh MemoryStore per input holds
#: them, so 0-RTT's single-use mark never carries over from one input to the next).
TICKET_KEYS = TicketKeys(TicketKey(b"\x11" * 16, b"\x22" * 32, FIXED_NOW))
#: An external PSK both sides of the PSK recordings know (a second identity to select).
EXTERNAL_PSK = ExternalPsk(b"tlsmith fuzz external psk", b"\x33" * 32, "sha256")
EARLY_DATA = b"GET /early HTTP/1.1\r\n\r\n"


def fresh_store(sessions: tuple[tuple[bytes, bytes], ...] = (),
                replayed: bytes | None = None) -> MemoryStore:
    """A MemoryStore with the fixed ticket keys and the given TLS 1.2 session-ID cache;
    ``replayed``: a ticket whose 0-RTT was already used (so it is refused as a replay;
    the mark is the one tlsmith.handshake.psk13.early_data_verdict takes)."""
    store = MemoryStore(ticket_keys=TICKET_KEYS)
    for session_id, state in sessions:
        store.put(session_id, state, 7200, FIXED_NOW)
    if replayed is not None:
        store.take_once(hashlib.sha256(b"tlsmith 0-rtt " + replayed).digest(), 7300,
                        FIXED_NOW)
    return store


@functools.cache
def _extra_configs(kind: str) -> tuple[ClientConfig, ServerConfig]:
    """Configs of the flows beyond a plain handshake (randomness and store per use):

    * "hrr": the server takes only secp256r1, the client sends an X25519 share: HRR;
    * "resume13": tickets allowing 0-RTT, an external PSK on both sides;
    * "resume13hrr": the same, but the server takes only secp256r1 (PSK after an HRR,
      0-RTT refused); its client is resume13's;
    * "pha": the client has a certificate (so it offers post_handshake_auth), the server
      can ask for one after the handshake, and sends no tickets;
    * "resume12sid" / "resume12ticket": TLS 1.2 session-ID / RFC 5077 ticket resumption.
    """
    client, server = _base_configs("12" if kind.startswith("resume12") else "13")
    c = creds()
    if kind == "hrr":
        return client, replace(server, groups=(NamedGroup.SECP256R1,))
    if kind in ("resume13", "resume13hrr"):
        groups = (NamedGroup.SECP256R1,) if kind == "resume13hrr" else server.groups
        return (replace(client, session_tickets=True, external_psks=(EXTERNAL_PSK,)),
                replace(server, tickets=1, max_early_data=1024, groups=groups,
                        external_psks=(EXTERNAL_PSK,)))
    if kind == "pha":
        trust = TrustStore.from_pem_bytes(c.ca_pem, source="fuzz/creds/ca.pem")
        return (replace(client, certificate=c.client),
                replace(server, client_trust=trust))
    if kind == "resume12sid":
        return client, replace(server, session_ids=True)
    if kind == "resume12ticket":
        return replace(client, session_tickets=True), replace(server, tickets=1)
    raise ValueError(kind)


def extra_client(kind: str, tag: str = "", observer: Any = None,
                 session: Session | None = None, early_data: bytes | None = None
                 ) -> TLSConnection:
    cfg = _extra_configs(kind)[0]
    # (resume13hrr's client is resume13's: only the server differs.)
    name = "resume13" if kind == "resume13hrr" else kind
    seed = f"fuzz client {name}{tag}".encode()
    return TLSConnection(replace(cfg, random=deterministic_random(seed), observer=observer),
                         session=session, early_data=early_data)


def extra_server(kind: str, tag: str = "", observer: Any = None,
                 store: MemoryStore | None = None, **overrides: Any) -> TLSConnection:
    cfg = _extra_configs(kind)[1]
    seed = f"fuzz server {kind}{tag}".encode()
    return TLSConnection(replace(cfg, random=deterministic_random(seed), observer=observer,
                                 session_store=store if store is not None else fresh_store(),
                                 **overrides))


@dataclass(frozen=True)
class Flow:
    """A recorded pair: both sides' flights, the secrets, the client's events and the
    server's session store afterwards."""

    client_flights: tuple[bytes, ...]
    server_flights: tuple[bytes, ...]
    secrets: dict[str, bytes]
    client_events: tuple[Any, ...]
    store: MemoryStore


def _run_flow(kind: str, tag: str, *, session: Session | None = None,
              early_data: bytes | None = None, sessions: tuple[tuple[bytes, bytes], ...] = (),
              replayed: bytes | None = None
              ) -> tuple[Flow, TLSConnection, TLSConnection]:
    cspy, sspy = _SecretSpy(), _SecretSpy()
    store = fresh_store(sessions, replayed)
    client = extra_client(kind, tag, cspy, session, early_data)
    server = extra_server(kind, tag, sspy, store)
    cflights, sflights, events = run_flights(client, server)
    if not (client.handshake_complete and server.handshake_complete):
        raise RuntimeError(f"the {kind}{tag} fuzz handshake did not complete")
    flow = Flow(tuple(cflights), tuple(sflights), {**cspy.secrets, **sspy.secrets},
                tuple(events), store)
    return flow, client, server


def _first_session(flow: Flow) -> Session:
    return next(e.session for e in flow.client_events if isinstance(e, SessionTicketReceived))


@functools.cache
def flow(name: str) -> Flow:
    """The recorded flows: "hrr"; "resume13-full" then "resume13" (the ticket of the
    first resumed with 0-RTT); "pha" (a handshake, then the server's post-handshake
    CertificateRequest and KeyUpdate as the last server flight, the client's answer as the
    last client flight); "resume12sid-full",
    "resume12sid", "resume12ticket-full", "resume12ticket"."""
    if name in ("hrr", "resume13-full", "resume12sid-full", "resume12ticket-full"):
        return _run_flow(name.removesuffix("-full"), "")[0]
    if name in RESUME13_FLOWS:
        session = _first_session(flow("resume13-full"))
        return _run_flow("resume13hrr" if name == "resume13hrr" else "resume13", " resumed",
                         session=session, early_data=EARLY_DATA,
                         replayed=_replayed(name))[0]
    if name in ("resume12sid", "resume12ticket"):
        full = flow(name + "-full")
        return _run_flow(name, " resumed", session=_first_session(full),
                         sessions=session_cache(name))[0]
    if name == "pha":
        recorded, client, server = _run_flow("pha", "")
        server.request_client_certificate()
        server.key_update(request_peer=True)
        post = server.data_to_send()
        client.receive_data(post)
        client.events()
        answer = client.data_to_send()
        return replace(recorded, server_flights=(*recorded.server_flights, post),
                       client_flights=(*recorded.client_flights, answer))
    raise ValueError(name)


#: The resumptions with 0-RTT of the recorded ticket: accepted; after a HelloRetryRequest
#: (the PSK rebound, the early data skipped); refused as a replay (skipped).
RESUME13_FLOWS = ("resume13", "resume13hrr", "resume13replay")


def _replayed(name: str) -> bytes | None:
    if name != "resume13replay":
        return None
    session = _first_session(flow("resume13-full"))
    assert isinstance(session, Session13)
    return session.ticket


def resume13_server(name: str, **overrides: Any) -> TLSConnection:
    """A fresh server of the resumption ``name`` (one of RESUME13_FLOWS)."""
    return extra_server("resume13hrr" if name == "resume13hrr" else "resume13", " resumed",
                        store=fresh_store(replayed=_replayed(name)), **overrides)


def session_cache(name: str) -> tuple[tuple[bytes, bytes], ...]:
    """The TLS 1.2 session-ID cache the full handshake of ``name`` left in its store."""
    full = flow(name.removesuffix("-full") + "-full")
    session = _first_session(full)
    assert isinstance(session, Session12)
    if not session.session_id:
        return ()
    state = full.store.get(session.session_id, FIXED_NOW)
    return ((session.session_id, state),) if state is not None else ()


@dataclass(frozen=True)
class Sealer:
    """Seals raw TLSInnerPlaintexts (content || type || zeros, all of it from the input)
    as TLS 1.3 records under one traffic key, from sequence number ``seq``."""

    suite: SuiteInfo
    key: bytes
    iv: bytes
    seq: int = 0

    @classmethod
    def for_secret(cls, suite: SuiteInfo, secret: bytes, seq: int = 0) -> Sealer:
        key, iv = schedule13.traffic_keys(suite.hash_name, secret, suite.key_len,
                                          suite.iv_len)
        return cls(suite, key, iv, seq)

    def seal(self, inners: list[bytes]) -> bytes:
        aead = Aead(self.suite.aead, self.key, self.suite.tag_len)
        iv = int.from_bytes(self.iv, "big")
        out = []
        for i, inner in enumerate(inners):
            header = bytes((23, 3, 3)) + (len(inner) + self.suite.tag_len).to_bytes(2, "big")
            nonce = (iv ^ (self.seq + i)).to_bytes(len(self.iv), "big")
            out.append(header + aead.seal(nonce, inner, header))
        return b"".join(out)

    def open(self, records: list[bytes]) -> list[bytes]:
        """The raw inner plaintexts of ``records`` (whole records, in order)."""
        aead = Aead(self.suite.aead, self.key, self.suite.tag_len)
        iv = int.from_bytes(self.iv, "big")
        return [aead.open((iv ^ (self.seq + i)).to_bytes(len(self.iv), "big"), rec[5:],
                          rec[:5]) for i, rec in enumerate(records)]


def encode_inners(inners: list[bytes]) -> bytes:
    """The input format of the record-level targets: each inner plaintext as a u16
    length and the bytes (see ``decode_inners``)."""
    return b"".join(len(i).to_bytes(2, "big") + i for i in inners)


def decode_inners(data: bytes, limit: int = 2**16 - 1 - 256) -> list[bytes]:
    """u16 length + bytes, repeated; a short tail is one last inner plaintext. Lengths
    are clipped to what fits a record (the record layer's own size checks still run:
    2^14 + 1 is the RFC's limit, ``limit`` only keeps the header's u16 valid)."""
    out = []
    pos = 0
    while pos < len(data):
        if pos + 2 > len(data):
            out.append(data[pos:])
            break
        n = min(int.from_bytes(data[pos : pos + 2], "big"), limit)
        out.append(data[pos + 2 : pos + 2 + n])
        pos += 2 + n
    return out


def _suite13(flights: tuple[bytes, ...]) -> SuiteInfo:
    """The suite of the ServerHello (the last one, after an HRR) in ``flights``."""
    for flight in reversed(flights):
        for content_type, rec in split_records(flight):
            if content_type == ContentType.HANDSHAKE and rec[5] == HandshakeType.SERVER_HELLO:
                return _suite_of(rec)
    raise RuntimeError("no ServerHello recorded")


@functools.cache
def hrr_server_flight() -> Protected:
    """After the HelloRetryRequest: the second ServerHello in plaintext, the rest of the
    server flight decrypted (the seed of ``client13_hrr_flight``)."""
    rec = flow("hrr")
    return _open_server_flight(rec.server_flights[1],
                               rec.secrets["server_handshake_traffic_secret"])


@functools.cache
def resume_server_flight(name: str) -> Protected:
    """The server's answer in the resumption ``name`` (RESUME13_FLOWS): everything up to
    the last ServerHello in plaintext (after an HRR: the HRR and CCS too), then the rest
    of that flight (EncryptedExtensions, Finished) decrypted."""
    rec = flow(name)
    last = max(i for i, f in enumerate(rec.server_flights)
               if any(t == ContentType.HANDSHAKE and r[5] == HandshakeType.SERVER_HELLO
                      for t, r in split_records(f)))
    records = split_records(rec.server_flights[last])
    prefix = b"".join(rec.server_flights[:last]) + b"".join(
        r for t, r in records if t != ContentType.APPLICATION_DATA)
    protected = [r for t, r in records if t == ContentType.APPLICATION_DATA]
    suite = _suite_of(rec.server_flights[last])
    secret = rec.secrets["server_handshake_traffic_secret"]
    key, iv = schedule13.traffic_keys(suite.hash_name, secret, suite.key_len, suite.iv_len)
    return Protected(prefix, _open_records(protected, suite, secret), suite, key, iv)


def _plain_messages(flights: tuple[bytes, ...]) -> list[bytes]:
    """The plaintext handshake messages in ``flights`` (whole records, unfragmented)."""
    return [r[5:] for f in flights for t, r in split_records(f) if t == ContentType.HANDSHAKE]


def transcript_prefix(client_flights: tuple[bytes, ...],
                      server_flights: tuple[bytes, ...]) -> bytes:
    """What a TLS 1.3 transcript holds before EncryptedExtensions: ClientHello,
    ServerHello -- after an HRR, message_hash(ClientHello1), the HRR, the second
    ClientHello and ServerHello (RFC 8446 §4.4.1; SHA-256 suites only)."""
    hellos = [m for m in _plain_messages(client_flights)
              if m[0] == HandshakeType.CLIENT_HELLO]
    servers = [m for m in _plain_messages(server_flights)
               if m[0] == HandshakeType.SERVER_HELLO]
    if len(servers) == 1:
        return hellos[0] + servers[0]
    return message_hash("sha256", hellos[0]) + servers[0] + hellos[1] + servers[1]


@functools.cache
def resume_transcript_prefix(name: str) -> bytes:
    """The transcript before EncryptedExtensions in the resumption ``name``."""
    rec = flow(name)
    return transcript_prefix(rec.client_flights, rec.server_flights)


def reseal(prefix: bytes, server_hs_secret: bytes, data: bytes) -> bytes:
    """``data`` (a decrypted TLS 1.3 server flight, SHA-256 suite) with its
    CertificateVerify signed anew (Ed25519, the fixed server key of fuzz/creds) and its
    Finished recomputed (the real server handshake secret) over the transcript as
    mutated: a mutation of EncryptedExtensions or of the Certificate's extensions then
    gets past both checks. Stops at the Finished, or where the messages stop framing."""
    out = bytearray(data)
    pos = 0
    while pos + 4 <= len(out):
        length = int.from_bytes(out[pos + 1 : pos + 4], "big")
        transcript_hash = hashlib.sha256(prefix + out[:pos]).digest()
        if out[pos] == HandshakeType.CERTIFICATE_VERIFY:
            content = sig.certificate_verify_content(transcript_hash, server=True)
            signature = sig.sign(SignatureScheme.ED25519, creds().server.private_key, content)
            body = b"\x08\x07" + len(signature).to_bytes(2, "big") + signature
            out[pos : pos + 4 + length] = (bytes((HandshakeType.CERTIFICATE_VERIFY,))
                                           + len(body).to_bytes(3, "big") + body)
            length = len(body)
        elif out[pos] == HandshakeType.FINISHED:
            if length == 32:
                out[pos + 4 : pos + 36] = schedule13.finished_verify_data(
                    "sha256", server_hs_secret, transcript_hash)
            break
        pos += 4 + length
    return bytes(out)


def refinish(name: str, data: bytes) -> bytes:
    """``reseal`` for a server flight of the resumption ``name`` (no CertificateVerify
    in a PSK handshake: the Finished only)."""
    return reseal(resume_transcript_prefix(name),
                  flow(name).secrets["server_handshake_traffic_secret"], data)


@functools.cache
def flight13_transcript_prefix() -> bytes:
    rec = recording("13")
    return transcript_prefix(rec.client_flights, rec.server_flights)


@dataclass(frozen=True)
class EarlyFlight:
    """The 0-RTT resumption as the server sees it: ``hello`` (the ClientHello record(s)
    and CCS), the early records' raw inner plaintexts (application data, EndOfEarlyData),
    the sealer of the client_early_traffic key, then ``tail`` (the client's Finished)."""

    hello: bytes
    inners: tuple[bytes, ...]
    sealer: Sealer
    tail: bytes


@functools.cache
def early_flight() -> EarlyFlight:
    rec = flow("resume13")
    suite = _suite13(rec.server_flights)
    early_key = Sealer.for_secret(suite, rec.secrets["client_early_traffic_secret"])
    hs_secret = rec.secrets["client_handshake_traffic_secret"]
    records = [r for f in rec.client_flights[:2] for r in split_records(f)]
    hello = b"".join(r for t, r in records if t != ContentType.APPLICATION_DATA)
    protected = [r for t, r in records if t == ContentType.APPLICATION_DATA]
    # The early records come first; the last protected record (the client's Finished)
    # is under the handshake key.
    early, tail = protected[:-1], protected[-1]
    hs_key = Sealer.for_secret(suite, hs_secret)
    hs_key.open([tail])  # (asserts the split: the Finished opens under the handshake key)
    return EarlyFlight(hello, tuple(early_key.open(early)), early_key, tail)


@dataclass(frozen=True)
class PskHello:
    """A resuming ClientHello as the server gets it: the client's stream before it
    (after an HRR: the first ClientHello, CCS, early data), its handshake body, the rest
    of the client's stream (CCS, 0-RTT, EndOfEarlyData, Finished), and what the binder
    transcript holds before it (after an HRR: message_hash(ClientHello1) + HRR)."""

    before: bytes
    body: bytes
    rest: bytes
    transcript_prefix: bytes


@functools.cache
def psk_hello(name: str = "resume13") -> PskHello:
    rec = flow(name)
    stream = b"".join(rec.client_flights)
    records = split_records(stream)
    starts = [i for i, (ct, r) in enumerate(records)
              if ct == ContentType.HANDSHAKE and r[5] == HandshakeType.CLIENT_HELLO]
    assert starts
    index = starts[-1]
    first = records[index][1]
    body = first[5 + 4 :]
    assert len(body) == int.from_bytes(first[6:9], "big"), "a fragmented ClientHello"
    before = b"".join(r for _, r in records[:index])
    prefix = b""
    if index:
        hello1 = records[starts[0]][1][5:]
        hrr = split_records(rec.server_flights[0])[0][1][5:]
        prefix = (bytes((HandshakeType.MESSAGE_HASH, 0, 0, 32)) + hashlib.sha256(hello1).digest()
                  + hrr)
    return PskHello(before, body, stream[len(before) + len(first):], prefix)


def rebind(body: bytes, transcript_prefix: bytes = b"") -> bytes:
    """Recompute the binders of a (mutated) ClientHello body with the real keys, so that
    a mutation elsewhere in the hello gets past the binder check: each identity that is
    the recorded ticket (or the external PSK) gets its real binder, any other identity
    the ticket's. Unchanged when the hello does not parse or its binders vector does
    not have the shape (n binders of 32 bytes) that allows rewriting in place."""
    try:
        hello = decode_handshake(HandshakeType.CLIENT_HELLO, body)
    except TLSError:
        return body
    exts = getattr(hello, "extensions", ())
    psk = exts[-1] if exts else None
    if not isinstance(psk, ext.PreSharedKeyClientHello) or not psk.identities:
        return body
    n = len(psk.identities)
    size = psk.binders_length()
    if size != 2 + 33 * n or len(body) < size or body[-size:-size + 2] != (
            (33 * n).to_bytes(2, "big")):
        return body
    session = _first_session(flow("resume13-full"))
    assert isinstance(session, Session13)
    header = bytes((HandshakeType.CLIENT_HELLO,)) + len(body).to_bytes(3, "big")
    transcript_hash = hashlib.sha256(transcript_prefix + header + body[:-size]).digest()
    binders = b""
    for ident in psk.identities:
        external = ident.identity == EXTERNAL_PSK.identity
        key = EXTERNAL_PSK.key if external else session.psk
        binder_key = schedule13.EarlySecret.derive("sha256", key).binder_key(external=external)
        binders += b"\x20" + schedule13.binder_value("sha256", binder_key, transcript_hash)
    return body[:-size] + (33 * n).to_bytes(2, "big") + binders


HelloEdit = Callable[[ClientHello], ClientHello]


def edit_hello(body: bytes, edit: HelloEdit, *, bind: bool = True) -> bytes:
    """A ClientHello body changed by ``edit`` (on the parsed hello), re-serialized and,
    with ``bind``, its binders recomputed (``rebind``)."""
    hello = decode_handshake(HandshakeType.CLIENT_HELLO, body)
    assert isinstance(hello, ClientHello)
    new = edit(hello).serialize()[4:]
    return rebind(new) if bind else new


def _without(*kinds: type) -> HelloEdit:
    return lambda h: replace(h, extensions=tuple(
        e for e in h.extensions if not isinstance(e, kinds)))


def _suites(*suites: CipherSuite) -> HelloEdit:
    return lambda h: replace(h, cipher_suites=suites)


def _psk_first(h: ClientHello) -> ClientHello:
    return replace(h, extensions=(h.extensions[-1], *h.extensions[:-1]))


def _psk_twice(h: ClientHello) -> ClientHello:
    psk = h.extensions[-1]
    assert isinstance(psk, ext.PreSharedKeyClientHello)
    return replace(h, extensions=(*h.extensions[:-1], replace(
        psk, identities=psk.identities[:1] + psk.identities,
        binders=psk.binders[:1] + psk.binders)))


def _external_first(h: ClientHello) -> ClientHello:
    psk = h.extensions[-1]
    assert isinstance(psk, ext.PreSharedKeyClientHello)
    return replace(h, extensions=(*h.extensions[:-1], replace(
        psk, identities=psk.identities[::-1], binders=psk.binders[::-1])))


_PSK_HELLO_EDITS: dict[str, HelloEdit] = {
    "without-modes": _without(ext.PskKeyExchangeModes),
    "without-key-share": _without(ext.KeyShareClientHello),
    "without-early-data": _without(ext.EarlyDataIndication),
    "psk-not-last": _psk_first,
    "ticket-twice": _psk_twice,
    "external-first": _external_first,
    "chacha-only": _suites(CipherSuite.TLS_CHACHA20_POLY1305_SHA256),
    "sha384-only": _suites(CipherSuite.TLS_AES_256_GCM_SHA384),
}


def handshake_records(message: bytes) -> bytes:
    """``message`` (a whole handshake message) in plaintext handshake records."""
    return b"".join(bytes((22, 3, 3)) + len(message[i : i + MAX_PLAINTEXT]).to_bytes(2, "big")
                    + message[i : i + MAX_PLAINTEXT]
                    for i in range(0, max(len(message), 1), MAX_PLAINTEXT))


@dataclass(frozen=True)
class PostHandshake:
    """A connected client's view: the server flights of the handshake, then the raw
    inner plaintexts of the server's post-handshake records (CertificateRequest,
    KeyUpdate) and the sealer of server_application_traffic_secret_0."""

    handshake: bytes
    inners: tuple[bytes, ...]
    sealer: Sealer


@functools.cache
def post_handshake(side: str = "server") -> PostHandshake:
    """``side`` "server": what the client gets (the server's CertificateRequest and
    KeyUpdate); "client": what the server gets after its CertificateRequest (the
    client's Certificate, CertificateVerify, Finished and KeyUpdate), under
    client_application_traffic_secret_0."""
    rec = flow("pha")
    suite = _suite13(rec.server_flights)
    flights = rec.server_flights if side == "server" else rec.client_flights
    sealer = Sealer.for_secret(suite, rec.secrets[f"{side}_application_traffic_secret_0"])
    post = [r for _, r in split_records(flights[-1])]
    return PostHandshake(b"".join(flights[:-1]), tuple(sealer.open(post)), sealer)


@functools.cache
def flow_seeds() -> tuple[tuple[str, str, bytes], ...]:
    """(target, origin, input): the live seeds of the flow targets (HelloRetryRequest,
    PSK / 0-RTT, post-handshake, TLS 1.2 resumption), from the recorded flows; what
    fuzz/make_corpus.py writes to fuzz/corpus/<target>/<origin>-<hash>."""
    out: list[tuple[str, str, bytes]] = []

    def put(target: str, origin: str, data: bytes) -> None:
        out.append((target, origin, data))

    hrr = flow("hrr")
    put("client13_hrr", "hrr-server", b"".join(hrr.server_flights[1:]))
    put("client13_hrr", "hrr-server-hello", split_records(hrr.server_flights[1])[0][1])
    put("client13_hrr_flight", "hrr-server", hrr_server_flight().plaintext)
    put("server13_hrr", "hrr-client", b"".join(hrr.client_flights[1:]))
    put("server13_hrr", "hrr-client-hello", hrr.client_flights[1])

    for selector, origin in ((0, "psk-hello"), (1, "psk-hello-rebind"),
                             (3, "psk-hello-rebind-rest"), (5, "psk-hrr-hello-rebind"),
                             (7, "psk-hrr-hello-rebind-rest")):
        hello = psk_hello("resume13hrr" if selector & 4 else "resume13")
        put("server13_psk", origin, bytes((selector,)) + hello.body)
    # psk_key_exchange_modes (psk_dhe_ke) -> (psk_ke), for a server with allow_psk_ke.
    modes = bytes.fromhex("002d00020101")
    body = psk_hello().body
    assert body.count(modes) == 1
    put("server13_psk", "psk-ke-hello-rebind",
        b"\x09" + rebind(body.replace(modes, modes[:-1] + b"\x00")))
    # Hand-made hellos (consistent lengths, binders recomputed) towards the checks that
    # blind mutation rarely reaches with every length field right.
    for origin, edit in _PSK_HELLO_EDITS.items():
        put("server13_psk", f"psk-hello-{origin}", b"\x03" + edit_hello(body, edit))
    for selector, name in ((0, "resume13replay"), (1, "resume13hrr")):
        rec = flow(name)
        first = split_records(rec.client_flights[0])[0][1]
        put("server13_early_skip", name,
            bytes((selector,)) + b"".join(rec.client_flights)[len(first):])
    for i, name in enumerate(RESUME13_FLOWS):
        put("client13_resume", name, b"".join(flow(name).server_flights))
        plaintext = resume_server_flight(name).plaintext
        put("client13_resume_flight", name, bytes((i,)) + plaintext)
        # EncryptedExtensions claiming 0-RTT (refused after an HRR: never offered; after
        # a replay: the client must then send EndOfEarlyData), Finished recomputed.
        ee_len = 4 + int.from_bytes(plaintext[1:4], "big")
        ee = decode_handshake(HandshakeType.ENCRYPTED_EXTENSIONS, plaintext[4:ee_len])
        assert isinstance(ee, EncryptedExtensions)
        if not any(isinstance(e, ext.EarlyDataIndication) for e in ee.extensions):
            claim = replace(ee, extensions=(*ee.extensions, ext.EarlyDataIndication()))
            put("client13_resume_flight", f"{name}-early-data-claimed", bytes((4 | i,))
                + refinish(name, claim.serialize() + plaintext[ee_len:]))

    early = list(early_flight().inners)
    put("server13_early", "early", encode_inners(early))
    put("server13_early", "early-eoed-only", encode_inners(early[1:]))
    put("server13_early", "early-padded",
        encode_inners([early[0] + bytes(16), early[1]]))

    post = list(post_handshake().inners)
    # A real NewSessionTicket (with early_data), opened from the ticketing handshake.
    full = flow("resume13-full")
    suite = _suite13(full.server_flights)
    sealer = Sealer.for_secret(suite, full.secrets["server_application_traffic_secret_0"])
    ticket = sealer.open([r for _, r in split_records(full.server_flights[-1])])
    put("client13_pha", "pha-request-keyupdate", encode_inners(post))
    put("client13_pha", "pha-request", encode_inners(post[:1]))
    put("client13_pha", "keyupdate", encode_inners(post[1:]))
    put("client13_pha", "ticket", encode_inners(ticket))
    put("client13_pha", "ticket-request-data",
        encode_inners([*ticket, post[0], b"hello\x17"]))

    # Hand-made variants towards the checks a blind mutation rarely reaches.
    request = decode_handshake(HandshakeType.CERTIFICATE_REQUEST, post[0][4:-1])
    assert isinstance(request, CertificateRequest)
    no_sigalgs = replace(request, extensions=()).serialize() + b"\x16"
    put("client13_pha", "pha-request-twice", encode_inners([post[0], post[0]]))
    put("client13_pha", "pha-request-without-sigalgs", encode_inners([no_sigalgs]))
    nst = decode_handshake(HandshakeType.NEW_SESSION_TICKET, ticket[0][4:-1])
    assert isinstance(nst, NewSessionTicket)
    put("client13_pha", "ticket-8-days",
        encode_inners([replace(nst, ticket_lifetime=604801).serialize() + b"\x16"]))
    put("client13_pha", "finished-after-handshake",
        encode_inners([Finished(bytes(32)).serialize() + b"\x16"]))

    answer = list(post_handshake("client").inners)
    put("server13_pha", "pha-answer-keyupdate", encode_inners(answer))
    # The answer's handshake messages (Certificate, CertificateVerify, Finished, then the
    # KeyUpdate), however the client put them in records.
    stream = b"".join(i[:-1] for i in answer if i[-1] == ContentType.HANDSHAKE)
    messages = []
    while stream:
        end = 4 + int.from_bytes(stream[1:4], "big")
        messages.append(stream[:end])
        stream = stream[end:]
    assert [m[0] for m in messages] == [11, 15, 20, 24], [m[0] for m in messages]
    proof = b"".join(messages[:3])
    put("server13_pha", "pha-answer", encode_inners([proof + b"\x16"]))
    put("server13_pha", "pha-answer-split", encode_inners([m + b"\x16" for m in messages]))
    put("server13_pha", "pha-answer-data", encode_inners([b"hi\x17", proof + b"\x16"]))
    certificate = decode_handshake(HandshakeType.CERTIFICATE, messages[0][4:])
    assert isinstance(certificate, Certificate)
    wrong = replace(certificate, certificate_request_context=bytes(
        len(certificate.certificate_request_context)))
    put("server13_pha", "pha-answer-wrong-context",
        encode_inners([wrong.serialize() + b"".join(messages[1:3]) + b"\x16"]))
    empty = replace(certificate, certificate_list=())
    put("server13_pha", "pha-answer-empty",
        encode_inners([empty.serialize() + Finished(bytes(32)).serialize() + b"\x16"]))

    for selector, name in ((0, "resume12sid"), (1, "resume12ticket")):
        rec = flow(name)
        put("client12_resume", name, bytes((selector,)) + b"".join(rec.server_flights))
        put("server12_resume", name, bytes((selector,)) + b"".join(rec.client_flights))
        put("server12_resume", f"{name}-hello", bytes((selector,)) + rec.client_flights[0])
        # RFC 7627 §5.3: resuming an extended-master-secret session without it.
        hello12 = split_records(rec.client_flights[0])[0][1][9:]
        edited = edit_hello(hello12, _without(ext.ExtendedMasterSecret), bind=False)
        no_ems = handshake_records(bytes((HandshakeType.CLIENT_HELLO,))
                                   + len(edited).to_bytes(3, "big") + edited)
        put("server12_resume", f"{name}-hello-without-ems", bytes((selector,)) + no_ems)
        # ... and a ServerHello resuming without it (the client must refuse).
        stream = b"".join(rec.server_flights)
        first = split_records(stream)[0][1]
        server_hello = ServerHello.parse_body(first[9:])
        plain = replace(server_hello, extensions=tuple(
            e for e in server_hello.extensions if not isinstance(e, ext.ExtendedMasterSecret)))
        put("client12_resume", f"{name}-without-ems", bytes((selector,))
            + handshake_records(plain.serialize()) + stream[len(first):])

    # The real server flight; the same with EncryptedExtensions not acknowledging the
    # SNI, CertificateVerify and Finished made anew.
    plaintext = server_flight13().plaintext
    put("client13_flight_resealed", "tls13-server", plaintext)
    ee_len = 4 + int.from_bytes(plaintext[1:4], "big")
    ee = decode_handshake(HandshakeType.ENCRYPTED_EXTENSIONS, plaintext[4:ee_len])
    assert isinstance(ee, EncryptedExtensions)
    unacked = replace(ee, extensions=tuple(
        e for e in ee.extensions if not isinstance(e, ext.ServerName))).serialize()
    assert unacked != plaintext[:ee_len]
    put("client13_flight_resealed", "tls13-server-sni-unacked", reseal(
        flight13_transcript_prefix(), recording("13").secrets["server_handshake_traffic_secret"],
        unacked + plaintext[ee_len:]))

    # The HelloRetryRequest as the plain "13" client sees it (a first message to mutate),
    # echoing that client's legacy_session_id; the CCS after it.
    records = split_records(hrr.server_flights[0])
    retry = ServerHello.parse_body(records[0][1][9:])
    hello13 = split_records(recording("13").client_flights[0])[0][1]
    session_id = hello13[9 + 2 + 32 + 1 : 9 + 2 + 32 + 1 + hello13[9 + 2 + 32]]
    echoed = replace(retry, legacy_session_id_echo=session_id).serialize()
    put("client13", "hrr", handshake_records(echoed) + records[1][1])
    return tuple(out)


# -- the targets -----------------------------------------------------------------------
_CHUNK_SIZES = (1 << 20, 1 << 20, 1 << 20, 1 << 20, 16384, 4096, 1024, 512, 256, 100, 64,
                32, 16, 7, 3, 1)


def target_deframer(data: bytes) -> None:
    """Record layer: RecordReader, handshake reassembly and alert parsing of whatever
    records come out. Byte 0: bits 0-3 the chunk size the stream is fed in, bit 6 a
    4 KiB handshake message cap, bit 7 the TLS 1.3 record limit; the rest is the stream."""
    if not data:
        return
    selector, stream = data[0], data[1:]
    reader = RecordReader(MAX_CIPHERTEXT_13 if selector & 0x80 else MAX_CIPHERTEXT_12)
    reassembler = HandshakeReassembler(max_message_size=((selector & 0x40) and 2**12) or
                                       4 + 2**24 - 1)
    step = _CHUNK_SIZES[selector & 0x0F]

    def run() -> None:
        for i in range(0, max(len(stream), 1), step):
            reader.feed(stream[i : i + step])
            while (record := reader.next_record()) is not None:
                if record.content_type == ContentType.HANDSHAKE:
                    reassembler.feed(record.fragment)
                    while reassembler.next_message() is not None:
                        pass
                elif record.content_type == ContentType.ALERT:
                    parse_alert(record.fragment)

    _guard(run)


_MESSAGE_TYPES13 = (
    HandshakeType.CLIENT_HELLO, HandshakeType.SERVER_HELLO, HandshakeType.NEW_SESSION_TICKET,
    HandshakeType.END_OF_EARLY_DATA, HandshakeType.ENCRYPTED_EXTENSIONS,
    HandshakeType.CERTIFICATE, HandshakeType.CERTIFICATE_REQUEST,
    HandshakeType.CERTIFICATE_VERIFY, HandshakeType.FINISHED, HandshakeType.KEY_UPDATE,
    HandshakeType.CERTIFICATE_STATUS, HandshakeType.HELLO_REQUEST,
    HandshakeType.SERVER_HELLO_DONE,
)
_MESSAGE_TYPES12 = (
    *_MESSAGE_TYPES13, HandshakeType.SERVER_KEY_EXCHANGE, HandshakeType.CLIENT_KEY_EXCHANGE,
)
_KX_KINDS = ("ecdhe", "dhe", "rsa")


def target_handshake13(data: bytes) -> None:
    """Every TLS 1.3 (and shared) handshake message parser: byte 0 picks the type (it is
    the wire type if known, else an index), the rest is the body."""
    if not data:
        return
    t = data[0]
    msg_type = t if t in _MESSAGE_TYPES13 else _MESSAGE_TYPES13[t % len(_MESSAGE_TYPES13)]
    body = data[1:]
    _guard(lambda: decode_handshake(msg_type, body))


def target_handshake12(data: bytes) -> None:
    """Every TLS 1.2 handshake message parser: byte 0 picks the key-exchange kind, byte 1
    the type (wire type if known, else an index), the rest is the body."""
    if len(data) < 2:
        return
    kx = _KX_KINDS[data[0] % len(_KX_KINDS)]
    t = data[1]
    msg_type = t if t in _MESSAGE_TYPES12 else _MESSAGE_TYPES12[t % len(_MESSAGE_TYPES12)]
    body = data[2:]
    _guard(lambda: decode_handshake(msg_type, body, tls12=True, kx=kx))


_CONTEXTS = tuple(ExtensionContext)


def target_extensions(data: bytes) -> None:
    """parse_extensions in every context: byte 0 picks the context, the rest is the
    extensions block (2-byte length included)."""
    if not data:
        return
    context = _CONTEXTS[data[0] % len(_CONTEXTS)]
    block = data[1:]

    def run() -> None:
        r = Reader(block, "extensions")
        parse_extensions(r, context)

    _guard(run)


def target_server(data: bytes) -> None:
    """A fresh server (TLS 1.3 and 1.2) fed arbitrary bytes."""
    feed(new_server("13"), data)


def target_client13(data: bytes) -> None:
    """A client offering TLS 1.3 and 1.2, fed arbitrary bytes after its ClientHello."""
    client = new_client("13")
    client.data_to_send()
    feed(client, data)


def target_client12(data: bytes) -> None:
    """A TLS 1.2-only client fed arbitrary bytes after its ClientHello."""
    client = new_client("12")
    client.data_to_send()
    feed(client, data)


def target_server12(data: bytes) -> None:
    """A server fed the real TLS 1.2 ClientHello, then arbitrary bytes (the real client
    flight ClientKeyExchange/CCS/Finished is the seed)."""
    server = new_server("12")
    server.receive_data(recording("12").client_flights[0])
    server.events()
    server.data_to_send()
    feed(server, data)


def target_client13_flight(data: bytes) -> None:
    """A TLS 1.3 client given the real ServerHello (and CCS), then ``data`` as the
    decrypted rest of the server flight, encrypted under the real server handshake
    traffic key. The seed is the real EncryptedExtensions..Finished."""
    flight = server_flight13()
    client = new_client("13")
    client.data_to_send()
    client.receive_data(flight.prefix)
    client.events()
    feed(client, flight.protect(data))


def target_client13_flight_resealed(data: bytes) -> None:
    """``client13_flight`` with the mutated flight's CertificateVerify signed anew with
    the server's key and its Finished recomputed (``reseal``), so that a changed
    EncryptedExtensions or Certificate extension is acted on past both checks."""
    flight = server_flight13()
    client = new_client("13")
    client.data_to_send()
    client.receive_data(flight.prefix)
    client.events()
    feed(client, flight.protect(reseal(flight13_transcript_prefix(),
                                       recording("13").secrets["server_handshake_traffic_secret"],
                                       data)))


def target_server13_client_flight(data: bytes) -> None:
    """A TLS 1.3 server requiring a client certificate, given the real ClientHello (and
    the client's CCS), then ``data`` as the decrypted client flight (Certificate,
    CertificateVerify, Finished) encrypted under the real client handshake key."""
    flight = client_flight13_mtls()
    server = new_server("mtls")
    server.receive_data(recording("mtls").client_flights[0] + flight.prefix)
    server.events()
    server.data_to_send()
    feed(server, flight.protect(data))


def target_client13_hrr(data: bytes) -> None:
    """A TLS 1.3 client that got a real HelloRetryRequest (the server wants secp256r1,
    the client sent an X25519 share) and sent its second ClientHello, fed arbitrary
    bytes: the second ServerHello path (seed: the real second server flight)."""
    client = extra_client("hrr")
    client.data_to_send()
    client.receive_data(flow("hrr").server_flights[0])
    client.events()
    client.data_to_send()
    feed(client, data)


def target_client13_hrr_flight(data: bytes) -> None:
    """As ``client13_hrr``, then the real second ServerHello, then ``data`` as the
    decrypted rest of the server flight encrypted under the real server handshake key
    (derived from the secp256r1 share after the HRR)."""
    flight = hrr_server_flight()
    client = extra_client("hrr")
    client.data_to_send()
    client.receive_data(flow("hrr").server_flights[0])
    client.events()
    client.data_to_send()
    client.receive_data(flight.prefix)
    client.events()
    feed(client, flight.protect(data))


def target_server13_hrr(data: bytes) -> None:
    """A TLS 1.3 server that answered the real first ClientHello with a HelloRetryRequest
    (and its cookie), fed arbitrary bytes: the second ClientHello's consistency checks
    (seed: the client's real CCS + second ClientHello + Finished)."""
    server = extra_server("hrr")
    server.receive_data(flow("hrr").client_flights[0])
    server.events()
    server.data_to_send()
    feed(server, data)


def target_server13_psk(data: bytes) -> None:
    """A TLS 1.3 server holding the fixed ticket keys (and an external PSK), fed a
    ClientHello offering the recorded ticket (pre_shared_key, psk_key_exchange_modes,
    early_data). Byte 0: bit 0 recomputes the binders with the real keys after the
    mutation (``rebind``), so that it reaches beyond the binder check; bit 1 appends the
    client's real rest of stream (CCS, 0-RTT data, EndOfEarlyData, Finished); bit 2: the
    server wants secp256r1, so the hello is the second one, after the real first
    ClientHello (with 0-RTT) and the server's HelloRetryRequest (the binders then cover
    message_hash + HRR too); bit 3: the server accepts psk_ke (``allow_psk_ke``: a PSK
    handshake without (EC)DHE when the hello's psk_key_exchange_modes offers it). The
    rest: the ClientHello body (its handshake header is computed; records of 2^14
    bytes)."""
    if not data:
        return
    selector, body = data[0], data[1:]
    name = "resume13hrr" if selector & 4 else "resume13"
    hello = psk_hello(name)
    if selector & 1:
        body = rebind(body, hello.transcript_prefix)
    message = bytes((HandshakeType.CLIENT_HELLO,)) + len(body).to_bytes(3, "big") + body
    stream = hello.before + handshake_records(message)
    if selector & 2:
        stream += hello.rest
    feed(resume13_server(name, allow_psk_ke=bool(selector & 8)), stream)


def target_server13_early_skip(data: bytes) -> None:
    """A TLS 1.3 server that will not read the client's 0-RTT data -- byte 0 bit 0: it
    sends a HelloRetryRequest (1), or the ticket's 0-RTT was already used (0, a replay)
    -- fed the real first ClientHello, then the rest: arbitrary bytes (seed: the real
    rest of the client's stream: CCS, early data it must skip, [second ClientHello,]
    Finished)."""
    if not data:
        return
    name = "resume13hrr" if data[0] & 1 else "resume13replay"
    server = resume13_server(name)
    server.receive_data(split_records(flow(name).client_flights[0])[0][1])
    server.events()
    server.data_to_send()
    feed(server, data[1:])


def target_client13_resume(data: bytes) -> None:
    """A TLS 1.3 client resuming the recorded ticket with 0-RTT data (and offering the
    external PSK too), fed arbitrary bytes after its first flight. Seeds: the server's
    real answers: 0-RTT accepted, a HelloRetryRequest then the PSK handshake, 0-RTT
    refused as a replay."""
    session = _first_session(flow("resume13-full"))
    client = extra_client("resume13", " resumed", session=session, early_data=EARLY_DATA)
    client.data_to_send()
    feed(client, data)


def target_client13_resume_flight(data: bytes) -> None:
    """The client of ``client13_resume`` given the server's real plaintext answer up to
    the (last) ServerHello, then ``data[1:]`` as the decrypted rest of the flight
    (EncryptedExtensions with or without early_data, Finished: no Certificate in a PSK
    handshake) encrypted under the real server handshake key. Byte 0: bits 0-1 (mod 3)
    pick the answer: 0-RTT accepted, HRR then PSK, 0-RTT refused as a replay; bit 2 recomputes the
    server Finished over the mutated flight (``refinish``), so that a changed
    EncryptedExtensions is acted on past the Finished check."""
    if not data:
        return
    name = RESUME13_FLOWS[(data[0] & 3) % len(RESUME13_FLOWS)]
    flight = resume_server_flight(name)
    plaintext = refinish(name, data[1:]) if data[0] & 4 else data[1:]
    session = _first_session(flow("resume13-full"))
    client = extra_client("resume13", " resumed", session=session, early_data=EARLY_DATA)
    client.data_to_send()
    client.receive_data(flight.prefix)
    client.events()
    client.data_to_send()
    feed(client, flight.protect(plaintext))


def target_server13_early(data: bytes) -> None:
    """A TLS 1.3 server that accepted 0-RTT (the real resuming ClientHello), fed
    ``data`` as raw TLSInnerPlaintexts (u16 length + content||type||padding, repeated:
    ``decode_inners``) sealed under the real client_early_traffic key, then the client's
    real Finished. Seed: the real early application data and EndOfEarlyData."""
    early = early_flight()
    server = extra_server("resume13", " resumed")
    server.receive_data(early.hello)
    server.events()
    server.data_to_send()
    feed(server, early.sealer.seal(decode_inners(data)) + early.tail)


def target_client13_pha(data: bytes) -> None:
    """A connected TLS 1.3 client that offered post_handshake_auth (it has a
    certificate), fed ``data`` as raw TLSInnerPlaintexts (``decode_inners``) sealed under
    the real server_application_traffic_secret_0. Seeds: the server's real post-handshake
    CertificateRequest and KeyUpdate, a NewSessionTicket, application data."""
    post = post_handshake()
    client = extra_client("pha")
    client.data_to_send()
    client.receive_data(post.handshake)
    client.events()
    client.data_to_send()
    feed(client, post.sealer.seal(decode_inners(data)))


def target_server13_pha(data: bytes) -> None:
    """A connected TLS 1.3 server (the client offered post_handshake_auth) that sent a
    post-handshake CertificateRequest, fed ``data`` as raw TLSInnerPlaintexts
    (``decode_inners``) sealed under the real client_application_traffic_secret_0.
    Seed: the client's real answer (Certificate, CertificateVerify, Finished) and
    KeyUpdate."""
    post = post_handshake("client")
    server = extra_server("pha")
    server.receive_data(post.handshake)
    server.events()
    server.data_to_send()
    server.request_client_certificate()
    server.data_to_send()
    feed(server, post.sealer.seal(decode_inners(data)))


def _client12_resume(name: str, data: bytes) -> None:
    session = _first_session(flow(name + "-full"))
    client = extra_client(name, " resumed", session=session)
    client.data_to_send()
    feed(client, data)


def target_client12_resume(data: bytes) -> None:
    """A TLS 1.2 client resuming a recorded session, fed arbitrary bytes after its
    ClientHello. Byte 0 bit 0: the RFC 5077 ticket session (1) or the session-ID one (0);
    the rest: the server's bytes (seed: the real abbreviated handshake's flight)."""
    if not data:
        return
    _client12_resume("resume12ticket" if data[0] & 1 else "resume12sid", data[1:])


def target_server12_resume(data: bytes) -> None:
    """A TLS 1.2 server holding the fixed ticket keys and a session-ID cache with the
    recorded session, fed a client's whole stream. Byte 0 bit 0: the ticket server (1)
    or the session-ID one (0); the rest: the client's bytes (seed: the real resuming
    ClientHello, CCS and Finished)."""
    if not data:
        return
    name = "resume12ticket" if data[0] & 1 else "resume12sid"
    server = extra_server(name, " resumed", store=fresh_store(session_cache(name)))
    feed(server, data[1:])


Target = Callable[[bytes], None]

TARGETS: dict[str, Target] = {
    "deframer": target_deframer,
    "handshake13": target_handshake13,
    "handshake12": target_handshake12,
    "extensions": target_extensions,
    "server": target_server,
    "client13": target_client13,
    "client12": target_client12,
    "server12": target_server12,
    "client13_flight": target_client13_flight,
    "client13_flight_resealed": target_client13_flight_resealed,
    "server13_client_flight": target_server13_client_flight,
    "client13_hrr": target_client13_hrr,
    "client13_hrr_flight": target_client13_hrr_flight,
    "server13_hrr": target_server13_hrr,
    "server13_psk": target_server13_psk,
    "server13_early_skip": target_server13_early_skip,
    "client13_resume": target_client13_resume,
    "client13_resume_flight": target_client13_resume_flight,
    "server13_early": target_server13_early,
    "client13_pha": target_client13_pha,
    "server13_pha": target_server13_pha,
    "client12_resume": target_client12_resume,
    "server12_resume": target_server12_resume,
}


def warm_up() -> None:
    """Build the credentials and recordings now (not inside the first fuzz input)."""
    for kind in ("13", "12", "mtls"):
        recording(kind)
    server_flight13()
    client_flight13_mtls()
    flight13_transcript_prefix()
    hrr_server_flight()
    early_flight()
    for name in RESUME13_FLOWS:
        flow(name)
        resume_server_flight(name)
        resume_transcript_prefix(name)
    psk_hello()
    psk_hello("resume13hrr")
    post_handshake()
    post_handshake("client")
    for name in ("resume12sid", "resume12ticket"):
        flow(name)
        session_cache(name)


# -- corpora ---------------------------------------------------------------------------
def corpus_dir(target: str) -> Path:
    return CORPUS_DIR / target


def load_corpus(target: str) -> list[bytes]:
    """The seeds of ``target`` (sorted by file name, so the order is stable)."""
    directory = corpus_dir(target)
    if not directory.is_dir():
        return []
    return [p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()
            and not p.name.startswith(".")]


def input_hash(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()[:16]


def run_one(target: str, data: bytes) -> BaseException | None:
    """Run ``target`` on ``data``: None if the oracle holds, else the ``Finding``."""
    try:
        TARGETS[target](data)
    except Finding as finding:
        return finding
    except BaseException as exc:
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        try:
            check_exception(exc)
        except Finding as finding:
            return finding
    return None


def regression_stub(target: str, data: bytes, finding: BaseException) -> str:
    """A pytest test that replays ``data`` (to paste into tests/test_fuzz_regressions.py)."""
    name = f"test_{target}_{input_hash(data)}"
    summary = str(finding).splitlines()[0][:150].replace('"', "'")
    hexed = data.hex()
    lines = [hexed[i : i + 88] for i in range(0, len(hexed), 88)] or [""]
    body = "\n".join(f'        "{line}"' for line in lines)
    return (
        f'@pytest.mark.xfail(strict=True, reason="{summary}")\n'
        f"def {name}() -> None:\n"
        f"    data = bytes.fromhex(\n{body}\n    )\n"
        f'    assert_holds("{target}", data)\n'
    )


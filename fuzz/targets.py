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
* ``server13_client_flight``: likewise the client's decrypted second flight (Certificate,
  CertificateVerify, Finished of a mutual-TLS handshake) re-encrypted under the real
  client handshake traffic key, after the real ClientHello;
* ``server12``: a TLS 1.2 server fed arbitrary bytes after a real ClientHello.

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
from tlsmith.codec.buffer import Reader
from tlsmith.codec.enums import ContentType, HandshakeType, ProtocolVersion
from tlsmith.codec.extensions import parse_extensions
from tlsmith.codec.extensions_base import ExtensionContext
from tlsmith.codec.messages import ServerHello, decode_handshake
from tlsmith.config import CertifiedKey, ClientConfig, ServerConfig
from tlsmith.connection import TLSConnection
from tlsmith.crypto import schedule13
from tlsmith.crypto.kx import deterministic_random
from tlsmith.crypto.suites import SuiteInfo, suite_info
from tlsmith.errors import (
    AlertReceived,
    ConnectionClosedError,
    InternalError,
    ProtocolError,
    TLSError,
    UsageError,
)
from tlsmith.events import NEED_DATA, ConnectionClosed
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
    cflights: list[bytes] = []
    sflights: list[bytes] = []
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
            client.events()
            moved = True
        if not moved:
            break
    if not (client.handshake_complete and server.handshake_complete):
        raise RuntimeError(f"the {kind} fuzz handshake did not complete")
    return Recording(tuple(cflights), tuple(sflights), {**cspy.secrets, **sspy.secrets})


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
    flight = rec.server_flights[0]
    records = split_records(flight)
    prefix = b"".join(r for t, r in records if t != ContentType.APPLICATION_DATA)
    protected = [r for t, r in records if t == ContentType.APPLICATION_DATA]
    suite = _suite_of(flight)
    secret = rec.secrets["server_handshake_traffic_secret"]
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
    "server13_client_flight": target_server13_client_flight,
}


def warm_up() -> None:
    """Build the credentials and recordings now (not inside the first fuzz input)."""
    for kind in ("13", "12", "mtls"):
        recording(kind)
    server_flight13()
    client_flight13_mtls()


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


"""The in-process stores, tickets and client sessions (no Redis: see test_stores_redis.py).

``now`` is injected everywhere, so expiry and key rotation are tested without sleeping.
"""

from __future__ import annotations

import itertools
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from tlsmith.codec.enums import CertificateType, CipherSuite, ProtocolVersion
from tlsmith.errors import DecodeError, UsageError
from tlsmith.session import ExternalPsk, Session12, Session13, session_from_pem
from tlsmith.stores import FileSessionCache, MemorySessionCache, MemoryStore
from tlsmith.tickets import (
    MIN_TICKET_LEN,
    OpenedTicket,
    ServerSessionState,
    TicketKey,
    TicketKeys,
    open_ticket,
    seal_ticket,
)

NOW = 1_700_000_000.0
SECRET = bytes(range(0xA0, 0xC0))  # 32 recognisable bytes that must never be shown
NONCE = bytes(12)


def counting_random() -> Callable[[int], bytes]:
    """Deterministic, never-repeating "random" bytes (each call differs)."""
    counter = itertools.count(1)

    def random(n: int) -> bytes:
        return next(counter).to_bytes(4, "big") * (n // 4) + bytes(n % 4)

    return random


def make_state(**changes: object) -> ServerSessionState:
    fields: dict[str, object] = dict(
        version=ProtocolVersion.TLS13, cipher_suite=CipherSuite.TLS_AES_128_GCM_SHA256,
        secret=SECRET, issued_at=NOW, lifetime=7200, ticket_age_add=0xDEADBEEF,
        server_name="example.test", alpn="h2", extended_master_secret=True,
        max_early_data=16384, client_certificates=(b"\x30\x03cert", b"\x30\x02ca"),
        client_certificate_verified=True)
    fields.update(changes)
    return ServerSessionState(**fields)  # type: ignore[arg-type]


def make_session13(**changes: object) -> Session13:
    fields: dict[str, object] = dict(
        ticket=b"T" * 80, psk=SECRET, cipher_suite=CipherSuite.TLS_AES_128_GCM_SHA256,
        ticket_age_add=12345, lifetime=3600, received_at=NOW, server_name="example.test",
        alpn="h2", max_early_data=1024, peer_certificates=(b"\x30\x03abc",),
        certificate_verified=True)
    fields.update(changes)
    return Session13(**fields)  # type: ignore[arg-type]


def make_session12(**changes: object) -> Session12:
    fields: dict[str, object] = dict(
        session_id=bytes(range(32)), ticket=b"U" * 90, master_secret=SECRET + SECRET[:16],
        cipher_suite=CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        extended_master_secret=True, received_at=NOW, lifetime=3600,
        server_name="example.test", alpn="http/1.1", peer_certificates=(b"\x30\x01x",),
        certificate_verified=False)
    fields.update(changes)
    return Session12(**fields)  # type: ignore[arg-type]


def race(n: int, action: Callable[[int], bool]) -> list[bool]:
    """Run ``action(i)`` in ``n`` threads released together; their results."""
    barrier = threading.Barrier(n, timeout=10)
    results: list[bool | None] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        results[i] = action(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
        assert not t.is_alive()
    assert all(r is not None for r in results)
    return [bool(r) for r in results]


# -- MemoryStore: the TLS 1.2 session-ID cache -------------------------------------------


def test_memory_get_put_and_expiry() -> None:
    store = MemoryStore()
    assert store.get(b"id-1", NOW) is None
    store.put(b"id-1", b"state-1", 10, NOW)
    assert store.get(b"id-1", NOW) == b"state-1"
    assert store.get(b"id-1", NOW + 9.999) == b"state-1"
    assert store.get(b"id-1", NOW + 10) is None  # expired at exactly issued + lifetime
    assert store.get(b"id-1", NOW) is None  # and dropped, not just hidden
    store.put(b"id-2", b"old", 10, NOW)
    store.put(b"id-2", b"new", 10, NOW)
    assert store.get(b"id-2", NOW) == b"new"


def test_memory_session_cache_is_bounded_oldest_first() -> None:
    store = MemoryStore(max_sessions=3)
    for i in range(5):
        store.put(b"id-%d" % i, b"s%d" % i, 100, NOW)
    assert [store.get(b"id-%d" % i, NOW) for i in range(5)] == [None, None, b"s2", b"s3",
                                                                   b"s4"]
    store.put(b"id-2", b"s2'", 100, NOW)  # re-put: now the newest
    store.put(b"id-5", b"s5", 100, NOW)
    assert store.get(b"id-3", NOW) is None
    assert store.get(b"id-2", NOW) == b"s2'"


# -- MemoryStore: single-use marks (0-RTT anti-replay) -----------------------------------


def test_memory_take_once() -> None:
    store = MemoryStore()
    assert store.take_once(b"k", 10, NOW) is True
    assert store.take_once(b"k", 10, NOW + 1) is False  # a replay
    assert store.take_once(b"other", 10, NOW + 1) is True
    assert store.take_once(b"k", 10, NOW + 9.9) is False
    assert store.take_once(b"k", 10, NOW + 10) is True  # the mark expired


def test_memory_take_once_marks_are_bounded() -> None:
    store = MemoryStore(max_sessions=10)
    for i in range(1000):
        assert store.take_once(b"k%d" % i, 3600, NOW)
    # the marks stay bounded (the store prunes down to max_sessions before adding one)
    assert len(store._used) <= 11
    assert store.take_once(b"k999", 3600, NOW) is False  # the newest marks are kept


def test_memory_take_once_is_atomic_under_threads() -> None:
    store = MemoryStore()
    for round_ in range(50):
        key = b"race-%d" % round_

        def take(_i: int, key: bytes = key) -> bool:
            return store.take_once(key, 60, NOW)

        results = race(8, take)
        assert results.count(True) == 1, results


# -- MemoryStore: ticket keys ------------------------------------------------------------


def test_memory_ticket_key_rotation() -> None:
    store = MemoryStore(rotate_after=100, random=counting_random())
    k0 = store.ticket_keys(NOW)
    assert k0.previous is None and k0.current.created_at == NOW
    assert store.ticket_keys(NOW + 99.9) is k0
    k1 = store.ticket_keys(NOW + 100)
    assert k1.current != k0.current and k1.previous == k0.current
    assert k1.current.created_at == NOW + 100
    assert store.ticket_keys(NOW + 150) is k1
    k2 = store.ticket_keys(NOW + 250)  # late: rotates once, not twice
    assert k2.previous == k1.current
    assert k0.current not in (k2.current, k2.previous)
    k3 = store.rotate(NOW + 260)  # by hand
    assert k3.previous == k2.current and k3.current.created_at == NOW + 260
    assert store.ticket_keys(NOW + 261) is k3


def test_memory_store_with_given_keys_and_bad_rotation() -> None:
    given = TicketKeys(TicketKey(b"n" * 16, b"k" * 32, NOW))
    assert MemoryStore(ticket_keys=given).ticket_keys(NOW + 1) is given
    with pytest.raises(UsageError):
        MemoryStore(rotate_after=0)
    first = MemoryStore().rotate(NOW)  # rotating an empty store makes the first key
    assert first.previous is None


def test_ticket_key_encoding() -> None:
    key = TicketKey.generate(os.urandom, NOW + 0.123)
    assert TicketKey.from_bytes(key.to_bytes()) == key
    assert len(key.to_bytes()) == 56
    with pytest.raises(DecodeError):
        TicketKey.from_bytes(key.to_bytes()[:-1])
    with pytest.raises(UsageError):
        TicketKey(b"short", bytes(32))
    with pytest.raises(UsageError):
        TicketKey(bytes(16), bytes(16))


# -- tickets -----------------------------------------------------------------------------


@pytest.fixture
def keys() -> TicketKeys:
    return TicketKeys(TicketKey.generate(os.urandom, NOW))


def test_seal_open_round_trip(keys: TicketKeys) -> None:
    state = make_state()
    ticket = seal_ticket(keys, state, NONCE)
    assert ticket.startswith(keys.current.name)
    assert SECRET not in ticket  # sealed, not merely encoded
    assert open_ticket(keys, ticket) == OpenedTicket(state, renew=False)


def test_previous_key_opens_and_renews(keys: TicketKeys) -> None:
    state = make_state(version=ProtocolVersion.TLS12,
                       cipher_suite=CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)
    ticket = seal_ticket(keys, state, NONCE)
    once = keys.rotated(TicketKey.generate(os.urandom, NOW + 1))
    assert open_ticket(once, ticket) == OpenedTicket(state, renew=True)
    twice = once.rotated(TicketKey.generate(os.urandom, NOW + 2))
    assert open_ticket(twice, ticket) is None  # two rotations old: full handshake


def test_forged_truncated_and_altered_tickets_are_refused(keys: TicketKeys) -> None:
    ticket = seal_ticket(keys, make_state(client_certificates=()), NONCE)
    assert open_ticket(keys, ticket) is not None
    # another server's key (same layout, unknown name) and one forged under our name
    other = TicketKeys(TicketKey.generate(os.urandom, NOW))
    assert open_ticket(keys, seal_ticket(other, make_state(), NONCE)) is None
    forged = keys.current.name + os.urandom(len(ticket) - 16)
    assert open_ticket(keys, forged) is None
    for cut in range(len(ticket)):
        assert open_ticket(keys, ticket[:cut]) is None, cut
    assert open_ticket(keys, ticket + b"\x00") is None
    for i in range(len(ticket)):
        for bit in (0x01, 0x80):
            altered = bytearray(ticket)
            altered[i] ^= bit
            assert open_ticket(keys, bytes(altered)) is None, (i, bit)
    assert open_ticket(keys, b"") is None
    assert open_ticket(keys, bytes(MIN_TICKET_LEN)) is None


def test_server_session_state_round_trip() -> None:
    for state in (make_state(),
                  make_state(server_name=None, alpn=None, client_certificates=(),
                             client_certificate_verified=False, max_early_data=0,
                             extended_master_secret=False, issued_at=NOW + 0.5)):
        assert ServerSessionState.from_bytes(state.to_bytes()) == state
    with pytest.raises(DecodeError):
        ServerSessionState.from_bytes(b"\x02" + make_state().to_bytes()[1:])  # format 2
    with pytest.raises(DecodeError):
        ServerSessionState.from_bytes(make_state().to_bytes()[:-1])
    with pytest.raises(DecodeError):
        ServerSessionState.from_bytes(make_state().to_bytes() + b"\x00")


@pytest.mark.parametrize("changes", [
    dict(client_certificates=()),  # the direct path
    dict(client_certificates=(), server_name=None, alpn=None, secret=b""),
    dict(client_certificates=(), server_name="é.example", client_certificate_verified=False,
         client_certificate_accepted_by_callback=True, max_early_data=0),
    dict(client_certificates=(), secret=b"s" * 255, server_name="n" * 255, alpn="a" * 255),
    dict(),  # a client chain: the written path
    dict(client_certificates=(), server_certificate_type=CertificateType.RAW_PUBLIC_KEY),
    dict(client_certificates=(), application_settings=(b"ours", b"theirs")),
])
def test_server_session_state_bytes_direct_and_written_agree(changes: dict[str, object]
                                                             ) -> None:
    state = make_state(**changes)
    assert state.to_bytes() == state._to_bytes_written()
    assert ServerSessionState.from_bytes(state.to_bytes()) == state


@pytest.mark.parametrize("changes", [
    dict(client_certificates=()),  # read in place
    dict(client_certificates=(), server_name=None, alpn=None, secret=b""),
    dict(),  # a client chain: the checked reader
    dict(client_certificates=(), server_certificate_type=CertificateType.RAW_PUBLIC_KEY),
    dict(client_certificates=(), application_settings=(b"ours", b"theirs")),
    dict(client_certificates=(), version=ProtocolVersion(0x7F1C)),  # unknown: checked
])
def test_server_session_state_read_in_place_or_checked_alike(changes: dict[str, object]
                                                             ) -> None:
    """``from_bytes`` reads the common state in place and hands anything else to the
    checked reader: the same state, or the same error, for every byte changed, cut or
    added."""
    def outcome(read: Callable[[bytes], ServerSessionState], data: bytes) -> object:
        try:
            return read(data)
        except Exception as exc:  # (the comparison is the test)
            return type(exc), str(exc)

    data = make_state(**changes).to_bytes()
    assert ServerSessionState.from_bytes(data) == make_state(**changes)
    variants = [data[:cut] for cut in range(len(data))] + [data + b"\x00", data + b"\x01"]
    for i in range(len(data)):
        for value in (0, 1, 0xFF, data[i] ^ 0x10):
            variants.append(data[:i] + bytes((value,)) + data[i + 1:])
    for variant in variants:
        assert (outcome(ServerSessionState.from_bytes, variant)
                == outcome(ServerSessionState._from_bytes_checked, variant)), variant


@pytest.mark.parametrize("changes", [
    dict(secret=b"s" * 256), dict(server_name="n" * 256), dict(alpn="a" * 256),
    dict(max_early_data=2**32),
])
def test_server_session_state_bytes_refused_alike(changes: dict[str, object]) -> None:
    state = make_state(client_certificates=(), **changes)
    with pytest.raises(Exception) as written:
        state._to_bytes_written()
    with pytest.raises(written.type, match=str(written.value)[:20]):
        state.to_bytes()


def test_server_session_state_expiry() -> None:
    state = make_state(lifetime=100)
    assert not state.expired(NOW) and not state.expired(NOW + 99)
    assert state.expired(NOW + 100)
    assert not state.expired(NOW - 59) and state.expired(NOW - 61)  # from the future


# -- client sessions ---------------------------------------------------------------------


@pytest.mark.parametrize("session", [
    make_session13(), make_session13(server_name=None, alpn=None, peer_certificates=(),
                                     max_early_data=0, received_at=NOW + 0.25),
    make_session12(), make_session12(ticket=b"", lifetime=0, server_name=None, alpn=None),
], ids=["13", "13-minimal", "12", "12-session-id-only"])
def test_session_pem_round_trip(session: Session13 | Session12) -> None:
    pem = session.to_pem()
    assert pem.startswith("-----BEGIN TLSMITH SESSION-----\n")
    assert pem.endswith("-----END TLSMITH SESSION-----\n")
    assert all(len(line) <= 64 for line in pem.splitlines())
    assert session_from_pem(pem) == session
    assert session_from_pem("some words before\n" + pem + "and after\n") == session


def test_damaged_session_pem_is_a_usage_error() -> None:
    pem = make_session13().to_pem()
    lines = pem.splitlines()
    body = "\n".join(lines[1:-1])
    damaged = [
        "",
        "not a session at all",
        body,  # no BEGIN/END lines
        "\n".join([lines[0], body]),  # no END line
        "\n".join([lines[-1], body, lines[0]]),  # END before BEGIN
        "\n".join([lines[0], body.replace(body[5], "!" if body[5] != "!" else "?", 1),
                   lines[-1]]),  # not base64
        "\n".join([lines[0], lines[1][:-4], lines[-1]]),  # truncated
        "\n".join([lines[0], "AAAA", lines[-1]]),  # format 0
        "\n".join([lines[0], "DgAA", lines[-1]]),  # format 14
        make_session12().to_pem().replace("-----END", "QUFB\n-----END"),  # trailing bytes
    ]
    for text in damaged:
        with pytest.raises(UsageError):
            session_from_pem(text)


def test_secrets_are_absent_from_every_repr() -> None:
    key = TicketKey(b"N" * 16, SECRET, NOW)
    state = make_state()
    objects: list[object] = [
        make_session13(), make_session12(), key, TicketKeys(key, key), state,
        OpenedTicket(state, renew=True), ExternalPsk(b"client-1", SECRET),
    ]
    forms = [repr(SECRET), SECRET.hex(), repr(SECRET + SECRET[:16]),
             (SECRET + SECRET[:16]).hex(), repr(SECRET[:8])[2:-1], SECRET[:8].hex()]
    for obj in objects:
        text = repr(obj)
        assert type(obj).__name__ in text
        for form in forms:
            assert form not in text, (type(obj).__name__, form)
        assert str(obj) == text
    assert "example.test" in repr(make_session13())  # repr still shows the public parts


# -- client session caches ---------------------------------------------------------------


def test_memory_session_cache_uses_tls13_sessions_once() -> None:
    cache = MemorySessionCache()
    assert cache.get("example.test:443", NOW) is None
    first, second = make_session13(ticket=b"1" * 40), make_session13(ticket=b"2" * 40)
    cache.put("example.test:443", first)
    cache.put("example.test:443", second)
    assert cache.get("other.test:443", NOW) is None
    assert cache.get("example.test:443", NOW) == second  # newest first, then gone
    assert cache.get("example.test:443", NOW) == first
    assert cache.get("example.test:443", NOW) is None


def test_memory_session_cache_reuses_tls12_sessions_and_drops_expired() -> None:
    cache = MemorySessionCache(per_server=2)
    s12 = make_session12(lifetime=100)
    cache.put("a:443", s12)
    assert cache.get("a:443", NOW + 1) == s12
    assert cache.get("a:443", NOW + 1) == s12  # TLS 1.2 sessions may be resumed again
    assert cache.get("a:443", NOW + 100) is None  # expired, and dropped
    cache.put("a:443", make_session12(lifetime=100))
    assert cache.get("a:443", NOW + 1) is not None
    for i in range(3):
        cache.put("b:443", make_session13(ticket=b"%d" % i * 40))
    assert cache.get("b:443", NOW) == make_session13(ticket=b"2" * 40)
    assert cache.get("b:443", NOW) == make_session13(ticket=b"1" * 40)
    assert cache.get("b:443", NOW) is None  # per_server=2 kept only the newest two
    cache.put("c:443", make_session13(lifetime=10))
    assert cache.get("c:443", NOW + 10) is None


def test_file_session_cache(tmp_path: Path) -> None:
    directory = tmp_path / "sessions"
    cache = FileSessionCache(directory)
    assert cache.get("example.test:443", NOW) is None  # no directory yet
    session = make_session13(lifetime=100)
    cache.put("example.test:443", session)
    files = list(directory.iterdir())
    assert [f.name for f in files] == ["example.test_443.session.pem"]
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600  # it holds the PSK
    assert cache.get("example.test:443", NOW + 1) == session
    assert FileSessionCache(str(directory)).get("example.test:443", NOW + 1) == session
    assert cache.get("other.test:443", NOW) is None
    assert cache.get("example.test:443", NOW + 100) is None  # expired
    cache.put("example.test:443", make_session12())  # replaced, still 0600
    assert cache.get("example.test:443", NOW) == make_session12()
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    files[0].write_text("damaged")
    assert cache.get("example.test:443", NOW) is None
    cache.put("../../etc/passwd", session)  # no path tricks: stays in the directory
    assert sorted(p.parent for p in directory.iterdir()) == [directory, directory]

"""RedisStore against a real redis-server on the loopback (tests/redis_server.py).

Each test gets its own redis-server; "two servers of a fleet" are two RedisStore
instances (their own clients and connection pools) on it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from helpers import free_port
from redis_server import RedisServer, redis_server
from tlsmith.codec.enums import CipherSuite, ProtocolVersion
from tlsmith.errors import UsageError
from tlsmith.stores import SessionStore, StoreUnavailable
from tlsmith.stores_redis import RedisStore
from tlsmith.tickets import ServerSessionState, TicketKeys, open_ticket, seal_ticket

NOW = 1_700_000_000.0
FAIL_FAST = 1.0  # seconds: the most a call may take when Redis is gone


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with redis_server() as running:
        yield running


@pytest.fixture
def make_store(server: RedisServer) -> Iterator[Callable[..., RedisStore]]:
    stores: list[RedisStore] = []

    def make(**kw: Any) -> RedisStore:
        store = RedisStore.from_url(server.url, **kw)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


def race(stores: list[RedisStore], action: Callable[[RedisStore], object]) -> list[object]:
    """``action(store)`` for each store, in threads released together."""
    barrier = threading.Barrier(len(stores), timeout=10)
    results: list[object] = [None] * len(stores)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = action(stores[i])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
        assert not t.is_alive()
    assert not errors, errors
    return results


def test_fixture_unpacks_and_the_store_is_a_session_store(server: RedisServer) -> None:
    url, port, stop = server
    assert url == f"redis://127.0.0.1:{port}/0" and callable(stop)
    with RedisStore.from_url(url) as redis_store:
        store: SessionStore = redis_store  # mypy: it fits the protocol
        assert repr(store) == f"RedisStore('{url}', prefix='tlsmith:')"


def test_session_id_cache_is_shared(make_store: Callable[..., RedisStore],
                                    server: RedisServer) -> None:
    a, b = make_store(), make_store()
    sid, state = os.urandom(32), b"\x00sealed\xffstate" * 20
    assert b.get(sid, NOW) is None
    a.put(sid, state, 3600, NOW)
    assert b.get(sid, NOW) == state
    assert a.get(sid, NOW) == state
    ttl = redis.Redis(port=server.port).pttl(f"tlsmith:sid:{sid.hex()}")
    assert 3_590_000 < ttl <= 3_600_000  # Redis expires it
    a.put(sid, b"newer", 3600, NOW)
    assert b.get(sid, NOW) == b"newer"
    a.put(b"gone", b"x", 0, NOW)  # no lifetime: not stored
    assert b.get(b"gone", NOW) is None


def test_session_ids_expire(make_store: Callable[..., RedisStore]) -> None:
    a, b = make_store(), make_store()
    a.put(b"sid", b"state", 1, NOW)
    assert b.get(b"sid", NOW) == b"state"
    time.sleep(1.1)
    assert b.get(b"sid", NOW) is None


def test_prefixes_keep_stores_apart(make_store: Callable[..., RedisStore]) -> None:
    a, b = make_store(prefix="fleet-a:"), make_store(prefix="fleet-b:")
    a.put(b"sid", b"state", 60, NOW)
    assert b.get(b"sid", NOW) is None
    assert a.take_once(b"k", 60, NOW) and b.take_once(b"k", 60, NOW)
    assert a.ticket_keys(NOW) != b.ticket_keys(NOW)


def test_take_once_refuses_a_replay_to_another_server(
        make_store: Callable[..., RedisStore]) -> None:
    a, b = make_store(), make_store()
    assert a.take_once(b"binder-1", 10, NOW) is True
    assert b.take_once(b"binder-1", 10, NOW) is False  # the same ClientHello, replayed
    assert a.take_once(b"binder-1", 10, NOW) is False
    assert b.take_once(b"binder-2", 10, NOW) is True
    assert a.take_once(b"short", 0.2, NOW) is True
    time.sleep(0.4)
    assert b.take_once(b"short", 0.2, NOW) is True  # Redis expired the mark
    assert a.take_once(b"tiny", 0, NOW) is True  # no lifetime: still a valid (1 ms) SET PX


def test_take_once_is_atomic_across_servers_and_threads(
        make_store: Callable[..., RedisStore]) -> None:
    a, b = make_store(), make_store()
    stores = [a, b] * 4  # 8 threads, 4 on each server
    for round_ in range(30):
        key = b"race-%d" % round_

        def take(store: RedisStore, key: bytes = key) -> bool:
            return store.take_once(key, 60, NOW)

        results = race(stores, take)
        assert results.count(True) == 1, results


def test_both_servers_see_the_same_ticket_keys(make_store: Callable[..., RedisStore]) -> None:
    a, b = make_store(), make_store()
    keys = a.ticket_keys(NOW)
    assert keys.previous is None and keys.current.created_at == NOW
    assert b.ticket_keys(NOW) == keys
    assert b.ticket_keys(NOW + 5) == keys
    assert a.ticket_keys(NOW + 5) == keys


def test_rotation_by_one_is_seen_by_the_other(make_store: Callable[..., RedisStore]) -> None:
    a, b = make_store(rotate_after=100), make_store(rotate_after=100)
    k0 = a.ticket_keys(NOW)
    assert b.ticket_keys(NOW + 99) == k0
    k1 = a.ticket_keys(NOW + 100)
    assert k1.current != k0.current and k1.previous == k0.current  # previous kept
    assert k1.current.created_at == NOW + 100
    # b's cached ring is due at NOW + 100, so b asks Redis and finds a's ring
    assert b.ticket_keys(NOW + 100) == k1
    assert b.ticket_keys(NOW + 150) == k1
    k2 = b.ticket_keys(NOW + 260)  # now b rotates, once, however late
    assert k2.previous == k1.current
    assert a.ticket_keys(NOW + 260) == k2
    assert a.ticket_keys(NOW + 300) == k2


def test_forced_rotation_and_the_key_cache(make_store: Callable[..., RedisStore]) -> None:
    a = make_store()
    cached = make_store(key_cache_seconds=60)
    uncached = make_store(key_cache_seconds=0)
    k0 = a.ticket_keys(NOW)
    assert cached.ticket_keys(NOW) == uncached.ticket_keys(NOW) == k0
    k1 = a.rotate(NOW + 1)
    assert k1.previous == k0.current
    assert uncached.ticket_keys(NOW + 1) == k1
    assert cached.ticket_keys(NOW + 1) == k0  # served from its cache, no round trip
    assert cached.rotate(NOW + 2).previous == k1.current  # its own rotation refreshes it


def test_concurrent_rotation_lands_on_one_ring(make_store: Callable[..., RedisStore]) -> None:
    stores = [make_store(rotate_after=100) for _ in range(6)]
    first = stores[0].ticket_keys(NOW)
    previous = first
    for round_ in range(1, 11):
        now = NOW + 100 * round_

        def keys(store: RedisStore, now: float = now) -> TicketKeys:
            return store.ticket_keys(now)

        rings = race(stores, keys)
        assert all(ring == rings[0] for ring in rings), rings
        ring = rings[0]
        assert isinstance(ring, TicketKeys)
        assert ring.previous == previous.current and ring.current.created_at == now
        previous = ring


def test_a_ticket_sealed_by_one_server_opens_on_the_other(
        make_store: Callable[..., RedisStore]) -> None:
    a, b = make_store(rotate_after=100), make_store(rotate_after=100)
    state = ServerSessionState(ProtocolVersion.TLS13, CipherSuite.TLS_AES_128_GCM_SHA256,
                               os.urandom(32), NOW, 7200, ticket_age_add=7,
                               max_early_data=1024)
    ticket = seal_ticket(a.ticket_keys(NOW), state, os.urandom(12))
    opened = open_ticket(b.ticket_keys(NOW + 1), ticket)
    assert opened is not None and opened.state == state and not opened.renew
    a.ticket_keys(NOW + 100)  # a rotates: b opens the ticket and renews it
    opened = open_ticket(b.ticket_keys(NOW + 100), ticket)
    assert opened is not None and opened.state == state and opened.renew
    b.ticket_keys(NOW + 200)  # two rotations: refused everywhere
    assert open_ticket(a.ticket_keys(NOW + 200), ticket) is None


def test_a_damaged_ring_is_replaced(make_store: Callable[..., RedisStore],
                                    server: RedisServer) -> None:
    a = make_store(key_cache_seconds=0)
    redis.Redis(port=server.port).set("tlsmith:ticket-keys", b"not a key ring")
    keys = a.ticket_keys(NOW)
    assert keys.previous is None and keys.current.created_at == NOW
    assert a.ticket_keys(NOW + 1) == keys


def assert_unavailable(call: Callable[[], object]) -> StoreUnavailable:
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        call()
    elapsed = time.monotonic() - started
    assert elapsed < FAIL_FAST, f"took {elapsed:.2f} s to give up"
    return caught.value


def every_method(store: RedisStore) -> list[Callable[[], object]]:
    return [lambda: store.get(b"sid", NOW), lambda: store.put(b"sid", b"s", 60, NOW),
            lambda: store.take_once(b"k", 60, NOW), lambda: store.ticket_keys(NOW),
            lambda: store.rotate(NOW)]


def test_redis_going_away_and_coming_back(make_store: Callable[..., RedisStore],
                                          server: RedisServer,
                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tlsmith.stores")
    a, b = make_store(), make_store(key_cache_seconds=60)
    assert a.take_once(b"before", 60, NOW)
    a.put(b"sid", b"state", 60, NOW)
    ring = b.ticket_keys(NOW)  # b's ring is cached for a minute...
    server.stop()
    # ...and b, not knowing yet that Redis is gone, may serve it from its cache...
    assert b.ticket_keys(NOW) == ring
    for store in (a, b):
        for call in every_method(store):
            error = assert_unavailable(call)
            assert server.url in str(error) and "unavailable" in str(error)
    assert_unavailable(lambda: b.ticket_keys(NOW))  # ...but not once Redis has failed
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings  # one per store: rate-limited
    assert all(r.name == "tlsmith.stores" and server.url in r.getMessage()
               for r in warnings)
    assert not [r for r in caplog.records if r.levelno == logging.INFO]

    server.start()  # same port, but empty: no persistence in these tests
    caplog.clear()
    assert a.get(b"sid", NOW) is None
    assert a.take_once(b"before", 60, NOW) is True
    assert b.take_once(b"before", 60, NOW) is False
    a.put(b"sid", b"again", 60, NOW)
    assert b.get(b"sid", NOW) == b"again"
    keys = b.ticket_keys(NOW)
    assert a.ticket_keys(NOW) == keys
    recovered = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(recovered) == 2 and "answers again" in recovered[0].getMessage()
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


def test_warnings_are_rate_limited(make_store: Callable[..., RedisStore],
                                   server: RedisServer,
                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tlsmith.stores")
    a = make_store()
    server.stop()
    for _ in range(50):
        assert_unavailable(lambda: a.get(b"sid", NOW))
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    a._last_warning -= 5.0  # five seconds later (without waiting for them)
    assert_unavailable(lambda: a.get(b"sid", NOW))
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2


def test_a_frozen_redis_times_out_fast(make_store: Callable[..., RedisStore],
                                       server: RedisServer) -> None:
    a = make_store(timeout=0.25, key_cache_seconds=0)
    a.ticket_keys(NOW)
    server.pause()  # accepts connections, answers nothing
    try:
        for call in every_method(a):
            assert_unavailable(call)
        fresh = make_store(timeout=0.25)  # a new connection to the frozen server, too
        assert_unavailable(lambda: fresh.take_once(b"k", 60, NOW))
    finally:
        server.resume()
    assert a.take_once(b"after", 60, NOW) is True


def test_no_redis_at_all_fails_fast() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    with RedisStore.from_url(url) as store:
        for call in every_method(store):
            assert url in str(assert_unavailable(call))


def test_password_stays_out_of_messages(server: RedisServer,
                                        caplog: pytest.LogCaptureFixture) -> None:
    url = f"redis://tlsmith:hunter2@127.0.0.1:{server.port}/0"
    with RedisStore.from_url(url) as store:
        error = assert_unavailable(lambda: store.get(b"sid", NOW))  # no such user
    assert "hunter2" not in str(error) + repr(store) + caplog.text
    assert f"redis://127.0.0.1:{server.port}/0" in str(error)


def test_a_decoding_client_is_refused() -> None:
    with pytest.raises(UsageError):
        RedisStore(redis.Redis(decode_responses=True))
    with pytest.raises(UsageError):
        RedisStore(redis.Redis(), rotate_after=0)


def test_a_given_client_is_named_by_its_address(server: RedisServer) -> None:
    client = redis.Redis(port=server.port, db=3, socket_timeout=0.25)
    store = RedisStore(client, prefix="custom:")
    assert store.name == f"redis://localhost:{server.port}/3"
    store.put(b"sid", b"state", 60, NOW)
    assert client.get("custom:sid:" + b"sid".hex()) == b"state"
    store.close()

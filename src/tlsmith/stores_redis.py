"""A ``SessionStore`` on Redis, shared by a fleet of tlsmith servers.

Design decision (issue 7, see ``tlsmith.tickets``): tickets are *stateless* — each one is
the session state sealed under a rotating ticket key, so resuming from a ticket never
looks a session up. What a fleet must share is small, and this store keeps it in Redis:

* the TLS 1.2 session-ID cache (``get``/``put``: GET, and SET with a PX expiry);
* single-use marks for 0-RTT anti-replay (``take_once``: ``SET key 1 NX PX ms``, one
  atomic command, so a ClientHello replayed to *another* server of the fleet is refused);
* the ticket-key ring (``ticket_keys``: current + previous key in one Redis value,
  created and rotated by a Lua script, so servers rotating at the same moment all land on
  the one ring the first of them wrote — the others read it back in the same step).

``SessionStore`` is synchronous on purpose, and so no lookup may block a handshake for
long: the client made by ``RedisStore.from_url`` has short socket and connect timeouts
(0.25 s by default) and no retries. When Redis cannot answer — down, unreachable, slow,
or erroring — every method raises ``StoreUnavailable``, and the handshake code treats
that as "no session" (full handshake) or "not fresh" (early data rejected): a Redis
outage costs full handshakes, never an accepted replay. The ring is cached locally for
``key_cache_seconds`` to save a round trip per handshake, but the cache is dropped at
the first failure, so a store that has seen Redis fail serves no keys until Redis
answers again.

asyncio users, who drive the sans-IO core from a coroutine, call the store inline from
the event loop: they pay at most one short round trip (loopback or LAN) per resumption
attempt or 0-RTT check, and a dead Redis costs at most about ``timeout`` per call (a
refused connect on the loopback far less) — not worth a thread hop.

Redis expires session IDs and marks by its own clock (the ``now`` arguments of ``get``,
``put`` and ``take_once`` are ignored); key rotation follows the callers' ``now``.
Keep the ring's Redis durable (or accept that a restarted, empty Redis means a new ring:
every outstanding ticket then gets a full handshake).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError as exc:  # an optional dependency: say how to get it
    raise ImportError("tlsmith.stores_redis needs redis-py: pip install 'tlsmith[redis]'"
                      ) from exc

from tlsmith.errors import DecodeError, UsageError
from tlsmith.stores import StoreUnavailable
from tlsmith.tickets import TicketKey, TicketKeys

log = logging.getLogger("tlsmith.stores")

_KEY_LEN = len(TicketKey(bytes(16), bytes(32)).to_bytes())  # name | key | created_at ms
_WARN_EVERY = 5.0  # seconds between two "Redis is unavailable" warnings

# KEYS[1]: the ring; ARGV: a fresh candidate key, now (ms), rotate_after (ms), force (0/1).
# Returns the ring in force: current key (56 bytes), then the previous one if any.
# A ring that is not one or two whole keys (damaged) is replaced, as if absent.
_RING_SCRIPT = """
local ring = redis.call('GET', KEYS[1])
local n = tonumber(ARGV[5])
if ring and (#ring == n or #ring == 2 * n) then
  if ARGV[4] ~= '1' then
    local created = 0
    for i = n - 7, n do created = created * 256 + string.byte(ring, i) end
    if tonumber(ARGV[2]) < created + tonumber(ARGV[3]) then
      return ring
    end
  end
  ring = ARGV[1] .. string.sub(ring, 1, n)
else
  ring = ARGV[1]
end
redis.call('SET', KEYS[1], ring)
return ring
"""

_REDIS_ERRORS = (redis.RedisError, OSError)  # OSError covers socket and TimeoutError


def _describe(client: redis.Redis) -> str:
    """Where ``client`` points, for messages (never its password)."""
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix://{kwargs['path']}"
    return f"redis://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/" \
           f"{kwargs.get('db', 0)}"


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    netloc = parts.hostname or ""
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


class RedisStore:
    """The three things a fleet of servers shares, kept in one Redis (see the module
    docstring). Thread-safe: redis-py's client pools its connections."""

    def __init__(self, client: redis.Redis, *, prefix: str = "tlsmith:",
                 rotate_after: float = 12 * 3600,
                 random: Callable[[int], bytes] = os.urandom,
                 key_cache_seconds: float = 1.0, name: str | None = None) -> None:
        if rotate_after <= 0:
            raise UsageError("rotate_after must be positive")
        if key_cache_seconds < 0:
            raise UsageError("key_cache_seconds must not be negative")
        if client.connection_pool.connection_kwargs.get("decode_responses"):
            # sessions and keys are bytes: a decoding client would mangle them
            raise UsageError("RedisStore needs a client with decode_responses=False")
        self.client = client
        self.prefix = prefix
        self.rotate_after = rotate_after
        self.key_cache_seconds = key_cache_seconds
        self.name = name or _describe(client)
        self._random = random
        self._ring_key = f"{prefix}ticket-keys"
        self._ring_script = client.register_script(_RING_SCRIPT)
        self._lock = threading.Lock()
        self._cached: tuple[float, TicketKeys] | None = None  # (monotonic, ring)
        self._failing = False
        self._last_warning = -math.inf

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 0.25, **kw: Any) -> RedisStore:
        """A store on ``redis://host:port/db`` whose every call gives up after about
        ``timeout`` seconds (socket and connect timeouts, no retries): a handshake is
        never held up for long by a dead or slow Redis."""
        client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),  # a retry would double the stall, not help
            health_check_interval=0, decode_responses=False)
        kw.setdefault("name", _redact(url))
        return cls(client, **kw)

    def close(self) -> None:
        """Close the client's connections."""
        self.client.close()

    def __enter__(self) -> RedisStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RedisStore({self.name!r}, prefix={self.prefix!r})"

    # -- the SessionStore protocol -------------------------------------------------------

    def get(self, session_id: bytes, now: float) -> bytes | None:
        value = self._call("get", lambda: self.client.get(self._sid_key(session_id)))
        if value is None:
            return None
        return bytes(cast(bytes, value))

    def put(self, session_id: bytes, state: bytes, lifetime: int, now: float) -> None:
        if lifetime <= 0:
            return  # expired as it is made (MemoryStore would never return it either)
        self._call("put", lambda: self.client.set(
            self._sid_key(session_id), state, px=int(lifetime * 1000)))

    def take_once(self, key: bytes, lifetime: float, now: float) -> bool:
        ms = max(1, math.ceil(lifetime * 1000))  # PX must be positive
        # NX: only the first SET of the key succeeds, atomically across the fleet
        done = self._call("take_once", lambda: self.client.set(
            f"{self.prefix}once:{key.hex()}", b"1", nx=True, px=ms))
        return bool(done)

    def ticket_keys(self, now: float) -> TicketKeys:
        with self._lock:
            cached = self._cached
        if cached is not None:
            fetched, keys = cached
            if time.monotonic() - fetched < self.key_cache_seconds \
                    and now < keys.current.created_at + self.rotate_after:
                return keys
        return self._ring(now, force=False)

    def rotate(self, now: float | None = None) -> TicketKeys:
        """Start a new current key for the whole fleet now (the old one becomes the
        previous key); other stores see it within their ``key_cache_seconds``."""
        return self._ring(time.time() if now is None else now, force=True)

    # -- internals -----------------------------------------------------------------------

    def _sid_key(self, session_id: bytes) -> str:
        return f"{self.prefix}sid:{session_id.hex()}"

    def _ring(self, now: float, *, force: bool) -> TicketKeys:
        candidate = TicketKey.generate(self._random, now).to_bytes()
        raw = self._call("ticket_keys", lambda: self._ring_script(
            keys=[self._ring_key],
            args=[candidate, int(now * 1000), int(self.rotate_after * 1000),
                  int(force), _KEY_LEN]))
        try:
            ring = bytes(cast(bytes, raw))
            previous = TicketKey.from_bytes(ring[_KEY_LEN:]) if len(ring) > _KEY_LEN \
                else None
            keys = TicketKeys(TicketKey.from_bytes(ring[:_KEY_LEN]), previous)
        except (DecodeError, UsageError, TypeError) as exc:
            raise StoreUnavailable(
                f"ticket_keys: {self.name} returned a damaged key ring: {exc}") from exc
        with self._lock:
            self._cached = (time.monotonic(), keys)
        return keys

    def _call(self, operation: str, command: Callable[[], Any]) -> Any:
        """Run one Redis command: its answer, or StoreUnavailable."""
        try:
            result = command()
        except _REDIS_ERRORS as exc:
            self._failed(operation, exc)
            raise StoreUnavailable(
                f"{operation}: Redis at {self.name} is unavailable: "
                f"{type(exc).__name__}: {exc}") from exc
        if self._failing:  # unlocked peek: the common, healthy path takes no lock
            with self._lock:
                recovered, self._failing = self._failing, False
            if recovered:
                log.info("Redis at %s answers again (session store)", self.name)
        return result

    def _failed(self, operation: str, exc: BaseException) -> None:
        with self._lock:
            self._cached = None  # never serve keys from a Redis we know has failed
            self._failing = True
            clock = time.monotonic()
            warn = clock - self._last_warning >= _WARN_EVERY
            if warn:
                self._last_warning = clock
        if warn:
            log.warning("Redis at %s is unavailable (%s: %s: %s): full handshakes, no "
                        "early data until it answers", self.name, operation,
                        type(exc).__name__, exc)


__all__ = ["RedisStore"]

"""Where a server keeps what outlives one connection: the TLS 1.2 session-ID cache, the
single-use marks that stop 0-RTT replays, and the ticket keys (see ``tlsmith.tickets`` for
the design decision).

``SessionStore`` is synchronous and small on purpose: a handshake state calls it at most
a few times, never waits on it for long, and treats ``StoreUnavailable`` as "no session"
(full handshake) or "not fresh" (early data rejected) — never as success.
``MemoryStore`` is the default, per process; ``tlsmith.stores_redis.RedisStore`` shares
all three across a fleet of servers. Clients keep their sessions in a
``ClientSessionCache`` (memory, or a directory of files).
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from tlsmith.errors import TLSError, UsageError
from tlsmith.session import Session, session_from_pem
from tlsmith.tickets import TicketKey, TicketKeys


class StoreUnavailable(TLSError):
    """The shared store could not answer (e.g. Redis is down): resume nothing, accept
    no early data, and carry on with a full handshake."""


class SessionStore(Protocol):
    def get(self, session_id: bytes, now: float) -> bytes | None:
        """The sealed state cached under a TLS 1.2 session ID, or None."""
        ...

    def put(self, session_id: bytes, state: bytes, lifetime: int, now: float) -> None:
        """Cache a TLS 1.2 session for ``lifetime`` seconds."""
        ...

    def take_once(self, key: bytes, lifetime: float, now: float) -> bool:
        """Atomically mark ``key`` as used: True the first time within ``lifetime``
        seconds, False on every later call (a replay)."""
        ...

    def ticket_keys(self, now: float) -> TicketKeys:
        """The ticket keys in force at ``now`` (rotated by the store)."""
        ...


class MemoryStore:
    """A bounded, thread-safe, per-process store (the default)."""

    def __init__(self, *, max_sessions: int = 10_000, rotate_after: float = 12 * 3600,
                 random: Callable[[int], bytes] = os.urandom,
                 ticket_keys: TicketKeys | None = None) -> None:
        if rotate_after <= 0:
            raise UsageError("rotate_after must be positive")
        self._lock = threading.Lock()
        self._sessions: OrderedDict[bytes, tuple[float, bytes]] = OrderedDict()
        self._used: OrderedDict[bytes, float] = OrderedDict()
        self._max = max_sessions
        self._random = random
        self.rotate_after = rotate_after
        self._keys = ticket_keys

    def get(self, session_id: bytes, now: float) -> bytes | None:
        with self._lock:
            item = self._sessions.get(session_id)
            if item is None:
                return None
            expires, state = item
            if now >= expires:
                del self._sessions[session_id]
                return None
            return state

    def put(self, session_id: bytes, state: bytes, lifetime: int, now: float) -> None:
        with self._lock:
            self._sessions[session_id] = (now + lifetime, state)
            self._sessions.move_to_end(session_id)
            while len(self._sessions) > self._max:
                self._sessions.popitem(last=False)

    def take_once(self, key: bytes, lifetime: float, now: float) -> bool:
        with self._lock:
            while self._used:  # drop expired marks, oldest first
                oldest, expires = next(iter(self._used.items()))
                if expires > now and len(self._used) <= self._max:
                    break
                del self._used[oldest]
            if key in self._used:
                return False
            self._used[key] = now + lifetime
            return True

    def ticket_keys(self, now: float) -> TicketKeys:
        # Keys in force need no lock (one attribute read, atomic): every handshake asks
        # for them; only a first use or a rotation writes.
        keys = self._keys
        if keys is not None and now < keys.current.created_at + self.rotate_after:
            return keys
        with self._lock:
            keys = self._keys
            if keys is None:
                keys = TicketKeys(TicketKey.generate(self._random, now))
            elif now >= keys.current.created_at + self.rotate_after:
                keys = keys.rotated(TicketKey.generate(self._random, now))
            self._keys = keys
            return keys

    def rotate(self, now: float | None = None) -> TicketKeys:
        """Start a new current key now (the old one becomes the previous key)."""
        when = time.time() if now is None else now
        with self._lock:
            new = TicketKey.generate(self._random, when)
            self._keys = TicketKeys(new) if self._keys is None else self._keys.rotated(new)
            return self._keys


# -- the client side ---------------------------------------------------------------------


class ClientSessionCache(Protocol):
    def get(self, server: str, now: float) -> Session | None:
        """The freshest usable session for ``server`` (host:port), or None."""
        ...

    def put(self, server: str, session: Session) -> None: ...


class MemorySessionCache:
    """Sessions by server, newest last; a TLS 1.3 ticket is used once (RFC 8446 §C.4)."""

    def __init__(self, per_server: int = 4) -> None:
        self._lock = threading.Lock()
        self._by_server: dict[str, list[Session]] = {}
        self._per_server = per_server

    def get(self, server: str, now: float) -> Session | None:
        with self._lock:
            sessions = self._by_server.get(server, [])
            sessions[:] = [s for s in sessions if not s.expired(now)]
            if not sessions:
                return None
            from tlsmith.session import Session13

            newest = sessions[-1]
            if isinstance(newest, Session13):
                sessions.pop()  # single use: don't let a tracker link two connections
            return newest

    def put(self, server: str, session: Session) -> None:
        with self._lock:
            sessions = self._by_server.setdefault(server, [])
            sessions.append(session)
            del sessions[:-self._per_server]


class FileSessionCache:
    """One PEM file per server in a directory (mode 0600: the files hold secrets)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def _path(self, server: str) -> Path:
        safe = "".join(c if c.isalnum() or c in ".-_" else "_" for c in server)
        return self.directory / f"{safe}.session.pem"

    def get(self, server: str, now: float) -> Session | None:
        path = self._path(server)
        try:
            session = session_from_pem(path.read_text())
        except (OSError, UsageError):
            return None
        return None if session.expired(now) else session

    def put(self, server: str, session: Session) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(server)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(session.to_pem())


__all__ = ["ClientSessionCache", "FileSessionCache", "MemorySessionCache", "MemoryStore",
           "SessionStore", "StoreUnavailable"]

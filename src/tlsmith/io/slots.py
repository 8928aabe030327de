"""TLSServer's limits on connections served at once and handshakes under way."""

from __future__ import annotations

import threading


class Slots:
    """Free connection and handshake slots (None: that kind is unbounded). The accept
    loop -- the only thread that waits for slots -- takes one of each per connection;
    the threads serving connections give them back. One lock and two counters instead
    of two semaphores: a connection's slots cost one critical section to take and at
    most two to give back, and waking the accept loop only when it waits."""

    __slots__ = ("_cond", "_lock", "_waiting", "connections", "handshakes")

    def __init__(self, connections: int | None, handshakes: int | None) -> None:
        # (Taken as the plain lock: a Condition's own __enter__ is Python code.)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._waiting = 0
        self.connections = connections
        self.handshakes = handshakes

    def _free(self) -> bool:
        return (self.connections is None or self.connections > 0) and (
            self.handshakes is None or self.handshakes > 0)

    def take(self, timeout: float) -> bool:
        """A connection slot and a handshake slot, waiting at most ``timeout`` seconds
        for both to be free; False if they were not."""
        with self._lock:
            if not self._free():
                self._waiting += 1
                try:
                    if not self._cond.wait_for(self._free, timeout):
                        return False
                finally:
                    self._waiting -= 1
            if self.connections is not None:
                self.connections -= 1
            if self.handshakes is not None:
                self.handshakes -= 1
            return True

    def give_back(self, *, connection: bool = True, handshake: bool = True) -> None:
        with self._lock:
            if connection and self.connections is not None:
                self.connections += 1
            if handshake and self.handshakes is not None:
                self.handshakes += 1
            if self._waiting:
                self._cond.notify()

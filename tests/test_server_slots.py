"""TLSServer's Slots: connection and handshake slots taken together by the accept loop,
given back by the serving threads."""

from __future__ import annotations

import threading
import time

from tlsmith.io.slots import Slots


def test_takes_both_and_gives_each_back() -> None:
    slots = Slots(2, 1)
    assert slots.take(0.01)
    assert (slots.connections, slots.handshakes) == (1, 0)
    assert not slots.take(0.05)  # no handshake slot free: waits, then gives up
    assert (slots.connections, slots.handshakes) == (1, 0)  # (nothing half-taken)
    slots.give_back(connection=False)  # the handshake ended
    assert slots.take(0.01)
    assert (slots.connections, slots.handshakes) == (0, 0)
    slots.give_back(connection=False)
    assert not slots.take(0.05)  # no connection slot free
    slots.give_back(handshake=False)  # a connection ended after its handshake
    slots.give_back()  # a connection cut in its handshake
    assert (slots.connections, slots.handshakes) == (2, 2)


def test_unbounded() -> None:
    slots = Slots(None, None)
    for _ in range(1000):
        assert slots.take(0)
    assert (slots.connections, slots.handshakes) == (None, None)
    slots.give_back()
    slots = Slots(None, 1)
    assert slots.take(0) and not slots.take(0)


def test_a_waiting_take_wakes_when_a_slot_comes_back() -> None:
    slots = Slots(1, None)
    assert slots.take(0)
    timer = threading.Timer(0.2, slots.give_back)
    timer.start()
    start = time.monotonic()
    try:
        assert slots.take(10)
    finally:
        timer.cancel()
    assert time.monotonic() - start < 5
    assert slots.connections == 0

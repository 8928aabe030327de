"""The handshake: one class per state, client and server, TLS 1.2 and TLS 1.3.

``start(io)`` gives the connection its first state; from there each state returns the
next. The version-neutral entry states live in ``client.py`` and ``server.py``; they
hand over to ``client13``/``client12`` and ``server13``/``server12``.
"""

from __future__ import annotations

from typing import Any

from tlsmith.config import ClientConfig
from tlsmith.handshake.base import ClientIO, ServerIO, State


def start(io: ClientIO | ServerIO) -> State[Any]:
    """The first state: a client sends its ClientHello now; a server waits for one."""
    if isinstance(io.config, ClientConfig):
        from tlsmith.handshake.client import begin

        return begin(io)
    from tlsmith.handshake.server import ExpectClientHello

    return ExpectClientHello()

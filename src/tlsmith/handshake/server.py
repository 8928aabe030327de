"""The version-neutral start of the server handshake: read the ClientHello once into an
``Offered`` view, choose the version (RFC 8446 §4.2.1, RFC 5246 §E.1, RFC 7507), and hand
over to ``server13`` or ``server12``."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TypeVar

from tlsmith.codec.enums import HandshakeType, ProtocolVersion
from tlsmith.codec.messages import ClientHello
from tlsmith.codec.messages12 import MessageBase
from tlsmith.handshake.base import ServerIO, State
from tlsmith.handshake.negotiate import choose_version, offer, with_callback_certificates

_M = TypeVar("_M", bound=MessageBase)

# Messages whose bytes are the same on every handshake that uses one credential (the
# Certificate message of a CertifiedKey, with a given OCSP staple): built and serialized
# once. Keyed by id() of the owner, which is kept alongside so the id cannot be reused
# while listed; messages are frozen, so one object can be sent (and traced) many times.
_MESSAGES: dict[tuple[int, Hashable], tuple[object, MessageBase, bytes]] = {}
_MESSAGES_MAX = 256


def cached_message(owner: object, variant: Hashable, build: Callable[[], _M]
                   ) -> tuple[_M, bytes]:
    """``build()`` and its serialization, made once per (``owner``, ``variant``):
    ``owner`` is an immutable configuration object the message is made from alone."""
    key = (id(owner), variant)
    hit = _MESSAGES.get(key)
    if hit is not None and hit[0] is owner:
        return hit[1], hit[2]  # type: ignore[return-value]
    msg = build()
    raw = msg.serialize()
    if len(_MESSAGES) >= _MESSAGES_MAX:
        _MESSAGES.clear()
    _MESSAGES[key] = (owner, msg, raw)
    return msg, raw


class ExpectClientHello(State[ServerIO]):
    expects = frozenset({HandshakeType.CLIENT_HELLO})

    def handle(self, io: ServerIO, msg_type: HandshakeType, body: memoryview,
               raw: bytes) -> State[ServerIO]:
        from tlsmith.handshake import server12, server13

        ch = ClientHello.parse_body(body)
        io.received(ch, raw)
        offered = offer(ch)
        version = choose_version(io.config, offered)
        if io.observed:  # (the sentence costs more than the rest of this function)
            io.note(f"the client offers {', '.join(v.label for v in offered.versions)}; "
                    f"chose {version.label}")
        offered = with_callback_certificates(io.config, offered, version)
        if version == ProtocolVersion.TLS13:
            return server13.start(io, offered, raw)
        return server12.start(io, offered, raw)

"""The version-neutral start of the server handshake: read the ClientHello once into an
``Offered`` view, choose the version (RFC 8446 §4.2.1, RFC 5246 §E.1, RFC 7507), and hand
over to ``server13`` or ``server12``."""

from __future__ import annotations

from tlsmith.codec.enums import HandshakeType, ProtocolVersion
from tlsmith.codec.messages import ClientHello
from tlsmith.handshake.base import ServerIO, State
from tlsmith.handshake.negotiate import choose_version, offer, with_callback_certificates


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

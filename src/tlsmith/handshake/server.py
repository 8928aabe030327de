"""The version-neutral start of the server handshake: read the ClientHello once into an
``Offered`` view, choose the version (RFC 8446 §4.2.1, RFC 5246 §E.1, RFC 7507), and hand
over to ``server13`` or ``server12``."""

from __future__ import annotations

import struct
from collections.abc import Callable, Hashable
from operator import attrgetter
from typing import TypeVar

from tlsmith.codec.enums import ExtensionType, HandshakeType, ProtocolVersion
from tlsmith.codec.extensions import KeyShareClientHello, SupportedGroups
from tlsmith.codec.messages import ClientHello
from tlsmith.codec.messages12 import MessageBase
from tlsmith.config import Limits
from tlsmith.errors import IllegalParameter
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


# -- Limits.max_client_hello_*: the ClientHello's lists ------------------------------------
# A ClientHello of at most this many bytes parses in about a millisecond at worst (a
# kilobyte of empty unknown extensions), so its lists are bounded on the parsed hello,
# without a second walk over its bytes (``read_client_hello``). A bigger one -- or one
# after the handshake, a refused renegotiation -- is bounded on its raw bytes by the
# connection before it is parsed: parsing 10,000 extensions alone costs a third of a
# second.
CHECK_AFTER_PARSING_MAX = 1024

_U16_PAIR = struct.Struct(">HH").unpack_from
_U16 = struct.Struct(">H").unpack_from
_EXT_SUPPORTED_GROUPS = int(ExtensionType.SUPPORTED_GROUPS)
_EXT_KEY_SHARE = int(ExtensionType.KEY_SHARE)
_COUNTED = frozenset({_EXT_SUPPORTED_GROUPS, _EXT_KEY_SHARE})
_TYPE_OF = attrgetter("extension_type")


def _over(what: str, n: int, name: str, limit: int) -> IllegalParameter:
    # A list longer than we accept: illegal_parameter (RFC 8446 §6.2), as for the
    # framing's size caps; the message itself may be well formed.
    return IllegalParameter(f"a ClientHello with {n} {what} (limit Limits.{name}={limit})")


def client_hello_lists_error(body: memoryview, limits: Limits) -> IllegalParameter | None:
    """The error for the first of a ClientHello body's lists that is longer than
    ``limits`` allows (cipher suites, then supported groups and key shares in extension
    order, then extensions), read from the raw bytes without parsing (RFC 8446 §4.1.2
    layout), or None. Stops quietly where the body is malformed (the codec answers)."""
    n = len(body)
    pos = 2 + 32  # legacy_version, random
    if pos >= n:
        return None
    pos += 1 + body[pos]  # legacy_session_id
    if pos + 2 > n:
        return None
    size = _U16(body, pos)[0]
    if size // 2 > limits.max_client_hello_cipher_suites:
        return _over("cipher suites", size // 2, "max_client_hello_cipher_suites",
                     limits.max_client_hello_cipher_suites)
    pos += 2 + size
    count = 0
    if pos < n:
        pos += 1 + body[pos]  # legacy_compression_methods
    if pos + 2 <= n:
        end = min(n, pos + 2 + _U16(body, pos)[0])
        pos += 2
        last = end - 4  # the last offset where an extension header fits
        # (Every read below lies within ``end`` <= n; struct reads two fields per call.)
        while pos <= last:
            ext_type, size = _U16_PAIR(body, pos)
            count += 1
            if ext_type in _COUNTED and pos + 6 <= end:
                if ext_type == _EXT_SUPPORTED_GROUPS:
                    groups = _U16(body, pos + 4)[0] // 2
                    if groups > limits.max_client_hello_groups:
                        return _over("supported groups", groups, "max_client_hello_groups",
                                     limits.max_client_hello_groups)
                else:
                    shares, at = 0, pos + 6
                    stop = min(end, at + _U16(body, pos + 4)[0])
                    while at + 4 <= stop:  # KeyShareEntry: group, key_exchange<1..2^16-1>
                        shares += 1
                        at += 4 + _U16(body, at + 2)[0]
                    if shares > limits.max_client_hello_key_shares:
                        return _over("key shares", shares, "max_client_hello_key_shares",
                                     limits.max_client_hello_key_shares)
            pos += 4 + size
    if count > limits.max_client_hello_extensions:
        return _over("extensions", count, "max_client_hello_extensions",
                     limits.max_client_hello_extensions)
    return None


def _lists_within(ch: ClientHello, limits: Limits) -> bool:
    """Whether a parsed hello's lists are within ``limits``: the raw walk's counts, as
    the codec read them all (False: let the raw walk say which list is over)."""
    exts = ch.extensions
    if (len(ch.cipher_suites) > limits.max_client_hello_cipher_suites
            or len(exts) > limits.max_client_hello_extensions):
        return False
    types = list(map(_TYPE_OF, exts))
    if _EXT_SUPPORTED_GROUPS in types:
        groups = exts[types.index(_EXT_SUPPORTED_GROUPS)]
        if (not isinstance(groups, SupportedGroups)
                or len(groups.named_group_list) > limits.max_client_hello_groups):
            return False
    if _EXT_KEY_SHARE in types:
        shares = exts[types.index(_EXT_KEY_SHARE)]
        if (not isinstance(shares, KeyShareClientHello)
                or len(shares.client_shares) > limits.max_client_hello_key_shares):
            return False
    return True


def read_client_hello(io: ServerIO, body: memoryview) -> ClientHello:
    """The ClientHello in ``body``, its lists bounded by ``Limits.max_client_hello_*``
    with the raw check's error, which comes before any other error of the hello; one
    over CHECK_AFTER_PARSING_MAX bytes was checked by the connection before parsing."""
    if len(body) > CHECK_AFTER_PARSING_MAX:
        return ClientHello.parse_body(body)
    limits = io.config.limits
    ch: ClientHello | None
    try:
        ch = ClientHello.parse_body(body)
    except Exception:
        if client_hello_lists_error(body, limits) is None:
            raise
        ch = None  # (raised below, outside this handler, as the raw check would)
    if ch is None or not _lists_within(ch, limits):
        err = client_hello_lists_error(body, limits)
        if err is not None:
            raise err
        assert ch is not None  # (a failed parse got here only with a list too long)
    return ch


class ExpectClientHello(State[ServerIO]):
    expects = frozenset({HandshakeType.CLIENT_HELLO})

    def handle(self, io: ServerIO, msg_type: HandshakeType, body: memoryview,
               raw: bytes) -> State[ServerIO]:
        ch = read_client_hello(io, body)
        io.received(ch, raw)
        offered = offer(ch)
        version = choose_version(io.config, offered)
        if io.observed:  # (the sentence costs more than the rest of this function)
            io.note(f"the client offers {', '.join(v.label for v in offered.versions)}; "
                    f"chose {version.label}")
        offered = with_callback_certificates(io.config, offered, version)
        # (Imported here: they import this module. A module, not the package, so the
        # import is a lookup in sys.modules, without importlib's Python fromlist code.)
        if version == ProtocolVersion.TLS13:
            from tlsmith.handshake.server13 import start as start13

            return start13(io, offered, raw)
        from tlsmith.handshake.server12 import start as start12

        return start12(io, offered, raw)

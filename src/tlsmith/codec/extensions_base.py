"""Shared pieces of the extension codec: contexts, the struct base class, list helpers.

Kept apart from ``extensions.py`` so the per-family extension modules can import them
without an import cycle. Everything public here is re-exported by ``extensions.py``.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar, cast

from tlsmith.codec.buffer import Reader, Writer
from tlsmith.codec.enums import ExtensionType, OpenEnum
from tlsmith.errors import DecodeError

E = TypeVar("E", bound=OpenEnum)


class ExtensionContext(enum.Enum):
    """The message an extension block belongs to; it selects the body form (RFC 8446 §4.2).

    A TLS 1.2 ServerHello uses ``SERVER_HELLO`` too.
    """

    CLIENT_HELLO = "client_hello"
    SERVER_HELLO = "server_hello"
    HELLO_RETRY_REQUEST = "hello_retry_request"
    ENCRYPTED_EXTENSIONS = "encrypted_extensions"
    CERTIFICATE = "certificate"  # a CertificateEntry's extensions
    CERTIFICATE_REQUEST = "certificate_request"
    NEW_SESSION_TICKET = "new_session_ticket"

    # Members are singletons compared by identity: hash them the same way, in C (Enum's
    # own __hash__ runs in Python, and contexts key dicts and sets on the hot path).
    __hash__ = object.__hash__


SERVER_CONTEXTS = frozenset(
    {ExtensionContext.SERVER_HELLO, ExtensionContext.ENCRYPTED_EXTENSIONS}
)


class UndefinedForm(DecodeError):
    """The extension's type is known, but the body uses a form we have no definition for
    (e.g. a server_name entry of an unregistered name_type). ``parse_extensions`` keeps
    such an extension raw as ``UnknownExtension``; a direct ``parse_body`` call sees a
    ``DecodeError``."""


class ExtensionBody:
    """Base of every extension dataclass: ``write_body`` is the one thing to implement."""

    __slots__ = ()

    def write_body(self, w: Writer) -> None:
        raise NotImplementedError

    def serialize_body(self) -> bytes:
        w = Writer()
        self.write_body(w)
        return w.getvalue()


def ext_name(t: ExtensionType) -> str:
    """The RFC spelling of an extension type, e.g. ``key_share``."""
    return t.name.lower() if t.known else str(t)


_READER_NAMES: dict[int, str] = {}


def ext_reader(data: memoryview | bytes, t: ExtensionType) -> Reader:
    """A Reader whose errors name the extension (names cached: this is the hot path)."""
    what = _READER_NAMES.get(t)
    if what is None:
        what = _READER_NAMES.setdefault(t, f"{ext_name(t)} extension")
    return Reader(data, what)


def enum_tuple(enum_cls: type[E], values: Iterable[int]) -> tuple[E, ...]:
    """``tuple(map(enum_cls, values))``, with known members found by one dict lookup
    instead of a full Enum call (a ClientHello carries dozens of code points)."""
    members = cast(dict[int, E], enum_cls._value2member_map_)
    return tuple([members[v] if v in members else enum_cls(v) for v in values])


def expect_empty(data: memoryview | bytes, t: ExtensionType) -> None:
    if len(data):
        raise DecodeError(f"{ext_name(t)} extension: expected an empty body, got {len(data)} "
                          "byte(s)")


# Code point lists kept for reuse, by (enum class, wire bytes): a server sees the same
# cipher_suites, supported_groups, ... from every client of one kind. Bounded (the peer
# chooses the bytes): only short lists, and the table is emptied when full.
_ENUM_LISTS: dict[tuple[type, bytes], tuple[Any, ...]] = {}
_ENUM_LISTS_MAX_BODY = 512
_ENUM_LISTS_MAX = 1024


def read_u16_enums(
    r: Reader, prefix: int, enum_cls: type[E], *, min_len: int, max_len: int, what: str
) -> tuple[E, ...]:
    """A vector of 16-bit code points, ``T list<min_len..max_len>`` (lengths in bytes)."""
    # (Reads in place: the truncation checks and messages of ``r.vector``.)
    n = r._length(prefix)
    view = r._take(n)
    if n & 1:
        raise DecodeError(f"{what}: odd length {n} for a list of 16-bit values")
    if n < min_len or n > max_len:
        raise DecodeError(f"{what}: list of {n} byte(s) outside the allowed {min_len}..{max_len}")
    return u16_enum_list(view, enum_cls)


def u16_enum_list(view: memoryview, enum_cls: type[E]) -> tuple[E, ...]:
    """The code points of a list body already checked (even length), as members of
    ``enum_cls``; short lists are kept for reuse."""
    n = len(view)
    if n > _ENUM_LISTS_MAX_BODY:
        return enum_tuple(enum_cls, struct.unpack(f">{n >> 1}H", view))
    key = (enum_cls, view.tobytes())
    found = _ENUM_LISTS.get(key)
    if found is None:
        found = enum_tuple(enum_cls, struct.unpack(f">{n >> 1}H", view))
        if len(_ENUM_LISTS) >= _ENUM_LISTS_MAX:
            _ENUM_LISTS.clear()
        _ENUM_LISTS[key] = found
    return found


def read_u8_enums(
    r: Reader, prefix: int, enum_cls: type[E], *, min_len: int, max_len: int, what: str
) -> tuple[E, ...]:
    """A vector of 8-bit code points, ``T list<min_len..max_len>``."""
    n = r._length(prefix)
    view = r._take(n)
    if n < min_len or n > max_len:
        raise DecodeError(f"{what}: list of {n} byte(s) outside the allowed {min_len}..{max_len}")
    return enum_tuple(enum_cls, view)


def write_u16s(w: Writer, prefix: int, values: Sequence[int]) -> None:
    with w.vector(prefix):
        w.raw(struct.pack(f">{len(values)}H", *values))


def write_u8s(w: Writer, prefix: int, values: Sequence[int]) -> None:
    with w.vector(prefix):
        w.raw(bytes(values))


def read_opaque_list(
    r: Reader, prefix: int, item_prefix: int, *, min_len: int, max_len: int,
    item_min: int, item_max: int | None, what: str,
) -> tuple[bytes, ...]:
    """``opaque item<item_min..item_max>`` elements inside ``list<min_len..max_len>``."""
    sub = r.vector(prefix, what=what)
    n = sub.remaining
    if n < min_len or n > max_len:
        raise DecodeError(f"{what}: list of {n} byte(s) outside the allowed {min_len}..{max_len}")
    items: list[bytes] = []
    while not sub.at_end():
        items.append(sub.opaque(item_prefix, min_len=item_min, max_len=item_max))
    return tuple(items)


def write_opaque_list(w: Writer, prefix: int, item_prefix: int, items: Sequence[bytes]) -> None:
    with w.vector(prefix):
        for item in items:
            w.opaque(item_prefix, item)

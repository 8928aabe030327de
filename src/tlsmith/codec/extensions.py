"""TLS extensions: one frozen dataclass per (extension type, body form), and the codec for
an extension block (RFC 8446 §4.2, RFC 5246 §7.4.1.4).

Every extension class has ``extension_type`` (a ClassVar), ``serialize_body()``,
``write_body(w)`` and ``parse_body(data, context)``. The body form depends on the message
(``ExtensionContext``): key_share, for instance, has three. An extension type we do not
know, or a known type in a message for which we define no body form, is kept raw as
``UnknownExtension`` so it survives parse -> serialize byte for byte. Whether an
extension is *allowed* in a message is the handshake's decision, not the codec's.

In a ClientHello, a TLS 1.2-only extension whose body does not decode is kept raw as
``MalformedExtension``: only a server that negotiates TLS 1.2 uses it, and that server
calls ``require_well_formed`` (decode_error); one that negotiates TLS 1.3 ignores it.

The classes live in ``extensions_common.py`` (TLS 1.2 and shared) and
``extensions_tls13.py``; import them from here.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import TypeAlias, TypeVar

from tlsmith.codec.buffer import Reader, Writer
from tlsmith.codec.enums import ExtensionType
from tlsmith.codec.extensions_base import (
    ExtensionBody,
    ExtensionContext,
    UndefinedForm,
    ext_name,
)
from tlsmith.codec.extensions_certtype import (
    ClientCertificateTypeChosen,
    ClientCertificateTypeList,
    ServerCertificateTypeChosen,
    ServerCertificateTypeList,
)
from tlsmith.codec.extensions_common import (
    ApplicationLayerProtocolNegotiation,
    ApplicationSettings,
    ApplicationSettingsClientHello,
    ApplicationSettingsNew,
    ApplicationSettingsNewClientHello,
    CertificateStatusExtension,
    ECPointFormats,
    EncryptThenMac,
    ExtendedMasterSecret,
    MaxFragmentLength,
    NextProtocolNegotiation,
    Padding,
    RecordSizeLimit,
    RenegotiationInfo,
    ServerName,
    SessionTicket,
    SignatureAlgorithms,
    SignatureAlgorithmsCert,
    StatusRequest,
    SupportedGroups,
)
from tlsmith.codec.extensions_tls13 import (
    CertificateAuthorities,
    Cookie,
    EarlyDataIndication,
    KeyShareClientHello,
    KeyShareEntry,
    KeyShareHelloRetryRequest,
    KeyShareServerHello,
    OIDFilter,
    OIDFilters,
    PostHandshakeAuth,
    PreSharedKeyClientHello,
    PreSharedKeyServerHello,
    PskIdentity,
    PskKeyExchangeModes,
    SupportedVersionsClientHello,
    SupportedVersionsServerHello,
)
from tlsmith.errors import DecodeError, IllegalParameter

__all__ = [
    "ApplicationLayerProtocolNegotiation",
    "ApplicationSettings",
    "ApplicationSettingsClientHello",
    "ApplicationSettingsNew",
    "ApplicationSettingsNewClientHello",
    "CertificateAuthorities",
    "CertificateStatusExtension",
    "ClientCertificateTypeChosen",
    "ClientCertificateTypeList",
    "Cookie",
    "ECPointFormats",
    "EarlyDataIndication",
    "EncryptThenMac",
    "ExtendedMasterSecret",
    "Extension",
    "ExtensionBody",
    "ExtensionContext",
    "KeyShareClientHello",
    "KeyShareEntry",
    "KeyShareHelloRetryRequest",
    "KeyShareServerHello",
    "KnownExtension",
    "MalformedExtension",
    "MaxFragmentLength",
    "NextProtocolNegotiation",
    "OIDFilter",
    "OIDFilters",
    "Padding",
    "PostHandshakeAuth",
    "PreSharedKeyClientHello",
    "PreSharedKeyServerHello",
    "PskIdentity",
    "PskKeyExchangeModes",
    "RecordSizeLimit",
    "RenegotiationInfo",
    "ServerCertificateTypeChosen",
    "ServerCertificateTypeList",
    "ServerName",
    "SessionTicket",
    "SignatureAlgorithms",
    "SignatureAlgorithmsCert",
    "StatusRequest",
    "SupportedGroups",
    "SupportedVersionsClientHello",
    "SupportedVersionsServerHello",
    "UnknownExtension",
    "ext_name",
    "find_extension",
    "find_extension_type",
    "parse_extensions",
    "registered_class",
    "remember_wire",
    "require_well_formed",
    "serialize_extensions",
]


@dataclass(frozen=True, slots=True)
class UnknownExtension(ExtensionBody):
    """An extension kept raw: its type is unknown (or GREASE), or the codec defines no
    body form for it in this message."""

    extension_type: ExtensionType
    data: bytes

    def write_body(self, w: Writer) -> None:
        w.raw(self.data)


@dataclass(frozen=True, slots=True)
class MalformedExtension(ExtensionBody):
    """A TLS 1.2-only ClientHello extension whose body does not decode, kept raw.

    RFC 8446 §4.1.2: a TLS 1.3 server ignores these extensions, so it must not abort on
    their bodies; a TLS 1.2 server answers with decode_error (``require_well_formed``).
    ``error`` is the decoder's message. Serializes back to ``data`` unchanged."""

    extension_type: ExtensionType
    data: bytes
    error: str

    def write_body(self, w: Writer) -> None:
        w.raw(self.data)


KnownExtension: TypeAlias = (
    ServerName
    | MaxFragmentLength
    | StatusRequest
    | CertificateStatusExtension
    | SupportedGroups
    | ECPointFormats
    | SignatureAlgorithms
    | SignatureAlgorithmsCert
    | ApplicationLayerProtocolNegotiation
    | Padding
    | EncryptThenMac
    | ExtendedMasterSecret
    | RecordSizeLimit
    | SessionTicket
    | RenegotiationInfo
    | SupportedVersionsClientHello
    | SupportedVersionsServerHello
    | Cookie
    | CertificateAuthorities
    | OIDFilters
    | PostHandshakeAuth
    | KeyShareClientHello
    | KeyShareServerHello
    | KeyShareHelloRetryRequest
    | PskKeyExchangeModes
    | EarlyDataIndication
    | PreSharedKeyClientHello
    | PreSharedKeyServerHello
    | NextProtocolNegotiation
    | ApplicationSettingsClientHello
    | ApplicationSettings
    | ClientCertificateTypeList
    | ClientCertificateTypeChosen
    | ServerCertificateTypeList
    | ServerCertificateTypeChosen
)
"""Every extension class with a parsed form."""

Extension: TypeAlias = KnownExtension | UnknownExtension | MalformedExtension
"""Any extension value: a parsed form, ``UnknownExtension`` or ``MalformedExtension``."""

ExtT = TypeVar("ExtT", bound=Extension)

_Parser = Callable[[memoryview, ExtensionContext], Extension]

_C = ExtensionContext
_CH = _C.CLIENT_HELLO
_SH = _C.SERVER_HELLO
_HRR = _C.HELLO_RETRY_REQUEST
_EE = _C.ENCRYPTED_EXTENSIONS
_CT = _C.CERTIFICATE
_CR = _C.CERTIFICATE_REQUEST
_NST = _C.NEW_SESSION_TICKET

# Which class parses a given extension type in a given message. The table follows the
# RFC 8446 §4.2 table for TLS 1.3, plus the TLS 1.2 ServerHello (SERVER_HELLO) forms.
_FORMS: tuple[tuple[type[KnownExtension], tuple[ExtensionContext, ...]], ...] = (
    (ServerName, (_CH, _SH, _EE)),
    (MaxFragmentLength, (_CH, _SH, _EE)),
    (StatusRequest, (_CH, _CR, _SH)),
    (CertificateStatusExtension, (_CT,)),
    (SupportedGroups, (_CH, _SH, _EE)),
    (ECPointFormats, (_CH, _SH)),
    (SignatureAlgorithms, (_CH, _CR)),
    (SignatureAlgorithmsCert, (_CH, _CR)),
    (ApplicationLayerProtocolNegotiation, (_CH, _SH, _EE)),
    (Padding, (_CH,)),
    (EncryptThenMac, (_CH, _SH)),
    (ExtendedMasterSecret, (_CH, _SH)),
    (RecordSizeLimit, (_CH, _SH, _EE)),
    (SessionTicket, (_CH, _SH)),
    (RenegotiationInfo, (_CH, _SH)),
    (SupportedVersionsClientHello, (_CH,)),
    (SupportedVersionsServerHello, (_SH, _HRR)),
    (Cookie, (_CH, _HRR)),
    (CertificateAuthorities, (_CH, _CR)),
    (OIDFilters, (_CR,)),
    (PostHandshakeAuth, (_CH,)),
    (KeyShareClientHello, (_CH,)),
    (KeyShareServerHello, (_SH,)),
    (KeyShareHelloRetryRequest, (_HRR,)),
    (PskKeyExchangeModes, (_CH,)),
    (EarlyDataIndication, (_CH, _EE, _NST)),
    (PreSharedKeyClientHello, (_CH,)),
    (PreSharedKeyServerHello, (_SH,)),
    # draft-agl-tls-nextprotoneg (TLS 1.2) and draft-vvv-tls-alps (TLS 1.3, both
    # codepoints; ClientEncryptedExtensions uses the EncryptedExtensions form).
    (NextProtocolNegotiation, (_CH, _SH)),
    (ApplicationSettingsClientHello, (_CH,)),
    (ApplicationSettingsNewClientHello, (_CH,)),
    (ApplicationSettings, (_EE,)),
    (ApplicationSettingsNew, (_EE,)),
    (ClientCertificateTypeList, (_CH,)),
    (ClientCertificateTypeChosen, (_SH, _EE)),
    (ServerCertificateTypeList, (_CH,)),
    (ServerCertificateTypeChosen, (_SH, _EE)),
)

_REGISTRY: dict[tuple[int, ExtensionContext], type[KnownExtension]] = {}
for _cls, _contexts in _FORMS:
    for _ctx in _contexts:
        _key = (int(_cls.extension_type), _ctx)
        assert _key not in _REGISTRY, _key
        _REGISTRY[_key] = _cls
del _cls, _contexts, _ctx, _key

_PARSERS: dict[tuple[int, ExtensionContext], _Parser] = {
    key: cls.parse_body for key, cls in _REGISTRY.items()
}

# ClientHello extensions that only a TLS 1.2 server uses (RFC 8422 §5.1.2, RFC 7366,
# RFC 7627, RFC 5746, RFC 5077): a body that does not decode becomes MalformedExtension.
_TLS12_ONLY_IN_CLIENT_HELLO: frozenset[tuple[int, ExtensionContext]] = frozenset(
    (int(cls.extension_type), _CH)
    for cls in (ECPointFormats, EncryptThenMac, ExtendedMasterSecret, RenegotiationInfo,
                SessionTicket, NextProtocolNegotiation)
)


# extension_type, extension_data length
_TYPE_AND_LENGTH_AT = struct.Struct(">HH").unpack_from

# The parsers of each context, by extension type: one lookup by a plain int per
# extension (ExtensionContext is a plain Enum, whose hash runs in Python).
_PARSERS_BY_CONTEXT: dict[ExtensionContext, dict[int, _Parser]] = {
    ctx: {t: parse for (t, c), parse in _PARSERS.items() if c is ctx}
    for ctx in ExtensionContext
}

# Parsed bodies kept for reuse: extensions whose body is the same on every connection
# from a given peer (its configuration, not its randomness) -- a server sees the same
# supported_groups, signature_algorithms, ... from every client of one kind. Extension
# objects are frozen, so one parsed object can serve many hellos. Only successful
# parses of short bodies are kept; the table is emptied when full (the peer chooses
# the bodies, so it must stay bounded).
_CACHEABLE_TYPES: frozenset[int] = frozenset(int(t) for t in (
    ExtensionType.SERVER_NAME, ExtensionType.STATUS_REQUEST, ExtensionType.SUPPORTED_GROUPS,
    ExtensionType.EC_POINT_FORMATS, ExtensionType.SIGNATURE_ALGORITHMS,
    ExtensionType.APPLICATION_LAYER_PROTOCOL_NEGOTIATION, ExtensionType.ENCRYPT_THEN_MAC,
    ExtensionType.EXTENDED_MASTER_SECRET, ExtensionType.RECORD_SIZE_LIMIT,
    ExtensionType.SUPPORTED_VERSIONS, ExtensionType.PSK_KEY_EXCHANGE_MODES,
    ExtensionType.POST_HANDSHAKE_AUTH, ExtensionType.SIGNATURE_ALGORITHMS_CERT,
    ExtensionType.RENEGOTIATION_INFO,
))
_PARSED_MAX_BODY = 512
_PARSED_MAX_ENTRIES = 1024
_PARSED: dict[ExtensionContext, dict[bytes, Extension]] = {
    ctx: {} for ctx in ExtensionContext
}


_BLOCK_NAMES: dict[ExtensionContext, str] = {
    ctx: f"{ctx.value} extensions" for ctx in ExtensionContext
}
# What ``parse_extensions`` needs of a context, in one lookup: the block's name, the
# parsers, the table of parsed bodies.
_TABLES: dict[ExtensionContext,
              tuple[str, dict[int, _Parser], dict[bytes, Extension]]] = {
    ctx: (_BLOCK_NAMES[ctx], _PARSERS_BY_CONTEXT[ctx], _PARSED[ctx])
    for ctx in ExtensionContext
}


def _parse_one(ext_type: int, body: memoryview, context: ExtensionContext,
               parse: _Parser | None) -> Extension:
    if parse is None:
        return UnknownExtension(ExtensionType(ext_type), bytes(body))
    try:
        return parse(body, context)
    except UndefinedForm:
        return UnknownExtension(ExtensionType(ext_type), bytes(body))
    except DecodeError as exc:
        if (ext_type, context) not in _TLS12_ONLY_IN_CLIENT_HELLO:
            raise
        # RFC 8446 §4.1.2: judged only if TLS 1.2 is negotiated.
        return MalformedExtension(ExtensionType(ext_type), bytes(body), exc.message)


def registered_class(
    extension_type: ExtensionType | int, context: ExtensionContext
) -> type[KnownExtension] | None:
    """The class that parses ``extension_type`` in ``context`` (None: kept raw)."""
    return _REGISTRY.get((int(extension_type), context))


def parse_extensions(r: Reader, context: ExtensionContext) -> tuple[Extension, ...]:
    """Read ``Extension extensions<0..2^16-1>`` from ``r`` (the 2-byte length included).

    Duplicate types -> ``IllegalParameter``; a body that does not decode ->
    ``DecodeError`` naming the extension, except a TLS 1.2-only one in a ClientHello
    (kept as ``MalformedExtension``); in a ClientHello, pre_shared_key anywhere but last
    -> ``IllegalParameter``.
    """
    what, parsers, parsed = _TABLES[context]
    block = r.vector(2, what=what)
    # Read in place (the codec's own Reader): the same bounds checks and messages as
    # ``block.view``, without two method calls and a slice per extension.
    data, pos, end = block._data, block._pos, block._end
    if pos == end:
        return ()  # (Certificate entries, tickets: mostly no extensions)
    out: list[Extension] = []
    start = run_end = pos
    run_key = None
    if context is _CH_CONTEXT:
        # A ClientHello's leading extensions, bytes and all, as this client sent them
        # before: taken parsed, without walking them again (see _RUNS).
        run_key = bytes(data[pos:pos + _RUN_KEY_LEN])
        run = _RUNS.get(run_key)
        if run is not None:
            size = len(run[0])
            if pos + size <= end and data[pos:pos + size] == run[0]:
                out = list(run[1])
                pos += size
                run_key = None  # (nothing to learn)
    append = out.append
    cacheable = _CACHEABLE_TYPES
    last = end - 4  # the last offset where a 4-byte extension header still fits
    try:
        while pos <= last:
            ext_type, length = _TYPE_AND_LENGTH_AT(data, pos)
            at = pos
            pos += 4 + length
            if pos > end:
                break
            if ext_type in cacheable or not length:
                # Keyed by the whole extension (its header gives the type). (An empty
                # body is the same on every connection too.)
                key = bytes(data[at:pos])
                ext = parsed.get(key)
                if ext is None:
                    ext = _parse_one(ext_type, data[at + 4:pos], context,
                                     parsers.get(ext_type))
                    if length <= _PARSED_MAX_BODY:
                        if len(parsed) >= _PARSED_MAX_ENTRIES:
                            parsed.clear()
                        parsed[key] = ext
                if run_end == at:
                    run_end = pos  # (still within the leading kept extensions)
            else:
                ext = _parse_one(ext_type, data[at + 4:pos], context, parsers.get(ext_type))
            append(ext)
    except Exception:
        # A body that does not decode: a duplicate up to and including it is reported
        # instead, as if each type were checked before its body is read.
        append(UnknownExtension(ExtensionType(ext_type), b""))
        if _first_duplicate(out) is None:
            raise
    n = len(out)
    types = frozenset(map(_TYPE_OF, out))
    if len(types) != n:
        # RFC 8446 §4.2: "There MUST NOT be more than one extension of the same type in a
        # given extension block." (RFC 5246 §7.4.1.4 says the same.) Checked after the
        # walk; the first repeated type is the one reported.
        dup = _first_duplicate(out)
        assert dup is not None
        raise IllegalParameter(f"{context.value}: duplicate {ext_name(dup)} extension")
    if pos != end:
        # Fewer than 4 bytes left for a header, or a body longer than the block.
        raise (block._truncated(4, pos) if pos < end
               else block._truncated(length, pos - length))
    block._pos = pos
    if run_key is not None and _RUN_KEY_LEN <= run_end - start <= _RUN_MAX_LEN:
        if len(_RUNS) >= _RUNS_MAX:
            _RUNS.clear()
        count = sum(1 for _ in _walk(data, start, run_end))
        _RUNS[run_key] = (bytes(data[start:run_end]), tuple(out[:count]))
    if (
        context is ExtensionContext.CLIENT_HELLO
        and ExtensionType.PRE_SHARED_KEY in types
        and out[-1].extension_type != ExtensionType.PRE_SHARED_KEY
    ):
        # RFC 8446 §4.2.11: pre_shared_key MUST be the last extension in the ClientHello;
        # servers MUST check and otherwise fail with illegal_parameter.
        raise IllegalParameter("client_hello: pre_shared_key is not the last extension")
    return tuple(out)


_TYPE_OF = attrgetter("extension_type")
_CH_CONTEXT = ExtensionContext.CLIENT_HELLO

# A ClientHello's leading run of extensions whose parse is kept (the types above, and
# empty bodies), as one client kind sends it on every connection: its bytes and parsed
# extensions, keyed by its first _RUN_KEY_LEN bytes (one of several clients starting
# alike is kept). Learnt from a block whose extensions all parsed; bounded in entries and
# in bytes.
_RUN_KEY_LEN = 32
_RUN_MAX_LEN = 2048  # (longer runs are not kept: the table stays small)
_RUNS: dict[bytes, tuple[bytes, tuple[Extension, ...]]] = {}
_RUNS_MAX = 256


def _walk(data: memoryview, pos: int, end: int) -> Iterator[int]:
    """The offsets of the extensions in ``data[pos:end]`` (well formed)."""
    while pos < end:
        yield pos
        pos += 4 + _TYPE_AND_LENGTH_AT(data, pos)[1]


def _first_duplicate(exts: Iterable[Extension]) -> ExtensionType | None:
    """The type of the first extension whose type came before, or None."""
    seen: set[int] = set()
    for e in exts:
        if e.extension_type in seen:
            return e.extension_type
        seen.add(e.extension_type)
    return None


# Extension objects built once and reused for many messages (a client configuration's
# constant ClientHello extensions) with their wire form (type, length, body): keyed by
# id(), the object itself kept alongside so the id cannot be reused while listed.
_WIRE: dict[int, tuple[Extension, bytes]] = {}
_WIRE_MAX = 4096


def remember_wire(ext: Extension) -> None:
    """Serialize ``ext`` now and reuse those bytes whenever this very object is
    serialized again (extensions are frozen, so the bytes cannot go stale)."""
    w = Writer()
    try:
        w.u16(ext.extension_type)
        with w.vector(2):
            ext.write_body(w)
    except ValueError:
        return  # not serializable: let the message's own serialization say so
    if len(_WIRE) >= _WIRE_MAX:
        _WIRE.clear()
    _WIRE[id(ext)] = (ext, w.getvalue())


def serialize_extensions(w: Writer, extensions: Sequence[Extension]) -> None:
    """Write ``Extension extensions<0..2^16-1>`` (length prefix included)."""
    wire = _WIRE
    buf = w._buf  # (the codec's own Writer: lengths filled in place, as Writer.vector)
    start = len(buf)
    buf += b"\x00\x00"
    for ext in extensions:
        known = wire.get(id(ext))
        if known is not None and known[0] is ext:
            buf += known[1]
            continue
        at = len(buf)
        buf += ext.extension_type.to_bytes(2, "big")
        buf += b"\x00\x00"
        ext.write_body(w)
        n = len(buf) - at - 4
        if n > 0xFFFF:
            raise ValueError(f"{n} bytes do not fit a 2-byte length prefix")
        buf[at + 2 : at + 4] = n.to_bytes(2, "big")
    n = len(buf) - start - 2
    if n > 0xFFFF:
        raise ValueError(f"{n} bytes do not fit a 2-byte length prefix")
    buf[start : start + 2] = n.to_bytes(2, "big")


def require_well_formed(extensions: Iterable[Extension]) -> None:
    """``DecodeError`` naming the first ``MalformedExtension``, if any: what a server that
    negotiates TLS 1.2 (and so uses these extensions) sends (RFC 5246 §7.2.2)."""
    extensions = tuple(extensions)
    if MalformedExtension not in map(type, extensions):  # (the usual case, found in C)
        return
    for ext in extensions:
        if isinstance(ext, MalformedExtension):
            name = ext_name(ext.extension_type)
            detail = ext.error if name in ext.error else f"{name} extension: {ext.error}"
            raise DecodeError(f"client_hello: {detail}")


def find_extension(extensions: Iterable[Extension], cls: type[ExtT]) -> ExtT | None:
    """The first extension that is an instance of ``cls``, or None (a
    ``MalformedExtension`` is never found by its parsed class)."""
    for ext in extensions:
        if isinstance(ext, cls):
            return ext
    return None


def find_extension_type(extensions: Iterable[Extension], t: ExtensionType) -> Extension | None:
    """The extension of type ``t`` (parsed or raw), or None."""
    for ext in extensions:
        if ext.extension_type == t:
            return ext
    return None

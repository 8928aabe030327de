"""TLS fingerprints of a ClientHello or ServerHello: JA3, JA3S, JA4 and JA4S.

* JA3 / JA3S (Salesforce, https://github.com/salesforce/ja3): the decimal values of the
  hello's version, cipher suites, extension types, supported groups and EC point formats,
  joined with ``,`` between fields and ``-`` inside them, then MD5 (as hex). GREASE values
  (RFC 8701) are dropped from the ClientHello's lists, as the JA3 README says. JA3S is
  ``version,cipher,extensions`` of the ServerHello; the JA3S reference code drops no
  GREASE (a server never sends any: RFC 8701 §4), and neither do we.
* JA4 / JA4S (FoxIO JA4+, technical_details/JA4.md and JA4S.md in
  https://github.com/FoxIO-LLC/ja4): ``a_b_c`` where ``a`` is readable (transport,
  version, SNI or not, counts, ALPN), ``b`` and ``c`` the first 12 hex digits of SHA-256
  over comma-separated 4-digit hex lists. GREASE is ignored everywhere.

Input: the hello as the trace records it (``MessageTrace.raw``: the 4-byte handshake
header and the body). Also accepted, told apart by the first byte (none of them can be
confused): a whole TLS record holding the hello (``0x16`` first: the 5-byte record header,
then the hello; other handshake messages coalesced after it in the same record are
ignored), or the body alone (``0x03`` -- the major byte of ``legacy_version`` -- or
``0xfe`` for DTLS, whose 13-byte record and 12-byte handshake headers are not read:
give a DTLS hello's body). Malformed input raises ValueError saying what is wrong, never
anything else.

Which hello ``fingerprints()`` uses: the first ClientHello and the first ServerHello of
the trace -- a HelloRetryRequest *is* the first ServerHello (RFC 8446 §4.1.4: a
ServerHello with a special random) and is fingerprinted, as FoxIO's reference tool and a
network monitor (one JA4/JA4S per connection, from the first hello seen each way) do;
the second ClientHello after it (which adds a cookie and a new key share) is not.

Nothing here runs unless asked: no cost on the record path.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from tlsmith.observe import MessageTrace, TraceRecord


def cached_ja4(client_hello: bytes) -> str | None:
    """``ja4(client_hello)``, or None for an empty or unreadable ClientHello -- for a
    server that fingerprints every client (e.g. ``tlsmith serve``'s log line).

    Clients of one kind send ClientHellos that differ only in what JA4 does not read
    (random, session ID, key shares, SNI value, padding, PSK), so the JA4 is cached
    under what it does read (``_ja4_key``): a quick walk over the bytes instead of a
    full fingerprint parse per handshake."""
    if not client_hello:
        return None
    # The hello of this length last fingerprinted, as a template: a hello whose bytes
    # are the same outside its random, session ID, key shares and PSK has the same
    # layout (every length that places a field is compared) and the same bytes
    # wherever JA4 reads: the same JA4, without a walk over its extensions.
    template = _TEMPLATES.get(len(client_hello))
    if template is not None:
        for start, end, same in template[0]:
            if client_hello[start:end] != same:
                break
        else:
            return template[1]
    key = _ja4_key(client_hello)
    if key is not None:
        found = _JA4_CACHE.get(key)
        if found is not None:
            return found
    try:
        value = ja4(client_hello)
    except ValueError:
        return None
    if key is not None:
        if len(_JA4_CACHE) >= _JA4_CACHE_SIZE:
            _JA4_CACHE.clear()
        _JA4_CACHE[key] = value
        _remember(client_hello, value)
    return value


_JA4_CACHE: dict[tuple[object, ...], str] = {}
_JA4_CACHE_SIZE = 512
#: Extensions whose bodies JA4 reads: ALPN (first protocol), signature_algorithms,
#: supported_versions; of the others only the type counts.
_JA4_BODIES = frozenset((16, 13, 43))


def _ja4_key(raw: bytes) -> tuple[object, ...] | None:
    """Everything JA4 reads from a ClientHello handshake message (type, 3-byte length,
    body), as one hashable key: legacy_version and the cipher_suites vector, the
    extension types in order and the bodies of ALPN, signature_algorithms and
    supported_versions (in that order too). None if the bytes do not walk cleanly (the
    full parser then decides)."""
    try:
        if raw[0] != 1 or int.from_bytes(raw[1:4]) != len(raw) - 4:
            return None
        at = 4 + 2 + 32
        at += 1 + raw[at]  # legacy_session_id
        suites_len = int.from_bytes(raw[at:at + 2])
        # (The suites vector keeps its 2-byte length: the head reads unambiguously.)
        head = raw[4:6] + raw[at:at + 2 + suites_len]
        at += 2 + suites_len
        at += 1 + raw[at]  # legacy_compression_methods
        if at == len(raw):
            return (head,)  # (no extensions block)
        end = at + 2 + int.from_bytes(raw[at:at + 2])
        if end != len(raw):
            return None
        at += 2
        types: list[int] = []
        bodies: list[bytes] = []
        unpack = _U16_PAIR.unpack_from  # (struct.error past the end: not clean)
        while at < end:
            ext_type, size = unpack(raw, at)
            types.append(ext_type)
            at += 4 + size
            if ext_type in _JA4_BODIES:
                bodies.append(raw[at - size:at])
        if at != end:  # (an extension ran past the block)
            return None
    except (IndexError, struct.error):
        return None
    return (head, tuple(types), tuple(bodies))


_U16_PAIR = struct.Struct(">HH")

#: cached_ja4's templates, by length: (the (start, end, bytes) of every part outside
#: the random, session ID, key_share and pre_shared_key bodies, JA4) of the last hello
#: of that length fingerprinted in full.
_TEMPLATES: dict[int, tuple[tuple[tuple[int, int, bytes], ...], str]] = {}
#: Extension bodies that differ from one hello of a client to the next and that JA4
#: does not read: key_share (51), pre_shared_key (41).
_VARYING_BODIES = frozenset((51, 41))


def _remember(raw: bytes, value: str) -> None:
    """Make ``raw`` (a hello ``_ja4_key`` walked cleanly and ``ja4`` read: its JA4 is
    ``value``) cached_ja4's template for its length."""
    at = 4 + 2 + 32
    skip = [(4 + 2, at), (at + 1, at + 1 + raw[at])]  # random, legacy_session_id
    at = skip[-1][1]
    at += 2 + int.from_bytes(raw[at:at + 2])  # cipher_suites
    at += 1 + raw[at]  # legacy_compression_methods
    if at < len(raw):
        end = len(raw)
        at += 2
        while at < end:
            ext_type, size = _U16_PAIR.unpack_from(raw, at)
            at += 4 + size
            if ext_type in _VARYING_BODIES:
                skip.append((at - size, at))
    parts: list[tuple[int, int, bytes]] = []
    start = 0
    for begin, end in skip:
        if begin > start:
            parts.append((start, begin, raw[start:begin]))
        start = end
    parts.append((start, len(raw), raw[start:]))
    if len(_TEMPLATES) >= _JA4_CACHE_SIZE:
        _TEMPLATES.clear()
    _TEMPLATES[len(raw)] = (tuple(parts), value)


__all__ = [
    "ClientHelloFields",
    "ServerHelloFields",
    "cached_ja4",
    "fingerprints",
    "is_grease",
    "ja3",
    "ja3_string",
    "ja3s",
    "ja3s_string",
    "ja4",
    "ja4_raw",
    "ja4s",
    "ja4s_raw",
    "parse_client_hello",
    "parse_server_hello",
]

_CLIENT_HELLO = 1
_SERVER_HELLO = 2
_RECORD_HANDSHAKE = 0x16

# Extension code points the fingerprints read (IANA "TLS ExtensionType Values").
_EXT_SERVER_NAME = 0x0000
_EXT_SUPPORTED_GROUPS = 0x000A
_EXT_EC_POINT_FORMATS = 0x000B
_EXT_SIGNATURE_ALGORITHMS = 0x000D
_EXT_ALPN = 0x0010
_EXT_SUPPORTED_VERSIONS = 0x002B

# JA4.md "TLS and DTLS Version": the two characters of each version; unknown: "00".
_JA4_VERSIONS = {
    0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3", 0x0002: "s2",
    0xFEFF: "d1", 0xFEFD: "d2", 0xFEFC: "d3",
}
_TRANSPORTS = ("t", "q", "d")  # TLS over TCP, QUIC, DTLS (JA4.md "QUIC and DTLS")
_EMPTY_HASH = "000000000000"  # JA4.md: an empty list is shown as twelve zeros


def is_grease(value: int) -> bool:
    """RFC 8701 §2: GREASE code points are 0x0A0A, 0x1A1A, ..., 0xFAFA."""
    return (value & 0x0F0F) == 0x0A0A and (value >> 8) == (value & 0xFF)


# ----------------------------------------------------------------------------- parsing
class _Reader:
    """Bounds-checked reads over a memoryview; every short read is a ValueError."""

    __slots__ = ("_data", "_pos", "_what")

    def __init__(self, data: memoryview, what: str) -> None:
        self._data = data
        self._pos = 0
        self._what = what

    def left(self) -> int:
        return len(self._data) - self._pos

    def take(self, n: int, field: str) -> memoryview:
        if n > self.left():
            raise ValueError(f"{self._what}: truncated in {field} (needs {n} bytes, "
                             f"{self.left()} left)")
        out = self._data[self._pos:self._pos + n]
        self._pos += n
        return out

    def uint(self, size: int, field: str) -> int:
        return int.from_bytes(self.take(size, field), "big")

    def vector(self, length_size: int, field: str) -> _Reader:
        n = self.uint(length_size, f"the length of {field}")
        return _Reader(self.take(n, field), f"{self._what}, {field}")

    def u16_list(self, field: str) -> tuple[int, ...]:
        if self.left() % 2:
            raise ValueError(f"{self._what}: {field} has an odd length ({self.left()})")
        raw = self.take(self.left(), field)
        return tuple(int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw), 2))

    def rest(self, field: str) -> bytes:
        return bytes(self.take(self.left(), field))

    def end(self) -> None:
        if self.left():
            raise ValueError(f"{self._what}: {self.left()} unexpected bytes at the end")


@dataclass(frozen=True, slots=True)
class ClientHelloFields:
    """What the fingerprints read from a ClientHello, in wire order, GREASE included.
    ``alpn_first`` is the first ALPN protocol (None: no ALPN extension or an empty list);
    ``supported_versions`` is None without that extension."""

    legacy_version: int
    cipher_suites: tuple[int, ...]
    extensions: tuple[int, ...]
    supported_groups: tuple[int, ...]
    ec_point_formats: tuple[int, ...]
    signature_algorithms: tuple[int, ...]
    supported_versions: tuple[int, ...] | None
    alpn_first: bytes | None


@dataclass(frozen=True, slots=True)
class ServerHelloFields:
    """What the fingerprints read from a ServerHello (or HelloRetryRequest)."""

    legacy_version: int
    cipher_suite: int
    extensions: tuple[int, ...]
    selected_version: int | None  # supported_versions, if present
    alpn: bytes | None  # the protocol the server chose (TLS 1.2; encrypted in TLS 1.3)


def _hello_body(data: bytes | bytearray | memoryview, msg_type: int, name: str
                ) -> memoryview:
    """The hello's body from a handshake message, a record, or the body itself."""
    try:
        view = memoryview(data).cast("B")
    except TypeError as exc:
        raise ValueError(f"{name}: expected bytes, got {type(data).__name__}") from exc
    if not view:
        raise ValueError(f"{name}: no bytes")
    first = view[0]
    if first in (0x03, 0xFE):  # legacy_version's major byte: the body alone
        return view
    if first == _RECORD_HANDSHAKE:
        record = _Reader(view, f"{name} record")
        record.take(3, "the record header")  # type, legacy_record_version
        fragment = record.vector(2, "the record's fragment")
        record.end()
        message = _Reader(fragment.take(fragment.left(), "the fragment"), name)
        kind = message.uint(1, "the handshake type")
        if kind != msg_type:
            raise ValueError(f"{name}: the record starts with handshake type {kind}, "
                             f"not {msg_type}")
        length = message.uint(3, "the handshake length")
        if length > message.left():
            raise ValueError(f"{name}: the message ({length} bytes) continues beyond "
                             f"this record ({message.left()} bytes left in it)")
        return message.take(length, "the message")  # coalesced messages may follow
    if first == msg_type:
        message = _Reader(view, name)
        message.take(1, "the handshake type")
        body = message.vector(3, "the message")
        message.end()
        return body.take(body.left(), "the message body")
    raise ValueError(f"{name}: starts with byte 0x{first:02x}: neither a handshake "
                     f"message of type {msg_type}, a handshake record (0x16), nor a "
                     "hello body (0x03 / 0xfe)")


def _extensions(r: _Reader, name: str) -> list[tuple[int, _Reader]]:
    """The extensions block (absent in some pre-TLS 1.2 hellos: no extensions)."""
    if not r.left():
        return []
    block = r.vector(2, "the extensions")
    r.end()
    out = []
    while block.left():
        ext_type = block.uint(2, "an extension type")
        out.append((ext_type, block.vector(2, f"extension 0x{ext_type:04x}")))
    return out


def parse_client_hello(data: bytes | bytearray | memoryview) -> ClientHelloFields:
    """RFC 8446 §4.1.2 / RFC 5246 §7.4.1.2, only as far as the fingerprints need. The
    contents of the extensions read are checked; others are skipped unread. An extension
    with no data at all reads as an empty list (a fingerprint is no validator)."""
    name = "ClientHello"
    r = _Reader(_hello_body(data, _CLIENT_HELLO, name), name)
    legacy_version = r.uint(2, "legacy_version")
    r.take(32, "random")
    r.vector(1, "legacy_session_id")
    if legacy_version >> 8 == 0xFE:  # DTLS (RFC 6347 §4.2.1): a cookie follows
        r.vector(1, "cookie")
    suites = r.vector(2, "cipher_suites").u16_list("cipher_suites")
    r.vector(1, "legacy_compression_methods")
    types: list[int] = []
    groups: tuple[int, ...] = ()
    formats: tuple[int, ...] = ()
    sigalgs: tuple[int, ...] = ()
    versions: tuple[int, ...] | None = None
    alpn_first: bytes | None = None
    for ext_type, body in _extensions(r, name):
        types.append(ext_type)
        if not body.left():
            if ext_type == _EXT_SUPPORTED_VERSIONS:
                versions = ()
            continue
        if ext_type == _EXT_SUPPORTED_GROUPS:
            groups = _whole(body, 2, "supported_groups").u16_list("supported_groups")
        elif ext_type == _EXT_EC_POINT_FORMATS:
            fmt = _whole(body, 1, "ec_point_formats")
            formats = tuple(fmt.rest("ec_point_formats"))
        elif ext_type == _EXT_SIGNATURE_ALGORITHMS:
            sigalgs = _whole(body, 2, "signature_algorithms").u16_list(
                "signature_algorithms")
        elif ext_type == _EXT_SUPPORTED_VERSIONS:
            versions = _whole(body, 1, "supported_versions").u16_list("supported_versions")
        elif ext_type == _EXT_ALPN:
            protocols = _whole(body, 2, "application_layer_protocol_negotiation")
            if protocols.left():
                alpn_first = protocols.vector(1, "a protocol name").rest("a protocol name")
    return ClientHelloFields(legacy_version, suites, tuple(types), groups, formats,
                             sigalgs, versions, alpn_first)


def parse_server_hello(data: bytes | bytearray | memoryview) -> ServerHelloFields:
    """RFC 8446 §4.1.3 / RFC 5246 §7.4.1.3, as far as the fingerprints need (a
    HelloRetryRequest has the same shape)."""
    name = "ServerHello"
    r = _Reader(_hello_body(data, _SERVER_HELLO, name), name)
    legacy_version = r.uint(2, "legacy_version")
    r.take(32, "random")
    # TLS 1.3 drafts before -22 (version 0x7fNN) had no session ID echo and no
    # compression method; their ServerHellos are still seen (and published) in JA3S data.
    old_draft = legacy_version >> 8 == 0x7F and (legacy_version & 0xFF) < 22
    if not old_draft:
        r.vector(1, "legacy_session_id_echo")
    suite = r.uint(2, "cipher_suite")
    if not old_draft:
        r.uint(1, "legacy_compression_method")
    types: list[int] = []
    selected: int | None = None
    alpn: bytes | None = None
    for ext_type, body in _extensions(r, name):
        types.append(ext_type)
        if ext_type == _EXT_SUPPORTED_VERSIONS and body.left():
            selected = body.uint(2, "supported_versions")
            body.end()
        elif ext_type == _EXT_ALPN and body.left():
            protocols = _whole(body, 2, "application_layer_protocol_negotiation")
            alpn = protocols.vector(1, "the protocol name").rest("the protocol name")
            protocols.end()
    return ServerHelloFields(legacy_version, suite, tuple(types), selected, alpn)


def _whole(body: _Reader, length_size: int, field: str) -> _Reader:
    """An extension's body that is one length-prefixed list, filling it exactly."""
    inner = body.vector(length_size, field)
    body.end()
    return inner


# --------------------------------------------------------------------------------- JA3
def _dashed(values: Iterable[int]) -> str:
    return "-".join(str(v) for v in values)


def ja3_string(client_hello: bytes) -> str:
    """``SSLVersion,Cipher,SSLExtension,EllipticCurve,EllipticCurvePointFormat`` in
    decimal, GREASE dropped (e.g. ``771,4865-4866-...,0-23-...,29-23-24,0``)."""
    ch = parse_client_hello(client_hello)
    keep = [v for v in ch.cipher_suites if not is_grease(v)]
    exts = [v for v in ch.extensions if not is_grease(v)]
    groups = [v for v in ch.supported_groups if not is_grease(v)]
    return ",".join((str(ch.legacy_version), _dashed(keep), _dashed(exts),
                     _dashed(groups), _dashed(ch.ec_point_formats)))


def ja3(client_hello: bytes) -> str:
    """JA3: the MD5 (hex) of ``ja3_string``."""
    return hashlib.md5(ja3_string(client_hello).encode(), usedforsecurity=False).hexdigest()


def ja3s_string(server_hello: bytes) -> str:
    """``SSLVersion,Cipher,SSLExtension`` in decimal (e.g. ``771,4865,43-51``)."""
    sh = parse_server_hello(server_hello)
    return f"{sh.legacy_version},{sh.cipher_suite},{_dashed(sh.extensions)}"


def ja3s(server_hello: bytes) -> str:
    """JA3S: the MD5 (hex) of ``ja3s_string``."""
    return hashlib.md5(ja3s_string(server_hello).encode(),
                       usedforsecurity=False).hexdigest()


# --------------------------------------------------------------------------------- JA4
def _hex_list(values: Iterable[int]) -> str:
    return ",".join(f"{v:04x}" for v in values)


def _hash12(text: str) -> str:
    """JA4.md: the first 12 hex digits (lower case) of SHA-256; twelve zeros if empty."""
    return hashlib.sha256(text.encode()).hexdigest()[:12] if text else _EMPTY_HASH


def _transport(transport: str) -> str:
    if transport not in _TRANSPORTS:
        raise ValueError(f"transport must be one of {', '.join(_TRANSPORTS)} (TCP, QUIC, "
                         f"DTLS), not {transport!r}")
    return transport


def _version_text(version: int) -> str:
    return _JA4_VERSIONS.get(version, "00")


def _alpn_text(value: bytes | None) -> str:
    """JA4.md "ALPN Extension Value": the first and last characters of the protocol
    (a one-character one counts as both); if either end is not ASCII alphanumeric, the
    first and last characters of its hex form instead; ``00`` if none."""
    if not value:
        return "00"
    first, last = value[0], value[-1]
    if _alnum(first) and _alnum(last):
        return chr(first) + chr(last)
    digits = value.hex()
    return digits[0] + digits[-1]


def _alnum(byte: int) -> bool:
    return 0x30 <= byte <= 0x39 or 0x41 <= byte <= 0x5A or 0x61 <= byte <= 0x7A


def _client_version(ch: ClientHelloFields) -> int:
    """JA4.md: the highest supported_versions value (GREASE ignored) if the extension is
    there, else legacy_version (the record's version is never used). For DTLS, whose
    numbers count down, "highest" is the newest."""
    offered = [v for v in ch.supported_versions or () if not is_grease(v)]
    if not offered:
        return ch.legacy_version
    dtls = [v for v in offered if v >> 8 == 0xFE]
    return min(dtls) if dtls else max(offered)


def _ja4_parts(client_hello: bytes, transport: str, original_order: bool
               ) -> tuple[str, str, str]:
    ch = parse_client_hello(client_hello)
    suites = [v for v in ch.cipher_suites if not is_grease(v)]
    exts = [v for v in ch.extensions if not is_grease(v)]
    sigalgs = [v for v in ch.signature_algorithms if not is_grease(v)]
    head = (f"{_transport(transport)}{_version_text(_client_version(ch))}"
            f"{'d' if _EXT_SERVER_NAME in exts else 'i'}"
            f"{min(len(suites), 99):02d}{min(len(exts), 99):02d}"
            f"{_alpn_text(ch.alpn_first)}")
    if not original_order:
        # JA4.md "Extension hash": SNI and ALPN are already in part a.
        suites = sorted(suites)
        exts = sorted(v for v in exts if v not in (_EXT_SERVER_NAME, _EXT_ALPN))
    c = _hex_list(exts)
    if sigalgs:  # "if there are no signature algorithms ... ends without an underscore"
        c += "_" + _hex_list(sigalgs)
    return head, _hex_list(suites), c if exts else ""


def ja4(client_hello: bytes, *, transport: str = "t", original_order: bool = False) -> str:
    """JA4 (``t13d1516h2_8daaf6152771_e5627efa2ab1``). ``transport``: ``t`` TLS over
    TCP, ``q`` QUIC, ``d`` DTLS. ``original_order``: JA4_o -- suites and extensions
    in wire order, SNI and ALPN kept."""
    head, suites, exts = _ja4_parts(client_hello, transport, original_order)
    return f"{head}_{_hash12(suites)}_{_hash12(exts)}"


def ja4_raw(client_hello: bytes, *, original_order: bool = False, transport: str = "t"
            ) -> str:
    """JA4_r (sorted lists, unhashed) or, with ``original_order``, JA4_ro (wire order)."""
    head, suites, exts = _ja4_parts(client_hello, transport, original_order)
    return f"{head}_{suites}_{exts}"


def _ja4s_parts(server_hello: bytes, transport: str) -> tuple[str, str]:
    sh = parse_server_hello(server_hello)
    exts = [v for v in sh.extensions if not is_grease(v)]
    version = sh.selected_version if sh.selected_version is not None else sh.legacy_version
    head = (f"{_transport(transport)}{_version_text(version)}{min(len(exts), 99):02d}"
            f"{_alpn_text(sh.alpn)}_{sh.cipher_suite:04x}")
    return head, _hex_list(exts)  # JA4S.md: extensions in the order the server sent them


def ja4s(server_hello: bytes, *, transport: str = "t") -> str:
    """JA4S (``t130200_1301_a56c5b993250``)."""
    head, exts = _ja4s_parts(server_hello, transport)
    return f"{head}_{_hash12(exts)}"


def ja4s_raw(server_hello: bytes, *, transport: str = "t") -> str:
    """JA4S_r: the extension list itself instead of its hash (JA4S never sorts)."""
    head, exts = _ja4s_parts(server_hello, transport)
    return f"{head}_{exts}"


# ------------------------------------------------------------------------------ traces
def fingerprints(records: Iterable[TraceRecord]) -> dict[str, str]:
    """``{"ja3", "ja4", "ja3s", "ja4s"}`` of the first ClientHello and the first
    ServerHello (a HelloRetryRequest counts: see the module's docstring) in a trace,
    whichever side sent them. Keys whose hello is missing (a handshake that failed
    early) or unreadable are left out."""
    out: dict[str, str] = {}
    client = server = None
    for rec in records:
        if not isinstance(rec, MessageTrace):
            continue
        if client is None and rec.name == "ClientHello":
            client = rec.raw
        elif server is None and rec.name == "ServerHello":
            server = rec.raw
        if client is not None and server is not None:
            break
    if client:
        try:
            out["ja3"], out["ja4"] = ja3(client), ja4(client)
        except ValueError:
            pass
    if server:
        try:
            out["ja3s"], out["ja4s"] = ja3s(server), ja4s(server)
        except ValueError:
            pass
    return out

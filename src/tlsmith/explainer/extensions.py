"""Annotating extensions (RFC 8446 §4.2, RFC 5246 §7.4.1.4): every one by name, its
fields where tlsmith knows them, unknown ones and GREASE (RFC 8701) as hex."""

from __future__ import annotations

from collections.abc import Callable

from tlsmith.codec.enums import (
    CertificateStatusType,
    CipherSuite,
    ECPointFormat,
    ExtensionType,
    NamedGroup,
    ProtocolVersion,
    PskKeyExchangeMode,
    SignatureScheme,
    is_grease,
)
from tlsmith.explainer.spans import Span
from tlsmith.explainer.walker import Walker, hexs

#: Where a message's extensions sit: "client_hello", "server_hello", "hrr",
#: "encrypted_extensions", "certificate_request", "new_session_ticket", "certificate".
Where = str

_VERSION_NAMES = {0x0300: "SSL 3.0", 0x0301: "TLS 1.0", 0x0302: "TLS 1.1", 0x0303: "TLS 1.2",
                  0x0304: "TLS 1.3"}
_GREASE = "GREASE (RFC 8701): a reserved value sent to keep peers tolerant of unknown ones"


def code_name(kind: type[CipherSuite] | type[NamedGroup] | type[SignatureScheme]
              | type[ProtocolVersion] | type[ExtensionType], value: int) -> str:
    """"X25519 (0x001d)", "GREASE 0x2a2a (RFC 8701)", "unknown 0x1234"."""
    if is_grease(value):
        return f"GREASE {value:#06x} (RFC 8701)"
    member = kind(value)
    if kind is ProtocolVersion and member.known:
        return f"{_VERSION_NAMES.get(value, member.rfc_name)} ({value:#06x})"
    if member.known:
        return f"{member.rfc_name} ({value:#06x})"
    return f"unknown {value:#06x}"


def _u16_list(w: Walker, prefix: int, label: str, item: str,
              kind: type[NamedGroup] | type[SignatureScheme] | type[ProtocolVersion],
              rfc: str) -> None:
    sub = w.vector(prefix, label, "", rfc)
    sub.each(lambda v: v.uint(2, item, lambda x: code_name(kind, x)))
    sub.node.meaning = f"{sum(1 for c in sub.node.children) - 1} entries"


def _server_name(w: Walker, where: Where) -> None:
    if not w.remaining:  # RFC 6066 §3: the server's acknowledgement is empty
        return
    sub = w.vector(2, "server_name_list", "", "6066#3")

    def name(v: Walker) -> None:
        v.uint(1, "name_type", lambda t: "host_name" if t == 0 else f"unknown {t}")
        v.opaque(2, "host_name", lambda b: b.decode("ascii", "replace"))

    sub.each(name)


def _supported_groups(w: Walker, where: Where) -> None:
    _u16_list(w, 2, "named_group_list", "group", NamedGroup, "8446#4.2.7")


def _sigalgs(w: Walker, where: Where) -> None:
    _u16_list(w, 2, "supported_signature_algorithms", "scheme", SignatureScheme,
              "8446#4.2.3")


def _ec_point_formats(w: Walker, where: Where) -> None:
    sub = w.vector(1, "ec_point_format_list", "", "8422#5.1.2")
    sub.each(lambda v: v.uint(1, "format", lambda x: str(ECPointFormat(x)).lower()))


def _alpn(w: Walker, where: Where) -> None:
    sub = w.vector(2, "protocol_name_list", "", "7301#3.1")
    sub.each(lambda v: v.opaque(1, "protocol_name", lambda b: b.decode("ascii", "replace")))


def _supported_versions(w: Walker, where: Where) -> None:
    if where in ("server_hello", "hrr"):
        w.uint(2, "selected_version", lambda x: code_name(ProtocolVersion, x), "8446#4.2.1")
        return
    sub = w.vector(1, "versions", "", "8446#4.2.1")
    sub.each(lambda v: v.uint(2, "version", lambda x: code_name(ProtocolVersion, x)))


def _key_share_entry(v: Walker) -> None:
    group = v.uint(2, "group", lambda x: code_name(NamedGroup, x))
    name = NamedGroup(group).rfc_name
    v.opaque(2, "key_exchange", lambda b: f"{name} public value, {len(b)} bytes: {hexs(b)}")


def _key_share(w: Walker, where: Where) -> None:
    if where == "hrr":
        w.uint(2, "selected_group", lambda x: code_name(NamedGroup, x), "8446#4.2.8")
    elif where == "server_hello":
        node = w.node
        _key_share_entry(w)
        node.rfc = "8446#4.2.8"
    else:
        sub = w.vector(2, "client_shares", "", "8446#4.2.8")
        sub.each(_key_share_entry)


def _psk_modes(w: Walker, where: Where) -> None:
    sub = w.vector(1, "ke_modes", "", "8446#4.2.9")
    sub.each(lambda v: v.uint(1, "mode", lambda x: str(PskKeyExchangeMode(x)).lower()))


def _pre_shared_key(w: Walker, where: Where) -> None:
    if where == "server_hello":
        w.uint(2, "selected_identity", lambda x: f"the server chose PSK number {x}",
               "8446#4.2.11")
        return
    ids = w.vector(2, "identities", "", "8446#4.2.11")

    def identity(v: Walker) -> None:
        v.opaque(2, "identity", lambda b: f"ticket of {len(b)} bytes")
        v.uint(4, "obfuscated_ticket_age", lambda x: f"{x} (ticket age + ticket_age_add)")

    ids.each(identity)
    binders = w.vector(2, "binders", "", "8446#4.2.11.2")
    binders.each(lambda v: v.opaque(1, "binder", lambda b: f"HMAC over the truncated "
                                    f"ClientHello: {hexs(b)}"))


def _early_data(w: Walker, where: Where) -> None:
    if where == "new_session_ticket":
        w.uint(4, "max_early_data_size", lambda x: f"{x} bytes of 0-RTT data allowed",
               "8446#4.2.10")


def _cookie(w: Walker, where: Where) -> None:
    w.opaque(2, "cookie", lambda b: f"{len(b)} bytes, echoed in the second ClientHello",
             "8446#4.2.2")


def _status_request(w: Walker, where: Where) -> None:
    if not w.remaining:
        return
    if where == "certificate":  # RFC 8446 §4.4.2.1: the OCSP response itself
        w.uint(1, "status_type", lambda t: str(CertificateStatusType(t)).lower())
        w.opaque(3, "response", lambda b: f"OCSP response, {len(b)} bytes")
        return
    w.uint(1, "status_type", lambda t: str(CertificateStatusType(t)).lower(), "6066#8")
    w.opaque(2, "responder_id_list")
    w.opaque(2, "request_extensions")


def _record_size_limit(w: Walker, where: Where) -> None:
    w.uint(2, "record_size_limit", lambda x: f"at most {x} bytes of plaintext per record",
           "8449#4")


def _renegotiation_info(w: Walker, where: Where) -> None:
    w.opaque(1, "renegotiated_connection",
             lambda b: "empty: a first handshake" if not b else hexs(b), "5746#3.2")


def _compress_certificate(w: Walker, where: Where) -> None:
    sub = w.vector(1, "algorithms", "", "8879#3")
    names = {1: "zlib", 2: "brotli", 3: "zstd"}
    sub.each(lambda v: v.uint(2, "algorithm", lambda x: names.get(x, f"unknown {x}")))


def _empty(w: Walker, where: Where) -> None:
    """Extensions whose presence is the message (EMS, ETM, post_handshake_auth...)."""


_Annotator = Callable[[Walker, Where], None]

#: Extension type -> (annotator of extension_data, RFC section defining it).
_EXTENSIONS: dict[int, tuple[_Annotator, str]] = {
    ExtensionType.SERVER_NAME: (_server_name, "6066#3"),
    ExtensionType.STATUS_REQUEST: (_status_request, "6066#8"),
    ExtensionType.SUPPORTED_GROUPS: (_supported_groups, "8446#4.2.7"),
    ExtensionType.EC_POINT_FORMATS: (_ec_point_formats, "8422#5.1.2"),
    ExtensionType.SIGNATURE_ALGORITHMS: (_sigalgs, "8446#4.2.3"),
    ExtensionType.SIGNATURE_ALGORITHMS_CERT: (_sigalgs, "8446#4.2.3"),
    ExtensionType.APPLICATION_LAYER_PROTOCOL_NEGOTIATION: (_alpn, "7301#3.1"),
    ExtensionType.SIGNED_CERTIFICATE_TIMESTAMP: (_empty, "6962#3.3.1"),
    ExtensionType.EXTENDED_MASTER_SECRET: (_empty, "7627#5.1"),
    ExtensionType.ENCRYPT_THEN_MAC: (_empty, "7366#2"),
    ExtensionType.SESSION_TICKET: (_empty, "5077#3.2"),
    ExtensionType.SUPPORTED_VERSIONS: (_supported_versions, "8446#4.2.1"),
    ExtensionType.KEY_SHARE: (_key_share, "8446#4.2.8"),
    ExtensionType.PSK_KEY_EXCHANGE_MODES: (_psk_modes, "8446#4.2.9"),
    ExtensionType.PRE_SHARED_KEY: (_pre_shared_key, "8446#4.2.11"),
    ExtensionType.EARLY_DATA: (_early_data, "8446#4.2.10"),
    ExtensionType.COOKIE: (_cookie, "8446#4.2.2"),
    ExtensionType.POST_HANDSHAKE_AUTH: (_empty, "8446#4.2.6"),
    ExtensionType.RECORD_SIZE_LIMIT: (_record_size_limit, "8449#4"),
    ExtensionType.RENEGOTIATION_INFO: (_renegotiation_info, "5746#3.2"),
    ExtensionType.COMPRESS_CERTIFICATE: (_compress_certificate, "8879#3"),
    ExtensionType.PADDING: (_empty, "7685#3"),
}

#: Extensions whose data is opaque to this explainer (shown as hex, with a name).
_OPAQUE: dict[int, str] = {
    ExtensionType.SESSION_TICKET: "the session ticket (RFC 5077), opaque to the client",
    ExtensionType.PADDING: "zero bytes that pad the ClientHello past a size some "
                           "servers mishandle (RFC 7685)",
    ExtensionType.SIGNED_CERTIFICATE_TIMESTAMP: "signed certificate timestamps (RFC 6962)",
}


def extension(w: Walker, where: Where) -> int:
    """One Extension {ExtensionType extension_type; opaque extension_data<0..2^16-1>}."""
    start = w.pos
    ext_type = int.from_bytes(w.data[start:start + 2], "big") if w.remaining >= 2 else -1
    known = ExtensionType(ext_type) if ext_type >= 0 else None
    if ext_type >= 0 and is_grease(ext_type):
        title, meaning = f"extension GREASE {ext_type:#06x}", _GREASE
    elif known is not None and known.known:
        title, meaning = f"extension {known.rfc_name.lower()}", ""
    else:
        title, meaning = f"extension unknown {ext_type:#06x}", "not known to tlsmith: hex"
    entry = _EXTENSIONS.get(ext_type)
    node = Span(start, 0, title, meaning, entry[1] if entry else "8446#4.2")
    w.node.children.append(node)
    inner = Walker(w.data, start, w.end, node)
    inner.uint(2, "extension_type", lambda x: code_name(ExtensionType, x), "8446#4.2")
    data = inner.vector(2, "extension_data")
    node.length = data.end - start
    w.pos = data.end
    if entry is None or ext_type in _OPAQUE:
        if data.remaining:
            data.rest("data", _OPAQUE.get(ext_type, "") or hexs(data.data[data.pos:data.end]))
        return ext_type
    entry[0](data, where)
    data.finish()
    return ext_type


def extensions_block(w: Walker, where: Where, *, optional: bool = False) -> None:
    """Extension extensions<0..2^16-1> (optional: a TLS 1.2 hello may end without it)."""
    if optional and not w.remaining:
        return
    sub = w.vector(2, "extensions", "", "8446#4.2")
    count = len(sub.each(lambda v: extension(v, where)))
    sub.node.meaning = f"{count} extension(s)"

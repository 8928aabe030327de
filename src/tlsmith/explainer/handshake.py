"""Annotating handshake messages (RFC 8446 §4, RFC 5246 §7.4) field by field.

Each annotator walks one message body; if the bytes do not follow the structure the
body falls back to one hex range that says why, so every byte stays labelled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tlsmith.codec.enums import (
    CertificateStatusType,
    CipherSuite,
    ClientCertificateType,
    CompressionMethod,
    ECCurveType,
    HandshakeType,
    KeyUpdateRequest,
    NamedGroup,
    ProtocolVersion,
    SignatureScheme,
)
from tlsmith.explainer.extensions import code_name, extensions_block
from tlsmith.explainer.spans import Span
from tlsmith.explainer.walker import Truncated, Walker, hexs

# RFC 8446 §4.1.3: the ServerHello.random of a HelloRetryRequest.
HRR_RANDOM = bytes.fromhex(
    "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")
# RFC 8446 §4.1.3: the last 8 bytes of a TLS 1.3 server's random when it negotiates
# TLS 1.2 ("DOWNGRD\x01") or below ("DOWNGRD\x00").
_DOWNGRADE = {b"DOWNGRD\x01": "TLS 1.2", b"DOWNGRD\x00": "TLS 1.1 or below"}


@dataclass(frozen=True)
class Context:
    """What the bytes alone do not say: the version, and TLS 1.2's key exchange."""

    tls13: bool
    kx: str | None = None  # "ecdhe", "dhe", "rsa" (TLS 1.2 suites)


def _version(x: int) -> str:
    return code_name(ProtocolVersion, x)


def _random(w: Walker, rfc: str, *, server: bool) -> bytes:
    value = w.data[w.pos:w.pos + 32]
    meaning = "32 bytes from the sender's random generator"
    if server and value == HRR_RANDOM:
        meaning = "the fixed value that marks a HelloRetryRequest (SHA-256 of " \
                  "\"HelloRetryRequest\")"
    elif server and value[24:] in _DOWNGRADE:
        meaning += (f"; ends with the downgrade sentinel for {_DOWNGRADE[value[24:]]} "
                    "(RFC 8446 §4.1.3)")
    return w.take(32, "random", f"{meaning}: {value.hex()}", rfc)


def _session_id(w: Walker, label: str, rfc: str) -> None:
    w.opaque(1, label, lambda b: f"{len(b)} bytes: {b.hex()}" if b else "empty", rfc)


def client_hello(w: Walker, ctx: Context) -> None:
    rfc = "8446#4.1.2"
    w.uint(2, "legacy_version", lambda x: f"{_version(x)}; TLS 1.3 offers versions in "
           "supported_versions", rfc)
    _random(w, rfc, server=False)
    _session_id(w, "legacy_session_id", rfc)
    suites = w.vector(2, "cipher_suites", "", rfc)
    suites.each(lambda v: v.uint(2, "cipher suite", lambda x: code_name(CipherSuite, x)))
    suites.node.meaning = f"{len(suites.node.children) - 1} suites, in preference order"
    comp = w.vector(1, "legacy_compression_methods", "", rfc)
    comp.each(lambda v: v.uint(1, "method", lambda x: str(CompressionMethod(x)).lower()))
    extensions_block(w, "client_hello", optional=True)


def server_hello(w: Walker, ctx: Context) -> None:
    rfc = "8446#4.1.3" if ctx.tls13 else "5246#7.4.1.3"
    hrr = w.data[w.pos + 2:w.pos + 34] == HRR_RANDOM
    w.uint(2, "legacy_version", lambda x: _version(x), rfc)
    _random(w, rfc, server=True)
    _session_id(w, "legacy_session_id_echo" if ctx.tls13 else "session_id", rfc)
    w.uint(2, "cipher_suite", lambda x: code_name(CipherSuite, x), rfc)
    w.uint(1, "legacy_compression_method", lambda x: str(CompressionMethod(x)).lower(), rfc)
    extensions_block(w, "hrr" if hrr else "server_hello", optional=True)


def encrypted_extensions(w: Walker, ctx: Context) -> None:
    extensions_block(w, "encrypted_extensions")


def _der(w: Walker, prefix: int, label: str) -> None:
    from tlsmith.x509.leaf import parse_der

    def summary(der: bytes) -> str:
        try:
            cert = parse_der(der)
            return (f"X.509 certificate (DER, {len(der)} bytes): subject "
                    f"{cert.subject.rfc4514_string()}, issuer {cert.issuer.rfc4514_string()}")
        except Exception:  # a malformed certificate is still shown, as bytes
            return f"{len(der)} bytes that do not parse as an X.509 certificate"

    sub = w.vector(prefix, label, "", "5280#4.1")
    der = sub.data[sub.pos:sub.end]
    text = summary(der)
    sub.node.meaning = text
    if der:
        sub.take(len(der), "DER", text, "5280#4.1")


def certificate(w: Walker, ctx: Context) -> None:
    if ctx.tls13:
        rfc = "8446#4.4.2"
        w.opaque(1, "certificate_request_context",
                 lambda b: "empty: not an answer to a post-handshake request" if not b
                 else hexs(b), rfc)
        certs = w.vector(3, "certificate_list", "", rfc)

        def entry(v: Walker) -> None:
            node = Span(v.pos, 0, "CertificateEntry", "", rfc)
            v.node.children.append(node)
            e = Walker(v.data, v.pos, v.end, node)
            _der(e, 3, "cert_data")
            extensions_block(e, "certificate")
            node.length = e.pos - node.offset
            v.pos = e.pos

        certs.each(entry)
    else:
        certs = w.vector(3, "certificate_list", "", "5246#7.4.2")
        certs.each(lambda v: _der(v, 3, "ASN.1Cert"))
    n = len(certs.node.children) - 1
    certs.node.meaning = f"{n} certificate(s), the sender's own first"


def certificate_request(w: Walker, ctx: Context) -> None:
    if ctx.tls13:
        w.opaque(1, "certificate_request_context",
                 lambda b: hexs(b) if b else "empty (during the handshake)", "8446#4.3.2")
        extensions_block(w, "certificate_request")
        return
    rfc = "5246#7.4.4"
    types = w.vector(1, "certificate_types", "", rfc)
    types.each(lambda v: v.uint(1, "type", lambda x: str(ClientCertificateType(x)).lower()))
    algs = w.vector(2, "supported_signature_algorithms", "", rfc)
    algs.each(lambda v: v.uint(2, "scheme", lambda x: code_name(SignatureScheme, x)))
    cas = w.vector(2, "certificate_authorities", "", rfc)
    cas.each(lambda v: v.opaque(2, "DistinguishedName", lambda b: f"{len(b)} bytes"))


def _signature(w: Walker, rfc: str, what: str) -> None:
    w.uint(2, "algorithm", lambda x: code_name(SignatureScheme, x), rfc)
    w.opaque(2, "signature", lambda b: f"{what}, {len(b)} bytes: {hexs(b)}", rfc)


def certificate_verify(w: Walker, ctx: Context) -> None:
    if ctx.tls13:
        _signature(w, "8446#4.4.3", "signature over 64 spaces, a context string and the "
                   "transcript hash")
    else:
        _signature(w, "5246#7.4.8", "signature over all handshake messages so far")


def finished(w: Walker, ctx: Context) -> None:
    if ctx.tls13:
        w.rest("verify_data", "HMAC(finished_key, transcript hash)", "8446#4.4.4")
    else:
        w.rest("verify_data", "PRF(master_secret, finished_label, Hash(handshake "
               "messages))[0..11]", "5246#7.4.9")


def new_session_ticket(w: Walker, ctx: Context) -> None:
    if ctx.tls13:
        rfc = "8446#4.6.1"
        w.uint(4, "ticket_lifetime", lambda x: f"{x} seconds", rfc)
        w.uint(4, "ticket_age_add", lambda x: f"{x} (hides the ticket's age on the wire)", rfc)
        w.opaque(1, "ticket_nonce", lambda b: b.hex() or "empty", rfc)
        w.opaque(2, "ticket", lambda b: f"{len(b)} bytes, opaque to the client", rfc)
        extensions_block(w, "new_session_ticket")
        return
    rfc = "5077#3.3"
    w.uint(4, "ticket_lifetime_hint", lambda x: f"{x} seconds", rfc)
    w.opaque(2, "ticket", lambda b: f"{len(b)} bytes, opaque to the client", rfc)


def key_update(w: Walker, ctx: Context) -> None:
    w.uint(1, "request_update", lambda x: str(KeyUpdateRequest(x)).lower(), "8446#4.6.3")


def server_key_exchange(w: Walker, ctx: Context) -> None:
    if ctx.kx == "dhe":
        rfc = "5246#7.4.3"
        w.opaque(2, "dh_p", lambda b: f"the prime, {len(b) * 8} bits", rfc)
        w.opaque(2, "dh_g", lambda b: f"the generator {int.from_bytes(b, 'big')}", rfc)
        w.opaque(2, "dh_Ys", lambda b: f"the server's public value, {len(b)} bytes", rfc)
    else:
        rfc = "8422#5.4"
        w.uint(1, "curve_type", lambda x: str(ECCurveType(x)).lower(), rfc)
        w.uint(2, "namedcurve", lambda x: code_name(NamedGroup, x), rfc)
        w.opaque(1, "public", lambda b: f"the server's ephemeral public key, {len(b)} "
                 f"bytes: {hexs(b)}", rfc)
    _signature(w, "5246#7.4.3", "signature over client_random + server_random + the "
               "parameters")


def client_key_exchange(w: Walker, ctx: Context) -> None:
    if ctx.kx == "rsa":
        w.opaque(2, "EncryptedPreMasterSecret", lambda b: f"the pre-master secret "
                 f"encrypted to the server's RSA key (PKCS #1 v1.5), {len(b)} bytes",
                 "5246#7.4.7.1")
    elif ctx.kx == "dhe":
        w.opaque(2, "dh_Yc", lambda b: f"the client's public value, {len(b)} bytes",
                 "5246#7.4.7.2")
    else:
        w.opaque(1, "ecdh_Yc", lambda b: f"the client's ephemeral public key, {len(b)} "
                 f"bytes: {hexs(b)}", "8422#5.7")


def certificate_status(w: Walker, ctx: Context) -> None:
    w.uint(1, "status_type", lambda x: str(CertificateStatusType(x)).lower(), "6066#8")
    w.opaque(3, "response", lambda b: f"OCSP response, {len(b)} bytes", "6066#8")


def _empty(w: Walker, ctx: Context) -> None:
    """ServerHelloDone, EndOfEarlyData, HelloRequest: no body."""


_Annotator = Callable[[Walker, Context], None]

#: msg_type -> (name, annotator, RFC section), TLS 1.3 names; see _TLS12_RFC.
_MESSAGES: dict[int, tuple[str, _Annotator, str]] = {
    HandshakeType.HELLO_REQUEST: ("HelloRequest", _empty, "5246#7.4.1.1"),
    HandshakeType.CLIENT_HELLO: ("ClientHello", client_hello, "8446#4.1.2"),
    HandshakeType.SERVER_HELLO: ("ServerHello", server_hello, "8446#4.1.3"),
    HandshakeType.NEW_SESSION_TICKET: ("NewSessionTicket", new_session_ticket, "8446#4.6.1"),
    HandshakeType.END_OF_EARLY_DATA: ("EndOfEarlyData", _empty, "8446#4.5"),
    HandshakeType.ENCRYPTED_EXTENSIONS: ("EncryptedExtensions", encrypted_extensions,
                                         "8446#4.3.1"),
    HandshakeType.CERTIFICATE: ("Certificate", certificate, "8446#4.4.2"),
    HandshakeType.SERVER_KEY_EXCHANGE: ("ServerKeyExchange", server_key_exchange,
                                        "5246#7.4.3"),
    HandshakeType.CERTIFICATE_REQUEST: ("CertificateRequest", certificate_request,
                                        "8446#4.3.2"),
    HandshakeType.SERVER_HELLO_DONE: ("ServerHelloDone", _empty, "5246#7.4.5"),
    HandshakeType.CERTIFICATE_VERIFY: ("CertificateVerify", certificate_verify,
                                       "8446#4.4.3"),
    HandshakeType.CLIENT_KEY_EXCHANGE: ("ClientKeyExchange", client_key_exchange,
                                        "5246#7.4.7"),
    HandshakeType.FINISHED: ("Finished", finished, "8446#4.4.4"),
    HandshakeType.CERTIFICATE_STATUS: ("CertificateStatus", certificate_status, "6066#8"),
    HandshakeType.KEY_UPDATE: ("KeyUpdate", key_update, "8446#4.6.3"),
}
_TLS12_RFC: dict[int, str] = {
    HandshakeType.SERVER_HELLO: "5246#7.4.1.3",
    HandshakeType.CLIENT_HELLO: "5246#7.4.1.2",
    HandshakeType.CERTIFICATE: "5246#7.4.2",
    HandshakeType.CERTIFICATE_REQUEST: "5246#7.4.4",
    HandshakeType.CERTIFICATE_VERIFY: "5246#7.4.8",
    HandshakeType.FINISHED: "5246#7.4.9",
    HandshakeType.NEW_SESSION_TICKET: "5077#3.3",
}


def handshake_message(data: bytes, start: int, ctx: Context) -> Span:
    """The message starting at ``data[start]`` (Handshake: msg_type, uint24 length,
    body -- RFC 8446 §4). A message cut short by the end of ``data`` is one span."""
    available = len(data) - start
    if available < 4:
        return Span(start, available, "handshake message header (incomplete)",
                    "fewer than 4 bytes: the rest never arrived", "8446#4")
    msg_type = data[start]
    length = int.from_bytes(data[start + 1:start + 4], "big")
    name, annotate, rfc = _MESSAGES.get(msg_type, (f"unknown message {msg_type}", None,
                                                   "8446#4"))
    if not ctx.tls13:
        rfc = _TLS12_RFC.get(msg_type, rfc)
    if msg_type == HandshakeType.SERVER_HELLO and data[start + 6:start + 38] == HRR_RANDOM:
        name = "HelloRetryRequest"
        rfc = "8446#4.1.4"
    total = min(4 + length, available)
    node = Span(start, total, name, f"{length}-byte body", rfc)
    w = Walker(data, start, start + total, node)
    w.uint(1, "msg_type", lambda x: f"{HandshakeType(x).rfc_name.lower()} ({x})", "8446#4")
    w.uint(3, "length", lambda x: f"{x} bytes of body follow", "8446#4")
    body_start = w.pos
    if 4 + length > available:
        w.rest("body (incomplete)", f"{available - 4} of {length} bytes: the rest never "
               "arrived")
        return node
    if annotate is None:
        w.rest("body", hexs(data[body_start:start + total]))
        return node
    try:
        annotate(w, ctx)
        w.finish(name)
    except Truncated as exc:
        del node.children[2:]
        w.pos = body_start
        w.rest("body (does not follow the structure)", f"{exc}; shown as hex")
    return node


def handshake_stream(data: bytes, ctx: Context) -> list[Span]:
    """Every message in a direction's handshake bytes (records joined), in order."""
    out: list[Span] = []
    pos = 0
    while pos < len(data):
        span = handshake_message(data, pos, ctx)
        out.append(span)
        pos = span.end
    return out

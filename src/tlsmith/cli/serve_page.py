"""What ``tlsmith serve`` answers over HTTP: "how's my TLS" -- a page about the client's
own handshake (HTML for a browser, plain text for curl, JSON for programs), and the
byte-level explainer of that very connection.

The facts are gathered once per answer from the connection's trace (what the core gave
this connection's observer) into one JSON-ready dict (``gather``); the HTML, the text
and the JSON are three renderings of that dict, so they always say the same thing.

Which rendering a request gets (``choose_format``):

* ``/json`` -> JSON, ``/text`` -> text; ``/json/<id>``, ``/explain/<id>`` -> an earlier
  connection's JSON or byte-level explainer (the page links to both);
* otherwise content negotiation: an Accept naming text/html (a browser) -> HTML; a
  ``curl/`` or ``Wget/`` User-Agent -> text; an Accept naming application/json -> JSON,
  text/plain -> text; anything else (no Accept, ``*/*``) -> HTML, as before this page
  existed (``openssl s_client``, ``tlsmith connect --http``).

Each answered connection's trace is kept under a random id in a bounded LRU
(``ConnectionTraces``), so a link followed on a new connection (this server says
``Connection: close``) still finds it. The explainer shows that connection's secrets:
the id is 128 random bits, only ever sent inside that connection.
"""

from __future__ import annotations

import functools
import html
import json
import secrets
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tlsmith.codec import extensions as ext
from tlsmith.codec.enums import (
    CipherSuite,
    NamedGroup,
    OpenEnum,
    ProtocolVersion,
    SignatureScheme,
    is_grease,
)
from tlsmith.config import ServerConfig
from tlsmith.crypto.suites import suite_info
from tlsmith.events import HandshakeInfo
from tlsmith.observe import (
    CheckTrace,
    CompleteTrace,
    MessageTrace,
    NoteTrace,
    RecordTrace,
    SecretTrace,
    TraceRecord,
)

#: The ALPN protocols ``serve`` speaks in HTTP mode (RFC 7301 §6 registry names): it
#: answers HTTP/1.x and nothing else, so it must not agree to h2 (the client would then
#: speak HTTP/2 to it and get an HTTP/1.0 reply it cannot read).
HTTP_ALPN = ("http/1.1", "http/1.0")

#: JSON schema tag of ``/json`` (bump on an incompatible change).
SCHEMA = "tlsmith-serve-page/1"


def unspoken_alpn(alpn: Sequence[str]) -> list[str]:
    """The ``--alpn`` values an HTTP-mode ``serve`` could not honour."""
    return [p for p in alpn if p not in HTTP_ALPN]


# --------------------------------------------------------------------- per-connection
@dataclass
class Captured:
    """One answered connection: what its page needs, later too (``/explain/<id>``)."""

    id: str
    peer: str
    info: HandshakeInfo
    client_certificate: str
    records: list[TraceRecord]  # the connection's own list: it grows until it closes


@dataclass
class ConnectionTraces:
    """The observer ``serve`` adds in HTTP mode. TLSServer runs each connection (its
    handshake and handler) in one thread, so a thread-local list is that connection's
    trace -- ``begin()`` starts a new one (TLSServer's ``on_connection``: its threads
    serve one connection after another). Observing costs a list append per record;
    the page's facts are built from the records only when a request comes
    (``capture`` then ``gather``). ``capture`` files the trace under a random id, and
    only the newest ``keep`` connections are kept. A connection keeps at most
    ``max_records`` records (a page's request and reply take a handful)."""

    config: ServerConfig
    keep: int = 64
    max_records: int = 400
    _local: threading.local = field(default_factory=threading.local, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _kept: OrderedDict[str, Captured] = field(default_factory=OrderedDict, repr=False)

    def __call__(self, record: TraceRecord) -> None:
        try:
            records: list[TraceRecord] = self._local.records
        except AttributeError:
            records = self._local.records = []
        if len(records) < self.max_records:
            records.append(record)

    def begin(self) -> None:
        """A new connection in the calling thread: its trace starts empty (the list a
        capture of the previous connection holds is left to it)."""
        self._local.records = []

    def current_records(self) -> list[TraceRecord]:
        """The calling thread's connection's records so far (the list itself)."""
        try:
            records: list[TraceRecord] = self._local.records
        except AttributeError:
            records = self._local.records = []
        return records

    def capture(self, info: HandshakeInfo, peer: tuple[Any, ...],
                client_certificate: str = "-") -> Captured:
        """File the calling thread's connection (call it from the handler)."""
        records = self.current_records()
        captured = Captured(secrets.token_hex(16), f"{peer[0]}:{peer[1]}", info,
                            client_certificate, records)
        with self._lock:
            self._kept[captured.id] = captured
            while len(self._kept) > self.keep:
                self._kept.popitem(last=False)
        return captured

    def get(self, conn_id: str) -> Captured | None:
        with self._lock:
            found = self._kept.get(conn_id)
            if found is not None:
                self._kept.move_to_end(conn_id)
            return found


# --------------------------------------------------------------------- facts
def _code(value: int) -> str:
    return f"0x{value:04x}"


def _item(member: OpenEnum) -> dict[str, Any]:
    """A code point: its name (GREASE values as such, unknown ones by number)."""
    value = int(member)
    grease = is_grease(value)
    name = ("GREASE" if grease else member.name if member.known
            else f"unknown {_code(value)}")
    return {"name": name or _code(value), "value": _code(value), "grease": grease}


def _version_item(v: int) -> dict[str, Any]:
    out = _item(ProtocolVersion(v))
    if not out["grease"] and ProtocolVersion(v).known:
        out["name"] = ProtocolVersion(v).label
    return out


def _alpn_names(names: Sequence[bytes]) -> list[str]:
    return [n.decode("ascii", "replace") for n in names]


def _extension_detail(e: Any) -> str:
    """A few words on an extension's body (the full lists have sections of their own)."""
    if isinstance(e, ext.ServerName):
        return e.host_name or ""
    if isinstance(e, ext.SupportedVersionsClientHello):
        return ", ".join(_version_item(v)["name"] for v in e.versions)
    if isinstance(e, ext.SupportedGroups):
        return f"{len(e.named_group_list)} groups"
    if isinstance(e, ext.KeyShareClientHello):
        return ", ".join(f"{_item(s.group)['name']} ({len(s.key_exchange)} B)"
                         for s in e.client_shares)
    if isinstance(e, ext.SignatureAlgorithms | ext.SignatureAlgorithmsCert):
        return f"{len(e.supported_signature_algorithms)} schemes"
    if isinstance(e, ext.ApplicationLayerProtocolNegotiation):
        return ", ".join(_alpn_names(e.protocol_name_list))
    if isinstance(e, ext.PskKeyExchangeModes):
        return ", ".join(_item(m)["name"].lower() for m in e.ke_modes)
    if isinstance(e, ext.ECPointFormats):
        return ", ".join(str(f) for f in e.ec_point_format_list)
    if isinstance(e, ext.PreSharedKeyClientHello):
        return f"{len(e.identities)} identities"
    if isinstance(e, ext.UnknownExtension | ext.MalformedExtension):
        data = bytes(getattr(e, "data", b""))
        return data[:32].hex() + ("…" if len(data) > 32 else "") if data else "(empty)"
    return ""


def _extension_item(e: Any) -> dict[str, Any]:
    t = e.extension_type
    body = e.serialize_body()
    item = _item(t)
    if item["name"] == t.name and t.known:
        item["name"] = ext.ext_name(t)
    item.update(length=len(body), detail=_extension_detail(e))
    if not t.known or is_grease(int(t)):
        item["hex"] = body.hex()
    return item


def describe_client_hello(ch: Any, raw: bytes) -> dict[str, Any]:
    """Every field of a ClientHello, in the order sent; code points as name + value."""
    exts = ch.extensions
    versions = ext.find_extension(exts, ext.SupportedVersionsClientHello)
    groups = ext.find_extension(exts, ext.SupportedGroups)
    shares = ext.find_extension(exts, ext.KeyShareClientHello)
    sigalgs = ext.find_extension(exts, ext.SignatureAlgorithms)
    alpn = ext.find_extension(exts, ext.ApplicationLayerProtocolNegotiation)
    sni = ext.find_extension(exts, ext.ServerName)
    return {
        "length": len(raw),
        "legacy_version": _version_item(ch.legacy_version),
        "random": bytes(ch.random).hex(),
        "legacy_session_id": bytes(ch.legacy_session_id).hex(),
        "supported_versions": ([_version_item(v) for v in versions.versions]
                               if versions else []),
        "cipher_suites": [_item(CipherSuite(s)) for s in ch.cipher_suites],
        "compression_methods": [int(m) for m in ch.legacy_compression_methods],
        "supported_groups": ([_item(NamedGroup(g)) for g in groups.named_group_list]
                             if groups else []),
        "key_shares": ([{**_item(NamedGroup(s.group)), "length": len(s.key_exchange)}
                        for s in shares.client_shares] if shares else []),
        "signature_algorithms": ([_item(SignatureScheme(s))
                                  for s in sigalgs.supported_signature_algorithms]
                                 if sigalgs else []),
        "alpn": _alpn_names(alpn.protocol_name_list) if alpn else [],
        "server_name": sni.host_name if sni else None,
        "extensions": [_extension_item(e) for e in exts],
        "raw": raw.hex(),
    }


def _fingerprints(records: Sequence[TraceRecord]) -> dict[str, str | None]:
    """JA3/JA4 of the client's first ClientHello, JA3S/JA4S of our first ServerHello."""
    from tlsmith.fingerprint import fingerprints

    found = fingerprints(records)
    return {k: found.get(k) for k in ("ja4", "ja3", "ja4s", "ja3s")}


def _server_chain(records: Sequence[TraceRecord]) -> list[bytes]:
    for rec in records:
        if isinstance(rec, MessageTrace) and rec.direction == "sent" and rec.name in (
                "Certificate", "Certificate12"):
            entries = rec.message.certificate_list
            return [bytes(getattr(e, "cert_data", e)) for e in entries]
    return []


def _certificates(chain: Sequence[bytes]) -> list[dict[str, Any]]:
    return [dict(c) for c in _described(tuple(chain))]


@functools.lru_cache(maxsize=16)
def _described(chain: tuple[bytes, ...]) -> tuple[dict[str, Any], ...]:
    """The server's own chains: the same few on every page, so parsed once each."""
    from tlsmith.x509.verify import describe_chain

    return tuple(describe_chain(chain))


def _names(values: Sequence[OpenEnum]) -> str:
    return ", ".join(_item(v)["name"] for v in values) or "none"


def explain_choices(info: HandshakeInfo, config: ServerConfig, ch: Any | None,
                    chain: Sequence[bytes]) -> list[dict[str, str]]:
    """What this server chose and by which rule (handshake/negotiate.py, server13.py,
    server12.py), in the words of those rules, with this client's offer."""
    why: list[dict[str, str]] = []
    tls13 = info.version == ProtocolVersion.TLS13
    exts = ch.extensions if ch is not None else ()
    sv = ext.find_extension(exts, ext.SupportedVersionsClientHello)
    offered_versions = ([_version_item(v)["name"] for v in sv.versions] if sv
                        else [_version_item(ch.legacy_version)["name"]] if ch else [])
    why.append({"what": "version", "chosen": info.version_label, "rule": (
        "the highest version both sides speak (RFC 8446 §4.2.1): you offered "
        + ", ".join(offered_versions) + "; this server speaks "
        + ", ".join(v.label for v in config.versions))})
    ours = [s for s in config.cipher_suites
            if (i := suite_info(s)) is not None and i.tls13 is tls13]
    rule = ("server preference (RFC 8446 §4.1.1, RFC 5246 §7.4.1.2): the first of this "
            f"server's {'TLS 1.3' if tls13 else 'TLS 1.2'} suites ("
            + ", ".join(CipherSuite(s).name for s in ours) + ") that you offer"
            if config.prefer_server_cipher_order else
            "client preference: the first of your suites this server also has")
    if not tls13:
        rule += ", and whose key exchange, certificate and record protection fit"
    why.append({"what": "cipher suite", "chosen": info.cipher_suite.name, "rule": rule})
    groups = ext.find_extension(exts, ext.SupportedGroups)
    shares = ext.find_extension(exts, ext.KeyShareClientHello)
    group = info.group.name if info.group else "none"
    if tls13 and info.resumed_with == "psk_ke":
        rule = "resumed with psk_ke: the pre-shared key alone, no key exchange"
    elif tls13:
        share_names = _names([s.group for s in shares.client_shares]) if shares else "none"
        rule = ("this server's most preferred group (" + _names(config.groups)
                + f") that you sent a key share for (your shares: {share_names})")
        if info.hello_retry_request:
            rule = ("none of your key shares (" + share_names + ") was for a group this "
                    "server takes, so it asked with a HelloRetryRequest for its most "
                    "preferred group in your supported_groups (RFC 8446 §4.1.4)")
    elif info.key_exchange == "RSA":
        rule = "RSA key transport: no key exchange group (and no forward secrecy)"
    elif info.key_exchange == "DHE":
        rule = ("FFDHE (RFC 7919 §4): this server's first FFDHE group among those you "
                "list, or its own first if you list none")
    else:
        rule = ("the first of this server's curves (" + _names(config.groups)
                + ") that you list in supported_groups (RFC 8422 §5.1)")
    if groups is not None and not tls13 and info.key_exchange == "ECDHE":
        rule += f"; you list {_names(groups.named_group_list)}"
    why.append({"what": "key exchange group", "chosen": group, "rule": rule})
    if info.resumed:
        why.append({"what": "certificate", "chosen": "none",
                    "rule": "resumed: no Certificate and no CertificateVerify"})
    else:
        why.append({"what": "signature scheme", "chosen": (
            info.signature_scheme.name if info.signature_scheme else "none"), "rule": (
            "the first of your signature_algorithms (in your order) that this server's "
            "certificate key can sign with and this server allows (RFC 8446 §4.4.2.2)"
            if info.signature_scheme else
            "none: RSA key transport signs nothing")})
        why.append({"what": "certificate", "chosen": _leaf_subject(chain),
                    "rule": _certificate_rule(info.server_name, chain)})
    alpn = ext.find_extension(exts, ext.ApplicationLayerProtocolNegotiation)
    if not config.alpn_protocols:
        rule = ("not negotiated: this server was started without --alpn, so it ignores "
                "ALPN (serve --alpn http/1.1 agrees to HTTP/1.1)")
    elif alpn is None:
        rule = "not negotiated: you offered no ALPN"
    else:
        rule = ("server preference (RFC 7301 §3.2): the first of this server's protocols ("
                + ", ".join(config.alpn_protocols) + ") that you offer ("
                + ", ".join(_alpn_names(alpn.protocol_name_list))
                + "); it speaks only HTTP/1.x, so it never agrees to h2")
    why.append({"what": "ALPN", "chosen": info.alpn or "none", "rule": rule})
    return why


def _leaf_subject(chain: Sequence[bytes]) -> str:
    if not chain:
        return "none"
    return str(_certificates(chain[:1])[0].get("subject") or "(empty subject)")


def _certificate_rule(sni: str | None, chain: Sequence[bytes]) -> str:
    from tlsmith.x509.leaf import certificate_names, name_matches, parse_der

    if not chain:
        return "no certificate was sent"
    try:
        names = certificate_names(parse_der(chain[0]))
    except Exception:
        names = ()
    if sni and any(name_matches(n, sni) for n in names):
        return (f"a certificate whose names match the name you asked for ({sni}) and whose "
                "key can sign with a scheme you accept (RFC 6066 §3)")
    if sni:
        return (f"none of this server's certificates names {sni}: the first whose key can "
                "sign with a scheme you accept")
    return ("you sent no server name (SNI): the first certificate whose key can sign "
            "with a scheme you accept")


def ladder(records: Sequence[TraceRecord]) -> list[dict[str, Any]]:
    """The handshake as the server saw it, one entry per record (no secret values)."""
    from tlsmith.trace import is_protected, negotiated_version, summarize, wire_name

    version = negotiated_version(records)
    start = records[0].time if records else 0.0
    out: list[dict[str, Any]] = []
    for rec in records:
        ms = round((rec.time - start) * 1000, 3)
        if isinstance(rec, MessageTrace):
            name = wire_name(rec.name)
            if rec.name == "ServerHello" and rec.message.is_hello_retry_request:
                name = "HelloRetryRequest"
            try:
                summary = summarize(rec.message, rec.name, version=version)
            except Exception:  # a summary is a convenience: never fail the page on it
                summary = name
            out.append({"t_ms": ms, "kind": "message",
                        "from": "client" if rec.direction == "received" else "server",
                        "name": name, "protected": is_protected(rec),
                        "epoch": str(rec.epoch), "length": rec.length,
                        "summary": summary})
        elif isinstance(rec, RecordTrace) and rec.content_type == 23:
            out.append({"t_ms": ms, "kind": "record",
                        "from": "client" if rec.direction == "received" else "server",
                        "name": "application_data", "protected": rec.protected,
                        "epoch": str(rec.epoch), "length": len(rec.wire),
                        "summary": f"application_data ({len(rec.plaintext)} bytes of "
                                   f"plaintext in a {len(rec.wire)}-byte record)"})
        elif isinstance(rec, SecretTrace):
            out.append({"t_ms": ms, "kind": "secret", "name": rec.name,
                        "summary": f"{rec.name} ({len(rec.value)} bytes)"})
        elif isinstance(rec, CheckTrace):
            out.append({"t_ms": ms, "kind": "check", "name": rec.name, "ok": rec.ok,
                        "summary": f"{rec.name}: {rec.detail}"})
        elif isinstance(rec, NoteTrace):
            out.append({"t_ms": ms, "kind": "note", "summary": rec.text})
        elif isinstance(rec, CompleteTrace):
            out.append({"t_ms": ms, "kind": "complete", "summary": "handshake complete"})
    return out


def negotiated(info: HandshakeInfo, peer: str, client_certificate: str
               ) -> list[tuple[str, str]]:
    """The summary rows (the page's first table, kept as it always was)."""
    return [
        ("Client", peer),
        ("Protocol", info.version_label),
        ("Cipher suite", info.cipher_suite.name),
        ("Key exchange (TLS 1.2)", info.key_exchange or "-"),
        ("Extended master secret", "-" if info.extended_master_secret is None
         else "yes" if info.extended_master_secret else "no"),
        ("Key exchange group", info.group.name.lower() if info.group else "-"),
        ("Signature scheme", info.signature_scheme.name.lower()
         if info.signature_scheme else "-"),
        ("ALPN", info.alpn or "-"),
        ("Server name (SNI)", info.server_name or "-"),
        ("HelloRetryRequest", "yes" if info.hello_retry_request else "no"),
        ("Resumed", f"yes ({info.resumed_with})" if info.resumed else "no"),
        ("Early data (0-RTT)", "-" if info.early_data_accepted is None
         else "accepted" if info.early_data_accepted else "rejected"),
        ("Client random", info.client_random.hex()),
        ("Client certificate", client_certificate),
    ]


def gather(captured: Captured, config: ServerConfig) -> dict[str, Any]:
    """Every fact the page shows, JSON-ready (``/json`` is exactly this)."""
    records = list(captured.records)  # a snapshot: the connection may still add some
    hellos = [r for r in records if isinstance(r, MessageTrace)
              and r.direction == "received" and r.name == "ClientHello"]
    first = hellos[0] if hellos else None
    chain = _server_chain(records)
    info = captured.info
    facts: dict[str, Any] = {
        "schema": SCHEMA,
        "id": captured.id,
        "summary": dict(negotiated(info, captured.peer, captured.client_certificate)),
        "why": explain_choices(info, config, first.message if first else None, chain),
        "client_hello": describe_client_hello(first.message, first.raw) if first else None,
        "client_hello_after_retry": (describe_client_hello(hellos[1].message, hellos[1].raw)
                                     if len(hellos) > 1 else None),
        "ladder": ladder(records),
        "certificates": _certificates(chain),
        "links": {"explain": f"/explain/{captured.id}", "json": f"/json/{captured.id}"},
    }
    facts.update(_fingerprints(records))
    return facts


# --------------------------------------------------------------------- renderings
_CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:72em;padding:0 1em;
color:#1d2330;background:#fbfbfd}
h1{font-size:1.6em}h2{margin-top:1.8em;border-bottom:1px solid #ccd;font-size:1.2em}
table{border-collapse:collapse;margin:.5em 0}th,td{text-align:left;vertical-align:top;
padding:.15em .8em .15em 0}th{font-weight:600;white-space:nowrap}
code,.mono{font-family:ui-monospace,monospace;font-size:.92em;overflow-wrap:anywhere}
.grease{color:#8a5a00;background:#fff3d6;border-radius:3px;padding:0 .25em}
.unknown{color:#6a3d9a}ol.codes{columns:3 30em;column-gap:2em;padding-left:2.5em}
ol.codes li{break-inside:avoid;overflow-wrap:anywhere}
.ladder td.arrow{font-family:ui-monospace,monospace;white-space:nowrap;color:#556}
.ladder td:first-child{white-space:nowrap;text-align:right;color:#556}
.ok{color:#18794e}.bad{color:#b42318}.secret{color:#6b4fbb}.note{color:#556}
.prot{font-size:.75em;color:#18794e;border:1px solid #9bd3b5;border-radius:3px;padding:0 .3em}
.why td:first-child{white-space:nowrap;font-weight:600}
.why td:nth-child(2) code{white-space:nowrap}
.ja4{font-size:1.15em;font-weight:600}
"""


def _bytes(n: int) -> str:
    return f"{n} byte" if n == 1 else f"{n} bytes"


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _code_html(item: dict[str, Any]) -> str:
    if item["grease"]:
        return (f'<span class="grease" data-value="{item["value"]}">GREASE '
                f'<code>{item["value"]}</code></span>')
    cls = ' class="unknown"' if item["name"].startswith("unknown") else ""
    return f'<span{cls}>{_esc(item["name"])} <code>{item["value"]}</code></span>'


def _codes_html(items: Sequence[dict[str, Any]], cls: str) -> str:
    if not items:
        return "<p>(not sent)</p>"
    return (f'<ol class="codes {cls}">'
            + "".join(f"<li>{_code_html(i)}</li>" for i in items) + "</ol>")


def _client_hello_html(ch: dict[str, Any], fingerprint: str | None) -> str:
    rows = [
        ("Length", f"{ch['length']} bytes (handshake header included)"),
        ("legacy_version", ch["legacy_version"]["name"]),
        ("random", ch["random"]),
        ("legacy_session_id", ch["legacy_session_id"] or "(empty)"),
        ("server_name (SNI)", ch["server_name"] or "(not sent)"),
        ("ALPN", ", ".join(ch["alpn"]) or "(not sent)"),
        ("compression methods", ", ".join(
            "null (0)" if m == 0 else str(m) for m in ch["compression_methods"])),
    ]
    out = ['<table class="ch">']
    out += [f"<tr><th>{_esc(k)}</th><td><code>{_esc(v)}</code></td></tr>" for k, v in rows]
    out.append(f'<tr><th>JA4</th><td><code class="ja4" id="ja4">{_esc(fingerprint)}'
               "</code></td></tr></table>")
    out.append("<h3>supported_versions</h3>"
               + _codes_html(ch["supported_versions"], "versions"))
    out.append(f"<h3>Cipher suites ({len(ch['cipher_suites'])})</h3>"
               + _codes_html(ch["cipher_suites"], "suites"))
    out.append(f"<h3>supported_groups ({len(ch['supported_groups'])})</h3>"
               + _codes_html(ch["supported_groups"], "groups"))
    out.append("<h3>Key shares</h3><table class=\"key-shares\">")
    for share in ch["key_shares"]:
        out.append(f'<tr class="key-share" data-group="{_esc(share["name"])}" '
                   f'data-length="{share["length"]}"><td>{_code_html(share)}</td>'
                   f"<td>{_bytes(share['length'])}</td></tr>")
    out.append("</table>")
    out.append(f"<h3>signature_algorithms ({len(ch['signature_algorithms'])})</h3>"
               + _codes_html(ch["signature_algorithms"], "sigalgs"))
    out.append(f'<h3 id="extensions">Extensions, in the order sent ({len(ch["extensions"])})'
               "</h3>"
               '<table class="extensions"><tr><th>#</th><th>type</th><th>bytes</th>'
               "<th>content</th></tr>")
    for n, e in enumerate(ch["extensions"], 1):
        detail = e["detail"]
        out.append(f"<tr><td>{n}</td><td>{_code_html(e)}</td><td>{e['length']}</td>"
                   f'<td class="mono">{_esc(detail)}</td></tr>')
    out.append("</table>")
    return "\n".join(out)


def _ladder_html(steps: Sequence[dict[str, Any]]) -> str:
    out = ['<table class="ladder">']
    for s in steps:
        kind = s["kind"]
        if kind in ("message", "record"):
            arrow = ("client ──▶ server" if s["from"] == "client"
                     else "client ◀── server")
            lock = ' <span class="prot">encrypted</span>' if s["protected"] else ""
            out.append(f'<tr class="msg"><td>{s["t_ms"]:.2f} ms</td>'
                       f'<td class="arrow">{arrow}</td><td>{_esc(s["summary"])}{lock}</td>'
                       "</tr>")
            continue
        # Marks every font has (no emoji: a headless browser may have no emoji font).
        cls, mark = {"secret": ("secret", "◆"), "note": ("note", "•"),
                     "complete": ("ok", "✔")}.get(kind, ("", ""))
        if kind == "check":
            cls, mark = ("ok", "✓") if s["ok"] else ("bad", "✗")
        out.append(f'<tr class="{cls}"><td>{s["t_ms"]:.2f} ms</td><td class="arrow"></td>'
                   f"<td>{mark} {_esc(s['summary'])}</td></tr>")
    out.append("</table>")
    return "\n".join(out)


def _certificates_html(certs: Sequence[dict[str, Any]]) -> str:
    if not certs:
        return "<p>No certificate was sent (a resumed session).</p>"
    out = []
    for c in certs:
        role = "leaf (this server)" if c.get("position") == "0" else "issuer"
        rows = [("subject", c.get("subject")), ("issuer", c.get("issuer")),
                ("valid", f"{c.get('not_before')} to {c.get('not_after')}"),
                ("names (SAN)", ", ".join(c.get("subject_alt_names") or []) or "-"),
                ("key", c.get("public_key", "-")),
                ("signed with", c.get("signature_algorithm", "-")),
                ("SHA-256", c.get("sha256_fingerprint"))]
        out.append(f"<h3>#{c.get('position')}: {role}</h3><table class=\"cert\">"
                   + "".join(f"<tr><th>{_esc(k)}</th><td><code>{_esc(v)}</code></td></tr>"
                             for k, v in rows) + "</table>")
    return "\n".join(out)


def render_html(facts: dict[str, Any]) -> str:
    summary = facts["summary"]
    rows = "\n".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>"
                     for k, v in summary.items())
    rows += f'\n<tr><th>JA4</th><td><code class="ja4">{_esc(facts["ja4"])}</code></td></tr>'
    rows += "".join(f"\n<tr><th>{k.upper()}</th><td><code>{_esc(facts[k])}</code></td></tr>"
                    for k in ("ja3", "ja4s", "ja3s"))
    why = "\n".join(f"<tr><td>{_esc(w['what'])}</td><td><code>{_esc(w['chosen'])}</code>"
                    f"</td><td>{_esc(w['rule'])}</td></tr>" for w in facts["why"])
    ch = facts["client_hello"]
    hello = (_client_hello_html(ch, facts["ja4"]) if ch
             else "<p>(the ClientHello was not recorded)</p>")
    retry = facts["client_hello_after_retry"]
    if retry:
        hello += ("\n<h3>Your second ClientHello, after the HelloRetryRequest</h3>"
                  "<p>key shares: " + ", ".join(
                      f"{_esc(s['name'])} ({s['length']} bytes)" for s in retry["key_shares"])
                  + "</p>")
    links = facts["links"]
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>tlsmith: your TLS handshake</title><style>{_CSS}</style></head><body>\n"
        "<h1>tlsmith: your TLS handshake</h1>\n"
        "<p>This page describes the TLS connection your client just made to this "
        "server: what it offered, what the server chose and why, and every step of the "
        f'handshake. <a id="explain" href="{_esc(links["explain"])}">See every byte of '
        'this connection, explained</a> · <a id="json" href="'
        f'{_esc(links["json"])}">JSON</a></p>\n'
        f"<table class=\"summary\">\n{rows}\n</table>\n"
        f'<h2 id="why">What the server chose, and why</h2>\n<table class="why">{why}</table>\n'
        f'<h2 id="hello">Your ClientHello</h2>\n{hello}\n'
        '<h2 id="ladder">The handshake, as the server saw it</h2>\n'
        f"{_ladder_html(facts['ladder'])}\n"
        '<h2 id="certificate">The certificate you were shown</h2>\n'
        f"{_certificates_html(facts['certificates'])}\n"
        "<p><small>Served by tlsmith serve (JSON schema "
        f"{_esc(facts['schema'])}).</small></p>\n</body></html>\n")


def _codes_text(items: Sequence[dict[str, Any]]) -> str:
    return ", ".join(f"GREASE({i['value']})" if i["grease"] else i["name"]
                     for i in items) or "(not sent)"


def render_text(facts: dict[str, Any], base: str = "") -> str:
    """The same facts for a terminal (``curl https://127.0.0.1:8443/``)."""
    width = max(len(k) for k in facts["summary"]) + 2
    out = ["tlsmith: your TLS handshake", ""]
    out += [f"{k:<{width}}{v}" for k, v in facts["summary"].items()]
    out += [f"{k.upper():<{width}}{facts[k]}" for k in ("ja4", "ja3", "ja4s", "ja3s")]
    out += ["", "What the server chose, and why:"]
    out += [f"  {w['what']}: {w['chosen']} -- {w['rule']}" for w in facts["why"]]
    ch = facts["client_hello"]
    if ch:
        out += ["", f"Your ClientHello ({ch['length']} bytes):",
                f"  random             {ch['random']}",
                f"  session id         {ch['legacy_session_id'] or '(empty)'}",
                f"  versions           {_codes_text(ch['supported_versions'])}",
                f"  cipher suites      {_codes_text(ch['cipher_suites'])}",
                f"  groups             {_codes_text(ch['supported_groups'])}",
                "  key shares         " + (", ".join(
                    f"{'GREASE(' + s['value'] + ')' if s['grease'] else s['name']} "
                    f"{s['length']}B" for s in ch["key_shares"]) or "(not sent)"),
                f"  signature algs     {_codes_text(ch['signature_algorithms'])}",
                f"  server name        {ch['server_name'] or '(not sent)'}",
                f"  ALPN               {', '.join(ch['alpn']) or '(not sent)'}",
                "  extensions         " + _codes_text(ch["extensions"])]
    out += ["", "The handshake, as the server saw it:"]
    for s in facts["ladder"]:
        if s["kind"] in ("message", "record"):
            arrow = "client -> server" if s["from"] == "client" else "client <- server"
            lock = " [encrypted]" if s["protected"] else ""
            out.append(f"  {s['t_ms']:9.2f} ms  {arrow}  {s['summary']}{lock}")
        else:
            mark = {"secret": "key", "note": "  *", "complete": " ok"}.get(s["kind"], "")
            if s["kind"] == "check":
                mark = " ok" if s["ok"] else "BAD"
            out.append(f"  {s['t_ms']:9.2f} ms  {mark:>16}  {s['summary']}")
    if facts["certificates"]:
        out += ["", "The certificate you were shown:"]
        for c in facts["certificates"]:
            out += [f"  #{c.get('position')} {c.get('subject')}",
                    f"     issuer {c.get('issuer')}",
                    f"     valid  {c.get('not_before')} to {c.get('not_after')}",
                    f"     names  {', '.join(c.get('subject_alt_names') or []) or '-'}",
                    f"     key    {c.get('public_key', '-')}"]
    links = facts["links"]
    out += ["", f"Every byte of this connection, explained: {base}{links['explain']}",
            f"The same as JSON: {base}{links['json']}", ""]
    return "\n".join(out)


def render_json(facts: dict[str, Any]) -> str:
    return json.dumps(facts, indent=2) + "\n"


# --------------------------------------------------------------------- HTTP
@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased

    @classmethod
    def parse(cls, raw: bytes) -> Request:
        head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        lines = head.split("\r\n")
        parts = lines[0].split(" ")
        method = parts[0] if parts and parts[0] else "GET"
        path = parts[1] if len(parts) > 1 else "/"
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        return cls(method, path.split("?", 1)[0], headers)


@dataclass(frozen=True)
class Response:
    status: str
    content_type: str
    body: bytes

    def to_bytes(self, *, head_only: bool = False) -> bytes:
        head = (f"HTTP/1.0 {self.status}\r\nContent-Type: {self.content_type}\r\n"
                f"Content-Length: {len(self.body)}\r\nCache-Control: no-store\r\n"
                "Connection: close\r\n\r\n").encode()
        return head if head_only else head + self.body


_HTML = "text/html; charset=utf-8"
_TEXT = "text/plain; charset=utf-8"
_JSON = "application/json"


def choose_format(request: Request) -> str:
    """"html", "text" or "json" for a page request (see the module docstring)."""
    accept = request.headers.get("accept", "").lower()
    agent = request.headers.get("user-agent", "")
    if "text/html" in accept:
        return "html"
    if agent.startswith(("curl/", "Wget/")):
        return "text"
    if "application/json" in accept:
        return "json"
    if "text/plain" in accept:
        return "text"
    return "html"


def _not_found(what: str) -> Response:
    return Response("404 Not Found", _TEXT, f"{what}\n".encode())


def answer(request: Request, captured: Captured, traces: ConnectionTraces) -> Response:
    """The response to one HTTP request on the connection ``captured``."""
    path = request.path
    if path == "/favicon.ico":
        return _not_found("no favicon here")
    kind, _, conn_id = path.strip("/").partition("/")
    if kind in ("explain", "json") and conn_id:
        earlier = traces.get(conn_id)
        if earlier is None:
            return _not_found(f"no connection {conn_id} here: this server keeps the last "
                              f"{traces.keep} (and each --workers process its own)")
        if kind == "json":
            return Response("200 OK", _JSON, render_json(gather(earlier,
                                                                traces.config)).encode())
        from tlsmith.explainer import render_explainer

        return Response("200 OK", _HTML,
                        render_explainer(list(earlier.records), local="server").encode())
    fmt = {"json": "json", "text": "text"}.get(kind) or choose_format(request)
    facts = gather(captured, traces.config)
    if fmt == "json":
        return Response("200 OK", _JSON, render_json(facts).encode())
    if fmt == "text":
        host = request.headers.get("host")
        base = f"https://{host}" if host else ""
        return Response("200 OK", _TEXT, render_text(facts, base).encode())
    return Response("200 OK", _HTML, render_html(facts).encode())

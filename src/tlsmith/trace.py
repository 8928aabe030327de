"""Rendering the core's trace stream: a ladder diagram for people, JSON for machines.

This module sits above the core: the core only calls an observer with records
(tlsmith.observe); nothing here is imported by the core.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from tlsmith.codec.enums import AlertDescription, AlertLevel, ProtocolVersion
from tlsmith.observe import (
    CheckTrace,
    Epoch,
    MessageTrace,
    NoteTrace,
    SecretTrace,
    TraceRecord,
)

#: The ladder's width in columns (the arrows are ``LADDER_WIDTH - 7`` wide).
LADDER_WIDTH = 72

# tlsmith's class name -> the message's name on the wire (RFC 5246 §7.4): TLS 1.2 has one
# ServerKeyExchange / ClientKeyExchange per key exchange, and its own Certificate,
# CertificateRequest and NewSessionTicket forms.
_WIRE_NAMES = {
    "Certificate12": "Certificate",
    "CertificateRequest12": "CertificateRequest",
    "NewSessionTicket12": "NewSessionTicket",
    "ServerKeyExchangeECDHE": "ServerKeyExchange",
    "ServerKeyExchangeDHE": "ServerKeyExchange",
    "ClientKeyExchangeECDHE": "ClientKeyExchange",
    "ClientKeyExchangeDHE": "ClientKeyExchange",
    "ClientKeyExchangeRSA": "ClientKeyExchange",
}
# Messages that exist only in TLS 1.2: seeing one tells which version a trace is.
_TLS12_ONLY = frozenset({*_WIRE_NAMES, "ServerHelloDone", "HelloRequest", "CertificateStatus"})


@dataclass
class TraceCollector:
    """An observer that keeps every record, and its time relative to the first one --
    read from the connection's injected clock (``config.clock``), so a replayed handshake
    with the same clock gives an identical trace."""

    records: list[TraceRecord] = field(default_factory=list)
    started: float | None = None
    offsets: list[float] = field(default_factory=list)

    def __call__(self, record: TraceRecord) -> None:
        if self.started is None:
            self.started = record.time
        self.records.append(record)
        self.offsets.append(record.time - self.started)


def _name(v: Any) -> str:
    return str(getattr(v, "name", v))


def wire_name(name: str) -> str:
    """The RFC name of a traced message (``ServerKeyExchangeDHE`` -> ``ServerKeyExchange``)."""
    return _WIRE_NAMES.get(name, name)


def negotiated_version(records: Iterable[TraceRecord]) -> ProtocolVersion | None:
    """The version a trace shows: from the ServerHello (its supported_versions, else its
    legacy_version), else from a message only TLS 1.2 has; None if it cannot tell yet."""
    from tlsmith.codec import extensions as ext

    for rec in records:
        if not isinstance(rec, MessageTrace):
            continue
        if rec.name == "ServerHello" and not rec.message.is_hello_retry_request:
            sv = ext.find_extension(rec.message.extensions, ext.SupportedVersionsServerHello)
            return ProtocolVersion(sv.selected_version if sv else rec.message.legacy_version)
        if rec.name in _TLS12_ONLY:
            return ProtocolVersion.TLS12
    return None


def _leaf_key(der: bytes) -> str:
    """"RSA-2048", "ECDSA secp256r1", "Ed25519"... for a DER certificate ("" if unreadable)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

    try:
        key = x509.load_der_x509_certificate(der).public_key()
    except Exception:  # a trace of a malformed certificate still renders
        return ""
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA-{key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"ECDSA-{key.curve.name}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    return type(key).__name__


def _certificates(certificate_list: tuple[Any, ...]) -> list[str]:
    parts = [f"chain={len(certificate_list)}"]
    if certificate_list:
        leaf = certificate_list[0]
        key = _leaf_key(getattr(leaf, "cert_data", leaf))
        if key:
            parts.append(f"leaf={key}")
    return parts


def _dhe_prime(dh_p: bytes, dh_g: bytes) -> str:
    from tlsmith.crypto.kx import ffdhe_group_for_params

    p = int.from_bytes(dh_p, "big")
    named = ffdhe_group_for_params(p, int.from_bytes(dh_g, "big"))
    return named.name if named else f"p={p.bit_length()} bits"


def _signed(algorithm: Any) -> list[str]:
    return [f"sig={_name(algorithm)}"] if algorithm is not None else ["unsigned"]


def summarize(message: Any, name: str | None = None, *,
              version: ProtocolVersion | None = None) -> str:
    """One line saying what matters in a handshake message (or alert, or CCS), most
    important first. ``version`` (see ``negotiated_version``) says what a
    ChangeCipherSpec means."""
    from tlsmith.codec import extensions as ext

    kind = name or type(message).__name__
    exts = getattr(message, "extensions", ())
    parts: list[str] = []
    if kind == "ClientHello":
        sni = ext.find_extension(exts, ext.ServerName)
        if sni and sni.host_name:
            parts.append(f"sni={sni.host_name}")
        svc = ext.find_extension(exts, ext.SupportedVersionsClientHello)
        offered = svc.versions if svc else (message.legacy_version,)
        parts.append("versions=" + ",".join(ProtocolVersion(v).label.removeprefix("TLSv")
                                            for v in offered))
        suites = [_name(s) for s in message.cipher_suites]
        listed = ",".join(suites)
        if len(suites) > 2:  # the first says most; the whole list is in the JSON trace
            listed = f"{suites[0]},… ({len(suites)})"
        parts.append("suites=" + listed)
        ks = ext.find_extension(exts, ext.KeyShareClientHello)
        if ks:
            parts.append("key_share=" + ",".join(_name(e.group) for e in ks.client_shares))
        alpn = ext.find_extension(exts, ext.ApplicationLayerProtocolNegotiation)
        if alpn:
            parts.append("alpn=" + ",".join(p.decode("ascii", "replace")
                                            for p in alpn.protocol_name_list))
        ticket = ext.find_extension(exts, ext.SessionTicket)
        if ticket and ticket.ticket:
            parts.append(f"session_ticket={len(ticket.ticket)}B (resume TLS 1.2)")
        if ext.find_extension(exts, ext.EarlyDataIndication):
            parts.append("early_data (0-RTT follows)")
        psk = ext.find_extension(exts, ext.PreSharedKeyClientHello)
        if psk:
            parts.append(f"pre_shared_key={len(psk.identities)} identit"
                         + ("y" if len(psk.identities) == 1 else "ies") + " with binders")
    elif kind == "ServerHello":
        if message.is_hello_retry_request:
            kind = "HelloRetryRequest"
            hrr_ks = ext.find_extension(exts, ext.KeyShareHelloRetryRequest)
            if hrr_ks:
                parts.append(f"selected_group={_name(hrr_ks.selected_group)}")
            if ext.find_extension(exts, ext.Cookie):
                parts.append("cookie")
        else:
            sv = ext.find_extension(exts, ext.SupportedVersionsServerHello)
            chosen = ProtocolVersion(sv.selected_version if sv else message.legacy_version)
            parts.append(chosen.label)
            parts.append(_name(message.cipher_suite))
            sh_ks = ext.find_extension(exts, ext.KeyShareServerHello)
            if sh_ks:
                parts.append(f"key_share={_name(sh_ks.server_share.group)}")
            if ext.find_extension(exts, ext.ExtendedMasterSecret):
                parts.append("EMS")
            if ext.find_extension(exts, ext.EncryptThenMac):
                parts.append("ETM")
            if getattr(message, "downgrade_sentinel", None):
                parts.append("downgrade_sentinel")
            if ext.find_extension(exts, ext.RenegotiationInfo):
                parts.append("reneg_info")
            psk_sh = ext.find_extension(exts, ext.PreSharedKeyServerHello)
            if psk_sh is not None:
                parts.append(f"pre_shared_key=identity {psk_sh.selected_identity} "
                             "(resumed)")
            if ext.find_extension(exts, ext.SessionTicket):
                parts.append("session_ticket (a ticket will follow)")
    elif kind in ("Certificate", "Certificate12"):
        parts += _certificates(message.certificate_list)
    elif kind == "CertificateVerify":
        parts.append(_name(message.algorithm))
    elif kind == "Finished":
        parts.append(f"verify_data={message.verify_data[:8].hex()}…")
    elif kind == "EncryptedExtensions":
        parts.append(",".join(_name(e.extension_type) for e in exts) or "(none)")
    elif kind == "KeyUpdate":
        parts.append(_name(message.request_update))
    elif kind == "NewSessionTicket":
        parts.append(f"lifetime={message.ticket_lifetime}s ticket={len(message.ticket)}B")
        early = ext.find_extension(exts, ext.EarlyDataIndication)
        if early is not None:
            parts.append(f"max_early_data={early.max_early_data_size}B")
    elif kind == "EndOfEarlyData":
        parts.append("(0-RTT data ends; handshake keys from here)")
    elif kind == "NewSessionTicket12":
        parts.append(f"lifetime_hint={message.ticket_lifetime_hint}s "
                     f"ticket={len(message.ticket)}B")
    elif kind == "ServerKeyExchangeECDHE":
        parts += ["ECDHE", _name(message.named_curve), f"public={len(message.public)}B",
                  *_signed(message.algorithm)]
    elif kind == "ServerKeyExchangeDHE":
        parts += ["DHE", _dhe_prime(message.dh_p, message.dh_g),
                  f"Ys={len(message.dh_Ys)}B", *_signed(message.algorithm)]
    elif kind == "ClientKeyExchangeECDHE":
        parts += ["ECDHE", f"public={len(message.public)}B"]
    elif kind == "ClientKeyExchangeDHE":
        parts += ["DHE", f"Yc={len(message.dh_Yc)}B"]
    elif kind == "ClientKeyExchangeRSA":
        parts += ["RSA", "encrypted_pre_master_secret="
                  f"{len(message.encrypted_pre_master_secret)}B"]
    elif kind == "CertificateRequest12":
        parts.append("types=" + ",".join(_name(t) for t in message.certificate_types))
        parts.append(f"{len(message.supported_signature_algorithms)} signature algorithms")
        if message.certificate_authorities:
            parts.append(f"{len(message.certificate_authorities)} CA name(s)")
    elif kind == "CertificateStatus":
        parts.append(f"{_name(message.status_type)} response={len(message.ocsp_response)}B")
    elif kind == "HelloRequest":
        parts.append("(the server asks to renegotiate)")
    elif kind == "ChangeCipherSpec":
        if version == ProtocolVersion.TLS12:
            parts.append("(what follows uses the new keys)")
        elif version == ProtocolVersion.TLS13:
            parts.append("(middlebox compatibility; no effect)")
    elif kind == "Alert" and isinstance(message, tuple):
        parts.append(f"{_name(message[0])} {_name(message[1])}")
    kind = wire_name(kind)
    return f"{kind} " + " ".join(parts) if parts else kind


def to_jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, int) and hasattr(value, "name"):
        return _name(value)
    if is_dataclass(value) and not isinstance(value, type):
        out = {f.name: to_jsonable(getattr(value, f.name)) for f in fields(value)
               if f.name != "raw"}
        out["type"] = type(value).__name__
        return out
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    return value


def records_to_json(collector: TraceCollector, *, include_secrets: bool = False
                    ) -> list[dict[str, Any]]:
    """The trace as JSON-ready dicts. A message's ``name`` is tlsmith's class name
    (``ServerKeyExchangeECDHE``); its ``summary`` starts with the RFC name. Secret values
    appear only with ``include_secrets``."""
    version = negotiated_version(collector.records)
    out: list[dict[str, Any]] = []
    for rec, t in zip(collector.records, collector.offsets, strict=True):
        ms = round(t * 1000, 3)
        if isinstance(rec, MessageTrace):
            out.append({"t_ms": ms, "kind": "message", "direction": rec.direction,
                        "name": rec.name, "epoch": rec.epoch, "length": rec.length,
                        "summary": summarize(rec.message, rec.name, version=version),
                        "message": to_jsonable(rec.message)})
        elif isinstance(rec, SecretTrace):
            item: dict[str, Any] = {"t_ms": ms, "kind": "secret", "name": rec.name,
                                    "length": len(rec.value)}
            if include_secrets:
                item["value"] = rec.value.hex()
            out.append(item)
        elif isinstance(rec, CheckTrace):
            out.append({"t_ms": ms, "kind": "check", "name": rec.name, "ok": rec.ok,
                        "detail": rec.detail})
        elif isinstance(rec, NoteTrace):
            out.append({"t_ms": ms, "kind": "note", "text": rec.text})
    return out


def is_protected(rec: MessageTrace) -> bool:
    """Whether the record carrying ``rec`` was encrypted. ChangeCipherSpec never is (in
    TLS 1.2 it *announces* the switch, so the Finished after it is the first message
    under the new keys; in TLS 1.3 it is a plaintext compatibility record)."""
    return rec.name != "ChangeCipherSpec" and rec.epoch != Epoch.PLAINTEXT


def _alert_style(message: Any) -> tuple[str, str]:
    """(mark, rich style) for an alert: fatal in red, a warning other than close_notify
    (no_renegotiation, user_canceled...) in yellow, close_notify plain."""
    if not isinstance(message, tuple) or len(message) != 2:
        return "", ""
    level, description = message
    if level == AlertLevel.FATAL:
        return "✗ ", "bold red"
    if description != AlertDescription.CLOSE_NOTIFY:
        return "⚠ ", "yellow"
    return "", ""


def _wrap(text: str, width: int, max_lines: int = 3) -> list[str]:
    """``text`` in lines of at most ``width`` columns (continuations 2 narrower), the last
    cut with "…" if it needs more than ``max_lines``."""
    import textwrap

    lines = textwrap.wrap(text, width, break_on_hyphens=False)
    if len(lines) <= 1:
        return lines or [text]
    lines = [lines[0], *textwrap.wrap(" ".join(lines[1:]), width - 2,
                                      break_on_hyphens=False)]
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], lines[max_lines - 1][: width - 3] + "…"]
    return lines


def render_ladder(collector: TraceCollector, console: Any, *, left: str = "client",
                  right: str = "server", local_is_left: bool = True,
                  show_secrets: bool = False) -> None:
    """Print the handshake as a ladder: arrows between the two parties, in time order.

    🔒 marks a message sent encrypted, 🔑 a derived secret (its value only with
    ``show_secrets``), ✓/✗ a check, • a note."""
    from rich.markup import escape

    width = LADDER_WIDTH
    version = negotiated_version(collector.records)
    console.print(f"[bold]{left:<12}[/bold]{'':{width - 17}}[bold]{right:>12}[/bold]")
    for rec, t in zip(collector.records, collector.offsets, strict=True):
        stamp = f"[dim]{t * 1000:8.2f} ms[/dim] "
        if isinstance(rec, MessageTrace):
            text = summarize(rec.message, rec.name, version=version)
            lock = "🔒 " if is_protected(rec) else ""
            mark, style = _alert_style(rec.message) if rec.name == "Alert" else ("", "")
            lines = _wrap(f"{mark}{lock}{text}", width - 6)
            label = f"\n{'':16}".join(f"[{style}]{escape(x)}[/{style}]" if style else escape(x)
                                      for x in lines)
            if (rec.direction == "sent") == local_is_left:
                arrow = f"[cyan]{'─' * (width - 8)}▶[/cyan]"
            else:
                arrow = f"[magenta]◀{'─' * (width - 8)}[/magenta]"
            console.print(stamp + f"  {label}\n{'':12}  {arrow}")
        elif isinstance(rec, CheckTrace):
            mark = "[green]✓[/green]" if rec.ok else "[red]✗[/red]"
            console.print(stamp + f"  {mark} {escape(rec.name)}: {escape(rec.detail)}")
        elif isinstance(rec, SecretTrace):
            value = (f" = {rec.value.hex()}" if show_secrets
                     else f" ({len(rec.value)} bytes)")
            console.print(stamp + f"  [yellow]🔑 {escape(rec.name)}[/yellow]{value}")
        elif isinstance(rec, NoteTrace):
            style = "red" if rec.text.startswith("fatal:") else "dim"
            console.print(stamp + f"  [{style}]• {escape(rec.text)}[/{style}]")

"""Rendering the core's trace stream: a ladder diagram for people, JSON for machines.

This module sits above the core: the core only calls an observer with records
(tlsmith.observe); nothing here is imported by the core.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from tlsmith.observe import CheckTrace, MessageTrace, NoteTrace, SecretTrace, TraceRecord


@dataclass
class TraceCollector:
    """An observer that keeps every record (and when it arrived)."""

    records: list[TraceRecord] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    offsets: list[float] = field(default_factory=list)

    def __call__(self, record: TraceRecord) -> None:
        self.records.append(record)
        self.offsets.append(time.monotonic() - self.started)


def _name(v: Any) -> str:
    return str(getattr(v, "name", v))


def summarize(message: Any, name: str | None = None) -> str:
    """One line saying what matters in a handshake message (or alert)."""
    from tlsmith.codec import extensions as ext

    kind = name or type(message).__name__
    exts = getattr(message, "extensions", ())
    parts: list[str] = []
    if kind == "ClientHello":
        sni = ext.find_extension(exts, ext.ServerName)
        if sni and sni.host_name:
            parts.append(f"sni={sni.host_name}")
        parts.append("suites=" + ",".join(_name(s) for s in message.cipher_suites))
        ks = ext.find_extension(exts, ext.KeyShareClientHello)
        if ks:
            parts.append("key_share=" + ",".join(_name(e.group) for e in ks.client_shares))
        alpn = ext.find_extension(exts, ext.ApplicationLayerProtocolNegotiation)
        if alpn:
            parts.append("alpn=" + ",".join(p.decode("ascii", "replace")
                                            for p in alpn.protocol_name_list))
    elif kind == "ServerHello":
        if message.is_hello_retry_request:
            kind = "HelloRetryRequest"
            hrr_ks = ext.find_extension(exts, ext.KeyShareHelloRetryRequest)
            if hrr_ks:
                parts.append(f"selected_group={_name(hrr_ks.selected_group)}")
            if ext.find_extension(exts, ext.Cookie):
                parts.append("cookie")
        else:
            parts.append(f"suite={_name(message.cipher_suite)}")
            sh_ks = ext.find_extension(exts, ext.KeyShareServerHello)
            if sh_ks:
                parts.append(f"key_share={_name(sh_ks.server_share.group)}")
    elif kind == "Certificate":
        parts.append(f"{len(message.certificate_list)} certificate(s)")
    elif kind == "CertificateVerify":
        parts.append(_name(message.algorithm))
    elif kind == "Finished":
        parts.append(f"verify_data={message.verify_data[:8].hex()}…")
    elif kind == "EncryptedExtensions":
        parts.append(",".join(_name(e.extension_type) for e in exts) or "(none)")
    elif kind == "KeyUpdate":
        parts.append(_name(message.request_update))
    elif kind == "NewSessionTicket":
        parts.append(f"lifetime={message.ticket_lifetime}s")
    elif kind == "Alert" and isinstance(message, tuple):
        parts.append(f"{_name(message[0])} {_name(message[1])}")
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
    out: list[dict[str, Any]] = []
    for rec, t in zip(collector.records, collector.offsets, strict=True):
        ms = round(t * 1000, 3)
        if isinstance(rec, MessageTrace):
            out.append({"t_ms": ms, "kind": "message", "direction": rec.direction,
                        "name": rec.name, "epoch": rec.epoch, "length": rec.length,
                        "summary": summarize(rec.message, rec.name),
                        "message": to_jsonable(rec.message)})
        elif isinstance(rec, SecretTrace):
            item: dict[str, Any] = {"t_ms": ms, "kind": "secret", "name": rec.name}
            if include_secrets:
                item["value"] = rec.value.hex()
            out.append(item)
        elif isinstance(rec, CheckTrace):
            out.append({"t_ms": ms, "kind": "check", "name": rec.name, "ok": rec.ok,
                        "detail": rec.detail})
        elif isinstance(rec, NoteTrace):
            out.append({"t_ms": ms, "kind": "note", "text": rec.text})
    return out


def render_ladder(collector: TraceCollector, console: Any, *, left: str = "client",
                  right: str = "server", local_is_left: bool = True,
                  show_secrets: bool = False) -> None:
    """Print the handshake as a ladder: arrows between the two parties, in time order."""
    from rich.markup import escape

    width = 64
    console.print(f"[bold]{left:<12}[/bold]{'':{width - 24}}[bold]{right:>12}[/bold]")
    for rec, t in zip(collector.records, collector.offsets, strict=True):
        stamp = f"[dim]{t * 1000:8.2f} ms[/dim] "
        if isinstance(rec, MessageTrace):
            text = summarize(rec.message, rec.name)
            lock = "🔒 " if rec.epoch in ("handshake", "application", "early") else ""
            rightward = (rec.direction == "sent") == local_is_left
            label = escape(f"{lock}{text}")
            if len(label) > width - 6:
                label = label[: width - 7] + "…"
            if rightward:
                console.print(stamp + f"  {label}\n{'':12}  [cyan]{'─' * (width - 8)}▶[/cyan]")
            else:
                console.print(stamp + f"  {label}\n{'':12}  [magenta]◀{'─' * (width - 8)}"
                              "[/magenta]")
        elif isinstance(rec, CheckTrace):
            mark = "[green]✓[/green]" if rec.ok else "[red]✗[/red]"
            console.print(stamp + f"  {mark} {escape(rec.name)}: {escape(rec.detail)}")
        elif isinstance(rec, SecretTrace):
            value = f" = {rec.value.hex()}" if show_secrets else ""
            console.print(stamp + f"  [yellow]🔑 {rec.name}[/yellow]{value}")
        elif isinstance(rec, NoteTrace):
            console.print(stamp + f"  [dim]• {escape(rec.text)}[/dim]")

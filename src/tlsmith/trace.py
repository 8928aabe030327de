"""Rendering the core's trace stream: a ladder diagram for people, JSON lines for machines.

This module sits above the core: the core only calls an observer with records
(tlsmith.observe); nothing here is imported by the core. The JSON form is versioned and
documented in docs/trace-schema.md (``TRACE_SCHEMA_VERSION``); every field of a message
is decoded by tlsmith.trace_fields.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from typing import IO, Any, Literal

from tlsmith.codec.enums import AlertDescription, AlertLevel, ContentType, ProtocolVersion
from tlsmith.observe import (
    CheckTrace,
    CompleteTrace,
    Epoch,
    MessageTrace,
    NoteTrace,
    RecordTrace,
    SecretTrace,
    TraceRecord,
)
from tlsmith.trace_fields import message_fields, message_to_json, secret_derivation

#: The version of the JSON trace (docs/trace-schema.md); every object carries it as "v".
TRACE_SCHEMA_VERSION = 1

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
    "ServerKeyExchangePSK": "ServerKeyExchange",
    "ClientKeyExchangePSK": "ClientKeyExchange",
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
        if len(suites) > 2:  # the first says most; -v and the JSON trace list them all
            listed = f"{suites[0]},… (+{len(suites) - 1} more)"
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
        data = message.verify_data  # elided with its length: -v and JSON show it whole
        parts.append(f"verify_data={data[:8].hex()}… ({len(data)} bytes)" if len(data) > 8
                     else f"verify_data={data.hex()}")
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
    elif kind == "ServerKeyExchangePSK":  # RFC 4279 §2, RFC 5489 §2
        parts += ["ECDHE_PSK" if message.named_curve is not None else "PSK",
                  f"hint={len(message.psk_identity_hint)}B"]
        if message.named_curve is not None:
            parts += [_name(message.named_curve), f"public={len(message.public)}B"]
    elif kind == "ClientKeyExchangePSK":
        parts += ["PSK", f"identity={len(message.psk_identity)}B"]
        if message.public is not None:
            parts.append(f"public={len(message.public)}B")
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


def is_protected(rec: MessageTrace) -> bool:
    """Whether the record carrying ``rec`` was encrypted. ChangeCipherSpec never is (in
    TLS 1.2 it *announces* the switch, so the Finished after it is the first message
    under the new keys; in TLS 1.3 it is a plaintext compatibility record)."""
    return rec.name != "ChangeCipherSpec" and rec.epoch != Epoch.PLAINTEXT


# ------------------------------------------------------------------------------ flights
Role = Literal["client", "server"]


def local_role(records: Iterable[TraceRecord]) -> Role | None:
    """Which side recorded the trace: the one that sent the ClientHello is the client."""
    for rec in records:
        if isinstance(rec, MessageTrace) and rec.name == "ClientHello":
            return "client" if rec.direction == "sent" else "server"
    return None


def sender(rec: MessageTrace | RecordTrace, role: Role | None) -> Role | None:
    if role is None:
        return None
    if rec.direction == "sent":
        return role
    return "server" if role == "client" else "client"


@dataclass(frozen=True)
class Flights:
    """Flights of a trace (consecutive messages in one direction form a flight, RFC 8446
    §2's picture): ``of[i]`` is record i's flight number (messages only, else None);
    ``round_trips`` counts the peer-answered client flights before the handshake
    completed -- the server flights up to the CompleteTrace (None if it never did)."""

    of: tuple[int | None, ...]
    count: int
    round_trips: int | None
    until_complete: int | None


# TLS 1.3 messages that follow the handshake (RFC 8446 §4.6), and alerts: they form
# flights of their own but are no part of the handshake's round trips.
_AFTER_HANDSHAKE = frozenset({"NewSessionTicket", "KeyUpdate", "Alert"})


def flights(records: Sequence[TraceRecord]) -> Flights:
    role = local_role(records)
    numbers: list[int | None] = []
    n = 0
    last: str | None = None
    handshake_flight = 0  # the last flight with a handshake message before completion
    server_flights: set[int] = set()
    complete = False
    round_trips: int | None = None
    until_complete: int | None = None
    for rec in records:
        if isinstance(rec, MessageTrace):
            if rec.direction != last:
                n += 1
                last = rec.direction
            numbers.append(n)
            if not complete and rec.name not in _AFTER_HANDSHAKE:
                handshake_flight = n
                if sender(rec, role) == "server":
                    server_flights.add(n)
            continue
        numbers.append(None)
        if isinstance(rec, CompleteTrace) and not complete:
            complete = True
            round_trips, until_complete = len(server_flights), handshake_flight
    return Flights(tuple(numbers), n, round_trips, until_complete)


# --------------------------------------------------------------------------------- JSON
@dataclass(frozen=True)
class _SecretContext:
    """What a secret's derivation depends on, read from the whole trace."""

    version: ProtocolVersion | None
    ems: bool  # TLS 1.2 with the extended master secret
    resumed: bool  # TLS 1.2: the master secret came from the session
    kx: str | None  # TLS 1.2 key exchange: "ECDHE", "DHE", "RSA"

    @classmethod
    def of(cls, records: Sequence[TraceRecord]) -> _SecretContext:
        names = {r.name for r in records if isinstance(r, SecretTrace)}
        resumed = any(isinstance(r, CompleteTrace) and r.info.resumed for r in records)
        kx = next((r.name.removeprefix("ClientKeyExchange") for r in records
                   if isinstance(r, MessageTrace) and r.name.startswith("ClientKeyExchange")),
                  None)
        return cls(negotiated_version(records), "session_hash" in names,
                   resumed and "pre_master_secret" not in names, kx)

    def derivation(self, name: str) -> tuple[str, str]:
        return secret_derivation(name, self.version, ems=self.ems, resumed=self.resumed,
                                 kx=self.kx)


def _complete_json(info: Any, flight: Flights) -> dict[str, Any]:
    def code(value: Any) -> str | None:
        return None if value is None else str(value)

    return {
        "version": info.version_label,
        "cipher_suite": code(info.cipher_suite),
        "group": code(info.group),
        "signature_scheme": code(info.signature_scheme),
        "key_exchange": info.key_exchange,
        "alpn": info.alpn,
        "server_name": info.server_name,
        "hello_retry_request": info.hello_retry_request,
        "resumed": info.resumed,
        "resumed_with": info.resumed_with,
        "early_data_accepted": info.early_data_accepted,
        "extended_master_secret": info.extended_master_secret,
        "encrypt_then_mac": info.encrypt_then_mac,
        "certificate_verified": info.certificate_verified,
        "flights": flight.until_complete,
        "round_trips": flight.round_trips,
    }


def _content_type(value: int) -> str:
    return str(ContentType(value)).lower()


def records_to_json(collector: TraceCollector, *, include_secrets: bool = False,
                    connection: int | str | None = None) -> list[dict[str, Any]]:
    """The trace as JSON-ready objects, one per record, in the schema of
    docs/trace-schema.md (version ``TRACE_SCHEMA_VERSION``, key "v"). A message's
    ``name`` is tlsmith's class name (``ServerKeyExchangeECDHE``), ``wire_name`` the
    RFC's; ``summary`` is the ladder's line. Secret values, and the decrypted content of
    protected records, appear only with ``include_secrets``; ``connection`` (an id) is
    added to every object when given."""
    records = collector.records
    version = negotiated_version(records)
    role = local_role(records)
    flight = flights(records)
    context = _SecretContext.of(records)
    started = collector.started or 0.0
    out: list[dict[str, Any]] = []
    for seq, rec in enumerate(records):
        item: dict[str, Any] = {"v": TRACE_SCHEMA_VERSION}
        if connection is not None:
            item["connection"] = connection
        item.update(seq=seq, t_ms=round((rec.time - started) * 1000, 3), time=rec.time)
        if isinstance(rec, MessageTrace):
            item.update(kind="message", direction=rec.direction, sender=sender(rec, role),
                        name=rec.name, wire_name=wire_name(rec.name), epoch=str(rec.epoch),
                        protected=is_protected(rec), flight=flight.of[seq],
                        length=rec.length,
                        summary=summarize(rec.message, rec.name, version=version),
                        message=message_to_json(rec.message, rec.name), raw=rec.raw.hex())
        elif isinstance(rec, RecordTrace):
            item.update(kind="record", direction=rec.direction, sender=sender(rec, role),
                        content_type=_content_type(rec.content_type),
                        epoch=str(rec.epoch), protected=rec.protected,
                        length=len(rec.wire), plaintext_length=len(rec.plaintext),
                        wire=rec.wire.hex())
            if include_secrets and rec.protected:
                item["plaintext"] = rec.plaintext.hex()
        elif isinstance(rec, SecretTrace):
            derivation, rfc = context.derivation(rec.name)
            item.update(kind="secret", name=rec.name, length=len(rec.value),
                        derivation=derivation, rfc=rfc, nss_label=rec.nss_label,
                        client_random=rec.client_random.hex())
            if include_secrets:
                item["value"] = rec.value.hex()
        elif isinstance(rec, CheckTrace):
            item.update(kind="check", name=rec.name, ok=rec.ok, detail=rec.detail)
        elif isinstance(rec, NoteTrace):
            item.update(kind="note", text=rec.text)
        elif isinstance(rec, CompleteTrace):
            item.update(kind="complete", **_complete_json(rec.info, flight))
        out.append(item)
    return out


def write_json_lines(collector: TraceCollector, stream: IO[str], *,
                     include_secrets: bool = False,
                     connection: int | str | None = None) -> None:
    """``records_to_json`` as JSON lines (one object per line) on ``stream``."""
    for item in records_to_json(collector, include_secrets=include_secrets,
                                connection=connection):
        stream.write(json.dumps(item, ensure_ascii=False) + "\n")
    stream.flush()


# ------------------------------------------------------------------------------- ladder
_STAMP = 13  # "   12.34 ms  "
_MIN_WIDTH = 48


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


def _wrap(text: str, width: int, indent: int = 2) -> list[str]:
    """``text`` in lines of at most ``width`` terminal cells, continuations indented by
    ``indent``; long words (hex) are broken, nothing is dropped."""
    import textwrap

    from rich.cells import cell_len

    extra = cell_len(text) - len(text)  # 🔒 and 🔑 take two cells
    lines = textwrap.wrap(text, max(width - extra, 16), subsequent_indent=" " * indent,
                          break_on_hyphens=False)
    return lines or [""]


class _Ladder:
    """Prints lines of a ladder: a time column, then text wrapped to the console."""

    def __init__(self, console: Any, started: float) -> None:
        self.console = console
        self.width = max(int(console.width), _MIN_WIDTH)
        self.body = self.width - _STAMP
        self.started = started

    def line(self, time: float | None, text: str, style: str = "", indent: int = 2) -> None:
        from rich.text import Text

        for i, part in enumerate(_wrap(text, self.body, indent)):
            stamp = (f"{(time - self.started) * 1000:8.2f} ms  " if time is not None and i == 0
                     else " " * _STAMP)
            self.console.print(Text.assemble((stamp, "dim"), (part, style)), soft_wrap=True)

    def arrow(self, rightwards: bool) -> None:
        from rich.text import Text

        shaft = "─" * (self.body - 1)
        if rightwards:
            self.console.print(Text.assemble(" " * _STAMP, (shaft + "▶", "cyan")),
                               soft_wrap=True)
        else:
            self.console.print(Text.assemble(" " * _STAMP, ("◀" + shaft, "magenta")),
                               soft_wrap=True)


def render_ladder(collector: TraceCollector, console: Any, *, left: str = "client",
                  right: str = "server", local_is_left: bool = True,
                  show_secrets: bool = False, verbose: bool = False) -> None:
    """Print the handshake as a ladder, as wide as ``console`` (rich): arrows between the
    two parties in time order, flights marked, then the certificate chains as trees.

    🔒 marks a record sent encrypted, 🔑 a derived secret (its value only with
    ``show_secrets``), ✓/✗ a check, • a note, ✔ the completed handshake. ``verbose``
    lists every field of every message and every record; with it or ``show_secrets``
    each secret says how it was derived (RFC 8446 §7.1 / RFC 5246 §8.1)."""
    from rich.text import Text

    records = collector.records
    ladder = _Ladder(console, collector.started or 0.0)
    version = negotiated_version(records)
    flight = flights(records)
    context = _SecretContext.of(records)
    gap = max(ladder.width - len(left) - len(right), 1)
    console.print(Text.assemble((left, "bold"), " " * gap, (right, "bold")), soft_wrap=True)
    shown_flight = 0
    last_derivation = ""
    for i, rec in enumerate(records):
        if isinstance(rec, MessageTrace):
            rightwards = (rec.direction == "sent") == local_is_left
            number = flight.of[i] or 0
            if number != shown_flight:
                shown_flight = number
                ends = (left, right) if rightwards else (right, left)
                ladder.line(None, f"── flight {number}: {ends[0]} → {ends[1]}", "dim", 0)
            mark, style = _alert_style(rec.message) if rec.name == "Alert" else ("", "")
            lock = "🔒 " if is_protected(rec) else ""
            text = summarize(rec.message, rec.name, version=version)
            ladder.line(rec.time, f"{mark}{lock}{text}", style)
            if verbose:
                ladder.line(None, f"  ({rec.length} bytes, epoch {rec.epoch})", "dim", 4)
                for label, value in message_fields(rec.message, rec.name):
                    ladder.line(None, f"  {label}: {value}", "", 6)
            ladder.arrow(rightwards)
        elif isinstance(rec, RecordTrace):
            _render_record(ladder, rec, rightwards=(rec.direction == "sent") == local_is_left,
                           verbose=verbose)
        elif isinstance(rec, CheckTrace):
            ladder.line(rec.time, f"{'✓' if rec.ok else '✗'} {rec.name}: {rec.detail}",
                        "green" if rec.ok else "bold red")
        elif isinstance(rec, SecretTrace):
            value = (f" = {rec.value.hex()}" if show_secrets
                     else f" ({len(rec.value)} bytes)")
            ladder.line(rec.time, f"🔑 {rec.name}{value}", "yellow")
            if verbose or show_secrets:
                derivation, rfc = context.derivation(rec.name)
                if derivation and derivation == last_derivation:  # TLS 1.2's key block
                    derivation = "the next bytes of the same key_block"
                else:
                    last_derivation = derivation
                if derivation:
                    ladder.line(None, f"   ↳ {derivation} [{rfc}]", "dim", 5)
        elif isinstance(rec, NoteTrace):
            ladder.line(rec.time, f"• {rec.text}",
                        "red" if rec.text.startswith("fatal:") else "dim")
        elif isinstance(rec, CompleteTrace):
            ladder.line(rec.time, "✔ handshake complete: " + _complete_text(rec.info, flight),
                        "bold green")
    _render_certificates(console, records, local_is_left=local_is_left, left=left,
                         right=right)


def _render_record(ladder: _Ladder, rec: RecordTrace, *, rightwards: bool,
                   verbose: bool) -> None:
    """Application data gets an arrow of its own (0-RTT data marked); the records that
    carry handshake messages, alerts and CCS only with ``verbose``."""
    lock = "🔒 " if rec.protected else ""
    if rec.content_type == ContentType.APPLICATION_DATA:
        early = " (0-RTT: early traffic keys)" if rec.epoch == Epoch.EARLY else ""
        ladder.line(rec.time, f"{lock}application data, {len(rec.plaintext)} bytes{early}")
        if verbose:
            ladder.line(None, f"  (record of {len(rec.wire)} bytes on the wire, epoch "
                        f"{rec.epoch})", "dim", 4)
        ladder.arrow(rightwards)
    elif verbose:
        kind = _content_type(rec.content_type)
        content = len(rec.plaintext)
        ladder.line(rec.time, f"{lock}record: {kind}, {len(rec.wire)} bytes on the wire "
                    f"({content} byte{'' if content == 1 else 's'} of content), epoch "
                    f"{rec.epoch}", "dim")


def _complete_text(info: Any, flight: Flights) -> str:
    parts = [info.version_label, str(info.cipher_suite)]
    if info.group is not None:
        parts.append(str(info.group))
    if info.signature_scheme is not None:
        parts.append(str(info.signature_scheme))
    if info.key_exchange:
        parts.append(f"{info.key_exchange} key exchange")
    if info.alpn:
        parts.append(f"alpn={info.alpn}")
    if info.hello_retry_request:
        parts.append("after a HelloRetryRequest")
    if info.resumed:
        parts.append(f"resumed ({info.resumed_with or 'session'})")
    if info.early_data_accepted is not None:
        parts.append("0-RTT data accepted" if info.early_data_accepted
                     else "0-RTT data rejected")
    text = ", ".join(parts)
    if flight.round_trips is not None:
        trips = flight.round_trips
        text += (f"; {trips} round trip{'' if trips == 1 else 's'}, "
                 f"{flight.until_complete} flights")
    return text


def certificate_tree(chain: Sequence[bytes], title: str) -> Any:
    """A rich Tree of a certificate chain as sent (leaf first, each next certificate
    nested under the one before): subject, issuer, validity, key, SAN."""
    from rich.text import Text
    from rich.tree import Tree

    from tlsmith.x509.leaf import parse_der
    from tlsmith.x509.verify import describe_certificate

    tree = Tree(Text(title, style="bold"))
    node = tree
    for i, der in enumerate(chain):
        try:
            d = describe_certificate(parse_der(der))
        except Exception:  # a malformed certificate still renders
            node.add(Text(f"[{i}] unreadable certificate ({len(der)} bytes)", style="red"))
            break
        role = " (leaf)" if i == 0 else ""
        node = node.add(Text(f"[{i}] {d['subject'] or '(empty subject)'}{role}",
                             style="bold" if i == 0 else ""))
        node.add(Text(f"issuer: {d['issuer']}"))
        node.add(Text(f"valid: {d['not_before']} → {d['not_after']}"))
        node.add(Text(f"key: {d['public_key']}; signed with {d['signature_algorithm']}"))
        sans = d["subject_alt_names"]
        if sans:
            node.add(Text("SAN: " + ", ".join(sans)))
    return tree


def _render_certificates(console: Any, records: Sequence[TraceRecord], *,
                         local_is_left: bool, left: str, right: str) -> None:
    from rich.text import Text

    if any(isinstance(r, CompleteTrace) and r.info.resumed for r in records):
        console.print()
        console.print(Text("no certificate in this handshake: the session was resumed "
                           "(the certificate was checked when it was made)", style="dim"))
    for rec in records:
        if not (isinstance(rec, MessageTrace) and rec.name in ("Certificate", "Certificate12")):
            continue
        chain = [getattr(e, "cert_data", e) for e in rec.message.certificate_list]
        if not chain:
            continue
        who = left if (rec.direction == "sent") == local_is_left else right
        console.print()
        console.print(certificate_tree(chain, f"certificate chain sent by the {who} "
                                              f"({len(chain)})"), soft_wrap=False)

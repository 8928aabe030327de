"""Every record of one connection, its bytes labelled: the header (RFC 8446 §5.1), the
messages it carries, and for protected records the ciphertext layout and the inner
plaintext (content, content type, padding -- RFC 8446 §5.2; RFC 5246 §6.2.3).

Input is the trace of one connection (``TraceCollector.records``) and which end wrote
it; the records' ``wire`` and ``plaintext`` bytes are the only bytes used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tlsmith.codec.enums import (
    AlertDescription,
    AlertLevel,
    CipherSuite,
    ContentType,
    ProtocolVersion,
)
from tlsmith.crypto.suites import SuiteInfo, suite_info
from tlsmith.explainer.extensions import code_name
from tlsmith.explainer.handshake import Context, handshake_stream
from tlsmith.explainer.spans import Span, clip, covers_exactly
from tlsmith.explainer.walker import hexs
from tlsmith.observe import Epoch, MessageTrace, RecordTrace, TraceRecord

Role = Literal["client", "server"]

_TYPE_NAMES = {20: "change_cipher_spec", 21: "alert", 22: "handshake",
               23: "application_data", 24: "heartbeat"}


def sender(direction: str, local: Role) -> Role:
    """Which end wrote a record: ours if we sent it."""
    if direction == "sent":
        return local
    return "server" if local == "client" else "client"


@dataclass(frozen=True)
class Negotiated:
    """What the explainer needs from the ServerHello."""

    tls13: bool
    suite: SuiteInfo | None
    encrypt_then_mac: bool = False
    hrr: bool = False


def negotiated(records: Sequence[TraceRecord]) -> Negotiated:
    from tlsmith.codec import extensions as ext
    from tlsmith.trace import negotiated_version

    version = negotiated_version(records)
    tls13 = version is None or version == ProtocolVersion.TLS13
    suite: SuiteInfo | None = None
    etm = hrr = False
    for rec in records:
        if isinstance(rec, MessageTrace) and rec.name == "ServerHello":
            if rec.message.is_hello_retry_request:
                hrr = True
                continue
            suite = suite_info(CipherSuite(rec.message.cipher_suite))
            etm = ext.find_extension(rec.message.extensions, ext.EncryptThenMac) is not None
            break
    return Negotiated(tls13, suite, etm and not tls13, hrr)


@dataclass
class AnnotatedRecord:
    """One record: its wire bytes labelled and, when protected, its inner plaintext."""

    index: int
    sender: Role
    trace: RecordTrace
    title: str
    wire: Span  # over trace.wire
    inner: Span | None  # over inner_bytes (protected records only)
    inner_bytes: bytes
    seq: int | None  # the record sequence number under its keys (protected records)
    generation: int  # TLS 1.3: how many KeyUpdates the sender made before it

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "sender": self.sender,
                               "epoch": str(self.trace.epoch),
                               "protected": self.trace.protected,
                               "content_type": _TYPE_NAMES.get(self.trace.content_type,
                                                               str(self.trace.content_type)),
                               "title": self.title, "wire": self.wire.to_json()}
        if self.inner is not None:
            out["inner"] = self.inner.to_json()
            out["seq"] = self.seq
        return out


def _content(content_type: int, data: bytes, base: int, hs: list[Span], lo: int,
             tls13: bool) -> list[Span]:
    """Spans for a record's content placed at ``base``; handshake content comes from the
    sender's message stream ``hs`` (bytes [lo, lo + len(data)) of it)."""
    if not data:
        return []
    n = len(data)
    if content_type == ContentType.HANDSHAKE:
        out = []
        for span in hs:
            part = clip(span, lo, lo + n, base - lo)
            if part is not None:
                out.append(part)
        return out
    if content_type == ContentType.ALERT and n == 2:
        node = Span(base, 2, "Alert", "", "8446#6")
        lvl, desc = AlertLevel(data[0]), AlertDescription(data[1])
        node.children = [
            Span(base, 1, "level", f"{str(lvl).lower()} ({data[0]})", "8446#6"),
            Span(base + 1, 1, "description", f"{desc.rfc_name} ({data[1]})", "8446#6")]
        return [node]
    if content_type == ContentType.CHANGE_CIPHER_SPEC and n == 1:
        meaning = ("middlebox compatibility: no effect in TLS 1.3 (RFC 8446 §D.4)" if tls13
                   else "from the next record on, this sender's records are protected")
        return [Span(base, 1, "ChangeCipherSpec", f"type {data[0]}: {meaning}",
                     "8446#5" if tls13 else "5246#7.1")]
    if content_type == ContentType.APPLICATION_DATA:
        return [Span(base, n, "application_data", f"{n} bytes: {hexs(data, 48)}",
                     "8446#5.1")]
    return [Span(base, n, f"{_TYPE_NAMES.get(content_type, 'unknown')} content",
                 hexs(data), "8446#5.1")]


def _title(content_type: int, parts: list[Span], data: bytes) -> str:
    if content_type == ContentType.HANDSHAKE:
        return ", ".join(p.label for p in parts) or "handshake"
    if content_type == ContentType.ALERT and len(data) == 2:
        return f"Alert {str(AlertLevel(data[0])).lower()} " \
               f"{AlertDescription(data[1]).rfc_name}"
    if content_type == ContentType.CHANGE_CIPHER_SPEC:
        return "ChangeCipherSpec"
    if content_type == ContentType.APPLICATION_DATA:
        return f"application data ({len(data)} bytes)"
    return _TYPE_NAMES.get(content_type, f"content type {content_type}")


def _header(wire: bytes, rec: RecordTrace) -> Span:
    node = Span(0, 5, "record header", "TLSPlaintext / TLSCiphertext header",
                "8446#5.1")
    outer = wire[0]
    inner_name = _TYPE_NAMES.get(rec.content_type, str(rec.content_type))
    type_meaning = f"{_TYPE_NAMES.get(outer, 'unknown')} ({outer})"
    if rec.protected and outer != rec.content_type:
        type_meaning += f"; the real type, {inner_name}, is inside the encryption"
    version = int.from_bytes(wire[1:3], "big")
    node.children = [
        Span(0, 1, "content_type", type_meaning, "8446#5.1"),
        Span(1, 2, "legacy_record_version", f"{code_name(ProtocolVersion, version)}; "
             "ignored by TLS 1.3 receivers", "8446#5.1"),
        Span(3, 2, "length", f"{int.from_bytes(wire[3:5], 'big')} bytes of fragment follow",
             "8446#5.1"),
    ]
    return node


def annotate(records: Sequence[TraceRecord], *, local: Role = "client"
             ) -> list[AnnotatedRecord]:
    """Every RecordTrace of ``records``, annotated, in the order they crossed the wire."""
    neg = negotiated(records)
    kx = neg.suite.key_exchange if neg.suite is not None else None
    ctx = Context(tls13=neg.tls13, kx=kx)
    recs = [r for r in records if isinstance(r, RecordTrace)]
    # Each sender's handshake bytes, joined: a message may span records (RFC 8446 §5.1).
    streams: dict[Role, bytearray] = {"client": bytearray(), "server": bytearray()}
    where: list[int] = []
    for rec in recs:
        who = sender(rec.direction, local)
        where.append(len(streams[who]))
        if rec.content_type == ContentType.HANDSHAKE:
            streams[who] += rec.plaintext
    parsed = {who: handshake_stream(bytes(data), ctx) for who, data in streams.items()}
    seqs: dict[tuple[Role, Epoch, int], int] = {}
    generation: dict[Role, int] = {"client": 0, "server": 0}
    out: list[AnnotatedRecord] = []
    for i, rec in enumerate(recs):
        who = sender(rec.direction, local)
        wire = rec.wire
        parts = _content(rec.content_type, rec.plaintext, 0, parsed[who], where[i], neg.tls13)
        title = _title(rec.content_type, parts, rec.plaintext)
        root = Span(0, len(wire), title, f"{who} → {'server' if who == 'client' else 'client'}"
                    f", {rec.epoch} epoch", "8446#5")
        root.children.append(_header(wire, rec))
        fragment = Span(5, len(wire) - 5, "fragment", "", "8446#5.1")
        inner: Span | None = None
        inner_bytes = b""
        seq: int | None = None
        gen = generation[who]
        if rec.protected:
            key = (who, rec.epoch, gen)
            seq = seqs.get(key, 0)
            seqs[key] = seq + 1
            inner_bytes, inner = _protected(rec, fragment, parts, neg)
            if fragment.length and covers_exactly(
                    Span(5, fragment.length, "", children=fragment.children),
                    fragment.length + 5, start=5):
                # Too short for this suite's layout (a truncated or foreign record).
                fragment.children = [Span(5, fragment.length, "protected bytes",
                                          "shorter than this suite's record layout")]
            fragment.meaning = "protected: only the keys of this epoch can read it"
        else:
            fragment.children = [_shift(p, 5) for p in parts]
        root.children.append(fragment)
        if not fragment.children and fragment.length:
            fragment.children.append(Span(5, fragment.length, "bytes", hexs(wire[5:])))
        if not fragment.length:
            root.children.pop()
        if rec.content_type == ContentType.HANDSHAKE and neg.tls13 and any(
                p.label.startswith("KeyUpdate") for p in parts):
            generation[who] += 1  # RFC 8446 §4.6.3: the sender's next records use new keys
        out.append(AnnotatedRecord(i, who, rec, title, root, inner, inner_bytes, seq, gen))
    return out


def _shift(span: Span, by: int) -> Span:
    return Span(span.offset + by, span.length, span.label, span.meaning, span.rfc,
                [_shift(c, by) for c in span.children])


def _protected(rec: RecordTrace, fragment: Span, parts: list[Span], neg: Negotiated
               ) -> tuple[bytes, Span]:
    """The ciphertext's layout on the wire, and the inner plaintext's spans."""
    n = fragment.length
    suite = neg.suite
    tag = suite.tag_len if suite is not None else 16
    content = rec.plaintext
    pos = 5
    if neg.tls13:
        # RFC 8446 §5.2: encrypted_record = AEAD(TLSInnerPlaintext); the tag ends it.
        inner_len = n - tag
        fragment.children = [
            Span(pos, inner_len, "encrypted_record (ciphertext)",
                 f"{inner_len} bytes: the TLSInnerPlaintext encrypted", "8446#5.2"),
            Span(pos + inner_len, tag, "authentication tag",
                 f"{tag}-byte AEAD tag over the ciphertext and the record header",
                 "8446#5.2")]
        padding = max(inner_len - len(content) - 1, 0)
        inner_bytes = content + bytes([rec.content_type]) + bytes(padding)
        root = Span(0, len(inner_bytes), "TLSInnerPlaintext", "the decrypted fragment",
                    "8446#5.2")
        root.children = [_shift(p, 0) for p in parts]
        root.children.append(Span(len(content), 1, "content type",
                                  f"{_TYPE_NAMES.get(rec.content_type, '?')} "
                                  f"({int(rec.content_type)}): the real type of this record",
                                  "8446#5.2"))
        if padding:
            root.children.append(Span(len(content) + 1, padding, "zeros (padding)",
                                      f"{padding} bytes that hide the length", "8446#5.4"))
        return inner_bytes, root
    children: list[Span] = []
    if suite is not None and suite.cipher == "cbc":
        mac = suite.mac_key_len
        children.append(Span(pos, 16, "IV", "explicit per-record CBC IV", "5246#6.2.3.2"))
        body = n - 16 - (mac if neg.encrypt_then_mac else 0)
        children.append(Span(pos + 16, body, "ciphertext (CBC)",
                             "content" + ("" if neg.encrypt_then_mac else " + MAC")
                             + " + padding + padding_length, encrypted", "5246#6.2.3.2"))
        if neg.encrypt_then_mac:
            children.append(Span(pos + 16 + body, mac, "MAC",
                                 "HMAC over seq, header, IV and ciphertext (encrypt-then-MAC)",
                                 "7366#3"))
    else:
        explicit = suite.record_iv_len if suite is not None else 8
        if explicit:
            children.append(Span(pos, explicit, "nonce_explicit",
                                 "the per-record part of the nonce, sent in clear",
                                 "5288#3"))
        body = n - explicit - tag
        children.append(Span(pos + explicit, body, "ciphertext",
                             f"{body} bytes: the content encrypted", "5246#6.2.3.3"))
        children.append(Span(pos + explicit + body, tag, "authentication tag",
                             f"{tag}-byte AEAD tag", "5246#6.2.3.3"))
    fragment.children = [c for c in children if c.length > 0]
    root = Span(0, len(content), "decrypted content", "", "5246#6.2.3")
    root.children = [_shift(p, 0) for p in parts]
    return content, root


def check_coverage(annotated: Sequence[AnnotatedRecord]) -> list[str]:
    """Problems with the annotation (every byte must be in exactly one leaf)."""
    problems = []
    for a in annotated:
        bad = covers_exactly(a.wire, len(a.trace.wire))
        if bad:
            problems.append(f"record {a.index} wire: {bad}")
        if a.inner is not None and a.inner_bytes:
            bad = covers_exactly(a.inner, len(a.inner_bytes))
            if bad:
                problems.append(f"record {a.index} inner: {bad}")
    return problems

"""The key derivation of one connection, recomputed step by step from its own values.

TLS 1.3 (RFC 8446 §7.1, §7.3, §5.2-5.3): (EC)DHE shared secret -> Early Secret ->
derived -> Handshake Secret -> handshake traffic secrets -> Master Secret -> application
traffic secrets -> keys and IVs -> one application record opened by hand (nonce, AAD,
AEAD). TLS 1.2 (RFC 5246 §8.1, §6.3, RFC 7627, RFC 5288): pre-master secret -> master
secret -> key block -> keys -> one record opened by hand.

Every value is computed with tlsmith.crypto (schedule13, prf12, aead) and compared with
the secret the connection itself traced: a step shows ✓ when they agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tlsmith.codec.enums import ContentType
from tlsmith.crypto import prf12, schedule13
from tlsmith.crypto.aead import Aead
from tlsmith.crypto.suites import SuiteInfo
from tlsmith.crypto.transcript import Transcript
from tlsmith.errors import TLSError
from tlsmith.explainer.annotate import AnnotatedRecord, Negotiated, Role, negotiated, sender
from tlsmith.observe import Epoch, MessageTrace, SecretTrace, TraceRecord


@dataclass
class Step:
    """One computation: ``value = formula(inputs)``; ``check`` is True when the value equals
    what the connection traced (``traced``), False when it differs, None when there is
    nothing to compare (an input, or a value the connection does not trace)."""

    name: str
    formula: str
    value: bytes = field(repr=False)
    rfc: str
    # (what, hex or text): may hold secrets too, so out of repr() like the value
    inputs: list[tuple[str, str]] = field(default_factory=list, repr=False)
    check: bool | None = None
    secret: bool = True  # a secret value (printed only in the explainer page)
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "formula": self.formula, "value": self.value.hex(),
                "rfc": self.rfc, "inputs": [list(i) for i in self.inputs],
                "check": self.check, "note": self.note}


@dataclass
class Derivation:
    """The steps, in sections ("key schedule", "traffic keys", "one record")."""

    version: str
    sections: list[tuple[str, list[Step]]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # why a part could not be shown

    def steps(self) -> list[Step]:
        return [s for _, steps in self.sections for s in steps]

    @property
    def all_checks_pass(self) -> bool:
        return all(s.check is not False for s in self.steps())

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "problems": self.problems,
                "sections": [{"title": t, "steps": [s.to_json() for s in steps]}
                             for t, steps in self.sections]}


class _Secrets:
    """The traced secrets by name (the first of each name: one connection)."""

    def __init__(self, records: Sequence[TraceRecord]) -> None:
        self.values: dict[str, bytes] = {}
        for rec in records:
            if isinstance(rec, SecretTrace) and rec.name not in self.values:
                self.values[rec.name] = rec.value

    def compare(self, name: str, value: bytes) -> bool | None:
        traced = self.values.get(name)
        return None if traced is None else traced == value


def _handshake_messages(records: Sequence[TraceRecord], local: Role
                        ) -> list[tuple[Role, str, bytes]]:
    """(sender, name, raw bytes) of each handshake message, in transcript order."""
    return [(sender(r.direction, local), r.name, r.raw) for r in records
            if isinstance(r, MessageTrace) and r.raw and r.name not in
            ("ChangeCipherSpec", "Alert")]


def _label_inputs(label: bytes, context: bytes, length: int, secret_name: str,
                  transcript: bool = False) -> list[tuple[str, str]]:
    info = schedule13.hkdf_label(label, context, length)
    what = "Context = Transcript-Hash" if transcript else "Context"
    return [("Secret", secret_name), ("Label", f'"tls13 {label.decode()}"'),
            (what, context.hex() or "(empty)"), ("Length", str(length)),
            ("HkdfLabel", info.hex())]


def derive(records: Sequence[TraceRecord], annotated: Sequence[AnnotatedRecord], *,
           local: Role = "client") -> Derivation:
    """Recompute this connection's keys from its trace (both versions)."""
    neg = negotiated(records)
    if neg.suite is None:
        out = Derivation("?")
        out.problems.append("no ServerHello in the trace: nothing was negotiated")
        return out
    try:
        if neg.tls13:
            return _derive13(records, annotated, neg.suite, local)
        return _derive12(records, annotated, neg, local)
    except Exception as exc:  # a partial or foreign trace still renders, saying why
        out = Derivation("TLS 1.3" if neg.tls13 else "TLS 1.2")
        out.problems.append(f"the derivation could not be completed: {exc}")
        return out


# -- TLS 1.3 ---------------------------------------------------------------------------


def _derive13(records: Sequence[TraceRecord], annotated: Sequence[AnnotatedRecord],
              suite: SuiteInfo, local: Role) -> Derivation:
    h = suite.hash_name
    hlen = schedule13.hash_length(h)
    secrets = _Secrets(records)
    out = Derivation("TLS 1.3")
    steps: list[Step] = []
    out.sections.append((f"Key schedule (RFC 8446 §7.1, {h.upper()})", steps))
    messages = _handshake_messages(records, local)
    transcript = Transcript()
    transcript.set_hash(h)
    th_server_hello = th_server_finished = None
    finished: dict[Role, tuple[bytes, bytes]] = {}  # sender -> (hash before it, verify_data)
    for who, name, raw in messages:
        is_hrr = name == "ServerHello" and raw[6:38] == _hrr_random()
        if is_hrr:
            transcript.update(raw)  # after restarting: message_hash(CH1) || HRR
            continue
        if name == "Finished" and who not in finished:
            finished[who] = (transcript.digest(), raw[4:])
        transcript.update(raw)
        if name == "ClientHello" and _next_is_hrr(messages, raw):
            transcript.restart_for_hello_retry_request()
        if name == "ServerHello":
            th_server_hello = transcript.digest()
        if name == "Finished" and who == "server" and th_server_finished is None:
            th_server_finished = transcript.digest()
    zeros = bytes(hlen)
    psk = _psk_accepted(records)
    if psk:
        early_value = secrets.values["early_secret"]
        steps.append(Step("early_secret", "HKDF-Extract(salt = 0, IKM = PSK)", early_value,
                          "8446#7.1", [("PSK", "the resumed session's PSK (from the ticket; "
                                        "not in this trace)")],
                          None, note="taken from the trace: the PSK comes from an earlier "
                          "connection"))
        early = schedule13.EarlySecret(h, early_value)
    else:
        early = schedule13.EarlySecret.derive(h, None)
        steps.append(Step("early_secret", "HKDF-Extract(salt = 0, IKM = 0)", early.secret,
                          "8446#7.1", [("salt", zeros.hex()), ("IKM", zeros.hex() +
                                                               " (no PSK)")],
                          secrets.compare("early_secret", early.secret)))
    shared = secrets.values.get("ecdhe_shared_secret")
    if shared is not None:
        steps.insert(0, Step("ecdhe_shared_secret", "(EC)DHE(our private key, the peer's "
                             "key_share)", shared, "8446#7.4",
                             [("from", "the key_share entries of ClientHello and "
                               "ServerHello")], None,
                             note="the input: our private key never leaves the connection"))
    empty = schedule13.empty_hash(h)
    derived = schedule13.derive_secret(h, early.secret, schedule13.LABEL_DERIVED, empty)
    steps.append(Step("derived (early)", 'Derive-Secret(early_secret, "derived", "")',
                      derived, "8446#7.1",
                      _label_inputs(schedule13.LABEL_DERIVED, empty, hlen, "early_secret")))
    hs = early.handshake_secret(shared)
    steps.append(Step("handshake_secret", "HKDF-Extract(salt = derived, IKM = "
                      + ("ecdhe_shared_secret)" if shared else "0) (psk_ke: no (EC)DHE)"),
                      hs.secret, "8446#7.1",
                      [("salt", derived.hex()), ("IKM", (shared or zeros).hex())],
                      secrets.compare("handshake_secret", hs.secret)))
    if th_server_hello is None:
        out.problems.append("the trace ends before the ServerHello")
        return out
    traffic: dict[str, bytes] = {}
    for name, label, fn in (
            ("client_handshake_traffic_secret", schedule13.LABEL_C_HS_TRAFFIC,
             hs.client_handshake_traffic_secret),
            ("server_handshake_traffic_secret", schedule13.LABEL_S_HS_TRAFFIC,
             hs.server_handshake_traffic_secret)):
        value = fn(th_server_hello)
        traffic[name] = value
        steps.append(Step(name, f'Derive-Secret(handshake_secret, "{label.decode()}", '
                          "ClientHello...ServerHello)", value, "8446#7.1",
                          _label_inputs(label, th_server_hello, hlen, "handshake_secret", True),
                          secrets.compare(name, value)))
    derived2 = schedule13.derive_secret(h, hs.secret, schedule13.LABEL_DERIVED, empty)
    steps.append(Step("derived (handshake)", 'Derive-Secret(handshake_secret, "derived", "")',
                      derived2, "8446#7.1",
                      _label_inputs(schedule13.LABEL_DERIVED, empty, hlen,
                                    "handshake_secret")))
    master = hs.master_secret()
    steps.append(Step("master_secret", "HKDF-Extract(salt = derived, IKM = 0)",
                      master.secret, "8446#7.1", [("salt", derived2.hex()),
                                                  ("IKM", zeros.hex())],
                      secrets.compare("master_secret", master.secret)))
    if th_server_finished is not None:
        for name, label, fn in (
                ("client_application_traffic_secret_0", schedule13.LABEL_C_AP_TRAFFIC,
                 master.client_application_traffic_secret_0),
                ("server_application_traffic_secret_0", schedule13.LABEL_S_AP_TRAFFIC,
                 master.server_application_traffic_secret_0),
                ("exporter_master_secret", schedule13.LABEL_EXP_MASTER,
                 master.exporter_master_secret)):
            value = fn(th_server_finished)
            traffic[name] = value
            steps.append(Step(name, f'Derive-Secret(master_secret, "{label.decode()}", '
                              "ClientHello...server Finished)", value, "8446#7.1",
                              _label_inputs(label, th_server_finished, hlen, "master_secret",
                                            True),
                              secrets.compare(name, value)))
    keys: list[Step] = []
    out.sections.append(("Traffic keys (RFC 8446 §7.3)", keys))
    key_iv: dict[str, tuple[bytes, bytes]] = {}
    for name, value in traffic.items():
        if "traffic" not in name:
            continue
        key, iv = schedule13.traffic_keys(h, value, suite.key_len, suite.iv_len)
        key_iv[name] = (key, iv)
        end = name.split("_")[0]
        keys.append(Step(f"{end} write_key ({_stage(name)})",
                         f'HKDF-Expand-Label({name}, "key", "", {suite.key_len})', key,
                         "8446#7.3", _label_inputs(schedule13.LABEL_KEY, b"", suite.key_len,
                                                   name)))
        keys.append(Step(f"{end} write_iv ({_stage(name)})",
                         f'HKDF-Expand-Label({name}, "iv", "", {suite.iv_len})', iv,
                         "8446#7.3", _label_inputs(schedule13.LABEL_IV, b"", suite.iv_len,
                                                   name)))
    checks: list[Step] = []
    for who, (th, verify_data) in finished.items():
        base = traffic.get(f"{who}_handshake_traffic_secret")
        if base is None:
            continue
        fkey = schedule13.finished_key(h, base)
        value = schedule13.finished_verify_data(h, base, th)
        checks.append(Step(f"{who} Finished verify_data", f"HMAC(finished_key, "
                           f"Transcript-Hash(... before the {who} Finished))", value,
                           "8446#4.4.4",
                           [("finished_key", fkey.hex()), ("Transcript-Hash", th.hex()),
                            ("finished_key =", f'HKDF-Expand-Label({who}_handshake_traffic_'
                             f'secret, "finished", "", {hlen})')],
                           value == verify_data, secret=False,
                           note="✓: equals the verify_data in the Finished message"))
    if checks:
        out.sections.append(("Finished messages recomputed (RFC 8446 §4.4.4)", checks))
    record = _first_application_record(annotated)
    if record is None:
        out.problems.append("no protected application data record in the trace")
        return out
    secret_name = f"{record.sender}_application_traffic_secret_0"
    if secret_name not in key_iv:
        out.problems.append(f"{secret_name} is not known: the record cannot be opened")
        return out
    key, iv = key_iv[secret_name]
    out.sections.append((f"One record opened by hand: record #{record.index} "
                         f"({record.sender} → {_peer(record.sender)}, RFC 8446 §5.2-5.3)",
                         _open13(record, suite, key, iv, secret_name)))
    return out


def _stage(name: str) -> str:
    return "handshake" if "handshake" in name else "application"


def _hrr_random() -> bytes:
    from tlsmith.explainer.handshake import HRR_RANDOM

    return HRR_RANDOM


def _next_is_hrr(messages: list[tuple[Role, str, bytes]], raw: bytes) -> bool:
    """Whether the message after this ClientHello is a HelloRetryRequest."""
    for i, (_, _, m) in enumerate(messages):
        if m is raw and i + 1 < len(messages):
            nxt = messages[i + 1]
            return nxt[1] == "ServerHello" and nxt[2][6:38] == _hrr_random()
    return False


def _psk_accepted(records: Sequence[TraceRecord]) -> bool:
    """Whether the ServerHello selected a PSK (RFC 8446 §4.2.11): resumption."""
    from tlsmith.codec import extensions as ext

    for rec in records:
        if (isinstance(rec, MessageTrace) and rec.name == "ServerHello"
                and not rec.message.is_hello_retry_request):
            return ext.find_extension(rec.message.extensions,
                                      ext.PreSharedKeyServerHello) is not None
    return False


def _first_application_record(annotated: Sequence[AnnotatedRecord]) -> AnnotatedRecord | None:
    """The first protected application_data record under the first application keys."""
    candidates = [a for a in annotated if a.trace.protected
                  and a.trace.content_type == ContentType.APPLICATION_DATA
                  and a.trace.epoch == Epoch.APPLICATION and a.generation == 0]
    with_data = [a for a in candidates if a.trace.plaintext]
    chosen = with_data or candidates
    return chosen[0] if chosen else None


def _xor_seq(iv: bytes, seq: int) -> bytes:
    padded = seq.to_bytes(len(iv), "big")
    return bytes(a ^ b for a, b in zip(iv, padded, strict=True))


def _open13(record: AnnotatedRecord, suite: SuiteInfo, key: bytes, iv: bytes,
            secret_name: str) -> list[Step]:
    wire = record.trace.wire
    seq = record.seq or 0
    steps = [Step("sequence number", "records this sender protected under these keys "
                  "before this one", seq.to_bytes(8, "big"), "8446#5.3",
                  [("seq", str(seq))], secret=False)]
    nonce = _xor_seq(iv, seq)
    steps.append(Step("per-record nonce", "write_iv XOR (seq left-padded to iv_length)",
                      nonce, "8446#5.3", [("write_iv", iv.hex()),
                                          ("padded seq", seq.to_bytes(len(iv), "big").hex())],
                      secret=False))
    aad = wire[:5]
    steps.append(Step("additional data", "the record header: opaque_type || "
                      "legacy_record_version || length", aad, "8446#5.2",
                      [("header", aad.hex())], secret=False))
    steps.append(Step("ciphertext", "encrypted_record (ciphertext || tag)", wire[5:],
                      "8446#5.2", [("length", str(len(wire) - 5))], secret=False))
    try:
        inner = Aead(suite.aead, key, suite.tag_len).open(nonce, wire[5:], aad)
    except TLSError as exc:
        steps.append(Step("AEAD-Decrypt", f"{suite.aead}", b"", "8446#5.2",
                          check=False, note=str(exc)))
        return steps
    expected = record.inner_bytes
    steps.append(Step("TLSInnerPlaintext", f"AEAD-Decrypt({suite.aead}, "
                      f"key = {secret_name.split('_')[0]} write_key, nonce, additional "
                      "data, ciphertext)", inner, "8446#5.2",
                      [("key", key.hex())], inner == expected,
                      note="content || content type (23 = application_data) || zeros"))
    content = inner.rstrip(b"\x00")[:-1]
    steps.append(Step("content", "TLSInnerPlaintext without its padding and type byte",
                      content, "8446#5.4", [], content == record.trace.plaintext,
                      secret=False, note=_printable(content)))
    return steps


def _printable(data: bytes) -> str:
    text = data[:200].decode("utf-8", "replace")
    return f"as text: {text!r}" + (" …" if len(data) > 200 else "")


# -- TLS 1.2 ---------------------------------------------------------------------------


def _derive12(records: Sequence[TraceRecord], annotated: Sequence[AnnotatedRecord],
              neg: Negotiated, local: Role) -> Derivation:
    suite = neg.suite
    assert suite is not None
    h = suite.hash_name
    secrets = _Secrets(records)
    out = Derivation("TLS 1.2")
    steps: list[Step] = []
    out.sections.append((f"Master secret (RFC 5246 §8.1, PRF-{h.upper()})", steps))
    messages = _handshake_messages(records, local)
    client_random = server_random = b""
    for _, name, raw in messages:
        if name == "ClientHello":
            client_random = raw[6:38]
        elif name == "ServerHello":
            server_random = raw[6:38]
    pms = secrets.values.get("pre_master_secret")
    master: bytes | None = None
    if pms is None:
        traced = secrets.values.get("master_secret")
        if traced is None:
            out.problems.append("no pre_master_secret or master_secret in the trace")
            return out
        master = traced
        steps.append(Step("master_secret", "the resumed session's master secret",
                          traced, "5246#7.3", check=None,
                          note="an abbreviated handshake: taken from the session "
                          "(RFC 5246 §7.3)"))
    else:
        kx = suite.key_exchange or "?"
        how = {"rsa": "chosen by the client, sent encrypted to the server's RSA key "
               "(ClientKeyExchange)", "dhe": "the finite-field Diffie-Hellman result Z, "
               "leading zeros stripped (RFC 5246 §8.1.2)",
               "ecdhe": "the x-coordinate of the ECDH result (RFC 8422 §5.10)"}
        steps.append(Step("pre_master_secret", f"{kx.upper()} key exchange", pms,
                          "5246#8.1", [("from", how.get(kx, kx))], None,
                          note="the input: recovering it needs a private key"))
        session_hash = secrets.values.get("session_hash")
        if session_hash is not None:
            transcript = Transcript()
            transcript.set_hash(h)
            for _, name, raw in messages:
                transcript.update(raw)
                if name == "ClientKeyExchange" or name.startswith("ClientKeyExchange"):
                    break
            computed = transcript.digest()
            steps.append(Step("session_hash", "Hash(ClientHello ... ClientKeyExchange)",
                              computed, "7627#3", [("messages", "every handshake message "
                                                    "up to and including ClientKeyExchange")],
                              computed == session_hash, secret=False))
            master = prf12.extended_master_secret(h, pms, computed)
            steps.append(Step("master_secret", 'PRF(pre_master_secret, "extended master '
                              'secret", session_hash)[0..47]', master, "7627#4",
                              [("session_hash", computed.hex())],
                              secrets.compare("master_secret", master)))
        else:
            master = prf12.master_secret(h, pms, client_random, server_random)
            steps.append(Step("master_secret", 'PRF(pre_master_secret, "master secret", '
                              "ClientHello.random + ServerHello.random)[0..47]", master,
                              "5246#8.1", [("client_random", client_random.hex()),
                                           ("server_random", server_random.hex())],
                              secrets.compare("master_secret", master)))
    keys: list[Step] = []
    out.sections.append(("Key block (RFC 5246 §6.3)", keys))
    length = prf12.key_block_length(suite)
    block = prf12.key_block(h, master, client_random, server_random, length)
    keys.append(Step("key_block", 'PRF(master_secret, "key expansion", server_random + '
                     f"client_random), {length} bytes", block, "5246#6.3",
                     [("server_random", server_random.hex()),
                      ("client_random", client_random.hex())]))
    kb = prf12.derive_key_block(suite, master, client_random, server_random)
    pos = 0
    for name in ("client_write_mac_key", "server_write_mac_key", "client_write_key",
                 "server_write_key", "client_write_iv", "server_write_iv"):
        value: bytes = getattr(kb, name)
        if value:
            keys.append(Step(name, f"key_block[{pos}..{pos + len(value) - 1}]", value,
                             "5246#6.3", [], secrets.compare(name, value)))
        pos += len(value)
    checks = _finished12(messages, h, master)
    if checks:
        out.sections.append(("Finished messages recomputed (RFC 5246 §7.4.9)", checks))
    record = _first_application_record(annotated)
    if record is None:
        out.problems.append("no protected application data record in the trace")
        return out
    out.sections.append((f"One record opened by hand: record #{record.index} "
                         f"({record.sender} → {_peer(record.sender)})",
                         _open12(record, suite, kb, neg)))
    return out


def _peer(who: Role) -> Role:
    return "server" if who == "client" else "client"


def _finished12(messages: list[tuple[Role, str, bytes]], h: str, master: bytes
                ) -> list[Step]:
    """Each side's first Finished: PRF(master_secret, "client/server finished",
    Hash(every handshake message before it))[0..11] -- RFC 5246 §7.4.9."""
    transcript = Transcript()
    transcript.set_hash(h)
    steps: list[Step] = []
    done: set[Role] = set()
    for who, name, raw in messages:
        if name == "Finished" and who not in done:
            done.add(who)
            th = transcript.digest()
            value = prf12.finished_verify_data(h, master, client=who == "client",
                                               handshake_hash=th)
            steps.append(Step(f"{who} Finished verify_data", f'PRF(master_secret, "{who} '
                              f'finished", Hash(handshake_messages))[0..11]', value,
                              "5246#7.4.9", [("Hash(handshake_messages)", th.hex())],
                              value == raw[4:], secret=False,
                              note="✓: equals the verify_data in the Finished message"))
        transcript.update(raw)
    return steps


def _open12(record: AnnotatedRecord, suite: SuiteInfo, kb: prf12.KeyBlock12,
            neg: Negotiated) -> list[Step]:
    wire = record.trace.wire
    fragment = wire[5:]
    seq = record.seq or 0
    who = record.sender
    key: bytes = getattr(kb, f"{who}_write_key")
    iv: bytes = getattr(kb, f"{who}_write_iv")
    steps = [Step("sequence number", "records this sender protected since its "
                  "ChangeCipherSpec (its Finished was number 0)", seq.to_bytes(8, "big"),
                  "5246#6.1", [("seq", str(seq))], secret=False)]
    content = record.trace.plaintext
    if suite.cipher == "cbc":
        return steps + _open12_cbc(record, suite, kb, neg, seq)
    explicit = fragment[:suite.record_iv_len]
    ciphertext = fragment[suite.record_iv_len:]
    if suite.record_iv_len:
        nonce = iv + explicit
        steps.append(Step("nonce", "salt (client/server_write_iv, 4 bytes) || "
                          "nonce_explicit (8 bytes, from the record)", nonce, "5288#3",
                          [("salt", iv.hex()), ("nonce_explicit", explicit.hex())],
                          secret=False))
    else:
        nonce = _xor_seq(iv, seq)
        steps.append(Step("nonce", "write_iv XOR (seq left-padded to 12 bytes)", nonce,
                          "7905#2", [("write_iv", iv.hex())], secret=False))
    aad = (seq.to_bytes(8, "big") + wire[:3] + len(content).to_bytes(2, "big"))
    steps.append(Step("additional data", "seq_num || type || version || length "
                      "(the plaintext's length)", aad, "5246#6.2.3.3",
                      [("type", str(wire[0])), ("version", wire[1:3].hex()),
                       ("length", str(len(content)))], secret=False))
    steps.append(Step("ciphertext", "ciphertext || tag (after the explicit nonce)",
                      ciphertext, "5246#6.2.3.3", secret=False))
    try:
        plain = Aead(suite.aead, key, suite.tag_len).open(nonce, ciphertext, aad)
    except TLSError as exc:
        steps.append(Step("AEAD-Decrypt", suite.aead, b"", "5246#6.2.3.3", check=False,
                          note=str(exc)))
        return steps
    steps.append(Step("content", f"AEAD-Decrypt({suite.aead}, key = {who}_write_key, "
                      "nonce, additional data, ciphertext)", plain, "5246#6.2.3.3",
                      [("key", key.hex())], plain == content, secret=False,
                      note=_printable(plain)))
    return steps


def _open12_cbc(record: AnnotatedRecord, suite: SuiteInfo, kb: prf12.KeyBlock12,
                neg: Negotiated, seq: int) -> list[Step]:
    from tlsmith.codec.enums import ContentType as CT
    from tlsmith.record.framing import Record
    from tlsmith.record.protection_cbc import TLS12CbcDecrypter

    who = record.sender
    key: bytes = getattr(kb, f"{who}_write_key")
    mac_key: bytes = getattr(kb, f"{who}_write_mac_key")
    wire = record.trace.wire
    fragment = wire[5:]
    mac_len = suite.mac_key_len
    encrypted = fragment[:len(fragment) - mac_len] if neg.encrypt_then_mac else fragment
    layout = TLS12CbcDecrypter(suite, key, mac_key, encrypt_then_mac=neg.encrypt_then_mac)
    decrypted = bytes(layout._decrypt(encrypted))  # the CBC layer alone, to show the layout
    content = record.trace.plaintext
    pad = decrypted[-1] if decrypted else 0
    parts = [("IV", fragment[:16].hex()), ("content", content.hex())]
    if not neg.encrypt_then_mac:
        parts.append(("MAC", decrypted[len(content):len(content) + mac_len].hex()))
    parts.append(("padding", decrypted[len(decrypted) - pad - 1:-1].hex() or "(none)"))
    parts.append(("padding_length", str(pad)))
    steps = [Step("CBC decryption", f"AES-{suite.key_len * 8}-CBC-Decrypt(key = "
                  f"{who}_write_key, IV, ciphertext)", decrypted,
                  "7366#3" if neg.encrypt_then_mac else "5246#6.2.3.2", parts,
                  secret=False, note=("encrypt-then-MAC: the MAC follows the ciphertext"
                                      if neg.encrypt_then_mac else
                                      "MAC-then-encrypt: content || MAC || padding || "
                                      "padding_length"))]
    check = TLS12CbcDecrypter(suite, key, mac_key, encrypt_then_mac=neg.encrypt_then_mac,
                              seq=seq)
    try:
        _, plain = check.unprotect(Record(CT(wire[0]), int.from_bytes(wire[1:3], "big"),
                                          fragment))
        ok = plain == content
    except TLSError as exc:
        plain, ok = b"", False
        steps.append(Step("MAC check", "HMAC", b"", "5246#6.2.3.1", check=False,
                          note=str(exc)))
    steps.append(Step("content", f"HMAC-{(suite.mac_name or '').upper()}(mac_key, seq || "
                      "type || version || length || content) checked, padding removed",
                      plain, "5246#6.2.3.1", [("mac_key", mac_key.hex())], ok, secret=False,
                      note=_printable(plain)))
    return steps

"""A live handshake explained (``tlsmith demo``): ``explain_tls13_keys`` /
``explain_tls12_keys`` / ``explain_record`` walk the key schedule and one protected record
from what the connection's observer saw -- the messages, the records as they crossed the
wire and the secrets the connection derived: each value is recomputed with
``crypto.schedule13`` / ``crypto.prf12`` / ``crypto.aead`` and compared with the
connection's own (✓ or ✗).

This module sits above the core: the core never imports it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from tlsmith.codec.enums import NamedGroup
from tlsmith.crypto import kx
from tlsmith.crypto import schedule13 as ks
from tlsmith.crypto.suites import SuiteInfo
from tlsmith.crypto.transcript import Transcript
from tlsmith.observe import Direction, Epoch, MessageTrace, RecordTrace, SecretTrace, TraceRecord
from tlsmith.trace import wire_name

# ============================================================== a live handshake, explained
HIDDEN = "(hidden: --show-secrets)"

# Messages after the handshake: they are not part of the transcript (RFC 8446 §4.4.1).
_POST_HANDSHAKE = frozenset({"NewSessionTicket", "KeyUpdate"})


def print_wrapped(console: Console, body: Text | str, *, first: Text | None = None,
                  indent: int = 0) -> None:
    """Print ``body`` (rich markup, if a str) wrapped to the console's width, every line
    after the first indented by ``indent``; no trailing blanks (the output is copied and
    compared)."""
    text = Text.from_markup(body) if isinstance(body, str) else body
    lead = first if first is not None else Text(" " * indent)
    for i, line in enumerate(text.wrap(console, max(20, console.width - indent))):
        line.rstrip()
        console.print((lead if i == 0 else Text(" " * indent)) + line, soft_wrap=True)


class Narrator:
    """Prints a walk -- headings, sentences, values (secrets hidden unless asked for) and
    checks -- and remembers whether every check passed. ``pause`` runs before each step
    (``tlsmith demo --step``)."""

    def __init__(self, console: Console, *, show_secrets: bool = False,
                 pause: Callable[[], None] | None = None) -> None:
        self.console = console
        self.show_secrets = show_secrets
        self.pause = pause
        self.ok = True
        self.checks = 0

    def rule(self, title: str, *, pause: bool = False) -> None:
        if pause and self.pause is not None:
            self.pause()
        self.console.print()
        self.console.rule(title)

    def step(self, title: str) -> None:
        if self.pause is not None:
            self.pause()
        self.console.print(f"\n[bold]{escape(title)}[/bold]")

    def say(self, text: str) -> None:
        """A sentence (rich markup), wrapped to the terminal's width under its indent."""
        self._wrapped(Text("  "), Text.from_markup(text), 2)

    def _wrapped(self, first: Text, body: Text, indent: int) -> None:
        print_wrapped(self.console, body, first=first, indent=indent)

    def row(self, name: str, value: bytes, *, secret: bool = False,
            shown: str | None = None) -> None:
        """One value: its name, its length and (unless secret and hidden) its hex. A value
        too long for the line goes on the next one, whole (never cut)."""
        if shown is None:
            shown = value.hex() if self.show_secrets or not secret else HIDDEN
        style = "yellow" if secret else "cyan"
        head = f"    {name:<24}{len(value):>5} bytes  "
        styled = f"    [{style}]{escape(f'{name:<24}')}[/{style}]{len(value):>5} bytes  "
        if len(head) + len(shown) <= self.console.width:
            self.console.print(styled + escape(shown))
        else:
            self.console.print(styled.rstrip())
            self.console.print("      " + escape(shown))

    def check(self, ok: bool, text: str) -> bool:
        self.checks += 1
        mark = Text("✓", style="green") if ok else Text("✗", style="bold red")
        self._wrapped(Text.assemble("    ", mark, " "), Text.from_markup(text), 6)
        self.ok = self.ok and ok
        return ok


class RandomTape:
    """A ``Random`` (``config.random``) that remembers what it handed out, so the demo
    can rebuild the client's ephemeral private key from the same bytes and recompute
    the shared secret on its own. Holds key material: for the demo only."""

    def __init__(self, source: Callable[[int], bytes]) -> None:
        self._source = source
        self.draws: list[bytes] = []

    def __call__(self, n: int) -> bytes:
        data = self._source(n)
        self.draws.append(data)
        return data

    def __repr__(self) -> str:  # never the bytes
        return f"RandomTape({len(self.draws)} draws)"


def rebuild_share(tape: RandomTape | None, make: Callable[[kx.Random], kx.KeyShareSecret],
                  public: bytes) -> kx.KeyShareSecret | None:
    """The key share ``make`` builds from some run of the tape's draws whose public value
    is ``public`` (the one the client sent), or None."""
    if tape is None:
        return None
    for start in range(len(tape.draws)):
        replay = iter(tape.draws[start:])
        try:
            share = make(lambda n, replay=replay: next(replay))  # type: ignore[misc]
        except Exception:  # wrong length or exhausted: not this run of draws
            continue
        if share.public_bytes == public:
            return share
    return None


def _short_hex(value: bytes, keep: int = 16) -> str:
    """The first ``keep`` bytes in hex, then "…" (rows print the full length beside it)."""
    return value.hex() if len(value) <= keep else f"{value[:keep].hex()}…"


def handshake_messages(records: Sequence[TraceRecord]) -> list[MessageTrace]:
    """The handshake messages in the order they crossed the wire (CCS, alerts and
    post-handshake messages left out)."""
    return [r for r in records if isinstance(r, MessageTrace)
            and r.name not in ("ChangeCipherSpec", "Alert") and r.name not in _POST_HANDSHAKE]


def traced_secrets(records: Sequence[TraceRecord]) -> dict[str, bytes]:
    """Each secret the connection reported, by its RFC name (the first of each name)."""
    found: dict[str, bytes] = {}
    for r in records:
        if isinstance(r, SecretTrace):
            found.setdefault(r.name, r.value)
    return found


def _raw(message: MessageTrace) -> bytes:
    return message.raw or bytes(message.message.serialize())


def _group_words(group: NamedGroup) -> str:
    if group == NamedGroup.X25519MLKEM768:
        return ("ML-KEM-768 decapsulation of the server's ciphertext || X25519(client "
                "private, server public) (draft-ietf-tls-ecdhe-mlkem)")
    if group in (NamedGroup.X25519, NamedGroup.X448):
        return f"{group.name}(client private key, server public key) (RFC 7748)"
    if group.name.startswith("FFDHE"):
        return ("g^(xy) mod p, padded with zeros to the size of p (RFC 8446 §7.4.1, "
                "RFC 7919)")
    return "the x-coordinate of ECDH(client private key, server public point) (RFC 8446 §7.4.2)"


def explain_tls13_keys(n: Narrator, records: Sequence[TraceRecord], suite: SuiteInfo, *,
                       tape: RandomTape | None = None) -> dict[str, bytes]:
    """Walk a TLS 1.3 handshake's key schedule (RFC 8446 §7.1) from the shared secret to
    the application traffic keys, recomputing every value with ``crypto.schedule13`` and
    checking it against the secret the connection reported. Returns the recomputed
    secrets by name."""
    from tlsmith.codec import extensions as ext

    h = suite.hash_name
    label = h.upper().replace("SHA", "SHA-")
    secrets = traced_secrets(records)
    messages = handshake_messages(records)
    hellos = [m for m in messages if m.name == "ServerHello"]
    hrr = next((m for m in hellos if m.message.is_hello_retry_request), None)
    sh = next(m for m in hellos if not m.message.is_hello_retry_request)
    ch = [m for m in messages if m.name == "ClientHello"][-1]
    out: dict[str, bytes] = {}

    def same(name: str, value: bytes, what: str) -> None:
        traced = secrets.get(name)
        out[name] = value
        n.row(name, value, secret=True)
        if traced is None:
            n.say(f"[dim]({name} was not reported by the connection: nothing to compare)[/dim]")
        else:
            n.check(value == traced, what)

    n.rule("where the keys come from (RFC 8446 §7.1)")
    n.step("1. The two randoms (public: ClientHello and ServerHello carry them)")
    n.row("client_random", ch.message.random)
    n.row("server_random", sh.message.random)
    n.say("[dim]In TLS 1.3 they enter the keys through the transcript hash below.[/dim]")

    n.step("2. The (EC)DHE shared secret (RFC 8446 §7.4)")
    sks = ext.find_extension(sh.message.extensions, ext.KeyShareServerHello)
    cks = ext.find_extension(ch.message.extensions, ext.KeyShareClientHello)
    shared = secrets.get("ecdhe_shared_secret", b"")
    if sks is None or cks is None:
        n.say("No key share: this handshake resumed with a PSK alone.")
    else:
        group = NamedGroup(sks.server_share.group)
        server_public = sks.server_share.key_exchange
        client_public = next(e.key_exchange for e in cks.client_shares if e.group == group)
        n.say(f"Group {group.name}: the client sent its public key in ClientHello's "
              "key_share, the server its own in ServerHello's:")
        n.row("client key_share", client_public, shown=_short_hex(client_public, 32))
        n.row("server key_share", server_public, shown=_short_hex(server_public, 32))
        n.say(f"shared secret = {_group_words(group)}. It never crosses the wire.")
        share = rebuild_share(tape, lambda r: kx.generate_key_share(group, r), client_public)
        if share is not None:
            n.say("[dim]The demo kept the random bytes the client drew, rebuilt the client's "
                  "private key from them (its public key matches the one sent) and "
                  "combined it with the server's public key:[/dim]")
            shared = share.exchange(server_public)
            same("ecdhe_shared_secret", shared,
                 "recomputed: the shared secret the connection derived")
        else:
            n.say("[dim](the client's private key is not at hand here: the walk goes on "
                  "from the connection's value)[/dim]")
            n.row("ecdhe_shared_secret", shared, secret=True)

    n.step("3. Early Secret")
    n.say("Early Secret = HKDF-Extract(salt = 0, IKM = the PSK, or zeros when there is none "
          "as here)")
    early = ks.EarlySecret.derive(h, None)
    same("early_secret", early.secret, "recomputed: the Early Secret the connection used")
    derived = ks.derive_secret(h, early.secret, ks.LABEL_DERIVED, ks.empty_hash(h))
    n.say('derived = Derive-Secret(Early Secret, "derived", "")')
    n.row("derived", derived, secret=True)

    n.step("4. Handshake Secret and the handshake traffic secrets")
    n.say("Handshake Secret = HKDF-Extract(salt = derived, IKM = shared secret)")
    hs = early.handshake_secret(shared or None)
    same("handshake_secret", hs.secret, "recomputed: the Handshake Secret the connection used")
    transcript = Transcript()
    index = 0
    if hrr is not None:
        # RFC 8446 §4.4.1: ClientHello1 is replaced by message_hash after a HelloRetryRequest.
        transcript.update(_raw(messages[0]))
        transcript.set_hash(h)
        transcript.restart_for_hello_retry_request()
        index = 1
    for m in messages[index:]:
        transcript.update(_raw(m))
        if m is sh:
            break
    transcript.set_hash(h)
    th_hello = transcript.digest()
    n.say(f"Transcript-Hash(ClientHello … ServerHello) = {label} of the handshake so far "
          f"({transcript.message_count} messages)")
    n.row("transcript hash", th_hello)
    chts = hs.client_handshake_traffic_secret(th_hello)
    shts = hs.server_handshake_traffic_secret(th_hello)
    n.say('client_handshake_traffic_secret = Derive-Secret(Handshake Secret, "c hs traffic", '
          "ClientHello … ServerHello)")
    same("client_handshake_traffic_secret", chts, "recomputed: what protected the client's "
         "handshake messages")
    n.say('server_handshake_traffic_secret = Derive-Secret(Handshake Secret, "s hs traffic", '
          "ClientHello … ServerHello)")
    same("server_handshake_traffic_secret", shts, "recomputed: what protected the server's "
         "EncryptedExtensions … Finished")
    n.say(f'[dim]Each becomes a key = HKDF-Expand-Label(secret, "key", "", {suite.key_len}) '
          f'and an iv = HKDF-Expand-Label(secret, "iv", "", {suite.iv_len}) '
          "(RFC 8446 §7.3).[/dim]")

    n.step("5. Finished (RFC 8446 §4.4.4)")
    after_sh = messages[messages.index(sh) + 1:]
    fin_positions = [i for i, m in enumerate(after_sh) if m.name == "Finished"]
    th_sfin = th_hello
    th_cfin = th_hello
    pos = 0
    upto = "ServerHello"
    for who, base, fin_at in (("server", shts, fin_positions[0]),
                              ("client", chts, fin_positions[-1])):
        for m in after_sh[pos:fin_at]:
            transcript.update(_raw(m))
            upto = m.name
        expected = ks.finished_verify_data(h, base, transcript.digest())
        n.say(f"{who} verify_data = HMAC(finished_key, Transcript-Hash(ClientHello … "
              f"{upto})), finished_key = HKDF-Expand-Label({who}_handshake_traffic_secret, "
              f'"finished", "", {suite.hash_len})')
        sent = after_sh[fin_at].message.verify_data
        n.row(f"{who} verify_data", sent)
        n.check(hmac.compare_digest(expected, sent),
                f"recomputed: the {who} Finished that crossed the wire")
        transcript.update(_raw(after_sh[fin_at]))
        upto = f"{who} Finished"
        if who == "server":
            th_sfin = transcript.digest()
        else:
            th_cfin = transcript.digest()
        pos = fin_at + 1
    n.say("[dim]Finished proves each side derived the same keys from the same handshake: "
          "nobody changed a hello on the way.[/dim]")

    n.step("6. Master Secret and the application traffic secrets")
    n.say('Master Secret = HKDF-Extract(salt = Derive-Secret(Handshake Secret, "derived", ""), '
          "IKM = zeros)")
    master = hs.master_secret()
    same("master_secret", master.secret, "recomputed: the Master Secret the connection used")
    n.row("transcript hash", th_sfin)
    n.say(f"[dim](Transcript-Hash(ClientHello … server Finished), {label})[/dim]")
    cats = master.client_application_traffic_secret_0(th_sfin)
    sats = master.server_application_traffic_secret_0(th_sfin)
    n.say('client_application_traffic_secret_0 = Derive-Secret(Master Secret, "c ap traffic", '
          "ClientHello … server Finished)")
    same("client_application_traffic_secret_0", cats, "recomputed: the client's first "
         "application keys come from it")
    n.say('server_application_traffic_secret_0 = Derive-Secret(Master Secret, "s ap traffic", '
          "ClientHello … server Finished)")
    same("server_application_traffic_secret_0", sats, "recomputed: the server's first "
         "application keys come from it")
    n.say('exporter_master_secret = Derive-Secret(Master Secret, "exp master", ClientHello … '
          "server Finished)")
    same("exporter_master_secret", master.exporter_master_secret(th_sfin),
         "recomputed: keying material exporters (RFC 8446 §7.5) start here")
    if "resumption_master_secret" in secrets:
        n.say('resumption_master_secret = Derive-Secret(Master Secret, "res master", '
              "ClientHello … client Finished)")
        same("resumption_master_secret", master.resumption_master_secret(th_cfin),
             "recomputed: session tickets' PSKs come from it (RFC 8446 §4.6.1)")

    n.step("7. The application traffic keys (RFC 8446 §7.3)")
    for who, secret in (("server", sats), ("client", cats)):
        key, iv = ks.traffic_keys(h, secret, suite.key_len, suite.iv_len)
        n.say(f'{who}_write_key = HKDF-Expand-Label({who}_application_traffic_secret_0, "key", '
              f'"", {suite.key_len}); {who}_write_iv likewise with "iv", {suite.iv_len} bytes')
        n.row(f"{who}_write_key", key, secret=True)
        n.row(f"{who}_write_iv", iv, secret=True)
    n.say("[dim]They protect application data until a KeyUpdate replaces them "
          "(RFC 8446 §4.6.3, §7.2).[/dim]")
    if n.show_secrets:
        n.say("The key-log lines (NSS format) that let Wireshark decrypt this connection:")
        for r in records:
            if isinstance(r, SecretTrace) and r.nss_label:
                n.console.print(f"    {r.nss_label} {r.client_random.hex()} {r.value.hex()}",
                                markup=False, highlight=False, soft_wrap=True)
    return out


def explain_tls12_keys(n: Narrator, records: Sequence[TraceRecord], suite: SuiteInfo,
                       info: Any, *, tape: RandomTape | None = None,
                       server_private_key: Any = None) -> dict[str, bytes]:
    """Walk a TLS 1.2 handshake from the pre-master secret to the record keys and the
    Finished messages, recomputing each value with ``crypto.prf12`` (and the key exchange
    with ``crypto.kx`` / ``crypto.rsa_kx``) and checking it against what the connection
    derived. Returns the recomputed values by name."""
    from tlsmith.crypto import prf12

    secrets = traced_secrets(records)
    handshake = handshake_messages(records)
    raw = [_raw(m) for m in handshake]
    names = [m.name for m in handshake]
    cke = next(i for i, name in enumerate(names) if name.startswith("ClientKeyExchange"))
    client_fin = names.index("Finished")
    hello = handshake[names.index("ClientHello")].message
    server_hello = handshake[names.index("ServerHello")].message
    hash_label = suite.hash_name.upper().replace("SHA", "SHA-")
    out: dict[str, bytes] = {}

    def transcript_hash(upto: int) -> bytes:
        return hashlib.new(suite.hash_name, b"".join(raw[: upto + 1])).digest()

    def through(upto: int) -> str:
        last = "client Finished" if upto == client_fin else wire_name(names[upto])
        return f"{hash_label}(ClientHello … {last})"

    n.rule("where the keys come from (RFC 5246 §8.1, §6.3)")
    n.step("1. The two randoms (public: ClientHello and ServerHello carry them)")
    n.row("client_random", hello.random)
    n.row("server_random", server_hello.random)
    if server_hello.downgrade_sentinel:
        n.say("[dim]The server random ends with 44 4f 57 4e 47 52 44 01, \"DOWNGRD\\x01\" "
              "(RFC 8446 §4.1.3): the server also supports TLS 1.3, and this marker lets a "
              "client that does too notice an attacker who forced 1.2. Our client offered "
              "only 1.2, so here it is expected.[/dim]")

    n.step(f"2. The pre-master secret ({info.key_exchange})")
    pms = _explain_pre_master(n, handshake, secrets.get("pre_master_secret", b""), hello,
                              info, tape=tape, server_private_key=server_private_key)
    out["pre_master_secret"] = pms

    n.step("3. The master secret")
    if info.extended_master_secret:
        session_hash = transcript_hash(cke)
        n.say(f"session_hash = {through(cke)}: the handshake up to ClientKeyExchange "
              f"({cke + 1} messages, {sum(len(x) for x in raw[: cke + 1])} bytes)")
        n.row("session_hash", session_hash)
        if "session_hash" in secrets:
            n.check(session_hash == secrets["session_hash"],
                    "recomputed: the session hash the connection used")
        n.say('master_secret = PRF(pre_master_secret, "extended master secret", '
              "session_hash)[0..47]   (RFC 7627 §4)")
        master = prf12.extended_master_secret(suite.hash_name, pms, session_hash)
        n.say("[dim]The session hash ties the master secret to this whole handshake "
              "(certificate and key exchange included), so two connections with different "
              "servers can never end up with the same one: the triple-handshake attack "
              "needed exactly that. tlsmith requires it (--allow-no-ems relaxes that).[/dim]")
    else:
        n.say('master_secret = PRF(pre_master_secret, "master secret", client_random + '
              "server_random)[0..47]   (RFC 5246 §8.1; no extended master secret)")
        master = prf12.master_secret(suite.hash_name, pms, hello.random, server_hello.random)
    out["master_secret"] = master
    n.row("master_secret", master, secret=True)
    n.check(master == secrets.get("master_secret"),
            "recomputed with the PRF: the master secret the handshake used")
    if n.show_secrets:
        n.say("The key-log line (NSS format) that lets Wireshark decrypt this connection:")
        n.console.print(f"    CLIENT_RANDOM {hello.random.hex()} {master.hex()}",
                        markup=False, highlight=False)

    n.step("4. The key block")
    block_len = prf12.key_block_length(suite)
    n.say('key_block = PRF(master_secret, "key expansion", server_random + client_random)'
          f"[0..{block_len - 1}]   (RFC 5246 §6.3; the server random comes first here), "
          "cut into:")
    kb = prf12.derive_key_block(suite, master, hello.random, server_hello.random)
    key_names = ("client_write_mac_key", "server_write_mac_key", "client_write_key",
                 "server_write_key", "client_write_iv", "server_write_iv")
    for name in key_names:
        value: bytes = getattr(kb, name)
        out[name] = value
        if value:
            n.row(name, value, secret=True)
    if not suite.mac_key_len:
        cipher = suite.description.removeprefix("AEAD ")
        n.say(f"[dim]{cipher} is an AEAD cipher: it needs no MAC keys. "
              + (f"The {suite.iv_len}-byte write IVs are the fixed half of each record's "
                 f"nonce; every record carries the other {suite.record_iv_len} bytes in the "
                 "clear (RFC 5288 §3)." if suite.record_iv_len else
                 "The write IVs are XORed with the record sequence number to make each "
                 "record's nonce (RFC 7905 §2).") + "[/dim]")
    n.check(all(out[name] == secrets.get(name, b"") for name in key_names),
            "recomputed with the PRF: the keys the record layer used")

    n.step("5. Finished (sent encrypted, right after ChangeCipherSpec)")
    server_fin = len(names) - 1 - names[::-1].index("Finished")
    for who, upto, index in (("client", client_fin - 1, client_fin),
                             ("server", server_fin - 1, server_fin)):
        expected = prf12.finished_verify_data(suite.hash_name, master, client=who == "client",
                                              handshake_hash=transcript_hash(upto))
        n.say(f'{who} verify_data = PRF(master_secret, "{who} finished", {through(upto)})'
              "[0..11]")
        sent = handshake[index].message.verify_data
        n.row(f"{who} verify_data", sent)
        n.check(hmac.compare_digest(expected, sent),
                f"recomputed: the {who} Finished on the wire")
    n.say("[dim]Each side checks the other's Finished: it proves both derived the same "
          "master secret and saw the same handshake, so nobody altered the hellos on the "
          "way.[/dim]")
    return out


def _explain_pre_master(n: Narrator, handshake: list[MessageTrace], traced: bytes,
                        hello: Any, info: Any, *, tape: RandomTape | None,
                        server_private_key: Any) -> bytes:
    """Say where the pre-master secret comes from and recompute it; returns the value
    the rest of the walk uses (the recomputed one when it could be recomputed)."""
    def message(prefix: str) -> Any:
        return next(m.message for m in handshake if m.name.startswith(prefix))

    cke = message("ClientKeyExchange")
    recomputed: bytes | None = None
    if info.key_exchange == "ECDHE":
        ske = message("ServerKeyExchange")
        curve = NamedGroup(ske.named_curve)
        n.say(f"The server sent a fresh {curve.name.lower()} public key in ServerKeyExchange, "
              "signed with its certificate's key; the client answered with its own in "
              "ClientKeyExchange (RFC 8422 §5.4, §5.7):")
        n.row("server public", ske.public, shown=_short_hex(ske.public, 32))
        n.row("client public", cke.public, shown=_short_hex(cke.public, 32))
        n.say(f"pre_master_secret = {_group_words(curve)}. It never crosses the wire.")
        share = rebuild_share(tape, lambda r: kx.generate_key_share(curve, r), cke.public)
        if share is not None:
            recomputed = share.exchange(ske.public)
    elif info.key_exchange == "DHE":
        ske = message("ServerKeyExchange")
        p = int.from_bytes(ske.dh_p, "big")
        g = int.from_bytes(ske.dh_g, "big")
        n.say(f"The server sent a prime p ({p.bit_length()} bits: "
              f"{info.group.name.lower() if info.group else 'custom'}), the generator "
              f"g = {g} and its public Ys = g^y mod p in ServerKeyExchange, signed; the "
              "client sent Yc = g^x mod p in ClientKeyExchange:")
        n.row("Ys", ske.dh_Ys, shown=_short_hex(ske.dh_Ys))
        n.row("Yc", cke.dh_Yc, shown=_short_hex(cke.dh_Yc))
        n.say("Both compute Z = g^(xy) mod p; Z with its leading zero bytes removed is the "
              "pre-master secret (RFC 5246 §8.1.2).")
        share = rebuild_share(tape, lambda r: kx.dh_share_for_params(p, g, r), cke.dh_Yc)
        if share is not None:
            recomputed = share.exchange(ske.dh_Ys, tls12_dh_strip=True)
    else:  # RSA key transport
        from tlsmith.crypto import rsa_kx

        epms = cke.encrypted_pre_master_secret
        version = int(hello.legacy_version).to_bytes(2, "big")
        n.say(f"The client made 48 bytes: {version.hex(' ')} (the version it offered, so a "
              "rollback shows) + 46 random bytes, encrypted them to the server certificate's "
              "RSA public key (PKCS #1 v1.5) and sent the result in ClientKeyExchange "
              "(RFC 5246 §7.4.7.1):")
        n.row("EncryptedPreMasterSecret", epms, shown=_short_hex(epms))
        shown = (traced.hex() if n.show_secrets
                 else f"{traced[:2].hex()} + 46 bytes {HIDDEN}")
        n.row("pre_master_secret", traced, secret=True, shown=shown)
        n.check(len(traced) == 48 and traced[:2] == version,
                f"48 bytes, starting {version.hex(' ')}")
        if server_private_key is not None:
            recomputed = rsa_kx.decrypt_pre_master_secret(
                server_private_key, epms, version, lambda k: bytes(k))
            n.check(recomputed == traced, "this demo holds the server's private key too: "
                    "decrypting ClientKeyExchange with it gives the same 48 bytes")
        n.say("[yellow]No forward secrecy:[/yellow] the server's long-term RSA key is all it "
              "takes to recover this pre-master secret from a recording, today or in ten "
              "years. That is why TLS 1.3 dropped RSA key transport.")
        return recomputed if recomputed is not None else traced
    if recomputed is None:
        n.say("[dim](the client's private key is not at hand here: the walk goes on from "
              "the connection's value)[/dim]")
        n.row("pre_master_secret", traced, secret=True)
        return traced
    n.say("[dim]The demo kept the random bytes the client drew, rebuilt the client's private "
          "key from them (its public value matches the one sent) and combined it with the "
          "server's:[/dim]")
    n.row("pre_master_secret", recomputed, secret=True)
    n.check(recomputed == traced, "recomputed: the pre-master secret the connection derived")
    return recomputed


# ------------------------------------------------------------------- one record, opened
_APPLICATION_DATA = 23
_CONTENT_TYPES = {20: "change_cipher_spec", 21: "alert", 22: "handshake",
                  23: "application_data"}


def _ordinal(k: int) -> str:
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def pick_record(records: Sequence[TraceRecord], direction: Direction = "received"
                ) -> tuple[RecordTrace, int, list[str]] | None:
    """The first protected application_data record in ``direction`` under the first
    application keys, its sequence number, and what the earlier records under the same
    keys carried (message names, else content types) -- or None. Sequence numbers
    restart at 0 whenever keys change (RFC 8446 §5.3; RFC 5246 §6.1: at ChangeCipherSpec),
    so count the records since then."""
    before: list[str] = []
    carried: list[str] = []
    for r in records:
        if isinstance(r, MessageTrace) and r.direction == direction:
            if r.name == "KeyUpdate":
                return None  # new keys before any application record: not this walk
            if r.epoch == Epoch.APPLICATION:
                carried.append(wire_name(r.name))
        if not (isinstance(r, RecordTrace) and r.direction == direction and r.protected
                and r.epoch == Epoch.APPLICATION):
            continue
        if r.content_type == _APPLICATION_DATA:
            return r, len(before), carried or before
        before.append(_CONTENT_TYPES.get(r.content_type, str(r.content_type)))
    return None


def explain_record(n: Narrator, record: RecordTrace, seq: int, earlier: Sequence[str],
                   suite: SuiteInfo, *, write_key: bytes, write_iv: bytes, tls13: bool,
                   key_from: str, sender: str) -> bool:
    """Open one protected application record by hand, step by step (RFC 8446 §5.2-5.4 or
    RFC 5246 §6.2.3.3 with RFC 5288 / RFC 7905 nonces), with ``crypto.aead``, and check
    the result against what the connection delivered (``record.plaintext``) and against
    tlsmith's record layer. False if anything differs."""
    from tlsmith.crypto.aead import Aead
    from tlsmith.errors import TLSError

    before = n.ok
    n.ok = True
    wire = record.wire
    header, fragment = wire[:5], wire[5:]
    length = int.from_bytes(header[3:5], "big")
    rfc = "RFC 8446 §5.2" if tls13 else "RFC 5246 §6.2.3.3"
    n.rule(f"one protected record, opened step by step ({rfc})")
    n.step(f"1. The record as it crossed the wire: {len(wire)} bytes from the {sender}")
    n.row("record header", header, shown=header.hex(" "))
    kind = _CONTENT_TYPES.get(header[0], "unknown")
    if tls13:
        n.say(f"type {header[0]} ({kind}: every protected TLS 1.3 record says so; the real "
              f"type is inside), legacy_record_version {header[1:3].hex()}, length {length}")
    else:
        n.say(f"type {header[0]} ({kind}: TLS 1.2 shows the real type), version "
              f"{header[1:3].hex()}, length {length}")
    n.check(length == len(fragment), "the length field counts the bytes that follow")
    explicit = fragment[:suite.record_iv_len] if not tls13 else b""
    body = fragment[len(explicit):]
    if explicit:
        n.row("nonce_explicit", explicit, shown=explicit.hex(" "))
    n.row("encrypted content", body[:-suite.tag_len], shown=_short_hex(body[:-suite.tag_len]))
    n.row("authentication tag", body[-suite.tag_len:], shown=body[-suite.tag_len:].hex())

    n.step("2. The sequence number")
    if tls13:
        n.say("Each direction numbers its records from 0 whenever its keys change "
              "(RFC 8446 §5.3); the number is never sent.")
    else:
        n.say("Each direction numbers its records from 0 at its ChangeCipherSpec "
              "(RFC 5246 §6.1); the number is never sent.")
    came_first = (f"before it, {seq} record{'s' if seq > 1 else ''} with "
                  + ", ".join(earlier) if seq else "it is the first")
    n.say(f"This is the {_ordinal(seq + 1)} record the {sender} protected with {key_from} "
          f"({came_first}), so seq = {seq}.")
    seq_bytes = seq.to_bytes(8, "big")
    n.row("seq_num (64 bits)", seq_bytes, shown=seq_bytes.hex(" "))

    n.step("3. The key and the nonce")
    n.row(f"{sender}_write_key", write_key, secret=True)
    n.row(f"{sender}_write_iv", write_iv, secret=True)
    if tls13 or not suite.record_iv_len:
        nonce = (int.from_bytes(write_iv, "big") ^ seq).to_bytes(len(write_iv), "big")
        n.say("nonce = write_iv XOR seq_num, the sequence number left-padded with zeros to "
              f"{len(write_iv)} bytes ({'RFC 8446 §5.3' if tls13 else 'RFC 7905 §2'})")
    else:
        nonce = write_iv + explicit
        n.say(f"nonce = salt ({len(write_iv)} bytes, the write IV from the key block) || "
              f"nonce_explicit ({len(explicit)} bytes, from the record) (RFC 5288 §3)")
        if explicit == seq_bytes:
            n.say("[dim]The sender put its sequence number in nonce_explicit: a nonce "
                  "that never repeats under one key, as AES-GCM requires.[/dim]")
    n.row("nonce", nonce, secret=True)

    n.step("4. The additional data")
    plain_len = len(body) - suite.tag_len
    if tls13:
        aad = header
        n.say("additional_data = the record header (RFC 8446 §5.2): a changed type or "
              "length fails the tag")
    else:
        aad = seq_bytes + header[:3] + plain_len.to_bytes(2, "big")
        n.say("additional_data = seq_num (8) || type (1) || version (2) || length of the "
              f"plaintext (2) = {plain_len} (RFC 5246 §6.2.3.3)")
    n.row("additional_data", aad, shown=aad.hex(" "))

    n.step(f"5. {suite.description.removeprefix('AEAD ')}: decrypt and verify")
    try:
        opened = Aead(suite.aead, write_key, suite.tag_len).open(nonce, body, aad)
    except TLSError as exc:
        n.check(False, f"the tag does not verify ({exc}): the record was changed on the "
                "way, or the key, nonce or additional data differ from the sender's")
        n.ok = before and n.ok
        return False
    n.check(True, f"the {suite.tag_len}-byte tag verifies: key, nonce, additional data and "
            "ciphertext are exactly the sender's")
    content = opened
    content_type = header[0]
    if tls13:
        n.row("TLSInnerPlaintext", opened, shown=_short_hex(opened, 24))
        stripped = opened.rstrip(b"\x00")
        content_type = stripped[-1] if stripped else 0
        content = stripped[:-1]
        n.step("6. The real content type (RFC 8446 §5.4)")
        n.say("TLSInnerPlaintext = content || ContentType || zero padding: the last non-zero "
              f"byte is {content_type:#04x} = "
              f"{_CONTENT_TYPES.get(content_type, 'unknown')}, after "
              f"{len(opened) - len(stripped)} bytes of padding.")
    n.row("content", content, shown=repr(content[:72]) + ("…" if len(content) > 72 else ""))
    n.check(content_type == record.content_type and content == record.plaintext,
            "the same bytes the connection handed to the application")
    n.check(_record_layer_agrees(record, seq, suite, write_key, write_iv, tls13, content),
            "tlsmith's record layer opens it the same way "
            f"({'TLS13Decrypter' if tls13 else 'TLS12AeadDecrypter'}, seq={seq})")
    ok = n.ok
    n.ok = before and ok
    return ok


def _record_layer_agrees(record: RecordTrace, seq: int, suite: SuiteInfo, key: bytes,
                         iv: bytes, tls13: bool, content: bytes) -> bool:
    from tlsmith.codec.enums import ContentType
    from tlsmith.errors import TLSError
    from tlsmith.record.framing import Record
    from tlsmith.record.protection import TLS12AeadDecrypter, TLS13Decrypter

    wire = record.wire
    framed = Record(ContentType(wire[0]), int.from_bytes(wire[1:3], "big"), wire[5:])
    decrypter = (TLS13Decrypter(suite, key, iv, seq=seq) if tls13
                 else TLS12AeadDecrypter(suite, key, iv, seq=seq))
    try:
        _, plaintext = decrypter.unprotect(framed)
    except TLSError:
        return False
    return bytes(plaintext) == content


__all__ = ["HIDDEN", "Narrator", "RandomTape", "explain_record", "explain_tls12_keys",
           "explain_tls13_keys", "pick_record", "print_wrapped", "rebuild_share",
           "traced_secrets"]

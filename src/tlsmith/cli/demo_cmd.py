"""``tlsmith demo``: a full TLS 1.3 or TLS 1.2 handshake between tlsmith's client and
server, in memory and offline, shown step by step."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from tlsmith.codec.enums import CipherSuite, NamedGroup, ProtocolVersion
from tlsmith.config import DEFAULT_SUITES, CertifiedKey, ClientConfig, ServerConfig
from tlsmith.connection import TLSConnection
from tlsmith.events import (
    ApplicationData,
    ConnectionClosed,
    HandshakeComplete,
    HandshakeInfo,
    KeyUpdated,
    WarningAlert,
)
from tlsmith.observe import MessageTrace, SecretTrace
from tlsmith.trace import TraceCollector, render_ladder, wire_name

if TYPE_CHECKING:
    from tlsmith.x509.devca import DevCA

HIDDEN = "(hidden: --show-secrets)"

# --kx for TLS 1.2: the suite, the certificate key it needs, and how to say that key.
_TLS12_KX: dict[str, tuple[CipherSuite, str, str]] = {
    "ecdhe": (CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "ecdsa-p256", "ECDSA P-256"),
    "dhe": (CipherSuite.TLS_DHE_RSA_WITH_AES_128_GCM_SHA256, "rsa-2048", "RSA-2048"),
    "rsa": (CipherSuite.TLS_RSA_WITH_AES_128_GCM_SHA256, "rsa-2048", "RSA-2048"),
}

_TLS12_KX_INTRO = {
    "ecdhe": "Key exchange: [bold]ECDHE[/bold]. Each side makes an elliptic-curve key pair "
             "for this connection only, and the server signs its public half with its "
             "certificate's key. Forward secret: stealing the server's key later does not "
             "decrypt a recording of this connection.",
    "dhe": "Key exchange: [bold]DHE[/bold]. Finite-field Diffie-Hellman over the RFC 7919 "
           "group ffdhe2048: the same idea as ECDHE with bigger numbers (256-byte public "
           "values instead of 32), signed with the server's RSA key. Forward secret too.",
    "rsa": "Key exchange: [bold]RSA key transport[/bold]. There is no ServerKeyExchange: the "
           "client invents the pre-master secret and encrypts it to the RSA key in the "
           "server's certificate. [yellow]Not forward secret[/yellow]: whoever gets the "
           "server's private key, even years later, can decrypt every recorded connection. "
           "TLS 1.3 removed it; tlsmith's server accepts it only when told to "
           "(allow_rsa_key_exchange=True, or tlsmith serve --allow-rsa-kx).",
}


def _pump(client: TLSConnection, server: TLSConnection
          ) -> list[tuple[str, object]]:
    """Move bytes both ways until neither side has anything to say; the events, each
    with the side that saw it."""
    events: list[tuple[str, object]] = []
    while True:
        moved = False
        for src, dst, name in ((client, server, "server"), (server, client, "client")):
            data = src.data_to_send()
            if data:
                dst.receive_data(data)
                moved = True
            events.extend((name, ev) for ev in dst.events())
        if not moved:
            return events


def _report(console: Console, events: list[tuple[str, object]]) -> None:
    for side, ev in events:
        if isinstance(ev, ApplicationData):
            console.print(f"{side} received {len(ev.data)} bytes: {escape(repr(ev.data[:64]))}")
        elif isinstance(ev, KeyUpdated):
            asked = " and was asked to update its own" if ev.update_requested else ""
            console.print(f"{side} saw the peer switch to new keys (KeyUpdate){asked}")
        elif isinstance(ev, WarningAlert):
            console.print(f"{side} received a warning alert: {ev.description.name.lower()}")
        elif isinstance(ev, ConnectionClosed):
            console.print(f"{side} received close_notify: the peer closed cleanly")


def _credentials(tmp: str, key_type: str) -> tuple[DevCA, CertifiedKey]:
    """A throw-away development CA and a localhost certificate with a ``key_type`` key."""
    from tlsmith.x509.devca import DevCA

    ca = DevCA.create()
    issued = ca.issue(("localhost", "127.0.0.1"), key_type=key_type)
    cert = Path(tmp) / "cert.pem"
    key = Path(tmp) / "key.pem"
    cert.write_bytes(issued.chain_pem)
    key.write_bytes(issued.key_pem)
    return ca, CertifiedKey.from_files(cert, key)


def _complete(events: list[tuple[str, object]]) -> bool:
    return sum(isinstance(e, HandshakeComplete) for _, e in events) == 2


def run_demo(console: Console, *, rfc8448: bool = False, show_secrets: bool = False,
             version: str = "1.3", kx: str | None = None) -> int:
    """``version`` is "1.3" or "1.2"; ``kx`` is "ecdhe" (the default), "dhe" or, with
    TLS 1.2 only, "rsa" (the CLI rejects the other combinations)."""
    if rfc8448:
        return _rfc8448(console)
    if version == "1.2":
        return _demo12(console, kx or "ecdhe", show_secrets)
    return _demo13(console, kx or "ecdhe", show_secrets)


def _demo13(console: Console, kx: str, show_secrets: bool) -> int:
    from tlsmith.x509.verify import TrustStore

    dhe = kx == "dhe"
    with tempfile.TemporaryDirectory(prefix="tlsmith-demo-") as tmp:
        ca, certified = _credentials(tmp, "ecdsa-p256")
        groups: dict[str, Any] = ({"groups": (NamedGroup.FFDHE2048,),
                                   "key_share_groups": (NamedGroup.FFDHE2048,)} if dhe else {})
        client_trace = TraceCollector()
        client = TLSConnection(ClientConfig(
            server_name="localhost", alpn_protocols=("h2", "http/1.1"),
            trust=TrustStore.from_pem_bytes(ca.ca_pem), observer=client_trace, **groups))
        server = TLSConnection(ServerConfig(certificates=(certified,),
                                            alpn_protocols=("http/1.1",)))
        console.rule("[bold]tlsmith demo: a TLS 1.3 handshake, watched from the client")
        console.print("Both ends are tlsmith, talking through memory (no network). The "
                      "server's certificate comes from a throw-away development CA."
                      + (" The client offers only ffdhe2048 (finite-field DHE, RFC 7919)."
                         if dhe else "") + "\n")
        events = _pump(client, server)
        render_ladder(client_trace, console, show_secrets=show_secrets)
        if not _complete(events):
            console.print("[red]the handshake did not complete[/red]")
            return 1
        info = client.info
        assert info is not None
        console.print()
        console.print(f"[bold green]Handshake complete:[/bold green] {info.version_label}, "
                      f"{info.cipher_suite.name}, {info.group.name.lower() if info.group else ''}"
                      f", {info.signature_scheme.name.lower() if info.signature_scheme else ''}"
                      f", ALPN {info.alpn}")
        console.rule("application data, KeyUpdate, close_notify")
        client.send_data(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        _report(console, _pump(client, server))
        client.key_update(request_peer=True)
        server.send_data(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        _report(console, _pump(client, server))
        client.close()
        server.close()
        _report(console, _pump(client, server))
        console.print("\nTry it on the network: [bold]tlsmith serve[/bold] in one terminal, "
                      "[bold]tlsmith connect localhost:8443 --cafile <CA> --trace[/bold] "
                      "in another. TLS 1.2: [bold]tlsmith demo --version 1.2[/bold].")
    return 0


def _demo12(console: Console, kx: str, show_secrets: bool) -> int:
    from tlsmith.x509.verify import TrustStore

    suite, key_type, key_words = _TLS12_KX[kx]
    with tempfile.TemporaryDirectory(prefix="tlsmith-demo-") as tmp:
        ca, certified = _credentials(tmp, key_type)
        client_trace = TraceCollector()
        client = TLSConnection(ClientConfig(
            server_name="localhost", alpn_protocols=("h2", "http/1.1"),
            cipher_suites=(suite,), min_version=ProtocolVersion.TLS12,
            max_version=ProtocolVersion.TLS12,
            trust=TrustStore.from_pem_bytes(ca.ca_pem), observer=client_trace))
        server = TLSConnection(ServerConfig(
            certificates=(certified,), alpn_protocols=("http/1.1",),
            cipher_suites=DEFAULT_SUITES + ((suite,) if suite not in DEFAULT_SUITES else ()),
            allow_rsa_key_exchange=kx == "rsa"))
        console.rule(f"[bold]tlsmith demo: a TLS 1.2 handshake ({kx.upper()}), watched from "
                     "the client")
        console.print(
            "Both ends are tlsmith, talking through memory (no network). The client offers "
            f"only TLS 1.2 and {suite.name}; the server's {key_words} certificate comes "
            "from a throw-away development CA.")
        console.print(_TLS12_KX_INTRO[kx] + "\n")
        events = _pump(client, server)
        render_ladder(client_trace, console, show_secrets=show_secrets)
        if not _complete(events):
            console.print("[red]the handshake did not complete[/red]")
            return 1
        info = client.info
        assert info is not None
        console.print()
        group = f" over {info.group.name.lower()}" if info.group else ""
        sig = (f", signed {info.signature_scheme.name.lower()}" if info.signature_scheme
               else ", no signature (the certificate's key decrypts instead)")
        console.print(f"[bold green]Handshake complete:[/bold green] {info.version_label}, "
                      f"{info.cipher_suite.name}, key exchange {info.key_exchange}{group}"
                      f"{sig}, extended master secret "
                      f"{'yes' if info.extended_master_secret else 'no'}, ALPN {info.alpn}")
        ok = explain_tls12_keys(console, client_trace, info, show_secrets=show_secrets,
                                server_private_key=certified.private_key)
        console.rule("application data, close_notify")
        client.send_data(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        _report(console, _pump(client, server))
        server.send_data(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        _report(console, _pump(client, server))
        console.print("[dim]TLS 1.2 has no KeyUpdate: the keys from the key block protect "
                      "every record until the connection ends.[/dim]")
        client.close()
        server.close()
        _report(console, _pump(client, server))
        cipher = f" --cipher {suite.name}" if kx != "ecdhe" else ""
        extra = f" --allow-rsa-kx{cipher}" if kx == "rsa" else ""
        console.print(f"\nTry it on the network: [bold]tlsmith serve{extra}[/bold] in one "
                      "terminal, [bold]tlsmith connect localhost:8443 --cafile <CA> --tls1.2"
                      f"{cipher} --trace[/bold] in another.")
    return 0 if ok else 1


# ------------------------------------------------------------------ TLS 1.2 key walk
def _row(console: Console, name: str, value: bytes, *, secret: bool = False,
         show: bool = False, shown: str | None = None) -> None:
    """One value: its name, its length and (unless secret and hidden) its hex."""
    if shown is None:
        shown = value.hex() if show or not secret else HIDDEN
    style = "yellow" if secret else "cyan"
    console.print(f"    [{style}]{name:<24}[/{style}]{len(value):>4} bytes  {shown}")


def _check(console: Console, ok: bool, text: str) -> bool:
    mark = "[green]✓[/green]" if ok else "[red]✗[/red]"
    console.print(f"    {mark} {text}")
    return ok


def _say(console: Console, text: str) -> None:
    console.print(f"  {text}")


def _step(console: Console, text: str) -> None:
    console.print(f"\n[bold]{text}[/bold]")


def explain_tls12_keys(console: Console, trace: TraceCollector, info: HandshakeInfo, *,
                       show_secrets: bool, server_private_key: Any = None) -> bool:
    """Walk from the pre-master secret to the record keys and Finished of a TLS 1.2
    handshake the client traced, recomputing each step with ``crypto.prf12`` and
    comparing it with what the handshake derived. False if anything differs."""
    from tlsmith.crypto import prf12
    from tlsmith.crypto.suites import suite_info

    suite = suite_info(info.cipher_suite)
    assert suite is not None and not suite.tls13
    secrets = {r.name: r.value for r in trace.records if isinstance(r, SecretTrace)}
    handshake = [r for r in trace.records if isinstance(r, MessageTrace)
                 and r.name not in ("ChangeCipherSpec", "Alert")]
    raw = [r.message.serialize() for r in handshake]
    names = [r.name for r in handshake]
    cke = next(i for i, n in enumerate(names) if n.startswith("ClientKeyExchange"))
    client_fin = names.index("Finished")
    hello = handshake[names.index("ClientHello")].message
    server_hello = handshake[names.index("ServerHello")].message
    hash_label = suite.hash_name.upper().replace("SHA", "SHA-")

    def transcript_hash(upto: int) -> bytes:
        return hashlib.new(suite.hash_name, b"".join(raw[: upto + 1])).digest()

    def through(upto: int) -> str:
        last = "client Finished" if upto == client_fin else wire_name(names[upto])
        return f"{hash_label}(ClientHello … {last})"

    ok = True
    console.print()
    console.rule("where the keys come from")
    # -- the randoms -------------------------------------------------------------------
    _step(console, "1. The two randoms (public: ClientHello and ServerHello carry them)")
    _row(console, "client_random", hello.random)
    _row(console, "server_random", server_hello.random)
    if server_hello.downgrade_sentinel:
        _say(console, "[dim]The server random ends with 44 4f 57 4e 47 52 44 01, "
                      "\"DOWNGRD\\x01\" (RFC 8446 §4.1.3): the server also supports TLS 1.3, "
                      "and this marker lets a client that does too notice an attacker who "
                      "forced 1.2. Our client offered only 1.2, so here it is expected."
                      "[/dim]")
    # -- the pre-master secret ---------------------------------------------------------
    pms = secrets["pre_master_secret"]
    _step(console, f"2. The pre-master secret ({info.key_exchange})")
    ok &= _explain_pre_master(console, handshake, names, pms, hello, info,
                              show_secrets=show_secrets,
                              server_private_key=server_private_key)
    # -- the master secret -------------------------------------------------------------
    _step(console, "3. The master secret")
    if info.extended_master_secret:
        session_hash = transcript_hash(cke)
        _say(console, f"session_hash = {through(cke)}: the handshake up to ClientKeyExchange "
                      f"({cke + 1} messages, {sum(len(x) for x in raw[: cke + 1])} bytes)")
        _row(console, "session_hash", session_hash)
        _say(console, 'master_secret = PRF(pre_master_secret, "extended master secret", '
                      "session_hash)[0..47]   (RFC 7627 §4)")
        master = prf12.extended_master_secret(suite.hash_name, pms, session_hash)
        _say(console, "[dim]The session hash ties the master secret to this whole handshake "
                      "(certificate and key exchange included), so two connections with "
                      "different servers can never end up with the same one: the "
                      "triple-handshake attack needed exactly that. tlsmith requires it "
                      "(--allow-no-ems relaxes that).[/dim]")
    else:
        _say(console, 'master_secret = PRF(pre_master_secret, "master secret", '
                      "client_random + server_random)[0..47]   (RFC 5246 §8.1; no extended "
                      "master secret)")
        master = prf12.master_secret(suite.hash_name, pms, hello.random, server_hello.random)
    _row(console, "master_secret", secrets["master_secret"], secret=True, show=show_secrets)
    ok &= _check(console, master == secrets["master_secret"],
                 "recomputed with the PRF: the master secret the handshake used")
    if show_secrets:
        _say(console, "The key-log line (NSS format) that lets Wireshark decrypt this "
                      "connection:")
        console.print(f"    CLIENT_RANDOM {hello.random.hex()} {master.hex()}",
                      markup=False, highlight=False)
    # -- the key block -----------------------------------------------------------------
    _step(console, "4. The key block")
    block_len = prf12.key_block_length(suite)
    _say(console, 'key_block = PRF(master_secret, "key expansion", server_random + '
                  f"client_random)[0..{block_len - 1}]   (RFC 5246 §6.3; the server random "
                  f"comes first here), cut into:")
    kb = prf12.derive_key_block(suite, master, hello.random, server_hello.random)
    for name in ("client_write_mac_key", "server_write_mac_key", "client_write_key",
                 "server_write_key", "client_write_iv", "server_write_iv"):
        value = getattr(kb, name)
        if value:
            _row(console, name, value, secret=True, show=show_secrets)
    if not suite.mac_key_len:
        cipher = suite.description.removeprefix("AEAD ")
        _say(console, f"[dim]{cipher} is an AEAD cipher: it needs no MAC keys. "
                      + (f"The {suite.iv_len}-byte write IVs are the fixed half of each "
                         f"record's nonce; every record carries the other "
                         f"{suite.record_iv_len} bytes in the clear (RFC 5288 §3)."
                         if suite.record_iv_len else
                         "The write IVs are XORed with the record sequence number to make "
                         "each record's nonce (RFC 7905 §2).") + "[/dim]")
    ok &= _check(console, all(getattr(kb, n) == secrets.get(n, b"") for n in (
        "client_write_key", "server_write_key", "client_write_iv", "server_write_iv",
        "client_write_mac_key", "server_write_mac_key")),
        "recomputed with the PRF: the keys the record layer used")
    # -- Finished ----------------------------------------------------------------------
    _step(console, "5. Finished (sent encrypted, right after ChangeCipherSpec)")
    server_fin = len(names) - 1 - names[::-1].index("Finished")
    for who, upto, index in (("client", client_fin - 1, client_fin),
                             ("server", server_fin - 1, server_fin)):
        expected = prf12.finished_verify_data(suite.hash_name, master, client=who == "client",
                                              handshake_hash=transcript_hash(upto))
        _say(console, f'{who} verify_data = PRF(master_secret, "{who} finished", '
                      f"{through(upto)})[0..11]")
        sent = handshake[index].message.verify_data
        _row(console, f"{who} verify_data", sent)
        ok &= _check(console, expected == sent, f"recomputed: the {who} Finished on the wire")
    _say(console, "[dim]Each side checks the other's Finished: it proves both derived the "
                  "same master secret and saw the same handshake, so nobody altered the "
                  "hellos on the way.[/dim]")
    return bool(ok)


def _explain_pre_master(console: Console, handshake: list[MessageTrace], names: list[str],
                        pms: bytes, hello: Any, info: HandshakeInfo, *, show_secrets: bool,
                        server_private_key: Any) -> bool:
    def message(prefix: str) -> Any:
        return next(r.message for r in handshake if r.name.startswith(prefix))

    ske: Any = None
    if info.key_exchange in ("ECDHE", "DHE"):
        ske = message("ServerKeyExchange")
    cke = message("ClientKeyExchange")
    if info.key_exchange == "ECDHE":
        curve = ske.named_curve.name.lower()
        _say(console, f"The server sent a fresh {curve} public key in ServerKeyExchange, "
                      "signed with its certificate's key; the client answered with its own "
                      "in ClientKeyExchange:")
        _row(console, "server public", ske.public)
        _row(console, "client public", cke.public)
        _say(console, "Each side combines its own private key with the other's public key "
                      "and both get the same shared secret: the pre-master secret. It never "
                      "crosses the wire.")
        _row(console, "pre_master_secret", pms, secret=True, show=show_secrets)
        return True
    if info.key_exchange == "DHE":
        p = int.from_bytes(ske.dh_p, "big")
        _say(console, f"The server sent a prime p ({p.bit_length()} bits: "
                      f"{info.group.name.lower() if info.group else 'custom'}), the "
                      f"generator g = {int.from_bytes(ske.dh_g, 'big')} and its public "
                      "Ys = g^y mod p in ServerKeyExchange, signed; the client sent "
                      "Yc = g^x mod p in ClientKeyExchange:")
        _row(console, "Ys", ske.dh_Ys, shown=ske.dh_Ys[:16].hex() + "…")
        _row(console, "Yc", cke.dh_Yc, shown=cke.dh_Yc[:16].hex() + "…")
        _say(console, "Both compute Z = g^(xy) mod p; Z with its leading zero bytes removed "
                      "is the pre-master secret (RFC 5246 §8.1.2).")
        _row(console, "pre_master_secret", pms, secret=True, show=show_secrets)
        return True
    # RSA key transport
    epms = cke.encrypted_pre_master_secret
    version = int(hello.legacy_version).to_bytes(2, "big")
    _say(console, f"The client made 48 bytes: {version.hex(' ')} (the version it offered, so "
                  "a rollback shows) + 46 random bytes, encrypted them to the server "
                  "certificate's RSA public key (PKCS #1 v1.5) and sent the result in "
                  "ClientKeyExchange (RFC 5246 §7.4.7.1):")
    _row(console, "EncryptedPreMasterSecret", epms, shown=epms[:16].hex() + "…")
    shown = pms.hex() if show_secrets else f"{pms[:2].hex()} + 46 bytes {HIDDEN}"
    _row(console, "pre_master_secret", pms, secret=True, shown=shown)
    ok = _check(console, len(pms) == 48 and pms[:2] == version,
                f"48 bytes, starting {version.hex(' ')}")
    if server_private_key is not None:
        from cryptography.hazmat.primitives.asymmetric import padding, rsa

        if isinstance(server_private_key, rsa.RSAPrivateKey):
            decrypted = server_private_key.decrypt(epms, padding.PKCS1v15())
            ok &= _check(console, decrypted == pms,
                         "this demo holds the server's private key too: decrypting "
                         "ClientKeyExchange with it gives the same 48 bytes")
    _say(console, "[yellow]No forward secrecy:[/yellow] the server's long-term RSA key is "
                  "all it takes to recover this pre-master secret from a recording, today or "
                  "in ten years. That is why TLS 1.3 dropped RSA key transport.")
    return bool(ok)


def _rfc8448(console: Console) -> int:
    from tlsmith.demo_keyschedule import walkthrough
    from tlsmith.rfc8448 import default_rfc8448_path

    path = default_rfc8448_path()
    if path is None or not path.exists():
        console.print("[red]RFC 8448 text not found[/red] (set TLSMITH_RFC_DIR)")
        return 1
    walkthrough(path, console)
    return 0


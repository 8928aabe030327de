"""``tlsmith demo``: a full TLS 1.3 handshake between tlsmith's client and server, in
memory and offline, shown step by step."""

from __future__ import annotations

import tempfile
from pathlib import Path

from rich.console import Console

from tlsmith.config import CertifiedKey, ClientConfig, ServerConfig
from tlsmith.connection import TLSConnection
from tlsmith.events import ApplicationData, ConnectionClosed, HandshakeComplete, KeyUpdated
from tlsmith.trace import TraceCollector, render_ladder


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
            console.print(f"{side} received {len(ev.data)} bytes: {ev.data[:64]!r}")
        elif isinstance(ev, KeyUpdated):
            asked = " and was asked to update its own" if ev.update_requested else ""
            console.print(f"{side} saw the peer switch to new keys (KeyUpdate){asked}")
        elif isinstance(ev, ConnectionClosed):
            console.print(f"{side} received close_notify: the peer closed cleanly")


def run_demo(console: Console, *, rfc8448: bool = False, show_secrets: bool = False) -> int:
    if rfc8448:
        return _rfc8448(console)
    from tlsmith.x509.devca import DevCA
    from tlsmith.x509.verify import TrustStore

    with tempfile.TemporaryDirectory(prefix="tlsmith-demo-") as tmp:
        ca = DevCA.create()
        issued = ca.issue(("localhost", "127.0.0.1"), key_type="ecdsa-p256")
        cert = Path(tmp) / "cert.pem"
        key = Path(tmp) / "key.pem"
        cert.write_bytes(issued.chain_pem)
        key.write_bytes(issued.key_pem)
        certified = CertifiedKey.from_files(cert, key)
        client_trace = TraceCollector()
        client = TLSConnection(ClientConfig(
            server_name="localhost", alpn_protocols=("h2", "http/1.1"),
            trust=TrustStore.from_pem_bytes(ca.ca_pem), observer=client_trace))
        server = TLSConnection(ServerConfig(certificates=(certified,),
                                            alpn_protocols=("http/1.1",)))
        console.rule("[bold]tlsmith demo: a TLS 1.3 handshake, watched from the client")
        console.print("Both ends are tlsmith, talking through memory (no network). The "
                      "server's certificate comes from a throw-away development CA.\n")
        events = _pump(client, server)
        render_ladder(client_trace, console, show_secrets=show_secrets)
        done = [e for _, e in events if isinstance(e, HandshakeComplete)]
        if len(done) != 2:
            console.print("[red]the handshake did not complete[/red]")
            return 1
        info = client.info
        assert info is not None
        console.print()
        console.print(f"[bold green]Handshake complete:[/bold green] {info.version}, "
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
                      "in another.")
    return 0


def _rfc8448(console: Console) -> int:
    from tlsmith.demo_keyschedule import walkthrough
    from tlsmith.rfc8448 import default_rfc8448_path

    path = default_rfc8448_path()
    if path is None or not path.exists():
        console.print("[red]RFC 8448 text not found[/red] (set TLSMITH_RFC_DIR)")
        return 1
    walkthrough(path, console)
    return 0

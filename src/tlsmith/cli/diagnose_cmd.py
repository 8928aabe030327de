"""``tlsmith diagnose HOST[:PORT]``: why a default client cannot connect, and the fix."""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tlsmith.errors import TLSError

_SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow",
                   "low": "cyan", "info": "dim"}


@click.command("diagnose")
@click.argument("target")
@click.option("--servername", default=None, help="SNI and certificate name (default: HOST).")
@click.option("--cafile", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Trust the CA certificates in this PEM file (default: system store).")
@click.option("--capath", type=click.Path(exists=True, file_okay=False), default=None,
              help="Trust the CA certificates in this directory; with --cafile, both "
              "are trusted.")
@click.option("--cert", "client_cert", type=click.Path(exists=True, dir_okay=False),
              default=None, help="Client certificate chain PEM, sent if the server asks "
              "(mutual TLS; needs --key).")
@click.option("--key", "client_key", type=click.Path(exists=True, dir_okay=False),
              default=None, help="Private key PEM for --cert.")
@click.option("--alpn", multiple=True, metavar="PROTO",
              help="ALPN protocol the default client offers (repeatable; default: "
              "http/1.1, as an HTTPS client does; --alpn none offers none).")
@click.option("--timeout", default=10.0, show_default=True, type=click.FloatRange(0.1),
              help="Seconds to wait, per attempt.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def command(target: str, servername: str | None, cafile: str | None, capath: str | None,
            client_cert: str | None, client_key: str | None, alpn: tuple[str, ...],
            timeout: float, as_json: bool) -> None:
    """Diagnose HOST[:PORT] (default port 443): run the handshake a default client runs;
    if it fails, change one thing at a time to find out why, and say how to fix it.

    Exit status: 0 when the diagnosis ran (even if the server is broken), 1 when the
    host cannot be reached at all, 2 on usage errors."""
    from tlsmith.cli.connect_cmd import build_client_config
    from tlsmith.cli.main import _split_host_port, console, err_console
    from tlsmith.diagnose import HostUnreachable, diagnose
    from tlsmith.explain import explain

    host, port = _split_host_port(target, 443)
    if (client_cert is None) != (client_key is None):
        raise click.UsageError("--cert and --key go together")
    # A default HTTPS client offers http/1.1: a server that speaks only h2 refuses it.
    protocols = [] if alpn == ("none",) else list(alpn or ("http/1.1",))
    try:
        base = build_client_config(host=host, ciphers=[], groups=[], alpn=protocols,
                                   keylog=None, servername=servername, cafile=cafile,
                                   insecure=False, observer=None, client_cert=client_cert,
                                   client_key=client_key, capath=capath)
    except TLSError as exc:
        err_console.print(f"[bold red]error:[/bold red] {escape(explain(exc))}")
        sys.exit(2)
    try:
        result = diagnose(host, port, base=base, timeout=timeout)
    except HostUnreachable as exc:
        if as_json:
            console.print_json(json.dumps({"ok": False, "reachable": False,
                                           "error": exc.message, "findings": [],
                                           "attempts": []}))
        err_console.print(f"[bold red]error:[/bold red] cannot diagnose {host}:{port}: "
                          f"{escape(exc.message)}")
        sys.exit(1)
    if as_json:
        obj = result.to_json()
        obj["reachable"] = True
        console.print_json(json.dumps(obj))
        sys.exit(0)
    _render(console, result)
    sys.exit(0)


def _render(console: Console, result: object) -> None:
    from tlsmith.diagnose import Diagnosis

    assert isinstance(result, Diagnosis)
    if result.ok:
        console.print(f"[bold green]✓ {escape(result.summary)}[/bold green]")
    else:
        console.print(f"[bold red]✗ {escape(result.summary)}[/bold red]")
    if result.findings:
        console.print()
        console.rule("findings")
        for f in result.findings:
            style = _SEVERITY_STYLE.get(f.severity, "")
            console.print(f"[{style}]{f.severity.upper()}[/{style}] [bold]{f.id}[/bold]: "
                          f"{escape(f.text)}")
            console.print(f"  fix: {escape(f.fix)}")
            console.print(f"  [dim]evidence: {escape(f.evidence)}[/dim]")
    elif result.ok:
        console.print("No problems found.")
    console.print()
    table = Table(title="attempts", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("what changed")
    table.add_column("result")
    for a in result.attempts:
        mark = "[green]✓[/green]" if a.ok else "[red]✗[/red]"
        table.add_row(str(a.number), escape(a.label), f"{mark} {escape(a.outcome)}")
    console.print(table)
    if not result.ok:
        console.print("[dim]The diagnosis ran: the server is broken for a default client "
                      "(exit status 0).[/dim]")

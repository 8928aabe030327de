"""``tlsmith probe HOST[:PORT]``: scan a TLS server (versions, suites, groups, signature
algorithms, certificates, resumption, 0-RTT, protections) and rate it.

The scan itself is ``tlsmith.probe.scan``; this module is options, progress and output.
The JSON (``--json``) is documented in docs/probe-schema.md.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table

_SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow",
                   "low": "cyan", "info": "dim"}
_GRADE_STYLE = {"A": "bold green", "B": "bold yellow", "C": "bold red", "F": "bold red"}


@click.command("probe")
@click.argument("target")
@click.option("--servername", default=None, help="SNI and certificate name (default: HOST).")
@click.option("--cafile", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Trust the CA certificates in this PEM file (default: system store).")
@click.option("--capath", type=click.Path(exists=True, file_okay=False), default=None,
              help="Trust the CA certificates in this directory; with --cafile, both.")
@click.option("--insecure", is_flag=True,
              help="Do not verify certificates (they are still described).")
@click.option("--cert", "client_cert", type=click.Path(exists=True, dir_okay=False),
              default=None, help="Client certificate chain PEM, for servers that ask "
              "(mutual TLS; needs --key).")
@click.option("--key", "client_key", type=click.Path(exists=True, dir_okay=False),
              default=None, help="Private key PEM for --cert.")
@click.option("--timeout", default=5.0, show_default=True,
              help="Seconds to wait for each connection.")
@click.option("--concurrency", type=click.IntRange(1, 32), default=4, show_default=True,
              help="Connections open at once.")
@click.option("--spacing", type=click.FloatRange(0.0, 10.0), default=0.01,
              show_default=True, help="Seconds between connection starts (politeness).")
@click.option("--no-robot", is_flag=True,
              help="Skip the ROBOT check (malformed RSA ClientKeyExchanges).")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object (docs/probe-schema.md).")
def command(target: str, servername: str | None, cafile: str | None, capath: str | None,
            insecure: bool, client_cert: str | None, client_key: str | None,
            timeout: float, concurrency: int, spacing: float, no_robot: bool,
            as_json: bool) -> None:
    """Scan HOST[:PORT] (default port 443): what the server supports, and a rating."""
    from tlsmith.cli.main import _split_host_port
    from tlsmith.errors import TLSError
    from tlsmith.probe.scan import ProbeOptions, run_probe

    console = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    host, port = _split_host_port(target, 443)
    if (client_cert is None) != (client_key is None):
        raise click.UsageError("--cert and --key go together")
    trust = None
    if not insecure:
        from tlsmith.cli.connect_cmd import choose_trust_store

        try:
            trust = choose_trust_store(cafile, capath)
        except TLSError as exc:
            err.print(f"[yellow]note:[/yellow] no trust store ({exc}); certificates are "
                      "described but not verified")
    certificate = None
    if client_cert and client_key:
        from tlsmith.config import CertifiedKey

        certificate = CertifiedKey.from_files(client_cert, client_key)
    opts = ProbeOptions(host=host, port=port, server_name=servername, trust=trust,
                        certificate=certificate, timeout=timeout, concurrency=concurrency,
                        spacing=spacing, robot=not no_robot)
    try:
        if not as_json and err.is_terminal:
            from rich.progress import BarColumn, Progress, TextColumn

            with Progress(TextColumn("[progress.description]{task.description}"),
                          BarColumn(), TextColumn("{task.completed}/{task.total}"),
                          console=err, transient=True) as progress:
                task = progress.add_task(f"probing {host}:{port}", total=None)

                def advance(name: str, done: int, total: int) -> None:
                    progress.update(task, completed=done, total=total,
                                    description=f"probing {host}:{port}: {name}")

                opts.progress = advance
                result = run_probe(opts)
        else:
            result = run_probe(opts)
    except (ConnectionError, OSError) as exc:
        if as_json:
            console.print_json(json.dumps({"error": str(exc)}))
        else:
            err.print(f"[bold red]error:[/bold red] {exc}")
        sys.exit(2)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        print_report(console, result)
    sys.exit(0)


def print_report(console: Console, r: dict[str, Any]) -> None:
    t = r["target"]
    grade = r["rating"]["grade"]
    console.print(f"[bold]{t['host']}:{t['port']}[/bold]  rating "
                  f"[{_GRADE_STYLE.get(grade, 'bold')}]{grade}[/]  "
                  f"({r['stats']['connections']} connections, {r['stats']['seconds']} s)")
    table = Table(show_header=True, header_style="bold", title="Protocol")
    table.add_column("What")
    table.add_column("Result", overflow="fold")
    table.add_row("versions", ", ".join(r["versions"]) or "none")
    for label, names in r["cipher_suites"].items():
        pref = r["cipher_preference"].get(label)
        table.add_row(f"suites {label}" + (f" ({pref} order)" if pref else ""),
                      "\n".join(names) or "none")
    for label, names in r["groups"].items():
        table.add_row(f"groups {label}", ", ".join(names) or "none")
    for label, names in r["signature_algorithms"].items():
        table.add_row(f"signatures {label}", ", ".join(names) or "none")
    for key, value in r["resumption"].items():
        table.add_row(f"resumption {key}", str(value.get("rate")))
    ed = r["early_data"]
    if ed:
        table.add_row("0-RTT", "accepted" if ed.get("accepted") else
                      ("offered, rejected" if ed.get("offered_by_server") else "not offered"))
    if r["alpn"]:
        table.add_row("ALPN", ", ".join(r["alpn"].get("supported", [])) or "none")
    table.add_row("OCSP stapling", str(r["ocsp_stapling"]))
    for key, value in r["features"].items():
        table.add_row(key.replace("_", " "), json.dumps(value))
    if r["robot"]:
        table.add_row("ROBOT", f"{r['robot'].get('result')}")
    if r["ja4s"]:
        table.add_row("JA4S", r["ja4s"]["ja4s"])
    console.print(table)
    for cert in r["certificates"]:
        console.print(f"certificate: {cert['subject']} ({cert['key']}, "
                      f"{cert['signature_algorithm']}), issuer {cert['issuer']}, "
                      f"expires {cert['not_after']} ({cert['days_left']} days), "
                      f"verification: {cert['verification']}")
    if r["findings"]:
        ft = Table(show_header=True, header_style="bold", title="Findings")
        ft.add_column("Severity")
        ft.add_column("Finding", overflow="fold")
        ft.add_column("Fix", overflow="fold")
        for f in r["findings"]:
            ft.add_row(f"[{_SEVERITY_STYLE[f['severity']]}]{f['severity']}[/]",
                       f"{f['text']} [dim]({f['id']})[/dim]", f["fix"])
        console.print(ft)
    else:
        console.print("no findings")
    console.print("rating reasons: " + "; ".join(r["rating"]["reasons"]))

"""``tlsmith gallery``: an offline gallery of broken TLS servers on 127.0.0.1.

``serve`` runs them all (until Ctrl-C); ``list`` says what ``serve`` would run, without
running anything (``--json``: a list of {name, port, cafile, expect, description}).
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tlsmith.gallery.cases import CASES, HOST, SERVER_NAME, aia_port, default_gallery_dir

_BASE_PORT = click.IntRange(0, 65535 - len(CASES))  # the cases, then the AIA port


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _table(rows: list[tuple[str, str, str | None, str]], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("case", no_wrap=True)
    table.add_column("port", justify="right", no_wrap=True)
    table.add_column("diagnose should say", no_wrap=True)
    table.add_column("what it demonstrates")
    for name, port, expect, description in rows:
        table.add_row(name, port, expect or "(nothing: it works)",
                      escape(description))
    return table


@click.group("gallery")
def command() -> None:
    """An offline gallery of broken TLS servers (like badssl.com), on 127.0.0.1.

    \b
    tlsmith gallery serve                   serve every case (free ports; Ctrl-C stops)
    tlsmith gallery serve --base-port 9400  case i on port 9400+i, in `list` order
    tlsmith gallery list --json             the cases, without serving them

    Every server's certificate comes from one gallery CA (ca.pem in --dir): trust it
    and ask for "localhost"; each broken case then fails the way its name says.
    """


@command.command("serve")
@click.option("--base-port", type=_BASE_PORT, default=0, show_default=True,
              help="Serve case i (in `tlsmith gallery list` order) on port N+i, and the "
              "missing intermediate over HTTP on the port after the last case; 0 picks "
              "free ports.")
@click.option("--dir", "directory", type=click.Path(file_okay=False), default=None,
              help="Where the gallery CA and the cases' certificates are written "
              "[default: $TLSMITH_HOME/gallery, else ~/.local/share/tlsmith/gallery].")
@click.option("--verbose", "-v", is_flag=True, help="Print a line per connection.")
def serve(base_port: int, directory: str | None, verbose: bool) -> None:
    """Serve every case until Ctrl-C."""
    from tlsmith.errors import UsageError
    from tlsmith.gallery.servers import start_gallery

    console = _console()
    log = (lambda line: console.print(escape(line))) if verbose else None
    try:
        gallery = start_gallery(base_port, directory, log=log)
    except UsageError as exc:
        raise click.ClickException(str(exc)) from exc
    stop = threading.Event()
    # SIGTERM stops as cleanly as Ctrl-C (for scripts and tests).
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        rows = [(s.name, str(s.port), s.expect, s.description)
                for s in gallery.servers]
        console.print(_table(rows, f"tlsmith gallery: {len(rows)} servers on {HOST}"))
        console.print(f"trust the gallery CA: [bold]{escape(str(gallery.cafile))}[/bold] "
                      f'and ask for "{SERVER_NAME}"; the missing intermediate is at '
                      f"{escape(gallery.aia_url)}")
        good = gallery.server("good")
        console.print(f"try: tlsmith connect {HOST}:{good.port} --servername {SERVER_NAME} "
                      f"--cafile {escape(str(gallery.cafile))}")
        console.print("serving; Ctrl-C to stop")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        gallery.stop()
    console.print("gallery stopped")


@command.command("list")
@click.option("--base-port", type=_BASE_PORT, default=None,
              help="Show the ports `serve --base-port N` would use.")
@click.option("--dir", "directory", type=click.Path(file_okay=False), default=None,
              help="The directory `serve --dir` would use (for the cafile shown).")
@click.option("--json", "as_json", is_flag=True,
              help="A JSON list of {name, port, cafile, expect, description}.")
def list_cases(base_port: int | None, directory: str | None, as_json: bool) -> None:
    """What `tlsmith gallery serve` serves (nothing is started)."""
    cafile = (Path(directory) if directory is not None else default_gallery_dir()) / "ca.pem"
    entries: list[dict[str, Any]] = [
        {"name": c.name, "port": None if base_port is None else base_port + i,
         "cafile": str(cafile), "expect": c.expect, "description": c.description}
        for i, c in enumerate(CASES)]
    if as_json:
        click.echo(json.dumps(entries, indent=2))
        return
    console = _console()
    rows = [(c.name, "-" if base_port is None else str(base_port + i), c.expect,
             c.description) for i, c in enumerate(CASES)]
    console.print(_table(rows, f"tlsmith gallery: {len(rows)} cases"))
    console.print(f"CA to trust (written by serve): {escape(str(cafile))}")
    if base_port is not None:
        console.print(f"missing intermediate over HTTP: http://{HOST}:{aia_port(base_port)}"
                      "/intermediate.der")

"""`tlsmith diagnose` (being written)."""

from __future__ import annotations

import click


@click.command("diagnose")
def command() -> None:
    """Not available yet."""
    raise click.UsageError("tlsmith diagnose is not available yet")

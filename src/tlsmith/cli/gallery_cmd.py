"""`tlsmith gallery` (being written)."""

from __future__ import annotations

import click


@click.command("gallery")
def command() -> None:
    """Not available yet."""
    raise click.UsageError("tlsmith gallery is not available yet")

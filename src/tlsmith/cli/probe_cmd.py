"""`tlsmith probe` (being written)."""

from __future__ import annotations

import click


@click.command("probe")
def command() -> None:
    """Not available yet."""
    raise click.UsageError("tlsmith probe is not available yet")

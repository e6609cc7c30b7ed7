"""``embedprobe verify CACHE``: read every stored value and compare it with its checksum."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from embedprobe.cache.verify import verify_cache
from embedprobe.cli.common import friendly, out


def register(app: typer.Typer) -> None:
    @app.command()
    @friendly
    def verify(cache: Path = typer.Argument(..., help="Cache file (.h5).")) -> None:
        """Check a whole cache: exit 0 when clean, 1 with one line per problem otherwise."""
        rep = verify_cache(cache)
        for line in rep.problems:
            out.print(f"[red]problem[/] {escape(line)}")
        for line in rep.notes:
            out.print(f"[yellow]note[/] {escape(line)}")
        if not rep.ok:
            out.print(f"{cache}: {len(rep.problems)} problem{'s' if len(rep.problems) != 1 else ''}.")
            raise typer.Exit(1)
        out.print(f"[green]ok[/] {cache}: the values of all {rep.n_checked} clips match their checksums.")

"""``embedprobe list extractors|corpora``."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from embedprobe.cli.common import friendly, out
from embedprobe.errors import BadValueError

KINDS = ("extractors", "corpora")


def register(app: typer.Typer) -> None:
    @app.command("list")
    @friendly
    def list_(
        kind: str = typer.Argument(..., help="What to list: extractors or corpora."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    ) -> None:
        """List the registered extractors (with dims, rate, layers, licence, weights) or corpora."""
        from embedprobe.listing import list_corpora, list_extractors

        if kind not in KINDS:
            raise BadValueError("kind", kind, KINDS)
        rows = list_extractors() if kind == "extractors" else list_corpora()
        if as_json:
            out.print_json(json.dumps(rows))
            return
        table = Table(show_lines=False)
        for col in rows[0] if rows else []:
            table.add_column(col, no_wrap=col == "name", overflow="fold")
        for row in rows:
            cells = dict(row)
            if "licence" in cells:  # the short form; --json has the full text
                cells["licence"] = str(cells["licence"]).split(" (")[0].split(";")[0]
            table.add_row(*(str(v) for v in cells.values()))
        out.print(table)

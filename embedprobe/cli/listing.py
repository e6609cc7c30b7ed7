"""``embedprobe list [KIND]``: every registry (extractors, prefixes, corpora, probes, ...)."""

from __future__ import annotations

import json

import typer
from rich.markup import escape
from rich.table import Table

from embedprobe.cli.catalog import rows as catalog_rows
from embedprobe.cli.common import friendly, out


def register(app: typer.Typer) -> None:
    @app.command("list")
    @friendly
    def list_(
        kind: str | None = typer.Argument(
            None, help="What to list: extractors, prefixes, corpora, probes, augmentations, domain-probes... "
                       "(without KIND: every kind)."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    ) -> None:
        """List what is registered: extractors (with dims, rate, layers, licence, weights), name prefixes,
        corpora, probes, augmentations and every other plugin kind; without KIND, the kinds."""
        rows = catalog_rows(kind)
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
            table.add_row(*(escape(str(v)) for v in cells.values()))
        out.print(table)

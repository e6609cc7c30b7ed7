"""``embedprobe list extractors|corpora|probes|augmentations``."""

from __future__ import annotations

import json

import typer
from rich.markup import escape
from rich.table import Table

from embedprobe.cli.common import friendly, out
from embedprobe.errors import BadValueError

KINDS = ("extractors", "corpora", "probes", "augmentations")  # = embedprobe.cli.catalog.LISTINGS


def register(app: typer.Typer) -> None:
    @app.command("list")
    @friendly
    def list_(
        kind: str = typer.Argument(..., help="What to list: extractors, corpora, probes or augmentations."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    ) -> None:
        """List the registered extractors (with dims, rate, layers, licence, weights), corpora, probes or augmentations."""
        from embedprobe.cli.catalog import LISTINGS

        if kind not in LISTINGS:
            raise BadValueError("kind", kind, KINDS)
        rows = LISTINGS[kind]()
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

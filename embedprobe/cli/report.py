"""``embedprobe report RESULTS_DIR``: Markdown + PNG heatmaps from results JSON files."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from embedprobe.cli.common import console, friendly
from embedprobe.report.markdown import write_report


def register(app: typer.Typer) -> None:
    @app.command()
    @friendly
    def report(
        results: Path = typer.Argument(..., help="Results folder (from embedprobe probe --out)."),
        out: Path = typer.Option(None, "--out", "-o", help="Report file (default RESULTS/report.md)."),
    ) -> None:
        """Write a Markdown report with AUROC, wF1 and relative-wF1 matrices and heatmaps."""
        path = write_report(results, out)
        console.print(f"[green]report[/]: {escape(str(path))}")

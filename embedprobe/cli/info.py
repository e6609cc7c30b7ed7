"""``embedprobe info CACHE_FILE`` (what a cache holds and what made it) and ``embedprobe merge``."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from embedprobe.cache import merge as merge_shards
from embedprobe.cache import open_cache
from embedprobe.cli.common import friendly, out


def register(app: typer.Typer) -> None:
    @app.command()
    @friendly
    def info(
        cache: Path = typer.Argument(..., help="Cache file (.h5)."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Clips, errors, layers, dims, completeness and provenance of a cache."""
        with open_cache(cache) as reader:
            data = reader.info()
            data["errors"] = reader.errors
        if as_json:
            out.print_json(json.dumps(data, default=str))
            return
        t = Table(show_header=False)
        for key in ("path", "n_clips", "n_errors", "n_pending", "complete", "dtype", "frames", "size_bytes"):
            if key in data:
                t.add_row(key, escape(str(data[key])))
        t.add_row("checksums", {"yes": "per clip, checked on every read (`embedprobe verify` checks all)",
                                "no": "none (written before checksums; values cannot be verified)",
                                "partly": "some parts have none (written before checksums)"}[data["checksums"]])
        for p in data.get("missing_parts", []):
            t.add_row("missing part", f"{escape(str(p))} (re-running the extraction resumes)")
        t.add_row("layers", ", ".join(f"{k} ({v})" for k, v in data.get("dims", {}).items()))
        prov = data.get("provenance", {})
        ident = prov.get("identity", {})
        ext = ident.get("extractor", {})
        t.add_row("extractor", f"{ext.get('name')} weights={ext.get('weights_id')} "
                               f"rev={ident.get('weights_revision')}")
        t.add_row("code", str(prov.get("code_version")))
        out.print(t)
        for err in data.get("errors", [])[:50]:
            out.print(f"[red]error[/] {escape(str(err.get('path')))}: {escape(str(err.get('reason')))}")

    @app.command()
    @friendly
    def merge(cache: Path = typer.Argument(..., help="Cache file (.h5) whose shards to merge.")) -> None:
        """Merge the shards written by `extract --shard K/N` workers into one cache file."""
        path = merge_shards(cache)
        with open_cache(path) as reader:
            out.print(f"merged: {escape(str(path))} - {reader.n_clips} clips, {len(reader.errors)} errors, "
                      f"complete={reader.complete}")

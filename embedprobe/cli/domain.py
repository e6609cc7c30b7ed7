"""``embedprobe domain``: Fréchet distance and corpus identifiability between cached corpora."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from embedprobe.cli.common import CACHE_DIR, console, csv_list, default, friendly, out
from embedprobe.pipeline.domain import domain_gap_for

_D = domain_gap_for  # every default below is domain_gap_for's


def register(app: typer.Typer) -> None:
    @app.command()
    @friendly
    def domain(
        model: str = typer.Option(..., "--model", "-m", help="Extractor whose caches are compared."),
        cache_dir: Path = typer.Option(CACHE_DIR, "--cache-dir", help="Folder of caches."),
        layer: str = typer.Option(None, "--layer", help="Comma-separated layers (default: all shared)."),
        corpora: str = typer.Option(None, "--corpora", help="Comma-separated corpora (default: all cached)."),
        probe: str = typer.Option(default(_D, "probe"), "--probe", help="Identifiability probe (embedprobe list domain-probes; every probe works too)."),
        shrinkage: str = typer.Option(default(_D, "shrinkage"), "--shrinkage", help="auto, ledoit-wolf, none or a float in [0, 1]."),
        seed: int = typer.Option(default(_D, "seed"), "--seed", help="Identifiability split and probe seed."),
        out_dir: Path = typer.Option(Path(default(_D, "out")), "--out", "-o", help="Folder of domain__<model>.json/.md."),
        allow_incomplete: bool = typer.Option(default(_D, "allow_incomplete"), "--allow-incomplete",
                                              help="Use caches that miss clips (recorded in the results)."),
        threads: int = typer.Option(None, "--threads", help="Torch/BLAS threads (default: chosen per step)."),
    ) -> None:
        """How far apart are the corpora in embedding space, and can a probe tell them apart?"""
        from rich.table import Table

        try:
            shrink: str | float = float(shrinkage)
        except ValueError:
            shrink = shrinkage
        rec = domain_gap_for(model, cache_dir, layers=csv_list(layer), corpora=csv_list(corpora),
                             out=out_dir, seed=seed, probe=probe, shrinkage=shrink,
                             allow_incomplete=allow_incomplete, threads=threads)
        for c in rec["caches"].values():
            if c.get("incomplete"):
                console.print(f"[yellow]incomplete[/] {escape(c['incomplete']['note'])}")
        fd = Table(title=f"Fréchet distance between corpora ({escape(model)}; FD/var = FD / mean total variance)")
        for col in ("layer", "a", "b", "n a", "n b", "FD", "FD/var", "mean term", "cov term", "shrinkage"):
            fd.add_column(col, justify="left" if col in ("layer", "a", "b", "shrinkage") else "right")
        for r in rec["frechet"]:
            fd.add_row(escape(r["layer"]), escape(r["a"]), escape(r["b"]), str(r["n_a"]), str(r["n_b"]), f"{r['frechet']:.4g}",
                       f"{r['frechet_norm']:.3f}", f"{r['mean_term']:.4g}", f"{r['cov_term']:.4g}",
                       str(r["shrinkage"]))
        out.print(fd)
        names = rec["corpora"]
        ident = Table(title=f"Corpus identifiability (chance: balanced acc. {1 / len(names):.2f}, AUROC 0.50)")
        for col in ("layer", "balanced acc.", "AUROC", "split", *(f"recall {escape(c)}" for c in names)):
            ident.add_column(col, justify="left" if col in ("layer", "split") else "right")
        for layer_name, r in rec["identifiability"].items():
            ident.add_row(escape(layer_name), f"{r['balanced_accuracy']:.3f}", f"{r['auroc']:.3f}", r["split"],
                          *(f"{r['per_corpus_recall'][c]:.3f}" for c in names))
        out.print(ident)
        console.print(f"[green]done[/]: {escape(str(rec['files']['json']))}, {escape(str(rec['files']['markdown']))} "
                      f"({rec['seconds']:.1f} s)")

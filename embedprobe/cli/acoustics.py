"""``embedprobe acoustics``: acoustic profile of a corpus (paper Figure 4), cached and compared."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from embedprobe.cli.common import console, csv_list, default, friendly, out, parse_options
from embedprobe.pipeline.acoustics import compare, load_profiles, medians, profile, read_meta

_D = profile  # the defaults below are profile's (but --out and --workers, which only the command has)


def register(app: typer.Typer) -> None:
    @app.command()
    @friendly
    def acoustics(
        corpus: str = typer.Option(..., "--corpus", "-c", help="Corpus reader (embedprobe list corpora)."),
        root: Path = typer.Option(..., "--root", "-r", help="Corpus root folder."),
        augment: str = typer.Option(None, "--augment", "-a", help="Augmentation to profile, e.g. paper."),
        copies: int = typer.Option(default(_D, "copies"), "--copies", help="Augmented copies per clip."),
        seed: int = typer.Option(default(_D, "seed"), "--seed", help="Augmentation seed."),
        max_clips: int = typer.Option(None, "--max-clips", help="Measure a seeded subset of N clips."),
        subset_seed: int = typer.Option(default(_D, "subset_seed"), "--subset-seed", help="Seed of the --max-clips subset."),
        measures: str = typer.Option(None, "--measures", help="Comma-separated measures (default: all installed)."),
        labelled_only: bool = typer.Option(default(_D, "labelled_only"), "--labelled-only", help="Only clips of the 4-class set."),
        out_dir: Path = typer.Option(Path("acoustics"), "--out", "-o", help="Folder of profiles and the figure."),
        workers: int = typer.Option(2, "--workers", help="Processes measuring clips in parallel."),
        option: list[str] = typer.Option(None, "--option", help="Corpus option KEY=VALUE (repeatable)."),
        overwrite: bool = typer.Option(default(_D, "overwrite"), "--overwrite", help="Start this profile over."),
        unpaired: bool = typer.Option(False, "--unpaired", help="Compare all rows of each profile, not only "
                                      "the clips every profile of that corpus measured."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    ) -> None:
        """Measure MOS, T60, C50, SNR and loudness per clip (resumable), then compare every profile in --out."""
        try:
            path = profile(corpus, root, out_dir=out_dir, augment=augment, copies=copies, seed=seed,
                           max_clips=max_clips, subset_seed=subset_seed, which=csv_list(measures),
                           labelled_only=labelled_only, workers=workers, progress=not quiet,
                           corpus_options=parse_options(option))
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/]: the clips measured so far are saved; re-run the "
                          "same command to resume")
            raise typer.Exit(130) from None
        run = read_meta(path)["runs"][-1]
        console.print(f"[green]done[/]: {escape(str(path))} - {run['n_new']} new, {run['n_done_before']} already "
                      f"measured, {run['n_errors']} errors, {run['seconds']:.1f} s")
        rows, figure = compare(out_dir, paired=not unpaired)
        _print_medians(medians(load_profiles(out_dir, paired=not unpaired)))
        if rows:
            _print_distances(rows)
        console.print(f"figure: {escape(str(figure))}")


def _print_medians(rows: list[dict]) -> None:
    from rich.table import Table

    labels = list(dict.fromkeys(r["profile"] for r in rows))
    cell = {(r["profile"], r["measure"]): r for r in rows}
    table = Table(title="median [25th, 75th percentile] per measure and profile")
    table.add_column("measure")
    for label in labels:
        table.add_column(escape(label), justify="right")
    for m in dict.fromkeys(r["measure"] for r in rows):
        table.add_row(m, *(_median(cell.get((label, m))) for label in labels))
    table.add_row("clips x copies", *(str(max(r["n"] for r in rows if r["profile"] == label))
                                      for label in labels))
    out.print(table)


def _median(r: dict | None) -> str:
    return "-" if r is None or not r["n"] else f"{r['median']:.2f} [{r['q25']:.2f}, {r['q75']:.2f}]"


def _print_distances(rows: list[dict]) -> None:
    from rich.table import Table

    table = Table(title="distances between profiles (W1: Wasserstein-1; W1/sd: per pooled sd; KS)")
    for col in ("measure", "a", "b", "median a", "median b", "W1", "W1/sd", "KS", "KS p"):
        table.add_column(col, justify="left" if col in ("measure", "a", "b") else "right")
    for r in rows:
        table.add_row(r["measure"], escape(r["corpus_a"]), escape(r["corpus_b"]), f"{r['median_a']:.2f}",
                      f"{r['median_b']:.2f}", f"{r['wasserstein']:.3f}", f"{r['wasserstein_std']:.3f}",
                      f"{r['ks']:.3f}", f"{r['ks_pvalue']:.2g}")
    out.print(table)

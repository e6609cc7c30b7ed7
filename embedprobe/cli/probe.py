"""``embedprobe probe``: cross-corpus matrix of probes on cached embeddings."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from embedprobe.cli.common import CACHE_DIR, console, csv_list, default, friendly, parse_options
from embedprobe.common.checks import count
from embedprobe.pipeline.domain import domain_gap_for
from embedprobe.pipeline.probe import ProbeConfig, load_results, quiet_numpy
from embedprobe.pipeline.probe import probe as run
from embedprobe.report.results import add_section

_D = ProbeConfig  # every default below is ProbeConfig's


def register(app: typer.Typer) -> None:
    @app.command()
    @friendly
    def probe(
        model: str = typer.Option(..., "--model", "-m", help="Extractor whose caches are probed."),
        cache_dir: Path = typer.Option(CACHE_DIR, "--cache-dir", help="Folder of caches."),
        train: list[str] = typer.Option(..., "--train", help="Corpus or union (a,b) to train on; repeatable."),
        test: str = typer.Option(",".join(default(_D, "test")), "--test", help="Comma-separated corpora to test on, or all."),
        probe_name: str = typer.Option(default(_D, "probe"), "--probe", help="Probe: linear, mlp, logreg, svm or a plugin (embedprobe list probes)."),
        layer: str = typer.Option(None, "--layer", help="Cache layer (default: the last)."),
        pooling: str = typer.Option(default(_D, "pooling"), "--pooling", help="mean or meanstd."),
        frames: bool = typer.Option(default(_D, "frames"), "--frames", help="Train on frame-level features."),
        frame_mask: float = typer.Option(None, "--frame-mask", help="Share of frames masked before pooling."),
        mix: float = typer.Option(None, "--mix", help="Probability of same-label feature mixing."),
        noise: float = typer.Option(None, "--noise", help="Gaussian noise std on standardised features."),
        seeds: int = typer.Option(len(default(_D, "seeds")), "--seeds", help="Number of seeds (0..N-1)."),
        scramble: str = typer.Option(None, "--scramble", help="Corpora whose labels are scrambled."),
        protocol: list[str] = typer.Option(None, "--protocol", help="CORPUS=PROTOCOL (repeatable); loso = "
                                           "leave one speaker out, for every corpus with speaker ids."),
        aggregate: str = typer.Option(default(_D, "aggregate"), "--aggregate", help="mean of the folds' "
                                      "scores, or pooled: each metric once over all folds' predictions."),
        param: list[str] = typer.Option(None, "--param", help="Probe parameter KEY=VALUE (repeatable)."),
        augment_rate: float = typer.Option(default(_D, "augment_rate"), "--augment-rate",
                                           help="Share of training draws replaced by augmented copies (0-1)."),
        augment: str = typer.Option(default(_D, "augment"), "--augment", help="Augmented caches to read (with --augment-rate)."),
        augment_seed: int = typer.Option(default(_D, "augment_seed"), "--augment-seed", help="Seed of those augmented caches."),
        no_baselines: bool = typer.Option(not default(_D, "baselines"), "--no-baselines", help="Do not train test corpora alone."),
        bootstrap: int = typer.Option(default(_D, "n_bootstrap"), "--bootstrap", help="Bootstrap resamples per cell (0: none)."),
        max_folds: int = typer.Option(None, "--max-folds", help="Use at most this many folds."),
        tune: bool = typer.Option(default(_D, "tune"), "--tune", help="Validation-only search of lr and batch size."),
        out: Path = typer.Option(Path(default(_D, "out")), "--out", "-o", help="Results folder."),
        tag: str = typer.Option(None, "--tag", help="Results file name suffix."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
        allow_incomplete: bool = typer.Option(default(_D, "allow_incomplete"), "--allow-incomplete",
                                              help="Probe caches that miss clips (recorded in the results)."),
        allow_degenerate: bool = typer.Option(default(_D, "allow_degenerate"), "--allow-degenerate",
                                              help="Run even when a fold lacks a class or speakers and labels "
                                              "are confounded (recorded in the results)."),
        threads: int = typer.Option(None, "--threads", help="Torch/BLAS threads (default: chosen from the "
                                    "work size, 1 for small probes)."),
    ) -> None:
        """Train probes on one corpus (or a union) and test them on every requested corpus."""
        count("number of seeds", seeds, option="--seeds")
        params = parse_options(param)
        for key, value in (("frame_mask", frame_mask), ("mix_prob", mix), ("noise_std", noise)):
            if value is not None:
                params[key] = value
        protocols = {k: str(v) for k, v in parse_options(protocol).items()}
        cfg = ProbeConfig(
            model=model, cache_dir=str(cache_dir), train=tuple(train), test=csv_list(test) or ("all",),
            probe=probe_name, layer=layer, pooling=pooling, frames=frames,
            seeds=tuple(range(seeds)), scramble=csv_list(scramble) or (), protocols=protocols, aggregate=aggregate,
            baselines=not no_baselines, probe_params=params, n_bootstrap=bootstrap,
            max_folds=max_folds, tune=tune, out=str(out), tag=tag, augment_rate=augment_rate,
            augment=augment, augment_seed=augment_seed, allow_incomplete=allow_incomplete, threads=threads,
            allow_degenerate=allow_degenerate,
        )
        path = run(cfg, progress=not quiet,
                   on_note=lambda note: console.print(f"[yellow]incomplete[/] {escape(note)}"),
                   on_split=lambda issue: console.print(f"[yellow]split[/] {escape(issue.message)}"))
        rec = load_results(path)
        corpora = sorted(rec["caches"])
        if cfg.domain_gap and len(corpora) >= 2:  # the embedding-space gap of the same caches and layer
            layer_used = next(iter(rec["caches"].values()))["layer"]
            with quiet_numpy():
                gap = domain_gap_for(cfg.model, cfg.cache_dir, layers=[layer_used], corpora=corpora,
                                     out=cfg.out, seed=cfg.seeds[0], allow_incomplete=cfg.allow_incomplete,
                                     threads=cfg.threads)
            add_section(path, "domain_gap", {"json": gap["files"]["json"], "frechet": gap["frechet"],
                                             "identifiability": gap["identifiability"]})
        console.print(f"[green]done[/]: {escape(str(path))} ({rec['seconds']:.0f} s)")
        for c in rec["cells"]:
            m = c["metrics"]
            how = f"{c.get('protocol') or '?'}, {c.get('aggregate', 'mean')}"
            console.print(f"  {escape(c['train']):>24} -> {escape(c['test']):<14} AUROC {_f(m['auroc']['mean'])} "
                          f"uACC {_f(m['uacc']['mean'])} wF1 {_f(m['wf1']['mean'])} ({escape(how)})")


def _f(v: float | None) -> str:
    return "  –  " if v is None else f"{v:.3f}"

"""``embedprobe extract``: one corpus through one extractor into a crash-safe cache."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from embedprobe.cli.common import (
    CACHE_DIR,
    console,
    csv_list,
    default,
    friendly,
    parse_options,
    warnings_as_lines,
)
from embedprobe.corpora import describe
from embedprobe.errors import BadValueError
from embedprobe.pipeline.extract import extract as run
from embedprobe.pipeline.extract_config import ExtractConfig

_D = ExtractConfig  # every default below is ExtractConfig's


def register(app: typer.Typer) -> None:
    @app.command()
    @friendly
    def extract(
        model: str = typer.Option(..., "--model", "-m", help="Extractor name (embedprobe list extractors)."),
        corpus: str = typer.Option(..., "--corpus", "-c", help="Corpus reader (embedprobe list corpora)."),
        root: Path = typer.Option(..., "--root", "-r", help="Corpus root folder."),
        name: str = typer.Option(None, "--name", help="The corpus's own name, for readers that hold different "
                                 "corpora (manifest, emobox; emodb with --option gender=f|m): names the "
                                 "cache and the corpus in probe --train/--test and the report."),
        out: Path = typer.Option(CACHE_DIR, "--out", "-o", help="Cache folder."),
        layers: str = typer.Option(None, "--layers", help="Comma-separated layers to cache (default all)."),
        frames: bool = typer.Option(default(_D, "frames"), "--frames", help="Also store frame-level features."),
        frame_hop: float = typer.Option(None, "--frame-hop", help="Hop of stored frames in seconds."),
        frame_layers: str = typer.Option(None, "--frame-layers", help="Layers whose frames are stored."),
        float16: bool = typer.Option(default(_D, "dtype") == "float16", "--float16", help="Store features as float16."),
        weights: Path = typer.Option(None, "--weights", help="Local checkpoint file or folder."),
        trust_pickle: bool = typer.Option(
            default(_D, "trust_pickle"), "--trust-pickle",
            help="Load weights that pickle Python classes beyond the safe allow-list (their code "
                 "runs: only for files you trust; pickles naming functions are refused even then). "
                 "Recorded in the cache. Better: embedprobe convert-weights once."),
        device: str = typer.Option(default(_D, "device"), "--device", help="torch device, e.g. cpu or cuda:0."),
        precision: str = typer.Option(default(_D, "precision"), "--precision",
                                      help="auto, fp32, fp32-onednn, bf16 or fp16 (recorded in the cache)."),
        batch_size: int = typer.Option(default(_D, "batch_size"), "--batch-size", help="Clips per committed batch."),
        workers: int | None = typer.Option(None, "--workers", show_default=False,
                                    help=f"Decoding threads (default {default(_D, 'workers')}); with --engine ray: Ray workers, each with its own "
                                         "copy of the model (default there: as many as the cluster's free "
                                         "CPUs and GPUs hold)."),
        procs: int = typer.Option(None, "--procs",
                                  help="Model replicas in worker processes (default: auto, one per core "
                                       "up to 4 for single-threaded extractors such as egemaps "
                                       "and ge2e on 200+ clips; 1 = none)."),
        threads: int = typer.Option(None, "--threads", help="Torch/BLAS threads of each embedding process "
                                    "(default: this process's cores, shared among --procs)."),
        chunk: float = typer.Option(default(_D, "chunk_s"), "--chunk", help="Long files are processed in chunks of this many seconds."),
        option: list[str] = typer.Option(None, "--option", help="Corpus option KEY=VALUE (repeatable)."),
        overwrite: bool = typer.Option(default(_D, "overwrite"), "--overwrite", help="Start the cache over."),
        shard: str = typer.Option(None, "--shard", help="K/N: write only shard K of N (0-based)."),
        tag: str = typer.Option(None, "--tag", help="Suffix naming a cache variant."),
        augment: str = typer.Option(None, "--augment",
                                    help="Cache augmented copies instead (e.g. paper: the paper's 7 augmentations)."),
        copies: int = typer.Option(default(_D, "copies"), "--copies", help="Augmented copies per clip."),
        augment_seed: int = typer.Option(default(_D, "augment_seed"), "--augment-seed", help="Seed of the augmentation parameters."),
        engine: str = typer.Option(default(_D, "engine"), "--engine",
                                   help="local (this machine) or ray (actors on a Ray cluster; needs "
                                        "embedprobe[ray]). This process alone writes the cache either way."),
        address: str = typer.Option(None, "--address", help="Ray cluster to join (auto, HOST:PORT); default: "
                                    "RAY_ADDRESS, else the cluster 'ray start' runs on this machine, else a "
                                    "new one here."),
        gpus_per_worker: float = typer.Option(default(_D, "gpus_per_worker"), "--gpus-per-worker",
                                              help="GPUs of each Ray worker (0.5: two share one); the workers "
                                                   "then run on cuda."),
        cpus_per_worker: int = typer.Option(default(_D, "cpus_per_worker"), "--cpus-per-worker",
                                            help="CPUs of each Ray worker, also its torch threads."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    ) -> None:
        """Extract embeddings of every clip of a corpus into an HDF5 cache (resumes if interrupted)."""
        k, n = _shard(shard)
        # --workers is the decoding threads locally and the Ray actors with --engine ray, where its
        # default (2 threads) would make no sense: there, unless given, the cluster decides
        ray_workers = workers if engine == "ray" else None
        cfg = ExtractConfig(
            model=model, corpus=corpus, root=str(root), out=str(out), name=name, layers=csv_list(layers),
            frames=frames, frame_hop_s=frame_hop, frame_layers=csv_list(frame_layers),
            dtype="float16" if float16 else "float32", chunk_s=chunk,
            corpus_options=parse_options(option), weights=str(weights) if weights else None,
            trust_pickle=trust_pickle,
            device=device, precision=precision, batch_size=batch_size,
            workers=default(_D, "workers") if engine == "ray" or workers is None else workers, procs=procs,
            threads=threads,
            overwrite=overwrite,
            shard=k, n_shards=n, tag=tag, augment=augment, copies=copies, augment_seed=augment_seed,
            engine=engine, address=address, ray_workers=ray_workers, gpus_per_worker=gpus_per_worker,
            cpus_per_worker=cpus_per_worker,
        )

        def show(manifest) -> None:
            if not quiet:
                console.print(escape(describe(manifest)))
            excl = manifest.excluded_counts()
            console.print(f"{escape(manifest.corpus)}: {len(manifest)} clips, {len(manifest.labelled())} in the "
                          "4-class set" + ("; excluded from 4-class work: "
                                          + ", ".join(f"{k} {v}" for k, v in excl.items()) if excl else ""))

        with warnings_as_lines():
            s = run(cfg, progress=not quiet, on_manifest=show)
        rate = s.audio_seconds / s.seconds if s.seconds else 0.0
        console.print(
            f"{'[yellow]interrupted[/]' if s.interrupted else '[green]done[/]'}: {escape(str(s.cache))} - "
            f"{s.n_new} new, {s.n_done_before} already cached, {s.n_errors} errors, "
            f"{s.seconds:.1f} s ({rate:.1f} audio-s/s)"
            + (f" on Ray ({s.procs} workers)" if s.engine == "ray" else "")
            + ("" if s.complete else " - incomplete: re-run the same command to resume")
        )
        if s.retried:
            console.print(f"  [yellow]retried[/] {s.retried} clips whose Ray worker was lost (each is in the "
                          "cache once)")
        if s.precision_note:
            console.print(f"  [yellow]precision[/] {escape(s.precision_note)}")
        for _clip_id, path, reason in s.errors:
            console.print(f"  [red]error[/] {escape(f'{path}: {reason}')}")
        for clip_id, note in s.notes[:20]:
            console.print(f"  [dim]note[/] {escape(f'{clip_id}: {note}')}")
        if len(s.notes) > 20:
            console.print(f"  [dim]... {len(s.notes) - 20} more notes (embedprobe info)[/]")
        if s.interrupted:
            raise typer.Exit(130)


def _shard(text: str | None) -> tuple[int | None, int | None]:
    if not text:
        return None, None
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise BadValueError("shard", text, None, fix="Write it as K/N, e.g. 0/4.") from None
    if not 0 <= k < n:
        raise BadValueError("shard", text, None, fix=f"K must be in 0..{n - 1}.")
    return k, n

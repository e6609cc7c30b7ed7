"""Extraction: corpus manifest -> decoded audio -> extractor -> crash-safe HDF5 cache.

``extract(ExtractConfig(...))`` is what ``embedprobe extract`` calls. Decoding runs in
background threads that overlap with the model's compute, or, on multi-core CPUs, clips are
decoded and embedded by model replicas in worker processes (``embedprobe.common.replicas``); the
extracting process alone batches and writes the cache. With ``engine="ray"`` the clips are
decoded and embedded by actors on a Ray cluster instead (``embedprobe.pipeline.ray_extract``),
and this process still alone writes the cache. Long files are streamed in
chunks (bounded memory) and pooled exactly across chunks; every finished batch is
committed atomically to the cache, so a crash or Ctrl-C loses at most the batch in flight
and re-running the same command resumes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from embedprobe.audio import chunking
from embedprobe.audio import decode as audio
from embedprobe.audio.prefetch import decode_iter
from embedprobe.augment.base import resolve
from embedprobe.augment.copies import append_records, copy_id, expand_manifest
from embedprobe.cache import AsyncWriter, CacheWriter, ClipResult, open_cache, shard_of
from embedprobe.common import replicas
from embedprobe.common.progress import Progress
from embedprobe.common.raycluster import require_ray
from embedprobe.common.threads import check_threads, limit_threads
from embedprobe.corpora import scan
from embedprobe.corpora.base import Manifest
from embedprobe.errors import BadValueError
from embedprobe.extractors import create, precision_check
from embedprobe.extractors.base import Extractor
from embedprobe.extractors.registry import get_entry
from embedprobe.pipeline.clip_embedder import ClipEmbedder, Outcome
from embedprobe.pipeline.extract_config import (
    RUNTIME_NOT_IDENTITY,
    ExtractConfig,
    check_config,
)
from embedprobe.pipeline.ray_extract import RayEngine
from embedprobe.provenance import made_by, to_jsonable


@dataclass
class ExtractSummary:
    """What one run did; returned by ``extract`` and printed by the CLI."""

    cache: Path
    n_clips: int
    n_done_before: int
    n_new: int
    n_errors: int
    errors: list[tuple[str, str, str]]
    notes: list[tuple[str, str]]
    seconds: float
    audio_seconds: float
    complete: bool
    interrupted: bool = False
    procs: int = 1
    precision_note: str | None = None
    engine: str = "local"
    retried: int = 0  # clips sent again after their Ray worker was lost
    startup_s: float | None = None  # from the start to the first clip's result (scan, model load, workers)
    steady_clips_per_s: float | None = None  # between the first and the last 10 % of results


def extract(
    cfg: ExtractConfig,
    *,
    progress: bool = True,
    on_manifest: Callable[[Manifest], None] | None = None,
    extractor: Extractor | None = None,
) -> ExtractSummary:
    """Extract every clip of ``cfg.corpus`` (called ``cfg.name`` if given) into its cache, resuming.

    Args:
        cfg: the run's configuration.
        progress: show a rich progress bar with clips/s and ETA.
        on_manifest: called with the scanned manifest (the CLI prints exclusion counts).
        extractor: an already built extractor (tests and benchmarks); default ``create(cfg.model)``.

    Returns:
        An ``ExtractSummary``; errors are listed there and in the cache's error table.
    """
    check_config(cfg)
    if cfg.engine == "ray":
        require_ray()  # before any work: without Ray, the one sentence with the pip command
    t0 = time.perf_counter()
    manifest = scan(cfg.corpus, cfg.root, corpus_name=cfg.name, **cfg.corpus_options)
    if on_manifest is not None:
        on_manifest(manifest)
    ext = extractor or _create(cfg if cfg.engine == "local" or not cfg.gpus_per_worker
                               else replace(cfg, device="cuda"))  # a Ray worker's GPU is its cuda
    spec = ext.spec
    layers = _pick(cfg.layers, spec.layers, "layer")
    frame_layers = _pick(cfg.frame_layers, layers, "frame layer") if cfg.frames else ()
    factor = _hop_factor(cfg, spec.hop_s)
    audio_cfg = audio.AudioConfig(
        sample_rate=spec.sample_rate,
        max_chunk_s=cfg.chunk_s,
        min_duration_s=max(cfg.min_duration_s, spec.min_duration_s),
    )
    aug = _augmentation(cfg)
    stored = expand_manifest(manifest, cfg.copies) if aug is not None else manifest
    mine = [c for c in stored.clips if cfg.n_shards is None or shard_of(c.id, cfg.n_shards) == cfg.shard]
    embedder = ClipEmbedder(ext, layers, frame_layers, factor, audio_cfg,
                            float16=cfg.dtype == "float16", augment=aug, augment_seed=cfg.augment_seed)
    root = Path(manifest.root)  # the folder clip paths are relative to (a manifest's own folder)
    with contextlib.ExitStack() as stack:
        # worker replicas or Ray actors start first (they load the model; this process then needs no copy)
        engine = pool = None
        if cfg.engine == "ray":
            engine = stack.enter_context(RayEngine(embedder, cfg, str(root), len(mine)))
            procs, threads = len(engine.actors), cfg.cpus_per_worker
            runtime, revision = dict(engine.runtime), engine.weights_revision
        else:
            procs = _procs(cfg, ext, embedder, len(mine))
            threads = check_threads(cfg.threads) or replicas.threads_per_proc(procs)
            pool = stack.enter_context(replicas.ReplicaPool(embedder, procs, threads)) if procs > 1 else None
            if pool is not None and not ext.loaded:
                runtime, revision = dict(pool.runtime), pool.weights_revision
            else:
                ext.load()
                runtime, revision = dict(ext.runtime_config()), ext.weights_revision()
                stack.enter_context(limit_threads(threads))  # after load(): torch is imported by now
        identity = _identity(cfg, spec, revision, runtime, audio_cfg, layers, frame_layers, factor, aug,
                             chunking.describe(ext))
        check = runtime.get("precision_check")  # the load-time check (extractors.runtime), if it ran
        precision_note = precision_check.fallback_note(spec.name, check) if check else None
        provenance = {
            "identity": identity,
            "config": to_jsonable(cfg),
            **made_by(),
            "runtime": runtime | ({"procs": procs, "threads_per_proc": threads if procs > 1 else None,
                                   "threads": threads} if engine is None else engine.describe()),
        }
        writer = CacheWriter(
            cfg.cache_path(), provenance=provenance, identity=identity,
            manifest_json=stored.to_json(), layers={name: spec.dim_of(name) for name in layers},
            frames=list(frame_layers) if cfg.frames else False, dtype=cfg.dtype,
            overwrite=cfg.overwrite, shard=cfg.shard, n_shards=cfg.n_shards,
        )
        with writer, AsyncWriter(writer) as committer:
            done = set(writer.done_ids)
            todo_ids = {c.id for c in mine if c.id not in done}
            n_done_before = len(mine) - len(todo_ids)
            # one decode per original clip; the copies still missing are embedded from it
            todo = [c for c in manifest.clips if any(i in todo_ids for i in _stored_ids(c.id, cfg, aug))]
            targets = [[i for i in _stored_ids(c.id, cfg, aug) if i in todo_ids] for c in todo]
            run = _Run(committer, cfg.batch_size, cfg.cache_path())
            interrupted = False
            try:
                with Progress(progress, len(mine), spec.name, completed=n_done_before, unit="clips") as tick:
                    outcomes = _outcomes(embedder, todo, targets, root, audio_cfg, cfg, pool or engine)
                    with contextlib.closing(outcomes):
                        for outcome in outcomes:
                            run.add(outcome)
                            speed = run.audio_s / max(time.perf_counter() - run.t_start, 1e-9)
                            tick(f"{speed:.1f} audio-s/s", advance=outcome.count)
                run.flush()
            except KeyboardInterrupt:
                interrupted = True
                run.flush()  # commit the clips finished so far; only the clips in flight are lost
                if pool is not None:
                    pool.close(kill=True)
            except replicas.ReplicaError:
                run.flush()
                raise
            cache_path = writer.path
            if not interrupted:
                try:
                    cache_path = committer.finalize()
                except KeyboardInterrupt:  # the merge stopped between blocks; parts are intact
                    interrupted = True
    complete = False
    if not interrupted:
        with open_cache(cache_path) as reader:
            complete = reader.complete
    return ExtractSummary(
        cache=Path(cache_path), n_clips=len(mine), n_done_before=n_done_before,
        n_new=run.n_new, n_errors=len(run.errors), errors=run.errors, notes=run.notes,
        procs=procs,
        seconds=time.perf_counter() - t0, audio_seconds=run.audio_s,
        complete=complete, interrupted=interrupted, precision_note=precision_note,
        engine=cfg.engine, retried=engine.retried if engine is not None else 0,
        startup_s=run.times[0] - t0 if run.times else None, steady_clips_per_s=run.steady_rate(),
    )


def _identity(cfg: ExtractConfig, spec, revision, runtime, audio_cfg, layers, frame_layers, factor,
              aug, chunks: dict[str, Any]) -> dict[str, Any]:
    """What a cache holds, as compared on resume (a difference names the field and refuses)."""
    return {
        "extractor": to_jsonable(spec),
        "weights_revision": revision,
        "runtime": {k: v for k, v in runtime.items() if k not in RUNTIME_NOT_IDENTITY},
        "audio": to_jsonable(audio_cfg),
        "layers": list(layers),
        "frames": {"stored": cfg.frames, "layers": list(frame_layers), "hop_factor": factor,
                   "hop_s": None if spec.hop_s is None else spec.hop_s * factor},
        "dtype": cfg.dtype,
        "corpus": {"name": cfg.corpus, "options": to_jsonable(cfg.corpus_options)},
        "augment": None if aug is None else {
            "name": cfg.augment, "fingerprint": aug.fingerprint(), "config": to_jsonable(aug.config()),
            "seed": cfg.augment_seed, "copies": cfg.copies},
        "chunking": chunks,
    }


def _procs(cfg: ExtractConfig, ext: Extractor, embedder: ClipEmbedder, n_clips: int) -> int:
    """Worker processes for this run (see ``replicas.resolve_procs``); 1 if the run cannot be pickled."""
    procs = replicas.resolve_procs(cfg.procs, device=cfg.device, n_todo=n_clips,
                                   replicate=ext.replicate_on_cpu)
    if procs > 1:
        why = replicas.picklable(embedder)
        if why is not None:
            if cfg.procs is not None:
                raise BadValueError("procs", cfg.procs, None,
                                    fix=f"This extractor cannot be sent to worker processes ({why}); "
                                        "use --procs 1.")
            return 1
    return procs


def _outcomes(embedder: ClipEmbedder, todo, targets, root: Path, audio_cfg, cfg: ExtractConfig,
              pool: replicas.ReplicaPool | RayEngine | None):
    """``Outcome`` of every clip to do: embedded here (decode threads ahead), by the worker replicas
    or by the Ray actors."""
    max_eager_s = 2 * cfg.chunk_s
    if pool is None:
        items = [root / c.path for c in todo]
        for i, decoded in decode_iter(items, audio_cfg, workers=cfg.workers, max_eager_s=max_eager_s):
            yield embedder.run(todo[i], str(root / todo[i].path), decoded, targets[i])
        return
    jobs = [(c, str(root / c.path), targets[i], max_eager_s) for i, c in enumerate(todo)]
    yield from pool.outcomes(jobs) if isinstance(pool, RayEngine) else pool.map(jobs)


class _Run:
    """Batches outcomes and commits them (the extracting process's side of a run)."""

    def __init__(self, writer, batch_size: int, cache_path: Path):
        self.writer, self.batch_size, self.cache_path = writer, batch_size, cache_path
        self.batch: list[ClipResult] = []
        self.batch_errors: list[tuple[str, str, str]] = []
        self.aug_records: list[dict] = []
        self.errors: list[tuple[str, str, str]] = []
        self.notes: list[tuple[str, str]] = []
        self.n_new = 0
        self.audio_s = 0.0
        self.t_start = time.perf_counter()
        self.times: list[float] = []  # when each outcome arrived
        self.counts: list[int] = []  # its stored clips

    def add(self, outcome: Outcome) -> None:
        self.times.append(time.perf_counter())
        self.counts.append(outcome.count)
        self.batch.extend(outcome.results)
        self.batch_errors.extend(outcome.errors)
        self.errors.extend(outcome.errors)
        self.notes.extend(outcome.notes)
        self.aug_records.extend(outcome.aug_records)
        self.n_new += len(outcome.results)
        self.audio_s += sum(r.duration_s for r in outcome.results)
        if len(self.batch) + len(self.batch_errors) >= self.batch_size:
            self.flush()

    def steady_rate(self) -> float | None:
        """Stored clips per second between the first and the last 10 % of outcomes (start-up and
        stragglers left out); ``None`` with fewer than 10 outcomes."""
        n = len(self.times)
        if n < 10:
            return None
        t0, t1 = self.times[n // 10], self.times[n - 1 - n // 10]
        # outcomes come in bursts from worker processes: count those that arrived after t0, up to t1
        done = sum(c for t, c in zip(self.times, self.counts, strict=True) if t0 < t <= t1)
        return done / (t1 - t0) if t1 > t0 else None

    def flush(self) -> None:
        if self.batch or self.batch_errors:
            self.writer.write(self.batch, self.batch_errors)
            self.batch, self.batch_errors = [], []
            if self.aug_records:
                append_records(self.cache_path, self.aug_records)
                self.aug_records = []


def _augmentation(cfg: ExtractConfig):
    """The augmentation spec of an augmented run (``None`` otherwise)."""
    if not cfg.augment:
        return None
    if cfg.copies < 1:
        raise BadValueError("copies", cfg.copies, None, fix="Use 1 or more augmented copies per clip.")

    return resolve(cfg.augment)


def _stored_ids(clip_id: str, cfg: ExtractConfig, aug) -> list[str]:
    return [clip_id] if aug is None else [copy_id(clip_id, k) for k in range(cfg.copies)]


def _create(cfg: ExtractConfig) -> Extractor:
    """Build the extractor; ``precision`` goes to families that have a fast path."""
    cls = get_entry(cfg.model, weights=cfg.weights).cls
    common = {"device": cfg.device, "weights": cfg.weights, "trust_pickle": cfg.trust_pickle}
    if cls.takes_precision:
        return create(cfg.model, precision=cfg.precision, **common)
    if cfg.precision not in ("auto", "fp32"):
        raise BadValueError(f"precision for {cfg.model}", cfg.precision, ("auto", "fp32"),
                            fix="This extractor has no reduced-precision path.")
    return create(cfg.model, **common)


def _pick(asked: tuple[str, ...] | None, available: tuple[str, ...], what: str) -> tuple[str, ...]:
    if not asked:
        return tuple(available)
    for name in asked:
        if name not in available:
            raise BadValueError(what, name, available)
    return tuple(asked)


def _hop_factor(cfg: ExtractConfig, hop_s: float | None) -> int:
    if not cfg.frames or cfg.frame_hop_s is None or hop_s is None:
        return 1
    factor = round(cfg.frame_hop_s / hop_s)
    if factor < 1 or abs(factor * hop_s - cfg.frame_hop_s) > 1e-6:
        raise BadValueError(
            "frame hop", cfg.frame_hop_s, None,
            fix=f"It must be a whole multiple of the model's hop ({hop_s} s).",
        )
    return factor


"""Extraction: corpus manifest -> decoded audio -> extractor -> crash-safe HDF5 cache.

``extract(ExtractConfig(...))`` is what ``embedprobe extract`` calls. Decoding runs in
background threads that overlap with the model's compute; long files are streamed in
chunks (bounded memory) and pooled exactly across chunks; every finished batch is
committed atomically to the cache, so a crash or Ctrl-C loses at most the batch in flight
and re-running the same command resumes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedprobe import audio
from embedprobe.augment.copies import (
    append_records,
    augmented_tag,
    copy_id,
    expand_manifest,
    split_copy_id,
)
from embedprobe.cache import AsyncWriter, CacheWriter, ClipResult, LayerResult, open_cache, shard_of
from embedprobe.cache.naming import cache_file
from embedprobe.corpora import scan
from embedprobe.corpora.base import Clip, Manifest
from embedprobe.errors import AudioError, BadValueError
from embedprobe.extractors import create
from embedprobe.extractors.base import Extractor
from embedprobe.pooling import RunningStats, downsample
from embedprobe.progress import Progress
from embedprobe.provenance import code_version, package_versions, to_jsonable

DTYPES = ("float32", "float16")
F16_MAX = 65504.0
# Runtime facts recorded in the provenance but not part of a cache's identity: where the weights
# sit, which device and batch size ran, and package versions may differ between the shards of one
# cache or between a run and its resume; the weights revision and the precision may not.
RUNTIME_NOT_IDENTITY = frozenset({"weights", "device", "batch_seconds", "torch", "transformers"})


@dataclass(frozen=True)
class ExtractConfig:
    """One extraction run. Fields marked *identity* decide which cache file a run may reuse.

    Args:
        model: extractor name (``embedprobe list extractors``). *identity*
        corpus: corpus reader name (``embedprobe list corpora``). *identity*
        root: corpus root folder.
        out: cache folder; the file is ``<out>/<corpus>__<model>[__<tag>].h5``.
        layers: layers to cache (default: all of the model's). *identity*
        frames: also store frame-level features. *identity*
        frame_hop_s: hop of stored frames, a multiple of the model's hop (default: native). *identity*
        frame_layers: layers whose frames are stored (default: all cached layers). *identity*
        dtype: storage dtype, ``float32`` or ``float16``. *identity*
        chunk_s: long files are processed in chunks of this many seconds. *identity*
        min_duration_s: shorter clips are errors. *identity*
        corpus_options: options of the corpus reader (seed, label mapping ...). *identity*
        weights: local checkpoint overriding the model's default weights.
        device: torch device.
        precision: ``auto`` (the family's fast path: bf16 on CPUs with native bf16, autocast on
            GPUs), ``fp32``, ``fp32-onednn``, ``bf16`` or ``fp16``; recorded in the cache. *identity*
        batch_size: clips per committed batch.
        workers: decoding threads.
        overwrite: start the cache over.
        shard, n_shards: write only shard ``shard`` of ``n_shards`` (``embedprobe merge`` joins them).
        tag: suffix that names a cache variant.
        augment: cache augmented copies made with this augmentation (``paper`` = the paper's
            seven augmentations) instead of the original clips; the cache is named
            ``<corpus>__<model>__aug-<name>-s<seed>.h5``. *identity*
        copies: augmented copies per clip (stored as ``<clip id>@<k>``). *identity*
        augment_seed: seed of the augmentation parameters. *identity*
    """

    model: str
    corpus: str
    root: str
    out: str
    layers: tuple[str, ...] | None = None
    frames: bool = False
    frame_hop_s: float | None = None
    frame_layers: tuple[str, ...] | None = None
    dtype: str = "float32"
    chunk_s: float = 30.0
    min_duration_s: float = 0.1
    corpus_options: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
    device: str = "cpu"
    precision: str = "auto"
    batch_size: int = 16
    workers: int = 2
    overwrite: bool = False
    shard: int | None = None
    n_shards: int | None = None
    tag: str | None = None
    augment: str | None = None
    copies: int = 1
    augment_seed: int = 0

    def cache_path(self) -> Path:
        aug = augmented_tag(self.augment, self.augment_seed) if self.augment else ""
        return cache_file(self.out, self.corpus, self.model, aug, self.tag or "")



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


def extract(
    cfg: ExtractConfig,
    *,
    progress: bool = True,
    on_manifest: Callable[[Manifest], None] | None = None,
    extractor: Extractor | None = None,
) -> ExtractSummary:
    """Extract every clip of ``cfg.corpus`` into its cache, resuming what is already there.

    Args:
        cfg: the run's configuration.
        progress: show a rich progress bar with clips/s and ETA.
        on_manifest: called with the scanned manifest (the CLI prints exclusion counts).
        extractor: an already built extractor (tests and benchmarks); default ``create(cfg.model)``.

    Returns:
        An ``ExtractSummary``; errors are listed there and in the cache's error table.
    """
    if cfg.dtype not in DTYPES:
        raise BadValueError("dtype", cfg.dtype, DTYPES)
    t0 = time.perf_counter()
    manifest = scan(cfg.corpus, cfg.root, **cfg.corpus_options)
    if on_manifest is not None:
        on_manifest(manifest)
    ext = extractor or _create(cfg)
    ext.load()
    spec = ext.spec
    layers = _pick(cfg.layers, spec.layers, "layer")
    frame_layers = _pick(cfg.frame_layers, layers, "frame layer") if cfg.frames else ()
    factor = _hop_factor(cfg, spec.hop_s)
    audio_cfg = audio.AudioConfig(
        sample_rate=spec.sample_rate,
        max_chunk_s=cfg.chunk_s,
        min_duration_s=max(cfg.min_duration_s, spec.min_duration_s),
    )
    runtime = _runtime(ext)
    aug = _augmentation(cfg)
    stored = expand_manifest(manifest, cfg.copies) if aug is not None else manifest
    identity = {
        "extractor": to_jsonable(spec),
        "weights_revision": ext.weights_revision(),
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
    }
    provenance = {
        "identity": identity,
        "config": to_jsonable(cfg),
        "versions": package_versions(),
        "code_version": code_version(),
        "runtime": runtime,
    }
    root = Path(manifest.root)  # the folder clip paths are relative to (a manifest's own folder)
    dims = {name: spec.dim for name in layers}
    writer = CacheWriter(
        cfg.cache_path(), provenance=provenance, identity=identity,
        manifest_json=stored.to_json(), layers=dims,
        frames=list(frame_layers) if cfg.frames else False, dtype=cfg.dtype,
        overwrite=cfg.overwrite, shard=cfg.shard, n_shards=cfg.n_shards,
    )
    with writer, AsyncWriter(writer) as committer:
        done = set(writer.done_ids)
        mine = [c for c in stored.clips
                if cfg.n_shards is None or shard_of(c.id, cfg.n_shards) == cfg.shard]
        todo_ids = {c.id for c in mine if c.id not in done}
        n_done_before = len(mine) - len(todo_ids)
        # one decode per original clip; the copies still missing are embedded from it
        todo = [c for c in manifest.clips if any(i in todo_ids for i in _stored_ids(c.id, cfg, aug))]
        run = _Run(ext, layers, frame_layers, factor, audio_cfg, root, committer, cfg.batch_size,
                   float16=cfg.dtype == "float16", augment=aug, cfg=cfg, todo_ids=todo_ids)
        interrupted = False
        try:
            with Progress(progress, len(mine), spec.name, completed=n_done_before, unit="clips") as tick:
                items = [root / c.path for c in todo]
                t_start = time.perf_counter()
                for i, decoded in audio.decode_iter(items, audio_cfg, workers=cfg.workers,
                                                    max_eager_s=2 * cfg.chunk_s):
                    run.process(todo[i], decoded)
                    speed = run.audio_s / max(time.perf_counter() - t_start, 1e-9)
                    tick(f"{speed:.1f} audio-s/s", advance=run.last_count)
            run.flush()
        except KeyboardInterrupt:
            interrupted = True
            run.flush()  # commit the clips finished so far; only the clip in flight is lost
        cache_path = writer.path if interrupted else committer.finalize()
    complete = False
    if not interrupted:
        with open_cache(cache_path) as reader:
            complete = reader.complete
    return ExtractSummary(
        cache=Path(cache_path), n_clips=len(mine), n_done_before=n_done_before,
        n_new=run.n_new, n_errors=len(run.errors), errors=run.errors, notes=run.notes,
        seconds=time.perf_counter() - t0, audio_seconds=run.audio_s,
        complete=complete, interrupted=interrupted,
    )


# ---------------------------------------------------------------------------------------------
class _Run:
    """Per-run state: embeds decoded clips, pools them, commits batches."""

    def __init__(self, ext, layers, frame_layers, factor, audio_cfg, root, writer, batch_size,
                 float16=False, augment=None, cfg=None, todo_ids=None):
        self.float16, self.augment, self.cfg, self.todo_ids = float16, augment, cfg, todo_ids
        self.aug_records: list[dict] = []
        self.last_count = 1
        self.ext, self.layers, self.frame_layers = ext, layers, set(frame_layers)
        self.factor, self.audio_cfg, self.root = factor, audio_cfg, root
        self.writer, self.batch_size = writer, batch_size
        self.batch: list[ClipResult] = []
        self.batch_errors: list[tuple[str, str, str]] = []
        self.errors: list[tuple[str, str, str]] = []
        self.notes: list[tuple[str, str]] = []
        self.n_new = 0
        self.audio_s = 0.0
        self.last_audio_s = 0.0

    def process(self, clip: Clip, decoded: audio.Decoded | AudioError) -> None:
        """Embed one decoded clip (or each of its missing augmented copies) and batch the results."""
        self.last_audio_s = 0.0
        path = str(self.root / clip.path)
        if self.augment is None:
            targets = [(clip.id, None)]
        else:
            targets = [(cid, split_copy_id(cid)[1]) for cid in _stored_ids(clip.id, self.cfg, self.augment)
                       if cid in self.todo_ids]
        self.last_count = len(targets)
        for cid, copy in targets:
            try:
                if isinstance(decoded, AudioError):
                    raise decoded
                result = self._embed(clip, cid, decoded, copy)  # a lazy (long) file can still fail here
                for note in decoded.notes:
                    self.notes.append((cid, note))
            except AudioError as e:
                self._error(cid, path, e.reason)
            except Exception as e:  # noqa: BLE001 - a model failure on one clip must not end the run
                self._error(cid, path, f"extractor failed: {type(e).__name__}: {e}")
            else:
                self.batch.append(result)
                self.n_new += 1
                self.audio_s += result.duration_s
                self.last_audio_s += result.duration_s
            if len(self.batch) + len(self.batch_errors) >= self.batch_size:
                self.flush()

    def _error(self, clip_id: str, path: str, reason: str) -> None:
        self.batch_errors.append((clip_id, path, reason))
        self.errors.append((clip_id, path, reason))

    def _chunks(self, clip: Clip, decoded: audio.Decoded, copy: int | None):
        """The clip's chunks, augmented as copy ``copy`` when augmenting (each chunk seeded apart)."""
        if copy is None:
            yield from decoded.chunks
            return
        from embedprobe.augment import augment

        for j, chunk in enumerate(decoded.chunks):
            key = clip.id if j == 0 else f"{clip.id}#chunk{j}"
            out = augment(chunk, self.audio_cfg.sample_rate, self.augment, seed=self.cfg.augment_seed,
                          clip_id=key, copy=copy)
            self.aug_records.append(out.record | {"chunk": j})
            yield out.wav

    def _embed(self, clip: Clip, cid: str, decoded: audio.Decoded, copy: int | None = None) -> ClipResult:
        stats = {name: RunningStats(self.ext.spec.dim) for name in self.layers}
        frames: dict[str, list[np.ndarray]] = {name: [] for name in self.frame_layers}
        n_samples = 0
        tail = int(self.audio_cfg.max_chunk_s * self.audio_cfg.sample_rate) // 4
        for chunk in self._chunks(clip, decoded, copy):
            n_samples += chunk.shape[0]
            if n_samples > chunk.shape[0] and chunk.shape[0] < tail:
                continue  # a final piece under a quarter chunk after full chunks: counted, not embedded
            out = self.ext.embed(chunk)
            for name in self.layers:
                x = out[name]
                stats[name].update(x)
                if not stats[name].finite:
                    raise AudioError(clip.path, f"the model returned non-finite values for layer {name}")
                if self.float16 and np.abs(x).max() > F16_MAX:
                    raise AudioError(clip.path, f"layer {name} has values beyond float16's range "
                                     "(re-extract without --float16)")
                if name in frames:
                    frames[name].append(downsample(np.asarray(x, dtype=np.float32), self.factor))
        layers = {
            name: LayerResult(
                mean=stats[name].mean, std=stats[name].std,
                frames=np.concatenate(frames[name]) if name in frames else None,
            )
            for name in self.layers
        }
        return ClipResult(id=cid, content_hash=decoded.content_hash,
                          duration_s=n_samples / self.audio_cfg.sample_rate, layers=layers)

    def flush(self) -> None:
        if self.batch or self.batch_errors:
            self.writer.write(self.batch, self.batch_errors)
            self.batch, self.batch_errors = [], []
            if self.aug_records:
                append_records(self.cfg.cache_path(), self.aug_records)
                self.aug_records = []


def _augmentation(cfg: ExtractConfig):
    """The augmentation spec of an augmented run (``None`` otherwise)."""
    if not cfg.augment:
        return None
    if cfg.copies < 1:
        raise BadValueError("copies", cfg.copies, None, fix="Use 1 or more augmented copies per clip.")
    from embedprobe.augment.base import resolve

    return resolve(cfg.augment)


def _stored_ids(clip_id: str, cfg: ExtractConfig, aug) -> list[str]:
    return [clip_id] if aug is None else [copy_id(clip_id, k) for k in range(cfg.copies)]


def _create(cfg: ExtractConfig) -> Extractor:
    """Build the extractor; ``precision`` goes to families that have a fast path."""
    import inspect

    from embedprobe.extractors.registry import get_entry

    cls = get_entry(cfg.model, weights=cfg.weights).cls
    if "precision" in inspect.signature(cls.__init__).parameters:
        return create(cfg.model, device=cfg.device, weights=cfg.weights, precision=cfg.precision)
    if cfg.precision not in ("auto", "fp32"):
        raise BadValueError(f"precision for {cfg.model}", cfg.precision, ("auto", "fp32"),
                            fix="This extractor has no reduced-precision path.")
    return create(cfg.model, device=cfg.device, weights=cfg.weights)


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


def _runtime(ext: Extractor) -> dict[str, Any]:
    fn = getattr(ext, "runtime_config", None)
    return dict(fn()) if callable(fn) else {}

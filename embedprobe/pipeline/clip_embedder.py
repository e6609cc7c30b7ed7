"""One decoded clip -> pooled (and framed) layer results, with per-clip errors instead of exceptions.

``ClipEmbedder`` is the part of an extraction run that touches the model: it embeds a clip's
chunks with context so that they add up to the one-piece run (``embedprobe.audio.chunking``), pools
them exactly across chunks, checks the values and, for augmented runs, makes each missing copy
first. It holds no file handles and pickles as a recipe (the extractor is
rebuilt by ``load``), so the same object runs in the extracting process or in each worker
process of ``embedprobe.common.replicas``; batching and cache writes stay in the extracting process.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embedprobe.audio import decode as audio
from embedprobe.audio.chunking import ChunkPlan, ClipStats, Window
from embedprobe.audio.prefetch import Decoded, decode_or_error
from embedprobe.augment import augment
from embedprobe.augment.copies import split_copy_id
from embedprobe.cache import ClipResult, LayerResult
from embedprobe.corpora.base import Clip
from embedprobe.errors import AudioError
from embedprobe.extractors.base import Extractor
from embedprobe.pipeline.pooling import Downsampler, RunningStats

F16_MAX = 65504.0


@dataclass
class Outcome:
    """What embedding one source clip produced (one result per stored id, or an error each)."""

    results: list[ClipResult] = field(default_factory=list)
    errors: list[tuple[str, str, str]] = field(default_factory=list)  # (stored id, path, reason)
    notes: list[tuple[str, str]] = field(default_factory=list)
    aug_records: list[dict] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.results) + len(self.errors)


@dataclass
class ClipEmbedder:
    """Embeds decoded clips for one run.

    Args:
        ext: the extractor (loaded on first use).
        layers: layers to pool.
        frame_layers: layers whose frames are kept (downsampled by ``factor``).
        factor: frame hop factor.
        audio_cfg: decoding settings (chunk length, rate, shortest clip).
        float16: the cache stores float16: values beyond its range are a per-clip error.
        augment: the augmentation spec of an augmented run, else ``None``.
        augment_seed: its seed.
    """

    ext: Extractor
    layers: tuple[str, ...]
    frame_layers: tuple[str, ...]
    factor: int
    audio_cfg: audio.AudioConfig
    float16: bool = False
    augment: Any = None
    augment_seed: int = 0

    def run_path(self, clip: Clip, path: str, targets: list[str], max_eager_s: float) -> Outcome:
        """Decode ``path`` with this run's audio config, then :meth:`run` (what a worker process does)."""
        return self.run(clip, path, decode_or_error(path, self.audio_cfg, max_eager_s), targets)

    def run(self, clip: Clip, path: str, decoded: Decoded | AudioError,
            targets: list[str]) -> Outcome:
        """Embed ``clip`` once per stored id in ``targets`` (``clip.id`` or its ``@k`` copies)."""
        out = Outcome()
        for cid in targets:
            copy = split_copy_id(cid)[1] if self.augment is not None else None
            try:
                if isinstance(decoded, AudioError):
                    raise decoded
                result = self._embed(clip, cid, decoded, copy, out.aug_records)  # a lazy file can fail here
                out.notes.extend((cid, note) for note in decoded.notes)
                if self.ext.spec.hop_s is None and result.n_frames > 1:
                    out.notes.append((cid, f"clip-level model: embedded as {result.n_frames} spans of about "
                                      f"{self.audio_cfg.max_chunk_s:g} s, averaged by duration"))
            except AudioError as e:
                out.errors.append((cid, path, e.reason))
            except Exception as e:  # noqa: BLE001 - a model failure on one clip must not end the run
                out.errors.append((cid, path, f"extractor failed: {type(e).__name__}: {e}"))
            else:
                out.results.append(result)
        return out

    def _chunks(self, clip: Clip, decoded: Decoded, copy: int | None, records: list[dict]):
        """The clip's chunks, augmented as copy ``copy`` when augmenting (each chunk seeded apart)."""
        if copy is None:
            yield from decoded.chunks
            return
        for j, chunk in enumerate(decoded.chunks):
            key = clip.id if j == 0 else f"{clip.id}#chunk{j}"
            out = augment(chunk, self.audio_cfg.sample_rate, self.augment, seed=self.augment_seed,
                          clip_id=key, copy=copy)
            records.append(out.record | {"chunk": j})
            yield out.wav

    def _embed(self, clip: Clip, cid: str, decoded: Decoded, copy: int | None,
               records: list[dict]) -> ClipResult:
        stats = None
        if self.ext.uses_clip_stats and (decoded.lazy or len(decoded.chunks) > 1):
            # a first pass for the whole clip's statistics (a lazy file is decoded twice)
            stats = ClipStats.of(self._chunks(clip, decoded, copy, []))
        return self.embed_pieces(self._chunks(clip, decoded, copy, records), cid,
                                 decoded.content_hash, clip.path, stats)

    def embed_pieces(self, pieces: Iterable[np.ndarray], cid: str = "clip", content_hash: str = "",
                     where: str = "<array>", stats: ClipStats | None = None) -> ClipResult:
        """Embed one clip given as consecutive sample pieces (any lengths), cut as ``embedprobe.audio.chunking`` says.

        The frames, their count and the pooled statistics follow the whole clip's hop arithmetic
        whatever the pieces; ``audio_cfg.max_chunk_s`` sets how long a model input may be.
        ``stats`` (the whole clip's, see ``ClipStats.of``) is handed to ``Extractor.embed_part``
        for the windows of a clip longer than one window when the extractor ``uses_clip_stats``.

        Raises:
            AudioError: the model gave non-finite values, or values beyond float16's range
                for a float16 cache (``where`` names the clip).
        """
        ext = self.ext.load()
        spec = ext.spec
        plan = ChunkPlan.for_extractor(ext, self.audio_cfg.chunk_samples)
        framed = spec.hop_s is not None
        # a frame-level model's clip-level layers (a head over the mean frame): computed at the end
        # from the whole clip's means of their sources, so chunking cannot change them
        derived = [n for n in self.layers if n in spec.clip_layers] if framed else []
        pooled = [n for n in self.layers if n not in derived]
        pooled += [n for n in (ext.clip_sources if derived else ()) if n not in pooled]
        running = {name: RunningStats(spec.dim_of(name)) for name in pooled}
        sums = {name: np.zeros(spec.dim_of(name), np.float64) for name in pooled}  # clip-level
        frames = {name: ([], Downsampler(self.factor)) for name in self.frame_layers if name not in derived}
        n_samples = n_frames = 0
        for win in plan.windows(pieces):
            n_samples = win.own_stop
            lo, hi = plan.owned(win) if framed else (0, None)
            if hi is not None and hi <= lo:
                continue  # a span shorter than the hop can own no frame (a long-window model)
            whole = win.last and win.start == 0
            out = ext.embed(win.wav) if stats is None or whole else ext.embed_part(win.wav, stats)
            n_frames += 1
            for name in pooled:
                x = out[name]
                if framed:
                    x = self._owned(ext, win, plan, x, lo, hi)
                    running[name].update(x)
                    ok = running[name].finite
                else:
                    sums[name] += (win.own_stop - win.own_start) * x.mean(axis=0, dtype=np.float64)
                    ok = bool(np.isfinite(sums[name]).all())
                if not ok:
                    raise AudioError(where, f"the model returned non-finite values for layer {name}")
                if self.float16 and name in self.layers and x.size and np.abs(x).max() > F16_MAX:
                    raise AudioError(where, f"layer {name} has values beyond float16's range "
                                     "(re-extract without --float16)")
                if framed and name in frames:
                    frames[name][0].append(frames[name][1].push(np.asarray(x, dtype=np.float32)))
        if framed:
            n_frames = -1  # the stored frames say it (clip-level models: the spans averaged)
        heads = ext.clip_outputs({s: running[s].mean for s in ext.clip_sources}) if derived else {}
        layers = {}
        for name in self.layers:
            if name in heads:
                mean = np.asarray(heads[name], np.float32).reshape(-1)
                self._check_clip_value(name, mean, where)
                kept = mean[None] if name in self.frame_layers else None
                layers[name] = LayerResult(mean=mean, std=np.zeros_like(mean), frames=kept)
                continue
            if framed:
                mean, std = running[name].mean, running[name].std
            else:  # one vector per clip: the span vectors averaged by span length (chunking.CLIP_LEVEL_RULE)
                mean = (sums[name] / n_samples).astype(np.float32)
                std = np.zeros_like(mean)
            kept = None
            if name in frames:
                parts, ds = frames[name]
                rest = ds.finish()
                kept = np.concatenate(parts + ([rest] if rest is not None else [])) if framed else mean[None]
            layers[name] = LayerResult(mean=mean, std=std, frames=kept)
        return ClipResult(id=cid, content_hash=content_hash,
                          duration_s=n_samples / self.audio_cfg.sample_rate, layers=layers,
                          n_frames=n_frames)

    def _check_clip_value(self, name: str, x: np.ndarray, where: str) -> None:
        if not np.isfinite(x).all():
            raise AudioError(where, f"the model returned non-finite values for layer {name}")
        if self.float16 and x.size and np.abs(x).max() > F16_MAX:
            raise AudioError(where, f"layer {name} has values beyond float16's range (re-extract without --float16)")

    @staticmethod
    def _owned(ext: Extractor, win: Window, plan: ChunkPlan, x: np.ndarray, lo: int,
               hi: int | None) -> np.ndarray:
        """The frames of window ``win`` that its span owns; a wrong count is a bug, never stored."""
        if win.last:
            bad = win.start // plan.hop + x.shape[0] != ext.n_frames(win.own_stop)
        else:
            bad = x.shape[0] < hi
        if bad:
            raise RuntimeError(
                f"{ext.spec.name} gave {x.shape[0]} frames for a {len(win.wav)}-sample chunk window "
                f"at sample {win.start}, which does not add up to the whole clip's frames: its "
                f"chunk_context_s {ext.chunk_context_s} is too short or its n_frames is wrong")
        return x[max(lo, 0):hi]


def chunked_vs_whole(ext: Extractor, wav: np.ndarray, chunk_s: float,
                     layers: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Embed ``wav`` in one piece and in chunks of ``chunk_s`` seconds, and compare the two.

    What ``tests/test_chunking.py`` checks for every family and ``benchmarks/chunk_agreement.py``
    prints. Differences are relative to the largest absolute whole-clip frame value of the layer,
    the worst layer is reported.

    Returns:
        ``n_frames`` (whole clip's hop arithmetic), ``frames_whole``, ``frames_chunked``,
        ``spans`` (chunk spans used), ``max_frame_offset`` (per span, the frame lag in -2..2
        that best matches the whole run; 0 = aligned), ``frames_max_rel``, ``mean_cos`` (lowest
        cosine of the pooled means), ``mean_max_rel`` and ``std_max_rel``.
    """
    ext = ext.load()
    spec = ext.spec
    sr = spec.sample_rate
    layers = tuple(layers or spec.layers)
    wav = np.asarray(wav, dtype=np.float32)
    whole_cfg = audio.AudioConfig(sample_rate=sr, max_chunk_s=2 * len(wav) / sr + 1)
    chunk_cfg = audio.AudioConfig(sample_rate=sr, max_chunk_s=chunk_s)
    whole = ClipEmbedder(ext, layers, layers, 1, whole_cfg).embed_pieces([wav])
    cs = chunk_cfg.chunk_samples
    pieces = [wav[i:i + cs] for i in range(0, len(wav), cs)]
    stats = ClipStats.of(pieces) if ext.uses_clip_stats else None
    parts = ClipEmbedder(ext, layers, layers, 1, chunk_cfg).embed_pieces(pieces, stats=stats)
    plan = ChunkPlan.for_extractor(ext, cs)
    spans = [(w.own_start, w.own_stop) for w in plan.windows([np.zeros(len(wav), np.float32)])]
    out: dict[str, Any] = {
        "n_frames": ext.n_frames(len(wav)), "frames_whole": len(whole.layers[layers[0]].frames),
        "frames_chunked": len(parts.layers[layers[0]].frames), "spans": len(spans),
        "max_frame_offset": 0, "frames_max_rel": 0.0, "mean_cos": 1.0, "mean_max_rel": 0.0,
        "std_max_rel": 0.0,
    }
    for name in layers:
        a, b = whole.layers[name], parts.layers[name]
        scale = max(float(np.abs(a.frames).max()), 1e-12)

        def rel(x: np.ndarray, y: np.ndarray, scale: float = scale) -> float:
            return float(np.abs(np.float64(x) - y).max()) / scale
        if len(a.frames) == len(b.frames):
            out["frames_max_rel"] = max(out["frames_max_rel"], rel(a.frames, b.frames))
            if spec.hop_s is not None and name not in spec.clip_layers:
                out["max_frame_offset"] = max(out["max_frame_offset"],
                                              _worst_lag(a.frames, b.frames, plan, spans))
        else:
            out["frames_max_rel"] = float("inf")
        cos = float(np.dot(a.mean, b.mean) / max(np.linalg.norm(a.mean) * np.linalg.norm(b.mean), 1e-30))
        out["mean_cos"] = min(out["mean_cos"], cos)
        out["mean_max_rel"] = max(out["mean_max_rel"], rel(a.mean, b.mean))
        out["std_max_rel"] = max(out["std_max_rel"], rel(a.std, b.std))
    return out


def _worst_lag(whole: np.ndarray, chunked: np.ndarray, plan: ChunkPlan,
               spans: list[tuple[int, int]]) -> int:
    """The largest, over chunk spans, of the frame lag (-2..2) at which a span best matches the whole run."""
    worst, n = 0, len(whole)
    for k, (s, e) in enumerate(spans):
        lo = plan.frames_before(s)
        hi = n if k == len(spans) - 1 else plan.frames_before(e)
        if hi <= lo:
            continue
        errs = {}
        for lag in range(-2, 3):
            i0, i1 = max(lo, -lag), min(hi, n - lag)
            if i1 > i0:
                errs[lag] = float(np.abs(chunked[i0:i1] - whole[i0 + lag:i1 + lag]).mean())
        best = min(errs, key=lambda g: (errs[g], abs(g)))
        worst = max(worst, abs(best))
    return worst

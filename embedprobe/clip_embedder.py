"""One decoded clip -> pooled (and framed) layer results, with per-clip errors instead of exceptions.

``ClipEmbedder`` is the part of an extraction run that touches the model: it embeds a clip's
chunks, pools them exactly across chunks, checks the values and, for augmented runs, makes
each missing copy first. It holds no file handles and pickles as a recipe (the extractor is
rebuilt by ``load``), so the same object runs in the extracting process or in each worker
process of ``embedprobe.replicas``; batching and cache writes stay in the extracting process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embedprobe import audio
from embedprobe.augment.copies import split_copy_id
from embedprobe.cache import ClipResult, LayerResult
from embedprobe.corpora.base import Clip
from embedprobe.errors import AudioError
from embedprobe.extractors.base import Extractor
from embedprobe.pooling import RunningStats, downsample

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

    def run(self, clip: Clip, path: str, decoded: audio.Decoded | AudioError,
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
            except AudioError as e:
                out.errors.append((cid, path, e.reason))
            except Exception as e:  # noqa: BLE001 - a model failure on one clip must not end the run
                out.errors.append((cid, path, f"extractor failed: {type(e).__name__}: {e}"))
            else:
                out.results.append(result)
        return out

    def _chunks(self, clip: Clip, decoded: audio.Decoded, copy: int | None, records: list[dict]):
        """The clip's chunks, augmented as copy ``copy`` when augmenting (each chunk seeded apart)."""
        if copy is None:
            yield from decoded.chunks
            return
        from embedprobe.augment import augment

        for j, chunk in enumerate(decoded.chunks):
            key = clip.id if j == 0 else f"{clip.id}#chunk{j}"
            out = augment(chunk, self.audio_cfg.sample_rate, self.augment, seed=self.augment_seed,
                          clip_id=key, copy=copy)
            records.append(out.record | {"chunk": j})
            yield out.wav

    def _embed(self, clip: Clip, cid: str, decoded: audio.Decoded, copy: int | None,
               records: list[dict]) -> ClipResult:
        ext = self.ext.load()
        stats = {name: RunningStats(ext.spec.dim) for name in self.layers}
        frames: dict[str, list[np.ndarray]] = {name: [] for name in self.frame_layers}
        n_samples = 0
        tail = int(self.audio_cfg.max_chunk_s * self.audio_cfg.sample_rate) // 4
        for chunk in self._chunks(clip, decoded, copy, records):
            n_samples += chunk.shape[0]
            if n_samples > chunk.shape[0] and chunk.shape[0] < tail:
                continue  # a final piece under a quarter chunk after full chunks: counted, not embedded
            out = ext.embed(chunk)
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

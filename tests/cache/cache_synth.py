"""Tiny synthetic manifests and clip results whose values follow from the clip id (for cache tests)."""

from __future__ import annotations

import hashlib
import zlib

import numpy as np

from embedprobe.cache import ClipResult, LayerResult
from embedprobe.corpora.base import Clip, Manifest

LAYERS = {"layer_0": 8, "layer_1": 4}
IDENTITY = {"extractor": {"name": "toy", "weights_revision": "rev-a"}, "config": {"hop_s": 0.02}, "corpus": "synth"}
PROVENANCE = {**IDENTITY, "packages": {"numpy": "2.0", "torch": "2.13.0"}, "code_version": "git:abc"}


def make_manifest(n: int, corpus: str = "synth") -> Manifest:
    clips = [Clip(id=f"c{i:04d}", path=f"wav/c{i:04d}.wav", speaker=f"s{i % 5}", native_label="ang",
                  label="angry") for i in range(n)]
    parts = ["train", "val", "test"]
    return Manifest(corpus=corpus, root="/data/synth", clips=clips,
                    splits={"random": [parts[i % 3] for i in range(n)]}, protocols={"random": ["random"]},
                    default_protocol="random")


def seed_of(cid: str) -> int:
    return zlib.crc32(cid.encode())


def n_frames_of(cid: str) -> int:
    return 2 + seed_of(cid) % 7


def frames_of(cid: str, layer: str, dim: int) -> np.ndarray:
    rng = np.random.default_rng([seed_of(cid), seed_of(layer)])
    return rng.standard_normal((n_frames_of(cid), dim)).astype(np.float32)


def content_hash_of(cid: str) -> str:
    return hashlib.sha1(cid.encode()).hexdigest()[:16]


def result(cid: str, layers: dict[str, int] = LAYERS, frames: bool = True) -> ClipResult:
    out = {}
    for layer, dim in layers.items():
        f = frames_of(cid, layer, dim)
        out[layer] = LayerResult(mean=f.mean(0), std=f.std(0), frames=f if frames else None)
    return ClipResult(id=cid, content_hash=content_hash_of(cid), duration_s=0.02 * n_frames_of(cid), layers=out)


def fails(cid: str) -> bool:
    """Clips that fail every time (to exercise the error table)."""
    return seed_of(cid) % 13 == 0


def kwargs(manifest: Manifest, **kw):
    base = dict(provenance=PROVENANCE, identity=IDENTITY, manifest_json=manifest.to_json(), layers=LAYERS,
                frames=True)
    base.update(kw)
    return base

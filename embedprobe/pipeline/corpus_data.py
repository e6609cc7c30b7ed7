"""Cached corpora as probe-ready arrays: which corpora have caches, and their 4-class clips.

Shared by :mod:`embedprobe.pipeline.probe` (the emotion matrix) and
:mod:`embedprobe.pipeline.domain` (the domain gap), which do not import each other.
``load_corpus(path, ...)`` opens a cache once for one layer; ``read_corpus(reader, ...)`` reads
from an already open reader, so a caller that needs several layers opens each cache once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from embedprobe.cache import CacheReader, open_cache
from embedprobe.cache.naming import safe_model
from embedprobe.corpora.base import CANONICAL_LABELS
from embedprobe.errors import BadValueError, CacheError, CacheIncompleteError
from embedprobe.eval.data import CorpusData
from embedprobe.probes.features import FrameSet
from embedprobe.provenance import fingerprint


def available_corpora(cache_dir: str | Path, model: str) -> list[str]:
    """Corpora that have a cache for ``model`` in ``cache_dir``."""
    suffix = f"__{safe_model(model)}.h5"
    found = set()
    for p in Path(cache_dir).glob(f"*{suffix}*"):
        name = p.name.split(suffix)[0]
        if p.name.endswith(suffix) or p.name.endswith(suffix + ".parts"):
            found.add(name)
    return sorted(found)


def completeness(r: Any, *, allow_incomplete: bool) -> dict[str, Any] | None:
    """``None`` for a cache holding every manifest clip (done or failed); else what is missing.

    Raises:
        CacheIncompleteError: clips are missing and ``allow_incomplete`` is false.
    """
    if not r.n_pending:
        return None
    n = len(r.manifest)
    lost = f" (part files gone: {', '.join(r.missing_parts)})" if r.missing_parts else ""
    if not allow_incomplete:
        raise CacheIncompleteError(
            f"The cache {r.path} is incomplete: {r.n_pending} of {n} clips are missing{lost}. Fix: finish it "
            f"by re-running the extraction (it resumes), or pass --allow-incomplete to use the "
            f"{r.n_clips} clips it has.")
    return {"n_missing": r.n_pending, "n_manifest": n, "n_clips": r.n_clips, "missing_parts": r.missing_parts,
            "note": f"{r.path}: incomplete, {r.n_pending} of {n} clips missing{lost}; used the {r.n_clips} "
                    "clips it has (--allow-incomplete)."}


def load_corpus(path: Path, *, layer: str | None, pooling: str, frames: bool,
                protocol: str | None = None, allow_incomplete: bool = False) -> tuple[CorpusData, dict[str, Any]]:
    """The 4-class clips of one cache as ``CorpusData`` plus a provenance record of the cache.

    Raises:
        CacheIncompleteError: the cache misses clips and ``allow_incomplete`` is false.
    """
    with open_cache(path) as r:
        return read_corpus(r, layer=layer, pooling=pooling, frames=frames, protocol=protocol,
                           allow_incomplete=allow_incomplete, path=path)


def read_corpus(r: CacheReader, *, layer: str | None, pooling: str, frames: bool,
                protocol: str | None = None, allow_incomplete: bool = False,
                path: Path | None = None) -> tuple[CorpusData, dict[str, Any]]:
    """``load_corpus`` from an open cache reader (so one open serves several layers).

    ``path`` is the name recorded for the cache (default: the reader's path).
    """
    path = Path(r.path) if path is None else path
    incomplete = completeness(r, allow_incomplete=allow_incomplete)
    layer = layer or r.default_layer
    if layer not in r.layers:
        raise BadValueError(f"layer of {path.name}", layer, r.layers)
    proto = protocol or r.manifest.default_protocol
    m = r.manifest.with_protocol(proto)  # loso is derived from the stored manifest's speakers
    have = set(r.ids)
    clips = [c for c in m.clips if c.label is not None and c.id in have]
    if not clips:
        raise CacheError(f"{path} has no 4-class clips with embeddings. Fix: check the extraction "
                         "summary (`embedprobe info`).")
    ids = [c.id for c in clips]
    folds = m.folds(proto)
    row = {c.id: i for i, c in enumerate(m.clips)}
    parts = {f: np.array([m.splits[f][row[i]] for i in ids]) for f in folds}
    if frames:
        if not r.has_frames(layer):
            raise CacheError(
                f"{path} keeps no frame-level features for layer {layer!r}, which frame "
                "masking and feature mixing need. Fix: re-extract with `embedprobe extract ... "
                "--frames` (into another --out or with --overwrite).")
        X: Any = FrameSet.from_list(r.frames(layer, ids))
    else:
        X = r.pooled(layer, "meanstd" if pooling == "meanstd" else "mean", ids)
    data = CorpusData(
        name=m.corpus, ids=np.array(ids), y=np.array([CANONICAL_LABELS.index(c.label) for c in clips]),
        speakers=np.array([c.speaker for c in clips]), X=X, parts=parts, folds=list(folds),
        protocol=proto, fingerprint=r.fingerprint, meta={"protocols": list(m.protocols)},
    )
    record = {
        "path": str(path), "fingerprint": r.fingerprint, "complete": r.complete,
        "n_clips": r.n_clips, "n_errors": len(r.errors), "layer": layer,
        "identity": r.identity, "protocol": proto, "folds": list(folds),
        "n_4class": len(ids), "checksums": r.checksums, "incomplete": incomplete,
        "split_fingerprint": fingerprint({f: parts[f].tolist() for f in folds} | {"ids": ids}),
    }
    return data, record

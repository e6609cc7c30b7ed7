"""One batch of clips, validated and stacked into the columns of a segment (storage dtype, digests)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embedprobe.errors import BadValueError

from .convert import convert_into
from .digest import clip_digests, columns, row_digests
from .schema import ClipResult, Header


@dataclass
class Block:
    """The columns of one batch of clips and errors, ready to be written as one segment."""

    ids: list[str]
    content_hash: list[str]
    duration_s: np.ndarray
    n_frames: np.ndarray
    mean: dict[str, np.ndarray]
    std: dict[str, np.ndarray]
    frames: dict[str, tuple[np.ndarray, np.ndarray]]  # layer -> (data, offsets)
    digests: np.ndarray  # (N, K) uint64, see digest.columns
    errors: dict[str, list[Any]] = field(default_factory=lambda: {"id": [], "path": [], "reason": [], "time": []})

    @classmethod
    def from_results(cls, header: Header, results: list[ClipResult],
                     errors: list[tuple[str, str, str]]) -> Block:
        """Validate a batch against the header and stack it into columns (storage dtype).

        Raises ``BadValueError`` naming the clip for a missing layer, a wrong shape, NaN/inf,
        or a value too large for a float16 cache.
        """
        dt = np.dtype(header.dtype)
        n = len(results)
        for r in results:
            missing = [x for x in header.layers if x not in r.layers]
            if missing:
                raise BadValueError(f"layer set of clip {r.id!r}", sorted(r.layers), list(header.layers),
                                    f"every clip must give every cache layer; missing {missing}")
        mean: dict[str, np.ndarray] = {}
        std: dict[str, np.ndarray] = {}
        frames: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below, per clip
            for layer, dim in header.layers.items():
                for what, out in (("mean", mean), ("std", std)):
                    vecs = [getattr(r.layers[layer], what) for r in results]
                    try:
                        arr = np.array(vecs, dtype=dt) if n else np.empty((0, dim), dt)
                    except (ValueError, TypeError):
                        arr = None
                    if arr is None or arr.shape != (n, dim):
                        for r, v in zip(results, vecs, strict=True):
                            _vector(v, dim, r.id, layer, what)
                    out[layer] = arr
            for what, out in (("mean", mean), ("std", std)):  # one check over all layers
                if n and len(_nonfinite_rows(np.concatenate(list(out.values()), axis=1))):
                    for layer, arr in out.items():
                        bad = _nonfinite_rows(arr)
                        if len(bad):
                            r = results[int(bad[0])]
                            _check_range(getattr(r.layers[layer], what), dt, r.id, layer, what)
            for layer in header.frame_layers:
                frames[layer] = _stack_frames(header, layer, results, dt)
        n_frames = np.array([r.n_frames for r in results], np.int64)
        if header.frame_layers:
            first = frames[header.frame_layers[0]][1]
            unknown = n_frames < 0
            n_frames[unknown] = np.diff(first)[unknown]
        digests = np.zeros((n, len(columns(header.layers, header.frame_layers))), np.uint64)
        for (what, layer), j in columns(header.layers, header.frame_layers).items():
            digests[:, j] = clip_digests(*frames[layer]) if what == "frames" else row_digests(
                (mean if what == "mean" else std)[layer])
        now = time.time()
        err = {"id": [str(e[0]) for e in errors], "path": [str(e[1]) for e in errors],
               "reason": [str(e[2]) for e in errors], "time": [now] * len(errors)}
        return cls(ids=[r.id for r in results], content_hash=[str(r.content_hash) for r in results],
                   duration_s=np.array([float(r.duration_s) for r in results], np.float64),
                   n_frames=n_frames, mean=mean, std=std, frames=frames, digests=digests, errors=err)


def _stack_frames(header: Header, layer: str, results: list[ClipResult], dt: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    dim = header.layers[layer]
    mats = []
    for r in results:
        f = r.layers[layer].frames
        if f is None or np.ndim(f) != 2 or np.shape(f)[1] != dim:
            raise BadValueError(
                f"frames of layer {layer!r} for clip {r.id!r}", None if f is None else tuple(np.shape(f)), None,
                f"expected an array of shape (T, {dim}) because this cache keeps frames of "
                f"{list(header.frame_layers)}")
        mats.append(np.ascontiguousarray(f))
    offsets = np.zeros(len(results) + 1, np.int64)
    np.cumsum([len(f) for f in mats], out=offsets[1:])
    data = np.empty((int(offsets[-1]), dim), dt)
    for i, f in enumerate(mats):
        convert_into(data[offsets[i]:offsets[i + 1]], f)
    bad = _nonfinite_rows(data)
    if len(bad):
        i = int(np.searchsorted(offsets, bad[0], side="right")) - 1
        _check_range(mats[i], dt, results[i].id, layer, "frames")
    return data, offsets


def _nonfinite_rows(a: np.ndarray) -> np.ndarray:
    """Indices of rows holding NaN or inf (a bit test for float16, where numpy math is slow)."""
    if a.dtype == np.float16 and a.size and a.flags.c_contiguous:
        exponent = a.view(np.uint16) & np.uint16(0x7C00)  # all ones: NaN or inf
        if exponent.max() != 0x7C00:  # the common case: one pass and a max, 2x faster
            return np.empty(0, np.int64)
        bad = exponent == 0x7C00
    else:
        bad = ~np.isfinite(a)
    if not bad.any():
        return np.empty(0, np.int64)
    return np.nonzero(bad.reshape(len(a), -1).any(axis=1))[0]


def _vector(x: Any, dim: int, clip_id: str, layer: str, what: str) -> np.ndarray:
    a = np.asarray(x)
    if a.shape != (dim,):
        raise BadValueError(f"{what} vector shape of clip {clip_id!r} layer {layer!r}", a.shape,
                            [(dim,)], "pass one vector per layer with the dimension given in `layers`")
    return a


def _check_range(a: Any, dtype: np.dtype, clip_id: str, layer: str, what: str) -> None:
    """Raise for NaN/inf in ``a`` or values the storage dtype turns into inf."""
    a = np.asarray(a, np.float64)
    peak = float(np.max(np.abs(a))) if a.size else 0.0
    if not np.isfinite(peak):
        raise BadValueError(f"{what} of clip {clip_id!r} layer {layer!r}", "NaN or inf values", None,
                            "the extractor produced non-finite numbers for this clip; record it as an "
                            "error (write(..., errors=[(id, path, reason)])) instead of storing it")
    limit = float(np.finfo(dtype).max)
    raise BadValueError(f"{what} of clip {clip_id!r} layer {layer!r}", f"max |x| = {peak:.4g}", None,
                        f"{np.dtype(dtype).name} stores at most {limit:g}; make the cache with dtype float32")

"""One batch of clips, validated and stacked into the columns of a segment (storage dtype, digests)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embedprobe.errors import BadValueError

from .convert import convert_into
from .digest import columns, combine_ranges, digest_weights, row_digests
from .schema import ClipResult, Header, packed_columns


@dataclass
class Block:
    """The columns of one batch of clips and errors, ready to be written as one segment."""

    ids: list[str]
    content_hash: list[str]
    duration_s: np.ndarray
    n_frames: np.ndarray
    pooled: np.ndarray  # (N, sum 2 D) storage dtype: each layer's mean then std (schema.packed_columns)
    frames: dict[str, tuple[list[np.ndarray], np.ndarray]]  # layer -> (one (T_i, D) array per clip, offsets)
    digests: np.ndarray  # (N, K) uint64, see digest.columns
    errors: dict[str, list[Any]] = field(default_factory=lambda: {"id": [], "path": [], "reason": [], "time": []})

    @property
    def nbytes(self) -> int:
        """Bytes of the vectors (what the part file holds, less metadata)."""
        return self.pooled.nbytes + sum(m.nbytes for mats, _ in self.frames.values() for m in mats)

    @classmethod
    def from_results(cls, header: Header, results: list[ClipResult],
                     errors: list[tuple[str, str, str]]) -> Block:
        """Validate a batch against the header and stack it into columns (storage dtype).

        Frames already in the storage dtype are kept as they are (written without a copy).
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
        frames: dict[str, tuple[list[np.ndarray], np.ndarray]] = {}
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below, per clip
            pooled = _stack_pooled(header, results, dt)
            bad = _nonfinite_rows(pooled)
            if len(bad):
                r = results[int(bad[0])]
                col = int(np.nonzero(~np.isfinite(pooled[bad[0]]))[0][0])
                for (what, layer), (c0, c1) in packed_columns(header.layers).items():
                    if c0 <= col < c1:
                        _check_range(getattr(r.layers[layer], what), dt, r.id, layer, what)
            for layer in header.frame_layers:
                frames[layer] = _stack_frames(header, layer, results, dt)
        n_frames = np.array([r.n_frames for r in results], np.int64)
        if header.frame_layers:
            first = frames[header.frame_layers[0]][1]
            unknown = n_frames < 0
            n_frames[unknown] = np.diff(first)[unknown]
        cols = columns(header.layers, header.frame_layers)
        digests = np.zeros((n, len(cols)), np.uint64)
        digests[:, :2 * len(header.layers)] = _pooled_digests(header, pooled)
        for layer in header.frame_layers:
            mats, offsets = frames[layer]
            rowd = np.concatenate([row_digests(m) for m in mats]) if mats else np.zeros(0, np.uint64)
            digests[:, cols[("frames", layer)]] = combine_ranges(rowd, offsets[:-1], offsets[1:])
        now = time.time()
        err = {"id": [str(e[0]) for e in errors], "path": [str(e[1]) for e in errors],
               "reason": [str(e[2]) for e in errors], "time": [now] * len(errors)}
        return cls(ids=[r.id for r in results], content_hash=[str(r.content_hash) for r in results],
                   duration_s=np.array([float(r.duration_s) for r in results], np.float64),
                   n_frames=n_frames, pooled=pooled, frames=frames, digests=digests, errors=err)


def _stack_pooled(header: Header, results: list[ClipResult], dt: np.dtype) -> np.ndarray:
    """``(N, sum 2 D)``: every clip's mean and std of every layer, packed (one array, one check)."""
    n, dims = len(results), list(header.layers.values())
    width = 2 * sum(dims)
    if n and len(set(dims)) == 1:  # the common case: one conversion for the whole batch
        try:
            arr = np.array([[v for layer in header.layers for v in (r.layers[layer].mean, r.layers[layer].std)]
                            for r in results], dtype=dt)
        except (ValueError, TypeError):
            arr = None
        if arr is not None and arr.shape == (n, 2 * len(dims), dims[0]):
            return arr.reshape(n, width)
    out = np.empty((n, width), dt)
    for (what, layer), (c0, c1) in packed_columns(header.layers).items():
        vecs = [getattr(r.layers[layer], what) for r in results]
        try:
            arr = np.array(vecs, dtype=dt) if n else np.empty((0, c1 - c0), dt)
        except (ValueError, TypeError):
            arr = None
        if arr is None or arr.shape != (n, c1 - c0):
            for r, v in zip(results, vecs, strict=True):
                _vector(v, c1 - c0, r.id, layer, what)
        out[:, c0:c1] = arr
    return out


def _pooled_digests(header: Header, pooled: np.ndarray) -> np.ndarray:
    """``(N, 2 L)`` digests of every mean and std (digest columns follow the packed order)."""
    dims = list(header.layers.values())
    n, k = len(pooled), 2 * len(dims)
    if n and len(set(dims)) == 1 and (dims[0] * pooled.itemsize) % 8 == 0 and pooled.flags.c_contiguous:
        words = pooled.view(np.uint64).reshape(n, k, -1)  # every row digest in one pass
        with np.errstate(over="ignore"):
            return np.einsum("ijk,k->ij", words, digest_weights(words.shape[2]))
    out = np.zeros((n, k), np.uint64)
    for j, (c0, c1) in enumerate(packed_columns(header.layers).values()):
        out[:, j] = row_digests(pooled[:, c0:c1])
    return out


def _stack_frames(header: Header, layer: str, results: list[ClipResult],
                  dt: np.dtype) -> tuple[list[np.ndarray], np.ndarray]:
    dim = header.layers[layer]
    mats = []
    for r in results:
        f = r.layers[layer].frames
        if f is None or np.ndim(f) != 2 or np.shape(f)[1] != dim:
            raise BadValueError(
                f"frames of layer {layer!r} for clip {r.id!r}", None if f is None else tuple(np.shape(f)), None,
                f"expected an array of shape (T, {dim}) because this cache keeps frames of "
                f"{list(header.frame_layers)}")
        f = np.asarray(f)
        if f.dtype != dt or not f.flags.c_contiguous:
            out = np.empty(f.shape, dt)
            convert_into(out, np.ascontiguousarray(f))
            f = out
        if len(_nonfinite_rows(f)):
            _check_range(r.layers[layer].frames, dt, r.id, layer, "frames")
        mats.append(f)
    offsets = np.zeros(len(results) + 1, np.int64)
    np.cumsum([len(f) for f in mats], out=offsets[1:])
    return mats, offsets


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

"""Ragged frame-level features (:class:`FrameSet`) and their pooling, done in torch.

A cache stores, for one layer, either one pooled vector per clip (an ``(N, D)`` array, the
usual probe input) or every frame of every clip. Frames of clips of different lengths are kept
ragged: one ``(sum_T, D)`` array with all frames one clip after the other, plus ``N + 1``
offsets (clip ``i`` owns rows ``offsets[i]:offsets[i+1]``), the layout of the HDF5 cache.
float16 frames stay float16 in memory and are converted to float32 by torch while pooling
(numpy's float16 conversion is ~10x slower on this hardware).

Example:
    >>> import numpy as np
    >>> fs = FrameSet.from_list([np.ones((2, 3)), np.zeros((1, 3))])
    >>> fs.lengths.tolist(), fs.pool("mean").tolist()
    ([2, 1], [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from embedprobe.errors import BadValueError

POOLINGS: tuple[str, ...] = ("mean", "mean+std")


def _as_tensor(a: Any) -> Any:
    import torch

    if isinstance(a, torch.Tensor):
        return a
    a = np.asarray(a)
    if a.dtype not in (np.float16, np.float32, np.float64):
        a = a.astype(np.float32)
    with warnings.catch_warnings():  # read-only arrays (h5py, memmap): torch never writes to them here
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(np.ascontiguousarray(a))


def segment_rows(offsets: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frame rows of clips ``idx`` and, for each row, its position in ``idx`` (vectorised).

    Returns:
        ``(rows, seg)``: ``rows`` index the ``(sum_T, D)`` frame array; ``seg[j]`` is the
        position in ``idx`` of the clip that owns ``rows[j]``.
    """
    idx = np.asarray(idx, dtype=np.int64)
    starts = offsets[idx]
    lens = offsets[idx + 1] - starts
    seg = np.repeat(np.arange(idx.size), lens)
    first = np.cumsum(lens) - lens
    rows = np.arange(int(lens.sum()), dtype=np.int64) - first[seg] + starts[seg]
    return rows, seg


def pool_rows(frames: Any, seg: Any, n_seg: int, how: str = "mean") -> Any:
    """Pool frame rows into ``n_seg`` vectors by segment id (torch, float32, no Python loop).

    Args:
        frames: ``(R, D)`` torch tensor (any float dtype).
        seg: ``(R,)`` int64 tensor or array of segment ids in ``0..n_seg-1``; every segment
            must own at least one row.
        n_seg: number of segments.
        how: ``"mean"`` or ``"mean+std"`` (population std per dimension, concatenated).

    Returns:
        ``(n_seg, D)`` or ``(n_seg, 2D)`` float32 tensor.
    """
    import torch

    if how not in POOLINGS:
        raise BadValueError("pooling", how, POOLINGS)
    x = frames.to(torch.float32)
    seg = torch.as_tensor(seg, dtype=torch.int64)
    cnt = torch.bincount(seg, minlength=n_seg).clamp_min(1).to(torch.float32)[:, None]
    mean = torch.zeros((n_seg, x.shape[1]), dtype=torch.float32).index_add_(0, seg, x).div_(cnt)
    if how == "mean":
        return mean
    dev = x.sub_(mean.index_select(0, seg)) if x is not frames else x - mean.index_select(0, seg)
    var = torch.zeros_like(mean).index_add_(0, seg, dev.mul_(dev)).div_(cnt)  # two-pass: no cancellation
    return torch.cat([mean, var.sqrt_()], dim=1)


class FrameSet:
    """Frame-level features of ``N`` clips stored ragged: ``(sum_T, D)`` frames + offsets.

    Args:
        frames: ``(sum_T, D)`` float16/float32 numpy array or torch tensor (not copied when
            already contiguous).
        offsets: ``(N + 1,)`` non-decreasing ints from 0 to ``sum_T``; every clip must have
            at least one frame.
    """

    def __init__(self, frames: Any, offsets: Sequence[int] | np.ndarray):
        self.frames = _as_tensor(frames)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        if self.frames.ndim != 2:
            raise BadValueError("frames shape", tuple(self.frames.shape),
                                fix="Pass a (sum_T, D) array of all frames, clip after clip.")
        off = self.offsets
        if off.ndim != 1 or off.size < 1 or off[0] != 0 or off[-1] != self.frames.shape[0]:
            raise BadValueError("offsets", off[:3].tolist() + ["..."] + off[-2:].tolist(),
                                fix=f"Offsets must run from 0 to {self.frames.shape[0]} (N + 1 values).")
        if np.any(np.diff(off) < 1):
            raise BadValueError("clip length", int(np.diff(off).min()),
                                fix="Every clip needs at least one frame; drop empty clips first.")

    @classmethod
    def from_list(cls, arrays: Sequence[Any], dtype: Any = None) -> FrameSet:
        """Build from a list of ``(T_i, D)`` arrays (one per clip)."""
        if not arrays:
            raise BadValueError("number of clips", 0, fix="Pass at least one (T, D) array.")
        mats = [np.asarray(a, dtype=dtype) for a in arrays]
        lens = [m.shape[0] for m in mats]
        return cls(np.concatenate(mats, axis=0), np.concatenate([[0], np.cumsum(lens)]))

    @classmethod
    def concat(cls, sets: Sequence[FrameSet]) -> FrameSet:
        """One FrameSet holding the clips of ``sets`` in order (e.g. several training corpora)."""
        import torch

        dims = {s.dim for s in sets}
        if len(dims) != 1:
            raise BadValueError("frame dims", sorted(dims), fix="Concatenate features of one layer only.")
        frames = torch.cat([s.frames for s in sets], dim=0)
        lens = np.concatenate([s.lengths for s in sets])
        return cls(frames, np.concatenate([[0], np.cumsum(lens)]))

    def __len__(self) -> int:
        return self.offsets.size - 1

    @property
    def n_clips(self) -> int:
        return len(self)

    @property
    def dim(self) -> int:
        return int(self.frames.shape[1])

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_clips, dim)``: the shape of the mean-pooled features."""
        return (len(self), self.dim)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __getitem__(self, idx: Any) -> FrameSet:
        """The clips selected by an index array, boolean mask or slice, as a new FrameSet."""
        import torch

        sel = np.atleast_1d(np.arange(len(self))[idx])
        rows, seg = segment_rows(self.offsets, sel)
        lens = self.lengths[sel]
        return FrameSet(self.frames.index_select(0, torch.from_numpy(rows)), np.concatenate([[0], np.cumsum(lens)]))

    def clip(self, i: int) -> Any:
        """Frames of clip ``i`` as a ``(T_i, D)`` tensor view."""
        return self.frames[self.offsets[i]:self.offsets[i + 1]]

    def pool(self, how: str = "mean", idx: Any = None, *, chunk: int = 2048) -> Any:
        """Pooled ``(n, D)`` (``"mean"``) or ``(n, 2D)`` (``"mean+std"``) float32 tensor.

        Args:
            how: pooling, one of :data:`POOLINGS`.
            idx: optional clip indices (default: all clips, in order).
            chunk: clips pooled at once (bounds the float32 copy of the frames).
        """
        import torch

        sel = np.arange(len(self)) if idx is None else np.asarray(idx, dtype=np.int64)
        out = []
        for start in range(0, sel.size, chunk):
            part = sel[start:start + chunk]
            if part.size and np.all(np.diff(part) == 1):  # consecutive clips: a view, no gather
                lo, hi = self.offsets[part[0]], self.offsets[part[-1] + 1]
                seg = np.repeat(np.arange(part.size), self.lengths[part])
                out.append(pool_rows(self.frames[lo:hi], seg, part.size, how))
                continue
            rows, seg = segment_rows(self.offsets, part)
            out.append(pool_rows(self.frames.index_select(0, torch.from_numpy(rows)), seg, part.size, how))
        if not out:
            width = self.dim * (2 if how == "mean+std" else 1)
            return torch.zeros((0, width), dtype=torch.float32)
        return torch.cat(out, dim=0)

    def __repr__(self) -> str:
        return f"FrameSet(n_clips={len(self)}, dim={self.dim}, frames={int(self.offsets[-1])}, dtype={self.frames.dtype})"

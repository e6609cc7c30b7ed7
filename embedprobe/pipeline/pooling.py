"""Streaming pooling of frame sequences: exact mean/std over chunks, and frame-hop downsampling."""

from __future__ import annotations

import numpy as np


class RunningStats:
    """Mean and standard deviation of a frame sequence fed in chunks (float64 accumulators).

    Example:
        >>> rs = RunningStats(2)
        >>> rs.update(np.array([[0.0, 1.0], [2.0, 3.0]], dtype=np.float32))
        >>> rs.mean.tolist(), rs.std.tolist()
        ([1.0, 2.0], [1.0, 1.0])
    """

    def __init__(self, dim: int):
        self.n = 0
        self._sum = np.zeros(dim, dtype=np.float64)
        self._sumsq = np.zeros(dim, dtype=np.float64)
        self._shift: np.ndarray | None = None  # first frame, for numerically stable variance

    def update(self, frames: np.ndarray) -> None:
        x = np.asarray(frames)
        if x.ndim != 2 or x.shape[0] == 0:
            return
        if self._shift is None:
            self._shift = x[0].astype(np.float64)
        # differences in the input precision (small: they are taken from the first frame),
        # sums accumulated in float64
        d = x - self._shift.astype(x.dtype, copy=False)
        self.n += x.shape[0]
        self._sum += d.sum(axis=0, dtype=np.float64)
        self._sumsq += np.square(d).sum(axis=0, dtype=np.float64)

    @property
    def finite(self) -> bool:
        """Whether every frame pooled so far was finite (a NaN or inf makes the sums non-finite)."""
        return bool(np.isfinite(self._sum).all() and np.isfinite(self._sumsq).all())

    @property
    def mean(self) -> np.ndarray:
        if self.n == 0:
            raise ValueError("no frames were pooled")
        return (self._shift + self._sum / self.n).astype(np.float32)

    @property
    def std(self) -> np.ndarray:
        if self.n == 0:
            raise ValueError("no frames were pooled")
        m = self._sum / self.n
        var = np.maximum(self._sumsq / self.n - m * m, 0.0)
        return np.sqrt(var).astype(np.float32)


def downsample(frames: np.ndarray, factor: int) -> np.ndarray:
    """Average consecutive groups of ``factor`` frames (the last, shorter group is kept)."""
    if factor <= 1 or frames.shape[0] <= 1:
        return frames
    t, d = frames.shape
    full = (t // factor) * factor
    out = frames[:full].reshape(-1, factor, d).mean(axis=1)
    if full < t:
        out = np.concatenate([out, frames[full:].mean(axis=0, keepdims=True)], axis=0)
    return out.astype(frames.dtype, copy=False)


class Downsampler:
    """:func:`downsample` of a frame sequence fed in pieces: the groups run across piece boundaries.

    Example:
        >>> ds = Downsampler(2)
        >>> x = np.arange(5, dtype=np.float32)[:, None]
        >>> parts = [ds.push(x[:3]), ds.push(x[3:]), ds.finish()]  # finish: None if no rest
        >>> np.concatenate(parts)[:, 0].tolist() == downsample(x, 2)[:, 0].tolist()
        True
    """

    def __init__(self, factor: int):
        self.factor = max(1, int(factor))
        self._rest: np.ndarray | None = None

    def push(self, frames: np.ndarray) -> np.ndarray:
        """The complete groups so far (an incomplete group waits for the next piece)."""
        x = frames if self._rest is None else np.concatenate([self._rest, frames])
        full = (x.shape[0] // self.factor) * self.factor
        self._rest = x[full:]
        return downsample(x[:full], self.factor)

    def finish(self) -> np.ndarray | None:
        """The last, shorter group as one frame, or ``None`` if there is none."""
        rest, self._rest = self._rest, None
        if rest is None or rest.shape[0] == 0:
            return None
        return rest.mean(axis=0, keepdims=True).astype(rest.dtype, copy=False)

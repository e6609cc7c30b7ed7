"""Streaming pooling: exact mean/std over chunks, non-finite detection, frame downsampling."""

from __future__ import annotations

import numpy as np

from embedprobe.pipeline.pooling import RunningStats, downsample


def test_chunked_stats_equal_numpy_on_the_whole_sequence():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((1000, 16)) * 3 + 100).astype(np.float32)  # large offset, small spread
    rs = RunningStats(16)
    for part in np.array_split(x, 7):
        rs.update(part)
    np.testing.assert_allclose(rs.mean, x.astype(np.float64).mean(0), rtol=1e-6)
    np.testing.assert_allclose(rs.std, x.astype(np.float64).std(0), rtol=1e-4)
    assert rs.finite and rs.n == 1000


def test_non_finite_frames_are_detected():
    for bad in (np.nan, np.inf, -np.inf):
        rs = RunningStats(2)
        rs.update(np.ones((3, 2), np.float32))
        x = np.ones((2, 2), np.float32)
        x[1, 0] = bad
        rs.update(x)
        assert not rs.finite


def test_downsample_averages_groups_and_keeps_the_tail():
    x = np.arange(10, dtype=np.float32)[:, None]
    y = downsample(x, 4)
    assert y[:, 0].tolist() == [1.5, 5.5, 8.5]

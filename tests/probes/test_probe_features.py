"""FrameSet pooling, class-balanced sampling, hold-out, and the frame-level augmentations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embedprobe.errors import BadValueError
from embedprobe.probes.augment import frame_batch, mix_plan
from embedprobe.probes.features import FrameSet, pool_rows, segment_rows
from embedprobe.probes.sampling import BalancedSampler, SameClass, partners, stratified_holdout

torch.set_num_threads(1)


def _ragged(seed=0, n=30, d=5, dtype=np.float32):
    rng = np.random.default_rng(seed)
    clips = [rng.normal(size=(int(rng.integers(1, 9)), d)).astype(dtype) for _ in range(n)]
    return clips, FrameSet.from_list(clips)


def test_frameset_pooling_matches_numpy():
    clips, fs = _ragged()
    assert fs.shape == (30, 5) and fs.lengths.tolist() == [len(c) for c in clips]
    mean = np.stack([c.mean(axis=0) for c in clips])
    std = np.stack([c.std(axis=0) for c in clips])
    np.testing.assert_allclose(fs.pool("mean").numpy(), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fs.pool("mean+std").numpy(), np.c_[mean, std], rtol=1e-4, atol=1e-5)
    idx = np.array([7, 2, 2, 29])
    np.testing.assert_allclose(fs.pool("mean", idx, chunk=3).numpy(), mean[idx], rtol=1e-5, atol=1e-6)
    sub = fs[idx]
    assert len(sub) == 4 and torch.equal(sub.clip(0), torch.from_numpy(clips[7]))
    both = FrameSet.concat([fs, sub])
    np.testing.assert_allclose(both.pool()[30:].numpy(), mean[idx], rtol=1e-5, atol=1e-6)


def test_frameset_float16_pooled_in_float32():
    clips, fs = _ragged(dtype=np.float16)
    assert fs.frames.dtype == torch.float16
    pooled = fs.pool("mean")
    assert pooled.dtype == torch.float32
    np.testing.assert_allclose(pooled.numpy(), np.stack([c.astype(np.float32).mean(0) for c in clips]), atol=1e-3)


def test_frameset_rejects_bad_layout():
    with pytest.raises(BadValueError, match="offsets"):
        FrameSet(np.zeros((5, 2)), [0, 2, 4])
    with pytest.raises(BadValueError, match="clip length 0"):
        FrameSet(np.zeros((5, 2)), [0, 2, 2, 5])
    with pytest.raises(BadValueError, match="frames shape"):
        FrameSet(np.zeros(5), [0, 5])


def test_segment_rows_and_pool_rows():
    offsets = np.array([0, 2, 5, 6])
    rows, seg = segment_rows(offsets, np.array([2, 0, 1]))
    assert rows.tolist() == [5, 0, 1, 2, 3, 4] and seg.tolist() == [0, 1, 1, 2, 2, 2]
    x = torch.arange(6, dtype=torch.float32)[:, None]
    assert pool_rows(x, torch.tensor([0, 0, 1, 1, 1, 0]), 2).flatten().tolist() == [2.0, 3.0]  # (0+1+5)/3, (2+3+4)/3


@pytest.mark.parametrize("balance", ["class", "class_group", "none"])
def test_balanced_sampler_on_imbalanced_data(balance):
    y = np.repeat([0, 1, 2, 3], [900, 60, 30, 10])
    groups = np.tile([0, 1], 500)
    groups[y == 3] = 1  # class 3 only exists in group 1
    s = BalancedSampler(y, groups=groups, balance=balance, rng=np.random.default_rng(0))
    draws = s.draw(40000)
    share = np.bincount(y[draws], minlength=4) / draws.size
    if balance == "none":
        np.testing.assert_allclose(share, [0.9, 0.06, 0.03, 0.01], atol=0.01)
    else:
        np.testing.assert_allclose(share, 0.25, atol=0.01)
    if balance == "class_group":  # within class 0, both corpora equally often
        g0 = groups[draws[y[draws] == 0]]
        assert abs(g0.mean() - 0.5) < 0.02
    first, again = (BalancedSampler(y, groups=groups, balance=balance, rng=np.random.default_rng(7)).draw(100)
                    for _ in range(2))
    assert np.array_equal(first, again)


def test_sampler_rejects_unknown_balance():
    with pytest.raises(BadValueError, match="'classes'.*class_group"):
        BalancedSampler(np.zeros(3), balance="classes", rng=np.random.default_rng(0))


def test_stratified_holdout():
    y = np.repeat([0, 1, 2], [100, 20, 1])
    tr, va = stratified_holdout(y, 0.15, np.random.default_rng(0))
    assert np.intersect1d(tr, va).size == 0 and np.union1d(tr, va).size == y.size
    assert np.bincount(y[va], minlength=3).tolist() == [15, 3, 0]  # the singleton stays in train
    tr2, va2 = stratified_holdout(y, 0.15, np.random.default_rng(0))
    assert np.array_equal(va, va2)


def test_mixing_never_mixes_classes():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    idx = rng.integers(0, 200, 64)
    assert np.array_equal(y[partners(y, idx, rng)], y[idx])
    clips, owner = mix_plan(y, idx, 0.5, rng)
    assert np.array_equal(clips[:64], idx) and np.array_equal(owner[:64], np.arange(64))
    assert 10 < clips.size - 64 < 54  # about half were mixed
    assert np.array_equal(y[clips], y[idx[owner]])
    pool = np.arange(0, 200, 2)  # e.g. the training clips: held-out clips are never partners
    sc = SameClass(y, pool)
    clips, owner = mix_plan(y, pool[:64], 1.0, rng, sc)
    assert np.all(np.isin(clips, pool)) and np.array_equal(y[clips], y[clips[owner]])
    with pytest.raises(BadValueError, match="class without pool members"):
        SameClass(np.r_[y, 9], pool).draw(np.array([200]), rng)


def test_frame_batch_shapes_and_same_label_pooling():
    # every frame of a class-c clip holds the value c: a pooled value != c would betray a mix
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 50)
    lens = rng.integers(1, 12, 50)
    frames = np.repeat(y, lens).astype(np.float32)[:, None] * np.ones((1, 3), np.float32)
    fs = FrameSet(frames, np.r_[0, np.cumsum(lens)])
    idx = rng.integers(0, 50, 32)
    out = frame_batch(fs, idx, y, frame_mask=0.5, mix_prob=1.0, pooling="mean", rng=rng)
    assert out.shape == (32, 3)
    np.testing.assert_allclose(out[:, 0].numpy(), y[idx])
    wide = frame_batch(fs, idx, y, frame_mask=0.0, mix_prob=0.0, pooling="mean+std", rng=rng)
    assert wide.shape == (32, 6)
    np.testing.assert_allclose(wide.numpy(), fs.pool("mean+std", idx).numpy(), atol=1e-6)


def test_frame_masking_keeps_a_subset():
    rng = np.random.default_rng(2)
    lens = np.full(40, 10)
    frames = np.tile(np.arange(10, dtype=np.float32), 40)[:, None]  # clip frames 0..9, mean 4.5
    fs = FrameSet(frames, np.r_[0, np.cumsum(lens)])
    y = np.zeros(40, dtype=int)
    idx = np.arange(40)
    out = frame_batch(fs, idx, y, frame_mask=0.5, mix_prob=0.0, pooling="mean", rng=rng)[:, 0].numpy()
    assert np.all((out >= 0) & (out <= 9)) and np.std(out) > 0.3  # random subsets, not the full mean
    nearly_all = frame_batch(fs, idx, y, frame_mask=0.999, mix_prob=0.0, pooling="mean", rng=rng)
    assert torch.isfinite(nearly_all).all()  # a clip always keeps at least one frame
    assert set(np.unique(nearly_all.numpy())) <= set(range(10))

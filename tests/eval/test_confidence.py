"""Confidence figures: last 20% of training, spread over seeds, seeded vectorised bootstrap."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from embedprobe.common import metrics as M
from embedprobe.errors import BadValueError
from embedprobe.eval import confidence as C


def _history():
    # 10 evaluations at steps 100..1000; val AUROC rises then plateaus
    vals = [0.60, 0.70, 0.75, 0.78, 0.80, 0.80, 0.81, 0.80, 0.82, 0.78]
    return [{"step": 100 * (i + 1), "loss": 1.0,
             "metrics": {"val": {"auroc": v, "acc": 0.5}, "iemocap": {"auroc": v - 0.1, "acc": 0.4}}}
            for i, v in enumerate(vals)]


def test_last_fraction_known_history():
    out = C.last_fraction(_history(), metrics=["auroc", "acc"])
    # last 20% of 1000 steps = steps 900 and 1000 -> 0.82, 0.78
    assert out["auroc"].n == 2
    assert out["auroc"].mean == pytest.approx(0.80)
    assert out["auroc"].std == pytest.approx(np.std([0.82, 0.78], ddof=1))
    assert out["acc"].std == 0.0
    test = C.last_fraction(_history(), split="iemocap", metrics=["auroc"], fraction=0.5)
    assert test["auroc"].n == 5  # steps 600..1000
    assert test["auroc"].mean == pytest.approx(np.mean([0.80, 0.81, 0.80, 0.82, 0.78]) - 0.1)


def test_last_fraction_errors_and_single_eval():
    with pytest.raises(BadValueError, match="'crema'.*iemocap.*val"):
        C.last_fraction(_history(), split="crema")
    with pytest.raises(BadValueError, match="fraction 0"):
        C.last_fraction(_history(), fraction=0)
    one = C.last_fraction(_history()[:1], metrics=["auroc"])["auroc"]
    assert one.n == 1 and one.mean == pytest.approx(0.6) and math.isnan(one.std)


def test_over_seeds_drops_nan_and_serialises():
    s = C.over_seeds([0.80, 0.82, float("nan"), 0.84])
    assert (s.n, s.mean) == (3, pytest.approx(0.82))
    assert s.std == pytest.approx(0.02)
    assert json.loads(json.dumps(s.to_dict())) == pytest.approx({"mean": 0.82, "std": 0.02, "n": 3})


def test_bootstrap_weights_are_resample_counts():
    w = C.bootstrap_weights(50, 7, np.random.default_rng(0))
    assert w.shape == (7, 50) and np.all(w.sum(axis=1) == 50) and np.all(w >= 0)


def test_bootstrap_batch_equals_loop_over_resamples():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 60)
    p = rng.random((60, 4))
    idx = np.random.default_rng(9).integers(0, 60, (5, 60))
    w = np.stack([np.bincount(i, minlength=60) for i in idx]).astype(float)
    batch = M.metrics_batch(y, p, w)
    for b in range(5):
        for m in M.METRICS:
            single = M.metrics_batch(y[idx[b]], p[idx[b]], None, [m])[m][0]
            assert batch[m][b] == pytest.approx(single, abs=1e-12)


def _two_gaussians(n, seed):
    # positives ~ N(1, 1), negatives ~ N(0, 1): population AUROC = Phi(1 / sqrt 2)
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    s = rng.normal(0.0, 1.0, n) + y
    return y, np.c_[-s, s]


def test_bootstrap_covers_truth_and_is_deterministic():
    from scipy.stats import norm

    truth = norm.cdf(1 / np.sqrt(2))
    y, p = _two_gaussians(2000, seed=3)
    ci = C.bootstrap_ci(y, p, metrics=["auroc", "acc"], n_resamples=500, random_state=0)
    a = ci["auroc"]
    assert a.low < a.point < a.high and a.low <= truth <= a.high
    assert a.n_valid == 500 and a.level == 0.95
    assert 0.01 < a.high - a.low < 0.06
    again = C.bootstrap_ci(y, p, metrics=["auroc", "acc"], n_resamples=500, random_state=0)
    assert again == ci
    other = C.bootstrap_ci(y, p, metrics=["auroc"], n_resamples=500, random_state=1)["auroc"]
    assert (other.low, other.high) != (a.low, a.high)
    small = C.bootstrap_ci(*_two_gaussians(200, seed=3), metrics=["auroc"], n_resamples=500)["auroc"]
    assert small.high - small.low > a.high - a.low  # fewer clips, wider interval
    assert json.loads(json.dumps(a.to_dict()))["method"] == "percentile"


def test_bootstrap_bad_level():
    with pytest.raises(BadValueError, match="level 95"):
        C.bootstrap_ci(np.array([0, 1]), np.eye(2), level=95)


def test_fold_bootstrap_brackets_the_fold_mean():
    """Folds whose scores differ: the interval is around their mean, not around the pooled score."""
    import numpy as np

    from embedprobe.common.metrics import auroc
    from embedprobe.eval.confidence import bootstrap_ci, fold_bootstrap_ci

    rng = np.random.default_rng(0)
    folds = []
    for shift in (0.0, 3.0):  # same separability, different score offsets per fold
        y = np.repeat([0, 1], 60)
        s = rng.normal(0, 1, 120) + 1.5 * y + shift
        folds.append((y, np.stack([-s, s], axis=1)))
    ci = fold_bootstrap_ci(folds, metrics=["auroc"], n_resamples=400)["auroc"]
    mean = np.mean([auroc(y, p) for y, p in folds])
    assert abs(ci.point - mean) < 1e-12 and ci.low <= mean <= ci.high
    pooled_y = np.concatenate([f[0] for f in folds])
    pooled_p = np.concatenate([f[1] for f in folds])
    pooled = bootstrap_ci(pooled_y, pooled_p, metrics=["auroc"], n_resamples=400)["auroc"]
    assert pooled.point < mean - 0.05  # pooling folds with offsets understates the fold mean
    one = fold_bootstrap_ci(folds[:1], metrics=["auroc"], n_resamples=200)["auroc"]
    assert one == bootstrap_ci(*folds[0], metrics=["auroc"], n_resamples=200)["auroc"]

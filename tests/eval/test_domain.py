"""Fréchet distance (closed forms, symmetry, N < D) and the corpus-identifiability probe."""

from __future__ import annotations

import numpy as np
import pytest

from embedprobe.errors import BadValueError
from embedprobe.eval.domain import (
    domain_gap,
    frechet_distance,
    frechet_from_stats,
    gaussian_stats,
    identifiability,
)


def _gauss(n: int, d: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)) * scale
    x[:, 0] += shift
    return x


def _reference_fd(a: np.ndarray, b: np.ndarray) -> float:
    """The usual FID code path (scipy.linalg.sqrtm), as an independent check."""
    from scipy.linalg import sqrtm

    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = np.real(sqrtm(ca @ cb))
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(ca + cb - 2 * covmean))


def test_closed_forms_of_gaussians():
    rng = np.random.default_rng(0)
    m = rng.standard_normal((5, 5))
    cov = m @ m.T + np.eye(5)
    mu_a, mu_b = rng.standard_normal(5), rng.standard_normal(5)
    # equal covariances: FD is the squared distance of the means
    fd = frechet_from_stats(mu_a, cov, mu_b, cov)
    assert fd["frechet"] == pytest.approx(np.sum((mu_a - mu_b) ** 2), rel=1e-9)
    assert fd["cov_term"] == pytest.approx(0.0, abs=1e-9)
    # commuting (diagonal) covariances: sum of (sd_a - sd_b)^2
    sa, sb = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    fd = frechet_from_stats(np.zeros(3), np.diag(sa), np.ones(3), np.diag(sb))
    assert fd["frechet"] == pytest.approx(3 + np.sum((np.sqrt(sa) - np.sqrt(sb)) ** 2), rel=1e-9)


def test_samples_identical_shifted_and_symmetric():
    a = _gauss(4000, 4, 0)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    same = frechet_distance(a, _gauss(4000, 4, 1))
    assert same < 0.02
    fds = [frechet_distance(a, _gauss(4000, 4, 2, shift=s)) for s in (0.5, 1.0, 2.0, 4.0)]
    assert fds == sorted(fds) and same < fds[0]
    for s, fd in zip((0.5, 1.0, 2.0, 4.0), fds, strict=True):
        assert fd == pytest.approx(s**2, abs=0.05 + 0.02 * s**2)  # ||mu_a - mu_b||^2
    b = _gauss(3000, 4, 3, shift=1.0, scale=2.0)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-10)
    assert frechet_distance(a, b, shrinkage="none") == pytest.approx(_reference_fd(a, b), rel=1e-6)


def test_fewer_rows_than_dimensions_uses_shrinkage():
    a, b = _gauss(40, 100, 0), _gauss(40, 100, 1)
    plain = frechet_distance(a, b, shrinkage="none")
    shrunk = frechet_distance(a, b)  # auto -> Ledoit-Wolf since N <= D
    assert np.isfinite(shrunk) and 0 <= shrunk < plain / 3
    assert frechet_distance(a, b + 1.0) > shrunk + 50  # a shift of 1 in 100 dims: +100
    _, cov, alpha = gaussian_stats(a, shrinkage="ledoit-wolf")
    assert 0 < alpha <= 1 and np.linalg.eigvalsh(cov).min() > 0  # well-conditioned
    rows = domain_gap({"a": a, "b": b, "c": b + 1.0})
    assert [(r["a"], r["b"]) for r in rows] == [("a", "b"), ("a", "c"), ("b", "c")]
    assert {r["shrinkage"] for r in rows} == {"ledoit-wolf"}
    assert rows[2]["mean_term"] == pytest.approx(100.0) and rows[2]["cov_term"] == pytest.approx(0, abs=1e-8)
    total_var = np.trace(gaussian_stats(b, shrinkage="ledoit-wolf")[1])  # same for b and b + 1
    assert rows[2]["frechet_norm"] == pytest.approx(100.0 / total_var)


def test_domain_gap_norm_is_scale_free_and_errors_name_the_value():
    x, y = _gauss(500, 6, 0), _gauss(500, 6, 1, shift=2.0)
    r1, r10 = domain_gap({"x": x, "y": y})[0], domain_gap({"x": 10 * x, "y": 10 * y})[0]
    assert r10["frechet"] == pytest.approx(100 * r1["frechet"], rel=1e-9)
    assert r10["frechet_norm"] == pytest.approx(r1["frechet_norm"], rel=1e-9)
    with pytest.raises(BadValueError, match="feature widths"):
        frechet_distance(x, x[:, :3])
    with pytest.raises(BadValueError, match="shrinkage 'tiny'"):
        frechet_distance(x, y, shrinkage="tiny")
    with pytest.raises(BadValueError, match="at least two corpora"):
        domain_gap({"x": x})
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(BadValueError, match="NaN"):
        frechet_distance(bad, y)


def test_identifiability_chance_for_one_distribution_and_one_for_shifted():
    same = identifiability({"a": _gauss(300, 8, 0), "b": _gauss(300, 8, 1)}, seed=0)
    assert same["chance"] == {"balanced_accuracy": 0.5, "auroc": 0.5}
    assert abs(same["balanced_accuracy"] - 0.5) < 0.12 and abs(same["auroc"] - 0.5) < 0.12
    assert same["split"] == "stratified" and same["n_test"] == {"a": 90, "b": 90}
    far = identifiability({"a": _gauss(300, 8, 0), "b": _gauss(200, 8, 1, shift=8.0),
                           "c": _gauss(100, 8, 2, shift=-8.0)}, seed=0)
    assert far["balanced_accuracy"] > 0.97 and far["auroc"] > 0.99
    assert np.array(far["confusion"]).shape == (3, 3) and far["chance"]["balanced_accuracy"] == 1 / 3
    assert np.array(far["confusion"]).sum(1).tolist() == list(far["n_test"].values())
    assert far["balanced_accuracy"] == pytest.approx(np.mean(list(far["per_corpus_recall"].values())))


def test_speaker_disjoint_split_removes_speaker_leakage():
    # no corpus effect at all, only speaker clusters: a clip split lets the probe recognise
    # the speakers it saw in training; held-out speakers leave it at chance
    rng = np.random.default_rng(0)
    feats, groups = {}, {}
    for c in ("a", "b"):
        centres = rng.normal(0, 3, (20, 64))  # 40 random centres are linearly separable in 64-d
        spk = np.repeat(np.arange(20), 30)
        feats[c], groups[c] = centres[spk] + rng.standard_normal((600, 64)), spk
    leaky = identifiability(feats, seed=0)
    fair = identifiability(feats, groups=groups, seed=0)
    assert leaky["balanced_accuracy"] > 0.95
    assert fair["split"] == "speaker-disjoint" and fair["n_test"] == {"a": 180, "b": 180}
    assert fair["balanced_accuracy"] < 0.7
    with pytest.raises(BadValueError, match="speakers of a"):
        identifiability(feats, groups={"a": np.zeros(600), "b": groups["b"]})


def test_identifiability_with_the_torch_linear_probe():
    import torch

    torch.set_num_threads(1)
    res = identifiability({"a": _gauss(150, 8, 0), "b": _gauss(150, 8, 1, shift=4.0)}, probe="linear")
    assert res["probe"] == "linear" and res["balanced_accuracy"] > 0.95
    with pytest.raises(BadValueError, match="identifiability probe"):
        identifiability({"a": _gauss(20, 2, 0), "b": _gauss(20, 2, 1)}, probe="no-such-probe")

"""Probe behaviour: learning, determinism, early stopping, history, frame input, refusals, tuning."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone

from embedprobe.common.metrics import METRICS, auroc
from embedprobe.errors import BadValueError
from embedprobe.eval.confidence import last_fraction
from embedprobe.probes import PROBES, FrameSet, create, get_class, tune
from embedprobe.probes.linear import LinearProbe
from embedprobe.probes.mlp import MLPProbe

torch.set_num_threads(1)
FAST = dict(max_steps=400, eval_every=20, patience=3, batch_size=64)
PROBE_CLASSES = [LinearProbe, MLPProbe]


def _blobs(n=600, d=16, sep=2.5, seed=0, k=4, priors=None):
    centers = np.random.default_rng(100).normal(0, 1, (k, d))  # the same problem for every seed
    rng = np.random.default_rng(seed)
    y = rng.choice(k, size=n, p=priors)
    centers *= sep / np.linalg.norm(centers, axis=1, keepdims=True)
    X = centers[y] + rng.normal(0, 1, (n, d)) + 5.0  # an offset the standardisation must remove
    labels = np.array(["angry", "happy", "neutral", "sad"])[y]
    return X.astype(np.float32), labels


def _frames(X, seed=0, t_max=6):
    """Frames whose mean is exactly the pooled vector."""
    rng = np.random.default_rng(seed)
    clips = []
    for x in X:
        t = int(rng.integers(1, t_max + 1))
        noise = rng.normal(0, 1, (t, X.shape[1])).astype(np.float32)
        clips.append(x + noise - noise.mean(axis=0))
    return FrameSet.from_list(clips)


@pytest.mark.parametrize("cls", PROBE_CLASSES)
def test_learns_a_separable_problem(cls):
    X, y = _blobs(sep=4.0)
    Xt, yt = _blobs(sep=4.0, seed=1)
    probe = cls(random_state=0, **FAST).fit(X, y)
    proba = probe.predict_proba(Xt)
    assert proba.shape == (len(yt), 4) and np.allclose(proba.sum(axis=1), 1.0)
    codes = np.searchsorted(probe.classes_, yt)
    assert probe.classes_.tolist() == ["angry", "happy", "neutral", "sad"]
    assert auroc(codes, proba) > 0.95
    assert set(probe.predict(Xt)) <= set(probe.classes_)


@pytest.mark.parametrize("cls", PROBE_CLASSES)
def test_deterministic_given_random_state(cls):
    X, y = _blobs(sep=1.0)
    kw = dict(random_state=3, noise_std=0.2, **FAST)
    a, b = cls(**kw).fit(X, y), cls(**kw).fit(X, y)
    assert np.array_equal(a.predict_proba(X), b.predict_proba(X))
    assert a.history_ == b.history_
    c = cls(**{**kw, "random_state": 4}).fit(X, y)
    assert not np.array_equal(a.predict_proba(X), c.predict_proba(X))


def test_global_torch_rng_untouched():
    X, y = _blobs(n=200)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    MLPProbe(random_state=0, **FAST).fit(X, y)
    assert torch.equal(torch.rand(3), expected)


def test_history_early_stopping_and_best_weights():
    X, y = _blobs(sep=6.0)  # AUROC reaches ~1 at once: a plateau
    Xt, yt = _blobs(sep=6.0, seed=2)
    probe = LinearProbe(random_state=0, max_steps=5000, eval_every=20, patience=3, n_lr_drops=1)
    probe.fit(X, y, eval_sets={"test": (Xt, yt)})
    assert probe.stopped_early_ and probe.n_steps_ < 5000 and probe.n_lr_drops_ == 1
    h = probe.history_
    assert [e["step"] for e in h] == list(range(20, probe.n_steps_ + 1, 20))
    assert set(h[0]["metrics"]) == {"val", "test"} and set(h[0]["metrics"]["val"]) == set(METRICS)
    assert probe.best_step_ in [e["step"] for e in h]
    assert h[-1]["lr"] == pytest.approx(probe.lr * probe.lr_decay)
    best = next(e for e in h if e["step"] == probe.best_step_)
    assert best["metrics"]["val"]["auroc"] == pytest.approx(probe.best_score_)
    # the kept weights are the best step's: the test score recorded then is what predict gives
    codes = np.searchsorted(probe.classes_, yt)
    assert auroc(codes, probe.predict_proba(Xt)) == pytest.approx(best["metrics"]["test"]["auroc"], abs=1e-6)
    assert last_fraction(h, split="test")["auroc"].n >= 1
    assert probe.n_val_ == pytest.approx(0.15 * len(y), abs=4) and probe.n_train_ + probe.n_val_ == len(y)


def test_explicit_validation_and_no_validation():
    X, y = _blobs()
    p = LinearProbe(random_state=0, **FAST).fit(X[:400], y[:400], X_val=X[400:], y_val=y[400:])
    assert p.n_train_ == 400 and p.n_val_ == 200
    q = LinearProbe(random_state=0, val_fraction=0.0, max_steps=60, eval_every=20).fit(X, y)
    assert q.n_steps_ == 60 and q.best_step_ == 60 and not q.stopped_early_
    assert all("val" not in e["metrics"] for e in q.history_)


def test_frame_input_and_pooled_equivalence():
    X, y = _blobs(n=300)
    fs = _frames(X)
    p = MLPProbe(random_state=0, **FAST).fit(fs, y)
    assert p.frame_dim_ == 16 and p.n_features_in_ == 16
    np.testing.assert_allclose(p.predict_proba(fs), p.predict_proba(X), atol=1e-5)
    aug = MLPProbe(random_state=0, frame_mask=0.3, mix_prob=0.5, noise_std=0.1, **FAST).fit(fs, y)
    assert auroc(np.searchsorted(aug.classes_, y), aug.predict_proba(fs)) > 0.9
    wide = LinearProbe(random_state=0, pooling="mean+std", **FAST).fit(fs, y)
    assert wide.n_features_in_ == 32 and wide.predict_proba(fs).shape == (300, 4)
    with pytest.raises(BadValueError, match="number of features 16"):
        wide.predict_proba(X)


def test_frame_augmentations_refused_on_pooled_input():
    X, y = _blobs(n=100)
    for kw in ({"frame_mask": 0.3}, {"mix_prob": 0.5}):
        with pytest.raises(BadValueError, match=r"pooled \(N, D\) input.*embedprobe extract \.\.\. --frames"):
            LinearProbe(**kw).fit(X, y)
    LinearProbe(noise_std=0.1, max_steps=20).fit(X, y)  # noise works on pooled vectors


def test_groups_and_class_group_balance():
    X, y = _blobs(n=400)
    groups = np.repeat(["iemocap", "crema"], 200)
    p = LinearProbe(random_state=0, balance="class_group", **FAST).fit(X, y, groups=groups)
    assert p.n_steps_ > 0
    with pytest.raises(BadValueError, match="groups"):
        LinearProbe(balance="class_group").fit(X, y)


def test_bad_params_and_labels_are_named():
    X, y = _blobs(n=100)
    with pytest.raises(BadValueError, match="'wacc'.*auroc"):
        LinearProbe(monitor="wacc").fit(X, y)
    with pytest.raises(BadValueError, match="pooling 'max'"):
        LinearProbe(pooling="max").fit(X, y)
    with pytest.raises(BadValueError, match="'val' is reserved"):
        LinearProbe(**FAST).fit(X, y, eval_sets={"val": (X[:2], y[:2])})
    with pytest.raises(ValueError, match="at least 2 classes"):
        LinearProbe().fit(X, np.full(len(X), "sad"))


def test_labels_unseen_in_training_are_scored_with_probability_zero():
    X, y = _blobs(n=300)
    keep = y != "sad"
    with pytest.warns(UserWarning, match=r"never seen in training: \['sad'\]"):
        p = LinearProbe(random_state=0, **FAST).fit(X[keep], y[keep], eval_sets={"all": (X, y)})
    assert p.classes_.tolist() == ["angry", "happy", "neutral"]
    assert p.eval_classes_.tolist() == ["angry", "happy", "neutral", "sad"]
    proba = np.c_[p.predict_proba(X), np.zeros(len(y))]
    codes = np.searchsorted(p.eval_classes_, y)
    best = next(e for e in p.history_ if e["step"] == p.best_step_)
    assert best["metrics"]["all"]["auroc"] == pytest.approx(auroc(codes, proba), abs=1e-6)


def test_registry_clone_and_pickle():
    assert sorted(PROBES.names()) == ["linear", "logreg", "mlp", "svm"]
    assert get_class("linear") is LinearProbe and get_class("mlp") is MLPProbe
    with pytest.raises(BadValueError, match="'cosine'.*linear.*logreg.*mlp.*svm"):
        create("cosine")
    p = create("mlp", random_state=0, hidden=(8,), **FAST)
    assert clone(p).get_params() == p.get_params()
    X, y = _blobs(n=200)
    p.fit(X, y)
    q = pickle.loads(pickle.dumps(p))
    assert np.array_equal(q.predict_proba(X), p.predict_proba(X))


def test_tune_is_deterministic_and_picks_the_best():
    X, y = _blobs(n=300, sep=1.5)
    base = LinearProbe(random_state=0, max_steps=100, eval_every=20, patience=2)
    r1 = tune(base, X, y, lrs=(1e-4, 1e-2), batch_sizes=(16, 64))
    r2 = tune(base, X, y, lrs=(1e-4, 1e-2), batch_sizes=(16, 64))
    assert [r["score"] for r in r1.results] == [r["score"] for r in r2.results]
    assert len(r1.results) == 4 and r1.best_score == max(r["score"] for r in r1.results)
    assert r1.best_estimator.lr == r1.best_params["lr"] and hasattr(r1.best_estimator, "history_")
    assert r1.to_dict()["metric"] == "auroc"
    with pytest.raises(BadValueError, match="tuning grid"):
        tune(base, X, y, lrs=())


def test_augmented_copies_replace_clips_at_the_given_rate():
    """aug_rate=0 ignores the copies; 1.0 trains only on them; copies must be aligned with X."""
    import numpy as np
    import pytest

    from embedprobe.errors import BadValueError
    from embedprobe.probes import create

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 50)
    X = rng.standard_normal((200, 8)).astype(np.float32) + y[:, None] * 1.5
    flipped = X.copy()
    flipped[:, 0] *= -1  # copies whose first feature points the other way: a different task
    kw = dict(max_steps=300, eval_every=50, random_state=0)
    plain = create("linear", **kw).fit(X, y)
    zero = create("linear", **kw).fit(X, y, X_aug=[flipped], aug_rate=0.0)
    np.testing.assert_allclose(plain.predict_proba(X), zero.predict_proba(X))
    full = create("linear", **kw).fit(X, y, X_aug=[flipped], aug_rate=1.0)
    half = create("linear", **kw).fit(X, y, X_aug=[flipped, X], aug_rate=0.5)
    from embedprobe.common.metrics import auroc

    # trained only on the copies, the probe is better on copy-like data than the plain one
    assert auroc(y, full.predict_proba(flipped)) > auroc(y, plain.predict_proba(flipped)) + 0.01
    assert not np.allclose(half.predict_proba(X), full.predict_proba(X))
    with pytest.raises(BadValueError, match="aligned"):
        create("linear", **kw).fit(X, y, X_aug=[flipped[:10]], aug_rate=0.5)
    with pytest.raises(BadValueError, match="--augment"):
        create("linear", **kw).fit(X, y, aug_rate=0.5)

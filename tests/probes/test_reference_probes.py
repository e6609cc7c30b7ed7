"""The scikit-learn reference probes ``logreg`` and ``svm``: validation-only choice, determinism,
the one-evaluation history the matrix runner reads, and a run through the matrix itself."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from embedprobe.errors import BadValueError
from embedprobe.eval.confidence import last_fraction
from embedprobe.eval.data import CorpusData
from embedprobe.eval.domain import identifiability
from embedprobe.eval.runner import MatrixSpec, run_matrix
from embedprobe.pipeline.probe import ProbeConfig, check_config
from embedprobe.probes import FrameSet, create
from embedprobe.probes.logreg import C_GRID

REFERENCE = ["logreg", "svm"]


def _blobs(n=240, d=5, k=4, shift=1.5, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    centres = rng.normal(0, shift, (k, d))
    return centres[y] + rng.normal(0, 1, (n, d)), y


@pytest.mark.parametrize("name", REFERENCE)
def test_choice_uses_the_validation_part_only_and_seeds_agree(name):
    X, y = _blobs()
    Xv, yv = _blobs(n=80, seed=0)
    Xt, yt = _blobs(n=80, seed=7)
    a = create(name, random_state=0).fit(X, y, X_val=Xv, y_val=yv)
    # a test set in eval_sets is scored, never used: same choice, same model
    b = create(name, random_state=0).fit(X, y, X_val=Xv, y_val=yv, eval_sets={"test:t": (Xt, yt[::-1])})
    assert a.best_params_ == b.best_params_
    np.testing.assert_array_equal(a.predict_proba(Xt), b.predict_proba(Xt))
    # the choice is the first candidate of highest validation UAR (ties to the smaller C)
    scores = [s for _, s in a.val_scores_]
    assert a.best_params_ == a.val_scores_[int(np.argmax(scores))][0] and a.best_score_ == max(scores)
    assert [p["C"] for p, _ in a.val_scores_][:: 3 if name == "svm" else 1] == list(C_GRID)
    # deterministic: another seed, the same model
    c = create(name, random_state=5).fit(X, y, X_val=Xv, y_val=yv)
    np.testing.assert_array_equal(a.predict_proba(Xt), c.predict_proba(Xt))


@pytest.mark.parametrize("name", REFERENCE)
def test_logloss_choice_is_the_lowest_validation_cross_entropy(name):
    from sklearn.metrics import log_loss

    X, y = _blobs(shift=1.0)
    Xv, yv = _blobs(n=80, shift=1.0, seed=0)
    Xv = Xv + np.random.default_rng(1).normal(0, 1, Xv.shape)  # unlike training: the criteria can differ
    p = create(name, select="logloss", random_state=0).fit(X, y, X_val=Xv, y_val=yv)
    losses = []
    for params, score in p.val_scores_:
        q = create(name, Cs=(params["C"],), random_state=0, **({"gammas": (params["gamma"] * X.shape[1],)}
                                                              if name == "svm" else {}))
        q.fit(X, y, X_val=Xv, y_val=yv)
        losses.append(log_loss(yv, q.predict_proba(Xv)))
        assert score == pytest.approx(-losses[-1])
    assert p.best_params_ == p.val_scores_[int(np.argmin(losses))][0] and p.best_score_ == pytest.approx(-min(losses))
    with pytest.raises(BadValueError, match="select"):
        create(name, select="auroc").fit(X, y)


def test_ties_go_to_the_simplest_candidate():
    X, y = _blobs(shift=20.0)  # separable: every C scores UAR 1 on validation
    Xv, yv = _blobs(n=80, shift=20.0)
    p = create("logreg").fit(X, y, X_val=Xv, y_val=yv)
    assert all(s == 1.0 for _, s in p.val_scores_) and p.best_params_ == {"C": min(C_GRID)}


@pytest.mark.parametrize("name", REFERENCE)
def test_history_is_one_final_evaluation(name):
    X, y = _blobs()
    Xv, yv = _blobs(n=80)
    Xt, yt = _blobs(n=80, seed=3)
    p = create(name, random_state=0).fit(X, y, X_val=Xv, y_val=yv, eval_sets={"test:t": (Xt, yt)})
    assert len(p.history_) == 1 and p.n_steps_ == p.best_step_ == 1 and not p.stopped_early_
    assert set(p.history_[0]["metrics"]) == {"val", "test:t"}
    assert p.history_[0]["metrics"]["val"]["uacc"] == pytest.approx(p.best_score_)
    tail = last_fraction(p.history_, split="test:t")
    acc = float((p.predict(Xt) == yt).mean())
    assert tail["acc"].mean == pytest.approx(acc) and np.isnan(tail["acc"].std)  # one value, no spread
    assert p.fit_time_ > 0 and p.n_threads_ >= 1 and p.prediction_threads(10) >= 1


@pytest.mark.parametrize("name", REFERENCE)
def test_without_validation_holds_out_and_keeps_the_validated_model(name):
    X, y = _blobs()
    p = create(name, random_state=0).fit(X, y)
    assert p.val_scores_ and np.isfinite(p.best_score_)
    q = create(name, val_fraction=0.0).fit(X, y)
    assert q.val_scores_ == [] and np.isnan(q.best_score_) and q.best_params_["C"] == 1.0


@pytest.mark.parametrize("name", REFERENCE)
def test_frames_labels_unseen_and_refusals(name):
    rng = np.random.default_rng(0)
    X, y = _blobs(n=120, d=3)
    fs = FrameSet.from_list([x + rng.normal(0, 0.1, (int(rng.integers(2, 6)), 3)) for x in X])
    labels = np.array(["angry", "happy", "neutral", "sad"])[y]
    p = create(name, random_state=0, pooling="mean+std").fit(fs, labels, X_val=fs[:40], y_val=labels[:40])
    assert p.n_features_in_ == 6 and p.frame_dim_ == 3 and p.predict_proba(fs[:5]).shape == (5, 4)
    # a label never seen in training is scored with probability 0, as the torch probes do
    q = create(name, random_state=0).fit(X[y < 3], y[y < 3], X_val=X[:40], y_val=y[:40])
    assert q.classes_.tolist() == [0, 1, 2] and "uacc" in q.history_[0]["metrics"]["val"]
    with pytest.raises(BadValueError, match="aug_rate"):
        create(name).fit(X, y, X_aug=[X], aug_rate=0.5)
    with pytest.raises(BadValueError, match="Cs"):
        create(name, Cs=(0.0,)).fit(X, y)


def test_svm_pickles_and_predicts_after_a_read_only_load():
    X, y = _blobs()
    p = create("svm", random_state=0).fit(X, y)
    q = pickle.loads(pickle.dumps(p))
    np.testing.assert_array_equal(q.predict_proba(X), p.predict_proba(X))
    assert set(p.best_params_) == {"C", "gamma"}


def _corpus(n_speakers=5, per=24, seed=0) -> CorpusData:
    X, y = _blobs(n=n_speakers * per, d=6, seed=seed)
    speakers = np.repeat([f"s{i}" for i in range(n_speakers)], per)
    parts, folds = {}, []
    for f in range(n_speakers):
        part = np.full(len(y), "train", dtype=object)
        part[speakers == f"s{f}"] = "test"
        part[speakers == f"s{(f + 1) % n_speakers}"] = "val"
        parts[f"speaker/{f}"] = part.astype(str)
        folds.append(f"speaker/{f}")
    return CorpusData("syn", np.array([f"c{i}" for i in range(len(y))]), y, speakers, X, parts, folds, "speaker")


@pytest.mark.parametrize("name", REFERENCE)
def test_matrix_runs_them_and_seeds_give_no_spread(name):
    spec = MatrixSpec(train_sets=(("syn",),), tests=("syn",), probe=name, seeds=(0, 1), n_bootstrap=20)
    (cell,) = run_matrix({"syn": _corpus()}, spec)
    m = cell["metrics"]
    assert cell["n_folds"] == 5 and cell["mean_steps"] == 1 and m["uacc"]["mean"] > 0.5
    assert m["uacc"]["last20_mean"] == pytest.approx(m["uacc"]["mean"])
    assert cell["deterministic"] and m["uacc"]["seeds"]["std"] < 1e-12  # seeds agree (up to rounding)


@pytest.mark.parametrize("name", REFERENCE)
def test_domain_identifiability_accepts_them(name):
    rng = np.random.default_rng(0)
    feats = {"a": rng.normal(0, 1, (60, 4)), "b": rng.normal(1.5, 1, (60, 4))}
    out = identifiability(feats, probe=name, seed=0, threads=1)
    assert out["auroc"] > 0.8


def test_tune_is_refused_for_them():
    check_config(ProbeConfig(model="egemaps", cache_dir="cache", train=("emodb",), probe="linear", tune=True))
    with pytest.raises(BadValueError, match="--tune.*drop --tune"):
        check_config(ProbeConfig(model="egemaps", cache_dir="cache", train=("emodb",), probe="svm", tune=True))

"""Metrics: a hand-computed golden case, identities, edge cases, agreement with scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from embedprobe.common import metrics as M
from embedprobe.errors import BadValueError

# Golden case, worked by hand (see the comments): 3 classes, 6 clips, one tie per class.
Y = np.array([0, 0, 1, 1, 2, 2])
P = np.array([
    [0.6, 0.3, 0.1],  # true 0, predicted 0
    [0.3, 0.5, 0.2],  # true 0, predicted 1
    [0.2, 0.7, 0.1],  # true 1, predicted 1
    [0.5, 0.4, 0.1],  # true 1, predicted 0
    [0.1, 0.2, 0.7],  # true 2, predicted 2
    [0.3, 0.3, 0.4],  # true 2, predicted 2
])


def test_golden_by_hand():
    # class 0: positives {.6,.3} vs negatives {.2,.5,.1,.3}: 4 + (1 + 0 + 1 + .5) = 6.5 of 8
    # class 1: positives {.7,.4} vs {.3,.5,.2,.3}: 4 + 3 = 7 of 8; class 2: 8 of 8
    assert M.auroc_per_class(Y, P) == pytest.approx([6.5 / 8, 7 / 8, 1.0])
    assert M.auroc(Y, P) == pytest.approx((6.5 / 8 + 7 / 8 + 1) / 3)
    # predictions [0,1,1,0,2,2]: confusion rows = true class
    assert M.confusion(Y, P).tolist() == [[1, 1, 0], [1, 1, 0], [0, 0, 2]]
    assert M.acc(Y, P) == pytest.approx(4 / 6)
    assert M.uacc(Y, P) == pytest.approx((0.5 + 0.5 + 1) / 3)
    assert M.f1(Y, P) == pytest.approx((0.5 + 0.5 + 1) / 3)
    assert M.wf1(Y, P) == pytest.approx((2 * 0.5 + 2 * 0.5 + 2 * 1) / 6)
    # AP class 0 (descending): .6 pos -> P=1 dR=.5; tie group at .3 (1 pos, 1 neg) -> P=2/4 dR=.5
    # AP class 1: .7 pos -> 1 * .5; .4 pos after one negative -> 2/3 * .5; class 2: 1.0
    assert M.avprec(Y, P) == pytest.approx((0.75 + (0.5 + 1 / 3) + 1.0) / 3)


def test_all_metrics_dict_matches_functions():
    d = M.all_metrics(Y, P, ["angry", "happy", "sad"])
    assert {m: d[m] for m in M.METRICS} == pytest.approx(
        {"auroc": M.auroc(Y, P), "acc": M.acc(Y, P), "uacc": M.uacc(Y, P), "f1": M.f1(Y, P),
         "wf1": M.wf1(Y, P), "avprec": M.avprec(Y, P)})
    assert d["n"] == 6 and d["support"] == {"angry": 2, "happy": 2, "sad": 2}
    assert d["per_class"]["angry"]["auroc"] == pytest.approx(6.5 / 8)
    assert d["confusion"] == [[1, 1, 0], [1, 1, 0], [0, 0, 2]]
    assert d["missing_classes"] == [] and d["notes"] == []


def _random(seed: int, n: int = 400, k: int = 4, ties: bool = True):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    p = rng.random((n, k))
    p[np.arange(n), y] += rng.random(n)
    if ties:
        p = np.round(p, 1)
    return y, p / p.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_identities(seed):
    y, p = _random(seed)
    cm = M.confusion(y, p)
    n = y.size
    assert M.acc(y, p) == pytest.approx(np.trace(cm) / n)
    recall = np.diag(cm) / cm.sum(axis=1)
    assert M.uacc(y, p) == pytest.approx(recall.mean())
    prec = np.diag(cm) / cm.sum(axis=0)
    f1_k = 2 * prec * recall / (prec + recall)
    assert M.f1(y, p) == pytest.approx(f1_k.mean())
    assert M.wf1(y, p) == pytest.approx((cm.sum(axis=1) * f1_k).sum() / n)
    # AUROC depends only on the ranking within each column (tie-free scores: a float transform
    # may merge near-ties)
    yq, q = _random(seed, ties=False)
    assert M.auroc(yq, np.log(q) * 3 + 7) == pytest.approx(M.auroc(yq, q), abs=1e-12)
    # integer weights == repeated rows
    w = np.random.default_rng(seed).integers(0, 3, y.size)
    rep = np.repeat(np.arange(y.size), w)
    for name in M.METRICS:
        got = M.metrics_batch(y, p, w[None].astype(float), [name])[name][0]
        assert got == pytest.approx(M.metrics_batch(y[rep], p[rep], None, [name])[name][0])


def test_perfect_and_reversed_predictions():
    y = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    perfect = np.eye(4)[y] * 0.9 + 0.025
    for name in M.METRICS:
        assert M.metrics_batch(y, perfect, None, [name])[name][0] == pytest.approx(1.0)
    assert M.auroc(y, 1.0 - perfect) == pytest.approx(0.0)
    assert M.acc(y, 1.0 - perfect) == 0.0


@pytest.mark.parametrize("seed", [3, 4])
@pytest.mark.parametrize("weighted", [False, True])
def test_agrees_with_sklearn(seed, weighted):
    y, p = _random(seed)
    w = np.random.default_rng(seed).random(y.size) if weighted else None
    pred = p.argmax(axis=1)
    assert M.auroc(y, p, sample_weight=w) == pytest.approx(
        skm.roc_auc_score(y, p, multi_class="ovr", average="macro", sample_weight=w), abs=1e-12)
    assert M.avprec(y, p, sample_weight=w) == pytest.approx(
        skm.average_precision_score(np.eye(4)[y], p, average="macro", sample_weight=w), abs=1e-12)
    assert M.acc(y, p, sample_weight=w) == pytest.approx(skm.accuracy_score(y, pred, sample_weight=w))
    assert M.uacc(y, p, sample_weight=w) == pytest.approx(skm.balanced_accuracy_score(y, pred, sample_weight=w))
    assert M.f1(y, p, sample_weight=w) == pytest.approx(skm.f1_score(y, pred, average="macro", sample_weight=w))
    assert M.wf1(y, p, sample_weight=w) == pytest.approx(skm.f1_score(y, pred, average="weighted", sample_weight=w))
    assert np.allclose(M.confusion(y, pred, 4, sample_weight=w), skm.confusion_matrix(y, pred, sample_weight=w))


def test_missing_class_is_reported_not_fatal():
    y, p = _random(5, k=3)
    keep = y != 2
    y, p = y[keep], p[keep]
    d = M.all_metrics(y, p, ["a", "b", "c"])
    assert d["missing_classes"] == ["c"]
    assert "absent from the test set" in d["notes"][0] and "'c'" in d["notes"][0]
    per = [skm.roc_auc_score(y == k, p[:, k]) for k in (0, 1)]
    assert d["auroc"] == pytest.approx(np.mean(per))
    assert np.isnan(d["per_class"]["c"]["auroc"]) and d["support"]["c"] == 0
    # a predicted-but-absent class counts 0 in macro F1, as scikit-learn does
    assert d["f1"] == pytest.approx(skm.f1_score(y, p.argmax(axis=1), average="macro"))
    assert d["wf1"] == pytest.approx(skm.f1_score(y, p.argmax(axis=1), average="weighted"))


def test_single_class_gives_nan_with_note():
    y = np.zeros(5, dtype=int)
    p = np.random.default_rng(0).random((5, 4))
    d = M.all_metrics(y, p, list("abcd"))
    assert np.isnan(d["auroc"]) and np.isnan(d["avprec"]) and np.isnan(M.auroc(y, p))
    assert "only one class" in d["notes"][0]
    assert d["acc"] == pytest.approx(np.mean(p.argmax(axis=1) == 0))
    assert d["missing_classes"] == ["b", "c", "d"]


def test_bad_inputs_name_the_value():
    with pytest.raises(BadValueError, match="y_true label 7"):
        M.auroc(np.array([0, 7]), np.ones((2, 3)))
    with pytest.raises(BadValueError, match="NaN"):
        M.auroc(np.array([0, 1]), np.array([[0.5, np.nan], [0.2, 0.8]]))
    with pytest.raises(BadValueError, match="number of classes 2"):
        M.all_metrics(Y, P, ["a", "b"])
    with pytest.raises(BadValueError, match="proba shape"):
        M.auroc(Y, P[:3])
    with pytest.raises(BadValueError, match="metric"):
        M.metrics_batch(Y, P, None, ["accuracy"])


@pytest.mark.parametrize("seed", range(4))
def test_grouped_metrics_equal_the_batch_with_indicator_weights(seed):
    rng = np.random.default_rng(seed)
    n, k, g = 300, 4, 7
    y = rng.integers(0, k, n)
    proba = np.round(rng.dirichlet(np.ones(k), n), 1)  # rounded: many tied scores, within and across groups
    group = rng.integers(0, g - 1, n)  # the last group has no rows
    group[y == 3] = 2  # group 2 holds all of class 3: its other classes and class 3 elsewhere are absent
    group[:20], y[:20] = 5, 0  # ... and group 5 gets extra rows of one class
    weights = (group[None, :] == np.arange(g)[:, None]).astype(np.float64)
    want = M.metrics_batch(y, proba, weights)
    got = M.metrics_grouped(y, proba, group, g)
    assert list(got) == list(want)
    for m in M.METRICS:
        np.testing.assert_allclose(got[m], want[m], rtol=1e-12, atol=0, equal_nan=True)
    assert np.isnan(got["acc"][g - 1]) and np.isfinite(got["auroc"][:5]).all()


def test_grouped_metrics_check_the_groups():
    with pytest.raises(BadValueError, match="group"):
        M.metrics_grouped(np.array([0, 1]), np.eye(2), np.array([0, 2]), 2)

"""Fold aggregation: ``mean`` of fold scores against ``pooled`` predictions, on a known example."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from embedprobe.common.metrics import all_metrics
from embedprobe.corpora.base import CANONICAL_LABELS
from embedprobe.corpora.splits import loso_folds
from embedprobe.errors import BadValueError
from embedprobe.eval import runner
from embedprobe.eval.confidence import pool, pooled_scores
from embedprobe.eval.data import CorpusData
from embedprobe.eval.runner import MatrixSpec, run_matrix
from embedprobe.report.tables import cell_choices, run_choices

# Three speakers, each one LOSO test fold; the "probe" predicts a fixed class per clip.
#   a: true [0, 0, 1]    predicted [0, 0, 0]     fold uACC (1 + 0) / 2 = 0.5
#   b: true [1, 1, 1, 0] predicted [1, 1, 1, 1]  fold uACC (1 + 0) / 2 = 0.5
#   c: true [0, 1]       predicted [1, 0]        fold uACC 0
# mean over folds: 1/3. Pooled: class 0 recalled 2 of 4, class 1 3 of 5: (0.5 + 0.6) / 2 = 0.55.
SPEAKERS = ["a"] * 3 + ["b"] * 4 + ["c"] * 2
TRUE = np.array([0, 0, 1, 1, 1, 1, 0, 0, 1])
PRED = np.array([0, 0, 0, 1, 1, 1, 1, 1, 0])
MEAN_UACC, POOLED_UACC = 1 / 3, 0.55


def _onehot(pred: np.ndarray) -> np.ndarray:
    p = np.full((pred.size, len(CANONICAL_LABELS)), 0.02)
    p[np.arange(pred.size), pred] = 0.94
    return p


def _folds() -> list[tuple[np.ndarray, np.ndarray]]:
    spk = np.array(SPEAKERS)
    return [(TRUE[spk == s], _onehot(PRED[spk == s])) for s in ("a", "b", "c")]


def test_pooled_and_mean_differ_as_computed_by_hand() -> None:
    folds = _folds()
    per_fold = [all_metrics(y, p, list(CANONICAL_LABELS))["uacc"] for y, p in folds]
    assert np.mean(per_fold) == pytest.approx(MEAN_UACC)
    assert pooled_scores(folds)["uacc"] == pytest.approx(POOLED_UACC)
    # pooling one fold is scoring that fold; pooled accuracy equals the clip-weighted fold mean
    y, p = folds[1]
    assert pooled_scores([folds[1]])["uacc"] == pytest.approx(all_metrics(y, p, list(CANONICAL_LABELS))["uacc"])
    sizes = [len(y) for y, _ in folds]
    accs = [all_metrics(y, p, list(CANONICAL_LABELS))["acc"] for y, p in folds]
    assert pooled_scores(folds)["acc"] == pytest.approx(np.average(accs, weights=sizes))
    y_all, p_all = pool(folds)
    assert y_all.tolist() == TRUE.tolist() and p_all.shape == (9, 4)
    with pytest.raises(BadValueError, match="number of folds to pool"):
        pool([])


class _Fixed:
    """A stand-in probe whose class probabilities are its input features (no training)."""

    def __init__(self, random_state: int = 0, **_: Any) -> None:
        self.random_state = random_state

    def fit(self, X, y, eval_sets=None, **_: Any) -> _Fixed:
        self.classes_ = np.arange(len(CANONICAL_LABELS))
        self.history_ = [{"step": 1, "metrics": {name: {} for name in eval_sets or {}}}]
        self.n_steps_ = 1
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X)

    def prediction_threads(self, n: int) -> int:
        return 1


def _data() -> CorpusData:
    labels = [CANONICAL_LABELS[i] for i in TRUE]
    parts = {k: np.array(v) for k, v in loso_folds(SPEAKERS, labels, seed=0).items()}
    return CorpusData(name="demo", ids=np.array([f"c{i}" for i in range(9)]), y=TRUE, speakers=np.array(SPEAKERS),
                      X=_onehot(PRED), parts=parts, folds=list(parts), protocol="loso")


@pytest.mark.parametrize(("aggregate", "expected", "fold_mean"), [("mean", MEAN_UACC, None),
                                                                  ("pooled", POOLED_UACC, MEAN_UACC)])
def test_runner_aggregates_as_asked(monkeypatch: pytest.MonkeyPatch, aggregate: str, expected: float,
                                    fold_mean: float | None) -> None:
    monkeypatch.setattr(runner, "create", lambda name, **kw: _Fixed(**kw))
    spec = MatrixSpec(train_sets=(("demo",),), tests=("demo",), probe="fixed", seeds=(0, 1), n_bootstrap=50,
                      aggregate=aggregate)
    (cell,) = run_matrix({"demo": _data()}, spec)
    uacc = cell["metrics"]["uacc"]
    assert cell["aggregate"] == aggregate and cell["protocol"] == "loso" and cell["n_folds"] == 3
    assert uacc["mean"] == pytest.approx(expected, abs=1e-6)
    assert uacc["seeds"]["n"] == 2 and uacc["seeds"]["std"] == 0  # the stand-in ignores its seed
    assert uacc["folds"] == pytest.approx([0.5, 0.5, 0.0])  # each fold's own score either way
    assert uacc.get("fold_mean") == (None if fold_mean is None else pytest.approx(fold_mean, abs=1e-6))
    assert uacc["ci_point"] == pytest.approx(expected, abs=1e-6)  # the interval is around the reported statistic


def test_unknown_aggregate_is_one_sentence() -> None:
    with pytest.raises(BadValueError, match=r"Bad aggregate 'median', expected one of \['mean', 'pooled'\]"):
        MatrixSpec(train_sets=(("demo",),), tests=("demo",), aggregate="median")


def test_run_choices_names_protocols_and_aggregate() -> None:
    rec = {"caches": {"emodb": {"protocol": "loso"}, "iemocap": {"protocol": "session"}},
           "resolved": {"aggregate": "pooled"}}
    assert run_choices(rec) == "protocol emodb=loso, iemocap=session · aggregate pooled"
    # results written before the aggregation was recorded
    assert run_choices({"caches": {"emodb": {"protocol": "speaker"}}, "resolved": {}}) == (
        "protocol emodb=speaker · aggregate mean")


def test_cell_choices_for_the_bench_headings() -> None:
    cells = [{"test": "emodb", "in_domain": True, "protocol": "loso", "aggregate": "pooled"},
             {"test": "iemocap", "in_domain": False, "protocol": "session", "aggregate": "pooled"}]
    assert cell_choices(cells) == "protocol emodb=loso · aggregate pooled"
    assert cell_choices([{"test": "emodb", "in_domain": True}]) == ""  # cells written before they were recorded

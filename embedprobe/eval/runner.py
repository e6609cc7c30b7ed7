"""The cross-corpus matrix runner: train probes on corpora (alone or as a union), test everywhere.

No file IO: it takes ``CorpusData`` arrays and returns plain result dicts.

Protocol, per training set ``T`` (one corpus or a union):

* ``T`` has as many folds as its member with the most folds (IEMOCAP's speaker protocol: 10;
  an official split: 1); a member with fewer folds reuses its last one.
* For every fold and every seed one probe is trained on the union of the members' train parts
  (a training set's fold x seed probes at once, as one stacked model: ``fit_together``; folds
  of large pooled arrays, or of frames, a fold at a time: ``STACK_BYTES``),
  early-stopped on the union of their validation parts (class-balanced sampling over the union),
  and scored on every test corpus: a corpus in ``T`` on the fold's test part (in-domain: the
  cell is the mean over folds, e.g. IEMOCAP's 10 speaker folds), any other corpus on all of its
  test clips (``CorpusData.cross_test_index``).
* Per cell and metric: the mean over folds and seeds of the final score; the paper's
  confidence (mean and std over the evaluations in the last 20% of training, averaged over
  folds and seeds); the spread over seeds (each seed averaged over folds); and a percentile
  bootstrap 95% interval over test clips on the seed-averaged predictions: for in-domain cells
  the clips are resampled within each fold and the folds averaged (the statistic reported);
  for a corpus every fold tested, on its predictions averaged over folds.
* With ``aggregate="pooled"`` (nkululeko's and EmoBox's leave-one-speaker-out figure) the
  number of a cell is, per seed, each metric computed once over the test predictions of all
  folds concatenated, then the mean over seeds (``seeds`` holds the spread); the bootstrap
  resamples those pooled clips (their predictions averaged over seeds); ``folds`` still lists
  each fold's own score and ``fold_mean`` the ``mean`` aggregation's number beside it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embedprobe.common.metrics import METRICS, all_metrics
from embedprobe.common.threads import choose_threads, limit_threads
from embedprobe.corpora.base import CANONICAL_LABELS
from embedprobe.errors import BadValueError
from embedprobe.eval.confidence import (
    AGGREGATES,
    bootstrap_ci,
    fold_bootstrap_ci,
    last_fraction,
    over_seeds,
    pool,
    pooled_scores,
    summarize,
)
from embedprobe.eval.data import CorpusData, label_counts, test_index, training_split
from embedprobe.probes.registry import create
from embedprobe.provenance import to_jsonable

K = len(CANONICAL_LABELS)


@dataclass(frozen=True)
class MatrixSpec:
    """What to train and test.

    Args:
        train_sets: each a tuple of corpus names trained on jointly.
        tests: corpus names to test every probe on.
        probe: probe name (``linear`` or ``mlp``).
        probe_params: extra probe parameters (``lr``, ``frame_mask`` ...).
        seeds: one training per seed and fold.
        n_bootstrap: bootstrap resamples per cell (0 = no interval).
        last_fraction: share of training used for the paper's confidence figures.
        max_folds: use at most this many folds of each protocol (quick runs); None = all.
        aug_rate: the paper's augmentation rate: the probability that a training clip drawn into
            a batch is replaced by one of its cached augmented copies (``CorpusData.X_aug``).
        threads: torch / BLAS threads for every probe, the metrics and the bootstrap; None
            lets each choose from its work size (:func:`embedprobe.common.threads.choose_threads`).
        aggregate: how folds make a cell's number, one of ``AGGREGATES``: ``mean`` of the fold
            scores, or each metric once over the ``pooled`` predictions of all folds.
    """

    train_sets: tuple[tuple[str, ...], ...]
    tests: tuple[str, ...]
    probe: str = "mlp"
    probe_params: dict[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] = (0,)
    n_bootstrap: int = 1000
    last_fraction: float = 0.2
    max_folds: int | None = None
    aug_rate: float = 0.0
    threads: int | None = None
    aggregate: str = "mean"

    def __post_init__(self) -> None:
        if self.aggregate not in AGGREGATES:
            raise BadValueError("aggregate", self.aggregate, AGGREGATES,
                                fix="mean averages the folds' scores; pooled scores all folds' predictions at once.")


def set_name(corpora: tuple[str, ...]) -> str:
    return "+".join(corpora)


def n_trainings(data: dict[str, CorpusData], spec: MatrixSpec) -> int:
    return sum(_n_folds([data[c] for c in t], spec) for t in spec.train_sets) * len(spec.seeds)


def run_matrix(
    data: dict[str, CorpusData],
    spec: MatrixSpec,
    *,
    on_training: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Train and test every cell of ``spec``; returns one result dict per (train set, test).

    Each cell records the threads used (``threads``: ``fit`` and ``predict``, the counts its
    probes chose, and ``metrics``, the count of the metrics and bootstrap around them).
    """
    n_max = max((len(d) for d in data.values()), default=0)
    # the bootstrap's largest product: (resamples chunk x clips) weights @ (clips x K*K) one-hots
    work = 2.0 * min(max(spec.n_bootstrap, 1), 1000) * n_max * K * K
    cells: list[dict[str, Any]] = []
    with limit_threads(choose_threads(work, requested=spec.threads)) as n_metrics:
        for corpora in spec.train_sets:
            cells.extend(_run_train_set(data, corpora, spec, on_training, n_metrics))
    return cells


def _n_folds(train: list[CorpusData], spec: MatrixSpec) -> int:
    n = max(len(d.folds) for d in train)
    return min(n, spec.max_folds) if spec.max_folds else n


STACK_BYTES = 256 * 2**20
"""Folds are trained together while their pooled training arrays add up to at most this; frame
input (or a larger fold) is trained one fold at a time, its seeds together."""


def _run_train_set(data, corpora, spec, on_training, n_metrics) -> list[dict[str, Any]]:
    """The fold x seed probes of one training set, trained together (one stacked model), then tested."""
    from embedprobe.probes.base import (
        fit_together,  # scikit-learn and torch load when a matrix runs
    )

    train = [data[c] for c in corpora]
    n_folds = _n_folds(train, spec)
    acc = {t: _CellAccumulator(data[t], t in corpora) for t in spec.tests}
    pending: list[tuple] = []
    held = 0
    for fold in range(n_folds):
        split = training_split(train, fold)
        tests = {t: test_index(data[t], fold, t in corpora) for t in spec.tests}
        eval_sets = {f"test:{t}": data[t].take(idx) for t, idx in tests.items() if idx.size}
        size = split.X.nbytes if isinstance(split.X, np.ndarray) else STACK_BYTES
        if pending and held + size > STACK_BYTES:
            _fit_and_test(pending, data, acc, spec, on_training, fit_together, f"{set_name(corpora)}", n_folds)
            pending, held = [], 0
        held += size
        for seed in spec.seeds:
            params = spec.probe_params | ({"n_threads": spec.threads} if spec.threads else {})
            fit = {"X": split.X, "y": split.y, "X_val": split.X_val, "y_val": split.y_val,
                   "groups": split.groups if len(train) > 1 else None, "eval_sets": eval_sets,
                   "X_aug": split.X_aug if spec.aug_rate > 0 else None, "aug_rate": spec.aug_rate}
            pending.append((fold, seed, tests, create(spec.probe, random_state=seed, **params), fit))
    _fit_and_test(pending, data, acc, spec, on_training, fit_together, f"{set_name(corpora)}", n_folds)
    cells = [a.result(corpora, t, spec) for t, a in acc.items()]
    for c, a in zip(cells, acc.values(), strict=True):
        c["threads"] = {k: sorted(v) for k, v in a.threads.items()} | {"metrics": int(n_metrics)}
    return cells


def _fit_and_test(pending, data, acc, spec, on_training, fit_together, name, n_folds) -> None:
    """Fit the pending (fold, seed) probes together, then score each on its fold's test parts."""
    fit_together([r[3] for r in pending], [r[4] for r in pending])
    for fold, seed, tests, probe, _ in pending:
        for t, idx in tests.items():
            if idx.size == 0:
                continue
            X, y = data[t].take(idx)
            proba = _full_proba(probe, X)
            tail = last_fraction(probe.history_, split=f"test:{t}", fraction=spec.last_fraction)
            acc[t].add(fold, seed, idx, y, proba, tail, probe)
            acc[t].threads["predict"].add(int(probe.prediction_threads(len(idx))))
        if on_training is not None:  # called once per finished training
            on_training(f"{name} fold {fold + 1}/{n_folds} seed {seed}")


def _full_proba(probe: Any, X: Any) -> np.ndarray:
    """Probabilities over all four classes (a class missing from training gets 0)."""
    p = probe.predict_proba(X)
    out = np.zeros((p.shape[0], K), dtype=np.float64)
    out[:, np.asarray(probe.classes_, dtype=int)] = p
    return out


class _CellAccumulator:
    """Collects per-(fold, seed) scores of one test corpus and summarises them."""

    deterministic = False  # the probe's class says every seed gives the same model (logreg, svm)

    def __init__(self, data: CorpusData, in_domain: bool):
        self.data, self.in_domain = data, in_domain
        self.final: dict[tuple[int, int], dict[str, float]] = {}
        self.tail: dict[tuple[int, int], dict[str, Any]] = {}
        self.proba_sum = np.zeros((len(data), K))
        self.count = np.zeros(len(data))
        self.fold_idx: dict[int, np.ndarray] = {}
        self.preds: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}  # (fold, seed) -> (y, proba)
        self.missing: set[str] = set()
        self.confusion = np.zeros((K, K), dtype=np.int64)
        self.steps: list[int] = []
        self.threads: dict[str, set[int]] = {"fit": set(), "predict": set()}

    def add(self, fold, seed, idx, y, proba, tail, probe) -> None:
        m = all_metrics(y, proba, list(CANONICAL_LABELS))
        self.final[(fold, seed)] = {k: float(m[k]) for k in METRICS}
        self.missing.update(m.get("missing_classes", []))
        self.confusion += np.asarray(m["confusion"], dtype=np.int64)
        self.tail[(fold, seed)] = tail
        self.proba_sum[idx] += proba
        self.count[idx] += 1
        self.fold_idx[fold] = idx
        self.preds[(fold, seed)] = (np.asarray(y), proba)
        self.steps.append(int(getattr(probe, "n_steps_", 0)))
        self.deterministic = bool(getattr(probe, "deterministic", False))
        if getattr(probe, "n_threads_", None) is not None:
            self.threads["fit"].add(int(probe.n_threads_))

    def result(self, corpora: tuple[str, ...], test: str, spec: MatrixSpec) -> dict[str, Any]:
        seen = self.count > 0
        y = self.data.y[seen]
        avg = self.proba_sum / np.maximum(self.count, 1)[:, None]  # seed- (and fold-) averaged
        seeds = sorted({s for _, s in self.final})
        folds = sorted({f for f, _ in self.final})
        pooled = spec.aggregate == "pooled"
        if pooled:  # per seed: every metric once over the predictions of all its folds
            by_seed = {seed: pooled_scores([self.preds[(f, seed)] for f in folds if (f, seed) in self.preds])
                       for seed in seeds}
        if not spec.n_bootstrap:
            ci = {}
        elif pooled:  # the pooled clips of every fold, their predictions averaged over seeds
            y_pool, p_pool = pool([self._seed_mean(f) for f in folds])
            ci = bootstrap_ci(y_pool, p_pool, n_resamples=spec.n_bootstrap, random_state=0)
        elif self.in_domain:  # disjoint fold test sets: resample within folds, average the folds
            ci = fold_bootstrap_ci([(self.data.y[i], avg[i]) for _, i in sorted(self.fold_idx.items())],
                                   n_resamples=spec.n_bootstrap, random_state=0)
        else:  # every fold tested the same clips: their predictions averaged over folds and seeds
            ci = bootstrap_ci(y, avg[seen], n_resamples=spec.n_bootstrap, random_state=0)
        metrics = {}
        for m in METRICS:
            vals = np.array([v[m] for v in self.final.values()])
            per_seed = [by_seed[seed][m] if pooled else
                        _finite_mean([v[m] for (f, s), v in self.final.items() if s == seed])
                        for seed in seeds]
            tail_means = [t[m].mean for t in self.tail.values()]
            tail_stds = [t[m].std for t in self.tail.values()]
            entry = {
                "mean": _f(_finite_mean(per_seed if pooled else vals)),
                "last20_mean": _f(_finite_mean(tail_means)),
                "last20_std": _f(_finite_mean(tail_stds)),
                "seeds": to_jsonable(over_seeds(per_seed).to_dict()),
                "folds": [_f(_finite_mean([v[m] for (f, s), v in self.final.items() if f == fold]))
                          for fold in folds],
            }
            if pooled:
                entry["fold_mean"] = _f(_finite_mean(vals))
            if m in ci:
                iv = ci[m]
                entry["ci95"] = [_f(iv.low), _f(iv.high)]
                entry["ci_point"] = _f(iv.point)
            metrics[m] = entry
        return {
            "train": set_name(corpora),
            "train_corpora": list(corpora),
            "test": test,
            "in_domain": self.in_domain,
            "scrambled": bool(self.data.scrambled),
            "n_test": int(seen.sum()),
            "n_folds": len(folds),
            "aggregate": spec.aggregate,
            "protocol": self.data.protocol,
            "seeds": seeds,
            "deterministic": self.deterministic,  # seeds agree by construction: their spread is 0
            "mean_steps": _f(np.mean(self.steps)) if self.steps else None,
            "label_counts": label_counts(y),
            "missing_classes": sorted(self.missing),
            "confusion": self.confusion.tolist(),
            "metrics": metrics,
        }


    def _seed_mean(self, fold: int) -> tuple[np.ndarray, np.ndarray]:
        """``(y, proba)`` of one fold's test clips, the probabilities averaged over its seeds."""
        got = [p for (f, _), p in self.preds.items() if f == fold]
        return got[0][0], np.mean([p for _, p in got], axis=0)


def _finite_mean(values) -> float:
    """``summarize(values).mean``: NaN (no numpy warning) when no value is finite, e.g. the AUROC
    of folds whose test part lacks a class; ``_f`` turns it into ``None`` in the results."""
    return summarize(values).mean


def _f(x: float) -> float | None:
    x = float(x)
    return None if np.isnan(x) else round(x, 6)


# --------------------------------------------------------------------------- derived tables
def relative_matrix(cells: list[dict[str, Any]], metric: str = "wf1") -> dict[str, dict[str, float | None]]:
    """The paper's Figure 2 format: each cell minus the in-domain baseline of its test corpus.

    The baseline of test corpus ``S`` is the cell trained on ``S`` alone and tested on ``S``
    (with the same scrambling state). Cells without a baseline are ``None``.
    """
    base = {c["test"]: c["metrics"][metric]["mean"] for c in cells
            if c["train_corpora"] == [c["test"]]}
    out: dict[str, dict[str, float | None]] = {}
    for c in cells:
        b, v = base.get(c["test"]), c["metrics"][metric]["mean"]
        out.setdefault(c["train"], {})[c["test"]] = (
            None if b is None or v is None else round(v - b, 6))
    return out


def fragmentation(cells: list[dict[str, Any]], scrambled: tuple[str, ...]) -> list[dict[str, Any]]:
    """For each scrambled corpus: its score in joint training against its score trained alone.

    If the probe learnt emotion features shared across corpora, scrambling one corpus's labels
    should hurt that corpus in joint training (conflicting labels); a joint score close to the
    alone score means the probe keeps the corpora apart (class fragmentation, paper Fig. 3).
    """
    rows = []
    for s in scrambled:
        alone = next((c for c in cells if c["train_corpora"] == [s] and c["test"] == s), None)
        for c in cells:
            if c["test"] != s or s not in c["train_corpora"] or len(c["train_corpora"]) < 2:
                continue
            row = {"corpus": s, "joint_train": c["train"]}
            for m in ("wf1", "auroc", "uacc"):
                j = c["metrics"][m]["mean"]
                a = alone["metrics"][m]["mean"] if alone else None
                row[f"joint_{m}"], row[f"alone_{m}"] = j, a
                row[f"delta_{m}"] = None if j is None or a is None else round(j - a, 6)
            rows.append(row)
    return rows

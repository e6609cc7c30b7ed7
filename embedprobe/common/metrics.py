"""Classification metrics as pure numpy functions, fast enough to run at every evaluation step.

Conventions (the paper's section 2.2 and the poster's tables):

* ``y_true``: integer labels ``0..K-1`` of shape ``(N,)``.
* ``proba``: scores of shape ``(N, K)`` whose columns follow the class order.
* ``y_pred``: integer labels ``(N,)``, or an ``(N, K)`` score array whose row-wise argmax
  is taken.

=========  ==============================================================================
name       definition
=========  ==============================================================================
auroc      macro one-vs-rest ROC AUC, over the classes present in ``y_true``
acc        sample-weighted accuracy (the paper's wACC): ``trace(confusion) / N``
uacc       unweighted (balanced) accuracy (the paper's uACC): mean recall over the
           classes present in ``y_true``
f1         macro F1 over the classes present in ``y_true`` or predicted (a class that is
           predicted but absent from the test set scores 0), as scikit-learn's default
wf1        F1 weighted by support: ``sum_k support_k * f1_k / N`` (the paper's wF1)
avprec     macro average precision (step-wise, scikit-learn's definition) over the
           classes present in ``y_true``
=========  ==============================================================================

A test set that lacks a class never crashes: AUROC, AvPrec and uACC average over the classes
it has and :func:`all_metrics` reports the missing ones. With a single class present AUROC and
AvPrec are undefined and returned as NaN. Every metric can take ``sample_weight``; the
``*_batch`` functions take a ``(B, N)`` weight matrix and return ``B`` values at once, which is
how :mod:`embedprobe.eval.confidence` bootstraps without a Python loop.

Example:
    >>> import numpy as np
    >>> y = np.array([0, 0, 1, 1])
    >>> p = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.7, 0.3]])
    >>> auroc(y, p), acc(y, p)
    (0.75, 0.75)
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np

from embedprobe.errors import BadValueError

METRICS: tuple[str, ...] = ("auroc", "acc", "uacc", "f1", "wf1", "avprec")
"""The metric names :func:`all_metrics` and the probes' training history report."""


# ----------------------------------------------------------------------------- input checks


def _labels(y_true: object) -> np.ndarray:
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise BadValueError("y_true shape", y.shape, fix="Pass a 1-D array of integer labels 0..K-1.")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)
        else:
            raise BadValueError("y_true dtype", str(y.dtype), fix="Encode labels as integers 0..K-1.")
    return y.astype(np.int64, copy=False)


def _scores(proba: object, n: int) -> np.ndarray:
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != n:
        raise BadValueError("proba shape", p.shape, fix=f"Pass an (N={n}, K) array of class scores.")
    if not np.all(np.isfinite(p)):
        raise BadValueError("proba content", "NaN/inf", fix="The scores must be finite; check the model.")
    return p


def _check_range(y: np.ndarray, k: int, what: str = "y_true") -> None:
    if y.size and (y.min() < 0 or y.max() >= k):
        bad = y[(y < 0) | (y >= k)][0]
        raise BadValueError(f"{what} label", int(bad), range(k), fix=f"Labels must be 0..{k - 1}.")


def _check_names(names: Sequence[str]) -> None:
    unknown = set(names) - set(METRICS)
    if unknown:
        raise BadValueError("metric", sorted(unknown)[0], METRICS)


def _weights(sample_weight: object, n: int) -> np.ndarray:
    if sample_weight is None:
        return np.ones((1, n))
    w = np.asarray(sample_weight, dtype=np.float64)
    w = w[None, :] if w.ndim == 1 else w
    if w.ndim != 2 or w.shape[1] != n or np.any(w < 0):
        raise BadValueError("sample_weight", w.shape, fix=f"Pass non-negative weights of shape (N={n},) or (B, N).")
    return w


def _pred(y_pred: object, n: int) -> tuple[np.ndarray, int]:
    p = np.asarray(y_pred)
    if p.ndim == 2:
        if p.shape[0] != n:
            raise BadValueError("y_pred shape", p.shape, fix=f"Pass (N={n},) labels or (N, K) scores.")
        return p.argmax(axis=1).astype(np.int64), p.shape[1]
    pred = _labels(p)
    if pred.shape[0] != n:
        raise BadValueError("y_pred shape", pred.shape, fix=f"Pass (N={n},) labels or (N, K) scores.")
    return pred, 0


# ----------------------------------------------------------------------------- batch kernels


def _ranked_batch(
    y_true: np.ndarray, proba: np.ndarray, weights: np.ndarray, auc: bool, ap: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class AUROC and average precision from one sort per class (``(B, K)`` each)."""
    k = proba.shape[1]
    out_auc, out_ap = np.full((weights.shape[0], k), np.nan), np.full((weights.shape[0], k), np.nan)
    for c in range(k):
        order = np.argsort(proba[:, c], kind="stable")
        s = proba[order, c]
        starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # groups of tied scores, ascending
        pos = (y_true[order] == c).astype(np.float64)
        ws = weights[:, order]
        pos_g = np.add.reduceat(ws * pos, starts, axis=1)
        all_g = np.add.reduceat(ws, starts, axis=1)
        neg_g = all_g - pos_g
        p_tot, n_tot = pos_g.sum(axis=1), neg_g.sum(axis=1)
        ok = (p_tot > 0) & (n_tot > 0)
        if auc:  # Mann-Whitney: positives above negatives, ties count one half
            below = np.cumsum(neg_g, axis=1) - neg_g
            num = (pos_g * (below + 0.5 * neg_g)).sum(axis=1)
            out_auc[:, c] = np.divide(num, p_tot * n_tot, out=np.full_like(num, np.nan), where=ok)
        if ap:  # sum_n (R_n - R_{n-1}) P_n over thresholds taken from high to low
            tp_g = pos_g[:, ::-1]
            tp, seen = np.cumsum(tp_g, axis=1), np.cumsum(all_g[:, ::-1], axis=1)
            prec = np.divide(tp, seen, out=np.zeros_like(tp), where=seen > 0)
            num = (tp_g * prec).sum(axis=1)
            out_ap[:, c] = np.divide(num, p_tot, out=np.full_like(num, np.nan), where=ok)
    return out_auc, out_ap


def auroc_batch(y_true: np.ndarray, proba: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per-class one-vs-rest AUROC for ``B`` weightings of the same samples.

    Rank-based (Mann-Whitney) with ties counted one half, computed once per class from a single
    sort, so ``B`` bootstrap resamples cost ``O(B * N)`` per class.

    Args:
        y_true: ``(N,)`` labels ``0..K-1``.
        proba: ``(N, K)`` scores.
        weights: ``(B, N)`` non-negative sample weights (bootstrap counts or ones).

    Returns:
        ``(B, K)`` AUROC per class; NaN where a class has no positive or no negative weight.
    """
    return _ranked_batch(y_true, proba, weights, True, False)[0]


def avprec_batch(y_true: np.ndarray, proba: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per-class average precision ``sum_n (R_n - R_{n-1}) P_n`` over distinct thresholds.

    Same shapes as :func:`auroc_batch`; NaN where a class has no positive or no negative weight.
    """
    return _ranked_batch(y_true, proba, weights, False, True)[1]


def confusion_batch(y_true: np.ndarray, y_pred: np.ndarray, k: int, weights: np.ndarray) -> np.ndarray:
    """``(B, K, K)`` weighted confusion matrices; rows are true classes, columns predictions."""
    code = y_true * k + y_pred
    if weights.shape[0] == 1:
        return np.bincount(code, weights=weights[0], minlength=k * k).reshape(1, k, k)
    onehot = np.zeros((code.size, k * k))
    onehot[np.arange(code.size), code] = 1.0
    return (weights @ onehot).reshape(-1, k, k)


def _nanmean_rows(a: np.ndarray) -> np.ndarray:
    ok = ~np.isnan(a)
    cnt = ok.sum(axis=1)
    tot = np.where(ok, a, 0.0).sum(axis=1)
    return np.divide(tot, cnt, out=np.full(a.shape[0], np.nan), where=cnt > 0)


def from_confusion(conf: np.ndarray) -> dict[str, np.ndarray]:
    """acc, uacc, f1, wf1 (each ``(B,)``) and per-class recall/f1 (``(B, K)``) from ``(B, K, K)``."""
    tp = np.diagonal(conf, axis1=1, axis2=2)
    support, predicted = conf.sum(axis=2), conf.sum(axis=1)
    n = support.sum(axis=1)
    nan = np.full_like(tp, np.nan)
    recall = np.divide(tp, support, out=nan.copy(), where=support > 0)
    f1_k = np.divide(2 * tp, support + predicted, out=nan.copy(), where=(support + predicted) > 0)
    return {
        "acc": np.divide(tp.sum(axis=1), n, out=np.full(n.shape, np.nan), where=n > 0),
        "uacc": _nanmean_rows(recall),
        "f1": _nanmean_rows(f1_k),
        "wf1": np.divide((support * np.nan_to_num(f1_k)).sum(axis=1), n, out=np.full(n.shape, np.nan), where=n > 0),
        "recall_per_class": recall,
        "f1_per_class": f1_k,
    }


def metrics_batch(
    y_true: np.ndarray, proba: np.ndarray, weights: np.ndarray, names: Sequence[str] = METRICS
) -> dict[str, np.ndarray]:
    """Every metric in ``names`` for ``B`` weightings at once: ``{name: (B,) array}``."""
    y = _labels(y_true)
    p = _scores(proba, y.shape[0])
    _check_range(y, p.shape[1])
    w = _weights(weights, y.shape[0])
    _check_names(names)
    out: dict[str, np.ndarray] = {}
    if "auroc" in names or "avprec" in names:
        per_auc, per_ap = _ranked_batch(y, p, w, "auroc" in names, "avprec" in names)
        out["auroc"], out["avprec"] = _nanmean_rows(per_auc), _nanmean_rows(per_ap)
    if {"acc", "uacc", "f1", "wf1"} & set(names):
        conf = from_confusion(confusion_batch(y, p.argmax(axis=1), p.shape[1], w))
        out.update({m: conf[m] for m in ("acc", "uacc", "f1", "wf1") if m in names})
    return {m: out[m] for m in names}


def _below(v: np.ndarray, first: np.ndarray, reps: np.ndarray) -> np.ndarray:
    """Sums of ``v`` over the entries before each one in its group (groups start at ``first``)."""
    cs = np.cumsum(v) - v
    return cs - np.repeat(cs[first], reps)


def metrics_grouped(
    y_true: np.ndarray, proba: np.ndarray, group: np.ndarray, n_groups: int, names: Sequence[str] = METRICS
) -> dict[str, np.ndarray]:
    """:func:`metrics_batch` with weighting ``g`` = ones on the rows of group ``g``, zeros elsewhere.

    For many disjoint groups (the validation rows of ``G`` probes trained together) in
    ``O(N log N)`` instead of ``O(G * N)``: one sort by (group, score) per class. The same
    values (AvPrec up to the rounding of its sum); ``{name: (G,) array}``.
    """
    y, k = _labels(y_true), np.asarray(proba).shape[1]
    p, g = _scores(proba, y.shape[0]), np.asarray(group, dtype=np.int64)
    _check_range(y, k)
    _check_range(g, n_groups, "group")
    _check_names(names)
    out: dict[str, np.ndarray] = {}
    per_auc, per_ap = np.full((n_groups, k), np.nan), np.full((n_groups, k), np.nan)
    for c in range(k if y.size and {"auroc", "avprec"} & set(names) else 0):
        order = np.lexsort((p[:, c], g))  # by group, then score ascending
        s, gs = p[order, c], g[order]
        starts = np.flatnonzero(np.r_[True, (s[1:] != s[:-1]) | (gs[1:] != gs[:-1])])  # tied scores
        pos_g = np.add.reduceat((y[order] == c).astype(np.float64), starts)
        all_g = np.diff(np.r_[starts, y.size]).astype(np.float64)
        neg_g, gg = all_g - pos_g, gs[starts]
        first = np.flatnonzero(np.r_[True, gg[1:] != gg[:-1]])
        below = partial(_below, first=first, reps=np.diff(np.r_[first, gg.size]))
        p_tot, n_tot = np.bincount(gg, pos_g, n_groups), np.bincount(gg, neg_g, n_groups)
        ok = (p_tot > 0) & (n_tot > 0)
        num = np.bincount(gg, pos_g * (below(neg_g) + 0.5 * neg_g), n_groups)
        per_auc[:, c] = np.divide(num, p_tot * n_tot, out=np.full_like(num, np.nan), where=ok)
        tp = p_tot[gg] - below(pos_g)  # positives at or above each threshold, from high to low
        prec = tp / (np.bincount(gg, all_g, n_groups)[gg] - below(all_g))
        num = np.bincount(gg, pos_g * prec, n_groups)
        per_ap[:, c] = np.divide(num, p_tot, out=np.full_like(num, np.nan), where=ok)
    out["auroc"], out["avprec"] = _nanmean_rows(per_auc), _nanmean_rows(per_ap)
    code = (g * k + y) * k + p.argmax(axis=1)
    conf = from_confusion(np.bincount(code, minlength=n_groups * k * k).reshape(-1, k, k).astype(np.float64))
    return {m: out[m] if m in out else conf[m] for m in names}


# ----------------------------------------------------------------------------- public metrics


def auroc_per_class(y_true: object, proba: object, *, sample_weight: object = None) -> np.ndarray:
    """One-vs-rest AUROC of every class, ``(K,)``; NaN for a class absent from ``y_true``."""
    y = _labels(y_true)
    p = _scores(proba, y.shape[0])
    _check_range(y, p.shape[1])
    return auroc_batch(y, p, _weights(sample_weight, y.shape[0]))[0]


def auroc(y_true: object, proba: object, *, sample_weight: object = None) -> float:
    """Macro one-vs-rest AUROC over the classes present in ``y_true`` (NaN if fewer than two)."""
    per = auroc_per_class(y_true, proba, sample_weight=sample_weight)
    return float(np.nanmean(per)) if np.any(~np.isnan(per)) else float("nan")


def avprec(y_true: object, proba: object, *, sample_weight: object = None) -> float:
    """Macro average precision over the classes present in ``y_true`` (NaN if fewer than two)."""
    y = _labels(y_true)
    p = _scores(proba, y.shape[0])
    _check_range(y, p.shape[1])
    per = avprec_batch(y, p, _weights(sample_weight, y.shape[0]))[0]
    return float(np.nanmean(per)) if np.any(~np.isnan(per)) else float("nan")


def confusion(
    y_true: object, y_pred: object, n_classes: int | None = None, *, sample_weight: object = None
) -> np.ndarray:
    """``(K, K)`` confusion matrix, rows = true class, columns = predicted class.

    Integer counts without ``sample_weight``, float sums with it. ``K`` is ``n_classes``, else
    the number of score columns, else ``max(label) + 1``.
    """
    y = _labels(y_true)
    pred, k_scores = _pred(y_pred, y.shape[0])
    k = n_classes or k_scores or int(max(y.max(initial=-1), pred.max(initial=-1)) + 1)
    _check_range(y, k)
    _check_range(pred, k, "y_pred")
    conf = confusion_batch(y, pred, k, _weights(sample_weight, y.shape[0]))[0]
    return conf if sample_weight is not None else np.rint(conf).astype(np.int64)


def _from_pred(name: str, y_true: object, y_pred: object, sample_weight: object) -> float:
    conf = confusion(y_true, y_pred, sample_weight=sample_weight)
    return float(from_confusion(conf[None].astype(np.float64))[name][0])


def acc(y_true: object, y_pred: object, *, sample_weight: object = None) -> float:
    """Sample-weighted accuracy (wACC): the share of correctly classified samples."""
    return _from_pred("acc", y_true, y_pred, sample_weight)


def uacc(y_true: object, y_pred: object, *, sample_weight: object = None) -> float:
    """Unweighted accuracy (uACC, balanced accuracy): mean recall over classes in ``y_true``."""
    return _from_pred("uacc", y_true, y_pred, sample_weight)


def f1(y_true: object, y_pred: object, *, sample_weight: object = None) -> float:
    """Macro F1 over the classes present in ``y_true`` or in the predictions."""
    return _from_pred("f1", y_true, y_pred, sample_weight)


def wf1(y_true: object, y_pred: object, *, sample_weight: object = None) -> float:
    """Support-weighted F1 (wF1): ``sum_k support_k * f1_k / N``."""
    return _from_pred("wf1", y_true, y_pred, sample_weight)


def all_metrics(
    y_true: object, proba: object, classes: Sequence[str], *, sample_weight: object = None
) -> dict:
    """Every metric, per-class figures, the confusion matrix and notes, as a JSON-able dict.

    Args:
        y_true: ``(N,)`` integer labels indexing ``classes``.
        proba: ``(N, K)`` scores, columns in the order of ``classes``.
        classes: the ``K`` class names.
        sample_weight: optional ``(N,)`` non-negative weights.

    Returns:
        ``{"auroc", "acc", "uacc", "f1", "wf1", "avprec"}`` floats plus ``"n"``,
        ``"support"`` (``{class: count}``), ``"per_class"`` (``{class: {auroc, avprec,
        recall, f1}}``), ``"confusion"`` (nested lists, rows true), ``"missing_classes"``
        (classes absent from ``y_true``) and ``"notes"`` (human-readable caveats).
    """
    y = _labels(y_true)
    p = _scores(proba, y.shape[0])
    classes = [str(c) for c in classes]
    if len(classes) != p.shape[1]:
        raise BadValueError("number of classes", len(classes), [p.shape[1]],
                            fix="Pass one class name per score column.")
    _check_range(y, p.shape[1])
    w = _weights(sample_weight, y.shape[0])
    per_auc, per_ap = (a[0] for a in _ranked_batch(y, p, w, True, True))
    conf = confusion_batch(y, p.argmax(axis=1), p.shape[1], w)
    cm = from_confusion(conf)
    support = conf[0].sum(axis=1)
    missing = [c for c, s in zip(classes, support, strict=True) if s == 0]
    present = len(classes) - len(missing)
    notes: list[str] = []
    if y.size == 0:
        notes.append("empty test set: every metric is NaN")
    elif present < 2:
        notes.append(f"only one class present ({[c for c in classes if c not in missing]}): "
                     "AUROC and AvPrec are undefined (NaN)")
    elif missing:
        notes.append(f"classes absent from the test set: {missing}; AUROC, AvPrec and uACC "
                     f"average over the {present} present classes, F1 counts a predicted absent class as 0")
    mean = lambda a: float(np.nanmean(a)) if np.any(~np.isnan(a)) else float("nan")  # noqa: E731
    out = {
        "auroc": mean(per_auc),
        "acc": float(cm["acc"][0]),
        "uacc": float(cm["uacc"][0]),
        "f1": float(cm["f1"][0]),
        "wf1": float(cm["wf1"][0]),
        "avprec": mean(per_ap),
        "n": int(y.size),
        "support": {c: float(s) if sample_weight is not None else int(s) for c, s in zip(classes, support, strict=True)},
        "per_class": {
            c: {"auroc": float(per_auc[i]), "avprec": float(per_ap[i]),
                "recall": float(cm["recall_per_class"][0, i]), "f1": float(cm["f1_per_class"][0, i])}
            for i, c in enumerate(classes)
        },
        "confusion": (conf[0] if sample_weight is not None else np.rint(conf[0]).astype(int)).tolist(),
        "missing_classes": missing,
        "notes": notes,
    }
    return out

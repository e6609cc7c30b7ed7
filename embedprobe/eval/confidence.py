"""Confidence figures: last-20%-of-training spread, spread over seeds, and test-clip bootstrap.

Three complementary views of how much a number can be trusted:

* :func:`last_fraction` - the paper's method (section 2.2): mean and standard deviation of a
  metric over the evaluations made in the last 20% of the training steps, read from a probe's
  ``history_``. It measures how much the score still wobbles once training has plateaued.
* :func:`over_seeds` - mean, standard deviation and count over independent trainings.
* :func:`bootstrap_ci` - a percentile interval over resamples of the test clips (seeded and
  vectorised: the resamples are weight vectors fed to :func:`metrics.metrics_batch`, no Python
  loop over resamples). It measures how much the score depends on which clips were tested.

Every result is a small frozen dataclass with ``to_dict()`` for the results JSON.

Example:
    >>> hist = [{"step": s, "metrics": {"val": {"auroc": a}}} for s, a in
    ...         [(100, 0.6), (200, 0.7), (300, 0.8), (400, 0.8), (500, 0.9)]]
    >>> last_fraction(hist, metrics=["auroc"])["auroc"].mean
    0.9
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from embedprobe.common.metrics import METRICS, metrics_batch
from embedprobe.errors import BadValueError


@dataclass(frozen=True)
class Summary:
    """Mean, standard deviation (``ddof`` as requested, NaN when ``n < ddof + 1``) and count."""

    mean: float
    std: float
    n: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Interval:
    """A bootstrap interval: point estimate on all clips, percentile bounds and the set-up used.

    ``n_valid`` counts the resamples where the metric was defined (a resample can lose every
    clip of a class; such a resample still counts for the other classes' average).
    """

    point: float
    low: float
    high: float
    level: float
    n_resamples: int
    n_valid: int
    seed: int
    method: str = "percentile"

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(values: Iterable[float], ddof: int = 1) -> Summary:
    """Mean/std/count of the finite values (NaN entries, e.g. undefined AUROCs, are left out)."""
    a = np.asarray(list(values), dtype=np.float64)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return Summary(float("nan"), float("nan"), 0)
    std = float(np.std(a, ddof=ddof)) if a.size > ddof else float("nan")
    return Summary(float(a.mean()), std, int(a.size))


def over_seeds(values: Iterable[float], ddof: int = 1) -> Summary:
    """Spread of one figure over seeds (sample std by default). Same as :func:`summarize`."""
    return summarize(values, ddof=ddof)


def last_fraction(
    history: Sequence[Mapping],
    *,
    split: str = "val",
    metrics: Sequence[str] = METRICS,
    fraction: float = 0.2,
    ddof: int = 1,
) -> dict[str, Summary]:
    """Mean and std of each metric over the evaluations in the last ``fraction`` of training.

    The evaluations kept are those whose step is greater than ``(1 - fraction) * last_step``
    (at least the final one), i.e. the last 20% of training *iterations*, as in the paper;
    with evaluations every ``eval_every`` steps that is the last 20% of the evaluations.

    Args:
        history: a probe's ``history_``: dicts with ``"step"`` and ``"metrics"`` mapping a set
            name (``"val"`` or an ``eval_sets`` name) to ``{metric: value}``.
        split: which set to summarise.
        metrics: metric names.
        fraction: the share of training steps at the end, in ``(0, 1]``.
        ddof: delta degrees of freedom of the std (1 = sample std).

    Returns:
        ``{metric: Summary}``.

    Raises:
        BadValueError: ``fraction`` outside ``(0, 1]``, an empty history, or a split that no
            evaluation recorded.
    """
    if not 0 < fraction <= 1:
        raise BadValueError("fraction", fraction, fix="Use a share in (0, 1], e.g. 0.2 for the last 20%.")
    rows = [h for h in history if split in h.get("metrics", {})]
    if not rows:
        seen = sorted({s for h in history for s in h.get("metrics", {})})
        raise BadValueError("split", split, seen, fix="Name a set the training history evaluated "
                            "(pass it to fit(..., eval_sets=...)).")
    last = max(int(h["step"]) for h in rows)
    cut = (1.0 - fraction) * last
    tail = [h for h in rows if h["step"] > cut] or [max(rows, key=lambda h: h["step"])]
    return {m: summarize((h["metrics"][split].get(m, np.nan) for h in tail), ddof=ddof) for m in metrics}


def bootstrap_weights(n: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_resamples, n)`` resample counts: row ``b`` says how often each clip was drawn."""
    idx = rng.integers(0, n, size=(n_resamples, n))
    flat = (idx + (np.arange(n_resamples) * n)[:, None]).ravel()
    return np.bincount(flat, minlength=n_resamples * n).reshape(n_resamples, n).astype(np.float64)


def bootstrap_ci(
    y_true: np.ndarray,
    proba: np.ndarray,
    *,
    metrics: Sequence[str] = METRICS,
    n_resamples: int = 1000,
    level: float = 0.95,
    random_state: int = 0,
    chunk: int = 100,
) -> dict[str, Interval]:
    """Percentile bootstrap interval of each metric over resamples of the test clips.

    Resamples draw ``N`` clips with replacement (not stratified). A metric that is undefined on
    a resample (all NaN, e.g. a class lost entirely for a 2-class AUROC) is left out and the
    count of the others is reported in ``n_valid``.

    Args:
        y_true: ``(N,)`` integer labels.
        proba: ``(N, K)`` scores, columns in class order.
        metrics: names from :data:`embedprobe.common.metrics.METRICS`.
        n_resamples: number of resamples.
        level: coverage of the interval, e.g. 0.95.
        random_state: seed of the resampling (the same seed gives the same interval).
        chunk: resamples computed at once (bounds memory at ``chunk * N`` floats per array).

    Returns:
        ``{metric: Interval}``.
    """
    if not 0 < level < 1:
        raise BadValueError("level", level, fix="Use a coverage in (0, 1), e.g. 0.95.")
    if n_resamples < 1:
        raise BadValueError("n_resamples", n_resamples, fix="Use at least 1 (1000 is usual).")
    y = np.asarray(y_true)
    n = y.shape[0]
    point = metrics_batch(y, proba, np.ones((1, n)), metrics)
    rng = np.random.default_rng(random_state)
    parts: dict[str, list[np.ndarray]] = {m: [] for m in metrics}
    for start in range(0, n_resamples, chunk):
        w = bootstrap_weights(n, min(chunk, n_resamples - start), rng)
        for m, v in metrics_batch(y, proba, w, metrics).items():
            parts[m].append(v)
    out: dict[str, Interval] = {}
    alpha = (1.0 - level) / 2.0
    for m in metrics:
        vals = np.concatenate(parts[m])
        vals = vals[np.isfinite(vals)]
        lo, hi = (np.quantile(vals, [alpha, 1.0 - alpha]) if vals.size else (np.nan, np.nan))
        out[m] = Interval(float(point[m][0]), float(lo), float(hi), float(level),
                          int(n_resamples), int(vals.size), int(random_state))
    return out


def fold_bootstrap_ci(
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    metrics: Sequence[str] = METRICS,
    n_resamples: int = 1000,
    level: float = 0.95,
    random_state: int = 0,
) -> dict[str, Interval]:
    """Percentile bootstrap interval of a metric averaged over folds with disjoint test sets.

    Each resample draws the clips of every fold with replacement within that fold, scores
    each fold and averages the folds, so the interval describes the same statistic as the
    reported fold mean (e.g. IEMOCAP's 10 speaker folds). With one fold it equals
    :func:`bootstrap_ci`.

    Args:
        folds: ``(y_true, proba)`` of each fold's test clips.
        metrics, n_resamples, level, random_state: as in :func:`bootstrap_ci`.
    """
    if len(folds) == 1:
        y, p = folds[0]
        return bootstrap_ci(y, p, metrics=metrics, n_resamples=n_resamples, level=level,
                            random_state=random_state)
    if not 0 < level < 1:
        raise BadValueError("level", level, fix="Use a coverage in (0, 1), e.g. 0.95.")
    rng = np.random.default_rng(random_state)
    point: dict[str, list[float]] = {m: [] for m in metrics}
    boot: dict[str, list[np.ndarray]] = {m: [] for m in metrics}
    for y, p in folds:
        y = np.asarray(y)
        for m, v in metrics_batch(y, p, np.ones((1, y.shape[0])), metrics).items():
            point[m].append(float(v[0]))
        w = bootstrap_weights(y.shape[0], n_resamples, rng)
        for m, v in metrics_batch(y, p, w, metrics).items():
            boot[m].append(v)
    alpha = (1.0 - level) / 2.0
    out: dict[str, Interval] = {}
    for m in metrics:
        stacked = np.vstack(boot[m])  # (folds, resamples)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # resamples where every fold is undefined
            vals = np.nanmean(np.where(np.isfinite(stacked), stacked, np.nan), axis=0)
        vals = vals[np.isfinite(vals)]
        lo, hi = (np.quantile(vals, [alpha, 1.0 - alpha]) if vals.size else (np.nan, np.nan))
        out[m] = Interval(float(np.nanmean(point[m])), float(lo), float(hi), float(level),
                          int(n_resamples), int(vals.size), int(random_state), method="fold-percentile")
    return out


AGGREGATES: tuple[str, ...] = ("mean", "pooled")
"""How a cell's folds make one number: ``mean`` scores every fold and averages the folds (the
default); ``pooled`` scores each seed once over the test predictions of all its folds
concatenated, as nkululeko and EmoBox report leave-one-speaker-out results."""


def pool(folds: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """The ``(y_true, proba)`` of several folds concatenated (fold order kept)."""
    if not folds:
        raise BadValueError("number of folds to pool", 0, fix="Pool at least one fold's predictions.")
    return (np.concatenate([np.asarray(y) for y, _ in folds]),
            np.concatenate([np.asarray(p, dtype=np.float64) for _, p in folds], axis=0))


def pooled_scores(folds: Sequence[tuple[np.ndarray, np.ndarray]], *,
                  metrics: Sequence[str] = METRICS) -> dict[str, float]:
    """Each metric computed once over the predictions of all ``folds`` (``pooled`` aggregation).

    Example:
        >>> y1, p1 = np.array([0, 1]), np.array([[0.9, 0.1], [0.2, 0.8]])
        >>> y2, p2 = np.array([0, 1]), np.array([[0.4, 0.6], [0.3, 0.7]])
        >>> round(pooled_scores([(y1, p1), (y2, p2)], metrics=["uacc"])["uacc"], 3)
        0.75
    """
    y, p = pool(folds)
    return {m: float(v[0]) for m, v in metrics_batch(y, p, np.ones((1, y.shape[0])), metrics).items()}

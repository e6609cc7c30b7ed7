"""A light, deterministic learning-rate x batch-size search on the validation set only.

The paper (section 4) shows that "even light parameter tuning" - 4 learning rates in
[1e-4, 1e-2] and a few batch sizes - moves wF1 by several points, and then keeps the setting
fixed. :func:`tune` does exactly that: every grid point is a clone of the probe trained with
the same seed and the same validation data; the best validation score (the probe's
``monitor`` metric at its kept weights) wins; ties go to the earlier grid point. The test sets
are never looked at.

Example:
    >>> import numpy as np
    >>> from embedprobe.probes.linear import LinearProbe
    >>> rng = np.random.default_rng(0)
    >>> X = np.r_[rng.normal(-1, 1, (80, 3)), rng.normal(1, 1, (80, 3))]
    >>> y = np.repeat([0, 1], 80)
    >>> res = tune(LinearProbe(max_steps=200, random_state=0), X, y, lrs=(1e-3, 1e-2), batch_sizes=(32,))
    >>> len(res.results), sorted(res.best_params)
    (2, ['batch_size', 'lr'])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from embedprobe.errors import BadValueError

LRS: tuple[float, ...] = (1e-4, 5e-4, 2e-3, 1e-2)
"""Four learning rates spread log-evenly over the paper's [1e-4, 1e-2]."""
BATCH_SIZES: tuple[int, ...] = (64, 128, 256)


@dataclass
class TuneResult:
    """Outcome of :func:`tune`.

    Attributes:
        best_params: ``{"lr": ..., "batch_size": ...}`` of the winner.
        best_score: its validation score.
        best_estimator: the winner, already fitted.
        results: one dict per grid point: ``lr``, ``batch_size``, ``score``, ``best_step``,
            ``n_steps``, ``fit_time``.
        metric: the validation metric compared (the probe's ``monitor``).
    """

    best_params: dict[str, Any]
    best_score: float
    best_estimator: Any
    results: list[dict[str, Any]] = field(default_factory=list)
    metric: str = "auroc"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (without the fitted estimator)."""
        return {"best_params": self.best_params, "best_score": self.best_score,
                "metric": self.metric, "results": self.results}


def tune(
    estimator: Any,
    X: Any,
    y: Any,
    *,
    X_val: Any = None,
    y_val: Any = None,
    groups: Any = None,
    lrs: Sequence[float] = LRS,
    batch_sizes: Sequence[int] = BATCH_SIZES,
) -> TuneResult:
    """Grid-search ``lr`` x ``batch_size`` of a probe on validation data.

    Args:
        estimator: an unfitted probe (its other parameters, including ``random_state``, are
            kept; pass an int ``random_state`` for a deterministic search).
        X, y: training data (pooled array or FrameSet).
        X_val, y_val: validation data; without them every grid point uses the probe's own
            seeded hold-out, which is the same split for all points.
        groups: passed to ``fit``.
        lrs, batch_sizes: the grid.

    Returns:
        :class:`TuneResult`.
    """
    from sklearn.base import clone  # scikit-learn loads on first use, not when the CLI starts

    if not lrs or not batch_sizes:
        raise BadValueError("tuning grid", {"lrs": list(lrs), "batch_sizes": list(batch_sizes)},
                            fix="Give at least one learning rate and one batch size.")
    best: tuple[float, dict[str, Any], Any] | None = None
    results: list[dict[str, Any]] = []
    for lr in lrs:
        for bs in batch_sizes:
            est = clone(estimator).set_params(lr=float(lr), batch_size=int(bs))
            est.fit(X, y, X_val=X_val, y_val=y_val, groups=groups)
            score = float(est.best_score_)
            results.append({"lr": float(lr), "batch_size": int(bs), "score": score,
                            "best_step": est.best_step_, "n_steps": est.n_steps_,
                            "fit_time": est.fit_time_})
            if best is None or score > best[0] or (best[0] != best[0] and score == score):
                best = (score, {"lr": float(lr), "batch_size": int(bs)}, est)
    return TuneResult(best[1], best[0], best[2], results, str(getattr(estimator, "monitor", "auroc")))

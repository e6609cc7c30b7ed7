"""``SVMProbe`` ("svm"): the scikit-learn reference, an RBF support-vector machine, C and gamma by validation.

An ``SVC`` with an RBF kernel on standardised pooled features (``StandardScaler`` inside),
whose decision values are calibrated to probabilities by Platt sigmoids fitted on out-of-fold
decision values (``CalibratedClassifierCV(..., ensemble=False)``, scikit-learn's replacement
for ``SVC(probability=True)``, deprecated in 1.9; unshuffled folds, so no seed is involved):
AUROC ranks by calibrated scores and the decision is the argmax of those probabilities, the
same rule as every probe. C and the kernel width gamma are chosen together by validation UAR over
``Cs`` x ``gammas`` (gamma = factor / D on standardised features; factor 1 is scikit-learn's
``gamma="scale"`` there), ties to smaller C, then smaller gamma (the smoother boundary). The
rest (validation, ``history_``, determinism) is :class:`embedprobe.probes.logreg.ReferenceProbe`.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = np.r_[rng.normal(-1, 1, (60, 4)), rng.normal(1, 1, (60, 4))]
    >>> y = np.repeat(["sad", "happy"], 60)
    >>> probe = SVMProbe(random_state=0).fit(X, y)
    >>> probe.classes_.tolist(), sorted(probe.best_params_)
    (['happy', 'sad'], ['C', 'gamma'])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from embedprobe.errors import BadValueError
from embedprobe.probes.logreg import C_GRID, REFERENCE_PARAMS_DOC, ReferenceProbe
from embedprobe.probes.registry import register

GAMMA_FACTORS: tuple[float, ...] = (0.1, 1.0, 10.0)
"""The default RBF widths, as multiples of 1/D (D = pooled feature width), smallest first."""

CALIBRATION_FOLDS = 5
"""Folds of the cross-validation that fits the Platt sigmoids (libsvm's ``probability=True`` count)."""


def _svcs(obj: Any) -> list[SVC]:
    """The fitted SVCs inside a pipeline / calibrated model (for the read-only fix-up)."""
    if obj is None:
        return []
    if isinstance(obj, SVC):
        return [obj]
    inner = [obj[-1]] if hasattr(obj, "steps") else []
    inner += [c.estimator for c in getattr(obj, "calibrated_classifiers_", [])]
    inner += [obj.estimator] if isinstance(obj, FrozenEstimator) else []
    return [s for o in inner for s in _svcs(o)]


class SVMProbe(ReferenceProbe):
    __doc__ = ("Support-vector machine (scikit-learn SVC, RBF kernel, Platt-calibrated probabilities) on standardised "
               "pooled features; C and gamma chosen by validation UAR.\n" + REFERENCE_PARAMS_DOC + """
    SVM only:
        gammas: candidate kernel widths as multiples of 1/D, smallest (smoothest) first.
        cache_size: libsvm kernel cache in MB.
""")

    def __init__(
        self,
        *,
        Cs: Sequence[float] = C_GRID,
        gammas: Sequence[float] = GAMMA_FACTORS,
        class_weight: str | None = "balanced",
        cache_size: float = 200.0,
        select: str = "uacc",
        val_fraction: float = 0.15,
        pooling: str = "mean",
        n_threads: int | None = None,
        random_state: int | None = None,
    ):
        self.Cs = Cs
        self.gammas = gammas
        self.class_weight = class_weight
        self.cache_size = cache_size
        self.select = select
        self.val_fraction = val_fraction
        self.pooling = pooling
        self.n_threads = n_threads
        self.random_state = random_state

    def _check_params(self) -> None:
        super()._check_params()
        if not len(self.gammas) or not all(float(g) > 0 for g in self.gammas):
            raise BadValueError("gammas", self.gammas, fix="Pass positive multiples of 1/D, e.g. (0.1, 1, 10).")

    def _candidates(self, n_features: int) -> list[dict[str, Any]]:
        return [{"C": float(c), "gamma": float(g) / n_features}
                for c in sorted(self.Cs) for g in sorted(self.gammas)]

    def _default(self, n_features: int) -> dict[str, Any]:
        return {"C": 1.0, "gamma": 1.0 / n_features}

    def _estimator(self, seed: int, **params: Any) -> Any:
        return SVC(C=params["C"], gamma=params["gamma"], kernel="rbf", class_weight=self.class_weight,
                   cache_size=self.cache_size)

    def _fit_model(self, X: np.ndarray, y: np.ndarray, seed: int, params: dict[str, Any]) -> Any:
        """Scaler + SVC, its decision values calibrated to probabilities (Platt, one-vs-rest).

        The sigmoids are fitted on out-of-fold decision values (stratified, unshuffled
        ``CALIBRATION_FOLDS``-fold cross-validation, fewer when a class has fewer clips; the SVC
        itself is fitted once on all of ``X``): deterministic, no seed involved.
        """
        n_splits = min(CALIBRATION_FOLDS, int(np.bincount(y).min()))
        svc = self._estimator(seed, **params)
        if n_splits >= 2:
            model = CalibratedClassifierCV(svc, method="sigmoid", cv=StratifiedKFold(n_splits), ensemble=False)
        else:  # a class with a single clip: sigmoids fitted on the training decision values
            model = CalibratedClassifierCV(FrozenEstimator(make_pipeline(StandardScaler(), svc).fit(X, y)),
                                           method="sigmoid")
            return model.fit(X, y)
        return make_pipeline(StandardScaler(), model).fit(X, y)

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        for est in _svcs(self.__dict__.get("model_")):  # libsvm writes through its arrays' buffers:
            for name, value in vars(est).items():     # read-only ones (memmaps) fail
                if isinstance(value, np.ndarray) and not value.flags.writeable:
                    setattr(est, name, value.copy())

    def _work(self, n_clips: int) -> float:
        svcs = _svcs(getattr(self, "model_", None))
        n_sv = int(svcs[0].support_.size) if svcs else 100
        return 3.0 * n_clips * n_sv * getattr(self, "n_features_in_", 1)


register("svm", SVMProbe, "scikit-learn RBF SVM (Platt probabilities) on standardised pooled features, "
         "C and gamma by validation UAR")

"""``SVMProbe`` ("svm"): the scikit-learn reference, an RBF support-vector machine, C and gamma by validation.

An ``SVC`` with an RBF kernel on standardised pooled features (``StandardScaler`` inside),
``probability=True``: ``predict_proba`` is libsvm's Platt calibration (fitted by an internal
5-fold cross-validation of the training part, seeded by ``random_state``), so AUROC ranks by
calibrated scores and the decision is the argmax of those probabilities, the same rule as every
probe. C and the kernel width gamma are chosen together by validation UAR over
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
from sklearn.svm import SVC

from embedprobe.errors import BadValueError
from embedprobe.probes.logreg import C_GRID, REFERENCE_PARAMS_DOC, ReferenceProbe
from embedprobe.probes.registry import register

GAMMA_FACTORS: tuple[float, ...] = (0.1, 1.0, 10.0)
"""The default RBF widths, as multiples of 1/D (D = pooled feature width), smallest first."""


class SVMProbe(ReferenceProbe):
    __doc__ = ("Support-vector machine (scikit-learn SVC, RBF kernel, Platt probabilities) on standardised "
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
        val_fraction: float = 0.15,
        pooling: str = "mean",
        n_threads: int | None = None,
        random_state: int | None = None,
    ):
        self.Cs = Cs
        self.gammas = gammas
        self.class_weight = class_weight
        self.cache_size = cache_size
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
        return SVC(C=params["C"], gamma=params["gamma"], kernel="rbf", probability=True,
                   class_weight=self.class_weight, cache_size=self.cache_size, random_state=seed)

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        svc = self.__dict__.get("model_", [None])[-1]
        if svc is not None:  # libsvm writes through its arrays' buffers: read-only ones (memmaps) fail
            for name, value in vars(svc).items():
                if isinstance(value, np.ndarray) and not value.flags.writeable:
                    setattr(svc, name, value.copy())

    def _work(self, n_clips: int) -> float:
        model = getattr(self, "model_", None)
        n_sv = int(model[-1].support_.size) if model is not None else 100
        return 3.0 * n_clips * n_sv * getattr(self, "n_features_in_", 1)


register("svm", SVMProbe, "scikit-learn RBF SVM (Platt probabilities) on standardised pooled features, "
         "C and gamma by validation UAR")

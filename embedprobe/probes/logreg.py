"""``LogRegProbe`` ("logreg"): the scikit-learn reference, logistic regression with C chosen on validation.

Also home of :class:`ReferenceProbe`, the shell shared by the classical reference probes
(``logreg`` here, ``svm`` in :mod:`embedprobe.probes.svm`): a scikit-learn estimator on
standardised pooled features (``StandardScaler`` inside), whose hyper-parameters are chosen
on the validation part only, by validation UAR (balanced accuracy of the argmax of
``predict_proba``, the decision the matrix scores), ties to the simpler candidate (the
earlier one in :meth:`ReferenceProbe._candidates`: smaller C, then smaller RBF gamma).

They plug into the cross-corpus matrix like the torch probes: ``fit`` takes the same
arguments (``X_val``/``y_val``, ``eval_sets``, ``groups``, frames), and the attributes the
runner reads are there. Training is not iterative, so ``history_`` holds a single evaluation
(``step`` 1) of the validation set and every ``eval_sets`` entry by the final model: the
"last 20% of training" confidence figures are that one final value, with std NaN (one
evaluation; no fake spread). They are deterministic: for given data every seed gives the same
model (``random_state`` only seeds the hold-out made when ``fit`` gets no ``X_val``), so
the spread over seeds of a matrix cell is 0.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = np.r_[rng.normal(-1, 1, (60, 4)), rng.normal(1, 1, (60, 4))]
    >>> y = np.repeat(["sad", "happy"], 60)
    >>> probe = LogRegProbe(random_state=0).fit(X, y)
    >>> probe.classes_.tolist(), probe.predict_proba(X[:2]).shape, probe.history_[0]["step"]
    (['happy', 'sad'], (2, 2), 1)
"""

from __future__ import annotations

import time
from abc import ABCMeta, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d, validate_data

from embedprobe.common.metrics import METRICS, metrics_batch
from embedprobe.common.threads import check_threads, choose_threads, limit_threads
from embedprobe.errors import BadValueError
from embedprobe.probes.features import POOLINGS, FrameSet
from embedprobe.probes.registry import register
from embedprobe.probes.sampling import stratified_holdout

C_GRID: tuple[float, ...] = (1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0)
"""The default grid of the inverse regularisation strength C (smallest = simplest first)."""
SELECTS: tuple[str, ...] = ("uacc", "logloss")
"""Validation criteria of the choice: UAR of the argmax, or the mean log-loss of ``predict_proba``."""

REFERENCE_PARAMS_DOC = """
    Hyper-parameters are chosen on the validation part only: ``fit(X_val=..., y_val=...)``
    (the matrix passes each fold's validation speakers), or else ``val_fraction`` of each class
    (x group) of ``X``, held out with ``random_state`` (the model is then trained on the rest,
    as the torch probes are): the model kept is the one validated. The criterion is validation UAR (balanced
    accuracy of the argmax of ``predict_proba``), ties to the earlier (simpler) candidate.

    Args:
        Cs: candidate values of C, in order of preference on ties (smallest first).
        select: the validation criterion: ``"uacc"`` (UAR of the argmax, the default) or
            ``"logloss"`` (mean cross-entropy of ``predict_proba``, lower is better). On a
            validation part of one or two speakers UAR moves in steps of a few clips, and the
            best of many candidates is mostly the luckiest (validation UAR .79-.81 against test
            .70-.72 on EmoDB's speaker folds); log-loss, a proper score of every clip's
            probabilities, is a steadier criterion (``benchmarks/probe_quality.py``).
        class_weight: ``"balanced"`` (each class weighted by its inverse frequency, as the torch
            probes' class-balanced batches), None, or ``{encoded class index: weight}``.
        val_fraction: share held out for the choice when ``fit`` gets no ``X_val``; 0, or a
            hold-out too small to hold 2 classes, fits the defaults (C=1; gamma=1/D for the
            SVM) without a choice.
        pooling: pooling of frame input (``"mean"`` or ``"mean+std"``); ignored for pooled input.
        n_threads: BLAS / OpenMP threads for fit and prediction; None chooses from the work
            (one thread for these sizes; see :mod:`embedprobe.common.threads`).
        random_state: seed of the hold-out made without ``X_val`` (the only randomness).

    Attributes:
        classes_: class labels, the column order of ``predict_proba``.
        n_features_in_: width of the pooled feature vectors the probe consumes.
        frame_dim_: frame width when fitted on a FrameSet, else None.
        model_: the fitted ``StandardScaler`` + estimator pipeline.
        best_params_: the chosen hyper-parameters; best_score_: their validation score (UAR,
            or minus the mean log-loss with ``select="logloss"``; NaN without a validation set).
        val_scores_: ``[(params, validation score)]`` of every candidate, in grid order.
        history_: one evaluation ``{"step": 1, "loss": nan, "lr": nan, "metrics": {set: {metric:
            value}}}`` of ``"val"`` and every ``eval_sets`` name by the final model.
        n_steps_, best_step_: 1 (one fit, no training curve); stopped_early_: False.
        n_iter_ (logreg): solver iterations of the final fit.
        n_threads_: threads used for fitting; fit_time_: wall seconds spent in ``fit``.
"""


def _seed(random_state: Any) -> int:
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        return int(random_state) % (2**32)
    return int(check_random_state(random_state).randint(0, 2**31 - 1))


class ReferenceProbe(ClassifierMixin, BaseEstimator, metaclass=ABCMeta):
    """Base of the scikit-learn reference probes; subclasses define the grid and the estimator."""

    deterministic = True
    """Every seed gives the same model on the same data (recorded as ``deterministic`` in matrix cells)."""

    @abstractmethod
    def _candidates(self, n_features: int) -> list[dict[str, Any]]:
        """The hyper-parameter candidates, simplest first (the first wins a tie)."""

    @abstractmethod
    def _default(self, n_features: int) -> dict[str, Any]:
        """The hyper-parameters used when there is no validation set to choose on."""

    @abstractmethod
    def _estimator(self, seed: int, **params: Any) -> Any:
        """An unfitted scikit-learn classifier with ``params`` (scaled input; ``predict_proba``)."""

    @abstractmethod
    def _work(self, n_clips: int) -> float:
        """Floating-point operations of a prediction of ``n_clips`` clips (for the thread choice)."""

    # ------------------------------------------------------------------ input

    def _pool(self, X: Any) -> np.ndarray:
        return X.pool(self.pooling).numpy().astype(np.float64)

    def _input(self, X: Any) -> np.ndarray:
        """Pooled float64 features of a fitted probe's input (FrameSet or 2-D array)."""
        if isinstance(X, FrameSet):
            if self.frame_dim_ not in (None, X.dim):
                raise BadValueError("frame dim", X.dim, [self.frame_dim_],
                                    fix="Use frames of the layer the probe was trained on.")
            X = self._pool(X)
            if X.shape[1] != self.n_features_in_:
                raise BadValueError("pooled width of the FrameSet", X.shape[1], [self.n_features_in_])
            return X
        if self.frame_dim_ is not None:  # fitted on frames, predicting on pooled vectors
            X = check_array(X, dtype=[np.float64, np.float32])
            if X.shape[1] != self.n_features_in_:
                raise BadValueError("number of features", X.shape[1], [self.n_features_in_],
                                    fix=f"Pass {self.n_features_in_} features ({self.pooling}-pooled frames).")
            return X
        return validate_data(self, X, dtype=[np.float64, np.float32], reset=False)

    def _check_params(self) -> None:
        if not 0 <= self.val_fraction < 1:
            raise BadValueError("val_fraction", self.val_fraction, fix="Use a share in [0, 1), e.g. 0.15.")
        if self.select not in SELECTS:
            raise BadValueError("select", self.select, SELECTS)
        if self.pooling not in POOLINGS:
            raise BadValueError("pooling", self.pooling, POOLINGS)
        if not (self.class_weight in ("balanced", None) or isinstance(self.class_weight, Mapping)):
            raise BadValueError("class_weight", self.class_weight, ["balanced", None],
                                fix="Or pass a dict {class: weight}.")
        if not len(self.Cs) or not all(float(c) > 0 for c in self.Cs):
            raise BadValueError("Cs", self.Cs, fix="Pass positive values of C, e.g. (0.1, 1, 10).")
        check_threads(self.n_threads, "n_threads")

    # ------------------------------------------------------------------ fit

    def fit(
        self,
        X: Any,
        y: Any,
        *,
        X_val: Any = None,
        y_val: Any = None,
        groups: Any = None,
        eval_sets: Mapping[str, tuple[Any, Any]] | None = None,
        X_aug: Sequence[Any] | None = None,
        aug_rate: float = 0.0,
    ) -> ReferenceProbe:
        """Choose the hyper-parameters on validation, then fit (arguments as ``TorchProbe.fit``).

        ``X_aug`` / ``aug_rate`` exist for the runner's sake: augmentation needs a training
        loop, so ``aug_rate`` > 0 is refused.

        Returns:
            self
        """
        t0 = time.perf_counter()
        self._check_params()
        if float(aug_rate) != 0.0:
            raise BadValueError("aug_rate", aug_rate, [0.0], fix=f"{type(self).__name__} has no training "
                                "loop to augment; use --augment-rate 0, or the linear or mlp probe.")
        self.frame_dim_ = None
        if isinstance(X, FrameSet):
            if hasattr(self, "feature_names_in_"):  # left by an earlier fit on a DataFrame
                del self.feature_names_in_
            self.frame_dim_ = X.dim
            y = column_or_1d(y, warn=True)
            X = self._pool(X)
            if y.shape[0] != X.shape[0]:
                raise BadValueError("number of labels", y.shape[0], [X.shape[0]],
                                    fix="Pass one label per clip of the FrameSet.")
            self.n_features_in_ = X.shape[1]
        else:
            X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
        check_classification_targets(y)
        self.classes_, y_enc = np.unique(y, return_inverse=True)
        y_enc = y_enc.ravel()
        if self.classes_.size < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 classes in y, got 1 class "
                             f"({self.classes_[0]!r}); check the label map and the split.")
        if groups is not None and np.asarray(groups).shape[0] != y_enc.shape[0]:
            raise BadValueError("number of groups", np.asarray(groups).shape[0], [y_enc.shape[0]])
        seed = _seed(self.random_state)
        d = X.shape[1]
        self.n_threads_ = choose_threads(self._work(X.shape[0]) * 10.0, requested=self.n_threads)
        with limit_threads(self.n_threads_):
            val = self._validation(X, y_enc, X_val, y_val, groups, seed)
            if val is None:
                self.best_params_, self.best_score_, self.val_scores_ = self._default(d), float("nan"), []
                self.model_ = self._fit_model(X, y_enc, seed, self.best_params_)
            else:  # the model kept is the one validated (trained on X, or on X less the hold-out)
                Xt, yt, Xv, yv = val
                models = [self._fit_model(Xt, yt, seed, p) for p in self._candidates(d)]
                self.val_scores_ = [(p, self._criterion(m, Xv, yv))
                                    for p, m in zip(self._candidates(d), models, strict=True)]
                best = int(np.argmax([s for _, s in self.val_scores_]))  # first maximum: the simpler
                self.best_params_, self.best_score_ = self.val_scores_[best]
                self.model_ = models[best]
            sets = {"val": (val[2], val[3])} if val is not None else {}
            for name, (Xe, ye) in (eval_sets or {}).items():
                if name == "val":
                    raise BadValueError("eval_sets name", name, fix="'val' is reserved for the validation set.")
                sets[str(name)] = (self._input(Xe), self._encode(ye))
            metrics = {name: self._scores(self._proba(Xs), ys) for name, (Xs, ys) in sets.items()}
        self.history_ = [{"step": 1, "loss": float("nan"), "lr": float("nan"), "metrics": metrics}]
        self.n_steps_ = self.best_step_ = 1
        self.stopped_early_ = False
        self.fit_time_ = time.perf_counter() - t0
        return self

    def _validation(self, X, y_enc, X_val, y_val, groups, seed) -> tuple | None:
        """``(X_train, y_train, X_val, y_val)`` the choice is made on, or None (no choice)."""
        if X_val is not None:
            if y_val is None:
                raise BadValueError("y_val", None, fix="Pass y_val together with X_val.")
            return X, y_enc, self._input(X_val), self._encode(y_val)
        if self.val_fraction > 0:
            tr, va = stratified_holdout(y_enc, self.val_fraction, np.random.default_rng([seed, 1]),
                                        None if groups is None else np.asarray(groups))
            if va.size and np.unique(y_enc[va]).size >= 2 and np.unique(y_enc[tr]).size == self.classes_.size:
                return X[tr], y_enc[tr], X[va], y_enc[va]
        return None

    def _fit_model(self, X: np.ndarray, y: np.ndarray, seed: int, params: dict[str, Any]) -> Any:
        return make_pipeline(StandardScaler(), self._estimator(seed, **params)).fit(X, y)

    def _encode(self, y: Any) -> np.ndarray:
        """Indices of ``y`` in ``classes_``; a label never seen in training gets a column of its own
        (probability 0), as ``TorchProbe`` does."""
        y = column_or_1d(np.asarray(y), warn=True)
        index = {c: i for i, c in enumerate(self.classes_.tolist())}
        for c in y.tolist():
            index.setdefault(c, len(index))
        return np.fromiter((index[c] for c in y.tolist()), dtype=np.int64, count=y.shape[0])

    @staticmethod
    def _padded(proba: np.ndarray, y: np.ndarray) -> np.ndarray:
        k = max(proba.shape[1], int(y.max()) + 1 if y.size else 0)
        return np.pad(proba, ((0, 0), (0, k - proba.shape[1])))

    def _criterion(self, model: Any, X: np.ndarray, y: np.ndarray) -> float:
        """The validation score of ``model`` under ``select`` (higher is better)."""
        p = self._padded(model.predict_proba(X), y)
        if self.select == "logloss":  # a label unseen in training: probability 0, clipped as scikit-learn does
            return -float(np.mean(-np.log(np.clip(p[np.arange(y.shape[0]), y], 1e-15, None))))
        return float(metrics_batch(y, p, np.ones((1, y.shape[0])), ("uacc",))["uacc"][0])

    def _scores(self, proba: np.ndarray, y: np.ndarray) -> dict[str, float]:
        vals = metrics_batch(y, self._padded(proba, y), np.ones((1, y.shape[0])), METRICS)
        return {m: float(v[0]) for m, v in vals.items()}

    # ------------------------------------------------------------------ predict

    def prediction_threads(self, n_clips: int) -> int:
        """Threads :meth:`predict_proba` uses for ``n_clips`` clips (``n_threads`` if set)."""
        return choose_threads(self._work(n_clips), requested=self.n_threads)

    def _proba(self, X: np.ndarray) -> np.ndarray:
        p = np.asarray(self.model_.predict_proba(X), dtype=np.float64)
        return p / p.sum(axis=1, keepdims=True) if p.size else p

    def predict_proba(self, X: Any) -> np.ndarray:
        """``(N, K)`` class probabilities; columns follow ``classes_``."""
        check_is_fitted(self)
        X = self._input(X)
        with limit_threads(self.prediction_threads(X.shape[0])):
            return self._proba(X)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Log of :meth:`predict_proba`."""
        check_is_fitted(self)
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class label per clip (the argmax of :meth:`predict_proba`)."""
        check_is_fitted(self)
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


class LogRegProbe(ReferenceProbe):
    __doc__ = ("Logistic regression (scikit-learn, lbfgs, multinomial) on standardised pooled features; "
               "C chosen by validation UAR.\n" + REFERENCE_PARAMS_DOC)

    def __init__(
        self,
        *,
        Cs: Sequence[float] = C_GRID,
        class_weight: str | None = "balanced",
        max_iter: int = 5000,
        select: str = "uacc",
        val_fraction: float = 0.15,
        pooling: str = "mean",
        n_threads: int | None = None,
        random_state: int | None = None,
    ):
        self.Cs = Cs
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.select = select
        self.val_fraction = val_fraction
        self.pooling = pooling
        self.n_threads = n_threads
        self.random_state = random_state

    def _candidates(self, n_features: int) -> list[dict[str, Any]]:
        return [{"C": float(c)} for c in sorted(self.Cs)]

    def _default(self, n_features: int) -> dict[str, Any]:
        return {"C": 1.0}

    def _estimator(self, seed: int, **params: Any) -> Any:
        return LogisticRegression(C=params["C"], class_weight=self.class_weight, max_iter=self.max_iter)

    def fit(self, X: Any, y: Any, **kwargs: Any) -> LogRegProbe:
        super().fit(X, y, **kwargs)
        self.n_iter_ = int(np.max(self.model_[-1].n_iter_))  # lbfgs iterations of the final fit
        return self

    def _work(self, n_clips: int) -> float:
        k = len(getattr(self, "classes_", ())) or 2
        return 2.0 * n_clips * getattr(self, "n_features_in_", 1) * k


register("logreg", LogRegProbe, "scikit-learn logistic regression on standardised pooled features, C by validation UAR")

"""The scikit-learn estimator shell shared by the torch probes: input checks, fit, predict.

The training loop itself is in :mod:`embedprobe.probes.training`; torch is imported only when
a probe is fitted or used, so importing this module stays light.
"""

from __future__ import annotations

import time
import warnings
from abc import ABCMeta, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d, validate_data

from embedprobe.common.metrics import METRICS
from embedprobe.common.threads import check_threads, choose_threads, limit_threads
from embedprobe.errors import BadValueError
from embedprobe.probes.augment import check_switches, refuse_frame_augment
from embedprobe.probes.features import POOLINGS, FrameSet
from embedprobe.probes.sampling import BALANCES, stratified_holdout

SHARED_PARAMS_DOC = """
    Training is online: each step draws a fresh class-balanced batch (see ``balance``), applies
    the embedding augmentations, and takes one AdamW step on the cross-entropy. Every
    ``eval_every`` steps the validation set (and every ``eval_sets`` entry) is scored and the
    scores are appended to ``history_``. When the monitored validation metric has not improved
    by ``min_delta`` for ``patience`` evaluations, the learning rate is multiplied by
    ``lr_decay`` (at most ``n_lr_drops`` times); the next plateau stops training. The final
    weights are those of the best validation evaluation (``best_step_``).

    Args:
        lr: AdamW learning rate.
        batch_size: clips per step.
        max_steps: hard limit on training steps.
        min_steps: warm-up: evaluations before this step are recorded but neither select the
            kept weights nor count towards patience (a tiny validation set can otherwise
            crown an under-trained early model).
        eval_every: steps between evaluations.
        patience: evaluations without improvement before a learning-rate drop or stop.
        min_delta: smallest increase of the monitored metric that counts as improvement.
        lr_decay: factor applied to the learning rate at a plateau.
        n_lr_drops: plateaus answered by a learning-rate drop before stopping.
        weight_decay: AdamW's decoupled weight decay (shrinks every weight by ``lr *
            weight_decay`` per step, whatever the loss; 0 when ``l2`` regularises).
        l2: L2 penalty ``l2 / 2 * ||weights||^2`` added to the mean cross-entropy (coupled, as
            in scikit-learn's ``LogisticRegression``, where ``l2 = 1 / (C * n_train)``; biases are
            exempt). AdamW's decoupled decay shrinks by ``lr * weight_decay`` per step whatever
            the loss (1e-4 over a few hundred steps is no regularisation at all), and Adam's
            normalised steps leave the optimum it reaches unlike L2's; with ``l2`` the probe
            converges to the regularised classifier, whose decisions (argmax) are what UAR
            measures (``benchmarks/probe_quality.py``).
        val_fraction: share of each class (x group) held out for validation when ``fit`` gets
            no ``X_val``; 0 disables validation (training runs ``max_steps``; last weights).
        monitor: validation metric driving early stopping and the best-weights choice.
        balance: batch sampling: ``"class"`` (class uniformly, then a clip), ``"class_group"``
            (class, then corpus, then clip; needs ``groups``) or ``"none"`` (clips uniformly).
        pooling: pooling of frame input (``"mean"`` or ``"mean+std"``); ignored for pooled input.
        frame_mask: probability of dropping each frame before pooling (frame input only).
        mix_prob: probability of joining a same-class clip's frames (frame input only).
        noise_std: std of gaussian noise on the standardised features (0 = off).
        device: torch device (``"cpu"`` or e.g. ``"cuda"``).
        n_threads: torch / BLAS threads for training and prediction; None chooses from the work
            of one step (one thread for small probes; see :mod:`embedprobe.common.threads`).
        random_state: seed (int) or None; fixes hold-out, init, sampling, dropout and noise.
        verbose: print one line per evaluation when > 0.

    Attributes:
        classes_: class labels, the column order of ``predict_proba``.
        eval_classes_: ``classes_`` followed by any label met only in ``y_val`` or
            ``eval_sets`` (scored with probability 0, with a warning).
        n_features_in_: width of the pooled feature vectors the probe consumes.
        frame_dim_: frame width when fitted on a FrameSet, else None.
        mean_, scale_: standardisation fitted on the training clips (pooled).
        net_: the trained torch module.
        history_: one dict per evaluation: ``{"step", "loss", "lr", "metrics": {set: {metric:
            value}}}`` where set is ``"val"`` and each ``eval_sets`` name.
        best_step_, best_score_: step and monitored validation score of the kept weights.
        n_steps_: steps trained; stopped_early_: whether a plateau ended training.
        n_threads_: threads used for training.
        fit_time_: wall seconds spent in ``fit``.
"""


def _seed(random_state: Any) -> int:
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        return int(random_state) % (2**32)
    return int(check_random_state(random_state).randint(0, 2**31 - 1))


class TorchProbe(ClassifierMixin, BaseEstimator, metaclass=ABCMeta):
    """Base class; subclasses list every parameter in ``__init__`` and implement ``_make_net``."""

    @abstractmethod
    def _make_net(self, d_in: int, n_classes: int, gen: Any) -> Any:
        """The torch module mapping ``(B, d_in)`` standardised features to ``(B, n_classes)`` logits."""

    # ------------------------------------------------------------------ checks

    def _check_params(self) -> None:
        if not self.min_steps >= 0:
            raise BadValueError("min_steps", self.min_steps, fix="Use a step count >= 0, e.g. 200.")
        positive = {"lr": self.lr, "batch_size": self.batch_size, "max_steps": self.max_steps,
                    "eval_every": self.eval_every, "patience": self.patience}
        for name, value in positive.items():
            if not value > 0:
                raise BadValueError(name, value, fix=f"{name} must be > 0.")
        for name, value in {"weight_decay": self.weight_decay, "l2": self.l2}.items():
            if not value >= 0:
                raise BadValueError(name, value, fix=f"{name} must be >= 0 (0 = off).")
        if not 0 < self.lr_decay <= 1:
            raise BadValueError("lr_decay", self.lr_decay, fix="Use a factor in (0, 1], e.g. 0.1.")
        if not 0 <= self.val_fraction < 1:
            raise BadValueError("val_fraction", self.val_fraction, fix="Use a share in [0, 1), e.g. 0.15.")
        if self.monitor not in METRICS:
            raise BadValueError("monitor", self.monitor, METRICS)
        if self.balance not in BALANCES:
            raise BadValueError("balance", self.balance, BALANCES)
        if self.pooling not in POOLINGS:
            raise BadValueError("pooling", self.pooling, POOLINGS)
        check_switches(self.frame_mask, self.mix_prob, self.noise_std)
        check_threads(self.n_threads, "n_threads")

    def _macs(self) -> int:
        """Multiply-adds of the network for one clip (the sum of its weight matrices)."""
        dims = (self.n_features_in_, *tuple(getattr(self, "hidden", ())), len(self.classes_))
        return sum(a * b for a, b in zip(dims[:-1], dims[1:], strict=False))

    def prediction_threads(self, n_clips: int, chunk: int = 16384) -> int:
        """Threads :meth:`predict_proba` uses for ``n_clips`` clips (``n_threads`` if set)."""
        return choose_threads(2.0 * min(n_clips, chunk) * self._macs(), requested=self.n_threads)

    def _input(self, X: Any, y: Any = None, *, reset: bool) -> tuple[Any, Any]:
        """Validate features (FrameSet or 2-D array) and labels; returns (X, y)."""
        if isinstance(X, FrameSet):
            if not reset and self.frame_dim_ not in (None, X.dim):
                raise BadValueError("frame dim", X.dim, [self.frame_dim_],
                                    fix="Use frames of the layer the probe was trained on.")
            if not reset and self.frame_dim_ is None:
                width = X.dim * (2 if self.pooling == "mean+std" else 1)
                if width != self.n_features_in_:
                    raise BadValueError("pooled width of the FrameSet", width, [self.n_features_in_])
            if y is not None:
                y = column_or_1d(y, warn=True)
                if y.shape[0] != len(X):
                    raise BadValueError("number of labels", y.shape[0], [len(X)],
                                        fix="Pass one label per clip of the FrameSet.")
            return X, y
        dtype = [np.float32, np.float64]
        if reset:
            return validate_data(self, X, y, dtype=dtype) if y is not None else (validate_data(self, X, dtype=dtype), None)
        if self.frame_dim_ is not None:  # fitted on frames, predicting on pooled vectors
            X = check_array(X, dtype=dtype)
            if X.shape[1] != self.n_features_in_:
                raise BadValueError("number of features", X.shape[1], [self.n_features_in_],
                                    fix=f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                                        f"{self.n_features_in_} features as input ({self.pooling}-pooled frames).")
            return X, None
        return validate_data(self, X, dtype=dtype, reset=False), None

    def _encode(self, y: Any, what: str) -> np.ndarray:
        """Indices of ``y`` in ``eval_classes_`` (``classes_`` then labels unseen in training).

        A label the probe never saw is appended to ``eval_classes_`` with a warning: its
        probability is 0 for every clip, so its one-vs-rest AUROC in the history is 0.5 -
        the same convention as scoring a probe on all four classes when training lacked one.
        """
        y = column_or_1d(np.asarray(y), warn=True)
        index = {c: i for i, c in enumerate(self.eval_classes_.tolist())}
        unseen = [c for c in dict.fromkeys(y.tolist()) if c not in index]
        if unseen:
            warnings.warn(f"{what} has labels never seen in training: {unseen}; the probe gives them "
                          f"probability 0 (known classes: {self.classes_.tolist()}). Check the label map "
                          "if this is unexpected.", UserWarning, stacklevel=3)
            self.eval_classes_ = np.concatenate([self.eval_classes_, np.asarray(unseen)])
            index.update({c: len(index) + i for i, c in enumerate(unseen)})
        return np.fromiter((index[c] for c in y.tolist()), dtype=np.int64, count=y.shape[0])

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
    ) -> TorchProbe:
        """Train the probe online until the validation metric plateaus.

        Args:
            X: ``(N, D)`` pooled features, or a :class:`FrameSet` of ``N`` clips.
            y: ``(N,)`` labels (any sortable type).
            X_val, y_val: validation set (same kind of input as ``X``, or pooled vectors).
                Without it, ``val_fraction`` of each class (x group) of ``X`` is held out,
                seeded by ``random_state``.
            groups: optional ``(N,)`` group ids (e.g. corpus), for ``balance="class_group"``
                and a group-stratified hold-out.
            eval_sets: ``{name: (X, y)}`` scored at every evaluation and recorded in
                ``history_`` (e.g. the test sets, for the last-20% confidence figures). They
                never influence training or the choice of weights.
            X_aug: augmented copies of the training clips: a list of ``K`` inputs aligned with
                ``X`` (copy ``k`` of clip ``i`` is ``X_aug[k][i]``; pooled arrays or
                ``FrameSet``s, which are pooled once).
            aug_rate: the paper's augmentation rate: every clip drawn into a training batch is
                replaced, with this probability, by one of its ``K`` copies chosen uniformly
                (0 = no augmentation, 1 = always an augmented copy). Standardisation and
                validation use the original clips only.

        Returns:
            self
        """
        t0 = time.perf_counter()
        job = self._fit_job(X, y, X_val=X_val, y_val=y_val, groups=groups, eval_sets=eval_sets,
                            X_aug=X_aug, aug_rate=aug_rate)
        # one training step: forward + backward (~3x forward) over one batch
        self.n_threads_ = choose_threads(6.0 * self.batch_size * self._macs(), requested=self.n_threads)
        with limit_threads(self.n_threads_):
            _train_jobs([(self, job)])
        self.fit_time_ = time.perf_counter() - t0
        return self

    def _fit_job(self, X: Any, y: Any, *, X_val: Any = None, y_val: Any = None, groups: Any = None,
                 eval_sets: Mapping[str, tuple[Any, Any]] | None = None, X_aug: Sequence[Any] | None = None,
                 aug_rate: float = 0.0) -> tuple:
        """Check the parameters and inputs of :meth:`fit` and prepare its training (no training)."""
        self._check_params()
        self.frame_dim_ = None
        X, y = self._input(X, y, reset=True)
        is_frames = isinstance(X, FrameSet)
        if is_frames:
            if hasattr(self, "feature_names_in_"):  # left by an earlier fit on a DataFrame
                del self.feature_names_in_
            self.frame_dim_ = X.dim
            self.n_features_in_ = X.dim * (2 if self.pooling == "mean+std" else 1)
        else:
            refuse_frame_augment(self.frame_mask, self.mix_prob)
        check_classification_targets(y)
        self.classes_, y_enc = np.unique(y, return_inverse=True)
        y_enc = y_enc.ravel()
        self.eval_classes_ = self.classes_.copy()
        if self.classes_.size < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 classes in y, got 1 class "
                             f"({self.classes_[0]!r}); check the label map and the split.")
        if groups is not None:
            groups = column_or_1d(np.asarray(groups))
            if groups.shape[0] != y_enc.shape[0]:
                raise BadValueError("number of groups", groups.shape[0], [y_enc.shape[0]])
        elif self.balance == "class_group":
            raise BadValueError("groups", None, fix="balance='class_group' needs fit(..., groups=corpus_ids).")
        seed = _seed(self.random_state)
        rng_split = np.random.default_rng([seed, 1])
        val: tuple[Any, np.ndarray] | None = None
        tr = np.arange(y_enc.shape[0])
        if X_val is not None:
            if y_val is None:
                raise BadValueError("y_val", None, fix="Pass y_val together with X_val.")
            val = (self._raw_pooled(self._input(X_val, None, reset=False)[0]), self._encode(y_val, "y_val"))
        elif self.val_fraction > 0:
            tr_h, va = stratified_holdout(y_enc, self.val_fraction, rng_split, groups)
            if va.size and np.unique(y_enc[va]).size >= 2:  # else too small to validate on
                val, tr = (self._raw_pooled(X, va), y_enc[va]), tr_h
        sets: dict[str, tuple[Any, np.ndarray]] = {}
        for name, pair in (eval_sets or {}).items():
            if name == "val":
                raise BadValueError("eval_sets name", name, fix="'val' is reserved for the validation set.")
            Xe, ye = pair
            Xe = self._input(Xe, None, reset=False)[0]
            sets[str(name)] = (self._raw_pooled(Xe), self._encode(ye, f"eval_sets[{name!r}]"))
        aug = self._augmented(X, X_aug, aug_rate)
        return X, y_enc, tr, groups, val, sets, seed, aug

    def _augmented(self, X: Any, X_aug: Sequence[Any] | None, rate: float) -> tuple[list, float] | None:
        """Pooled float32 tensors of the augmented copies (``None`` when not augmenting)."""
        if not 0.0 <= float(rate) <= 1.0:
            raise BadValueError("aug_rate", rate, fix="Use a share in [0, 1], e.g. 0.5 for 50%.")
        if rate == 0 or not X_aug:
            if rate > 0:
                raise BadValueError("X_aug", None, fix="aug_rate > 0 needs the augmented copies "
                                    "(embedprobe extract ... --augment paper --copies K).")
            return None
        n = X.n_clips if isinstance(X, FrameSet) else X.shape[0]
        copies = []
        for k, Xa in enumerate(X_aug):
            Xa = self._input(Xa, None, reset=False)[0]
            t = self._raw_pooled(Xa)
            if t.shape != (n, self.n_features_in_):
                raise BadValueError(f"shape of augmented copy {k}", tuple(t.shape), [(n, self.n_features_in_)],
                                    fix="Pass copies aligned with X (same clips, same features).")
            copies.append(t)
        return copies, float(rate)

    # ------------------------------------------------------------------ predict

    def _raw_pooled(self, X: Any, idx: Any = None) -> Any:
        """Pooled (not yet standardised) float32 torch features of clips ``idx`` of ``X``."""
        import torch

        if isinstance(X, FrameSet):
            return X.pool(self.pooling, idx)
        X = np.asarray(X if idx is None else X[idx], dtype=np.float32)
        return torch.from_numpy(np.ascontiguousarray(X))

    def _pooled(self, X: Any) -> Any:
        """Standardised float32 torch features of any accepted input."""
        return (self._raw_pooled(X) - self._mean_t) / self._scale_t

    def _proba_std(self, x: Any, chunk: int = 16384) -> np.ndarray:
        """Class probabilities (float64 numpy) from standardised torch features."""
        import torch

        net = self.net_
        net.eval()
        out = []
        with torch.inference_mode():
            for s in range(0, x.shape[0], chunk):
                out.append(torch.softmax(net(x[s:s + chunk].to(self.device)).double(), dim=1).cpu())
        p = torch.cat(out).numpy() if out else np.zeros((0, len(self.classes_)))
        return p / p.sum(axis=1, keepdims=True) if p.size else p

    def predict_proba(self, X: Any) -> np.ndarray:
        """``(N, K)`` class probabilities; columns follow ``classes_``."""
        check_is_fitted(self)
        X, _ = self._input(X, reset=False)
        with limit_threads(self.prediction_threads(len(X))):
            return self._proba_std(self._pooled(X))

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Log of :meth:`predict_proba`."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class label per clip."""
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]

    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())  # a copy: the parent may return the live __dict__
        state.pop("_mean_t", None)
        state.pop("_scale_t", None)
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        if "mean_" in state:
            import torch

            self._mean_t = torch.as_tensor(self.mean_, dtype=torch.float32)
            self._scale_t = torch.as_tensor(self.scale_, dtype=torch.float32)


def _train_jobs(jobs: Sequence[tuple[TorchProbe, tuple]]) -> None:
    """Train prepared ``(probe, TorchProbe._fit_job(...))`` pairs together (torch loads here)."""
    from embedprobe.probes.training import FitJob, train_jobs

    train_jobs([FitJob(probe, *job) for probe, job in jobs])


def fit_together(probes: Sequence[Any], fits: Sequence[Mapping[str, Any]]) -> list[Any]:
    """Fit ``probes[i]`` as ``probes[i].fit(**fits[i])`` would, training the torch probes together.

    The torch probes whose network shape and schedule match (e.g. the folds x seeds of one
    protocol) are trained as one stacked model (:func:`embedprobe.probes.training.train_jobs`):
    each keeps its own data, standardisation, batches, initial weights, learning-rate schedule
    and early stopping, but a step's overhead is paid once for all of them. Any other estimator
    is fitted on its own. ``fit_time_`` of a torch probe is its share of the joint training time.

    Example:
        >>> import numpy as np
        >>> from embedprobe.probes import create
        >>> rng = np.random.default_rng(0)
        >>> X, y = rng.normal(size=(80, 3)) + np.repeat([[0], [2]], 40, axis=0), np.repeat([0, 1], 40)
        >>> probes = [create("linear", random_state=s, max_steps=100) for s in (0, 1)]
        >>> [p.n_steps_ for p in fit_together(probes, [{"X": X, "y": y}] * 2)]
        [100, 100]
    """
    if len(probes) != len(fits):
        raise BadValueError("number of fits", len(fits), [len(probes)], fix="Pass one fit() argument dict per probe.")
    t0 = time.perf_counter()
    torch_probes = [(p, f) for p, f in zip(probes, fits, strict=True) if isinstance(p, TorchProbe)]
    for p, f in zip(probes, fits, strict=True):
        if not isinstance(p, TorchProbe):
            p.fit(**f)
    if torch_probes:
        jobs = [(p, p._fit_job(**f)) for p, f in torch_probes]
        work = 6.0 * sum(p.batch_size * p._macs() for p, _ in torch_probes)
        n_threads = choose_threads(work, requested=torch_probes[0][0].n_threads)
        with limit_threads(n_threads):
            _train_jobs(jobs)
        took = (time.perf_counter() - t0) / len(torch_probes)
        for p, _ in torch_probes:
            p.n_threads_, p.fit_time_ = n_threads, took
    return list(probes)

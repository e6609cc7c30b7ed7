"""Arrays of one corpus ready for probing, fold selection, unions and label scrambling (no IO).

``CorpusData`` holds the 4-class clips of one corpus that are present in its cache: their
features (pooled ``(N, D)`` or a ``FrameSet``), labels as indices into
``CANONICAL_LABELS``, speakers and, per fold of the corpus's protocol, which part
(train / val / test) each clip belongs to.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from embedprobe.corpora.base import CANONICAL_LABELS
from embedprobe.errors import BadValueError
from embedprobe.probes.features import FrameSet

SCRAMBLE_MAP: dict[str, str] = {"angry": "happy", "happy": "angry", "neutral": "sad", "sad": "neutral"}
"""The paper's Figure 3 label confusion: Happy <-> Angry and Neutral <-> Sad."""


@dataclass
class CorpusData:
    """The probe-ready clips of one corpus.

    Attributes:
        name: corpus name (``"scrambled"`` corpora keep their name; see ``scrambled``).
        ids: clip ids, aligned with every other array.
        y: labels as indices into ``CANONICAL_LABELS``.
        speakers: speaker ids.
        X: pooled features ``(N, D)`` or a ``FrameSet`` of ``N`` clips.
        parts: fold key -> array of ``"train"|"val"|"test"|""`` aligned with ``ids``.
        folds: the fold keys of the protocol in use, in order.
        protocol: the protocol's name.
        fingerprint: the cache fingerprint the features came from.
        scrambled: whether ``SCRAMBLE_MAP`` was applied to ``y``.
        X_aug: ``K`` augmented copies of ``X`` (pooled, aligned with ``ids``), or ``None``.
    """

    name: str
    ids: np.ndarray
    y: np.ndarray
    speakers: np.ndarray
    X: Any
    parts: dict[str, np.ndarray]
    folds: list[str]
    protocol: str
    fingerprint: str = ""
    scrambled: bool = False
    meta: dict[str, Any] = field(default_factory=dict)
    X_aug: list[Any] | None = None

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def fold(self, i: int) -> str:
        """Fold key ``i``; corpora with fewer folds than the run reuse their last one."""
        return self.folds[min(i, len(self.folds) - 1)]

    def index(self, fold: str, part: str) -> np.ndarray:
        return np.flatnonzero(self.parts[fold] == part)

    def cross_test_index(self) -> np.ndarray:
        """Clips used when this corpus is tested by a probe that never trained on it.

        The union of the test parts of every fold (for leave-one-speaker-out protocols that is
        every clip; for a single official split it is its test set).
        """
        mask = np.zeros(len(self), dtype=bool)
        for f in self.folds:
            mask |= self.parts[f] == "test"
        return np.flatnonzero(mask)

    def take(self, idx: np.ndarray) -> tuple[Any, np.ndarray]:
        """Features and labels of clips ``idx``."""
        return self.X[idx], self.y[idx]


def scramble(data: CorpusData) -> CorpusData:
    """A copy of ``data`` whose labels follow ``SCRAMBLE_MAP`` (train and test alike)."""
    perm = np.array([CANONICAL_LABELS.index(SCRAMBLE_MAP[c]) for c in CANONICAL_LABELS])
    return replace(data, y=perm[data.y], scrambled=True)


def label_counts(y: np.ndarray) -> dict[str, int]:
    return {c: int((y == i).sum()) for i, c in enumerate(CANONICAL_LABELS)}


def concat_features(parts: list[Any]) -> Any:
    """Concatenate pooled arrays or ``FrameSet``s (all of one kind)."""
    if all(isinstance(p, np.ndarray) for p in parts):
        return np.concatenate(parts, axis=0)
    if all(isinstance(p, FrameSet) for p in parts):
        return FrameSet.concat(parts)
    raise BadValueError("feature kinds", sorted({type(p).__name__ for p in parts}), None,
                        fix="Train on caches that all have frames, or all pooled features.")


@dataclass
class Split:
    """Train / validation data of one fold of a (possibly multi-corpus) training set."""

    X: Any
    y: np.ndarray
    groups: np.ndarray
    X_val: Any
    y_val: np.ndarray
    X_aug: list[Any] | None = None


def training_split(train: list[CorpusData], fold: int) -> Split:
    """The union of the train parts (and of the val parts) of fold ``fold`` of each corpus.

    Augmented copies are gathered for the train parts when every corpus has them.
    """
    xs, ys, gs, xv, yv = [], [], [], [], []
    with_aug = all(d.X_aug for d in train)
    n_copies = min(len(d.X_aug) for d in train) if with_aug else 0
    xa: list[list[Any]] = [[] for _ in range(n_copies)]
    for g, d in enumerate(train):
        key = d.fold(fold)
        tr, va = d.index(key, "train"), d.index(key, "val")
        if tr.size == 0:
            raise BadValueError(f"training part of {d.name} fold", key, None,
                                fix="The split has no training clips; check the protocol.")
        xs.append(d.X[tr]), ys.append(d.y[tr]), gs.append(np.full(tr.size, g))
        for k in range(n_copies):
            xa[k].append(d.X_aug[k][tr])
        if va.size:
            xv.append(d.X[va]), yv.append(d.y[va])
    val_x = concat_features(xv) if xv else None
    val_y = np.concatenate(yv) if yv else None
    aug = [np.concatenate(parts) for parts in xa] if n_copies else None
    return Split(concat_features(xs), np.concatenate(ys), np.concatenate(gs), val_x, val_y, aug)


def test_index(d: CorpusData, fold: int, trained_on: bool) -> np.ndarray:
    """Test clips of ``d``: its fold's test part if the probe trained on it, else every test clip."""
    return d.index(d.fold(fold), "test") if trained_on else d.cross_test_index()

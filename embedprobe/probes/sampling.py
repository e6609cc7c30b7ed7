"""Class-balanced batch sampling and the seeded stratified validation hold-out (numpy only).

The poster balances classes "by drawing classes at random, not files": every training example
is drawn by first choosing a class uniformly, then a clip of that class. With several training
corpora concatenated, ``balance="class_group"`` also balances the corpora within each class.

Example:
    >>> import numpy as np
    >>> y = np.array([0] * 90 + [1] * 10)
    >>> s = BalancedSampler(y, balance="class", rng=np.random.default_rng(0))
    >>> round(float((y[s.draw(10000)] == 1).mean()), 1)
    0.5
"""

from __future__ import annotations

import numpy as np

from embedprobe.errors import BadValueError

BALANCES: tuple[str, ...] = ("class", "class_group", "none")


class BalancedSampler:
    """Draws clip indices with replacement, balanced by class (and optionally by group).

    * ``"class"``: choose a class uniformly, then a clip of that class uniformly.
    * ``"class_group"``: choose a class uniformly, then uniformly one of the groups (corpora)
      that have that class, then a clip of that (class, group) cell uniformly.
    * ``"none"``: choose a clip uniformly (the natural class distribution).

    Args:
        y: ``(N,)`` integer class labels.
        groups: optional ``(N,)`` group ids (e.g. corpus); only ``"class_group"`` uses them.
        balance: one of :data:`BALANCES`.
        rng: the numpy Generator every draw comes from.
    """

    def __init__(self, y: np.ndarray, *, groups: np.ndarray | None = None, balance: str = "class",
                 rng: np.random.Generator):
        if balance not in BALANCES:
            raise BadValueError("balance", balance, BALANCES)
        y = np.asarray(y)
        g = np.zeros(y.shape[0], dtype=np.int64) if groups is None or balance != "class_group" else \
            np.unique(np.asarray(groups), return_inverse=True)[1].ravel()
        if balance == "none":
            y = np.zeros_like(y)
        self.rng = rng
        cls_u, cls_i = np.unique(y, return_inverse=True)
        cell_key = cls_i.ravel().astype(np.int64) * (int(g.max(initial=0)) + 1) + g
        cells, cell_of = np.unique(cell_key, return_inverse=True)
        self.order = np.argsort(cell_of, kind="stable")  # clip indices grouped by cell
        self.cell_size = np.bincount(cell_of, minlength=cells.size)
        self.cell_start = np.cumsum(self.cell_size) - self.cell_size
        cell_cls = cells // (int(g.max(initial=0)) + 1)
        groups_per_cls = np.bincount(cell_cls, minlength=cls_u.size)
        p = 1.0 / cls_u.size / groups_per_cls[cell_cls]
        self.cell_p = p / p.sum()
        self._cum = np.cumsum(self.cell_p)
        self._size_f = self.cell_size.astype(np.float64)

    def draw(self, n: int) -> np.ndarray:
        """``n`` clip indices drawn with replacement.

        A cell is the number of cumulative probabilities ``<= u`` (at most the last cell), the
        clip within it ``floor(v * size)``, from two uniform numbers ``u``, ``v`` per draw.
        """
        u = self.rng.random((2, n))
        if self._cum.size <= 16:  # a few cells: one comparison per cell beats a binary search
            cell = np.zeros(n, dtype=np.intp)
            for c in self._cum[:-1]:
                cell += u[0] >= c
        else:
            cell = np.minimum(np.searchsorted(self._cum, u[0], side="right"), self._cum.size - 1)
        within = np.take(self._size_f, cell)
        within *= u[1]
        at = np.take(self.cell_start, cell)
        at += within.astype(np.intp)
        return np.take(self.order, at)


class SameClass:
    """Draws, for given clips, a random clip of the same class from a pool (default: all clips).

    Built once per training (one sort); each draw is vectorised. Used by same-label feature
    mixing with the training clips as the pool, so held-out clips never leak into training.
    """

    def __init__(self, y: np.ndarray, pool: np.ndarray | None = None):
        self.y = np.asarray(y)
        pool = np.arange(self.y.shape[0]) if pool is None else np.asarray(pool, dtype=np.int64)
        yp = self.y[pool]
        order = np.argsort(yp, kind="stable")
        self.members = pool[order]
        self.classes, self.start, self.size = np.unique(yp[order], return_index=True, return_counts=True)

    def draw(self, idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One same-class pool member (possibly the clip itself) for each clip in ``idx``."""
        labels = self.y[idx]
        c = np.searchsorted(self.classes, labels)
        if np.any(c >= self.classes.size) or np.any(self.classes[np.minimum(c, self.classes.size - 1)] != labels):
            missing = sorted(set(labels.tolist()) - set(self.classes.tolist()))
            raise BadValueError("class without pool members", missing[0], self.classes.tolist())
        within = (rng.random(idx.size) * self.size[c]).astype(np.int64)
        return self.members[self.start[c] + within]


def partners(y: np.ndarray, idx: np.ndarray, rng: np.random.Generator,
             pool: np.ndarray | None = None) -> np.ndarray:
    """For each clip in ``idx``, a random clip of the same class from ``pool`` (one-off helper)."""
    return SameClass(y, pool).draw(np.asarray(idx), rng)


def stratified_holdout(
    y: np.ndarray, fraction: float, rng: np.random.Generator, groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (train, val) with ``round(fraction * n_cell)`` of every cell in val.

    Cells are classes, or (class, group) pairs when ``groups`` is given. A cell always keeps at
    least one clip in train, so a class seen once stays in train.

    Returns:
        Sorted ``(train_idx, val_idx)``.
    """
    y = np.asarray(y)
    key = np.unique(y, return_inverse=True)[1].ravel().astype(np.int64)
    if groups is not None:
        gi = np.unique(np.asarray(groups), return_inverse=True)[1].ravel()
        key = key * (int(gi.max()) + 1) + gi
    perm = rng.permutation(y.shape[0])
    val = []
    for k in np.unique(key):
        members = perm[key[perm] == k]
        n_val = min(int(round(fraction * members.size)), members.size - 1)
        val.append(members[:max(n_val, 0)])
    val_idx = np.sort(np.concatenate(val)) if val else np.zeros(0, dtype=np.int64)
    train_idx = np.setdiff1d(np.arange(y.shape[0]), val_idx)
    return train_idx, val_idx

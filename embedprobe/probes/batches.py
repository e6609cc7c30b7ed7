"""The training batches of a stack's simple runs (pooled input, no augmented copies, no noise).

Two ways to feed :meth:`~embedprobe.probes.stacked.StackedNet.loss_grad` the same step:

* :class:`GatheredBatches`: each step gathers the ``P x B`` drawn feature rows (one
  ``index_select``), the general way.
* :class:`CountedBatches`: a batch of ``B`` rows drawn with replacement from ``n`` training rows
  has the same mean cross-entropy, and the same gradient, as all ``n`` rows weighted by their
  draw counts divided by ``B`` (identical rows give identical logits). So the stack keeps every
  run's fixed, standardised ``[n, D]`` training rows and each step only weights them: no gather,
  no copy. Equal to the gathered batch up to float rounding (the sums run in another order),
  valid only where each row's logits do not depend on the draw (no dropout between layers, no
  noise), and cheaper only while ``n`` is not much larger than ``B`` (:data:`MAX_ROWS_PER_DRAW`).

Both take the same draws (per run, ``(n_steps, B)`` indices into its training rows) from the
same samplers, so the trained probes do not depend on which one a stack uses.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

MAX_ROWS_PER_DRAW = 1.5
"""Counted batches when every run has at most this many training rows per drawn row (``n <= 1.5 B``).

Both ways cost one ``[P, C, D] x [P, D, m]`` product forward and one backward, with ``m = n``
(counted) or ``B`` (gathered), and gathering adds a copy of ``P x B`` rows. Measured per step
(30 linear probes, 4 classes, ``B = 256``, one thread, 2-core AMD EPYC shared with other jobs),
gathered / counted time at ``n / B`` = 0.5, 1, 1.5, 2, 3: 2.2, 2.3, 1.5, 1.05, 0.5 with 88
dimensions; 2.8, 1.7, 1.06, 1.03, 0.6 with 1,024. EmoDB's folds train on ``n`` ~ 270 rows.
"""


def _same_rows(a: Any, b: Any) -> bool:
    """Whether runs ``a`` and ``b`` train on the same standardised rows: the same array (the same
    tensor, or views of the same memory: each probe converts the caller's array itself), the
    same rows and the same standardisation - the seeds of one fold."""
    sa, sb = a.src, b.src
    same = sa is sb or (sa.data_ptr() == sb.data_ptr() and sa.shape == sb.shape and sa.stride() == sb.stride()
                        and sa.dtype == sb.dtype and sa.device == sb.device)
    return (same and np.array_equal(a.rows, b.rows) and torch.equal(a.mean_d, b.mean_d)
            and torch.equal(a.scale_d, b.scale_d))


def _standardised(runs: list[Any], dev: torch.device) -> tuple[list[torch.Tensor], list[int]]:
    """Each run's standardised training rows (runs with the same rows share one tensor, see
    :func:`_same_rows`) and, per run, the index of its tensor."""
    parts: list[tuple[Any, torch.Tensor]] = []
    which = []
    for r in runs:
        k = next((i for i, (q, _) in enumerate(parts) if _same_rows(q, r)), None)
        if k is None:
            k = len(parts)
            parts.append((r, (r.src.index_select(0, torch.from_numpy(r.rows)).to(dev) - r.mean_d) / r.scale_d))
        which.append(k)
    return [t for _, t in parts], which


class GatheredBatches:
    """Batches of the stack's simple runs with one gather per step.

    Several runs: their standardised training features are concatenated once (runs with the same
    rows - the seeds of one fold - share one copy, see :func:`_same_rows`), so a step's batch
    is one ``index_select`` of ``P x B`` rows. A single run gathers from its own array (no copy)
    and standardises each batch, as large training sets need.
    """

    def __init__(self, runs: list[Any]):
        self.dev = runs[0].dev
        self.std = None
        if len(runs) == 1:
            r = runs[0]
            self.data, self.rows, self.std = r.src.to(self.dev), [r.rows], (r.mean_d, r.scale_d)
            return
        parts: list[tuple[Any, np.ndarray, int]] = []
        at, self.rows = 0, []
        for r in runs:
            same = next((q for q in parts if _same_rows(q[0], r)), None)
            if same is None:
                used = np.unique(r.rows)
                same = (r, used, at)
                parts.append(same)
                at += used.size
            self.rows.append(same[2] + np.searchsorted(same[1], r.rows))
        self.data = torch.cat([(q.src.index_select(0, torch.from_numpy(u)).to(self.dev) - q.mean_d) / q.scale_d
                               for q, u, _ in parts])

    def keep(self, rows: list[int]) -> None:
        self.rows = [self.rows[i] for i in rows]

    def indices(self, idx: list[np.ndarray]) -> torch.Tensor:
        """Per-run ``(n_steps, B)`` draws -> ``(n_steps, P*B)`` feature rows."""
        feats = np.stack([rows[i] for rows, i in zip(self.rows, idx, strict=True)], axis=1)
        return torch.from_numpy(feats.reshape(feats.shape[0], -1)).to(self.dev)

    def batch(self, rows: torch.Tensor, n_runs: int) -> torch.Tensor:
        """The standardised ``[P, B, D]`` batch of feature rows ``rows``."""
        xb = self.data.index_select(0, rows).view(n_runs, -1, self.data.shape[1])
        return xb if self.std is None else xb.sub_(self.std[0]).div_(self.std[1])


class CountedBatches:
    """Every run's fixed standardised training rows, weighted per step by their draw counts.

    Runs with fewer rows than the longest are padded with zero rows that are never drawn
    (weight 0: no loss, no gradient).

    Args:
        runs: the stack's runs (each with ``src``, ``rows``, ``y_tr``, ``mean_d``, ``scale_d``, ``dev``).
        n_classes: the width of the one-hot targets.
    """

    def __init__(self, runs: list[Any], n_classes: int):
        self.dev = dev = runs[0].dev
        self.n = max(r.rows.size for r in runs)
        std, which = _standardised(runs, dev)
        self.data = torch.zeros((len(runs), self.n, std[0].shape[1]), device=dev)  # [P, n, D]
        self.onehot = torch.zeros((len(runs), n_classes, self.n), device=dev)  # [P, C, n]
        for i, (r, k) in enumerate(zip(runs, which, strict=True)):
            m = r.rows.size
            self.data[i, :m] = std[k]
            self.onehot[i, torch.from_numpy(r.y_tr).to(dev), torch.arange(m, device=dev)] = 1.0

    @staticmethod
    def fits(runs: list[Any], batch_size: int) -> bool:
        """Whether counting beats gathering for these runs (see :data:`MAX_ROWS_PER_DRAW`)."""
        return max(r.rows.size for r in runs) <= MAX_ROWS_PER_DRAW * batch_size

    def keep(self, rows: torch.Tensor) -> None:
        """Keep only the runs ``rows`` (indices into the current runs)."""
        self.data, self.onehot = self.data[rows], self.onehot[rows]

    def features(self) -> torch.Tensor:
        """The ``[P, D, n]`` standardised training rows, features first (a view)."""
        return self.data.transpose(1, 2)

    def weights(self, idx: list[np.ndarray]) -> torch.Tensor:
        """Per-run ``(n_steps, B)`` draws -> ``[n_steps, P, 1, n]`` draw counts divided by ``B``."""
        s, b = idx[0].shape
        counts = np.empty((s, len(idx), 1, self.n), dtype=np.float32)
        step_at = (np.arange(s) * self.n)[:, None]
        for i, d in enumerate(idx):  # one bincount per run over its (step, row) pairs
            counts[:, i, 0] = np.bincount((d + step_at).ravel(), minlength=s * self.n).reshape(s, self.n)
        return torch.from_numpy(counts).to(self.dev).div_(b)

    def target(self, weight: torch.Tensor) -> torch.Tensor:
        """``[P, C, n]`` one-hot labels times one step's ``[P, 1, n]`` weights."""
        return self.onehot * weight

"""``LinearProbe`` ("linear"): a linear classifier on standardised pooled embeddings.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = np.r_[rng.normal(-1, 1, (60, 4)), rng.normal(1, 1, (60, 4))]
    >>> y = np.repeat(["sad", "happy"], 60)
    >>> probe = LinearProbe(max_steps=100, random_state=0).fit(X, y)
    >>> probe.classes_.tolist(), probe.predict_proba(X[:2]).shape
    (['happy', 'sad'], (2, 2))
"""

from __future__ import annotations

from typing import Any

from embedprobe.probes.base import SHARED_PARAMS_DOC, TorchProbe
from embedprobe.probes.registry import register


class LinearProbe(TorchProbe):
    __doc__ = "Linear probe (softmax regression) trained online on standardised features.\n" + SHARED_PARAMS_DOC

    def __init__(
        self,
        *,
        lr: float = 1e-2,
        batch_size: int = 256,
        max_steps: int = 5000,
        min_steps: int = 200,
        eval_every: int = 50,
        patience: int = 4,
        min_delta: float = 1e-4,
        lr_decay: float = 0.1,
        n_lr_drops: int = 1,
        weight_decay: float = 0.0,
        l2: float = 0.04,
        val_fraction: float = 0.15,
        monitor: str = "auroc",
        balance: str = "class",
        pooling: str = "mean",
        frame_mask: float = 0.0,
        mix_prob: float = 0.0,
        noise_std: float = 0.0,
        device: str = "cpu",
        n_threads: int | None = None,
        random_state: int | None = None,
        verbose: int = 0,
    ):
        self.lr = lr
        self.batch_size = batch_size
        self.max_steps = max_steps
        self.min_steps = min_steps
        self.eval_every = eval_every
        self.patience = patience
        self.min_delta = min_delta
        self.lr_decay = lr_decay
        self.n_lr_drops = n_lr_drops
        self.weight_decay = weight_decay
        self.l2 = l2
        self.val_fraction = val_fraction
        self.monitor = monitor
        self.balance = balance
        self.pooling = pooling
        self.frame_mask = frame_mask
        self.mix_prob = mix_prob
        self.noise_std = noise_std
        self.device = device
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose

    def _make_net(self, d_in: int, n_classes: int, gen: Any) -> Any:
        from embedprobe.probes.nets import LinearNet

        return LinearNet(d_in, n_classes, gen)


register("linear", LinearProbe, "linear classifier on standardised pooled embeddings")

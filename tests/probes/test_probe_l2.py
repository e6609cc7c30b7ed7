"""The coupled L2 penalty (``l2``): the probe's optimum is the regularised logistic regression's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from embedprobe.errors import BadValueError
from embedprobe.probes.linear import LinearProbe
from embedprobe.probes.mlp import MLPProbe
from embedprobe.probes.stacked import ModuleNet, StackedNet
from embedprobe.probes.training import _weight_mask

torch.set_num_threads(1)


def _data(n=240, d=6, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = rng.normal(0, 1, (n, d)) + 0.8 * np.eye(3, d)[y] * rng.normal(1, 0.5, (n, 1)) + 3.0
    return X.astype(np.float32), y


def test_linear_l2_matches_logistic_regression():
    """Mean cross-entropy + l2/2 ||W||^2 is LogisticRegression's objective with C = 1 / (l2 * n)."""
    X, y = _data()
    C = 0.05
    ref = LogisticRegression(C=C, max_iter=5000).fit(StandardScaler().fit_transform(X), y)
    probe = LinearProbe(l2=1.0 / (C * len(y)), weight_decay=0.0, lr=0.01, batch_size=240, balance="none",
                        val_fraction=0.0, max_steps=1500, random_state=0).fit(X, y)
    W = probe.net_.fc.weight.detach().numpy()
    W = W - W.mean(axis=0)  # the softmax's free direction (no gradient, decayed away by l2)
    # Adam on sampled batches ends within its step noise of the optimum
    assert np.corrcoef(W.ravel(), ref.coef_.ravel())[0, 1] > 0.99
    assert np.abs(W - ref.coef_).max() < 0.15 * np.abs(ref.coef_).max()
    Xs = StandardScaler().fit_transform(X)
    assert (probe.predict(X) == ref.predict(Xs)).mean() > 0.9  # the clips near a boundary may differ


def test_l2_shrinks_weights_not_biases():
    X, y = _data()
    kw = dict(weight_decay=0.0, lr=0.01, val_fraction=0.0, max_steps=600, random_state=0)
    free, tied = LinearProbe(l2=0.0, **kw).fit(X, y), LinearProbe(l2=1.0, **kw).fit(X, y)
    norm = lambda p: float(p.net_.fc.weight.detach().norm())  # noqa: E731
    assert norm(tied) < 0.5 * norm(free)
    mlp = MLPProbe(hidden=(8,), l2=0.1, **kw).fit(X, y)  # the stacked MLP path runs with it
    assert mlp.score(X, y) > 0.5


def test_weight_mask_covers_weights_only():
    lin = LinearProbe()._make_net(4, 3, torch.Generator().manual_seed(0))
    stack = StackedNet([lin], torch.device("cpu"))
    mask = _weight_mask(stack)
    assert mask.sum() == 12 and mask[:12].all() and not mask[12:].any()
    mod = ModuleNet(torch.nn.Linear(4, 3), torch.device("cpu"), 3)
    assert _weight_mask(mod).tolist() == [1.0] * 12 + [0.0] * 3


@pytest.mark.parametrize("name", ["l2", "weight_decay"])
def test_negative_penalty_refused(name):
    X, y = _data(n=30)
    with pytest.raises(BadValueError, match=name):
        LinearProbe(**{name: -0.1}).fit(X, y)

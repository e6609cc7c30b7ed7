"""Counted batches (fixed rows weighted by draw counts) equal gathered batches on the same draws."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embedprobe.probes import batches, create, fit_together
from embedprobe.probes.nets import MLPNet
from embedprobe.probes.stacked import StackedNet
from embedprobe.probes.training import FitJob, _Run


@pytest.mark.parametrize("hidden", [(), (7, 4)])
def test_weighted_rows_give_the_drawn_batch_loss_and_gradient(hidden):
    gen = torch.Generator().manual_seed(0)
    p, d, n, b, c = 3, 5, 11, 16, 3
    nets = [MLPNet(d, c, hidden, 0.0, gen) for _ in range(p)]
    stack = StackedNet(nets, torch.device("cpu"))
    x = torch.randn(p, d, n, generator=gen)
    y = torch.randint(0, c, (p, n), generator=gen)
    draws = torch.randint(0, n, (p, b), generator=gen)
    draws[:, :4] = 2  # a row drawn several times
    xb = torch.stack([x[i][:, draws[i]] for i in range(p)])
    target = torch.nn.functional.one_hot(torch.gather(y, 1, draws), c).permute(0, 2, 1).float() / b
    grad_b, loss_b = stack.loss_grad(xb, target, None)
    weight = torch.stack([torch.bincount(draws[i], minlength=n) for i in range(p)])[:, None, :].float() / b
    onehot = torch.nn.functional.one_hot(y, c).permute(0, 2, 1).float()
    grad_w, loss_w = stack.loss_grad(x, onehot * weight, None, weight=weight)
    torch.testing.assert_close(loss_w, loss_b)
    torch.testing.assert_close(grad_w, grad_b)
    assert float(weight[:, 0, 2].min()) >= 4 / b  # the repeated row really carries its count


def _fits(n_folds=3, n=120):
    fits = []
    for f in range(n_folds):
        rng = np.random.default_rng(f)
        y = rng.integers(0, 3, n)
        X = (rng.normal(0, 1, (3, 6))[y] + rng.normal(0, 1.5, (n, 6)) + 5).astype(np.float32)
        fits.append({"X": X[:80 + 5 * f], "y": y[:80 + 5 * f], "X_val": X[100:], "y_val": y[100:]})
    return fits


@pytest.mark.parametrize("name,params", [("linear", {}),
                                         ("mlp", {"dropout": 0.0, "noise_std": 0.0, "hidden": (8,), "lr": 1e-2})])
def test_counted_training_equals_gathered_training(monkeypatch, name, params):
    common = dict(max_steps=300, min_steps=50, eval_every=25, patience=2, batch_size=64, **params)
    fits, seeds = _fits() * 2, [0, 0, 0, 1, 1, 1]  # runs of different lengths, seeds sharing a fold's rows
    made = []
    real = batches.CountedBatches.__init__

    def spy(self, *a, **k):
        made.append(self)
        real(self, *a, **k)

    monkeypatch.setattr(batches.CountedBatches, "__init__", spy)
    counted = fit_together([create(name, random_state=s, **common) for s in seeds], fits)
    assert len(made) == 1  # 80-90 training rows per 64 drawn: counted
    monkeypatch.setattr(batches, "MAX_ROWS_PER_DRAW", 0.0)
    gathered = fit_together([create(name, random_state=s, **common) for s in seeds], fits)
    assert len(made) == 1
    assert len({p.n_steps_ for p in counted}) > 1  # runs left the stack at different steps
    for a, b in zip(counted, gathered, strict=True):
        assert a.n_steps_ == b.n_steps_ and a.best_step_ == b.best_step_
        for ha, hb in zip(a.history_, b.history_, strict=True):
            assert ha["loss"] == pytest.approx(hb["loss"], rel=1e-4, abs=1e-5)
        for pa, pb in zip(a.net_.parameters(), b.net_.parameters(), strict=True):
            torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-5)


def test_seeds_of_a_fold_share_their_standardised_rows():
    fits = _fits(2)

    def run(seed, fit):
        probe = create("linear", random_state=seed)
        return _Run(FitJob(probe, *probe._fit_job(**fit)))

    runs = [run(0, fits[0]), run(1, fits[0]), run(0, fits[1]), run(0, {**fits[0], "X": fits[0]["X"].copy()})]
    assert [batches._same_rows(runs[0], r) for r in runs] == [True, True, False, False]  # the same memory only


@pytest.mark.parametrize("params", [{"noise_std": 0.1}, {"dropout": 0.2, "hidden": (8,)}])
def test_draw_dependent_training_keeps_gathering(monkeypatch, params):
    made = []
    monkeypatch.setattr(batches.CountedBatches, "__init__", lambda self, *a: made.append(self))
    name = "mlp" if "hidden" in params else "linear"
    fit_together([create(name, random_state=0, max_steps=20, noise_std=params.get("noise_std", 0.0),
                         **{k: v for k, v in params.items() if k != "noise_std"})], _fits(1))
    assert made == []

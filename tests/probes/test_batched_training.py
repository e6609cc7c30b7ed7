"""Stacked training: P probes trained together equal P separate trainings (to float tolerance)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embedprobe.probes import FrameSet, create, fit_together
from embedprobe.probes.nets import MLPNet
from embedprobe.probes.stacked import StackedAdamW, StackedNet


def _data(n=200, d=6, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = (rng.normal(0, 1, (3, d))[y] + rng.normal(0, 1.5, (n, d)) + 5).astype(np.float32)
    return X, y


def _fits(n_folds=3):
    """Different data per fold (as the runner gives), a held-out validation set and an eval set."""
    fits = []
    for f in range(n_folds):
        X, y = _data(seed=f)
        fits.append({"X": X[:140], "y": y[:140], "X_val": X[140:170], "y_val": y[140:170],
                     "eval_sets": {"test": (X[170:], y[170:])}})
    return fits


def _same(a, b):
    assert a.n_steps_ == b.n_steps_ and a.best_step_ == b.best_step_
    assert [h["step"] for h in a.history_] == [h["step"] for h in b.history_]
    assert [h["lr"] for h in a.history_] == [h["lr"] for h in b.history_]
    for ha, hb in zip(a.history_, b.history_, strict=True):
        assert ha["loss"] == pytest.approx(hb["loss"], rel=1e-4, abs=1e-5)
        for s in ha["metrics"]:
            assert ha["metrics"][s] == pytest.approx(hb["metrics"][s], abs=1e-6)
    for pa, pb in zip(a.net_.parameters(), b.net_.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(a.mean_, b.mean_)


@pytest.mark.parametrize("name,params", [("linear", {}), ("mlp", {"dropout": 0.0, "noise_std": 0.0, "hidden": (8, 5)})])
def test_stacked_equals_separate(name, params):
    common = dict(max_steps=400, min_steps=50, eval_every=25, patience=2, batch_size=32, **params)
    fits = _fits() * 2  # 3 folds x 2 seeds, as the runner stacks them
    seeds = [0, 0, 0, 1, 1, 1]
    together = fit_together([create(name, random_state=s, **common) for s in seeds], fits)
    for probe, seed, fit in zip(together, seeds, fits, strict=True):
        alone = create(name, random_state=seed, **common).fit(**fit)
        _same(probe, alone)
    assert len({p.n_steps_ for p in together}) > 1  # probes left the stack at different steps


def test_stacked_frame_augmentation_equals_separate():
    X, y = _data(n=120, d=4)
    rng = np.random.default_rng(1)
    frames = torch.from_numpy(np.repeat(X, 3, axis=0) + rng.normal(0, 1, (360, 4)).astype(np.float32))
    fs = FrameSet(frames, np.arange(0, 361, 3))
    common = dict(max_steps=120, eval_every=30, batch_size=16, frame_mask=0.3, mix_prob=0.5)
    fits = [{"X": fs, "y": y}, {"X": fs, "y": y}]
    together = fit_together([create("linear", random_state=s, **common) for s in (3, 4)], fits)
    for probe, seed in zip(together, (3, 4), strict=True):
        _same(probe, create("linear", random_state=seed, **common).fit(fs, y))


def test_fit_together_leaves_a_seed_reproducible_and_independent_of_its_stack_mates():
    fits = _fits(2)
    a = fit_together([create("linear", random_state=7, max_steps=200)], fits[:1])[0]
    b = fit_together([create("linear", random_state=7, max_steps=200), create("linear", random_state=8, max_steps=200)],
                     fits)[0]
    np.testing.assert_allclose(a.predict_proba(fits[0]["X"]), b.predict_proba(fits[0]["X"]), rtol=1e-4, atol=1e-6)


def test_stacked_adamw_matches_torch_adamw():
    gen = torch.Generator().manual_seed(0)
    nets = [torch.nn.Linear(5, 3) for _ in range(2)]
    for net in nets:
        net.linears = lambda net=net: [net]  # the net contract StackedNet reads
    stack = StackedNet(nets, torch.device("cpu"))
    stack.flat.requires_grad_(True)
    opt = StackedAdamW(2, stack.n_params, [1e-2, 3e-3], [1e-2, 0.0], torch.device("cpu"))
    refs = [torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=wd) for net, lr, wd in
            zip(nets, (1e-2, 3e-3), (1e-2, 0.0), strict=True)]
    for _ in range(5):
        x = torch.randn(2, 5, 7, generator=gen)
        stack.forward(x, train=True).square().sum().backward()
        opt.step(stack.flat)
        for i, (net, ref) in enumerate(zip(nets, refs, strict=True)):
            net(x[i].t()).square().sum().backward()
            ref.step()
            ref.zero_grad()
            torch.testing.assert_close(stack.flat[i].detach(),
                                       torch.cat([net.weight.detach().reshape(-1), net.bias.detach()]))


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_hand_written_backward_matches_autograd(dropout):
    gen = torch.Generator().manual_seed(0)
    nets = [MLPNet(5, 3, (7, 4), dropout, gen) for _ in range(2)]
    stack = StackedNet(nets, torch.device("cpu"))
    x = torch.randn(2, 5, 9, generator=gen)
    y = torch.randint(0, 3, (2, 9), generator=gen)
    target = torch.nn.functional.one_hot(y, 3).permute(0, 2, 1).float() / 9
    grad, loss = stack.loss_grad(x, target, torch.Generator().manual_seed(1))
    stack.flat.requires_grad_(True)
    logits = stack.forward(x, torch.Generator().manual_seed(1), train=True)
    ref = torch.stack([torch.nn.functional.cross_entropy(logits[i].t(), y[i]) for i in range(2)])
    ref.sum().backward()
    torch.testing.assert_close(loss, ref.detach())
    torch.testing.assert_close(grad, stack.flat.grad)


class _PlainMLP(torch.nn.Module):
    """The same layers as an MLPNet without ``linears()``: trained through ModuleNet (autograd)."""

    def __init__(self, net: MLPNet):
        super().__init__()
        self.inner = net

    def forward(self, x, gen=None):
        return self.inner(x, gen)


def test_module_net_matches_the_stacked_net_on_the_same_weights():
    from embedprobe.probes.stacked import ModuleNet, stack_for

    net = MLPNet(6, 4, hidden=(8,), dropout=0.0, gen=torch.Generator().manual_seed(0))
    stacked = stack_for([net], torch.device("cpu"), 4)
    alone = stack_for([_PlainMLP(net)], torch.device("cpu"), 4)
    assert isinstance(stacked, StackedNet) and isinstance(alone, ModuleNet)
    x = torch.randn(1, 6, 16, generator=torch.Generator().manual_seed(1))
    target = torch.nn.functional.one_hot(torch.arange(16) % 4, 4).T[None].float() / 16
    g1, l1 = stacked.loss_grad(x, target, None)
    g2, l2 = alone.loss_grad(x, target, None)
    torch.testing.assert_close(l1, l2)
    # same parameters, possibly in another order: compare the sorted gradients and the eval logits
    torch.testing.assert_close(torch.sort(g1[0]).values, torch.sort(g2[0]).values)
    torch.testing.assert_close(stacked.logits_of(0, x[0].T), alone.logits_of(0, x[0].T))

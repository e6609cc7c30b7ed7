"""The online training loop shared by the probes (torch; imported only by ``fit``).

One step = one class-balanced batch drawn afresh (no epochs), augmented, one AdamW step.
Evaluations every ``eval_every`` steps feed early stopping (on the validation set only) and the
history from which the last-20% confidence figures are computed.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from embedprobe.eval.metrics import METRICS, metrics_batch
from embedprobe.probes.augment import frame_batch
from embedprobe.probes.features import FrameSet, _as_tensor
from embedprobe.probes.sampling import BalancedSampler, SameClass


def _moments(src: torch.Tensor, rows: np.ndarray | None, chunk: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature mean and std of ``src[rows]`` (all rows if None) without a full copy.

    Two passes (mean, then the variance of the centred values); float32 cascade sums within a
    chunk, float64 across chunks; a constant feature gets scale 1.
    """
    n_rows = src.shape[0] if rows is None else rows.size
    parts = [(s, min(s + chunk, n_rows)) for s in range(0, n_rows, chunk)]

    def block(a: int, b: int) -> torch.Tensor:
        t = src[a:b] if rows is None else src.index_select(0, torch.from_numpy(rows[a:b]))
        return t.to(torch.float32)

    n = max(n_rows, 1)
    total = torch.zeros(src.shape[1], dtype=torch.float64)
    for a, b in parts:
        total += block(a, b).sum(dim=0).double()
    mean = (total / n).float()
    sq = torch.zeros(src.shape[1], dtype=torch.float64)
    for a, b in parts:
        sq += (block(a, b) - mean).square_().sum(dim=0).double()  # never in place: src may be the caller's
    std = (sq / n).sqrt()
    std = torch.where(std > 1e-12 * (1.0 + mean.double().abs()), std, torch.ones_like(std))
    return mean, std.float()


def _optimizer(net: torch.nn.Module, lr: float, weight_decay: float, dev: torch.device) -> torch.optim.Optimizer:
    """AdamW, fused where this torch build supports it (~1.4x faster steps on CPU)."""
    try:
        return torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError):  # device or dtype without a fused kernel
        return torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)


def _score(probe: Any, x_std: torch.Tensor, y: np.ndarray) -> dict[str, float]:
    proba = probe._proba_std(x_std)
    extra = len(probe.eval_classes_) - proba.shape[1]
    if extra:  # labels unseen in training: probability 0 (see TorchProbe._encode)
        proba = np.pad(proba, ((0, 0), (0, extra)))
    vals = metrics_batch(y, proba, np.ones((1, y.shape[0])), METRICS)
    return {m: float(v[0]) for m, v in vals.items()}


def _substitute(xb: torch.Tensor, aug: tuple[list[torch.Tensor], float], clips: np.ndarray,
                rng: np.random.Generator, dev: torch.device) -> torch.Tensor:
    """Replace each row of ``xb`` by a random augmented copy of its clip with probability ``rate``."""
    copies, rate = aug
    hit = np.flatnonzero(rng.random(clips.size) < rate)
    if hit.size == 0:
        return xb
    which = rng.integers(0, len(copies), size=hit.size)
    for k in np.unique(which).tolist():
        rows = hit[which == k]
        xb[torch.from_numpy(rows).to(dev)] = copies[k].index_select(0, torch.from_numpy(clips[rows])).to(dev)
    return xb


def train(
    probe: Any,
    X: Any,
    y: np.ndarray,
    train_idx: np.ndarray,
    groups: np.ndarray | None,
    val: tuple[torch.Tensor, np.ndarray] | None,
    sets: dict[str, tuple[torch.Tensor, np.ndarray]],
    seed: int,
    aug: tuple[list[torch.Tensor], float] | None = None,
) -> None:
    """Fit ``probe`` in place; sets the learned attributes documented on the probe class.

    Args:
        probe: a :class:`~embedprobe.probes.base.TorchProbe` with validated parameters.
        X: all clips: ``(N, D)`` array or :class:`FrameSet`.
        y: ``(N,)`` encoded labels ``0..K-1``.
        train_idx: the clips to train on (the rest may have gone to validation).
        groups: ``(N,)`` group ids or None.
        val: ``(pooled raw features, labels)`` or None (no early stopping).
        sets: ``{name: (pooled raw features, labels)}`` recorded in the history only.
        seed: seed of every random draw.
        aug: ``(copies, rate)``: pooled raw features of ``K`` augmented copies of every clip of
            ``X``; each clip drawn into a batch is replaced by a random copy with probability
            ``rate`` (after any frame augmentation of the originals).
    """
    p = probe
    rng = np.random.default_rng([seed, 2])
    gen = torch.Generator().manual_seed(seed)
    dev = torch.device(p.device)
    is_frames = isinstance(X, FrameSet)
    y_tr = y[train_idx]

    frame_aug = is_frames and (p.frame_mask > 0 or p.mix_prob > 0)
    if is_frames:  # pooled once; with frame augmentations only for the standardisation
        src, rows = X.pool(p.pooling, train_idx), np.arange(train_idx.size)
    else:  # the caller's array itself (no copy when float32): batches are gathered from it
        src = _as_tensor(X)
        src, rows = (src if src.dtype == torch.float32 else src.to(torch.float32)), train_idx
    full = rows.size == src.shape[0] and np.array_equal(rows, np.arange(src.shape[0]))
    mean, scale = _moments(src, None if full else rows)
    p.mean_, p.scale_ = mean.numpy().astype(np.float64), scale.numpy().astype(np.float64)
    p._mean_t, p._scale_t = mean, scale
    same_class = SameClass(y, train_idx) if frame_aug and p.mix_prob > 0 else None  # never a held-out clip
    if frame_aug:
        src = None
    else:
        src = src.to(dev)
    mean_d, scale_d = mean.to(dev), scale.to(dev)
    y_all = torch.from_numpy(y_tr).to(dev)
    std_sets = {name: ((x - mean) / scale, yy) for name, (x, yy) in sets.items()}
    x_val = None if val is None else ((val[0] - mean) / scale, val[1])

    p.net_ = p._make_net(p.n_features_in_, len(p.classes_), gen).to(dev)
    opt = _optimizer(p.net_, p.lr, p.weight_decay, dev)
    sampler = BalancedSampler(y_tr, groups=None if groups is None else groups[train_idx],
                              balance=p.balance, rng=rng)
    lr = float(p.lr)
    best, best_step, best_state, bad, drops = -np.inf, 0, None, 0, 0
    history: list[dict] = []
    loss_sum, loss_n, stopped, step = torch.zeros((), device=dev), 0, False, 0
    max_steps, eval_every, batch_size = int(p.max_steps), int(p.eval_every), int(p.batch_size)
    net = p.net_
    net.train()
    for step in range(1, max_steps + 1):
        idx = sampler.draw(batch_size)
        if src is None:
            xb = frame_batch(X, train_idx[idx], y, frame_mask=p.frame_mask, mix_prob=p.mix_prob,
                             pooling=p.pooling, rng=rng, same_class=same_class).to(dev)
        else:
            xb = src.index_select(0, torch.from_numpy(rows[idx]).to(dev))
        if aug is not None:
            xb = _substitute(xb, aug, train_idx[idx], rng, dev)
        xb = xb.sub_(mean_d).div_(scale_d)
        if p.noise_std > 0:
            xb = xb.add_(torch.randn(xb.shape, generator=gen).to(dev), alpha=p.noise_std)
        loss = F.cross_entropy(net(xb, gen), y_all.index_select(0, torch.from_numpy(idx).to(dev)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.detach()
        loss_n += 1
        if step % eval_every and step != max_steps:
            continue
        entry: dict[str, Any] = {"step": step, "loss": float(loss_sum) / loss_n, "lr": lr, "metrics": {}}
        loss_sum, loss_n = torch.zeros((), device=dev), 0
        if x_val is not None:
            entry["metrics"]["val"] = _score(p, x_val[0], x_val[1])
        for name, (xs, ys) in std_sets.items():
            entry["metrics"][name] = _score(p, xs, ys)
        history.append(entry)
        net.train()  # scoring switched to eval mode
        if p.verbose:
            shown = " ".join(f"{s}:{m[p.monitor]:.4f}" for s, m in entry["metrics"].items())
            print(f"[{type(p).__name__}] step {step} loss {entry['loss']:.4f} lr {lr:.2e} {shown}")
        if x_val is None or step < p.min_steps:
            continue
        score = entry["metrics"]["val"][p.monitor]
        if score > best + p.min_delta:
            best, best_step, bad = score, step, 0
            best_state = copy.deepcopy(p.net_.state_dict())
        else:
            bad += 1
        if bad >= p.patience:
            if drops < p.n_lr_drops:
                drops, bad, lr = drops + 1, 0, lr * p.lr_decay
                for group in opt.param_groups:
                    group["lr"] = lr
            else:
                stopped = True
                break
    if best_state is not None:
        p.net_.load_state_dict(best_state)
    else:  # no validation, or training ended before min_steps: the last weights are kept
        best_step = step
        best = history[-1]["metrics"]["val"][p.monitor] if x_val is not None and history else float("nan")
    p.net_.eval()
    p.history_ = history
    p.best_step_ = int(best_step)
    p.best_score_ = float(best) if np.isfinite(best) else float("nan")
    p.n_steps_ = int(step)
    p.stopped_early_ = bool(stopped)
    p.n_lr_drops_ = int(drops)
    p.n_train_ = int(train_idx.size)
    p.n_val_ = 0 if val is None else int(val[1].size)

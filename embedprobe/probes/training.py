"""The online training loop shared by the probes (torch; imported only by ``fit``).

One step = one class-balanced batch drawn afresh (no epochs), augmented, one AdamW step.
Evaluations every ``eval_every`` steps feed early stopping (on the validation set only) and the
history from which the last-20% confidence figures are computed.

:func:`train_jobs` trains any number of probes together: those with the same network shape and
schedule (e.g. the folds x seeds of one protocol) become one stacked model
(:mod:`embedprobe.probes.stacked`), so each step's Python and torch overhead is paid once for
all of them. Each probe keeps its own data, standardisation, sampler and random streams (batch
indices, augmentations and initial weights come from its ``random_state`` alone), learning-rate
schedule and early stopping; a probe that stops leaves the stack. Dropout masks and noise are
drawn for the whole stack from one generator seeded by all the stacked seeds.

Without augmentation, the batches of a stack come from :mod:`embedprobe.probes.batches`: one
gather of the drawn rows per step, or, when nothing depends on the draw beyond which rows it
picks (no noise, no dropout) and the training sets are small (EmoDB), the fixed training rows
weighted by their draw counts - the same steps without the gather.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from embedprobe.common.metrics import METRICS, metrics_grouped
from embedprobe.probes.augment import frame_batch
from embedprobe.probes.batches import CountedBatches, GatheredBatches
from embedprobe.probes.features import FrameSet, _as_tensor
from embedprobe.probes.sampling import BalancedSampler, SameClass
from embedprobe.probes.stacked import StackedAdamW, StackedNet, stack_for, stackable


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


def _scores(probes: Sequence[Any], probas: Sequence[np.ndarray], ys: Sequence[np.ndarray]) -> list[dict[str, float]]:
    """Every metric of each probe's ``probas[i]`` (columns ``classes_``) against encoded labels ``ys[i]``.

    One :func:`metrics_grouped` call for all: the probes' rows are stacked and probe ``i``'s rows
    are group ``i``, which gives exactly its own metrics. Labels unseen in training get
    probability 0 (see ``TorchProbe._encode``).
    """
    k = max(len(p.eval_classes_) for p in probes)
    sizes = [y.shape[0] for y in ys]
    proba, at = np.zeros((sum(sizes), k)), 0
    for q in probas:
        proba[at:at + q.shape[0], :q.shape[1]] = q
        at += q.shape[0]
    vals = metrics_grouped(np.concatenate(ys), proba, np.repeat(np.arange(len(ys)), sizes), len(ys), METRICS)
    return [{m: float(v[i]) for m, v in vals.items()} for i in range(len(ys))]


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


@dataclass
class FitJob:
    """One probe's training, prepared by ``TorchProbe._fit_job`` (see :func:`train` for the fields)."""

    probe: Any
    X: Any
    y: np.ndarray
    train_idx: np.ndarray
    groups: np.ndarray | None
    val: tuple[torch.Tensor, np.ndarray] | None
    sets: dict[str, tuple[torch.Tensor, np.ndarray]]
    seed: int
    aug: tuple[list[torch.Tensor], float] | None = None


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
    train_jobs([FitJob(probe, X, y, train_idx, groups, val, sets, seed, aug)])


def train_jobs(jobs: Sequence[FitJob]) -> None:
    """Fit every job's probe in place, stacking the jobs whose network and schedule match."""
    stacks: dict[tuple, list[_Run]] = {}
    for job in jobs:
        run = _Run(job)
        stacks.setdefault(run.key, []).append(run)
    for runs in stacks.values():
        _train_stack(runs)


class _Run:
    """One probe's data, standardisation, sampler, random streams and early-stopping state."""

    def __init__(self, job: FitJob):
        p, X, y, train_idx = job.probe, job.X, job.y, job.train_idx
        self.job, self.p = job, p
        self.rng = np.random.default_rng([job.seed, 2])
        self.dev = dev = torch.device(p.device)
        is_frames = isinstance(X, FrameSet)
        self.y_tr = y[train_idx]
        self.frame_aug = is_frames and (p.frame_mask > 0 or p.mix_prob > 0)
        if is_frames:  # pooled once; with frame augmentations only for the standardisation
            src, rows = X.pool(p.pooling, train_idx), np.arange(train_idx.size)
        else:  # the caller's array itself (no copy when float32): batches are gathered from it
            src = _as_tensor(X)
            src, rows = (src if src.dtype == torch.float32 else src.to(torch.float32)), train_idx
        full = rows.size == src.shape[0] and np.array_equal(rows, np.arange(src.shape[0]))
        mean, scale = _moments(src, None if full else rows)
        p.mean_, p.scale_ = mean.numpy().astype(np.float64), scale.numpy().astype(np.float64)
        p._mean_t, p._scale_t = mean, scale
        self.same_class = SameClass(y, train_idx) if self.frame_aug and p.mix_prob > 0 else None
        self.src, self.rows = (None if self.frame_aug else src), rows
        self.mean_d, self.scale_d = mean.to(dev), scale.to(dev)
        self.sets = {name: (((x - mean) / scale).to(dev), yy) for name, (x, yy) in job.sets.items()}
        if job.val is not None:
            self.sets = {"val": (((job.val[0] - mean) / scale).to(dev), job.val[1])} | self.sets
        self.has_val = job.val is not None
        self.net = p._make_net(p.n_features_in_, len(p.classes_), torch.Generator().manual_seed(job.seed)).to(dev)
        self.sampler = BalancedSampler(self.y_tr, groups=None if job.groups is None else job.groups[train_idx],
                                       balance=p.balance, rng=self.rng)
        self.simple = self.src is not None and job.aug is None  # batches gathered with the whole stack's
        dims = (tuple((lin.in_features, lin.out_features) for lin in self.net.linears()) if stackable(self.net)
                else ("alone", id(self)))  # a net of another shape trains alone (ModuleNet)
        self.key = (str(dev), int(p.batch_size), int(p.max_steps), int(p.eval_every), dims,
                    float(getattr(self.net, "dropout", 0.0)))
        self.lr = float(p.lr)
        self.best, self.best_step, self.best_row, self.bad, self.drops = -np.inf, 0, None, 0, 0
        self.history: list[dict] = []
        self.stopped, self.n_steps = False, 0

    def batch(self, idx: np.ndarray) -> torch.Tensor:
        """The standardised ``(B, D)`` batch of training rows ``idx`` (augmented as configured)."""
        p, job, dev = self.p, self.job, self.dev
        if self.src is None:
            xb = frame_batch(job.X, job.train_idx[idx], job.y, frame_mask=p.frame_mask, mix_prob=p.mix_prob,
                             pooling=p.pooling, rng=self.rng, same_class=self.same_class).to(dev)
        else:
            xb = self.src.index_select(0, torch.from_numpy(self.rows[idx])).to(dev)
        if job.aug is not None:
            xb = _substitute(xb, job.aug, job.train_idx[idx], self.rng, dev)
        return xb.sub_(self.mean_d).div_(self.scale_d)

    def proba(self, stack: StackedNet, row: int, name: str) -> np.ndarray:
        """Class probabilities (float64, columns ``classes_``) of eval set ``name``."""
        p = torch.softmax(stack.logits_of(row, self.sets[name][0]).double(), dim=1).cpu().numpy()
        return p / p.sum(axis=1, keepdims=True)

    def record(self, stack: StackedNet, row: int, step: int, loss: float, metrics: dict[str, dict]) -> bool:
        """Record one evaluation; returns True when this probe stops (early-stopping rule)."""
        p = self.p
        self.history.append({"step": step, "loss": loss, "lr": self.lr, "metrics": metrics})
        if p.verbose:
            shown = " ".join(f"{s}:{m[p.monitor]:.4f}" for s, m in metrics.items())
            print(f"[{type(p).__name__}] step {step} loss {loss:.4f} lr {self.lr:.2e} {shown}")
        if not self.has_val or step < p.min_steps:
            return False
        score = metrics["val"][p.monitor]
        if score > self.best + p.min_delta:
            self.best, self.best_step, self.bad = score, step, 0
            self.best_row = stack.flat[row].detach().clone()
        else:
            self.bad += 1
        if self.bad >= p.patience:
            if self.drops < p.n_lr_drops:
                self.drops, self.bad, self.lr = self.drops + 1, 0, self.lr * p.lr_decay
            else:
                self.stopped = True
        return self.stopped

    def finish(self, stack: StackedNet, row: int) -> None:
        """Load the kept weights into the probe's net and set its learned attributes."""
        p = self.p
        if self.best_row is None:  # no validation, or training ended before min_steps: the last weights
            self.best_step = self.n_steps
            self.best = (self.history[-1]["metrics"]["val"][p.monitor]
                         if self.has_val and self.history else float("nan"))
            self.best_row = stack.flat[row].detach()
        p.net_ = stack.load_into(self.net, self.best_row)
        p.net_.eval()
        p.history_ = self.history
        p.best_step_ = int(self.best_step)
        p.best_score_ = float(self.best) if np.isfinite(self.best) else float("nan")
        p.n_steps_ = int(self.n_steps)
        p.stopped_early_ = bool(self.stopped)
        p.n_lr_drops_ = int(self.drops)
        p.n_train_ = int(self.job.train_idx.size)
        p.n_val_ = 0 if self.job.val is None else int(self.job.val[1].size)


def _weight_mask(stack: Any) -> torch.Tensor:
    """``[n]``: 1 at the weights of a stack row, 0 at its biases (which ``l2`` leaves alone)."""
    mask = torch.zeros(stack.n_params)
    if hasattr(stack, "spans"):  # StackedNet: per layer, the weight then the bias
        for a, b, _ in stack.spans:
            mask[a:b] = 1.0
        return mask
    at = 0  # ModuleNet: the net's parameters in order
    for name, shape in zip(stack.names, stack.shapes, strict=True):
        n = shape.numel()
        mask[at:at + n] = 0.0 if name.rsplit(".", 1)[-1] == "bias" else 1.0
        at += n
    return mask


def _train_stack(runs: list[_Run]) -> None:
    """Train runs of one key together until each stops or reaches ``max_steps``."""
    p0, dev = runs[0].p, runs[0].dev
    batch_size, max_steps, every = int(p0.batch_size), int(p0.max_steps), int(p0.eval_every)
    stack = stack_for([r.net for r in runs], dev, len(p0.classes_))
    n_classes = stack.dims[-1][1]
    opt = StackedAdamW(len(runs), stack.n_params, [r.lr for r in runs], [float(r.p.weight_decay) for r in runs], dev)
    gen = torch.Generator().manual_seed(int(np.random.SeedSequence([r.job.seed for r in runs]).generate_state(1)[0]))
    noise = torch.tensor([float(r.p.noise_std) for r in runs], device=dev)[:, None, None]
    any_noise = bool((noise > 0).any())
    l2 = torch.tensor([float(r.p.l2) for r in runs], device=dev)[:, None] * _weight_mask(stack).to(dev)
    any_l2 = bool((l2 > 0).any())
    simple = all(r.simple for r in runs)
    counted = (CountedBatches(runs, n_classes) if simple and not any_noise and isinstance(stack, StackedNet)
               and (stack.dropout == 0 or len(stack.dims) == 1) and CountedBatches.fits(runs, batch_size) else None)
    gather = GatheredBatches(runs) if simple and counted is None else None
    active, step = list(runs), 0
    loss_sum = torch.zeros(len(runs), device=dev)
    while active and step < max_steps:
        n = min(every - step % every, max_steps - step)  # steps up to the next evaluation
        draws = [r.sampler.draw(n * batch_size).reshape(n, batch_size) for r in active]
        if counted is not None:
            batches = _counted_batches(counted, draws)
        else:
            batches = _drawn_batches(active, draws, gather, n_classes, noise if any_noise else None, gen)
        for x, target, weight in batches:
            grad, losses = stack.loss_grad(x, target, gen, weight=weight)
            if any_l2:  # the gradient of (l2 / 2) * ||weights||^2 added to the mean cross-entropy
                grad = grad.add_(stack.flat * l2)
            opt.step(stack.flat, grad)
            loss_sum += losses
        step += n
        mean_loss = (loss_sum / n).tolist()
        loss_sum.zero_()
        metrics = _evaluate(active, stack)
        stopped = []
        for i, r in enumerate(active):
            r.n_steps = step
            if r.record(stack, i, step, mean_loss[i], metrics[i]):
                stopped.append(i)
            opt.set_lr(i, r.lr)
        if stopped:
            for i in stopped:
                active[i].finish(stack, i)
            keep = [i for i in range(len(active)) if i not in stopped]
            sel = torch.tensor(keep, dtype=torch.long, device=dev)
            stack.keep(sel)
            opt.keep(sel)
            noise, l2, loss_sum = noise[sel], l2[sel], loss_sum[sel]
            if gather is not None and keep:
                gather.keep(keep)
            if counted is not None and keep:
                counted.keep(sel)
            active = [active[i] for i in keep]
    for i, r in enumerate(active):
        r.finish(stack, i)


def _counted_batches(counted: CountedBatches, draws: list[np.ndarray]) -> Iterator[tuple]:
    """``(x, target, weight)`` of each step of ``draws`` (per run ``(n_steps, B)``) on
    :class:`CountedBatches`: the same losses and gradients as the drawn batches, up to float rounding."""
    x = counted.features()
    for w in counted.weights(draws):
        yield x, counted.target(w), w


def _drawn_batches(active: list[_Run], draws: list[np.ndarray], gather: GatheredBatches | None, n_classes: int,
                   noise: torch.Tensor | None, gen: torch.Generator) -> Iterator[tuple]:
    """``(x, target, None)`` of each step of ``draws``: the ``[P, D, B]`` drawn rows (one gather, or
    each run's own batch), noise added if given, and their one-hot labels divided by ``B``."""
    n, batch_size = draws[0].shape
    dev = active[0].dev
    labels = torch.from_numpy(np.stack([r.y_tr[d] for r, d in zip(active, draws, strict=True)], axis=1))
    target = torch.zeros((n, len(active), n_classes, batch_size), device=dev)
    target.scatter_(2, labels[:, :, None, :].to(dev), 1.0 / batch_size)  # one-hot / B: [n, P, C, B]
    feat_rows = gather.indices(draws) if gather is not None else None
    for s in range(n):
        if gather is not None:
            xb = gather.batch(feat_rows[s], len(active))
        else:
            xb = torch.stack([r.batch(d[s]) for r, d in zip(active, draws, strict=True)])
        if noise is not None:
            xb = xb.add_(torch.randn(xb.shape, generator=gen).to(dev) * noise)
        yield xb.transpose(1, 2), target[s], None


def _evaluate(active: list[_Run], stack: StackedNet) -> list[dict[str, dict[str, float]]]:
    """``{set: {metric: value}}`` of every active run (its validation set first, then its eval sets)."""
    out: list[dict[str, dict[str, float]]] = [{} for _ in active]
    for name in dict.fromkeys(n for r in active for n in r.sets):
        rows = [i for i, r in enumerate(active) if name in r.sets]
        probas = [active[i].proba(stack, i, name) for i in rows]
        scores = _scores([active[i].p for i in rows], probas, [active[i].sets[name][1] for i in rows])
        for i, sc in zip(rows, scores, strict=True):
            out[i][name] = sc
    return [{n: m[n] for n in r.sets} for r, m in zip(active, out, strict=True)]

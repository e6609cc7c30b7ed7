"""``P`` probe networks of one shape trained as one model: stacked weights and a stacked AdamW.

A cross-validation protocol trains many small probes (EmoDB: 10 folds x 3 seeds of an 88 x 4
linear layer). Trained one after the other, each optimizer step is a few microseconds of
arithmetic under ~0.5 ms of Python and torch dispatch. Stacked, every step runs one batched
matrix product per layer and one optimizer update over a ``[P, n_params]`` tensor, so the
overhead is paid once per step for all ``P``. Activations are kept features-first,
``[P, D, B]``, so each product is ``[P, H, D] x [P, D, B]`` (weights in ``nn.Linear``'s own
layout): MKL's batched kernels are ~4x faster that way round than with a narrow output
(``[P, B, 88] x [P, 88, 4]``), and the loss is a log-softmax over dim 1 (``F.cross_entropy``
on 3-D input is ~3x slower here).

The probes stay independent: the loss is the sum of the per-probe mean cross-entropies, so each
probe's gradient is that of its own loss; AdamW keeps per-probe moments (rows of ``[P, n]``
tensors) and a per-probe learning rate. Same arithmetic as ``torch.optim.AdamW`` (non-fused).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class StackedNet:
    """The weights of ``P`` nets with the same layer sizes, as rows of one ``[P, n]`` leaf tensor.

    Row ``p`` holds, layer after layer, the weight (``d_out x d_in``, row-major) then the bias.
    The nets are chains of linear layers (their ``linears()``) with ReLU and dropout
    (probability ``dropout``) between them; see :mod:`embedprobe.probes.nets`.
    """

    def __init__(self, nets: list[nn.Module], dev: torch.device):
        layers = [net.linears() for net in nets]
        self.dims = [(lin.in_features, lin.out_features) for lin in layers[0]]
        if any([(lin.in_features, lin.out_features) for lin in ls] != self.dims for ls in layers):
            raise ValueError("StackedNet needs nets with the same layer sizes")
        self.dropout = float(getattr(nets[0], "dropout", 0.0))
        self.spans, at = [], 0
        for d_in, d_out in self.dims:
            self.spans.append((at, at + d_in * d_out, at + d_in * d_out + d_out))
            at += d_in * d_out + d_out
        with torch.no_grad():
            rows = [torch.cat([t for lin in ls for t in (lin.weight.reshape(-1), lin.bias)]) for ls in layers]
            self.flat = torch.stack(rows).to(dev)

    @property
    def n_params(self) -> int:
        return self.flat.shape[1]

    def _layers(self, flat: torch.Tensor):
        for (d_in, d_out), (a, b, c) in zip(self.dims, self.spans, strict=True):
            yield flat[:, a:b].view(-1, d_out, d_in), flat[:, b:c].view(-1, d_out, 1)

    def forward(self, x: torch.Tensor, gen: torch.Generator | None = None, *, train: bool) -> torch.Tensor:
        """``[P, D, B]`` standardised features -> ``[P, C, B]`` logits (dropout when ``train``)."""
        return _forward(self._layers(self.flat), x, self.dropout if train else 0.0, gen)

    def loss_grad(self, x: torch.Tensor, target: torch.Tensor, gen: torch.Generator | None,
                  weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One training step's forward and backward by hand (no autograd: half the torch calls).

        Args:
            x: ``[P, D, B]`` standardised features.
            target: ``[P, C, B]`` one-hot labels divided by ``B`` (times ``weight`` if given).
            gen: generator of the dropout masks.
            weight: ``[P, 1, B]`` weights of the columns of ``x`` (None: ``1 / B`` each). With
                ``x`` a run's fixed training rows and ``weight`` their draw counts divided by the
                batch size, the loss and gradient are those of the drawn batch
                (:class:`~embedprobe.probes.batches.CountedBatches`); only without dropout, whose
                masks would differ between the copies of a row.

        Returns:
            ``(grad, loss)``: the ``[P, n]`` gradient of every probe's mean cross-entropy
            (dropout while training) and the ``[P]`` losses.
        """
        p = self.dropout
        layers = [(W.contiguous(), b) for W, b in self._layers(self.flat)]  # batched kernels want dense batches
        acts, h = [], x
        for i, (W, b) in enumerate(layers):
            acts.append(h)
            h = torch.baddbmm(b, W, h)
            if i < len(layers) - 1:
                h = torch.relu(h)
                if p > 0:
                    h = h * (torch.rand(h.shape, generator=gen) >= p).to(h.device) / (1.0 - p)
        logp = torch.log_softmax(h, 1)
        loss = (logp * target).sum((1, 2)).neg_()
        g = logp.exp_()  # d(mean CE)/d logits: (softmax - onehot) / B, or weighted by draw counts / B
        g = (g.div_(x.shape[2]) if weight is None else g.mul_(weight)).sub_(target)
        grads: list[torch.Tensor] = []
        for i in range(len(layers) - 1, -1, -1):
            grads += [g.sum(2), torch.bmm(g, acts[i].transpose(1, 2)).flatten(1)]
            if i:  # through the dropout and ReLU that made acts[i]: zero where it is zero, else the dropout scale
                g = torch.bmm(layers[i][0].transpose(1, 2), g).mul_((acts[i] > 0) / (1.0 - p))
        return torch.cat(grads[::-1], dim=1), loss

    def logits_of(self, p: int, x: torch.Tensor) -> torch.Tensor:
        """Eval-mode logits ``[N, C]`` of probe ``p`` for ``[N, D]`` features (no gradient).

        Computed as the probe's own ``nn.Linear`` layers compute them (``F.linear``), so the
        history's scores equal those of ``predict_proba`` with the same weights.
        """
        layers = [(W[0], b[0, :, 0]) for W, b in self._layers(self.flat[p:p + 1])]
        with torch.no_grad():
            for i, (W, b) in enumerate(layers):
                x = F.linear(x, W, b)
                if i < len(layers) - 1:
                    x = torch.relu(x)
            return x

    def keep(self, rows: torch.Tensor) -> None:
        """Drop the probes not in ``rows`` (indices into the current rows)."""
        self.flat = self.flat[rows]

    def load_into(self, net: nn.Module, row: torch.Tensor) -> nn.Module:
        """Copy one row of weights (``[n]``) into ``net``'s layers; returns ``net``."""
        with torch.no_grad():
            for lin, (W, b) in zip(net.linears(), self._layers(row[None].to(lin_device(net))), strict=True):
                lin.weight.copy_(W[0])
                lin.bias.copy_(b[0, :, 0])
        return net


class ModuleNet:
    """A probe network of any other shape, trained alone with autograd behind ``StackedNet``'s interface.

    A plugin probe whose net is not a chain of ``linears()`` (a cosine classifier, attention
    pooling ...) still gets the same sampler, schedule, early stopping and history: its
    parameters are one ``[1, n]`` row, its forward is ``net(x, gen)`` on ``[B, D]`` features.
    """

    def __init__(self, net: nn.Module, dev: torch.device, n_classes: int):
        self.net = net
        self.names = [name for name, _ in net.named_parameters()]
        self.shapes = [t.shape for _, t in net.named_parameters()]
        self.dims = [(0, n_classes)]
        with torch.no_grad():
            self.flat = nn.utils.parameters_to_vector(net.parameters()).to(dev)[None].clone()

    @property
    def n_params(self) -> int:
        return self.flat.shape[1]

    def _params(self, row: torch.Tensor) -> dict[str, torch.Tensor]:
        out, at = {}, 0
        for name, shape in zip(self.names, self.shapes, strict=True):
            n = shape.numel()
            out[name] = row[at:at + n].view(shape)
            at += n
        return out

    def loss_grad(self, x: torch.Tensor, target: torch.Tensor, gen: torch.Generator | None,
                  weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """As :meth:`StackedNet.loss_grad`, for the one net (``x``: ``[1, D, B]``). ``weight`` needs
        nothing more here: it is in ``target`` already, and autograd differentiates that loss."""
        row = self.flat[0].detach().requires_grad_(True)
        self.net.train()
        with torch.enable_grad():
            logits = torch.func.functional_call(self.net, self._params(row), (x[0].T, gen))
            loss = -(torch.log_softmax(logits, 1) * target[0].T).sum()
            (grad,) = torch.autograd.grad(loss, row)
        return grad[None], loss.detach()[None]

    def logits_of(self, p: int, x: torch.Tensor) -> torch.Tensor:
        self.net.eval()
        with torch.no_grad():
            return torch.func.functional_call(self.net, self._params(self.flat[p]), (x,))

    def keep(self, rows: torch.Tensor) -> None:
        self.flat = self.flat[rows]

    def load_into(self, net: nn.Module, row: torch.Tensor) -> nn.Module:
        with torch.no_grad():
            nn.utils.vector_to_parameters(row.to(lin_device(net)), net.parameters())
        return net


def stackable(net: nn.Module) -> bool:
    """Whether ``net`` is a chain of ``linears()`` that :class:`StackedNet` can stack."""
    return callable(getattr(net, "linears", None))


def stack_for(nets: list[nn.Module], dev: torch.device, n_classes: int) -> StackedNet | ModuleNet:
    """A :class:`StackedNet` of ``nets`` (chains of ``linears()``), else a :class:`ModuleNet` of the one net."""
    if all(stackable(net) for net in nets):
        return StackedNet(nets, dev)
    if len(nets) != 1:
        raise ValueError("nets without linears() are trained one at a time")
    return ModuleNet(nets[0], dev, n_classes)


def lin_device(net: nn.Module) -> torch.device:
    return next(net.parameters()).device


def _forward(layers, x: torch.Tensor, dropout: float, gen: torch.Generator | None) -> torch.Tensor:
    layers = list(layers)
    for i, (W, b) in enumerate(layers):
        x = torch.baddbmm(b, W, x)
        if i < len(layers) - 1:
            x = torch.relu(x)
            if dropout > 0:
                keep = (torch.rand(x.shape, generator=gen) >= dropout).to(x.device)
                x = x * keep / (1.0 - dropout)
    return x


class StackedAdamW:
    """AdamW over the rows of a ``[P, n]`` parameter, each row with its own learning rate.

    Same update as ``torch.optim.AdamW`` (betas 0.9/0.999, eps 1e-8, decoupled weight decay).
    """

    def __init__(self, n_rows: int, n_params: int, lr: list[float], weight_decay: list[float],
                 dev: torch.device, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.m = torch.zeros((n_rows, n_params), device=dev)
        self.v = torch.zeros((n_rows, n_params), device=dev)
        self.lr = torch.tensor(lr, dtype=torch.float32, device=dev)[:, None]
        self.wd = torch.tensor(weight_decay, dtype=torch.float32, device=dev)[:, None]
        self.any_wd = any(w != 0 for w in weight_decay)  # without decay the factor is exactly 1: skipped
        self.betas, self.eps, self.t = betas, eps, 0

    def set_lr(self, row: int, lr: float) -> None:
        self.lr[row, 0] = lr

    def keep(self, rows: torch.Tensor) -> None:
        self.m, self.v, self.lr, self.wd = self.m[rows], self.v[rows], self.lr[rows], self.wd[rows]

    @torch.no_grad()
    def step(self, param: torch.Tensor, grad: torch.Tensor | None = None) -> None:
        """One update of ``param`` in place from ``grad`` (default: ``param.grad``, then cleared)."""
        b1, b2 = self.betas
        self.t += 1
        grad = param.grad if grad is None else grad
        if self.any_wd:
            param.mul_(1.0 - self.lr * self.wd)
        self.m.lerp_(grad, 1.0 - b1)
        self.v.mul_(b2).addcmul_(grad, grad, value=1.0 - b2)
        denom = (self.v.sqrt() / math.sqrt(1.0 - b2 ** self.t)).add_(self.eps)
        param.sub_(self.m / denom * (self.lr / (1.0 - b1 ** self.t)))
        if param.grad is not None:
            param.grad = None

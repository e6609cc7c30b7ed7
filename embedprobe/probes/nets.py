"""The torch networks behind the probes (imported only when a probe is fitted or used).

Initialisation and dropout draw from an explicit ``torch.Generator`` so a probe is
deterministic given its ``random_state`` and never touches torch's global random state.

Every net is a chain of ``nn.Linear`` layers with ReLU (then dropout while training) between
them, listed by ``linears()`` with the dropout probability in ``dropout``: the contract
:class:`embedprobe.probes.stacked.StackedNet` relies on to train many probes as one model.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _linear(d_in: int, d_out: int, gen: torch.Generator) -> nn.Linear:
    """``nn.Linear`` with torch's default initialisation, drawn from ``gen``."""
    layer = torch.nn.utils.skip_init(nn.Linear, d_in, d_out)
    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=gen)
    bound = 1.0 / math.sqrt(d_in) if d_in > 0 else 0.0
    nn.init.uniform_(layer.bias, -bound, bound, generator=gen)
    return layer


class LinearNet(nn.Module):
    """One linear layer: logits = x W^T + b."""

    dropout = 0.0

    def __init__(self, d_in: int, n_classes: int, gen: torch.Generator):
        super().__init__()
        self.fc = _linear(d_in, n_classes, gen)

    def forward(self, x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        return self.fc(x)

    def linears(self) -> list[nn.Linear]:
        """The layers in order (ReLU and dropout between them): how the stacked trainer sees the net."""
        return [self.fc]


class MLPNet(nn.Module):
    """Hidden layers (ReLU, then dropout while training) and a linear output layer.

    Dropout masks come from the generator passed to :meth:`forward`, not the global RNG.
    """

    def __init__(self, d_in: int, n_classes: int, hidden: tuple[int, ...], dropout: float,
                 gen: torch.Generator):
        super().__init__()
        dims = (d_in, *hidden)
        self.hidden = nn.ModuleList(_linear(a, b, gen) for a, b in zip(dims[:-1], dims[1:], strict=True))
        self.out = _linear(dims[-1], n_classes, gen)
        self.dropout = float(dropout)

    def forward(self, x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        p = self.dropout
        for layer in self.hidden:
            x = torch.relu(layer(x))
            if self.training and p > 0:
                keep = torch.rand(x.shape, generator=gen) >= p
                x = x * keep / (1.0 - p)
        return self.out(x)

    def linears(self) -> list[nn.Linear]:
        """The layers in order (ReLU and dropout between them): how the stacked trainer sees the net."""
        return [*self.hidden, self.out]

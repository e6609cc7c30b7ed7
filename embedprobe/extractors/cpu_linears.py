"""``nn.Linear`` replacements that call oneDNN directly on CPU (inference only, frozen weights).

* ``use_prepacked_linears``: bf16 linears whose weight is reordered once, at load, into
  oneDNN's blocked layout (what torch.compile's freezing does); torch's ``F.linear`` reorders
  it on every call. Measured on the project's AVX-512-BF16 machines: GEMMs of WavLM-Large's
  shapes 5-8 % faster (197 -> 213 GFLOP/s on one core), a whole forward 9 % faster, outputs
  identical (same kernel, same accumulation).
* ``use_onednn_linears``: fp32 linears through oneDNN (``precision="fp32-onednn"``), for CPUs
  without native bf16: about 1.4-1.6x torch's default fp32 path.

Both skip the ``q/k/v_proj`` of a fused WavLM attention (unused views of ``qkv_fused``) and
record nothing themselves: ``rewrites.prepare`` puts their counts in ``runtime_config()``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any


def _swap_linears(model: Any, wrap: Callable[[Any], Any], skip: Sequence[Any] = ()) -> int:
    """Replace every CPU ``nn.Linear`` of ``model`` (outside ``skip``) by ``wrap(linear)``."""
    from torch import nn

    skipped = {id(m) for s in skip for m in s.modules()}
    n = 0
    for parent in list(model.modules()):
        if id(parent) in skipped:
            continue
        fused = hasattr(parent, "qkv_fused")  # its q/k/v_proj are unused views of qkv_fused
        for name, child in list(parent.named_children()):
            if fused and name in ("q_proj", "k_proj", "v_proj"):
                continue
            if type(child) is nn.Linear and child.weight.device.type == "cpu" and id(child) not in skipped:
                new = wrap(child)
                if new is not child:
                    setattr(parent, name, new)
                    n += 1
    return n


def prepacked_supported() -> bool:
    """``True`` if this torch build has oneDNN's prepacked linear ops (and they run here)."""
    import torch

    try:
        w = torch.ops.mkldnn._reorder_linear_weight(torch.ones(16, 32, dtype=torch.bfloat16), None)
        y = torch.ops.mkldnn._linear_pointwise(torch.ones(4, 32, dtype=torch.bfloat16), w, None, "none", [], "")
    except (AttributeError, RuntimeError, TypeError):
        return False
    return tuple(y.shape) == (4, 16) and bool(torch.all(y == 32))


def use_prepacked_linears(model: Any, skip: Sequence[Any] = ()) -> int:
    """Swap the bf16 ``nn.Linear`` layers of ``model`` for prepacked oneDNN ones; returns the count.

    Inputs are cast to bf16 (as autocast would) and outputs are bf16. Linears whose weight is
    not bf16 (kept fp32 on purpose) and those inside ``skip`` are left alone. Returns 0 where
    the ops are missing (another torch build): the model then runs as before.
    """
    import torch

    if not prepacked_supported():
        return 0
    prepacked = _classes()[0]
    return _swap_linears(model, lambda lin: prepacked(lin) if lin.weight.dtype == torch.bfloat16
                         else lin, skip)


def use_onednn_linears(model: Any) -> int:
    """Swap every ``nn.Linear`` (fp32, CPU) of ``model`` for a oneDNN fp32 linear; returns the count."""
    return _swap_linears(model, _classes()[1])


@lru_cache(maxsize=1)
def _classes() -> tuple[type, type]:
    """``(PrepackedLinear, OneDNNLinear)``, defined on first use (importing this module stays torch-free)."""
    import torch
    from torch import nn

    class PrepackedLinear(nn.Module):
        """A frozen bf16 ``nn.Linear`` with its weight in oneDNN's blocked layout.

        ``weight`` is a meta tensor of the original shape and dtype, so code that reads
        ``linear.weight.dtype`` or ``.shape`` still works while the values live only prepacked;
        ``state_dict()`` gives the plain weight back (``to_dense``: the same values) and
        ``load_state_dict()`` packs a new one.
        """

        def __init__(self, lin: nn.Linear):
            super().__init__()
            self.in_features, self.out_features = lin.in_features, lin.out_features
            self._w = torch.ops.mkldnn._reorder_linear_weight(lin.weight.detach(), None)
            self.bias = None if lin.bias is None else lin.bias.detach().to(torch.bfloat16)
            self.weight = torch.empty(lin.weight.shape, dtype=torch.bfloat16, device="meta")

        def _save_to_state_dict(self, destination, prefix, keep_vars):
            destination[prefix + "weight"] = self._w.to_dense()
            if self.bias is not None:
                destination[prefix + "bias"] = self.bias

        def _load_from_state_dict(self, state, prefix, local_metadata, strict, missing, unexpected, errors):
            for key in ("weight",) + (("bias",) if self.bias is not None else ()):
                if prefix + key not in state:
                    missing.append(prefix + key)
            if prefix + "weight" in state:
                self._w = torch.ops.mkldnn._reorder_linear_weight(state[prefix + "weight"].to(torch.bfloat16), None)
            if self.bias is not None and prefix + "bias" in state:
                self.bias = state[prefix + "bias"].to(torch.bfloat16)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            shape = x.shape
            y = torch.ops.mkldnn._linear_pointwise(x.reshape(-1, shape[-1]).to(torch.bfloat16), self._w,
                                                   self.bias, "none", [], "")
            return y.view(*shape[:-1], self.out_features)

    class OneDNNLinear(nn.Module):
        """A frozen ``nn.Linear`` run through oneDNN in fp32 (CPU only)."""

        def __init__(self, lin: nn.Linear):
            super().__init__()
            self.in_features, self.out_features = lin.in_features, lin.out_features
            self._w = lin.weight.detach().float().to_mkldnn()
            bias = lin.bias.detach().float() if lin.bias is not None else torch.zeros(lin.out_features)
            self._b = bias.to_mkldnn()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.dtype != torch.float32 or x.is_cuda:
                raise RuntimeError("oneDNN linears run fp32 on CPU only")
            shape = x.shape
            y = torch._C._nn.mkldnn_linear(x.reshape(-1, shape[-1]).contiguous().to_mkldnn(), self._w, self._b)
            return y.to_dense().view(*shape[:-1], self.out_features)

    return PrepackedLinear, OneDNNLinear

"""Convolutions as one matrix multiply (GEMM), for the CPU paths where oneDNN's direct convolution is slow.

* ``use_matmul_convs``: an ``nn.Conv2d`` on a small feature map runs as ``unfold`` + one GEMM.
  oneDNN's direct convolution is weight-bound when a 3x3 kernel over 1024-2048 channels meets
  a map of a few dozen positions (CNN14's last block ran at 17 GFLOP/s); the GEMM runs it 3.6x
  faster in fp32 and 4.5x in bf16. The choice is made per call from the shape.
* ``conv1d_gemm_weight``: a 1-D convolution's weight laid out for a channels-last GEMM over
  overlapping windows (the wav2vec2-family CNN front end, ``hf_ssl_patches``).

Same arithmetic (fp32 or autocast), another summation order.
"""

from __future__ import annotations

import types
from typing import Any

# A convolution runs as ``unfold`` + one matrix multiply when its kernel holds at least this many
# input values (channels x kernel area) per output position: on CPU, oneDNN's direct convolution
# is weight-bound there (CNN14's last block, 2048 channels on a 2-bin-wide map: 17 GFLOP/s).
MATMUL_CONV_RATIO = 48


def _matmul_conv_forward(self, x):
    """``nn.Conv2d.forward`` as ``unfold`` + ``linear`` when the feature map is small (CPU)."""
    import torch.nn.functional as F

    kh, kw = self.kernel_size
    sh, sw = self.stride
    ph, pw = self.padding
    dh, dw = self.dilation
    h = (x.shape[-2] + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    w = (x.shape[-1] + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    k = self.in_channels * kh * kw
    if x.dim() != 4 or h * w * MATMUL_CONV_RATIO > k:
        return self._conv_forward(x, self.weight, self.bias)
    cols = F.unfold(x, (kh, kw), dilation=(dh, dw), padding=(ph, pw), stride=(sh, sw))
    cols = cols.transpose(1, 2).contiguous()  # (B, h*w, k): bf16 GEMMs want a dense left operand
    out = F.linear(cols, self.weight.reshape(self.out_channels, k), self.bias)  # (B, h*w, C_out)
    return out.transpose(1, 2).reshape(x.shape[0], self.out_channels, h, w)


def use_matmul_convs(model: Any) -> int:
    """Let every plain ``nn.Conv2d`` of ``model`` run as ``unfold`` + GEMM on small feature maps.

    Same arithmetic (fp32 or autocast), another summation order (outputs agree to ~1e-6
    relative in fp32). The choice is made per call from the input's shape: a convolution
    whose kernel has ``MATMUL_CONV_RATIO`` or more input values per output position uses the
    GEMM (measured: CNN14's conv_block6 3.6x faster in fp32, 4.5x in bf16); larger maps keep
    the direct convolution. Grouped, non-zero-padded and string-padded convolutions are left
    alone. Returns the number of convolutions patched.
    """
    from torch import nn

    n = 0
    for module in model.modules():
        if (type(module) is nn.Conv2d and module.groups == 1 and module.padding_mode == "zeros"
                and not isinstance(module.padding, str)):
            if not getattr(module, "_matmul_conv", False):
                module.forward = types.MethodType(_matmul_conv_forward, module)
                module._matmul_conv = True
            n += 1
    return n


def conv1d_gemm_weight(conv: Any) -> Any:
    """``conv``'s ``(C_out, C_in, k)`` weight as ``(C_out, k * C_in)``, cached per weight tensor."""
    w = conv.weight
    key = (w.data_ptr(), w.dtype, w.device, w._version)
    cached = getattr(conv, "_gemm_weight", None)
    if cached is None or cached[0] != key:
        flat = w.detach().permute(0, 2, 1).reshape(w.shape[0], -1).contiguous()
        conv._gemm_weight = cached = (key, flat)
    return cached[1]

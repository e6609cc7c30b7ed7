"""``prepare``: the module rewrites that a resolved precision calls for, and what they did.

For every precision: weight norms folded into plain weights, WavLM attention fused
(``hf_ssl_patches``) and Whisper's encoder attention fused (``_whisper.fuse_attention``;
``fuse_attention=False`` for the other families). bf16/fp16: matmul/conv weights stored in that dtype once (under autocast
they would be cast on every call: 13 % of a WavLM-Large CPU forward), except in the submodules
kept in fp32, and on CPU the LayerNorm CNN front ends run as GEMMs. CPU bf16: **prepacked bf16
linears** (every ``nn.Linear`` calls oneDNN with its weight reordered once into the kernel's
blocked layout, ``cpu_linears``: 5-8 % faster GEMMs, 9 % on a WavLM-Large forward, identical
outputs). fp32-onednn: linears through oneDNN.

* **fp32 front ends.** STFT / log-mel front ends (CNN14, HTS-AT) are listed in ``prepare``'s
  ``keep_fp32``: bf16 rounds the waveform and the DFT kernels to 8 bits, which put the
  log-mel of a real EmoDB clip off by 0.14 dB on average and 13 dB at worst (CNN14, 16 kHz)
  and by 6 dB on average (HTS-AT's 32 kHz mel on 44.1 kHz input, whose top bands are nearly
  empty). They cost ~1 % (CNN14) to ~15 % (HTS-AT) of the FLOPs, so they stay fp32.
* **Convolutions as one GEMM on small maps** (``matmul_convs``, ``conv_gemm``).

Every choice is recorded: ``prepare`` returns the dict that ``runtime_config()`` reports and
the extraction pipeline writes into the cache's provenance (its keys are recorded names).
"""

from __future__ import annotations

import types
from collections.abc import Sequence
from typing import Any

from embedprobe.extractors._whisper import fuse_attention as fuse_whisper_attention
from embedprobe.extractors.conv_gemm import use_matmul_convs
from embedprobe.extractors.cpu_linears import use_onednn_linears, use_prepacked_linears
from embedprobe.extractors.hf_ssl_patches import patch_conv_feature_encoder, patch_wavlm_attention


def bake_weight_norm(model: Any) -> int:
    """Fold weight-norm parametrizations into plain weights (inference only); returns the count.

    WavLM / wav2vec2 positional convolutions recompute ``g * v / ||v||`` on every forward.
    """
    from torch.nn.utils import parametrize

    n = 0
    for module in model.modules():
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
            n += 1
    return n


def cast_matmul_weights(model: Any, dtype: Any, skip: Sequence[Any] = (),
                        precast: dict[int, Any] | None = None) -> int:
    """Store the weights of ``nn.Linear`` / ``nn.Conv1d`` / ``nn.Conv2d`` in ``dtype``; returns the count.

    Under autocast the weights are cast anyway, on every call (13 % of a WavLM-Large CPU
    forward); casting them once removes that copy. Biases, norms and embeddings stay fp32.
    Only valid when every forward runs under autocast of the same dtype, except inside the
    ``skip`` submodules (see ``run_in_fp32``), whose weights stay fp32. ``precast``: casts made
    already (``precision_check.ModuleScreen.cast_weights``: ``{id(module): (module, the weight
    it was cast from, cast)}``), used instead of casting again while the module still holds
    that weight.
    """
    from torch import nn

    skipped = {id(m) for s in skip for m in s.modules()}
    n = 0
    for module in model.modules():
        if id(module) in skipped:
            continue
        if type(module) in (nn.Linear, nn.Conv1d, nn.Conv2d) and module.weight.dtype != dtype:
            cast = _precast(module, dtype, precast)
            module.weight.data = module.weight.data.to(dtype) if cast is None else cast
            n += 1
    return n


def _precast(module: Any, dtype: Any, precast: dict[int, Any] | None) -> Any:
    """The cast of ``module``'s current weight in ``precast``, or ``None``."""
    entry = (precast or {}).get(id(module))
    if entry is None:
        return None
    owner, source, cast = entry
    weight = module.weight
    fits = (owner is module and source.data_ptr() == weight.data_ptr() and source.shape == weight.shape
            and cast.dtype == dtype and cast.shape == weight.shape)
    return cast if fits else None


def run_in_fp32(module: Any, device: str) -> None:
    """Make ``module`` compute in fp32 under any autocast: autocast off, half inputs cast up.

    Idempotent. Its weights must be fp32 (``cast_matmul_weights(..., skip=[module])``).
    """
    import torch

    if getattr(module, "_fp32_kept", False):
        return
    inner = module.forward
    kind = "cuda" if str(device).startswith("cuda") else "cpu"

    def forward(self, *args, **kwargs):
        args = tuple(a.float() if torch.is_tensor(a) and a.dtype in (torch.bfloat16, torch.float16)
                     else a for a in args)
        with torch.autocast(kind, enabled=False):
            return inner(*args, **kwargs)

    module.forward = types.MethodType(forward, module)
    module._fp32_kept = True


def prepare(model: Any, precision: str, device: str, *, fuse_attention: bool = True,
            keep_fp32: Sequence[Any] = (), matmul_convs: bool = False,
            precast: dict[int, Any] | None = None) -> dict[str, Any]:
    """Apply the module rewrites that suit a resolved ``precision`` and describe what was done.

    All: weight norms folded into plain weights (same numbers, computed once), WavLM
    attention fused into one projection + SDPA. bf16/fp16: matmul/conv weights stored in that
    dtype (run the model under ``precision.inference(precision, device)`` only) and, on CPU, LayerNorm
    CNN front ends run as GEMMs (``patch_conv_feature_encoder``). fp32-onednn: linears
    through oneDNN.

    Args:
        model: the network (already on ``device``, in eval mode).
        precision: a resolved precision (``resolve_precision``).
        device: torch device.
        fuse_attention: fuse transformers' WavLM attention (see ``patch_wavlm_attention``).
        keep_fp32: submodules that always compute in fp32 (e.g. an STFT / log-mel front end,
            whose low-energy bins bf16 rounding ruins): their weights are not cast and their
            forward runs with autocast disabled (``run_in_fp32``).
        matmul_convs: on CPU, run ``nn.Conv2d`` layers whose feature maps are small next to
            their kernels as one matrix multiply (``use_matmul_convs``).
        precast: matmul/conv weights already cast to the fast dtype (``cast_matmul_weights``).

    Returns:
        ``{"precision", "attention", "onednn_linears", "weights_dtype", ...}`` for
        ``runtime_config()`` (``"fp32_modules"`` and ``"matmul_convs"`` when asked for).
    """
    import torch

    info: dict[str, Any] = {"precision": precision, "attention": "stock", "onednn_linears": 0,
                            "weights_dtype": "float32"}
    info["weight_norms_baked"] = bake_weight_norm(model)
    if keep_fp32:
        names = {id(m): name for name, m in model.named_modules()}
        info["fp32_modules"] = [names.get(id(m), type(m).__name__) for m in keep_fp32]
        for module in keep_fp32:
            run_in_fp32(module, device)
    if matmul_convs:
        cpu = not str(device).startswith("cuda")
        info["matmul_convs"] = use_matmul_convs(model) if cpu else 0
    if precision in ("bf16", "fp16"):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        cast_matmul_weights(model, dtype, skip=keep_fp32, precast=precast)
        info["weights_dtype"] = str(dtype).replace("torch.", "") + " (matmul/conv weights)"
    if precision in ("bf16", "fp16") and not str(device).startswith("cuda"):
        info["gemm_feature_encoder"] = patch_conv_feature_encoder(model)
    if fuse_attention and (patch_wavlm_attention(model) or fuse_whisper_attention(model)):
        info["attention"] = "fused-qkv-sdpa"
    if precision == "bf16" and not str(device).startswith("cuda"):
        info["prepacked_linears"] = use_prepacked_linears(model, skip=keep_fp32)
    if precision == "fp32-onednn":
        info["onednn_linears"] = use_onednn_linears(model)
    return info

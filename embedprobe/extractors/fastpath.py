"""Fast inference for the torch families: precision choice, autocast, oneDNN linears, fused attention.

What the CPU fast path does, and why (measured on the project's 2-core AVX-512 machines, see
``../shared/DEPENDENCIES.md``):

* **bf16 autocast** where the CPU has native bf16 matrix units (AVX-512 BF16 or AMX): matrix
  multiplies run about 4x faster than torch's default fp32 path; accumulation stays fp32 and
  layer norms / softmax run in fp32, so embeddings stay at cosine >= 0.999 to fp32
  (``tests/extractors/test_fastpath.py`` checks this on WavLM, the real CDPAM weights are
  checked in ``test_cdpam.py``).
* **Prepacked bf16 linears** on CPU: every ``nn.Linear`` calls oneDNN with its weight reordered
  once into the kernel's blocked layout (``cpu_linears``), instead of per call: 5-8 % faster
  GEMMs, 9 % on a WavLM-Large forward, identical outputs.
* **oneDNN fp32 linears** (``precision="fp32-onednn"``) where bf16 is missing or not wanted:
  the same fp32 arithmetic through oneDNN's kernels, about 1.4-1.6x torch's default path.
* **Fused Q/K/V + scaled_dot_product_attention for WavLM.** transformers' WavLM attention
  calls ``F.multi_head_attention_forward(need_weights=True)``; under CPU bf16 autocast with
  more than one clip per batch it copies the projection weight per frame (memory climbed to
  6.5 GB). ``patch_wavlm_attention`` swaps its ``forward`` for one fused projection, WavLM's
  gated relative position bias added as an attention mask, and one SDPA call; the outputs
  match the stock module to ~1e-5 in fp32.

* **fp32 front ends.** STFT / log-mel front ends (CNN14, HTS-AT) are listed in ``prepare``'s
  ``keep_fp32``: bf16 rounds the waveform and the DFT kernels to 8 bits, which put the
  log-mel of a real EmoDB clip off by 0.14 dB on average and 13 dB at worst (CNN14, 16 kHz)
  and by 6 dB on average (HTS-AT's 32 kHz mel on 44.1 kHz input, whose top bands are nearly
  empty). They cost ~1 % (CNN14) to ~15 % (HTS-AT) of the FLOPs, so they stay fp32.
* **Convolutions as one GEMM on small maps** (``use_matmul_convs``): oneDNN's direct
  convolution is weight-bound when a 3x3 kernel over 1024-2048 channels meets a map of a few
  dozen positions (CNN14's last block ran at 17 GFLOP/s); ``unfold`` + one matrix multiply
  runs it 3.6x faster in fp32 and 4.5x in bf16. The choice is made per call from the shape.

On CUDA the same entry points give fp16/bf16 autocast, pinned host memory and non-blocking
copies. Batching (``batch_seconds``) is the main lever there; on CPU it is not (padded
batches measured 0.8x one-clip-at-a-time), so CPU runs one clip per forward pass.

Every choice is recorded: extractors expose ``precision`` and ``runtime_config()``, and the
extraction pipeline writes that dict into the cache's provenance.

Example:
    >>> # SKIP: needs a loaded torch model
    >>> precision = resolve_precision("auto", "cpu")  # doctest: +SKIP
    >>> info = prepare(model, precision, "cpu")        # doctest: +SKIP
    >>> with autocast(precision, "cpu"):               # doctest: +SKIP
    ...     out = model(x)
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from embedprobe.errors import BadValueError
from embedprobe.extractors.cpu_linears import use_onednn_linears, use_prepacked_linears

PRECISIONS = ("auto", "fp32", "fp32-onednn", "bf16", "fp16")


# -- capabilities and the precision choice -------------------------------------------------------
def cpu_bf16_supported() -> bool:
    """``True`` if this CPU runs bf16 matrix multiplies natively (AVX-512 BF16 or AMX).

    Plain AVX-512 CPUs (e.g. Skylake-X) only emulate bf16 and are slower than fp32 there.
    """
    import torch

    cpu = getattr(torch, "cpu", None)
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        fn = getattr(cpu, probe, None)
        if fn is not None and fn():
            return True
    return False


def resolve_precision(precision: str, device: str) -> str:
    """Turn ``"auto"`` into a concrete precision for ``device`` and check the others.

    ``auto``: CUDA -> ``bf16`` if the GPU supports it else ``fp16``; CPU -> ``bf16`` on
    AVX-512-BF16/AMX CPUs, else ``fp32-onednn`` when oneDNN is built in, else ``fp32``.

    Raises:
        BadValueError: unknown precision, or ``fp16`` asked for on a CPU.
    """
    import torch

    if precision not in PRECISIONS:
        raise BadValueError("precision", precision, PRECISIONS)
    cuda = str(device).startswith("cuda")
    if precision == "auto":
        if cuda:
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        if cpu_bf16_supported():
            return "bf16"
        return "fp32-onednn" if torch.backends.mkldnn.is_available() else "fp32"
    if precision == "fp16" and not cuda:
        raise BadValueError("precision", precision, [p for p in PRECISIONS if p != "fp16"],
                            fix="fp16 autocast is for CUDA devices; on CPU use bf16 or fp32")
    if precision == "fp32-onednn" and cuda:
        return "fp32"
    return precision


def autocast(precision: str, device: str) -> contextlib.AbstractContextManager:
    """The autocast context for a resolved precision (a no-op for the fp32 variants)."""
    import torch

    if precision in ("fp32", "fp32-onednn"):
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast("cuda" if str(device).startswith("cuda") else "cpu", dtype=dtype)


def to_device(wav: np.ndarray, device: str) -> Any:
    """A float32 numpy array as a tensor on ``device`` (pinned + non-blocking copy on CUDA)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))
    if str(device).startswith("cuda"):
        return x.pin_memory().to(device, non_blocking=True)
    return x


# -- module rewrites -----------------------------------------------------------------------------
def _fuse_qkv(attn: Any) -> None:
    """Give ``attn`` one ``(3C, C)`` projection whose slices *are* its q/k/v weights (no copy)."""
    import torch
    from torch import nn

    q, k, v = attn.q_proj, attn.k_proj, attn.v_proj
    c = q.weight.shape[0]
    fused = nn.Linear(q.in_features, 3 * c, bias=True, device="meta")  # no random init to throw away
    with torch.no_grad():
        fused.weight = nn.Parameter(torch.cat([q.weight, k.weight, v.weight]), requires_grad=False)
        fused.bias = nn.Parameter(torch.cat([q.bias, k.bias, v.bias]), requires_grad=False)
    for i, proj in enumerate((q, k, v)):  # views into the fused tensors: state_dict still works
        proj.weight = nn.Parameter(fused.weight[i * c:(i + 1) * c], requires_grad=False)
        proj.bias = nn.Parameter(fused.bias[i * c:(i + 1) * c], requires_grad=False)
    attn.qkv_fused = fused


def _wavlm_sdpa_forward(self, hidden_states, attention_mask=None, position_bias=None, index=0, **kwargs):
    """WavLM self-attention with gated relative position bias as one SDPA call.

    Same maths as ``WavLMAttention.forward`` + ``torch_multi_head_self_attention``:
    ``softmax(q k^T / sqrt(d) + gate * rel_bias) v``, padded keys masked out. The position bias
    is passed between layers as ``(1, H, T, T)`` (not repeated per clip).
    """
    import torch
    import torch.nn.functional as F

    bsz, tgt_len, embed_dim = hidden_states.shape
    heads, head_dim = self.num_heads, self.head_dim
    if position_bias is None:
        position_bias = self.compute_bias(tgt_len, tgt_len).unsqueeze(0)  # (1, H, T, T)
    position_bias = position_bias.reshape(-1, heads, tgt_len, tgt_len)[:1]

    # gate from the layer input, per head and query frame (WavLM's gated relative position bias)
    gated = hidden_states.view(bsz, tgt_len, heads, head_dim).permute(0, 2, 1, 3)
    proj = self.gru_rel_pos_linear(gated).view(bsz, heads, tgt_len, 2, 4).sum(-1)
    gate_a, gate_b = torch.sigmoid(proj.float()).chunk(2, dim=-1)
    gate = gate_a * (gate_b * self.gru_rel_pos_const.float() - 1.0) + 2.0  # (B, H, T, 1)

    qkv = self.qkv_fused(hidden_states).view(bsz, tgt_len, 3, heads, head_dim)
    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, T, d)
    # gate * bias computed in fp32 and written straight in the attention's dtype (bf16 under
    # autocast): 2x faster than a bf16 multiply or an fp32 product cast afterwards
    bias = torch.empty((bsz, heads, tgt_len, tgt_len), dtype=q.dtype, device=q.device)
    torch.mul(gate, position_bias.float(), out=bias)
    if attention_mask is not None:
        keep = attention_mask.bool()[:, None, None, :]
        bias = bias.masked_fill(~keep, float("-inf"))
    if q.dtype == torch.bfloat16 and q.device.type == "cpu":
        # bias + q k^T / sqrt(d) as one bf16 GEMM into the bias buffer, softmax, GEMM: 1.6x faster
        # than CPU SDPA with a float mask at WavLM's sizes (16 heads x 250 frames: 2.6 vs 4.3 ms)
        scores = torch.baddbmm(bias.view(-1, tgt_len, tgt_len), q.reshape(-1, tgt_len, head_dim),
                               k.reshape(-1, tgt_len, head_dim).transpose(1, 2), alpha=head_dim ** -0.5)
        out = torch.bmm(torch.softmax(scores, -1), v.reshape(-1, tgt_len, head_dim))
        out = out.view(bsz, heads, tgt_len, head_dim)
    else:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=0.0)
    out = out.transpose(1, 2).reshape(bsz, tgt_len, embed_dim)
    return self.out_proj(out), None, position_bias


def patch_wavlm_attention(model: Any) -> int:
    """Replace every transformers ``WavLMAttention.forward`` in ``model`` by the fused SDPA one.

    Call after the model is on its device. Inference only (no dropout, no attention weights).

    Returns:
        how many attention modules were patched (0 for models without WavLM attention).
    """
    n = 0
    for module in model.modules():
        if type(module).__name__ == "WavLMAttention" and hasattr(module, "gru_rel_pos_linear"):
            if not hasattr(module, "qkv_fused"):
                _fuse_qkv(module)
                module.forward = types.MethodType(_wavlm_sdpa_forward, module)
            n += 1
    return n


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


def cast_matmul_weights(model: Any, dtype: Any, skip: Sequence[Any] = ()) -> int:
    """Store the weights of ``nn.Linear`` / ``nn.Conv1d`` / ``nn.Conv2d`` in ``dtype``; returns the count.

    Under autocast the weights are cast anyway, on every call (13 % of a WavLM-Large CPU
    forward); casting them once removes that copy. Biases, norms and embeddings stay fp32.
    Only valid when every forward runs under autocast of the same dtype, except inside the
    ``skip`` submodules (see ``run_in_fp32``), whose weights stay fp32.
    """
    from torch import nn

    skipped = {id(m) for s in skip for m in s.modules()}
    n = 0
    for module in model.modules():
        if id(module) in skipped:
            continue
        if type(module) in (nn.Linear, nn.Conv1d, nn.Conv2d) and module.weight.dtype != dtype:
            module.weight.data = module.weight.data.to(dtype)
            n += 1
    return n


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


def _conv_gemm_weight(conv: Any) -> Any:
    """``conv``'s ``(C_out, C_in, k)`` weight as ``(C_out, k * C_in)``, cached per weight tensor."""
    w = conv.weight
    key = (w.data_ptr(), w.dtype, w.device, w._version)
    cached = getattr(conv, "_gemm_weight", None)
    if cached is None or cached[0] != key:
        flat = w.detach().permute(0, 2, 1).reshape(w.shape[0], -1).contiguous()
        conv._gemm_weight = cached = (key, flat)
    return cached[1]


def _channels_last_encoder_forward(self, input_values):
    """wav2vec2-family CNN feature encoder in ``(B, T, C)`` layout, each convolution one GEMM.

    Same maths as the stock ``conv -> LayerNorm(channels) -> activation`` stack; the stock
    layout transposes twice per layer (copies of up to 16000 x 512 values) and oneDNN's
    direct 1-D convolution ran at ~85 % of the GEMM speed. Returns ``(B, C, T)`` like the
    stock module (a transposed view).
    """
    import torch
    import torch.nn.functional as F

    x = input_values[:, :, None]  # (B, T, 1)
    for layer in self.conv_layers:
        conv, norm = layer.conv, layer.layer_norm
        k, s = conv.kernel_size[0], conv.stride[0]
        x = x.contiguous()
        b, t, c = x.shape
        t_out = (t - k) // s + 1
        cols = x.as_strided((b, t_out, k * c), (x.stride(0), s * c, 1))  # overlapping windows
        y = F.linear(cols, _conv_gemm_weight(conv), conv.bias)
        # LayerNorm + activation in the GEMM's dtype (bf16 under autocast; fp32 statistics inside)
        with torch.autocast(y.device.type, enabled=False):
            y = F.layer_norm(y, norm.normalized_shape, norm.weight, norm.bias, norm.eps)
            x = layer.activation(y)
    return x.transpose(1, 2)


def _is_layer_norm_conv_stack(module: Any) -> bool:
    from torch import nn

    layers = getattr(module, "conv_layers", None)
    if not isinstance(layers, nn.ModuleList) or not len(layers):
        return False
    for layer in layers:
        conv, norm = getattr(layer, "conv", None), getattr(layer, "layer_norm", None)
        if not (type(conv) is nn.Conv1d and isinstance(norm, nn.LayerNorm) and hasattr(layer, "activation")):
            return False
        if conv.groups != 1 or conv.padding != (0,) or conv.dilation != (1,) or conv.padding_mode != "zeros":
            return False
    return True


def patch_conv_feature_encoder(model: Any) -> int:
    """Run LayerNorm-type wav2vec2-family CNN front ends (WavLM/HuBERT/wav2vec2 Large) as GEMMs.

    Replaces the ``forward`` of every feature encoder whose layers are all ``Conv1d`` (no
    padding, groups 1) + ``LayerNorm`` + activation by ``_channels_last_encoder_forward``.
    GroupNorm front ends (the base models) are left alone. Measured on WavLM-Large, 5 s clip,
    one thread, bf16: 199 -> 161 ms. Inference only. Returns the number of encoders patched.
    """
    n = 0
    for module in model.modules():
        if type(module).__name__.endswith("FeatureEncoder") and _is_layer_norm_conv_stack(module):
            if not getattr(module, "_gemm_convs", False):
                module.forward = types.MethodType(_channels_last_encoder_forward, module)
                module._gemm_convs = True
            n += 1
    return n


def prepare(model: Any, precision: str, device: str, *, fuse_attention: bool = True,
            keep_fp32: Sequence[Any] = (), matmul_convs: bool = False) -> dict[str, Any]:
    """Apply the module rewrites that suit a resolved ``precision`` and describe what was done.

    All: weight norms folded into plain weights (same numbers, computed once), WavLM
    attention fused into one projection + SDPA. bf16/fp16: matmul/conv weights stored in that
    dtype (run the model under ``inference(precision, device)`` only) and, on CPU, LayerNorm
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
        cast_matmul_weights(model, dtype, skip=keep_fp32)
        info["weights_dtype"] = str(dtype).replace("torch.", "") + " (matmul/conv weights)"
    if precision in ("bf16", "fp16") and not str(device).startswith("cuda"):
        info["gemm_feature_encoder"] = patch_conv_feature_encoder(model)
    if fuse_attention and patch_wavlm_attention(model):
        info["attention"] = "fused-qkv-sdpa"
    if precision == "bf16" and not str(device).startswith("cuda"):
        info["prepacked_linears"] = use_prepacked_linears(model, skip=keep_fp32)
    if precision == "fp32-onednn":
        info["onednn_linears"] = use_onednn_linears(model)
    return info


@contextlib.contextmanager
def inference(precision: str, device: str) -> Iterator[None]:
    """``torch.inference_mode()`` plus the autocast of ``precision``."""
    import torch

    with torch.inference_mode(), autocast(precision, device):
        yield


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two arrays flattened (tests, the speed benchmark): the load-time
    precision check's ``agreement``, so both judge outputs alike (0.0 for non-finite values)."""
    from embedprobe.extractors.precision_check import agreement

    return agreement(a, b)


def versions() -> dict[str, str]:
    """torch and (if installed) transformers versions, for ``runtime_config()``."""
    import torch

    out = {"torch": torch.__version__}
    try:
        import transformers

        out["transformers"] = transformers.__version__
    except ImportError:
        pass
    return out

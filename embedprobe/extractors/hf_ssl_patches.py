"""Inference rewrites of the transformers speech encoders (WavLM, HuBERT, wav2vec2), used by ``hf_ssl``.

* **Fused Q/K/V + scaled_dot_product_attention for WavLM.** transformers' WavLM attention
  calls ``F.multi_head_attention_forward(need_weights=True)``; under CPU bf16 autocast with
  more than one clip per batch it copies the projection weight per frame (memory climbed to
  6.5 GB). ``patch_wavlm_attention`` swaps its ``forward`` for one fused projection, WavLM's
  gated relative position bias added as an attention mask, and one SDPA call; the outputs
  match the stock module to ~1e-5 in fp32.
* **The LayerNorm CNN feature encoder as GEMMs** (``patch_conv_feature_encoder``, the Large
  models): channels-last layout, each convolution one matrix multiply over overlapping
  windows (``conv_gemm.conv1d_gemm_weight``).

Both are found by module type in any network, so ``rewrites.prepare`` applies them wherever
they fit (a model without WavLM attention or such a front end is left alone). Inference only.
"""

from __future__ import annotations

import types
from typing import Any

from embedprobe.extractors.conv_gemm import conv1d_gemm_weight


# -- WavLM attention -----------------------------------------------------------------------------
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



# -- the wav2vec2-family CNN feature encoder ---------------------------------------------------
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
        y = F.linear(cols, conv1d_gemm_weight(conv), conv.bias)
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

"""The data2vec 2.0 audio encoder as emotion2vec uses it, inference only, with the official key names.

Same computation as FunASR's ``funasr.models.emotion2vec.model.Emotion2vec`` (from
``ddlBoJack/emotion2vec``, built on fairseq's ``data2vec2``) in eval mode with
``extract_features(source, padding_mask=None, mask=False)``, for one unpadded clip:

1. ``local_encoder``: seven ``Conv1d`` (no bias) each followed by a layer norm over channels
   and GELU (fairseq's ``ConvFeatureExtractionModel``, ``mode="layer_norm"``); hop 320 samples.
2. ``project_features``: layer norm, then a linear map to ``embed_dim``.
3. ``relative_positional_encoder``: ``conv_pos_depth`` grouped ``Conv1d`` of kernel
   ``max(3, conv_pos_width // conv_pos_depth)``, each followed by a layer norm without affine
   and GELU; its output is added to the features.
4. ``extra_tokens`` (10 learned vectors) are put in front of the frames; the attention bias is
   ALiBi (``-slope_h * |i - j|``, slopes of ``heads`` heads) times the learned per-head
   ``alibi_scale`` (clamped at 0), zero for the extra tokens.
5. ``context_encoder``: a layer norm, then ``prenet_depth`` blocks; then ``depth`` more blocks.
   Every block is post-LN (``layer_norm_first = False``): ``x = norm1(x + attn(x))``,
   ``x = norm2(x + mlp(x))``.
6. The extra tokens are dropped from every output.

The pre-training decoder (``modality_encoders.AUDIO.decoder``), the EMA teacher (``_ema``) and
the emotion2vec+ classifier head (``proj``) are not part of the encoder: ``IGNORED_KEYS``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

PREFIX = "modality_encoders.AUDIO."
# Checkpoint tensors that are not part of the feature encoder (see the module docstring).
IGNORED_KEYS = (r"modality_encoders\.AUDIO\.decoder\..*", r"_ema(\..*)?", r"proj\..*",
                r"recon_proj\..*", r"shared_decoder\..*")
CONV = ((512, 10, 5),) + ((512, 3, 2),) * 4 + ((512, 2, 2),) * 2  # (channels, kernel, stride)


@dataclass(frozen=True)
class Data2Vec2Config:
    """The architecture numbers of one checkpoint (FunASR's ``model_conf``)."""

    embed_dim: int = 768
    heads: int = 12
    prenet_depth: int = 4
    depth: int = 8
    mlp_ratio: float = 4.0
    conv: tuple[tuple[int, int, int], ...] = CONV
    conv_pos_width: int = 95
    conv_pos_groups: int = 16
    conv_pos_depth: int = 5
    extra_tokens: int = 10
    norm_eps: float = 1e-5

    @property
    def n_blocks(self) -> int:
        return self.prenet_depth + self.depth

    @property
    def hop(self) -> int:
        return math.prod(s for _, _, s in self.conv)


def n_frames(n_samples: int, conv: tuple[tuple[int, int, int], ...] = CONV) -> int:
    """Frames out of the conv feature extractor for ``n_samples`` samples (0 if too short)."""
    n = int(n_samples)
    for _, kernel, stride in conv:
        n = (n - kernel) // stride + 1 if n >= kernel else 0
    return n


def alibi_slopes(heads: int) -> list[float]:
    """ALiBi's per-head slopes (fairseq's ``get_slopes``, incl. its rule for non-powers of 2)."""
    def power_of_2(n: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(heads).is_integer():
        return power_of_2(heads)
    closest = 2 ** math.floor(math.log2(heads))
    return power_of_2(closest) + alibi_slopes(2 * closest)[0::2][: heads - closest]


class Transpose(nn.Module):
    """Swap the last two dimensions (fairseq's ``TransposeLast``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(-2, -1)


class SamePad(nn.Module):
    """Drop the last frame after an even-kernel convolution padded by ``k // 2``."""

    def __init__(self, kernel: int):
        super().__init__()
        self.remove = 1 if kernel % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, : -self.remove] if self.remove else x


class Attention(nn.Module):
    """Multi-head self-attention with an additive bias (``AltAttention``)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        if bias is not None:
            bias = bias.to(q.dtype)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.proj(y.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """A post-LN transformer block (``AltBlock`` with ``layer_norm_first=False``)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, eps: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        x = self.norm1(x + self.attn(x, bias))
        return self.norm2(x + self.mlp(x))


class ContextEncoder(nn.Module):
    """The prenet: a layer norm, then ``prenet_depth`` blocks (``BlockEncoder``)."""

    def __init__(self, cfg: Data2Vec2Config):
        super().__init__()
        self.blocks = nn.ModuleList(Block(cfg.embed_dim, cfg.heads, cfg.mlp_ratio, cfg.norm_eps)
                                    for _ in range(cfg.prenet_depth))
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)


def _conv_block(n_in: int, n_out: int, kernel: int, stride: int) -> nn.Sequential:
    # index 1 is fairseq's dropout slot: the key names are conv_layers.i.0 and conv_layers.i.2.1
    return nn.Sequential(nn.Conv1d(n_in, n_out, kernel, stride=stride, bias=False), nn.Identity(),
                         nn.Sequential(Transpose(), nn.LayerNorm(n_out), Transpose()), nn.GELU())


def _pos_block(dim: int, kernel: int, groups: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=groups), SamePad(kernel),
                         Transpose(), nn.LayerNorm(dim, elementwise_affine=False), Transpose(), nn.GELU())


class AudioEncoder(nn.Module):
    """``modality_encoders.AUDIO``: conv features, positions, extra tokens, ALiBi, prenet."""

    def __init__(self, cfg: Data2Vec2Config):
        super().__init__()
        self.cfg = cfg
        layers, n_in = [], 1
        for dim, kernel, stride in cfg.conv:
            layers.append(_conv_block(n_in, dim, kernel, stride))
            n_in = dim
        self.local_encoder = nn.Module()
        self.local_encoder.conv_layers = nn.ModuleList(layers)
        d = cfg.embed_dim
        self.project_features = nn.Sequential(Transpose(), nn.LayerNorm(n_in), nn.Linear(n_in, d))
        k = max(3, cfg.conv_pos_width // cfg.conv_pos_depth)
        self.relative_positional_encoder = nn.Sequential(
            Transpose(), *[_pos_block(d, k, cfg.conv_pos_groups) for _ in range(cfg.conv_pos_depth)],
            Transpose())
        self.context_encoder = ContextEncoder(cfg)
        self.extra_tokens = nn.Parameter(torch.zeros(1, cfg.extra_tokens, d))
        self.alibi_scale = nn.Parameter(torch.ones(1, 1, cfg.heads, 1, 1))

    def features(self, wav: torch.Tensor) -> torch.Tensor:
        """``(B, n)`` -> projected conv features ``(B, T, embed_dim)``."""
        x = wav[:, None]
        for layer in self.local_encoder.conv_layers:
            x = layer(x)
        return self.project_features(x)

    def alibi(self, t: int, device: torch.device) -> torch.Tensor:
        """The scaled ALiBi bias ``(1, heads, E + t, E + t)``, zero on the extra tokens' rows and columns."""
        slopes = torch.tensor(alibi_slopes(self.cfg.heads), dtype=torch.float32, device=device)
        pos = torch.arange(t, device=device)
        dist = -(pos[None, :] - pos[:, None]).abs()
        bias = (slopes[:, None, None] * dist[None]).unsqueeze(0)
        bias = bias * self.alibi_scale.float().clamp_min(0).squeeze(0)
        e = self.cfg.extra_tokens
        return F.pad(bias, (e, 0, e, 0)) if e else bias


class Data2Vec2Audio(nn.Module):
    """The emotion2vec encoder; ``forward`` returns every hidden state (see ``forward``)."""

    def __init__(self, cfg: Data2Vec2Config):
        super().__init__()
        self.cfg = cfg
        self.modality_encoders = nn.ModuleDict({"AUDIO": AudioEncoder(cfg)})
        self.blocks = nn.ModuleList(Block(cfg.embed_dim, cfg.heads, cfg.mlp_ratio, cfg.norm_eps)
                                    for _ in range(cfg.depth))

    def forward(self, wav: torch.Tensor) -> list[torch.Tensor]:
        """``(B, n)`` normalised waveforms of equal length -> ``1 + prenet_depth + depth`` states ``(B, T, D)``.

        State 0 is the prenet's input (features + positions after its layer norm), state ``i``
        the output of block ``i`` (prenet blocks first); the last one is what FunASR's
        ``extract_features`` returns as ``x``. Extra tokens are removed from all of them.
        """
        enc = self.modality_encoders["AUDIO"]
        x = enc.features(wav)
        x = x + enc.relative_positional_encoder(x)
        bias = enc.alibi(x.shape[1], x.device)
        e = self.cfg.extra_tokens
        x = torch.cat([enc.extra_tokens.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
        x = enc.context_encoder.norm(x)
        states = [x[:, e:]]
        for blk in (*enc.context_encoder.blocks, *self.blocks):
            x = blk(x, bias)
            states.append(x[:, e:])
        return states
